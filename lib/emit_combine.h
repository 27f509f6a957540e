/* Private to libwebhook: emits that threads make at the same moment, written together.
 *
 * A store whose cost is per statement (PostgreSQL) gains when the events of several threads'
 * wh_emit travel as one batch: the first thread to come leads, takes every event waiting,
 * and writes them with one call of `many` (one statement, one commit); the others wait for
 * its answer. A batch that fails, and surely did not commit, is written again event by event
 * with `one`, so that one event's failure is no other's. */
#ifndef WH_EMIT_COMBINE_H
#define WH_EMIT_COMBINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "store.h"

typedef struct wh__combine_slot wh__combine_slot;

typedef struct wh__combiner {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool busy; /* a leader writes */
    wh__combine_slot *head, *tail;
} wh__combiner;

/* Writes items[0..n-1] in one commit; *maybe: when it failed, whether it may have committed. */
typedef int (*wh__combine_many)(void *ud, wh__event_add *items, size_t n, bool *maybe);
typedef int (*wh__combine_one)(void *ud, wh__event_add *item);

void wh__combiner_init(wh__combiner *c);
void wh__combiner_destroy(wh__combiner *c);
/* Writes item (its row's seq is set), with those of the threads here at the same moment;
 * returns WH_OK or the error, with wh_last_error set on the calling thread. */
int wh__combine(wh__combiner *c, wh__event_add *item, wh__combine_many many,
                wh__combine_one one, void *ud);

#endif
