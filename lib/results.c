/* Outcomes on their way to the store: queued under the context lock as attempts end, with
 * the endpoint changes their verdicts made, and committed in batches by the driver (or first
 * thing by an endpoint call, so that none of them lands after it and undoes it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "error.h"
#include "event.h"
#include "logsink.h"
#include "notice.h"
#include "registry.h"
#include "store.h"
#include "unfolded.h"
#include "util.h"

void wh__queue_result(wh_ctx *ctx, const wh__delivery *d, int state, int64_t next_ms,
                      wh__record *rec)
{
    ctx->queued_seq++;
    if (ctx->results_n == ctx->results_cap) {
        size_t cap = ctx->results_cap ? ctx->results_cap * 2 : 64;
        wh__pending_result *v = realloc(ctx->results, cap * sizeof *v);
        if (!v) {
            wh__record_free(rec);
            return; /* stays pending in a durable store and is tried again after a restart */
        }
        ctx->results = v, ctx->results_cap = cap;
    }
    if (!ctx->results_n)
        ctx->results_since_us = wh__mono_us();
    wh__pending_result *p = &ctx->results[ctx->results_n++];
    memset(p, 0, sizeof *p);
    wh__result *r = &p->r;
    r->event_seq = 0; /* read at the commit: a logged event has it once folded */
    snprintf(r->event_id, sizeof r->event_id, "%s", d->ev->id);
    snprintf(r->endpoint_id, sizeof r->endpoint_id, "%s", d->ep->id);
    r->skip_only = d->skip_only;
    r->state = state;
    r->attempts = d->attempts;
    r->next_ms = next_ms;
    r->event_body = d->ev->body;
    r->event_body_len = d->ev->body_len;
    p->ev = d->ev;
    wh__event_ref(d->ev);
    p->rec = rec;
}

void wh__queue_change(wh_ctx *ctx, const wh__endpoint_change *c)
{
    ctx->queued_seq++;
    if (ctx->changes_n == ctx->changes_cap) {
        size_t cap = ctx->changes_cap ? ctx->changes_cap * 2 : 16;
        wh__endpoint_change *v = realloc(ctx->changes, cap * sizeof *v);
        if (!v) {
            free((char *)c->reason);
            return; /* memory has it; the store hears of the next one */
        }
        ctx->changes = v, ctx->changes_cap = cap;
    }
    if (!ctx->results_n && !ctx->changes_n)
        ctx->results_since_us = wh__mono_us();
    ctx->changes[ctx->changes_n++] = *c;
}

static void free_changes(wh__endpoint_change *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)c[i].reason);
    free(c);
}

int wh__commit_results(wh_ctx *ctx)
{
    pthread_mutex_lock(&ctx->ep_lock);
    int rc = wh__commit_results_locked(ctx);
    pthread_mutex_unlock(&ctx->ep_lock);
    return rc;
}

int wh__commit_results_locked(wh_ctx *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    uint64_t upto = ctx->queued_seq; /* what this commit takes */
    wh__pending_result *p = ctx->results;
    size_t n = ctx->results_n;
    wh__endpoint_change *c = ctx->changes;
    size_t nc = ctx->changes_n;
    ctx->results = NULL;
    ctx->results_n = ctx->results_cap = 0;
    ctx->changes = NULL;
    ctx->changes_n = ctx->changes_cap = 0;
    ctx->committing++;
    pthread_mutex_unlock(&ctx->lock);
    wh__result local[64], *r = n <= 64 ? local : malloc(n * sizeof *r);
    int rc = r ? WH_OK : wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    /* an outcome's event is in the store's tables before the outcome */
    if (rc == WH_OK && wh__unfolded_count(ctx))
        rc = wh__unfolded_fold(ctx);
    for (size_t i = 0; rc == WH_OK && i < n; i++) {
        r[i] = p[i].r;
        r[i].event_seq = __atomic_load_n(&p[i].ev->seq, __ATOMIC_ACQUIRE);
        r[i].attempt = p[i].rec ? &p[i].rec->a : NULL; /* the outbox keeps the record alive */
    }
    if (rc == WH_OK && (n || nc))
        rc = ctx->store->ops->results(ctx->store, r, n, c, nc);
    if (r != local)
        free(r);
    pthread_mutex_lock(&ctx->lock);
    ctx->committing--;
    if (rc != WH_OK) {
        /* kept, in order, for the next try; nobody is told of them meanwhile, and no new
         * attempt starts until they are stored (see dispatch) */
        wh__pending_result *all = realloc(p, (n + ctx->results_n + 1) * sizeof *all);
        wh__endpoint_change *allc = realloc(c, (nc + ctx->changes_n + 1) * sizeof *allc);
        if (all) {
            if (ctx->results_n)
                memcpy(all + n, ctx->results, ctx->results_n * sizeof *all);
            free(ctx->results);
            ctx->results = all;
            ctx->results_n += n;
            ctx->results_cap = ctx->results_n;
            p = NULL, n = 0;
        }
        if (allc) {
            if (ctx->changes_n)
                memcpy(allc + nc, ctx->changes, ctx->changes_n * sizeof *allc);
            free(ctx->changes);
            ctx->changes = allc;
            ctx->changes_n += nc;
            ctx->changes_cap = ctx->changes_n + 1;
            c = NULL, nc = 0;
        }
        __atomic_store_n(&ctx->commit_failing, true, __ATOMIC_RELEASE); /* dispatch reads it unlocked */
        ctx->commit_retry_us = wh__mono_us() + 100000;
    } else {
        __atomic_store_n(&ctx->commit_failing, false, __ATOMIC_RELEASE);
        wh__notices_stored(ctx, upto, c, nc);
        /* stored: the sinks may hear of them now, in the order they were made */
        for (size_t i = 0; i < n; i++)
            if (p[i].rec) {
                wh__emit_record(ctx, p[i].rec);
                p[i].rec = NULL;
            }
    }
    pthread_mutex_unlock(&ctx->lock);
    for (size_t i = 0; i < n; i++) {
        wh__record_free(p[i].rec); /* outcomes given up on (no memory to keep them) */
        wh__event_unref(p[i].ev);
    }
    free(p);
    free_changes(c, nc);
    return rc;
}
