/* Driving delivery: wh_poll, wh_flush, wh_fd + wh_timeout_ms, or wh_start/wh_stop on the
 * one driving thread. One thread drives at a time; it runs turns (drive.c) and waits on the
 * wh_fd's descriptors in between. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "ctx.h"
#include "drive.h"
#include "error.h"
#include "scheduler.h"
#include "store.h"
#include "util.h"

static int next_wait_ms(wh_ctx *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    int64_t w = wh__sched_wait_ms(&ctx->sched, wh__now_ms(ctx));
    bool uncommitted = ctx->results_n || ctx->changes_n; /* endpoint calls commit them too */
    pthread_mutex_unlock(&ctx->lock);
    int t = ctx->tr.timeout_ms ? ctx->tr.timeout_ms(ctx->tr.ud) : -1;
    if (t >= 0 && (w < 0 || t < w))
        w = t;
    /* a durable store is also watched for other processes' changes and work, and outcomes
     * waiting for their commit must not wait longer than the batch delay */
    bool durable = ctx->store->ops->durable;
    int watch = ctx->store->ops->watch_ms ? ctx->store->ops->watch_ms : WH__STORE_WATCH_MS;
    if (durable && (w < 0 || w > watch))
        w = watch;
    if (durable && uncommitted && (w < 0 || w > WH__RESULTS_DELAY_MS))
        w = WH__RESULTS_DELAY_MS;
    return w > INT_MAX ? INT_MAX : (int)w;
}

static void arm_timer(wh_ctx *ctx)
{
    if (!ctx->fd_mode)
        return; /* wh_poll and wh_start compute their own waits */
    int w = next_wait_ms(ctx);
    struct itimerspec its = {0};
    if (w >= 0) {
        its.it_value.tv_sec = w / 1000;
        its.it_value.tv_nsec = (long)(w % 1000) * 1000000L + (w == 0); /* 0 would disarm */
    }
    timerfd_settime(ctx->tfd, 0, &its, NULL);
}

/* Drives until something finished, the timeout passes (-1: never), stop is asked, or (when
 * `wakeable`) wh_wakeup is called. */
static int poll_core(wh_ctx *ctx, int timeout_ms, bool watch_stop, bool wakeable)
{
    int64_t deadline_us = timeout_ms > 0 ? wh__mono_us() + (int64_t)timeout_ms * 1000 : 0;
    int total = 0;
    for (;;) {
        total += wh__drive_turn(ctx);
        /* taken after the turn, which drains the eventfd: a wakeup after this is still
         * pending there and ends the wait below */
        if (wakeable && __atomic_exchange_n(&ctx->wakeup_requested, 0, __ATOMIC_ACQ_REL))
            break;
        if (total > 0 || timeout_ms == 0)
            break;
        if (watch_stop && __atomic_load_n(&ctx->stop_requested, __ATOMIC_ACQUIRE))
            break;
        int w = next_wait_ms(ctx);
        if (timeout_ms > 0) {
            int64_t left = (deadline_us - wh__mono_us() + 999) / 1000;
            if (left <= 0)
                break;
            if (w < 0 || w > left)
                w = (int)left;
        }
        struct epoll_event evs[8];
        if (epoll_wait(ctx->epfd, evs, 8, w) < 0 && errno != EINTR)
            return WH_ERR_IO;
    }
    arm_timer(ctx);
    return total;
}

static bool driven_elsewhere(wh_ctx *ctx)
{
    return __atomic_load_n(&ctx->thread_running, __ATOMIC_ACQUIRE) &&
           !pthread_equal(pthread_self(), ctx->thread);
}

/* One thread drives at a time: a second one gets WH_ERR_STATE, never a shared transfer. */
static bool enter_drive(wh_ctx *ctx)
{
    int idle = 0;
    return __atomic_compare_exchange_n(&ctx->driving, &idle, 1, false, __ATOMIC_ACQ_REL,
                                       __ATOMIC_ACQUIRE);
}

static void leave_drive(wh_ctx *ctx) { __atomic_store_n(&ctx->driving, 0, __ATOMIC_RELEASE); }

int wh_poll(wh_ctx *ctx, int timeout_ms)
{
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    if (driven_elsewhere(ctx))
        return wh__fail(NULL, 0, WH_ERR_STATE, "wh_poll: the delivery thread of wh_start drives");
    if (!enter_drive(ctx))
        return wh__fail(NULL, 0, WH_ERR_STATE, "wh_poll: another thread is driving delivery");
    int rc = poll_core(ctx, timeout_ms < 0 ? -1 : timeout_ms, false, true);
    leave_drive(ctx);
    return rc;
}

static bool idle(wh_ctx *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    bool quiet = ctx->sched.in_flight == 0 && ctx->results_n == 0 && ctx->changes_n == 0 &&
                 ctx->committing == 0 && ctx->outbox_n == 0 && ctx->sched.rate_queued == 0 &&
                 wh__sched_wait_ms(&ctx->sched, wh__now_ms(ctx)) != 0;
    pthread_mutex_unlock(&ctx->lock);
    return quiet;
}

static int flush_core(wh_ctx *ctx, int timeout_ms)
{
    int64_t deadline_us = wh__mono_us() + (int64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000;
    for (;;) {
        int rc = poll_core(ctx, 0, false, false);
        if (rc < 0)
            return rc;
        if (idle(ctx))
            return WH_OK;
        int64_t left = (deadline_us - wh__mono_us() + 999) / 1000;
        if (timeout_ms >= 0 && left <= 0)
            return wh__fail(NULL, 0, WH_ERR_TIMEOUT, "wh_flush: deliveries still in flight or due");
        int w = next_wait_ms(ctx);
        if (timeout_ms >= 0 && (w < 0 || w > left))
            w = (int)left;
        if (w < 0 || w > 100)
            w = 100;
        struct epoll_event evs[8];
        epoll_wait(ctx->epfd, evs, 8, w);
    }
}

int wh_flush(wh_ctx *ctx, int timeout_ms)
{
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    if (driven_elsewhere(ctx))
        return wh__fail(NULL, 0, WH_ERR_STATE, "wh_flush: the delivery thread of wh_start drives");
    if (!enter_drive(ctx))
        return wh__fail(NULL, 0, WH_ERR_STATE, "wh_flush: another thread is driving delivery");
    int rc = flush_core(ctx, timeout_ms);
    leave_drive(ctx);
    return rc;
}

int wh_fd(wh_ctx *ctx)
{
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    if (driven_elsewhere(ctx))
        return wh__fail(NULL, 0, WH_ERR_STATE, "wh_fd: the delivery thread of wh_start drives");
    ctx->fd_mode = true;
    arm_timer(ctx);
    return ctx->epfd;
}

int wh_timeout_ms(wh_ctx *ctx)
{
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    if (driven_elsewhere(ctx))
        return wh__fail(NULL, 0, WH_ERR_STATE, "wh_timeout_ms: the delivery thread of wh_start drives");
    return next_wait_ms(ctx);
}

static void *thread_main(void *arg)
{
    wh_ctx *ctx = arg;
    while (!__atomic_load_n(&ctx->stop_requested, __ATOMIC_ACQUIRE)) {
        if (!enter_drive(ctx)) { /* a wh_poll that began before wh_start is finishing */
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
            continue;
        }
        poll_core(ctx, 1000, true, true);
        leave_drive(ctx);
    }
    return NULL;
}

int wh_start(wh_ctx *ctx)
{
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    if (ctx->thread_running)
        return wh__fail(NULL, 0, WH_ERR_STATE, "wh_start: already started");
    __atomic_store_n(&ctx->stop_requested, 0, __ATOMIC_RELEASE);
    pthread_t t;
    if (pthread_create(&t, NULL, thread_main, ctx) != 0)
        return wh__fail(NULL, 0, WH_ERR_IO, "wh_start: could not create the thread");
    ctx->thread = t;
    /* other threads read these to refuse wh_poll and friends while the thread drives */
    __atomic_store_n(&ctx->thread_running, true, __ATOMIC_RELEASE);
    return WH_OK;
}

int wh_stop(wh_ctx *ctx, int flush_timeout_ms)
{
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    if (!ctx->thread_running || pthread_equal(pthread_self(), ctx->thread))
        return wh__fail(NULL, 0, WH_ERR_STATE, "wh_stop: not started (or called from its thread)");
    __atomic_store_n(&ctx->stop_requested, 1, __ATOMIC_RELEASE);
    uint64_t one = 1;
    ssize_t w = write(ctx->evfd, &one, sizeof one);
    (void)w;
    pthread_join(ctx->thread, NULL);
    __atomic_store_n(&ctx->thread_running, false, __ATOMIC_RELEASE);
    /* the caller's thread drives what is left */
    if (flush_timeout_ms <= 0)
        return WH_OK;
    if (!enter_drive(ctx))
        return wh__fail(NULL, 0, WH_ERR_STATE, "wh_stop: another thread is driving delivery");
    int rc = flush_core(ctx, flush_timeout_ms);
    leave_drive(ctx);
    return rc;
}

int wh_wakeup(wh_ctx *ctx)
{
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    /* no lock: a poll waiting holds none, and this must never wait for one */
    __atomic_store_n(&ctx->wakeup_requested, 1, __ATOMIC_RELEASE);
    wh__wake(ctx);
    return WH_OK;
}

void wh__drive_shutdown(wh_ctx *ctx)
{
    if (ctx->thread_running && !pthread_equal(pthread_self(), ctx->thread))
        wh_stop(ctx, 0);
}

