/* The context: wires conf, registry, scheduler, transport and sinks; statistics and the
 * attempt log. The endpoint calls are endpoint_add.c, endpoint_change.c and endpoint_list.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "ctx.h"
#include "conf.h"
#include "error.h"
#include "event.h"
#include "logsink.h"
#include "notice.h"
#include "pool.h"
#include "registry.h"
#include "scheduler.h"
#include "store.h"
#include "transport.h"
#include "unfolded.h"
#include "util.h"

#define N_BUILTIN WH__N_BUILTIN_TYPES

int64_t wh__now_ms(const wh_ctx *ctx)
{
    return ctx->conf->clock ? ctx->conf->clock(ctx->conf->clock_ud) : wh__wall_ms();
}

static int add_to_epoll(int epfd, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

#define POOL_RESERVE ((size_t)2 << 20) /* bytes faulted in at wh_new */

static void free_ctx(wh_ctx *ctx)
{
    if (ctx->owns_transport_and_sinks) {
        for (size_t i = 0; i < ctx->n_sinks; i++)
            if (ctx->sinks[i].close)
                ctx->sinks[i].close(ctx->sinks[i].ud);
    } else {
        /* wh_new failed: only the file sink is ours, the rest stays the caller's */
        for (size_t i = ctx->n_conf_sinks; i < ctx->n_sinks; i++)
            if (ctx->sinks[i].close)
                ctx->sinks[i].close(ctx->sinks[i].ud);
    }
    if (ctx->tr.destroy && (ctx->owns_transport_and_sinks || !ctx->conf->has_transport))
        ctx->tr.destroy(ctx->tr.ud);
    /* deliveries loaded from a store before a failure in wh_new */
    ctx->closing = true;
    while (ctx->all_head)
        wh__delivery_free(ctx, ctx->all_head);
    wh__order_free(&ctx->order);
    if (ctx->store)
        ctx->store->ops->close(ctx->store);
    wh__registry_free(ctx->reg);
    wh__sched_free(&ctx->sched);
    for (size_t i = 0; i < ctx->results_n; i++)
        wh__event_unref(ctx->results[i].ev);
    free(ctx->results);
    for (size_t i = 0; i < ctx->changes_n; i++)
        free((char *)ctx->changes[i].reason);
    free(ctx->changes);
    free(ctx->unloadable);
    wh__notices_free(ctx);
    for (size_t i = 0; i < ctx->outbox_n; i++)
        wh__record_free(ctx->outbox[i]);
    free(ctx->outbox);
    if (ctx->epfd >= 0)
        close(ctx->epfd);
    if (ctx->evfd >= 0)
        close(ctx->evfd);
    if (ctx->tfd >= 0)
        close(ctx->tfd);
    wh__unfolded_free(ctx);
    pthread_mutex_destroy(&ctx->lock);
    pthread_mutex_destroy(&ctx->ep_lock);
    pthread_mutex_destroy(&ctx->unfolded_lock);
    pthread_mutex_destroy(&ctx->fold_lock);
    wh__pool_destroy(ctx->pool); /* last: every event and delivery is gone */
    free(ctx);
}

wh_ctx *wh_new(wh_conf *conf, char *errstr, size_t errlen)
{
    wh__clear_error();
    bool own_conf = !conf;
    if (own_conf && !(conf = wh_conf_new())) {
        wh__fail(errstr, errlen, WH_ERR_NOMEM, "conf: out of memory");
        return NULL;
    }
    wh_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        wh__fail(errstr, errlen, WH_ERR_NOMEM, "ctx: out of memory");
        if (own_conf)
            wh_conf_destroy(conf);
        return NULL;
    }
    ctx->conf = conf;
    ctx->epfd = ctx->evfd = ctx->tfd = -1;
    pthread_mutex_init(&ctx->lock, NULL);
    pthread_mutex_init(&ctx->ep_lock, NULL);
    pthread_mutex_init(&ctx->unfolded_lock, NULL);
    pthread_mutex_init(&ctx->fold_lock, NULL);

    const char *types[N_BUILTIN + 256 + 1];
    size_t nt = 0;
    for (size_t i = 0; i < N_BUILTIN; i++)
        types[nt++] = wh__builtin_types[i];
    for (char **x = conf->extra_types; x && *x && nt < N_BUILTIN + 256; x++) {
        bool dup = false;
        for (size_t i = 0; i < nt; i++)
            dup |= strcmp(types[i], *x) == 0;
        if (!dup)
            types[nt++] = *x;
    }
    types[nt] = NULL;
    int rc = WH_OK;
    /* the first emits find their memory faulted in (pool.c): room for the events and
     * deliveries of about 1500 1 kB emits, at most 2 kB per pending delivery allowed */
    size_t reserve = conf->max_pending < POOL_RESERVE / 2048 ? (size_t)conf->max_pending * 2048
                                                             : POOL_RESERVE;
    if (!(ctx->reg = wh__registry_new(types)) || !(ctx->pool = wh__pool_new(reserve))) {
        rc = wh__fail(errstr, errlen, WH_ERR_NOMEM, "ctx: out of memory");
        goto fail;
    }
    if (conf->retry_schedule_len == 0) {
        rc = wh__fail(errstr, errlen, WH_ERR_INVALID, "retry.schedule: needs at least one delay");
        goto fail;
    }
    wh__sched_init(&ctx->sched, conf);
    for (size_t i = 0; i < conf->n_sinks; i++)
        ctx->sinks[ctx->n_sinks++] = conf->sinks[i];
    ctx->n_conf_sinks = ctx->n_sinks;
    if (conf->log_file &&
        (rc = wh__file_sink_open(conf->log_file, &ctx->sinks[ctx->n_sinks], errstr, errlen)) != WH_OK)
        goto fail;
    if (conf->log_file)
        ctx->n_sinks++;
    if (conf->has_transport)
        ctx->tr = conf->transport;
    else if ((rc = wh__transport_curl_new(conf, &ctx->tr, errstr, errlen)) != WH_OK)
        goto fail;
    ctx->epfd = epoll_create1(EPOLL_CLOEXEC);
    ctx->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ctx->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    int trfd = ctx->tr.fd ? ctx->tr.fd(ctx->tr.ud) : -1;
    if (ctx->epfd < 0 || ctx->evfd < 0 || ctx->tfd < 0 || add_to_epoll(ctx->epfd, ctx->evfd) ||
        add_to_epoll(ctx->epfd, ctx->tfd) || (trfd >= 0 && add_to_epoll(ctx->epfd, trfd))) {
        rc = wh__fail(errstr, errlen, WH_ERR_IO, "ctx: could not create its file descriptors: %m");
        goto fail;
    }
    if ((rc = wh__store_attach(ctx, errstr, errlen)) != WH_OK)
        goto fail;
    /* success: from here the context owns the conf and what it carried */
    ctx->owns_transport_and_sinks = true;
    conf->has_transport = false;
    conf->n_sinks = 0;
    if (ctx->n_unloadable) /* said once, here: the deliveries wait for a fixed deploy */
        wh__fail(errstr, errlen, WH_ERR_STORE, "%s (endpoints that could not be loaded: %zu)",
                 ctx->unloadable_why, ctx->n_unloadable);
    return ctx;
fail:
    (void)rc;
    free_ctx(ctx);
    if (own_conf)
        wh_conf_destroy(conf);
    return NULL;
}

void wh__delivery_free(wh_ctx *ctx, wh__delivery *d)
{
    /* the next delivery of its run goes (unless everything is being freed) */
    if (d->chain)
        wh__order_leave(&ctx->order, &ctx->sched, d, wh__order_asks_store(ctx), !ctx->closing);
    if (d->ep_prev)
        d->ep_prev->ep_next = d->ep_next;
    else
        d->ep->live_head = d->ep_next;
    if (d->ep_next)
        d->ep_next->ep_prev = d->ep_prev;
    if (d->all_prev)
        d->all_prev->all_next = d->all_next;
    else
        ctx->all_head = d->all_next;
    if (d->all_next)
        d->all_next->all_prev = d->all_prev;
    ctx->live_deliveries--;
    d->ep->metrics.live--;
    wh__event_unref(d->ev);
    wh__endpoint_unref(d->ep);
    wh__pool_free(d);
}


/* Outcomes whose commit failed at the end are not reported: in the store they are still
 * pending, and the next engine attempts them again. */
static void drop_unstored_records(wh_ctx *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    for (size_t k = 0; k < ctx->results_n; k++) {
        wh__record_free(ctx->results[k].rec);
        ctx->results[k].rec = NULL;
    }
    pthread_mutex_unlock(&ctx->lock);
}

void wh_destroy(wh_ctx *ctx)
{
    if (!ctx)
        return;
    wh__drive_shutdown(ctx);
    /* no request may still point at an event body once they are freed */
    if (ctx->tr.destroy)
        ctx->tr.destroy(ctx->tr.ud);
    ctx->tr.destroy = NULL;
    wh__store *store = ctx->store;
    bool durable = store->ops->durable;
    if (wh__commit_results(ctx) != WH_OK)
        drop_unstored_records(ctx);
    /* told before the other engines take over: what is emitted now goes to them */
    wh__flush_notices(ctx);
    if (durable)
        store->ops->release(store); /* the other engines take what is left at once */
    pthread_mutex_lock(&ctx->lock);
    int64_t now = wh__now_ms(ctx);
    ctx->closing = true;
    /* a durable store keeps what is pending for the next engine */
    while (durable && ctx->all_head)
        wh__delivery_free(ctx, ctx->all_head);
    while (ctx->all_head) {
        wh__delivery *d = ctx->all_head;
        wh__record *r = wh__record_new(d, WH_OUTCOME_FAILED, 0, "destroyed", now, 0, 0, NULL, 0);
        if (r)
            wh__emit_record(ctx, r);
        ctx->stats.failed++;
        wh__delivery_free(ctx, d);
    }
    pthread_mutex_unlock(&ctx->lock);
    wh__flush_records(ctx);
    wh_conf *conf = ctx->conf;
    free_ctx(ctx);
    wh_conf_destroy(conf);
}

/* ---- statistics and the log ---------------------------------------------- */

int wh_stats(wh_ctx *ctx, wh_stats_info *out)
{
    if (!ctx || !out)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "%s: is NULL", ctx ? "out" : "ctx");
    pthread_mutex_lock(&ctx->lock);
    /* emitted is counted by wh_emit without the lock: read it atomically, never as part of a
     * struct copy (a data race with the emitting threads) */
    *out = (wh_stats_info){
        .emitted = __atomic_load_n(&ctx->stats.emitted, __ATOMIC_RELAXED),
        .delivered = ctx->stats.delivered,
        .failed = ctx->stats.failed,
        .skipped = ctx->stats.skipped,
        .attempts = ctx->stats.attempts,
    };
    out->in_flight = ctx->sched.in_flight;
    out->pending = ctx->live_deliveries - ctx->sched.in_flight;
    out->endpoints = wh__registry_count(ctx->reg);
    out->endpoints_disabled = 0;
    for (size_t i = 0; i < out->endpoints; i++)
        out->endpoints_disabled += !wh__registry_at(ctx->reg, i)->enabled;
    pthread_mutex_unlock(&ctx->lock);
    return WH_OK;
}

int wh_log_query(wh_ctx *ctx, const wh_log_filter *f, void (*row)(void *ud, const wh_attempt *a),
                 void *ud)
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    if (f && (f->outcomes & ~WH__OUTCOMES_ALL))
        return wh__fail(NULL, 0, WH_ERR_INVALID,
                        "outcomes: 0x%x is not a set of WH_OUTCOME_BIT(o) (0 = every outcome)",
                        f->outcomes);
    if (f && f->limit < 0)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "limit: %d is negative (0 = 100)", f->limit);
    int rc = f ? WH__RESERVED_CHECK(f, "wh_log_filter") : WH_OK;
    if (rc != WH_OK)
        return rc;
    return ctx->store->ops->log_query(ctx->store, f, row, ud);
}
