/* The libevent adapter, <webhook/adapters/libevent.h>: real, signed events to a real receiver on
 * 127.0.0.1 with only a libevent loop driving, retries included; detaching leaves the loop
 * with nothing to watch, also from a log sink; attaching fails cleanly (see loop_test.h). */
#include <event2/event.h>

#include "loop_test.h"
#include "webhook/adapters/libevent.h"

typedef struct {
    struct event_base *base;
    struct event *wake;
} levent_host;

static void levent_wake(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what, (void)ud;
}

static void *levent_create(void)
{
    levent_host *h = calloc(1, sizeof *h);
    h->base = event_base_new();
    ck_assert_ptr_nonnull(h->base);
    h->wake = event_new(h->base, -1, EV_PERSIST, levent_wake, NULL);
    event_add(h->wake, &(struct timeval){0, 100000});
    return h;
}

static int levent_attach(void *loop, wh_ctx *ctx, void **adapter)
{
    wh_libevent *a = NULL;
    int rc = wh_libevent_attach(ctx, ((levent_host *)loop)->base, adapter ? &a : NULL);
    if (adapter)
        *adapter = a;
    return rc;
}

static void levent_detach(void *adapter) { wh_libevent_detach(adapter); }
static void levent_run_once(void *loop) { event_base_loop(((levent_host *)loop)->base, EVLOOP_ONCE); }

static bool levent_still_watching(void *loop)
{
    levent_host *h = loop;
    event_free(h->wake);
    h->wake = NULL;
    /* 1: "no events were pending or active" */
    return event_base_loop(h->base, EVLOOP_NONBLOCK) != 1;
}

static void levent_destroy(void *loop)
{
    levent_host *h = loop;
    event_base_free(h->base);
    free(h);
}

static const loop_ops libevent_ops = {
    .name = "libevent",
    .create = levent_create,
    .attach = levent_attach,
    .detach = levent_detach,
    .run_once = levent_run_once,
    .still_watching = levent_still_watching,
    .destroy = levent_destroy,
};

int main(void) { return loop_suite(&libevent_ops); }
