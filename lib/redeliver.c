/* Sending stored events again: wh_redeliver (one event) and wh_recover (what failed or was
 * skipped for an endpoint since a time), on whatever store the engine has. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "ctx.h"
#include "error.h"
#include "event.h"
#include "registry.h"
#include "unfolded.h"

typedef struct {
    wh_ctx *ctx;
    const char *event_id;
    const char *only_endpoint;
    /* recovery: the event ids already pending to only_endpoint, sorted (one look-up each
     * instead of a walk of every live delivery per event) */
    char (*pending_ids)[WH_ID_MAX];
    size_t n_pending_ids;
    wh__event *ev;
    wh__delivery **ds;
    size_t n, cap;
    int64_t now;
    bool oom, full, endpoint_seen;
    int already;
} redeliver_plan;

static int cmp_ids(const void *a, const void *b) { return strcmp(a, b); }

/* Under the lock: whether event_id is already on its way to ep again. */
static bool pending_to(const redeliver_plan *p, const wh__endpoint *ep)
{
    if (p->pending_ids)
        return bsearch(p->event_id, p->pending_ids, p->n_pending_ids, WH_ID_MAX, cmp_ids) != NULL;
    for (const wh__delivery *d = ep->live_head; d; d = d->ep_next)
        if (strcmp(d->ev->id, p->event_id) == 0)
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
    if (pending_to(p, ep)) {
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
    if (!d) {
        p->oom = true;
    } else {
        d->redelivery = true;
        p->ds[p->n++] = d;
    }
}

static void plan_from_store(void *ud, int64_t seq, const char *type, const char *body, size_t len,
                            const char *endpoint_id)
{
    redeliver_plan *p = ud;
    if (!p->ev) {
        p->ev = wh__event_from_body(p->ctx->pool, p->event_id, type, body, len);
        if (!p->ev) {
            p->oom = true;
            return;
        }
        p->ev->seq = seq;
    }
    pthread_mutex_lock(&p->ctx->lock);
    plan_endpoint(p, endpoint_id);
    pthread_mutex_unlock(&p->ctx->lock);
}

/* Queues event_id again for its endpoints (or one). Returns deliveries queued. */
static int redeliver(wh_ctx *ctx, const char *event_id, const char *endpoint_id,
                     char (*pending_ids)[WH_ID_MAX], size_t n_pending_ids)
{
    redeliver_plan p = {.ctx = ctx, .event_id = event_id, .only_endpoint = endpoint_id,
                        .pending_ids = pending_ids, .n_pending_ids = n_pending_ids,
                        .now = wh__now_ms(ctx)};
    /* an event still in the store's log is looked up in its tables */
    int rc = wh__unfolded_count(ctx) ? wh__unfolded_fold(ctx) : WH_OK;
    if (rc == WH_OK)
        rc = ctx->store->ops->find_event(ctx->store, event_id, plan_from_store, &p);
    rc = rc < 0 ? rc : WH_OK;
    if (rc == WH_OK && p.oom)
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "redeliver: out of memory");
    if (rc == WH_OK && p.full)
        rc = wh__fail(NULL, 0, WH_ERR_FULL, "queue.max_pending: reached; nothing queued");
    if (rc == WH_OK && !p.ev)
        rc = wh__fail(NULL, 0, WH_ERR_NOTFOUND, "event_id: no event \"%.63s\" in the %s", event_id,
                      ctx->store->ops->durable ? "store" : "attempt log");
    if (rc == WH_OK && endpoint_id && !p.endpoint_seen)
        rc = wh__fail(NULL, 0, WH_ERR_NOTFOUND, "endpoint_id: event %.63s never went to \"%.63s\"",
                      event_id, endpoint_id);
    if (rc == WH_OK && endpoint_id && p.n == 0 && !p.already)
        rc = wh__fail(NULL, 0, WH_ERR_NOTFOUND, "endpoint_id: no endpoint \"%.63s\"", endpoint_id);
    size_t n = p.n;
    if (rc != WH_OK) {
        pthread_mutex_lock(&ctx->lock);
        for (size_t i = 0; i < p.n; i++)
            wh__delivery_free(ctx, p.ds[i]);
        pthread_mutex_unlock(&ctx->lock);
    } else {
        rc = wh__deliveries_commit(ctx, p.ds, &n, p.now, &p.already);
    }
    if (p.ev)
        wh__event_unref(p.ev);
    free(p.ds);
    return rc == WH_OK ? (int)n : rc;
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
    return redeliver(ctx, event_id, endpoint_id, NULL, 0);
}

typedef struct {
    char (*ids)[WH_ID_MAX];
    size_t n, cap;
    bool oom;
} id_list;

static void add_id(void *ud, const char *id)
{
    id_list *l = ud;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        void *v = realloc(l->ids, cap * WH_ID_MAX);
        if (!v) {
            l->oom = true;
            return;
        }
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
    /* what is on its way to the endpoint already, looked up once for all its events */
    id_list pending = {0};
    pthread_mutex_lock(&ctx->lock);
    const wh__endpoint *ep = wh__registry_find(ctx->reg, endpoint_id);
    for (const wh__delivery *d = ep ? ep->live_head : NULL; d; d = d->ep_next) {
        if (pending.n == pending.cap) {
            size_t cap = pending.cap ? pending.cap * 2 : 64;
            void *v = realloc(pending.ids, cap * WH_ID_MAX);
            if (!v) {
                pending.oom = true;
                break;
            }
            pending.ids = v, pending.cap = cap;
        }
        snprintf(pending.ids[pending.n++], WH_ID_MAX, "%s", d->ev->id);
    }
    pthread_mutex_unlock(&ctx->lock);
    if (!ep)
        return wh__fail(NULL, 0, WH_ERR_NOTFOUND, "endpoint_id: no endpoint \"%.63s\"", endpoint_id);
    if (pending.oom) {
        free(pending.ids);
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "recover: out of memory");
    }
    if (pending.n)
        qsort(pending.ids, pending.n, WH_ID_MAX, cmp_ids);
    id_list l = {0};
    int rc = ctx->store->ops->find_failed(ctx->store, endpoint_id, since_ms, add_id, &l);
    if (rc >= 0 && l.oom)
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "recover: out of memory");
    /* one redelivery per event, however many of its attempts failed */
    if (l.n)
        qsort(l.ids, l.n, WH_ID_MAX, cmp_ids);
    size_t unique = 0;
    for (size_t i = 0; i < l.n; i++)
        if (!unique || strcmp(l.ids[unique - 1], l.ids[i]) != 0)
            memmove(l.ids[unique++], l.ids[i], WH_ID_MAX);
    l.n = unique;
    int queued = 0;
    for (size_t i = 0; rc >= 0 && i < l.n; i++) {
        int k = redeliver(ctx, l.ids[i], endpoint_id, pending.ids, pending.n);
        if (k > 0)
            queued += k;
        else if (k != WH_ERR_NOTFOUND && k != WH_OK)
            rc = k;
    }
    free(l.ids);
    free(pending.ids);
    return rc < 0 ? rc : queued;
}
