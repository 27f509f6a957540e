/* Private to libwebhook: emits in the store's log (event_log.h) not yet folded into its
 * tables. A SQLite store with store.sync=normal takes an emit into its log, one write(2)
 * instead of a commit; the engine folds them into the tables in batches, in log order, and
 * only then does an event have its seq, so every outcome's commit folds first. */
#ifndef WH_UNFOLDED_H
#define WH_UNFOLDED_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "store.h"

typedef struct wh_ctx wh_ctx;

typedef struct wh__unfolded {
    wh__event *ev; /* a reference */
    int64_t created_ms;
    int sendable;
    wh__target *targets; /* one allocation with the endpoint ids */
    size_t n_targets;
} wh__unfolded;

/* Logs the rows (events[i] is rows[i]'s event) and keeps them for the fold: as safe as a
 * commit on return. WH_ERR_STATE: the store keeps no log (the caller adds them itself). */
int wh__unfolded_log(wh_ctx *ctx, const wh__event_add *rows, wh__event *const *events, size_t n);
/* Folds every logged emit into the store's tables, giving each event its seq. */
int wh__unfolded_fold(wh_ctx *ctx);
/* Whether anything waits for a fold, and since when (0: nothing); read without the lock:
 * hints. */
size_t wh__unfolded_count(wh_ctx *ctx);
int64_t wh__unfolded_since_us(wh_ctx *ctx);
/* wh_destroy: drops what was not folded (it stays in the log for the next engine). */
void wh__unfolded_free(wh_ctx *ctx);

#endif
