/* When each delivery goes out: a min-heap by due time, per-endpoint and total
 * in-flight limits, and the retry policy. Pure logic: time comes from the caller. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "scheduler.h"
#include "conf.h"
#include "event.h"
#include "registry.h"
#include "util.h"

void wh__sched_init(wh__sched *s, const wh_conf *c)
{
    memset(s, 0, sizeof *s);
    s->max_in_flight_total = (size_t)c->max_connections;
    s->max_per_endpoint = c->max_in_flight;
    s->schedule_ms = c->retry_schedule_ms;
    s->schedule_len = c->retry_schedule_len;
    s->jitter = c->retry_jitter;
    s->max_delay_ms = c->retry_max_delay_ms;
    s->disable_after_ms = c->disable_after_ms;
    wh__random_bytes(&s->rng, sizeof s->rng);
    s->rng |= 1;
}

void wh__sched_free(wh__sched *s)
{
    free(s->heap);
    s->heap = NULL;
    s->n = s->cap = 0;
    free(s->rate_heap);
    s->rate_heap = NULL;
    s->rate_heap_n = s->rate_heap_cap = 0;
}

static bool earlier(const wh__delivery *a, const wh__delivery *b) { return a->next_ms < b->next_ms; }

static void heap_set(wh__sched *s, size_t i, wh__delivery *d)
{
    s->heap[i] = d;
    d->heap_idx = i;
}

static void sift_up(wh__sched *s, size_t i)
{
    wh__delivery *d = s->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!earlier(d, s->heap[parent]))
            break;
        heap_set(s, i, s->heap[parent]);
        i = parent;
    }
    heap_set(s, i, d);
}

static void sift_down(wh__sched *s, size_t i)
{
    wh__delivery *d = s->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const wh__delivery *best = d;
        if (l < s->n && earlier(s->heap[l], best))
            m = l, best = s->heap[l];
        if (l + 1 < s->n && earlier(s->heap[l + 1], best))
            m = l + 1;
        if (m == i)
            break;
        heap_set(s, i, s->heap[m]);
        i = m;
    }
    heap_set(s, i, d);
}

int wh__sched_reserve(wh__sched *s, size_t extra)
{
    if (s->n + extra <= s->cap)
        return WH_OK;
    size_t cap = s->cap ? s->cap : 1024;
    while (cap < s->n + extra)
        cap *= 2;
    wh__delivery **h = realloc(s->heap, cap * sizeof *h);
    if (!h)
        return WH_ERR_NOMEM;
    s->heap = h, s->cap = cap;
    return WH_OK;
}

int wh__sched_push(wh__sched *s, wh__delivery *d)
{
    if (wh__sched_reserve(s, 1) != WH_OK)
        return WH_ERR_NOMEM;
    heap_set(s, s->n++, d);
    sift_up(s, s->n - 1);
    return WH_OK;
}

static void heap_remove_at(wh__sched *s, size_t i)
{
    wh__delivery *d = s->heap[i];
    d->heap_idx = WH__NOT_IN_HEAP;
    s->n--;
    if (i == s->n)
        return;
    heap_set(s, i, s->heap[s->n]);
    sift_down(s, i);
    sift_up(s, s->heap[i]->heap_idx);
}

static void append(wh__delivery **head, wh__delivery **tail, wh__delivery *d)
{
    d->next = NULL;
    if (*tail)
        (*tail)->next = d;
    else
        *head = d;
    *tail = d;
}

static wh__delivery *pop(wh__delivery **head, wh__delivery **tail)
{
    wh__delivery *d = *head;
    if (d) {
        *head = d->next;
        if (!*head)
            *tail = NULL;
        d->next = NULL;
    }
    return d;
}

/* A delivery that needs no connection (it is skipped) may always go. */
bool wh__delivery_sendable(const wh__delivery *d)
{
    return !d->skip_only && d->ep->enabled && !d->ep->removed;
}


/* ---- rate limits: endpoints waiting for tokens ---------------------------------------- */

static void rate_set(wh__sched *s, size_t i, wh__endpoint *ep)
{
    s->rate_heap[i] = ep;
    ep->rate_idx = i;
}

static void rate_sift(wh__sched *s, size_t i)
{
    wh__endpoint *ep = s->rate_heap[i];
    while (i > 0 && ep->rate_wake_ms < s->rate_heap[(i - 1) / 2]->rate_wake_ms) {
        rate_set(s, i, s->rate_heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        int64_t best = ep->rate_wake_ms;
        if (l < s->rate_heap_n && s->rate_heap[l]->rate_wake_ms < best)
            m = l, best = s->rate_heap[l]->rate_wake_ms;
        if (l + 1 < s->rate_heap_n && s->rate_heap[l + 1]->rate_wake_ms < best)
            m = l + 1;
        if (m == i)
            break;
        rate_set(s, i, s->rate_heap[m]);
        i = m;
    }
    rate_set(s, i, ep);
}

static void rate_unwait(wh__sched *s, wh__endpoint *ep)
{
    if (!ep->rate_waiting)
        return;
    ep->rate_waiting = false;
    size_t i = ep->rate_idx;
    if (i != --s->rate_heap_n) {
        rate_set(s, i, s->rate_heap[s->rate_heap_n]);
        rate_sift(s, i);
    }
}

/* d is due but its endpoint's tokens are spoken for: it waits behind the others. False when
 * there is no room to note the endpoint (d then goes without a token: out of memory). */
static bool rate_enqueue(wh__sched *s, wh__delivery *d, int64_t now_ms)
{
    wh__endpoint *ep = d->ep;
    if (!ep->rate_waiting) {
        if (s->rate_heap_n == s->rate_heap_cap) {
            size_t cap = s->rate_heap_cap ? s->rate_heap_cap * 2 : 16;
            wh__endpoint **v = realloc(s->rate_heap, cap * sizeof *v);
            if (!v)
                return false;
            s->rate_heap = v, s->rate_heap_cap = cap;
        }
        ep->rate_waiting = true;
        ep->rate_wake_ms = now_ms; /* its turn to ask comes at once */
        rate_set(s, s->rate_heap_n++, ep);
        rate_sift(s, ep->rate_idx);
    }
    append(&ep->rate_head, &ep->rate_tail, d);
    ep->rate_n++;
    s->rate_queued++;
    return true;
}

/* Up to n of ep's waiting deliveries go to the front of the ready queue, in order. */
static void rate_release(wh__sched *s, wh__endpoint *ep, size_t n, bool granted)
{
    wh__delivery *first = NULL, *last = NULL, *d;
    for (size_t i = 0; i < n && (d = pop(&ep->rate_head, &ep->rate_tail)); i++) {
        ep->rate_n--;
        s->rate_queued--;
        d->rate_granted = granted;
        append(&first, &last, d);
        s->ready_n++;
    }
    if (!first)
        return;
    last->next = s->ready_head;
    s->ready_head = first;
    if (!s->ready_tail)
        s->ready_tail = last;
}

size_t wh__sched_rate_due(wh__sched *s, int64_t now_ms, wh__endpoint **out, size_t max)
{
    size_t n = 0;
    while (n < max && s->rate_heap_n && s->rate_heap[0]->rate_wake_ms <= now_ms) {
        wh__endpoint *ep = s->rate_heap[0];
        if (!ep->enabled || ep->removed || !ep->rate_n || ep->rate_limit_per_s <= 0) {
            /* nothing to send (it is skipped), or no limit any more: no token needed */
            rate_release(s, ep, ep->rate_n, ep->rate_limit_per_s <= 0);
            rate_unwait(s, ep);
            continue;
        }
        ep->rate_wake_ms = INT64_MAX; /* out of turn while the driver asks */
        rate_sift(s, 0);
        out[n++] = ep;
    }
    return n;
}

void wh__sched_rate_grant(wh__sched *s, wh__endpoint *ep, int granted, int64_t wake_ms)
{
    if (granted > 0)
        rate_release(s, ep, (size_t)granted, true);
    if (!ep->rate_waiting)
        return;
    if (!ep->rate_n) {
        rate_unwait(s, ep);
        return;
    }
    ep->rate_wake_ms = wake_ms;
    rate_sift(s, ep->rate_idx);
}

wh__delivery *wh__sched_take(wh__sched *s, int64_t now_ms)
{
    /* due ones move to the ready queue in due order */
    while (s->n && s->heap[0]->next_ms <= now_ms) {
        wh__delivery *d = s->heap[0];
        heap_remove_at(s, 0);
        append(&s->ready_head, &s->ready_tail, d);
        s->ready_n++;
    }
    while (s->ready_head) {
        wh__delivery *d = s->ready_head;
        if (!wh__delivery_sendable(d)) {
            pop(&s->ready_head, &s->ready_tail);
            s->ready_n--;
            /* its endpoint sends nothing now: what waits behind its limit is skipped too,
             * instead of waiting for requests that will never finish */
            wh__delivery *p;
            while ((p = pop(&d->ep->parked_head, &d->ep->parked_tail))) {
                s->parked_n--;
                append(&s->ready_head, &s->ready_tail, p);
                s->ready_n++;
            }
            while ((p = pop(&d->ep->rate_head, &d->ep->rate_tail))) {
                d->ep->rate_n--;
                s->rate_queued--;
                append(&s->ready_head, &s->ready_tail, p);
                s->ready_n++;
            }
            rate_unwait(s, d->ep);
            return d;
        }
        if (s->in_flight >= s->max_in_flight_total)
            return NULL;
        pop(&s->ready_head, &s->ready_tail);
        s->ready_n--;
        int max = d->ep->max_in_flight ? d->ep->max_in_flight : s->max_per_endpoint;
        if (d->ep->in_flight >= max) {
            /* this endpoint is saturated: wait behind its own requests, not everyone's */
            append(&d->ep->parked_head, &d->ep->parked_tail, d);
            s->parked_n++;
            continue;
        }
        /* over its endpoint's rate: it waits for a token (one that is asked about ordering
         * first takes none yet) */
        if (d->ep->rate_limit_per_s > 0 && !d->rate_granted && !d->order_check &&
            rate_enqueue(s, d, now_ms))
            continue;
        d->ep->in_flight++;
        s->in_flight++;
        return d;
    }
    return NULL;
}

int64_t wh__sched_wait_ms(const wh__sched *s, int64_t now_ms)
{
    if (s->ready_head && (s->in_flight < s->max_in_flight_total || !wh__delivery_sendable(s->ready_head)))
        return 0;
    int64_t wait = -1;
    if (s->n)
        wait = s->heap[0]->next_ms > now_ms ? s->heap[0]->next_ms - now_ms : 0;
    if (s->rate_heap_n && s->rate_heap[0]->rate_wake_ms != INT64_MAX) {
        int64_t wake = s->rate_heap[0]->rate_wake_ms, w = wake > now_ms ? wake - now_ms : 0;
        if (wait < 0 || w < wait)
            wait = w;
    }
    return wait;
}

void wh__sched_unpark(wh__sched *s, wh__endpoint *ep)
{
    if (!ep->parked_head)
        return;
    size_t n = 0;
    for (wh__delivery *d = ep->parked_head; d; d = d->next)
        n++;
    ep->parked_tail->next = s->ready_head;
    if (!s->ready_head)
        s->ready_tail = ep->parked_tail;
    s->ready_head = ep->parked_head;
    ep->parked_head = ep->parked_tail = NULL;
    s->parked_n -= n;
    s->ready_n += n;
}

void wh__sched_finished(wh__sched *s, wh__delivery *d)
{
    s->in_flight--;
    d->ep->in_flight--;
    wh__delivery *next = pop(&d->ep->parked_head, &d->ep->parked_tail);
    if (next) {
        s->parked_n--;
        /* front of the line: it was due before anything now in the ready queue */
        next->next = s->ready_head;
        s->ready_head = next;
        if (!s->ready_tail)
            s->ready_tail = next;
        s->ready_n++;
    }
}

/* Unlinks d from a singly linked list; false when it is not in it. */
static bool unlink_from(wh__delivery **head, wh__delivery **tail, wh__delivery *d)
{
    wh__delivery *prev = NULL;
    for (wh__delivery *p = *head; p; prev = p, p = p->next) {
        if (p != d)
            continue;
        if (prev)
            prev->next = d->next;
        else
            *head = d->next;
        if (*tail == d)
            *tail = prev;
        d->next = NULL;
        return true;
    }
    return false;
}

bool wh__sched_remove(wh__sched *s, wh__delivery *d)
{
    if (d->heap_idx != WH__NOT_IN_HEAP) {
        heap_remove_at(s, d->heap_idx);
        return true;
    }
    if (unlink_from(&s->ready_head, &s->ready_tail, d)) {
        s->ready_n--;
        return true;
    }
    if (unlink_from(&d->ep->parked_head, &d->ep->parked_tail, d)) {
        s->parked_n--;
        return true;
    }
    if (unlink_from(&d->ep->rate_head, &d->ep->rate_tail, d)) {
        d->ep->rate_n--;
        s->rate_queued--;
        return true;
    }
    return false;
}

static double random_unit(wh__sched *s)
{
    /* xorshift64*: jitter needs spread, not secrecy */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (double)((s->rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

int64_t wh__parse_retry_after(const char *v, int64_t now_ms)
{
    if (!v)
        return -1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v >= '0' && *v <= '9') {
        char *end;
        long long secs = strtoll(v, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (*end || secs < 0 || secs > 100LL * 365 * 86400)
            return -1;
        return secs * 1000;
    }
    /* IMF-fixdate, e.g. "Wed, 21 Oct 2015 07:28:00 GMT" */
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end)
        return -1;
    int64_t at_ms = (int64_t)timegm(&tm) * 1000;
    return at_ms > now_ms ? at_ms - now_ms : 0;
}

void wh__sched_judge(wh__sched *s, const wh__delivery *d, const wh_response *r,
                     int64_t now_ms, wh__verdict *v)
{
    memset(v, 0, sizeof *v);
    const wh__endpoint *ep = d->ep;
    v->failing_since_ms = ep->failing_since_ms;
    int st = r->http_status;
    if (st >= 200 && st <= 299) {
        v->outcome = WH_OUTCOME_DELIVERED;
        v->failing_since_ms = 0;
        return;
    }
    if (r->blocked) {
        /* retrying cannot help: the address stays what it is until someone changes the conf */
        v->outcome = WH_OUTCOME_SKIPPED;
        snprintf(v->error, sizeof v->error, "%s", r->error ? r->error : "blocked");
        return;
    }
    if (r->error && *r->error)
        snprintf(v->error, sizeof v->error, "%s", r->error);
    else if (st >= 300 && st <= 399)
        snprintf(v->error, sizeof v->error, "HTTP %d: redirects are not followed", st);
    else
        snprintf(v->error, sizeof v->error, "HTTP %d", st);

    if (st == 410) {
        v->outcome = WH_OUTCOME_FAILED;
        v->disable_endpoint = true;
        snprintf(v->error, sizeof v->error, "HTTP 410 Gone: endpoint disabled");
        return;
    }
    if (!v->failing_since_ms)
        v->failing_since_ms = d->started_ms ? d->started_ms : now_ms;
    if (s->disable_after_ms > 0 && now_ms - v->failing_since_ms >= s->disable_after_ms)
        v->disable_endpoint = true;

    /* the endpoint's own schedule, else the conf's */
    const int64_t *schedule = ep->retry_schedule_ms ? ep->retry_schedule_ms : s->schedule_ms;
    size_t schedule_len = ep->retry_schedule_ms ? ep->retry_schedule_len : s->schedule_len;
    if ((size_t)d->attempts > schedule_len) {
        v->outcome = WH_OUTCOME_FAILED;
        size_t len = strlen(v->error);
        snprintf(v->error + len, sizeof v->error - len, "; gave up after %d attempts", d->attempts);
        return;
    }
    double base = (double)schedule[d->attempts - 1];
    int64_t delay = (int64_t)(base * (1.0 + s->jitter * (2.0 * random_unit(s) - 1.0)));
    if (st == 429 || st == 503) {
        int64_t ra = wh__parse_retry_after(r->retry_after, now_ms);
        if (ra > delay)
            delay = ra;
    }
    if (delay > s->max_delay_ms)
        delay = s->max_delay_ms;
    if (delay < 0)
        delay = 0;
    v->outcome = WH_OUTCOME_RETRYING;
    v->next_ms = now_ms + delay;
}
