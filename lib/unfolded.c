/* Emits in the store's log, kept in log order until they are folded into its tables. */
#include "unfolded.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "error.h"
#include "util.h"

/* Past this many the emitting thread folds before it logs more: a host that emits without
 * driving delivery does not grow the log and the list without end. */
#define FOLD_AT 4096
#define FOLD_ALONE 8

static void free_entry(wh__unfolded *u)
{
    wh__event_unref(u->ev);
    free(u->targets);
}

/* The entry's own copy of where the event goes: the endpoints may be gone by the fold. */
static int copy_entry(wh__unfolded *u, const wh__event_add *row, wh__event *ev)
{
    size_t bytes = row->n_targets * sizeof *u->targets;
    for (size_t i = 0; i < row->n_targets; i++)
        bytes += strlen(row->targets[i].endpoint_id) + 1;
    u->targets = malloc(bytes ? bytes : 1);
    if (!u->targets)
        return WH_ERR_NOMEM;
    char *ids = (char *)(u->targets + row->n_targets);
    for (size_t i = 0; i < row->n_targets; i++) {
        size_t len = strlen(row->targets[i].endpoint_id) + 1;
        memcpy(ids, row->targets[i].endpoint_id, len);
        u->targets[i] = (wh__target){.endpoint_id = ids, .skip_only = row->targets[i].skip_only};
        ids += len;
    }
    u->n_targets = row->n_targets;
    u->ev = ev;
    u->created_ms = row->row.created_ms;
    u->sendable = row->row.sendable;
    return WH_OK;
}

size_t wh__unfolded_count(wh_ctx *ctx) { return __atomic_load_n(&ctx->unfolded_n, __ATOMIC_RELAXED); }

int64_t wh__unfolded_since_us(wh_ctx *ctx)
{
    return __atomic_load_n(&ctx->unfolded_since_us, __ATOMIC_RELAXED);
}

int wh__unfolded_log(wh_ctx *ctx, const wh__event_add *rows, wh__event *const *events, size_t n)
{
    wh__store *s = ctx->store;
    if (s->ops->version < 7 || !s->ops->events_log)
        return WH_ERR_STATE;
    if (wh__unfolded_count(ctx) + n > FOLD_AT) {
        int rc = wh__unfolded_fold(ctx);
        if (rc != WH_OK)
            return rc;
    }
    wh__unfolded *v = malloc(n * sizeof *v);
    size_t made = 0;
    int rc = v ? WH_OK : WH_ERR_NOMEM;
    for (; rc == WH_OK && made < n; made++)
        if ((rc = copy_entry(&v[made], &rows[made], events[made])) != WH_OK)
            break;
    pthread_mutex_lock(&ctx->unfolded_lock);
    if (rc == WH_OK && ctx->unfolded_n + n > ctx->unfolded_cap) {
        size_t cap = ctx->unfolded_cap ? ctx->unfolded_cap : 64;
        while (cap < ctx->unfolded_n + n)
            cap *= 2;
        wh__unfolded *grown = realloc(ctx->unfolded, cap * sizeof *grown);
        if (grown)
            ctx->unfolded = grown, ctx->unfolded_cap = cap;
        else
            rc = WH_ERR_NOMEM;
    }
    if (rc == WH_OK)
        rc = s->ops->events_log(s, rows, n); /* under the lock: the list keeps the log's order */
    if (rc == WH_OK) {
        for (size_t i = 0; i < n; i++) {
            wh__event_ref(v[i].ev);
            ctx->unfolded[ctx->unfolded_n + i] = v[i];
        }
        if (!ctx->unfolded_n)
            __atomic_store_n(&ctx->unfolded_since_us, wh__mono_us(), __ATOMIC_RELAXED);
        __atomic_store_n(&ctx->unfolded_n, ctx->unfolded_n + n, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&ctx->unfolded_lock);
    if (rc != WH_OK) {
        for (size_t i = 0; i < made; i++)
            free(v[i].targets);
    }
    free(v);
    if (rc == WH_ERR_NOMEM)
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
    return rc;
}

int wh__unfolded_fold(wh_ctx *ctx)
{
    wh__store *s = ctx->store;
    pthread_mutex_lock(&ctx->fold_lock);
    /* the first n entries stay where they are until they are stored: appends only add
     * behind them, and folds take turns. The log is emptied only by a fold that no append
     * overtook; so that emits coming steadily from other threads do not grow it without
     * end, a fold after FOLD_ALONE that left it unemptied keeps them waiting for its
     * commit. */
    bool alone = ctx->folds_unemptied >= FOLD_ALONE;
    pthread_mutex_lock(&ctx->unfolded_lock);
    size_t n = ctx->unfolded_n;
    wh__unfolded *snap = n ? malloc(n * sizeof *snap) : NULL;
    if (snap)
        memcpy(snap, ctx->unfolded, n * sizeof *snap);
    if (!alone)
        pthread_mutex_unlock(&ctx->unfolded_lock);
    wh__event_add *rows = snap ? malloc(n * sizeof *rows) : NULL;
    int rc = !n || rows ? WH_OK : wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
    for (size_t i = 0; rc == WH_OK && i < n; i++) {
        const wh__event *ev = snap[i].ev;
        rows[i] = (wh__event_add){
            .row = {.id = ev->id, .type = ev->type, .body = ev->body, .body_len = ev->body_len,
                    .created_ms = snap[i].created_ms, .sendable = snap[i].sendable},
            .targets = snap[i].targets, .n_targets = snap[i].n_targets};
    }
    if (rc == WH_OK && n) {
        rc = s->ops->events_fold(s, rows, n);
        ctx->folds_unemptied = rc > 0 ? ctx->folds_unemptied + 1 : 0;
        rc = rc > 0 ? WH_OK : rc;
    }
    if (rc == WH_OK && n) {
        for (size_t i = 0; i < n; i++)
            __atomic_store_n(&snap[i].ev->seq, rows[i].row.seq, __ATOMIC_RELEASE);
        if (!alone)
            pthread_mutex_lock(&ctx->unfolded_lock);
        size_t left = ctx->unfolded_n - n;
        memmove(ctx->unfolded, ctx->unfolded + n, left * sizeof *ctx->unfolded);
        __atomic_store_n(&ctx->unfolded_n, left, __ATOMIC_RELAXED);
        /* what was logged during the fold waits from now */
        __atomic_store_n(&ctx->unfolded_since_us, left ? wh__mono_us() : 0, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&ctx->unfolded_lock);
        alone = false;
        for (size_t i = 0; i < n; i++)
            free_entry(&snap[i]);
    }
    if (alone)
        pthread_mutex_unlock(&ctx->unfolded_lock);
    free(rows);
    free(snap);
    pthread_mutex_unlock(&ctx->fold_lock);
    return rc;
}

void wh__unfolded_free(wh_ctx *ctx)
{
    for (size_t i = 0; i < ctx->unfolded_n; i++)
        free_entry(&ctx->unfolded[i]);
    free(ctx->unfolded);
    ctx->unfolded = NULL;
    ctx->unfolded_n = ctx->unfolded_cap = 0;
}
