/* An endpoint's flow settings (rate limit, ordering) taking effect on the work already
 * queued. */
#include "ctx.h"
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
