/* The context: wires conf, registry, scheduler, transport and sinks; the
 * endpoint calls; statistics and the attempt log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "ctx.h"
#include "conf.h"
#include "endpoint_settings.h"
#include "error.h"
#include "event.h"
#include "logsink.h"
#include "notice.h"
#include "pool.h"
#include "registry.h"
#include "registry_rows.h"
#include "scheduler.h"
#include "sign.h"
#include "store.h"
#include "transport.h"
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
    pthread_mutex_destroy(&ctx->lock);
    pthread_mutex_destroy(&ctx->ep_lock);
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
    size_t kept = 0;
    for (size_t i = 0; i < ctx->outbox_n; i++) {
        bool unstored = false;
        for (size_t k = 0; k < ctx->results_n && !unstored; k++)
            unstored = ctx->results[k].rec == ctx->outbox[i];
        if (unstored)
            wh__record_free(ctx->outbox[i]);
        else
            ctx->outbox[kept++] = ctx->outbox[i];
    }
    ctx->outbox_n = kept;
    for (size_t k = 0; k < ctx->results_n; k++)
        ctx->results[k].rec = NULL;
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

/* ---- endpoints ----------------------------------------------------------- */

/* The store is written first and memory changed only once that worked: a failed call
 * changes nothing, and the driver never acts on a state that is then taken back. */

static int find_locked(wh_ctx *ctx, const char *id, wh__endpoint **out)
{
    if (!id)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "id: is NULL");
    if (!*id || strnlen(id, WH_ID_MAX) >= WH_ID_MAX)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "id: empty or longer than %d bytes", WH_ID_MAX - 1);
    *out = wh__registry_find(ctx->reg, id);
    if (!*out)
        return wh__fail(NULL, 0, WH_ERR_NOTFOUND, "id: no endpoint \"%.63s\"", id);
    return WH_OK;
}

/* The row as the store has it after the change (others' changes included), copied out of
 * the store's transaction and applied once it has committed. */
typedef struct {
    wh__endpoint_row row;
    char *block;
    size_t size;
    bool oom;
} stored_row;

static void copy_stored(void *ud, const wh__endpoint_row *row)
{
    stored_row *c = ud;
    const char *src[] = {row->id, row->url, row->event_types, row->secret, row->old_secret,
                         row->disabled_reason, row->description, row->old_secrets, row->settings,
                         row->key};
    enum { N = sizeof src / sizeof src[0] };
    size_t bytes = 0;
    for (size_t i = 0; i < N; i++)
        bytes += src[i] ? strlen(src[i]) + 1 : 0;
    free(c->block);
    char *p = c->block = malloc(bytes ? bytes : 1);
    c->size = bytes;
    if (!p) {
        c->oom = true;
        return;
    }
    const char *dst[N];
    for (size_t i = 0; i < N; i++) {
        dst[i] = src[i] ? p : NULL;
        if (src[i])
            p = stpcpy(p, src[i]) + 1;
    }
    c->row = *row;
    c->row.id = dst[0], c->row.url = dst[1], c->row.event_types = dst[2];
    c->row.secret = dst[3], c->row.old_secret = dst[4], c->row.disabled_reason = dst[5];
    c->row.description = dst[6], c->row.old_secrets = dst[7], c->row.settings = dst[8];
    c->row.key = dst[9];
}

/* An endpoint added with the caller's key: the key's endpoint updated in place, or ep added
 * when the key is new. The store decides, in one transaction, so that engines adding the
 * same key at once end with one endpoint; memory follows the row it stored. */
static int add_keyed(wh_ctx *ctx, const wh_endpoint_spec *spec, wh__endpoint *ep,
                     char id[WH_ID_MAX])
{
    ep->version = 1; /* the version the store gives a new row */
    wh__endpoint_row row;
    char *block = wh__endpoint_row_snapshot(ep, &row); /* not shared yet: no lock needed */
    pthread_mutex_lock(&ctx->ep_lock);
    int rc = block ? WH_OK : wh__fail(NULL, 0, WH_ERR_NOMEM, "endpoint: out of memory");
    /* changes the driver's verdicts made go in first: stored after this one, they would
     * undo it */
    if (rc == WH_OK)
        rc = wh__commit_results_locked(ctx);
    stored_row got = {0};
    if (rc == WH_OK)
        rc = ctx->store->ops->endpoint_upsert(ctx->store, &row, spec->secret != NULL,
                                              copy_stored, &got);
    if (rc == WH_OK && got.oom)
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "endpoint: out of memory");
    bool inserted = false, wake = false, was_enabled = false;
    pthread_mutex_lock(&ctx->lock);
    wh__endpoint *cur = NULL;
    if (rc == WH_OK && got.block) {
        snprintf(id, WH_ID_MAX, "%s", got.row.id);
        cur = wh__registry_find(ctx->reg, got.row.id);
        was_enabled = cur && cur->enabled;
        inserted = strcmp(got.row.id, ep->id) == 0;
        if (!cur && inserted) {
            ep->version = got.row.version;
            if ((rc = wh__registry_add(ctx->reg, ep)) == WH_OK)
                ep = NULL; /* the registry's now */
        } else if (!cur) {
            /* made by another engine, not synced here yet */
            wh__endpoint *made = wh__endpoint_from_row(ctx->reg, &got.row, NULL, 0);
            if (!made || wh__registry_add(ctx->reg, made) != WH_OK) {
                wh__endpoint_unref(made);
                ctx->resync = true; /* stored as asked; memory catches up with the next sync */
            }
            wh__clear_error();
        } else if (wh__registry_apply_row(ctx->reg, cur, &got.row, NULL, 0) != WH_OK) {
            ctx->resync = true;
            wh__clear_error();
        }
    } else if (rc == WH_OK) {
        /* the memory store keeps no rows: the registry is the only copy */
        if ((cur = wh__registry_find_key(ctx->reg, spec->key))) {
            was_enabled = cur->enabled;
            rc = wh__registry_update_from_spec(ctx->reg, cur, spec);
            snprintf(id, WH_ID_MAX, "%s", cur->id);
            wake = !was_enabled && cur->enabled;
        } else if ((rc = wh__registry_add(ctx->reg, ep)) == WH_OK) {
            snprintf(id, WH_ID_MAX, "%s", ep->id);
            ep = NULL;
        }
    }
    if (rc == WH_OK && got.block && cur && !inserted)
        wake = got.row.enabled;
    /* the key's endpoint updated in place, `disabled` included: a change like any other */
    if (rc == WH_OK && cur && !inserted && was_enabled != cur->enabled)
        wh__queue_notice(ctx, &(wh__notice_spec){
                                  .kind = cur->enabled ? WH_NOTICE_ENDPOINT_ENABLED
                                                       : WH_NOTICE_ENDPOINT_DISABLED,
                                  .endpoint_id = cur->id,
                                  .reason = cur->enabled ? "enabled by wh_endpoint_add (its key)"
                                                         : "disabled by wh_endpoint_add (its key)",
                                  .version = got.block ? got.row.version : 0});
    pthread_mutex_unlock(&ctx->lock);
    if (rc != WH_OK && inserted && ep) {
        /* undone in the store; the registry's reason is the one to report */
        char why[512];
        snprintf(why, sizeof why, "%s", wh_last_error());
        ctx->store->ops->endpoint_delete(ctx->store, got.row.id);
        rc = wh__fail(NULL, 0, rc, "%s", why);
    }
    pthread_mutex_unlock(&ctx->ep_lock);
    if (got.block) {
        OPENSSL_cleanse(got.block, got.size); /* it held secrets */
        free(got.block);
    }
    free(block);
    wh__endpoint_unref(ep);
    if (wake)
        wh__wake(ctx); /* waiting work may move now */
    return rc;
}

int wh_endpoint_add(wh_ctx *ctx, const wh_endpoint_spec *spec, char id_out[WH_ID_MAX])
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    if (spec) {
        int rc = WH__RESERVED_CHECK(spec, "wh_endpoint_spec");
        if (rc != WH_OK)
            return rc;
    }
    wh__endpoint *ep = wh__endpoint_build(ctx->reg, spec, NULL, NULL, 0);
    if (!ep)
        return wh__last_error_code() ? wh__last_error_code() : WH_ERR_INVALID;
    if (spec->key) {
        char id[WH_ID_MAX];
        int rc = add_keyed(ctx, spec, ep, id);
        if (rc == WH_OK && id_out)
            snprintf(id_out, WH_ID_MAX, "%s", id);
        return rc;
    }
    int rc = WH_OK;
    ep->version = 1; /* the version the store gives a new row */
    wh__endpoint_row row;
    char *block = wh__endpoint_row_snapshot(ep, &row); /* not shared yet: no lock needed */
    pthread_mutex_lock(&ctx->ep_lock);
    if (!block)
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "endpoint: out of memory");
    if (rc == WH_OK)
        rc = ctx->store->ops->endpoint_insert(ctx->store, &row);
    if (rc == WH_OK) {
        pthread_mutex_lock(&ctx->lock);
        rc = wh__registry_add(ctx->reg, ep);
        pthread_mutex_unlock(&ctx->lock);
        if (rc != WH_OK) {
            /* undone in the store; the registry's reason is the one to report */
            char why[512];
            snprintf(why, sizeof why, "%s", wh_last_error());
            ctx->store->ops->endpoint_delete(ctx->store, row.id);
            rc = wh__fail(NULL, 0, rc, "%s", why);
        }
    }
    pthread_mutex_unlock(&ctx->ep_lock);
    if (rc == WH_OK && id_out)
        snprintf(id_out, WH_ID_MAX, "%s", row.id);
    free(block);
    if (rc != WH_OK)
        wh__endpoint_unref(ep);
    return rc;
}

int wh_endpoint_remove(wh_ctx *ctx, const char *id)
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    pthread_mutex_lock(&ctx->ep_lock);
    pthread_mutex_lock(&ctx->lock);
    wh__endpoint *ep;
    int rc = find_locked(ctx, id, &ep);
    pthread_mutex_unlock(&ctx->lock);
    if (rc == WH_OK) {
        rc = ctx->store->ops->endpoint_delete(ctx->store, id);
        if (rc == WH_ERR_NOTFOUND) /* removed by another process already: so be it */
            rc = WH_OK;
    }
    if (rc == WH_OK) {
        pthread_mutex_lock(&ctx->lock);
        wh__registry_remove(ctx->reg, id);
        pthread_mutex_unlock(&ctx->lock);
    }
    pthread_mutex_unlock(&ctx->ep_lock);
    return rc;
}

/* One column-level change: in the store first, then in memory. */
static int change_endpoint(wh_ctx *ctx, const char *id, wh__endpoint_change *ch)
{
    pthread_mutex_lock(&ctx->ep_lock); /* keeps the endpoint registered until the end */
    pthread_mutex_lock(&ctx->lock);
    wh__endpoint *ep = NULL;
    int rc = find_locked(ctx, id, &ep);
    pthread_mutex_unlock(&ctx->lock);
    /* changes the driver's verdicts made go in first: stored after this one, they would
     * undo it */
    if (rc == WH_OK)
        rc = wh__commit_results_locked(ctx);
    stored_row got = {0};
    if (rc == WH_OK) {
        snprintf(ch->endpoint_id, sizeof ch->endpoint_id, "%s", id);
        rc = ctx->store->ops->endpoint_change(ctx->store, ch, copy_stored, &got);
    }
    /* stored, but memory could not take it (out of memory): the change was made, and memory
     * reads the row again below, or at the next sync */
    bool stale = rc == WH_OK && got.oom;
    pthread_mutex_lock(&ctx->lock);
    int max_in_flight = ep ? ep->max_in_flight : 0;
    double rate = ep ? ep->rate_limit_per_s : 0;
    bool ordering = ep && ep->ordering_run;
    bool was_enabled = ep && ep->enabled;
    if (rc == WH_OK && got.block && !got.oom) {
        /* the row may carry another process's update of the key's fields: taken as far as
         * this engine can use them (else read again, below or at the next sync) */
        if (wh__registry_apply_row(ctx->reg, ep, &got.row, NULL, 0) != WH_OK)
            stale = true;
        else
            stale = !wh__endpoint_settings_are(ep, got.row.settings);
        wh__clear_error();
    } else if (rc == WH_OK && !stale) {
        /* the memory store has no rows: memory takes the change as made here */
        switch (ch->kind) {
        case WH__EP_ENABLE:
            ep->enabled = true;
            free(ep->disabled_reason);
            ep->disabled_reason = NULL;
            ep->failing_since_ms = 0;
            break;
        case WH__EP_DISABLE:
            if (ep->enabled)
                wh__endpoint_set_disabled(ep, ch->reason);
            break;
        case WH__EP_ROTATE:
            rc = wh__endpoint_set_secret(ep, ch->secret, ch->old_until_ms, ch->now_ms, NULL, 0);
            break;
        case WH__EP_FAILING:
            ep->failing_since_ms = ch->failing_since_ms;
            break;
        case WH__EP_SETTING: {
            char *text = NULL;
            rc = wh__ep_settings_update(ep->settings, ch->setting_key, ch->setting_value, &text,
                                        NULL, 0);
            if (rc == WH_OK && wh__endpoint_set_settings(ep, text) != WH_OK)
                rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "%s: out of memory", ch->setting_key);
            if (text)
                OPENSSL_cleanse(text, strlen(text));
            free(text);
            break;
        }
        }
    }
    /* deliveries parked behind the old limit move again under the new one */
    if (ep && ep->max_in_flight != max_in_flight)
        wh__sched_unpark(&ctx->sched, ep);
    /* so do those waiting for a rate limit's token or held in a run's order */
    if (ep && (ep->rate_limit_per_s != rate || ep->ordering_run != ordering))
        wh__endpoint_flow_changed(ctx, ep);
    if (rc == WH_OK && ep && was_enabled != ep->enabled) {
        /* the row read back may also carry another process's change */
        bool ours = ch->kind == (ep->enabled ? WH__EP_ENABLE : WH__EP_DISABLE);
        wh__queue_notice(ctx, &(wh__notice_spec){
                                  .kind = ep->enabled ? WH_NOTICE_ENDPOINT_ENABLED
                                                      : WH_NOTICE_ENDPOINT_DISABLED,
                                  .endpoint_id = ep->id,
                                  .reason = !ours ? wh__notice_reason_seen(ep)
                                            : ep->enabled ? "enabled with wh_endpoint_set_enabled"
                                                          : "disabled with wh_endpoint_set_enabled",
                                  .version = got.block ? got.row.version : 0});
    }
    pthread_mutex_unlock(&ctx->lock);
    if (stale && (wh__commit_results_locked(ctx) != WH_OK || wh__sync_endpoints(ctx) != WH_OK)) {
        pthread_mutex_lock(&ctx->lock);
        ctx->resync = true;
        pthread_mutex_unlock(&ctx->lock);
    }
    pthread_mutex_unlock(&ctx->ep_lock);
    if (got.block) {
        OPENSSL_cleanse(got.block, got.size); /* it held secrets */
        free(got.block);
    }
    return rc;
}

int wh_endpoint_set_enabled(wh_ctx *ctx, const char *id, int enabled)
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    wh__endpoint_change ch = {.kind = enabled ? WH__EP_ENABLE : WH__EP_DISABLE};
    int rc = change_endpoint(ctx, id, &ch);
    if (rc == WH_OK && enabled)
        wh__wake(ctx); /* waiting work may move now */
    return rc;
}

int wh_endpoint_rotate_secret(wh_ctx *ctx, const char *id, const char *new_secret, int grace_s)
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    if (grace_s < -1)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "grace_s: must be -1 (none), 0 (86400) or more");
    int64_t grace_ms = grace_s == 0 ? 86400000LL : grace_s < 0 ? 0 : (int64_t)grace_s * 1000;
    char generated[128];
    if (!new_secret) {
        if (wh__secret_generate(generated, sizeof generated) != WH_OK)
            return wh__fail(NULL, 0, WH_ERR_IO, "new_secret: could not generate one");
        new_secret = generated;
    }
    unsigned char key[WH__SECRET_KEY_MAX];
    size_t key_len;
    const char *problem = wh__secret_decode(new_secret, key, &key_len);
    OPENSSL_cleanse(key, sizeof key);
    if (problem)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "new_secret: %s", problem);
    int64_t now = wh__now_ms(ctx), until = grace_ms ? now + grace_ms : 0;
    wh__endpoint_change ch = {.kind = WH__EP_ROTATE, .secret = new_secret, .old_until_ms = until,
                              .now_ms = now};
    int rc = change_endpoint(ctx, id, &ch);
    OPENSSL_cleanse(generated, sizeof generated);
    return rc;
}

int wh_endpoint_set(wh_ctx *ctx, const char *id, const char *key, const char *value)
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    /* checked before anything is looked up or written */
    int rc = wh__ep_setting_check(key, value, NULL, 0);
    if (rc != WH_OK)
        return rc;
    wh__endpoint_change ch = {.kind = WH__EP_SETTING, .setting_key = key, .setting_value = value};
    rc = change_endpoint(ctx, id, &ch);
    if (rc == WH_OK)
        wh__wake(ctx); /* a new limit or schedule may let waiting work move */
    return rc;
}

/* A copy of an endpoint that callbacks can read with no lock held. */
typedef struct {
    wh_endpoint_info info;
    char id[WH_ID_MAX];
    char *strings; /* one block holding every string below */
    const char **types;
    char **settings; /* one block (endpoint_settings.h) */
} ep_snapshot;

static void snapshot_free(ep_snapshot *s)
{
    free(s->strings);
    free(s->types);
    free(s->settings);
}

static int snapshot_take(const wh__endpoint *ep, ep_snapshot *s)
{
    memset(s, 0, sizeof *s);
    wh_endpoint_info src;
    wh__endpoint_info_fill(ep, &src);
    size_t ntypes = 0, bytes = 0;
    for (; src.event_types[ntypes]; ntypes++)
        bytes += strlen(src.event_types[ntypes]) + 1;
    const char *fields[] = {src.url, src.secret, src.description,
                            src.disabled_reason ? src.disabled_reason : "", src.key ? src.key : ""};
    enum { N = sizeof fields / sizeof fields[0] };
    for (size_t i = 0; i < N; i++)
        bytes += strlen(fields[i]) + 1;
    s->strings = malloc(bytes);
    s->types = calloc(ntypes + 1, sizeof *s->types);
    s->settings = wh__ep_settings_list(ep->settings, false);
    if (!s->strings || !s->types || !s->settings) {
        snapshot_free(s);
        return WH_ERR_NOMEM;
    }
    char *p = s->strings;
    const char *copied[N];
    for (size_t i = 0; i < N; i++) {
        copied[i] = p;
        p = stpcpy(p, fields[i]) + 1;
    }
    for (size_t i = 0; i < ntypes; i++) {
        s->types[i] = p;
        p = stpcpy(p, src.event_types[i]) + 1;
    }
    snprintf(s->id, sizeof s->id, "%s", ep->id);
    s->info = src;
    s->info.id = s->id;
    s->info.url = copied[0];
    s->info.secret = copied[1];
    s->info.description = copied[2];
    s->info.disabled_reason = src.disabled_reason ? copied[3] : NULL;
    s->info.key = src.key ? copied[4] : NULL;
    s->info.event_types = s->types;
    s->info.settings = (const char *const *)s->settings;
    return WH_OK;
}

int wh_endpoint_get(wh_ctx *ctx, const char *id, wh_endpoint_cb cb, void *ud)
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    if (!cb)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "cb: is NULL");
    ep_snapshot snap;
    pthread_mutex_lock(&ctx->lock);
    wh__endpoint *ep;
    int rc = find_locked(ctx, id, &ep);
    if (rc == WH_OK)
        rc = snapshot_take(ep, &snap);
    pthread_mutex_unlock(&ctx->lock);
    if (rc != WH_OK)
        return rc;
    cb(ud, &snap.info);
    snapshot_free(&snap);
    return WH_OK;
}

int wh_endpoint_list(wh_ctx *ctx, wh_endpoint_cb cb, void *ud)
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    pthread_mutex_lock(&ctx->lock);
    size_t n = wh__registry_count(ctx->reg);
    ep_snapshot *snaps = calloc(n ? n : 1, sizeof *snaps);
    size_t taken = 0;
    int rc = snaps ? WH_OK : WH_ERR_NOMEM;
    for (; rc == WH_OK && taken < n; taken++)
        if ((rc = snapshot_take(wh__registry_at(ctx->reg, taken), &snaps[taken])) != WH_OK)
            break;
    pthread_mutex_unlock(&ctx->lock);
    for (size_t i = 0; i < taken; i++) {
        if (rc == WH_OK && cb)
            cb(ud, &snaps[i].info);
        snapshot_free(&snaps[i]);
    }
    free(snaps);
    return rc == WH_OK ? (int)n : rc;
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
