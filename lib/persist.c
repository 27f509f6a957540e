/* Between the context and its durable store: loading at start, picking up
 * what other processes changed, pruning, redelivery and recovery. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define CHANGE_CHECK_US (WH__STORE_WATCH_MS * 1000)
#define PRUNE_EVERY_MS 60000
#define PRUNE_BATCH 500

/* ---- endpoints ------------------------------------------------------------ */

typedef struct {
    wh_ctx *ctx;
    char **seen; /* ids present in the store */
    size_t n, cap;
    bool oom;
} ep_sync;

static void sync_endpoint(void *ud, const wh__endpoint_row *row)
{
    ep_sync *s = ud;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **v = realloc(s->seen, cap * sizeof *v);
        if (!v) {
            s->oom = true;
            return;
        }
        s->seen = v, s->cap = cap;
    }
    if (!(s->seen[s->n] = wh__strdup(row->id))) {
        s->oom = true;
        return;
    }
    s->n++;
    wh_ctx *ctx = s->ctx;
    pthread_mutex_lock(&ctx->lock);
    wh__endpoint *ep = wh__registry_find(ctx->reg, row->id);
    if (ep) {
        bool was_enabled = ep->enabled;
        wh__endpoint_apply_row(ep, row);
        if (!was_enabled && ep->enabled)
            wh__wake(ctx);
    } else {
        char err[256];
        /* a row this engine cannot use (e.g. a type it does not know) stays in the store */
        ep = wh__endpoint_from_row(ctx->reg, row, err, sizeof err);
        if (ep && wh__registry_add(ctx->reg, ep) != WH_OK)
            wh__endpoint_unref(ep);
    }
    pthread_mutex_unlock(&ctx->lock);
}

static int cmp_id(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Makes the registry what the store says; caller holds ep_lock. */
static int sync_endpoints(wh_ctx *ctx)
{
    ep_sync s = {.ctx = ctx};
    int rc = wh__store_load_endpoints(ctx->store, sync_endpoint, &s);
    if (rc == WH_OK && !s.oom) {
        if (s.n)
            qsort(s.seen, s.n, sizeof *s.seen, cmp_id);
        pthread_mutex_lock(&ctx->lock);
        for (size_t i = wh__registry_count(ctx->reg); i-- > 0;) {
            const char *id = wh__registry_at(ctx->reg, i)->id;
            if (!s.n || !bsearch(&id, s.seen, s.n, sizeof *s.seen, cmp_id))
                wh__registry_remove(ctx->reg, id);
        }
        pthread_mutex_unlock(&ctx->lock);
    }
    for (size_t i = 0; i < s.n; i++)
        free(s.seen[i]);
    free(s.seen);
    return rc != WH_OK ? rc : s.oom ? WH_ERR_NOMEM : WH_OK;
}

/* ---- pending deliveries ----------------------------------------------------- */

typedef struct {
    wh_ctx *ctx;
    wh__event *ev; /* rows come ordered by event: consecutive ones share it */
    int loaded;
    wh__result *orphans; /* deliveries to endpoints removed since: settled as SKIPPED */
    size_t n_orphans, cap_orphans;
} pending_load;

static void settle_orphan(pending_load *p, const wh__pending_row *row)
{
    if (p->n_orphans == p->cap_orphans) {
        size_t cap = p->cap_orphans ? p->cap_orphans * 2 : 16;
        wh__result *v = realloc(p->orphans, cap * sizeof *v);
        if (!v)
            return; /* stays pending; tried again at the next start */
        p->orphans = v, p->cap_orphans = cap;
    }
    wh__result *r = &p->orphans[p->n_orphans++];
    memset(r, 0, sizeof *r);
    r->event_seq = row->event_seq;
    snprintf(r->event_id, sizeof r->event_id, "%s", row->event_id);
    snprintf(r->endpoint_id, sizeof r->endpoint_id, "%s", row->endpoint_id);
    r->state = WH__DSTATE_SKIPPED;
    r->attempts = row->attempts;
}

static void load_one(void *ud, const wh__pending_row *row)
{
    pending_load *p = ud;
    wh_ctx *ctx = p->ctx;
    if (!p->ev || p->ev->seq != row->event_seq) {
        if (p->ev)
            wh__event_unref(p->ev);
        p->ev = wh__event_new(row->event_id, row->event_type, row->body, row->body_len);
        if (!p->ev)
            return;
        p->ev->seq = row->event_seq;
    }
    pthread_mutex_lock(&ctx->lock);
    wh__endpoint *ep = wh__registry_find(ctx->reg, row->endpoint_id);
    if (!ep)
        settle_orphan(p, row);
    wh__delivery *d = ep ? wh__delivery_new(ctx, p->ev, ep, row->next_ms) : NULL;
    if (d) {
        d->attempts = row->attempts;
        d->skip_only = row->skip_only;
        if (wh__sched_push(&ctx->sched, d) != WH_OK)
            wh__delivery_free(ctx, d);
        else
            p->loaded++;
    }
    pthread_mutex_unlock(&ctx->lock);
}

static int load_pending(wh_ctx *ctx, bool only_from_tool)
{
    pending_load p = {.ctx = ctx};
    int rc = wh__store_load_pending(ctx->store, only_from_tool, load_one, &p);
    if (p.ev)
        wh__event_unref(p.ev);
    /* written after the load: the store's callbacks run inside its transaction */
    if (rc == WH_OK && p.n_orphans)
        rc = wh__store_results(ctx->store, p.orphans, p.n_orphans);
    free(p.orphans);
    if (p.loaded)
        wh__wake(ctx);
    return rc;
}

int wh__store_attach(wh_ctx *ctx, char *errstr, size_t errlen)
{
    const char *path = ctx->conf->store + strlen("sqlite:");
    int rc = wh__store_open(path, ctx->conf->store_sync_full, wh__registry_types(ctx->reg),
                            &ctx->store, errstr, errlen);
    if (rc != WH_OK)
        return rc;
    pthread_mutex_lock(&ctx->ep_lock);
    rc = sync_endpoints(ctx);
    pthread_mutex_unlock(&ctx->ep_lock);
    if (rc == WH_OK)
        rc = load_pending(ctx, false);
    if (rc != WH_OK)
        return wh__fail(errstr, errlen, rc, "%s", wh_last_error());
    ctx->last_change_check_us = wh__mono_us();
    return WH_OK;
}

void wh__store_upkeep(wh_ctx *ctx)
{
    int64_t now_us = wh__mono_us();
    if (now_us - ctx->last_change_check_us >= CHANGE_CHECK_US) {
        ctx->last_change_check_us = now_us;
        wh__store_checkpoint(ctx->store);
        bool changed = false;
        if (wh__store_changed(ctx->store, &changed) == WH_OK && changed) {
            /* our own outcomes (an auto-disable, say) go in before theirs are read back */
            wh__commit_results(ctx);
            pthread_mutex_lock(&ctx->ep_lock);
            sync_endpoints(ctx);
            pthread_mutex_unlock(&ctx->ep_lock);
            load_pending(ctx, true);
        }
    }
    int64_t now = wh__now_ms(ctx);
    if (ctx->conf->log_retention_ms > 0 && now - ctx->last_prune_ms >= PRUNE_EVERY_MS) {
        ctx->last_prune_ms = now;
        /* small batches: delivery never waits long behind housekeeping */
        wh__store_prune(ctx->store, now - ctx->conf->log_retention_ms, PRUNE_BATCH);
    }
}

/* ---- redelivery -------------------------------------------------------------- */

typedef struct {
    wh_ctx *ctx;
    const char *event_id;
    const char *only_endpoint;
    wh__event *ev;
    wh__delivery **ds;
    size_t n, cap;
    int64_t now;
    bool oom, full, endpoint_seen;
    int already;
} redeliver_plan;

/* Under the lock: whether event_id is already on its way to endpoint_id again. */
static bool pending_to(const wh_ctx *ctx, const char *event_id, const char *endpoint_id)
{
    for (const wh__delivery *d = ctx->all_head; d; d = d->all_next)
        if (strcmp(d->ev->id, event_id) == 0 && strcmp(d->ep->id, endpoint_id) == 0)
            return true;
    return false;
}

static void plan_endpoint(redeliver_plan *p, const char *endpoint_id)
{
    if (p->only_endpoint && strcmp(p->only_endpoint, endpoint_id) != 0)
        return;
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->ds[i]->ep->id, endpoint_id) == 0)
            return;
    p->endpoint_seen = true;
    wh__endpoint *ep = wh__registry_find(p->ctx->reg, endpoint_id);
    if (!ep)
        return; /* removed since */
    if (pending_to(p->ctx, p->event_id, endpoint_id)) {
        p->already++; /* on its way there already: one delivery per (event, endpoint) */
        return;
    }
    if (p->ctx->live_deliveries + 1 > p->ctx->conf->max_pending) {
        p->full = true; /* the same backpressure as wh_emit */
        return;
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        wh__delivery **v = realloc(p->ds, cap * sizeof *v);
        if (!v) {
            p->oom = true;
            return;
        }
        p->ds = v, p->cap = cap;
    }
    wh__delivery *d = wh__delivery_new(p->ctx, p->ev, ep, p->now);
    if (!d)
        p->oom = true;
    else
        p->ds[p->n++] = d;
}

static void plan_from_store(void *ud, int64_t seq, const char *type, const char *body, size_t len,
                            const char *endpoint_id)
{
    redeliver_plan *p = ud;
    if (!p->ev) {
        p->ev = wh__event_new(p->event_id, type, body, len);
        if (!p->ev) {
            p->oom = true;
            return;
        }
        p->ev->seq = seq;
    }
    /* the store's callback runs without the context lock */
    pthread_mutex_lock(&p->ctx->lock);
    plan_endpoint(p, endpoint_id);
    pthread_mutex_unlock(&p->ctx->lock);
}

/* Queues event_id again for its endpoints (or one). Returns deliveries queued. */
static int redeliver(wh_ctx *ctx, const char *event_id, const char *endpoint_id)
{
    redeliver_plan p = {.ctx = ctx, .event_id = event_id, .only_endpoint = endpoint_id, .now = wh__now_ms(ctx)};
    int rc = WH_OK;
    if (ctx->store) {
        rc = wh__store_find_event(ctx->store, event_id, plan_from_store, &p);
        rc = rc < 0 ? rc : WH_OK;
    } else {
        pthread_mutex_lock(&ctx->lock);
        /* the memory store remembers events through the attempt ring */
        for (size_t k = 0; k < ctx->ring.n; k++) {
            size_t i = (ctx->ring.next + ctx->ring.cap - 1 - k) % ctx->ring.cap;
            wh__record *r = ctx->ring.slots[i];
            if (!r || !r->ev || strcmp(r->event_id, event_id) != 0)
                continue;
            if (!p.ev) {
                p.ev = r->ev;
                wh__event_ref(p.ev);
            }
            plan_endpoint(&p, r->endpoint_id);
        }
        pthread_mutex_unlock(&ctx->lock);
    }
    if (rc == WH_OK && p.oom)
        rc = WH_ERR_NOMEM;
    if (rc == WH_OK && p.full)
        rc = wh__fail(NULL, 0, WH_ERR_FULL, "queue.max_pending: reached; nothing queued");
    if (rc == WH_OK && !p.ev)
        rc = wh__fail(NULL, 0, WH_ERR_NOTFOUND, "event_id: no event \"%.63s\" in the %s", event_id,
                      ctx->store ? "store" : "attempt log");
    if (rc == WH_OK && endpoint_id && !p.endpoint_seen)
        rc = wh__fail(NULL, 0, WH_ERR_NOTFOUND, "endpoint_id: event %.63s never went to \"%.63s\"",
                      event_id, endpoint_id);
    if (rc == WH_OK && endpoint_id && p.n == 0 && !p.already)
        rc = wh__fail(NULL, 0, WH_ERR_NOTFOUND, "endpoint_id: no endpoint \"%.63s\"", endpoint_id);
    if (rc != WH_OK) {
        pthread_mutex_lock(&ctx->lock);
        for (size_t i = 0; i < p.n; i++)
            wh__delivery_free(ctx, p.ds[i]);
        pthread_mutex_unlock(&ctx->lock);
    } else {
        rc = wh__deliveries_commit(ctx, NULL, p.ds, p.n, p.now);
    }
    if (p.ev) {
        pthread_mutex_lock(&ctx->lock);
        wh__event_unref(p.ev);
        pthread_mutex_unlock(&ctx->lock);
    }
    free(p.ds);
    return rc == WH_OK ? (int)p.n : rc;
}

int wh_redeliver(wh_ctx *ctx, const char *event_id, const char *endpoint_id)
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    if (!event_id || !*event_id || strlen(event_id) >= WH_ID_MAX)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "event_id: missing or longer than %d", WH_ID_MAX - 1);
    if (endpoint_id && (!*endpoint_id || strlen(endpoint_id) >= WH_ID_MAX))
        return wh__fail(NULL, 0, WH_ERR_INVALID, "endpoint_id: empty or longer than %d", WH_ID_MAX - 1);
    return redeliver(ctx, event_id, endpoint_id);
}

typedef struct {
    char (*ids)[WH_ID_MAX];
    size_t n, cap;
} id_list;

static void add_id(void *ud, const char *id)
{
    id_list *l = ud;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->ids[i], id) == 0)
            return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        void *v = realloc(l->ids, cap * WH_ID_MAX);
        if (!v)
            return;
        l->ids = v, l->cap = cap;
    }
    snprintf(l->ids[l->n++], WH_ID_MAX, "%s", id);
}

int wh_recover(wh_ctx *ctx, const char *endpoint_id, int64_t since_ms)
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    if (!endpoint_id)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "endpoint_id: is NULL");
    if (since_ms < 0)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "since_ms: must be 0 or a time");
    pthread_mutex_lock(&ctx->lock);
    bool known = wh__registry_find(ctx->reg, endpoint_id) != NULL;
    pthread_mutex_unlock(&ctx->lock);
    if (!known)
        return wh__fail(NULL, 0, WH_ERR_NOTFOUND, "endpoint_id: no endpoint \"%.63s\"", endpoint_id);
    id_list l = {0};
    int rc = WH_OK;
    if (ctx->store) {
        rc = wh__store_find_failed(ctx->store, endpoint_id, since_ms, add_id, &l);
    } else {
        pthread_mutex_lock(&ctx->lock);
        for (size_t k = 0; k < ctx->ring.n; k++) {
            wh__record *r = ctx->ring.slots[(ctx->ring.next + ctx->ring.cap - 1 - k) % ctx->ring.cap];
            if (r && strcmp(r->endpoint_id, endpoint_id) == 0 && r->a.started_ms >= since_ms &&
                (r->a.outcome == WH_OUTCOME_FAILED || r->a.outcome == WH_OUTCOME_SKIPPED) &&
                !pending_to(ctx, r->event_id, endpoint_id))
                add_id(&l, r->event_id);
        }
        pthread_mutex_unlock(&ctx->lock);
    }
    int queued = 0;
    for (size_t i = 0; rc >= 0 && i < l.n; i++) {
        int k = redeliver(ctx, l.ids[i], endpoint_id);
        if (k > 0)
            queued += k;
        else if (k != WH_ERR_NOTFOUND)
            rc = k;
    }
    free(l.ids);
    return rc < 0 ? rc : queued;
}

/* ---- endpoint changes made through the API ------------------------------------- */

/* Under the lock: a copy of the endpoint's row that outlives the lock. */
char *wh__endpoint_row_snapshot(const wh__endpoint *ep, wh__endpoint_row *row)
{
    const char *parts[] = {ep->id, ep->url, ep->secret, ep->old_secret ? ep->old_secret : "",
                           ep->disabled_reason ? ep->disabled_reason : "", ep->description};
    size_t bytes = 0;
    for (size_t i = 0; i < 6; i++)
        bytes += strlen(parts[i]) + 1;
    for (char **t = ep->event_types; *t; t++)
        bytes += strlen(*t) + 1;
    char *block = malloc(bytes + 1), *p = block;
    if (!block)
        return NULL;
    const char *copies[6];
    for (size_t i = 0; i < 6; i++) {
        copies[i] = p;
        p = stpcpy(p, parts[i]) + 1;
    }
    const char *types = p;
    *p = '\0';
    for (char **t = ep->event_types; *t; t++) {
        if (t != ep->event_types)
            *p++ = ',';
        p = stpcpy(p, *t);
    }
    *row = (wh__endpoint_row){
        .id = copies[0],
        .url = copies[1],
        .event_types = types,
        .secret = copies[2],
        .old_secret = ep->old_secret ? copies[3] : NULL,
        .disabled_reason = ep->disabled_reason ? copies[4] : NULL,
        .description = copies[5],
        .old_until_ms = ep->old_until_ms,
        .created_ms = ep->created_ms,
        .failing_since_ms = ep->failing_since_ms,
        .enabled = ep->enabled,
    };
    return block;
}
