/* Emitting: wh_emit from any thread, and the deliveries it (or a redelivery) makes, stored
 * and then scheduled. */
#include <stdint.h>
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
#include "unfolded.h"
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
                            const wh__delivery_row *rows, int *already, bool unchained)
{
    pthread_mutex_lock(&ctx->lock);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        /* a redelivery pending already (in another engine) is not made twice */
        bool keep = ok && (!rows || rows[i].accepted);
        /* room was made by wh__delivery_new; a new event's deliveries keep their runs' order
         * (a redelivery keeps none) */
        if (keep && !rows && !unchained)
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
    *n = schedule_kept(ctx, ds, *n, rc == WH_OK, rc == WH_OK ? rows : NULL, already, false);
    if (rows != local_rows)
        free(rows);
    return rc;
}

/* One event on its way in: the deliveries made for it, and what its emit returns. */
typedef struct {
    wh__event *e;
    wh__delivery **ds, *local[4];
    size_t n;
    int sendable;
    size_t row; /* its row in the store's batch; SIZE_MAX: not stored */
    bool dedup, duplicate;
    bool ordered; /* an endpoint of it orders by run (read under the lock) */
    bool logged;  /* in the store's log: no seq until folded, and in no run's chain */
} emit_item;

/* Under the lock: a delivery per subscribed endpoint (but `exclude`), room permitting. */
static int make_deliveries(wh_ctx *ctx, emit_item *it, const char *exclude, int64_t now)
{
    int ti = wh__registry_type_index(ctx->reg, it->e->type);
    size_t n;
    wh__endpoint *const *eps = wh__registry_match(ctx->reg, ti, &n);
    it->ds = it->local;
    if (n > sizeof it->local / sizeof it->local[0] && !(it->ds = malloc(n * sizeof *it->ds)))
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
    int rc = WH_OK;
    for (size_t i = 0; i < n; i++) {
        /* an operational event is never about its own receiver */
        if (exclude && strcmp(eps[i]->id, exclude) == 0)
            continue;
        if (ctx->live_deliveries + 1 > ctx->conf->max_pending) {
            rc = wh__fail(NULL, 0, WH_ERR_FULL, "queue.max_pending: %llu deliveries already pending",
                          (unsigned long long)ctx->live_deliveries);
            break;
        }
        wh__delivery *d = wh__delivery_new(ctx, it->e, eps[i], now);
        if (!d) {
            rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
            break;
        }
        it->ds[it->n++] = d;
        it->sendable += !d->skip_only;
        it->ordered |= eps[i]->ordering_run;
    }
    return rc;
}

static void free_items(wh_ctx *ctx, emit_item *items, size_t n, bool deliveries)
{
    if (deliveries) {
        pthread_mutex_lock(&ctx->lock);
        for (size_t i = 0; i < n; i++)
            while (items[i].n > 0)
                wh__delivery_free(ctx, items[i].ds[--items[i].n]);
        pthread_mutex_unlock(&ctx->lock);
    }
    for (size_t i = 0; i < n; i++)
        if (items[i].ds != items[i].local)
            free(items[i].ds);
}

/* A batch this large shares its commit among its events already: the log would add its
 * write to the same commit, later (measured: durable batches of 64 at 0.93x the events/s
 * through the log). */
#define LOG_BATCH_MAX 16

/* Into the store's log when it keeps one and no event needs a check or an order of the
 * store's tables (the caller's id, a run kept for ordering); WH_ERR_STATE: not logged. */
static int log_events(wh_ctx *ctx, const emit_item *items, size_t n, const wh__event_add *rows,
                      size_t rows_n)
{
    if (rows_n >= LOG_BATCH_MAX)
        return WH_ERR_STATE;
    for (size_t i = 0; i < rows_n; i++)
        if (rows[i].row.dedup_id || rows[i].row.run_id)
            return WH_ERR_STATE;
    wh__event *local[4], **evs = rows_n <= 4 ? local : malloc(rows_n * sizeof *evs);
    if (!evs)
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
    for (size_t i = 0; i < n; i++)
        if (items[i].row != SIZE_MAX)
            evs[items[i].row] = items[i].e;
    int rc = wh__unfolded_log(ctx, rows, evs, rows_n);
    if (evs != local)
        free(evs);
    return rc;
}

/* Stores the new events with their deliveries in one commit; with the caller's id (dedup),
 * an event stored already under it keeps them from being made again: its sendable is then
 * the first emit's and `duplicate` set. An event with nothing to send and nothing to
 * remember is not stored. */
static int commit_events(wh_ctx *ctx, emit_item *items, size_t n, int64_t now_ms)
{
    size_t targets_n = 0, rows_n = 0;
    for (size_t i = 0; i < n; i++)
        targets_n += items[i].n;
    wh__target local_t[16], *targets = local_t;
    wh__event_add local_r[4], *rows = local_r;
    if ((targets_n > 16 && !(targets = malloc(targets_n * sizeof *targets))) ||
        (n > 4 && !(rows = malloc(n * sizeof *rows)))) {
        if (targets != local_t)
            free(targets);
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        emit_item *it = &items[i];
        it->row = SIZE_MAX;
        if (!it->n && !it->dedup)
            continue; /* nothing to send, nothing to remember */
        wh__event *ev = it->e;
        it->row = rows_n;
        /* the store keeps (and indexes) the run only for an endpoint that orders by it: the
         * others' events cost no index entry */
        bool ordered = it->ordered;
        rows[rows_n++] = (wh__event_add){
            .row = {.id = ev->id, .type = ev->type, .body = ev->body, .body_len = ev->body_len,
                    .created_ms = now_ms, .sendable = it->sendable,
                    .run_id = ordered ? ev->run_id : NULL,
                    .dedup_id = it->dedup ? ev->id : NULL,
                    .dedup_after_ms = now_ms - ctx->conf->dedup_window_ms},
            .targets = targets + k, .n_targets = it->n};
        for (size_t j = 0; j < it->n; j++)
            targets[k++] = (wh__target){.endpoint_id = it->ds[j]->ep->id,
                                        .skip_only = it->ds[j]->skip_only};
    }
    int rc = rows_n ? log_events(ctx, items, n, rows, rows_n) : WH_OK;
    bool logged = rc == WH_OK && rows_n;
    for (size_t i = 0; logged && i < n; i++)
        items[i].logged = items[i].row != SIZE_MAX;
    if (rc == WH_ERR_STATE)
        rc = wh__store_events_add(ctx->store, rows, rows_n);
    /* a logged event has its seq once it is folded (unfolded.h) */
    for (size_t i = 0; rc == WH_OK && !logged && i < n; i++) {
        if (items[i].row == SIZE_MAX)
            continue;
        const wh__event_row *r = &rows[items[i].row].row;
        items[i].e->seq = r->seq;
        if (r->duplicate) {
            items[i].duplicate = true;
            items[i].sendable = r->sendable;
        }
    }
    if (targets != local_t)
        free(targets);
    if (rows != local_r)
        free(rows);
    return rc;
}

int wh__emit_events(wh_ctx *ctx, wh__event *const *es, size_t n, const char *exclude,
                    const bool *dedup, int64_t now, int *sendable_out)
{
    emit_item local[4], *items = n <= 4 ? local : calloc(n, sizeof *items);
    if (!items)
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
    memset(items, 0, (n <= 4 ? 4 : n) * sizeof *items);
    int rc = WH_OK;
    pthread_mutex_lock(&ctx->lock);
    for (size_t i = 0; i < n && rc == WH_OK; i++) {
        items[i].e = es[i];
        items[i].dedup = dedup[i] && ctx->conf->dedup_window_ms > 0;
        rc = make_deliveries(ctx, &items[i], exclude, now);
    }
    pthread_mutex_unlock(&ctx->lock);
    if (rc == WH_OK)
        rc = commit_events(ctx, items, n, now);
    if (rc != WH_OK) {
        /* nothing of a failed emit stays queued */
        free_items(ctx, items, n, true);
        if (items != local)
            free(items);
        return rc;
    }
    int total = 0;
    for (size_t i = 0; i < n; i++) {
        emit_item *it = &items[i];
        /* a logged event ordered by no endpoint when emitted joins no run's chain, which
         * compares seqs (ordering is for events emitted while it is on) */
        schedule_kept(ctx, it->ds, it->n, !it->duplicate, NULL, NULL, it->logged);
        it->n = 0;
        if (!it->duplicate)
            __atomic_add_fetch(&ctx->stats.emitted, 1, __ATOMIC_RELAXED);
        if (sendable_out)
            sendable_out[i] = it->sendable;
        total += it->sendable;
    }
    free_items(ctx, items, n, false);
    if (items != local)
        free(items);
    return total;
}

int wh__emit_event(wh_ctx *ctx, wh__event *e, const char *exclude, bool dedup, int64_t now)
{
    return wh__emit_events(ctx, &e, 1, exclude, &dedup, now, NULL);
}

/* The event as stored and sent: its id (the caller's, or a new one) and its body. */
static int make_event(wh_ctx *ctx, const wh_event *ev, int64_t now, wh__event **out)
{
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
    *out = wh__event_new(ctx->pool, id, ev->event_type, ev->run_id, ev->task_id, body, body_len);
    free(body);
    return *out ? WH_OK : wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
}

int wh_emit(wh_ctx *ctx, const wh_event *ev, char event_id_out[WH_ID_MAX])
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    int64_t now = wh__now_ms(ctx);
    wh__event *e;
    int rc = make_event(ctx, ev, now, &e);
    if (rc != WH_OK)
        return rc;
    int sendable = wh__emit_event(ctx, e, NULL, ev->id != NULL, now);
    if (sendable >= 0 && event_id_out)
        snprintf(event_id_out, WH_ID_MAX, "%s", e->id);
    wh__event_unref(e);
    return sendable;
}

int wh_emit_batch(wh_ctx *ctx, const wh_event *events, size_t n, int *sendable_out,
                  char (*event_ids_out)[WH_ID_MAX])
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    if (!events || n == 0 || n > WH_EMIT_BATCH_MAX)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "n: %zu events (expected 1..%d, and events not NULL)",
                        events ? n : 0, WH_EMIT_BATCH_MAX);
    int64_t now = wh__now_ms(ctx);
    wh__event **es = calloc(n, sizeof *es);
    bool *dedup = calloc(n, sizeof *dedup);
    int rc = es && dedup ? WH_OK : wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
    size_t made = 0;
    /* every event is checked before anything is queued */
    for (; rc == WH_OK && made < n; made++) {
        if ((rc = make_event(ctx, &events[made], now, &es[made])) != WH_OK) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", wh_last_error());
            rc = wh__fail(NULL, 0, rc, "events[%zu]: %s", made, msg);
            break;
        }
        dedup[made] = events[made].id != NULL;
    }
    if (rc == WH_OK)
        rc = wh__emit_events(ctx, es, n, NULL, dedup, now, sendable_out);
    for (size_t i = 0; rc >= 0 && event_ids_out && i < n; i++)
        snprintf(event_ids_out[i], WH_ID_MAX, "%s", es[i]->id);
    for (size_t i = 0; i < made; i++)
        wh__event_unref(es[i]);
    free(es);
    free(dedup);
    return rc;
}
