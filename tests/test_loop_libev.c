/* The libev adapter, <webhook/adapters/libev.h>: real, signed events to a real receiver on
 * 127.0.0.1 with only a libev loop driving, retries included; detaching leaves the loop
 * with nothing to watch, also from a log sink; attaching fails cleanly (see loop_test.h). */
#include <ev.h>

#include "loop_test.h"
#include "webhook/adapters/libev.h"

typedef struct {
    struct ev_loop *loop;
    ev_timer wake;
} lev_host;

static void lev_wake(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)w, (void)revents;
}

static void *lev_create(void)
{
    lev_host *h = calloc(1, sizeof *h);
    h->loop = ev_loop_new(EVFLAG_AUTO);
    ck_assert_ptr_nonnull(h->loop);
    ev_timer_init(&h->wake, lev_wake, 0.1, 0.1);
    ev_timer_start(h->loop, &h->wake);
    return h;
}

static int lev_attach(void *loop, wh_ctx *ctx, void **adapter)
{
    wh_libev *a = NULL;
    int rc = wh_libev_attach(ctx, ((lev_host *)loop)->loop, adapter ? &a : NULL);
    if (adapter)
        *adapter = a;
    return rc;
}

static void lev_detach(void *adapter) { wh_libev_detach(adapter); }
static void lev_run_once(void *loop) { ev_run(((lev_host *)loop)->loop, EVRUN_ONCE); }

static bool lev_still_watching(void *loop)
{
    lev_host *h = loop;
    ev_timer_stop(h->loop, &h->wake);
    return ev_run(h->loop, EVRUN_NOWAIT) != 0; /* true while a watcher is active */
}

static void lev_destroy(void *loop)
{
    lev_host *h = loop;
    ev_loop_destroy(h->loop);
    free(h);
}

static const loop_ops libev_ops = {
    .name = "libev",
    .create = lev_create,
    .attach = lev_attach,
    .detach = lev_detach,
    .run_once = lev_run_once,
    .still_watching = lev_still_watching,
    .destroy = lev_destroy,
};

int main(void) { return loop_suite(&libev_ops); }
