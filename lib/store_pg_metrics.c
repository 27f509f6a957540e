/* A PostgreSQL store's attempt log added up per endpoint, for the tools' metrics
 * (store_metrics.c). */
#include <string.h>

#include "error.h"
#include "metrics.h"
#include "pg_conn.h"
#include "store.h"
#include "store_pg.h"

#define S(st) ((wh__pg_store *)(st))

/* The SQL twin of wh__status_class and the latency buckets of wh__metrics_count; a skipped
 * delivery's log row is not an attempt. */
#define BUCKET_SUM(b) ", count(*) FILTER (WHERE duration_us <= " #b ")"
static const char attempts_sql[] =
    "SELECT endpoint_id, count(*), count(*) FILTER (WHERE outcome = 1),"
    " count(*) FILTER (WHERE http_status = 0),"
    " count(*) FILTER (WHERE http_status BETWEEN 100 AND 199),"
    " count(*) FILTER (WHERE http_status BETWEEN 200 AND 299),"
    " count(*) FILTER (WHERE http_status BETWEEN 300 AND 399),"
    " count(*) FILTER (WHERE http_status BETWEEN 400 AND 499),"
    " count(*) FILTER (WHERE http_status BETWEEN 500 AND 599),"
    " count(*) FILTER (WHERE http_status <> 0 AND http_status NOT BETWEEN 100 AND 599),"
    " coalesce(sum(greatest(duration_us, 0)), 0)" WH__LATENCY_BOUNDS_US(BUCKET_SUM)
    " FROM attempts WHERE outcome <> 3 GROUP BY endpoint_id";
_Static_assert(WH_OUTCOME_RETRYING == 1 && WH_OUTCOME_SKIPPED == 3, "outcomes as stored");
_Static_assert(WH_STATUS_CLASSES == 7, "one count per status class");

typedef struct {
    void (*cb)(void *ud, const wh__attempt_stats *a);
    void *ud;
    uint64_t *events;
} walk;

static int attempts_row(void *ud, const PGresult *r, int i)
{
    walk *w = ud;
    wh__attempt_stats a = {.endpoint_id = wh__pg_text(r, i, 0)};
    int col = 1;
    a.attempts = (uint64_t)wh__pg_int(r, i, col++);
    a.retrying = (uint64_t)wh__pg_int(r, i, col++);
    for (int k = 0; k < WH_STATUS_CLASSES; k++)
        a.by_class[k] = (uint64_t)wh__pg_int(r, i, col++);
    a.latency_sum_us = wh__pg_int(r, i, col++);
    for (int b = 0; b < WH__LATENCY_BUCKETS; b++)
        a.cum[b] = (uint64_t)wh__pg_int(r, i, col++);
    w->cb(w->ud, &a);
    return 0;
}

static int events_row(void *ud, const PGresult *r, int i)
{
    *((walk *)ud)->events = (uint64_t)wh__pg_int(r, i, 0);
    return 1;
}

static int read_stats(wh__pg *c, void *arg)
{
    int rc = wh__pg_run(c, "metrics", attempts_sql, attempts_row, arg, "");
    if (rc == WH_OK)
        rc = wh__pg_run(c, "metrics", "SELECT count(*) FROM events", events_row, arg, "");
    return rc;
}

int wh__pg_attempt_stats(wh__store *s, void (*cb)(void *ud, const wh__attempt_stats *a),
                         void *ud, uint64_t *events)
{
    walk w = {cb, ud, events};
    return wh__pg_read(&S(s)->conn, read_stats, &w);
}
