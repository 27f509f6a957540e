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
#include "pool.h"
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
    wh__delivery *d = wh__pool_alloc(ctx->pool, sizeof *d);
    if (!d)
        return NULL;
    memset(d, 0, sizeof *d);
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

/* Without the lock: each delivery is scheduled when `keep` says so, else freed; returns how
 * many were scheduled. */
static size_t schedule_kept(wh_ctx *ctx, wh__delivery **ds, size_t n, bool ok,
                            const wh__delivery_row *rows, int *already)
{
    pthread_mutex_lock(&ctx->lock);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        /* a redelivery pending already (in another engine) is not made twice */
        bool keep = ok && (!rows || rows[i].accepted);
        /* room was made by wh__delivery_new; a new event's deliveries keep their runs' order
         * (a redelivery keeps none) */
        if (keep && !rows)
            wh__order_admit(&ctx->order, &ctx->sched, ds[i], wh__order_asks_store(ctx));
        else if (keep)
            wh__sched_push(&ctx->sched, ds[i]);
        else
            wh__delivery_free(ctx, ds[i]);
        if (ok && !keep && already)
            (*already)++;
        kept += keep;
    }
    pthread_mutex_unlock(&ctx->lock);
    if (kept)
        wh__wake(ctx);
    return kept;
}

int wh__deliveries_commit(wh_ctx *ctx, wh__delivery **ds, size_t *n, int64_t now_ms,
                          int *already)
{
    if (!*n)
        return WH_OK;
    wh__store *s = ctx->store;
    int rc = WH_OK;
    wh__delivery_row local_rows[16], *rows = local_rows;
    if (*n > 16 && !(rows = malloc(*n * sizeof *rows))) {
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
    } else {
        for (size_t i = 0; i < *n; i++)
            rows[i] = (wh__delivery_row){.event_seq = ds[i]->ev->seq, .event_id = ds[i]->ev->id,
                                         .endpoint_id = ds[i]->ep->id, .next_ms = ds[i]->next_ms};
        rc = s->ops->deliveries_add(s, rows, *n, now_ms);
    }
    *n = schedule_kept(ctx, ds, *n, rc == WH_OK, rc == WH_OK ? rows : NULL, already);
    if (rows != local_rows)
        free(rows);
    return rc;
}

/* Stores a new event with its deliveries and schedules them; with the caller's id (dedup),
 * an event stored already under it keeps them from being made again: *sendable is then the
 * first emit's and *duplicate set. */
static int commit_event(wh_ctx *ctx, wh__event *ev, wh__delivery **ds, size_t n, int64_t now_ms,
                        bool dedup, int *sendable, bool *duplicate)
{
    *duplicate = false;
    if (!n && !dedup)
        return WH_OK; /* nothing to send, nothing to remember */
    wh__store *s = ctx->store;
    wh__target local[16], *targets = local;
    if (n > 16 && !(targets = malloc(n * sizeof *targets))) {
        schedule_kept(ctx, ds, n, false, NULL, NULL);
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
    }
    for (size_t i = 0; i < n; i++)
        targets[i] = (wh__target){.endpoint_id = ds[i]->ep->id, .skip_only = ds[i]->skip_only};
    wh__event_row row = {.id = ev->id, .type = ev->type, .body = ev->body,
                         .body_len = ev->body_len, .created_ms = now_ms, .sendable = *sendable,
                         .run_id = ev->run_id,
                         .dedup_id = dedup ? ev->id : NULL,
                         .dedup_after_ms = now_ms - ctx->conf->dedup_window_ms};
    int rc = s->ops->event_add(s, &row, targets, n);
    ev->seq = row.seq;
    if (targets != local)
        free(targets);
    if (rc == WH_OK && row.duplicate) {
        *duplicate = true;
        *sendable = row.sendable;
    }
    schedule_kept(ctx, ds, n, rc == WH_OK && !row.duplicate, NULL, NULL);
    return rc;
}

int wh__emit_event(wh_ctx *ctx, wh__event *e, const char *exclude, bool dedup, int64_t now)
{
    int rc = WH_OK;
    dedup = dedup && ctx->conf->dedup_window_ms > 0;
    int ti = wh__registry_type_index(ctx->reg, e->type);
    wh__delivery *local[16], **ds = local;
    int sendable = 0;
    pthread_mutex_lock(&ctx->lock);
    size_t n;
    wh__endpoint *const *eps = wh__registry_match(ctx->reg, ti, &n);
    wh__endpoint *kept[16], **subs = (wh__endpoint **)eps;
    if (exclude && n) {
        /* an operational event is never about its own receiver */
        size_t k = 0;
        subs = n <= 16 ? kept : malloc(n * sizeof *subs);
        if (!subs) {
            pthread_mutex_unlock(&ctx->lock);
            return wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
        }
        for (size_t i = 0; i < n; i++)
            if (strcmp(eps[i]->id, exclude) != 0)
                subs[k++] = eps[i];
        n = k;
    }
    if (ctx->live_deliveries + n > ctx->conf->max_pending) {
        uint64_t pending = ctx->live_deliveries;
        pthread_mutex_unlock(&ctx->lock);
        if (subs != eps && subs != kept)
            free(subs);
        return wh__fail(NULL, 0, WH_ERR_FULL, "queue.max_pending: %llu deliveries already pending",
                        (unsigned long long)pending);
    }
    if (n > 16 && !(ds = malloc(n * sizeof *ds)))
        rc = WH_ERR_NOMEM;
    size_t made = 0;
    for (; rc == WH_OK && made < n; made++) {
        if (!(ds[made] = wh__delivery_new(ctx, e, subs[made], now))) {
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
    if (subs != eps && subs != kept)
        free(subs);
    bool duplicate = false;
    if (rc == WH_OK)
        rc = commit_event(ctx, e, ds, n, now, dedup, &sendable, &duplicate);
    if (ds != local)
        free(ds);
    if (rc != WH_OK)
        return rc == WH_ERR_NOMEM ? wh__fail(NULL, 0, rc, "event: out of memory") : rc;
    if (!duplicate)
        __atomic_add_fetch(&ctx->stats.emitted, 1, __ATOMIC_RELAXED);
    return sendable;
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
    int rc = WH_OK;
    if (ev && ev->id)
        snprintf(id, sizeof id, "%s", ev->id); /* one too long is refused by the build */
    else
        rc = wh__new_id("evt_", id);
    if (rc == WH_OK)
        rc = wh__payload_build(ctx->reg, ev, id, now, &body, &body_len, NULL, 0);
    if (rc != WH_OK)
        return rc;
    wh__event *e = wh__event_new(ctx->pool, id, ev->event_type, ev->run_id, ev->task_id, body,
                                 body_len); /* ours until the end */
    free(body);
    if (!e)
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
    int sendable = wh__emit_event(ctx, e, NULL, ev->id != NULL, now);
    if (sendable < 0) {
        wh__event_unref(e);
        return sendable;
    }
    if (event_id_out)
        memcpy(event_id_out, id, WH_ID_MAX);
    wh__event_unref(e);
    return sendable;
}
