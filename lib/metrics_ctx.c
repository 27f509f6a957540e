/* A context's metrics: one snapshot of every endpoint's counters, taken under the lock and
 * reported without it (callbacks and I/O never run under an internal lock). */
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "error.h"
#include "metrics.h"
#include "registry.h"
#include "util.h"

static int snapshot(wh_ctx *ctx, wh__metrics_entry **out, size_t *n_out, uint64_t *emitted)
{
    pthread_mutex_lock(&ctx->lock);
    size_t n = wh__registry_count(ctx->reg);
    wh__metrics_entry *e = calloc(n ? n : 1, sizeof *e);
    size_t taken = 0;
    for (; e && taken < n; taken++) {
        const wh__endpoint *ep = wh__registry_at(ctx->reg, taken);
        wh__metrics_entry *x = &e[taken];
        snprintf(x->id, sizeof x->id, "%s", ep->id);
        x->enabled = ep->enabled;
        wh__metrics_entry_from(x, &ep->metrics, ep->in_flight > 0 ? (uint64_t)ep->in_flight : 0);
        if (!(x->url = wh__strdup(ep->url)))
            break;
    }
    *emitted = __atomic_load_n(&ctx->stats.emitted, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&ctx->lock);
    if (!e || taken < n) {
        if (e)
            wh__metrics_entries_free(e, taken);
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "metrics: out of memory");
    }
    for (size_t i = 0; i < n; i++)
        wh__metrics_publish(&e[i]);
    *out = e;
    *n_out = n;
    return WH_OK;
}

int wh_metrics_list(wh_ctx *ctx, void (*cb)(void *ud, const wh_endpoint_metrics *m), void *ud)
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    wh__metrics_entry *e;
    size_t n;
    uint64_t emitted;
    int rc = snapshot(ctx, &e, &n, &emitted);
    if (rc != WH_OK)
        return rc;
    for (size_t i = 0; cb && i < n; i++)
        cb(ud, &e[i].pub);
    wh__metrics_entries_free(e, n);
    return (int)n;
}

int wh_metrics_write(wh_ctx *ctx, FILE *out)
{
    wh__clear_error();
    if (!ctx || !out)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "%s: is NULL", ctx ? "out" : "ctx");
    wh__metrics_entry *e;
    size_t n;
    wh__metrics_totals t = {.has_in_flight = true};
    int rc = snapshot(ctx, &e, &n, &t.emitted);
    if (rc != WH_OK)
        return rc;
    rc = wh__metrics_prometheus(out, e, n, &t);
    wh__metrics_entries_free(e, n);
    return rc;
}
