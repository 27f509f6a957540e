/* A SQLite store's attempt log added up per endpoint, for the tools' metrics
 * (store_metrics.c). */
#include <string.h>

#include "error.h"
#include "metrics.h"
#include "sqlite_conn.h"
#include "store.h"
#include "store_sqlite.h"

#define S(st) ((wh__sqlite_store *)(st))

/* The SQL twin of wh__status_class and the latency buckets of wh__metrics_count; a skipped
 * delivery's log row is not an attempt. */
#define BUCKET_SUM(b) ", SUM(duration_us <= " #b ")"
static const char attempts_sql[] =
    "SELECT endpoint_id, count(*), SUM(outcome = 1), SUM(http_status = 0),"
    " SUM(http_status BETWEEN 100 AND 199), SUM(http_status BETWEEN 200 AND 299),"
    " SUM(http_status BETWEEN 300 AND 399), SUM(http_status BETWEEN 400 AND 499),"
    " SUM(http_status BETWEEN 500 AND 599), SUM(http_status <> 0 AND http_status NOT BETWEEN 100 AND 599),"
    " SUM(max(duration_us, 0))" WH__LATENCY_BOUNDS_US(BUCKET_SUM)
    " FROM attempts WHERE outcome <> 3 GROUP BY endpoint_id";
_Static_assert(WH_OUTCOME_RETRYING == 1 && WH_OUTCOME_SKIPPED == 3, "outcomes as stored");
_Static_assert(WH_STATUS_CLASSES == 7, "one SUM per status class");

typedef struct {
    void (*cb)(void *ud, const wh__attempt_stats *a);
    void *ud;
    uint64_t *events;
} walk;

static int attempts_row(void *ud, sqlite3_stmt *st)
{
    walk *w = ud;
    wh__attempt_stats a = {.endpoint_id = wh__sq_text(st, 0)};
    int col = 1;
    a.attempts = (uint64_t)sqlite3_column_int64(st, col++);
    a.retrying = (uint64_t)sqlite3_column_int64(st, col++);
    for (int k = 0; k < WH_STATUS_CLASSES; k++)
        a.by_class[k] = (uint64_t)sqlite3_column_int64(st, col++);
    a.latency_sum_us = sqlite3_column_int64(st, col++);
    for (int b = 0; b < WH__LATENCY_BUCKETS; b++)
        a.cum[b] = (uint64_t)sqlite3_column_int64(st, col++);
    w->cb(w->ud, &a);
    return 0;
}

static int events_row(void *ud, sqlite3_stmt *st)
{
    *((walk *)ud)->events = (uint64_t)sqlite3_column_int64(st, 0);
    return 1;
}

static int read_stats(wh__sq *c, void *arg)
{
    int rc = wh__sq_run(c, "metrics", attempts_sql, attempts_row, arg, NULL);
    if (rc == WH_OK)
        rc = wh__sq_run(c, "metrics", "SELECT count(*) FROM events", events_row, arg, NULL);
    return rc;
}

int wh__sqlite_attempt_stats(wh__store *s, void (*cb)(void *ud, const wh__attempt_stats *a),
                             void *ud, uint64_t *events)
{
    walk w = {cb, ud, events};
    return wh__sq_read(&S(s)->conn, read_stats, &w);
}
