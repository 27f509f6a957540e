/* One turn of delivery: what is due is signed and sent, each attempt's verdict applied, the
 * outcomes committed and the records handed to the sinks. The ways a host drives the turns
 * (wh_poll, wh_flush, wh_fd + wh_timeout_ms, wh_start/wh_stop) are drive_loop.c. */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "ctx.h"
#include "drive.h"
#include "error.h"
#include "event.h"
#include "logsink.h"
#include "metrics.h"
#include "notice.h"
#include "payload.h"
#include "ratelimit.h"
#include "registry.h"
#include "scheduler.h"
#include "sign.h"
#include "store.h"
#include "unfolded.h"
#include "util.h"

#define BATCH 64
#define SLICE 256     /* deliveries taken per hold of the lock */
#define SKIP_MAX 4096 /* skipped per dispatch, before their outcomes are committed */
#define RATE_ASKS 16  /* endpoints asking for rate-limit tokens per round trip */

void wh__wake(wh_ctx *ctx)
{
    /* one eventfd write per wake-up, however many emits arrive before the driver reads */
    if (__atomic_exchange_n(&ctx->wake_pending, 1, __ATOMIC_ACQ_REL) == 0) {
        uint64_t one = 1;
        ssize_t w = write(ctx->evfd, &one, sizeof one);
        (void)w;
    }
}

bool wh__emit_record(wh_ctx *ctx, wh__record *r)
{
    if (ctx->outbox_n == ctx->outbox_cap) {
        size_t cap = ctx->outbox_cap ? ctx->outbox_cap * 2 : 64;
        wh__record **v = realloc(ctx->outbox, cap * sizeof *v);
        if (!v) {
            wh__record_free(r);
            return false;
        }
        ctx->outbox = v, ctx->outbox_cap = cap;
    }
    ctx->outbox[ctx->outbox_n++] = r;
    return true;
}

void wh__flush_records(wh_ctx *ctx)
{
    for (;;) {
        pthread_mutex_lock(&ctx->lock);
        wh__record **batch = ctx->outbox;
        size_t n = ctx->outbox_n;
        ctx->outbox = NULL;
        ctx->outbox_n = ctx->outbox_cap = 0;
        pthread_mutex_unlock(&ctx->lock);
        if (!n) {
            free(batch);
            return;
        }
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < ctx->n_sinks; k++)
                ctx->sinks[k].write(ctx->sinks[k].ud, &batch[i]->a);
        for (size_t i = 0; i < n; i++)
            wh__record_free(batch[i]);
        free(batch);
    }
}

/* ---- attempts ---------------------------------------------------------------- */

typedef struct {
    wh__delivery *d;
    bool signed_ok;
    long timeout_ms;          /* the endpoint's own, else the conf's */
    wh__ep_headers *headers;  /* the endpoint's extra headers (a reference), or NULL */
    char id[WH_ID_MAX + 16];
    char ts[48];
    char sig[2 * WH_SIGNATURE_MAX + 32];
} outgoing;

static void on_done(void *ud, void *token, const wh_response *r)
{
    wh_ctx *ctx = ud;
    wh__delivery *d = token;
    /* a transport built against a newer header may say something this library cannot read:
     * the attempt fails (and is retried) rather than being judged on half the answer */
    wh_response refused;
    for (size_t i = 0; i < WH_RESERVED_SLOTS; i++)
        if (r->reserved[i]) {
            refused = (wh_response){.error = "wh_response: reserved fields must be zero",
                                    .duration_us = r->duration_us};
            r = &refused;
            break;
        }
    pthread_mutex_lock(&ctx->lock);
    int64_t now = wh__now_ms(ctx);
    wh__sched_finished(&ctx->sched, d);
    wh__verdict v;
    wh__sched_judge(&ctx->sched, d, r, now, &v);
    ctx->stats.attempts++;
    wh__endpoint *ep = d->ep;
    wh__endpoint_change ch = {.kind = WH__EP_FAILING, .failing_since_ms = v.failing_since_ms};
    snprintf(ch.endpoint_id, sizeof ch.endpoint_id, "%s", ep->id);
    /* the failing clock is stored when it starts or stops, not on every failure */
    if ((ep->failing_since_ms == 0) != (v.failing_since_ms == 0) && !ep->removed)
        wh__queue_change(ctx, &ch);
    ep->failing_since_ms = v.failing_since_ms;
    if (v.disable_endpoint && ep->enabled) {
        char reason[200], when[32];
        if (r->http_status == 410) {
            snprintf(reason, sizeof reason, "the receiver answered 410 Gone");
        } else {
            wh__format_rfc3339_ms(v.failing_since_ms, when);
            snprintf(reason, sizeof reason,
                     "every attempt failed since %s (endpoint.disable_after)", when);
            size_t len = strlen(v.error);
            snprintf(v.error + len, sizeof v.error - len, "; endpoint disabled: %s", reason);
        }
        wh__endpoint_set_disabled(ep, reason);
        ch.kind = WH__EP_DISABLE;
        if (!ep->removed && (ch.reason = wh__strdup(reason)))
            wh__queue_change(ctx, &ch);
        if (!ep->removed)
            wh__queue_notice(ctx, &(wh__notice_spec){.kind = WH_NOTICE_ENDPOINT_DISABLED,
                                                     .endpoint_id = ep->id, .reason = reason,
                                                     .after_commit = true});
    }
    wh__record *rec = wh__record_new(d, v.outcome, r->http_status, v.error[0] ? v.error : NULL,
                                     d->started_ms, r->duration_us,
                                     v.outcome == WH_OUTCOME_RETRYING ? v.next_ms : 0, r->body,
                                     r->body_len);
    static const int state_of[] = {[WH_OUTCOME_DELIVERED] = WH__DSTATE_DELIVERED,
                                   [WH_OUTCOME_RETRYING] = WH__DSTATE_PENDING,
                                   [WH_OUTCOME_FAILED] = WH__DSTATE_FAILED,
                                   [WH_OUTCOME_SKIPPED] = WH__DSTATE_SKIPPED};
    wh__queue_result(ctx, d, state_of[v.outcome], v.next_ms, rec);
    if (v.outcome == WH_OUTCOME_FAILED)
        wh__queue_notice(ctx, &(wh__notice_spec){.kind = WH_NOTICE_DELIVERY_FAILED,
                                                 .endpoint_id = ep->id, .event_id = d->ev->id,
                                                 .event_type = d->ev->type,
                                                 .reason = v.error[0] ? v.error : "failed",
                                                 .after_commit = true});
    /* an address the guard refused was never sent: a skip, not an attempt */
    wh__metrics_count(&ep->metrics, v.outcome, v.outcome != WH_OUTCOME_SKIPPED, r->http_status,
                      r->duration_us, now);
    if (v.outcome == WH_OUTCOME_RETRYING) {
        d->next_ms = v.next_ms;
        if (wh__sched_push(&ctx->sched, d) != WH_OK) {
            ctx->stats.failed++;
            ep->metrics.failed++;
            wh__delivery_free(ctx, d);
        }
    } else {
        if (v.outcome == WH_OUTCOME_DELIVERED)
            ctx->stats.delivered++;
        else if (v.outcome == WH_OUTCOME_SKIPPED)
            ctx->stats.skipped++;
        else
            ctx->stats.failed++;
        wh__delivery_free(ctx, d);
    }
    pthread_mutex_unlock(&ctx->lock);
}

/* False when a signature could not be made (then nothing may be sent). */
static bool sign_headers(outgoing *o, int64_t now)
{
    wh__delivery *d = o->d;
    wh__endpoint *ep = d->ep;
    int64_t ts = now / 1000;
    snprintf(o->id, sizeof o->id, "webhook-id: %s", d->ev->id);
    snprintf(o->ts, sizeof o->ts, "webhook-timestamp: %lld", (long long)ts);
    char *p = o->sig + sprintf(o->sig, "webhook-signature: ");
    size_t room = sizeof o->sig - (size_t)(p - o->sig);
    if (wh__sign_key(ep->key, ep->key_len, d->ev->id, ts, d->ev->body, d->ev->body_len, p, room) != WH_OK)
        return false;
    for (size_t i = 0; i < ep->n_old_keys; i++) {
        /* while secrets rotate, every old one still in its grace signs too, newest first */
        if (now >= ep->old_keys[i].until_ms)
            continue;
        size_t used = strlen(p);
        p[used] = ' ';
        if (wh__sign_key(ep->old_keys[i].key, ep->old_keys[i].len, d->ev->id, ts, d->ev->body,
                         d->ev->body_len, p + used + 1, room - used - 1) != WH_OK)
            p[used] = '\0';
    }
    return true;
}

/* How long a delivery held by an earlier one of its run in another engine waits before the
 * store is asked again. */
static int recheck_ms(const wh_ctx *ctx)
{
    return ctx->store->ops->watch_ms ? ctx->store->ops->watch_ms : WH__STORE_WATCH_MS;
}

/* Without the lock: asks the store, in one go, whether an earlier delivery of each one's
 * endpoint and run is pending in another engine (or in none); those clear of it are due
 * again at once, the others when the store is asked again. True when one is clear. */
static bool ask_order(wh_ctx *ctx, wh__delivery **ds, size_t n)
{
    wh__order_query q[BATCH];
    /* out of the scheduler and marked order_checking: nobody else moves or frees them */
    for (size_t i = 0; i < n; i++)
        q[i] = (wh__order_query){.event_seq = ds[i]->ev->seq, .endpoint_id = ds[i]->ep->id,
                                 .run_id = ds[i]->ev->run_id};
    int rc = ctx->store->ops->order_blocked(ctx->store, q, n);
    bool progress = false;
    pthread_mutex_lock(&ctx->lock);
    int64_t now = wh__now_ms(ctx);
    for (size_t i = 0; i < n; i++) {
        wh__delivery *d = ds[i];
        d->order_checking = false;
        if (!d->chain || (rc == WH_OK && !q[i].blocked)) {
            d->order_check = false;
            d->order_clear = d->chain != NULL;
            progress = true;
        } else {
            d->next_ms = now + recheck_ms(ctx); /* no attempt is made, none is logged */
        }
        wh__sched_push(&ctx->sched, d); /* room for every live delivery is kept */
    }
    pthread_mutex_unlock(&ctx->lock);
    return progress;
}

/* Under the lock: the endpoints whose turn to ask for rate-limit tokens has come. Without a
 * shared bucket (one engine) the endpoint's own is used at once; the others are copied into
 * asks (each endpoint referenced) for rate_take. True when tokens were granted here. */
static bool rate_turns(wh_ctx *ctx, int64_t now, wh__rate_ask *asks, wh__endpoint **eps,
                       size_t *n_asks)
{
    wh__endpoint *due[RATE_ASKS];
    size_t nd = wh__sched_rate_due(&ctx->sched, now, due, RATE_ASKS);
    bool shared = ctx->store->ops->version >= 4 && ctx->store->ops->rate_take;
    bool progress = false;
    *n_asks = 0;
    for (size_t i = 0; i < nd; i++) {
        wh__endpoint *ep = due[i];
        if (!shared) {
            int64_t wait;
            int got = wh__bucket_take(&ep->bucket_tokens, &ep->bucket_ms, ep->rate_limit_per_s,
                                      wh__rate_burst(ep->rate_limit_per_s), ep->rate_n > INT32_MAX ? INT32_MAX : (int)ep->rate_n, now,
                                      &wait);
            wh__sched_rate_grant(&ctx->sched, ep, got, now + wait);
            progress |= got > 0;
            continue;
        }
        ep->refs++;
        eps[*n_asks] = ep;
        asks[(*n_asks)++] = (wh__rate_ask){
            .endpoint_id = ep->id,
            .rate_per_s = ep->rate_limit_per_s,
            .want = wh__rate_grant_size(ep->rate_limit_per_s, ep->rate_n),
        };
    }
    return progress;
}

/* Without the lock: takes tokens from the store's shared buckets (one round trip for all). */
static bool ask_rate(wh_ctx *ctx, wh__rate_ask *asks, wh__endpoint **eps, size_t n)
{
    int rc = ctx->store->ops->rate_take(ctx->store, asks, n);
    bool progress = false;
    pthread_mutex_lock(&ctx->lock);
    int64_t now = wh__now_ms(ctx);
    for (size_t i = 0; i < n; i++) {
        int got = rc == WH_OK ? asks[i].granted : 0;
        int64_t wait = rc == WH_OK ? asks[i].wait_ms : recheck_ms(ctx);
        /* granted all it asked for: more may wait, and may be there at once */
        if (rc == WH_OK && got == asks[i].want)
            wait = 0;
        wh__sched_rate_grant(&ctx->sched, eps[i], got, now + wait);
        progress |= got > 0;
        wh__endpoint_unref(eps[i]);
    }
    pthread_mutex_unlock(&ctx->lock);
    return progress;
}

/* Takes what is due, signs it under the lock, sends it without. Returns attempts finished
 * without a request (skipped or failed to start). */
static int dispatch(wh_ctx *ctx)
{
    static const char ua[] = "User-Agent: libwebhook/" WH_VERSION_STRING;
    int finished = 0;
    if (__atomic_load_n(&ctx->commit_failing, __ATOMIC_ACQUIRE))
        return 0; /* outcomes that cannot be stored are not piled up by new attempts */
    int skipped = 0;
    for (;;) {
        outgoing batch[BATCH];
        wh__delivery *ask[BATCH];
        wh__rate_ask asks[RATE_ASKS];
        wh__endpoint *ask_eps[RATE_ASKS];
        size_t nb = 0, na = 0, nr = 0, taken = 0;
        pthread_mutex_lock(&ctx->lock);
        int64_t now = wh__now_ms(ctx);
        wh__delivery *d;
        /* the lock is held for one slice at a time: an endpoint disabled with 200,000
         * deliveries waiting must not stall every wh_emit until they are all skipped */
        while (taken < SLICE && nb < BATCH && na < BATCH && (d = wh__sched_take(&ctx->sched, now))) {
            taken++;
            if (d->order_check && wh__delivery_sendable(d)) {
                /* the first of its run here: the store says whether one before it is
                 * pending in another engine; no slot is held meanwhile */
                wh__sched_finished(&ctx->sched, d);
                d->order_checking = true;
                ask[na++] = d;
                continue;
            }
            d->rate_granted = false; /* its token is spent by this attempt */
            d->attempts++;
            d->started_ms = now;
            if (!wh__delivery_sendable(d)) {
                const char *why = d->ep->removed ? "endpoint removed"
                                  : d->ep->disabled_reason ? d->ep->disabled_reason
                                                           : "endpoint disabled";
                char error[256];
                snprintf(error, sizeof error, "skipped: %s", why);
                wh__record *r = wh__record_new(d, WH_OUTCOME_SKIPPED, 0, error, now, 0, 0, NULL, 0);
                wh__queue_result(ctx, d, WH__DSTATE_SKIPPED, 0, r);
                ctx->stats.skipped++;
                wh__metrics_count(&d->ep->metrics, WH_OUTCOME_SKIPPED, false, 0, 0, now);
                wh__delivery_free(ctx, d);
                finished++;
                skipped++;
                continue;
            }
            batch[nb].d = d;
            batch[nb].signed_ok = sign_headers(&batch[nb], now);
            /* read under the lock: wh_endpoint_set may change them meanwhile */
            batch[nb].timeout_ms = d->ep->timeout_ms ? d->ep->timeout_ms : ctx->conf->http_timeout_ms;
            batch[nb].headers = d->ep->headers;
            wh__ep_headers_ref(batch[nb].headers);
            nb++;
        }
        bool more = taken >= SLICE || nb >= BATCH || na >= BATCH;
        more |= rate_turns(ctx, now, asks, ask_eps, &nr);
        pthread_mutex_unlock(&ctx->lock);
        for (size_t i = 0; i < nb; i++) {
            wh__delivery *dd = batch[i].d;
            const char *headers[7 + WH__EP_HEADERS_MAX] = {"Content-Type: application/json", ua,
                                                           batch[i].id, batch[i].ts, batch[i].sig,
                                                           "Expect:"};
            /* the endpoint's own after the library's; their names never clash (checked) */
            const wh__ep_headers *extra = batch[i].headers;
            for (size_t k = 0; extra && k < extra->n && k < WH__EP_HEADERS_MAX; k++)
                headers[6 + k] = extra->lines[k];
            wh_request req = {
                .url = dd->ep->url,
                .headers = headers,
                .body = dd->ev->body,
                .body_len = dd->ev->body_len,
                .timeout_ms = batch[i].timeout_ms,
                .connect_timeout_ms = ctx->conf->http_connect_timeout_ms,
                .response_max = ctx->conf->response_max,
            };
            if (!batch[i].signed_ok) {
                wh_response r = {.error = "could not compute the signature"};
                on_done(ctx, dd, &r);
                finished++;
            } else if (ctx->tr.submit(ctx->tr.ud, &req, dd) != WH_OK) {
                wh_response r = {.error = "could not start the request"};
                on_done(ctx, dd, &r);
                finished++;
            }
            wh__ep_headers_unref(batch[i].headers); /* the transport copied what it sends */
        }
        if (na)
            more |= ask_order(ctx, ask, na);
        if (nr)
            more |= ask_rate(ctx, asks, ask_eps, nr);
        if (!more)
            return finished; /* nothing more is due */
        if (skipped >= SKIP_MAX)
            return finished; /* their outcomes are committed before more are taken */
        if (!nb)
            sched_yield(); /* a slice of skips only: let a waiting wh_emit have the lock */
    }
}

static void drain(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof v) > 0) {
    }
}

static int run_once(wh_ctx *ctx)
{
    /* drained before the flag is cleared: a wake after the clear writes again, and one before
     * it asked for work this turn does anyway */
    drain(ctx->evfd);
    __atomic_store_n(&ctx->wake_pending, 0, __ATOMIC_RELEASE);
    drain(ctx->tfd);
    int finished = ctx->tr.perform(ctx->tr.ud, on_done, ctx);
    finished += dispatch(ctx);
    /* a request that ends at once (refused, mock) is reported on the next perform */
    finished += ctx->tr.perform(ctx->tr.ud, on_done, ctx);
    /* outcomes are stored before anyone is told of them; many share one commit */
    bool durable = ctx->store->ops->durable;
    pthread_mutex_lock(&ctx->lock);
    int64_t now_us = wh__mono_us();
    bool waiting = ctx->results_n || ctx->changes_n;
    bool due = waiting && (ctx->commit_failing
                               ? now_us >= ctx->commit_retry_us
                               : !durable || ctx->results_n >= WH__RESULTS_BATCH ||
                                     ctx->sched.in_flight == 0 ||
                                     now_us - ctx->results_since_us >= WH__RESULTS_DELAY_MS * 1000);
    pthread_mutex_unlock(&ctx->lock);
    /* an outcome's commit folds the store's log into its tables first; without one, the log
     * is folded as often as outcomes are committed, so that other processes see the events */
    if (due)
        wh__commit_results(ctx);
    else if (wh__unfolded_since_us(ctx) && now_us - wh__unfolded_since_us(ctx) >= WH__RESULTS_DELAY_MS * 1000)
        wh__unfolded_fold(ctx);
    /* the outbox holds only records whose outcomes are stored (see wh__commit_results) */
    wh__flush_records(ctx);
    wh__store_upkeep(ctx);
    /* after the sync, so that other processes' changes are told in the same turn */
    wh__flush_notices(ctx);
    return finished;
}

/* The turn, for the waits and the threads that drive it (drive_loop.c). */
int wh__drive_turn(wh_ctx *ctx) { return run_once(ctx); }
