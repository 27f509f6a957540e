/* Private to libwebhook: Events (built once, shared by their deliveries) and deliveries. */
#ifndef WH_EVENT_H
#define WH_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pool.h"
#include "registry.h"

/* One allocation holds the event and its strings: a million pending deliveries of
 * small events must fit in well under 512 bytes each. */
typedef struct wh__event {
    int refs;
    size_t body_len;
    int64_t seq;      /* the store's number for it */
    const char *id;   /* the strings below point into data[] */
    const char *type;
    /* for the attempt records, and run_id for ordering per run (a redelivery keeps none:
     * see wh__delivery.redelivery); task_id NULL when none */
    const char *run_id, *task_id;
    const char *body; /* built once, shared by every delivery and attempt */
    char data[];
} wh__event;

struct wh__delivery {
    wh__event *ev;
    wh__endpoint *ep;
    int64_t next_ms;   /* when the next attempt is due */
    int64_t started_ms; /* of the attempt in flight */
    int attempts;      /* finished or in flight */
    bool skip_only;    /* endpoint was disabled at emit: log SKIPPED, never send */
    bool redelivery;   /* queued again after it finished: its attempts say so */
    /* ordering per run (ordering.h): the chain it waits in, and where it stands */
    bool order_held;     /* in its chain behind another, out of the scheduler */
    bool order_check;    /* the store is asked before its first attempt */
    bool order_checking; /* being asked now (out of the scheduler) */
    bool order_clear;    /* nothing earlier of its run is pending anywhere */
    bool rate_granted;   /* holds a token of its endpoint's rate limit for its next attempt */
    struct wh__chain *chain;
    wh__delivery *chain_next;
    size_t heap_idx;   /* position in the scheduler heap, or WH__NOT_IN_HEAP */
    wh__delivery *next; /* ready or parked list link */
    wh__delivery *all_prev, *all_next; /* every live delivery of the context */
    wh__delivery *ep_prev, *ep_next;   /* every live delivery to the same endpoint */
};
#define WH__NOT_IN_HEAP SIZE_MAX

/* refs = 1; from pool (the heap when NULL); NULL when out of memory or id or type does not fit WH_ID_MAX. task_id may be NULL. */
wh__event *wh__event_new(wh__pool *pool, const char *id, const char *type, const char *run_id,
                         const char *task_id, const char *body, size_t body_len);
/* The same for a stored event: run_id and task_id are read from its body. */
wh__event *wh__event_from_body(wh__pool *pool, const char *id, const char *type, const char *body,
                               size_t body_len);
void wh__event_unref(wh__event *ev);
static inline void wh__event_ref(wh__event *ev) { __atomic_add_fetch(&ev->refs, 1, __ATOMIC_RELAXED); }

#endif
