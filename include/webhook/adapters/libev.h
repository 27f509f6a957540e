/* libwebhook in a libev loop, header-only: wh_libev_attach watches wh_fd(ctx) with an ev_io,
 * arms an ev_timer from wh_timeout_ms(ctx), and calls wh_poll(ctx, 0) whenever either fires;
 * wh_libev_detach undoes it. See wh_libev_attach(3). Link with -lwebhook -lev. */
#ifndef WEBHOOK_ADAPTERS_LIBEV_H
#define WEBHOOK_ADAPTERS_LIBEV_H

#include <ev.h>
#include <stdlib.h>

#include "../webhook.h"

typedef struct wh_libev {
    wh_ctx *ctx;
    struct ev_loop *loop;
    ev_io io;
    ev_timer timer;
    int driving;  /* inside wh_poll: a log sink may detach, so look again before re-arming */
    int detached;
} wh_libev;

static inline void wh__libev_stop(wh_libev *a)
{
    ev_io_stop(a->loop, &a->io);
    ev_timer_stop(a->loop, &a->timer);
    free(a);
}

static inline void wh__libev_arm(wh_libev *a)
{
    int ms = wh_timeout_ms(a->ctx);
    ev_timer_stop(a->loop, &a->timer);
    if (ms >= 0) {
        ev_timer_set(&a->timer, ms / 1000.0, 0.);
        ev_timer_start(a->loop, &a->timer);
    }
}

static inline void wh__libev_drive(wh_libev *a)
{
    a->driving = 1;
    wh_poll(a->ctx, 0);
    a->driving = 0;
    if (a->detached)
        wh__libev_stop(a);
    else
        wh__libev_arm(a);
}

static inline void wh__libev_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    wh__libev_drive((wh_libev *)w->data);
}

static inline void wh__libev_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    wh__libev_drive((wh_libev *)w->data);
}

/* Attaches ctx to loop; *out receives the adapter, for wh_libev_detach. WH_OK, or
 * WH_ERR_INVALID, WH_ERR_STATE (wh_start drives ctx), WH_ERR_NOMEM. */
static inline int wh_libev_attach(wh_ctx *ctx, struct ev_loop *loop, wh_libev **out)
{
    if (!ctx || !loop || !out)
        return WH_ERR_INVALID;
    int fd = wh_fd(ctx);
    if (fd < 0)
        return fd;
    wh_libev *a = (wh_libev *)calloc(1, sizeof *a);
    if (!a)
        return WH_ERR_NOMEM;
    a->ctx = ctx;
    a->loop = loop;
    ev_io_init(&a->io, wh__libev_on_io, fd, EV_READ);
    a->io.data = a;
    ev_timer_init(&a->timer, wh__libev_on_timer, 0., 0.);
    a->timer.data = a;
    ev_io_start(loop, &a->io);
    wh__libev_arm(a);
    *out = a;
    return WH_OK;
}

/* Stops both watchers and frees the adapter (at once, or when the wh_poll running now returns
 * if called from a log sink). Call before wh_destroy. NULL is a no-op. */
static inline void wh_libev_detach(wh_libev *a)
{
    if (!a || a->detached)
        return;
    a->detached = 1;
    if (!a->driving)
        wh__libev_stop(a);
}

#endif
