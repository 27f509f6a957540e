/* An endpoint's flow settings (rate limit, ordering) taking effect on the work already
 * queued, and the setter the tests use until wh_endpoint_set stores them. */
#include "ctx.h"
#include "error.h"
#include "ordering.h"
#include "registry.h"

void wh__endpoint_flow_changed(wh_ctx *ctx, wh__endpoint *ep)
{
    /* ordering turned off: what its chains hold goes now; a rate limit turned off lets its
     * waiting deliveries go at the endpoint's next turn, which comes at once */
    wh__order_endpoint_changed(&ctx->order, &ctx->sched, ep);
    if (ep->rate_waiting)
        wh__sched_rate_grant(&ctx->sched, ep, 0, 0);
    wh__wake(ctx);
}

int wh__endpoint_flow_set(wh_ctx *ctx, const char *id, double rate_limit_per_s, bool ordering_run)
{
    if (!ctx || !id)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx, id: must not be NULL");
    if (!(rate_limit_per_s >= 0))
        return wh__fail(NULL, 0, WH_ERR_INVALID, "rate_limit: must be 0 or more");
    pthread_mutex_lock(&ctx->lock);
    wh__endpoint *ep = wh__registry_find(ctx->reg, id);
    if (ep) {
        ep->rate_limit_per_s = rate_limit_per_s;
        ep->ordering_run = ordering_run;
        wh__endpoint_flow_changed(ctx, ep);
    }
    pthread_mutex_unlock(&ctx->lock);
    return ep ? WH_OK : wh__fail(NULL, 0, WH_ERR_NOTFOUND, "no endpoint \"%.63s\"", id);
}
