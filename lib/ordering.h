/* Private to libwebhook: ordering per run. For an endpoint whose ordering is "run", the
 * deliveries of one run go one at a time, in the order of their events: a chain per
 * (endpoint, run) keeps the ones behind its head out of the scheduler until the head is
 * delivered, failed or skipped. Other runs and other endpoints are never held up. Several
 * engines: before a head's first attempt the store is asked whether an earlier delivery of
 * the same endpoint and run is pending elsewhere (see the driver). A redelivery keeps no
 * order. Everything here runs under the context's lock. */
#ifndef WH_ORDERING_H
#define WH_ORDERING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "registry.h"
#include "scheduler.h"

typedef struct wh__chain {
    struct wh__chain *next; /* in its bucket */
    wh__endpoint *ep;
    uint64_t hash;
    wh__delivery *head, *tail; /* linked by chain_next, by event */
    char run_id[];
} wh__chain;

typedef struct wh__order {
    wh__chain **buckets;
    size_t n_buckets, n;
} wh__order;

/* Schedules d, or holds it behind the deliveries of its endpoint and run before it. `check`:
 * the store is asked before a head's first attempt (engines may share the run). */
int wh__order_admit(wh__order *o, wh__sched *s, wh__delivery *d, bool check);
/* d leaves its chain (it reached its outcome, or is freed); with release_next the next one
 * of the chain, if d was its head, is scheduled. */
void wh__order_leave(wh__order *o, wh__sched *s, wh__delivery *d, bool check, bool release_next);
/* ep's ordering was turned off: every delivery held behind another is scheduled. */
void wh__order_endpoint_changed(wh__order *o, wh__sched *s, wh__endpoint *ep);
/* The chains (the deliveries in them are the context's). */
void wh__order_free(wh__order *o);

#endif
