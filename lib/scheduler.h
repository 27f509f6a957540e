/* Private to libwebhook: What goes out when: pure logic, driven with a clock. */
#ifndef WH_SCHEDULER_H
#define WH_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "event.h"

typedef struct wh__sched {
    wh__delivery **heap; /* min-heap by next_ms */
    size_t n, cap;
    wh__delivery *ready_head, *ready_tail; /* due, waiting for a connection slot */
    size_t ready_n, parked_n;
    /* endpoints whose due deliveries wait for rate-limit tokens: a min-heap by rate_wake_ms
     * (INT64_MAX while the driver is asking for tokens) */
    wh__endpoint **rate_heap;
    size_t rate_heap_n, rate_heap_cap;
    size_t rate_queued; /* deliveries waiting for a token */
    size_t in_flight, max_in_flight_total;
    int max_per_endpoint;
    const int64_t *schedule_ms;
    size_t schedule_len;
    double jitter;
    int64_t max_delay_ms, disable_after_ms;
    uint64_t rng;
} wh__sched;

typedef struct wh__verdict {
    wh_outcome outcome;
    int64_t next_ms;          /* when RETRYING */
    int64_t failing_since_ms; /* the endpoint's failing clock after this attempt (0: stopped) */
    bool disable_endpoint;
    char error[256];          /* "" on success */
} wh__verdict;

void wh__sched_init(wh__sched *s, const wh_conf *c);
void wh__sched_free(wh__sched *s);
int wh__sched_push(wh__sched *s, wh__delivery *d);
/* Makes room so that the next `extra` pushes cannot fail. */
int wh__sched_reserve(wh__sched *s, size_t extra);
/* False when the delivery will be logged SKIPPED instead of sent. */
bool wh__delivery_sendable(const wh__delivery *d);
/* Next delivery to send now, honouring the per-endpoint and total limits; NULL if none. */
wh__delivery *wh__sched_take(wh__sched *s, int64_t now_ms);
/* Milliseconds until wh__sched_take may return something, or until an endpoint's turn to
 * ask for rate-limit tokens comes; -1 when nothing waits. */
int64_t wh__sched_wait_ms(const wh__sched *s, int64_t now_ms);
/* The endpoint's own limit changed: what waits behind it goes to the front of the line, in
 * its order, to be taken (or parked again) under the new limit. */
void wh__sched_unpark(wh__sched *s, wh__endpoint *ep);
/* A request for d ended (or d was taken and is not sent after all): frees its slot and
 * lets a parked one of its endpoint go. */
void wh__sched_finished(wh__sched *s, wh__delivery *d);
/* Takes d out wherever it waits (heap, ready queue, parked, waiting for a token); false
 * when it was in none of them. */
bool wh__sched_remove(wh__sched *s, wh__delivery *d);
/* Rate limits. Up to `max` endpoints whose turn to ask for tokens has come (rate_n of them
 * wait); they stay out of turn until wh__sched_rate_grant answers. An
 * endpoint that sends nothing now (disabled, removed) needs no tokens: its waiting
 * deliveries go back to the ready queue, to be skipped. */
size_t wh__sched_rate_due(wh__sched *s, int64_t now_ms, wh__endpoint **out, size_t max);
/* `granted` tokens for ep: as many of its waiting deliveries go to the front of the ready
 * queue, in order; the others (if any) wait until wake_ms to ask again. */
void wh__sched_rate_grant(wh__sched *s, wh__endpoint *ep, int granted, int64_t wake_ms);
/* What to do after an attempt: outcome, next time, the endpoint's failing clock, whether to
 * disable the endpoint. Changes nothing but the jitter's random state: the driver applies
 * the verdict. */
void wh__sched_judge(wh__sched *s, const wh__delivery *d, const wh_response *r,
                     int64_t now_ms, wh__verdict *v);
/* Parses Retry-After (delta seconds or an HTTP date) into ms from now; -1 if unusable. */
int64_t wh__parse_retry_after(const char *v, int64_t now_ms);

#endif
