/* libwebhook in a libevent 2 loop, header-only: wh_libevent_attach watches wh_fd(ctx) with a
 * persistent read event, arms a timer event from wh_timeout_ms(ctx), and calls wh_poll(ctx, 0)
 * whenever either fires; wh_libevent_detach undoes it. See wh_libevent_attach(3).
 * Link with -lwebhook -levent. */
#ifndef WEBHOOK_ADAPTERS_LIBEVENT_H
#define WEBHOOK_ADAPTERS_LIBEVENT_H

#include <event2/event.h>
#include <stdlib.h>

#include "../webhook.h"

typedef struct wh_libevent {
    wh_ctx *ctx;
    struct event *io, *timer;
    int driving;  /* inside wh_poll: a log sink may detach, so look again before re-arming */
    int detached;
} wh_libevent;

static inline void wh__libevent_free(wh_libevent *a)
{
    if (a->io)
        event_free(a->io);
    if (a->timer)
        event_free(a->timer);
    free(a);
}

static inline void wh__libevent_arm(wh_libevent *a)
{
    int ms = wh_timeout_ms(a->ctx);
    if (ms < 0) {
        evtimer_del(a->timer);
    } else {
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        evtimer_add(a->timer, &tv);
    }
}

static inline void wh__libevent_drive(evutil_socket_t fd, short what, void *ud)
{
    wh_libevent *a = (wh_libevent *)ud;
    (void)fd;
    (void)what;
    a->driving = 1;
    wh_poll(a->ctx, 0);
    a->driving = 0;
    if (a->detached)
        wh__libevent_free(a);
    else
        wh__libevent_arm(a);
}

/* Attaches ctx to base; *out receives the adapter, for wh_libevent_detach. WH_OK, or
 * WH_ERR_INVALID, WH_ERR_STATE (wh_start drives ctx), WH_ERR_NOMEM, WH_ERR_IO. */
static inline int wh_libevent_attach(wh_ctx *ctx, struct event_base *base, wh_libevent **out)
{
    if (!ctx || !base || !out)
        return WH_ERR_INVALID;
    int fd = wh_fd(ctx);
    if (fd < 0)
        return fd;
    wh_libevent *a = (wh_libevent *)calloc(1, sizeof *a);
    if (!a)
        return WH_ERR_NOMEM;
    a->ctx = ctx;
    a->io = event_new(base, fd, EV_READ | EV_PERSIST, wh__libevent_drive, a);
    a->timer = evtimer_new(base, wh__libevent_drive, a);
    if (!a->io || !a->timer || event_add(a->io, NULL) != 0) {
        wh__libevent_free(a);
        return WH_ERR_IO;
    }
    wh__libevent_arm(a);
    *out = a;
    return WH_OK;
}

/* Removes both events and frees the adapter (at once, or when the wh_poll running now returns
 * if called from a log sink). Call before wh_destroy. NULL is a no-op. */
static inline void wh_libevent_detach(wh_libevent *a)
{
    if (!a || a->detached)
        return;
    a->detached = 1;
    if (!a->driving)
        wh__libevent_free(a);
}

#endif
