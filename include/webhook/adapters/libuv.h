/* libwebhook in a libuv loop, header-only: wh_libuv_attach watches wh_fd(ctx) with a uv_poll_t,
 * arms a uv_timer_t from wh_timeout_ms(ctx), and calls wh_poll(ctx, 0) whenever either fires;
 * wh_libuv_detach undoes it. See wh_libuv_attach(3). Link with -lwebhook -luv. */
#ifndef WEBHOOK_ADAPTERS_LIBUV_H
#define WEBHOOK_ADAPTERS_LIBUV_H

#include <stdint.h>
#include <stdlib.h>
#include <uv.h>

#include "../webhook.h"

typedef struct wh_libuv {
    wh_ctx *ctx;
    uv_poll_t io;
    uv_timer_t timer;
    int driving;  /* inside wh_poll: a log sink may detach, so look again before re-arming */
    int detached;
    int open;     /* handles not yet closed; the last close callback frees the adapter */
} wh_libuv;

static inline void wh__libuv_closed(uv_handle_t *h)
{
    wh_libuv *a = (wh_libuv *)h->data;
    if (--a->open == 0)
        free(a);
}

static inline void wh__libuv_close(wh_libuv *a)
{
    uv_close((uv_handle_t *)&a->io, wh__libuv_closed);
    uv_close((uv_handle_t *)&a->timer, wh__libuv_closed);
}

static inline void wh__libuv_on_timer(uv_timer_t *t);

static inline void wh__libuv_arm(wh_libuv *a)
{
    int ms = wh_timeout_ms(a->ctx);
    if (ms < 0)
        uv_timer_stop(&a->timer);
    else
        uv_timer_start(&a->timer, wh__libuv_on_timer, (uint64_t)ms, 0);
}

static inline void wh__libuv_drive(wh_libuv *a)
{
    a->driving = 1;
    wh_poll(a->ctx, 0);
    a->driving = 0;
    if (a->detached)
        wh__libuv_close(a);
    else
        wh__libuv_arm(a);
}

static inline void wh__libuv_on_timer(uv_timer_t *t)
{
    wh__libuv_drive((wh_libuv *)t->data);
}

static inline void wh__libuv_on_io(uv_poll_t *p, int status, int events)
{
    (void)status; /* on an error too, wh_poll is what finds out and reports it */
    (void)events;
    wh__libuv_drive((wh_libuv *)p->data);
}

/* Attaches ctx to loop; *out receives the adapter, for wh_libuv_detach. WH_OK, or
 * WH_ERR_INVALID, WH_ERR_STATE (wh_start drives ctx), WH_ERR_NOMEM, WH_ERR_IO. */
static inline int wh_libuv_attach(wh_ctx *ctx, uv_loop_t *loop, wh_libuv **out)
{
    if (!ctx || !loop || !out)
        return WH_ERR_INVALID;
    int fd = wh_fd(ctx);
    if (fd < 0)
        return fd;
    wh_libuv *a = (wh_libuv *)calloc(1, sizeof *a);
    if (!a)
        return WH_ERR_NOMEM;
    a->ctx = ctx;
    if (uv_poll_init(loop, &a->io, fd) != 0) {
        free(a);
        return WH_ERR_IO;
    }
    a->io.data = a;
    a->open = 1;
    uv_timer_init(loop, &a->timer); /* cannot fail */
    a->timer.data = a;
    a->open = 2;
    if (uv_poll_start(&a->io, UV_READABLE, wh__libuv_on_io) != 0) {
        wh__libuv_close(a);
        return WH_ERR_IO;
    }
    wh__libuv_arm(a);
    *out = a;
    return WH_OK;
}

/* Stops watching and closes both handles; the adapter is freed by their close callbacks, on
 * the loop's next turn. Call before wh_destroy; also fine from a log sink. NULL is a no-op. */
static inline void wh_libuv_detach(wh_libuv *a)
{
    if (!a || a->detached)
        return;
    a->detached = 1;
    if (!a->driving)
        wh__libuv_close(a);
}

#endif
