/* Emitting: wh_emit from any thread, and the deliveries it (or a redelivery) makes, stored
 * and then scheduled. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "ctx.h"
#include "error.h"
#include "event.h"
#include "metrics.h"
#include "ordering.h"
#include "payload.h"
#include "registry.h"
#include "scheduler.h"
#include "store.h"
#include "util.h"

wh__delivery *wh__delivery_new(wh_ctx *ctx, wh__event *ev, wh__endpoint *ep, int64_t next_ms)
{
    /* the heap always has room for every live delivery: scheduling one that a durable
     * store has already committed can then never fail */
    if (wh__sched_reserve(&ctx->sched, ctx->live_deliveries + 1 - ctx->sched.n) != WH_OK)
        return NULL;
    wh__delivery *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->ev = ev;
    wh__event_ref(ev);
    d->ep = ep;
    ep->refs++;
    d->next_ms = next_ms;
    d->heap_idx = WH__NOT_IN_HEAP;
    d->skip_only = !ep->enabled; /* logged SKIPPED, never sent */
    d->ep_next = ep->live_head;
    if (ep->live_head)
        ep->live_head->ep_prev = d;
    ep->live_head = d;
    d->all_next = ctx->all_head;
    if (ctx->all_head)
        ctx->all_head->all_prev = d;
    ctx->all_head = d;
    ctx->live_deliveries++;
    ep->metrics.live++;
    return d;
}

int wh__deliveries_commit(wh_ctx *ctx, wh__event *ev, wh__delivery **ds, size_t *n,
                          int64_t now_ms, int *already)
{
    if (!*n)
        return WH_OK;
    wh__store *s = ctx->store;
    int rc;
    wh__delivery_row local_rows[16], *rows = local_rows;
    wh__target *targets = (wh__target *)local_rows;
    _Static_assert(sizeof(wh__delivery_row) >= sizeof(wh__target), "targets share the rows' room");
    if (*n > 16 && !(rows = malloc(*n * sizeof *rows))) {
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
    } else if (ev) {
        targets = (wh__target *)rows;
        for (size_t i = 0; i < *n; i++)
            targets[i] = (wh__target){.endpoint_id = ds[i]->ep->id, .skip_only = ds[i]->skip_only};
        wh__event_row row = {.id = ev->id, .type = ev->type, .body = ev->body,
                             .body_len = ev->body_len, .created_ms = now_ms,
                             .run_id = ev->run_id};
        rc = s->ops->event_add(s, &row, targets, *n);
        ev->seq = row.seq;
    } else {
        for (size_t i = 0; i < *n; i++)
            rows[i] = (wh__delivery_row){.event_seq = ds[i]->ev->seq, .event_id = ds[i]->ev->id,
                                         .endpoint_id = ds[i]->ep->id, .next_ms = ds[i]->next_ms};
        rc = s->ops->deliveries_add(s, rows, *n, now_ms);
    }
    pthread_mutex_lock(&ctx->lock);
    size_t kept = 0;
    for (size_t i = 0; i < *n; i++) {
        /* a redelivery pending already (in another engine) is not made twice */
        bool keep = rc == WH_OK && (ev || rows[i].accepted);
        /* room was made by wh__delivery_new; a new event's deliveries keep their runs' order
         * (a redelivery keeps none) */
        if (keep && ev)
            wh__order_admit(&ctx->order, &ctx->sched, ds[i], wh__order_asks_store(ctx));
        else if (keep)
            wh__sched_push(&ctx->sched, ds[i]);
        else
            wh__delivery_free(ctx, ds[i]);
        if (rc == WH_OK && !keep && already)
            (*already)++;
        kept += keep;
    }
    pthread_mutex_unlock(&ctx->lock);
    if (rows != local_rows)
        free(rows);
    *n = kept;
    if (kept)
        wh__wake(ctx);
    return rc;
}

int wh_emit(wh_ctx *ctx, const wh_event *ev, char event_id_out[WH_ID_MAX])
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    int64_t now = wh__now_ms(ctx);
    char id[WH_ID_MAX];
    char *body = NULL;
    size_t body_len = 0;
    int rc = wh__new_id("evt_", id);
    if (rc == WH_OK)
        rc = wh__payload_build(ctx->reg, ev, id, now, &body, &body_len, NULL, 0);
    if (rc != WH_OK)
        return rc;
    /* ours until the end */
    wh__event *e = wh__event_new_run(id, ev->event_type, ev->run_id, body, body_len);
    free(body);
    if (!e)
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
    int ti = wh__registry_type_index(ctx->reg, ev->event_type);

    wh__delivery *local[16], **ds = local;
    int sendable = 0;
    pthread_mutex_lock(&ctx->lock);
    size_t n;
    wh__endpoint *const *eps = wh__registry_match(ctx->reg, ti, &n);
    if (ctx->live_deliveries + n > ctx->conf->max_pending) {
        uint64_t pending = ctx->live_deliveries;
        pthread_mutex_unlock(&ctx->lock);
        wh__event_unref(e);
        return wh__fail(NULL, 0, WH_ERR_FULL, "queue.max_pending: %llu deliveries already pending",
                        (unsigned long long)pending);
    }
    if (n > 16 && !(ds = malloc(n * sizeof *ds)))
        rc = WH_ERR_NOMEM;
    size_t made = 0;
    for (; rc == WH_OK && made < n; made++) {
        if (!(ds[made] = wh__delivery_new(ctx, e, eps[made], now))) {
            rc = WH_ERR_NOMEM;
            break;
        }
        sendable += !ds[made]->skip_only;
    }
    if (rc != WH_OK) {
        /* nothing of a failed emit stays queued */
        while (made-- > 0)
            wh__delivery_free(ctx, ds[made]);
    }
    pthread_mutex_unlock(&ctx->lock);
    if (rc == WH_OK)
        rc = wh__deliveries_commit(ctx, e, ds, &n, now, NULL);
    if (ds != local)
        free(ds);
    if (rc != WH_OK) {
        wh__event_unref(e);
        return rc == WH_ERR_NOMEM ? wh__fail(NULL, 0, rc, "event: out of memory") : rc;
    }
    __atomic_add_fetch(&ctx->stats.emitted, 1, __ATOMIC_RELAXED);
    if (event_id_out)
        memcpy(event_id_out, id, WH_ID_MAX);
    wh__event_unref(e);
    return sendable;
}
