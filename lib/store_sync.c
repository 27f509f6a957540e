/* The engine's side of its store: opening it, applying the store's endpoint rows to the
 * registry field by field, loading the work this engine claims, renewing its lease, and
 * housekeeping. Nothing here writes engine state back as whole rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "ctx.h"
#include "error.h"
#include "event.h"
#include "logsink.h"
#include "notice.h"
#include "ordering.h"
#include "registry.h"
#include "registry_rows.h"
#include "scheduler.h"
#include "store.h"
#include "util.h"

/* ---- endpoints ------------------------------------------------------------------- */

typedef struct {
    wh_ctx *ctx;
    char **seen; /* ids present in the store */
    size_t n, cap;
    bool oom;
} ep_sync;

static bool unloadable(const wh_ctx *ctx, const char *id)
{
    for (size_t i = 0; i < ctx->n_unloadable; i++)
        if (strcmp(ctx->unloadable[i], id) == 0)
            return true;
    return false;
}

/* Under the lock: a stored endpoint this engine cannot use (a type it does not know, a URL
 * its checks refuse) stays in the store, and so does its work. */
static void mark_unloadable(wh_ctx *ctx, const char *id, const char *why)
{
    if (unloadable(ctx, id) || strlen(id) >= WH_ID_MAX)
        return;
    void *v = realloc(ctx->unloadable, (ctx->n_unloadable + 1) * sizeof *ctx->unloadable);
    if (!v)
        return;
    ctx->unloadable = v;
    snprintf(ctx->unloadable[ctx->n_unloadable++], WH_ID_MAX, "%s", id);
    snprintf(ctx->unloadable_why, sizeof ctx->unloadable_why,
             "store: endpoint %.63s cannot be loaded (%.300s); its deliveries stay pending for"
             " an engine that can", id, why);
}

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
        int max_in_flight = ep->max_in_flight;
        double rate = ep->rate_limit_per_s;
        bool ordering = ep->ordering_run;
        char err[256] = "";
        int rc = wh__registry_apply_row(ctx->reg, ep, row, err, sizeof err);
        if (rc == WH_ERR_NOMEM) {
            s->oom = true; /* the rows are read again at the next look */
        } else if (rc != WH_OK) {
            /* a key's update to a url or an event type this engine refuses: that part stays
             * as it was here (its deliveries keep going), the rest is taken */
            wh__endpoint_apply_row(ep, row);
        }
        /* deliveries parked behind the old limit move again under the new one */
        if (ep->max_in_flight != max_in_flight)
            wh__sched_unpark(&ctx->sched, ep);
        if (ep->rate_limit_per_s != rate || ep->ordering_run != ordering)
            wh__endpoint_flow_changed(ctx, ep);
        if ((!was_enabled && ep->enabled) || ep->max_in_flight != max_in_flight)
            wh__wake(ctx);
        /* this engine's own changes are in memory already: only others' make a difference */
        if (was_enabled != ep->enabled)
            wh__queue_notice(ctx, &(wh__notice_spec){
                                      .kind = ep->enabled ? WH_NOTICE_ENDPOINT_ENABLED
                                                          : WH_NOTICE_ENDPOINT_DISABLED,
                                      .endpoint_id = ep->id,
                                      .reason = wh__notice_reason_seen(ep),
                                      .version = row->version});
    } else {
        char err[256] = "";
        ep = wh__endpoint_from_row(ctx->reg, row, err, sizeof err);
        if (ep && wh__registry_add(ctx->reg, ep) != WH_OK) {
            wh__endpoint_unref(ep);
            ep = NULL;
        }
        if (!ep)
            mark_unloadable(ctx, row->id, err[0] ? err : "out of memory");
    }
    pthread_mutex_unlock(&ctx->lock);
}

static int cmp_id(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int wh__sync_endpoints(wh_ctx *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    ctx->n_unloadable = 0; /* known again from this sync's rows */
    pthread_mutex_unlock(&ctx->lock);
    ep_sync s = {.ctx = ctx};
    int rc = ctx->store->ops->endpoints_load(ctx->store, sync_endpoint, &s);
    if (rc == WH_OK && !s.oom && ctx->store->ops->durable) {
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
    return rc != WH_OK ? rc : s.oom ? wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory") : WH_OK;
}

/* ---- claimed work ------------------------------------------------------------------- */

/* A delivery taken in the store's transaction, acted on once the claim is committed. */
typedef struct {
    wh__event *ev;    /* a reference */
    wh__endpoint *ep; /* a reference; NULL: the endpoint was removed from the store */
    char endpoint_id[WH_ID_MAX];
    int attempts;
    int64_t next_ms;
    bool skip_only;
    bool redelivery;
} claimed_item;

typedef struct {
    wh_ctx *ctx;
    wh__event *ev; /* rows come ordered by event: consecutive ones share it */
    claimed_item *items;
    size_t n, cap;
} claim_load;

/* Inside the store's transaction: decides, changes nothing the engine runs on. */
static bool take_one(void *ud, const wh__claimed_row *row)
{
    claim_load *p = ud;
    wh_ctx *ctx = p->ctx;
    pthread_mutex_lock(&ctx->lock);
    wh__endpoint *ep = wh__registry_find(ctx->reg, row->endpoint_id);
    /* stored but not known here: this engine cannot load it (left to one that can), or its
     * registry is behind (taken after the next sync) */
    bool take = ep || !row->endpoint_stored;
    if (!take && !unloadable(ctx, row->endpoint_id))
        ctx->resync = true;
    if (ep)
        ep->refs++;
    pthread_mutex_unlock(&ctx->lock);
    if (!take)
        return false;
    if (!p->ev || p->ev->seq != row->event_seq) {
        if (p->ev)
            wh__event_unref(p->ev);
        if ((p->ev = wh__event_from_body(ctx->pool, row->event_id, row->event_type, row->body, row->body_len)))
            p->ev->seq = row->event_seq;
    }
    if (p->ev && p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        claimed_item *v = realloc(p->items, cap * sizeof *v);
        if (v)
            p->items = v, p->cap = cap;
    }
    if (!p->ev || p->n == p->cap) {
        if (ep) {
            pthread_mutex_lock(&ctx->lock);
            wh__endpoint_unref(ep);
            pthread_mutex_unlock(&ctx->lock);
        }
        return false; /* out of memory: left to another engine, or to a later claim */
    }
    claimed_item *it = &p->items[p->n++];
    *it = (claimed_item){.ev = p->ev, .ep = ep, .attempts = row->attempts,
                         .next_ms = row->next_ms, .skip_only = row->skip_only,
                         .redelivery = row->redelivery};
    wh__event_ref(p->ev);
    snprintf(it->endpoint_id, sizeof it->endpoint_id, "%s", row->endpoint_id);
    return true;
}

/* Under the lock: a claimed delivery to an endpoint removed since is settled, with a record
 * that says so. */
static void settle_removed(wh_ctx *ctx, const claimed_item *it, int64_t now)
{
    wh__record *rec = calloc(1, sizeof *rec);
    if (rec) {
        snprintf(rec->event_id, sizeof rec->event_id, "%s", it->ev->id);
        snprintf(rec->event_type, sizeof rec->event_type, "%s", it->ev->type);
        snprintf(rec->endpoint_id, sizeof rec->endpoint_id, "%s", it->endpoint_id);
        rec->url = wh__strdup("");
        rec->error = wh__strdup("skipped: endpoint removed");
        rec->a = (wh_attempt){.event_id = rec->event_id,
                              .event_type = rec->event_type,
                              .endpoint_id = rec->endpoint_id,
                              .url = rec->url,
                              .attempt = it->attempts,
                              .outcome = WH_OUTCOME_SKIPPED,
                              .error = rec->error,
                              .started_ms = now,
                              .redelivery = it->redelivery};
        wh__record_set_ids(rec, it->ev->run_id, it->ev->task_id);
    }
    wh__endpoint stub;
    memset(&stub, 0, sizeof stub);
    snprintf(stub.id, sizeof stub.id, "%s", it->endpoint_id);
    wh__delivery tmp = {.ev = it->ev, .ep = &stub, .attempts = it->attempts,
                        .skip_only = it->skip_only};
    wh__queue_result(ctx, &tmp, WH__DSTATE_SKIPPED, 0, rec);
    ctx->stats.skipped++;
}

static int claim(wh_ctx *ctx, bool all)
{
    claim_load p = {.ctx = ctx};
    int rc = ctx->store->ops->claim(ctx->store, wh__wall_ms(), all, take_one, &p);
    if (p.ev)
        wh__event_unref(p.ev);
    int loaded = 0;
    pthread_mutex_lock(&ctx->lock);
    int64_t now = wh__now_ms(ctx);
    for (size_t i = 0; i < p.n; i++) {
        claimed_item *it = &p.items[i];
        /* only what the store committed as ours becomes work here */
        if (rc == WH_OK && !it->ep) {
            settle_removed(ctx, it, now);
        } else if (rc == WH_OK) {
            wh__delivery *d = wh__delivery_new(ctx, it->ev, it->ep, it->next_ms);
            if (d) {
                d->attempts = it->attempts;
                d->skip_only = it->skip_only;
                d->redelivery = it->redelivery;
                if (wh__order_admit(&ctx->order, &ctx->sched, d, wh__order_asks_store(ctx)) != WH_OK)
                    wh__delivery_free(ctx, d);
                else
                    loaded++;
            }
        }
        if (it->ep)
            wh__endpoint_unref(it->ep);
        wh__event_unref(it->ev);
    }
    pthread_mutex_unlock(&ctx->lock);
    free(p.items);
    if (loaded)
        wh__wake(ctx);
    return rc;
}

/* ---- attach and upkeep -------------------------------------------------------------- */

int wh__store_attach(wh_ctx *ctx, char *errstr, size_t errlen)
{
    const wh_conf *c = ctx->conf;
    int rc;
    if (strncmp(c->store, "sqlite:", 7) == 0) {
        if ((rc = wh__new_id("eng_", ctx->engine_id)) != WH_OK)
            return wh__pass_error(errstr, errlen, rc);
        wh__sqlite_options o = {
            .path = c->store + 7,
            .sync_full = c->store_sync_full,
            .create = true,
            .engine_id = ctx->engine_id,
            .lease_ms = c->store_lease_ms,
            .now_ms = wh__wall_ms(),
            .event_types = wh__registry_types(ctx->reg),
            .dedup_window_ms = c->dedup_window_ms,
        };
        rc = wh__store_sqlite_open(&o, &ctx->store, errstr, errlen);
    } else if (wh__store_is_pg(c->store)) {
        if ((rc = wh__new_id("eng_", ctx->engine_id)) != WH_OK)
            return wh__pass_error(errstr, errlen, rc);
        wh__pg_options o = {
            .conninfo = c->store,
            .schema = wh_conf_get(c, "store.schema"),
            .create = true,
            .engine_id = ctx->engine_id,
            .lease_ms = c->store_lease_ms,
            .now_ms = wh__wall_ms(),
            .event_types = wh__registry_types(ctx->reg),
            .dedup_window_ms = c->dedup_window_ms,
        };
        rc = wh__store_pg_open(&o, &ctx->store, errstr, errlen);
    } else {
        rc = wh__store_memory_open(c->log_ring, &ctx->store, errstr, errlen);
    }
    if (rc != WH_OK)
        return rc;
    ctx->last_heartbeat_ms = wh__wall_ms();
    pthread_mutex_lock(&ctx->ep_lock);
    rc = wh__sync_endpoints(ctx);
    pthread_mutex_unlock(&ctx->ep_lock);
    if (rc == WH_OK)
        rc = claim(ctx, true);
    if (rc != WH_OK)
        return wh__pass_error(errstr, errlen, rc);
    ctx->last_change_check_us = wh__mono_us();
    return WH_OK;
}

void wh__store_upkeep(wh_ctx *ctx)
{
    wh__store *s = ctx->store;
    /* retention and checkpoints pace themselves */
    s->ops->upkeep(s, wh__now_ms(ctx), ctx->conf->log_retention_ms);
    int64_t now_us = wh__mono_us();
    int watch_ms = s->ops->watch_ms ? s->ops->watch_ms : WH__STORE_WATCH_MS;
    if (now_us - ctx->last_change_check_us < (int64_t)watch_ms * 1000)
        return;
    ctx->last_change_check_us = now_us;
    /* leases are judged by the wall clock of every engine, never a host's own clock */
    int64_t wall = wh__wall_ms();
    if (wall - ctx->last_heartbeat_ms >= ctx->conf->store_lease_ms / 3) {
        bool lost = false;
        if (s->ops->heartbeat(s, wall, &lost) == WH_OK)
            ctx->last_heartbeat_ms = wall;
        /* judged dead while alive (stopped longer than the lease): what it still holds in
         * memory may go out twice, once here and once from the engine that took it over;
         * the store keeps only the new holder's outcomes, and receivers de-duplicate by
         * webhook-id */
        (void)lost;
    }
    bool changed = false;
    if (s->ops->changed(s, &changed) == WH_OK && (changed || ctx->resync)) {
        /* our own outcomes (an auto-disable, say) go in before theirs are read back; rows
         * read while ours are not stored would take back what memory knows */
        pthread_mutex_lock(&ctx->ep_lock);
        if (wh__commit_results_locked(ctx) == WH_OK && wh__sync_endpoints(ctx) == WH_OK)
            ctx->resync = false;
        else
            ctx->resync = true;
        pthread_mutex_unlock(&ctx->ep_lock);
    }
    /* deliveries a tool queued, those other engines left, and the work of engines that died */
    claim(ctx, false);
}
