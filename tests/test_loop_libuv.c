/* The libuv adapter, <webhook/adapters/libuv.h>: real, signed events to a real receiver on
 * 127.0.0.1 with only a libuv loop driving, retries included; detaching leaves the loop
 * with nothing to watch, also from a log sink; attaching fails cleanly (see loop_test.h). */
#include <uv.h>

#include "loop_test.h"
#include "webhook/adapters/libuv.h"

typedef struct {
    uv_loop_t loop;
    uv_timer_t wake;
} luv_host;

static void luv_wake(uv_timer_t *t) { (void)t; }

static void *luv_create(void)
{
    luv_host *h = calloc(1, sizeof *h);
    ck_assert_int_eq(uv_loop_init(&h->loop), 0);
    uv_timer_init(&h->loop, &h->wake);
    uv_timer_start(&h->wake, luv_wake, 100, 100);
    return h;
}

static int luv_attach(void *loop, wh_ctx *ctx, void **adapter)
{
    wh_libuv *a = NULL;
    int rc = wh_libuv_attach(ctx, &((luv_host *)loop)->loop, adapter ? &a : NULL);
    if (adapter)
        *adapter = a;
    return rc;
}

static void luv_detach(void *adapter) { wh_libuv_detach(adapter); }
static void luv_run_once(void *loop) { uv_run(&((luv_host *)loop)->loop, UV_RUN_ONCE); }

static bool luv_still_watching(void *loop)
{
    luv_host *h = loop;
    uv_close((uv_handle_t *)&h->wake, NULL);
    for (int i = 0; i < 5; i++)
        uv_run(&h->loop, UV_RUN_NOWAIT);
    return uv_loop_alive(&h->loop) != 0;
}

static void luv_destroy(void *loop)
{
    luv_host *h = loop;
    ck_assert_int_eq(uv_loop_close(&h->loop), 0); /* fails while a handle is open */
    free(h);
}

static const loop_ops libuv_ops = {
    .name = "libuv",
    .create = luv_create,
    .attach = luv_attach,
    .detach = luv_detach,
    .run_once = luv_run_once,
    .still_watching = luv_still_watching,
    .destroy = luv_destroy,
};

int main(void) { return loop_suite(&libuv_ops); }
