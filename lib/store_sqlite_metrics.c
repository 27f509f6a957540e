/* A SQLite store's metrics, for webhookctl: the same families the engine counts, computed
 * from the rows the store keeps (deliveries by state, the attempts table), so they cover
 * log.retention and not a process's lifetime. Nothing on the wire is known here. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "metrics.h"
#include "sqlite_conn.h"
#include "store.h"
#include "store_sqlite.h"
#include "util.h"

#define S(st) ((wh__sqlite_store *)(st))

typedef struct {
    wh__metrics_entry *v;
    size_t n, cap;
    uint64_t events;
    bool oom;
} metrics_list;

static void endpoint_row(void *ud, const wh__endpoint_stats *st)
{
    metrics_list *l = ud;
    if (!st->exists || l->oom)
        return; /* a removed endpoint's series end with it, as in the engine */
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        wh__metrics_entry *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->oom = true;
            return;
        }
        l->v = v, l->cap = cap;
    }
    wh__metrics_entry *e = &l->v[l->n];
    memset(e, 0, sizeof *e);
    snprintf(e->id, sizeof e->id, "%s", st->id);
    if (st->url && !(e->url = wh__strdup(st->url))) {
        l->oom = true;
        return;
    }
    l->n++;
    e->enabled = st->enabled;
    e->delivered = (uint64_t)st->delivered;
    e->failed = (uint64_t)st->failed;
    e->skipped = (uint64_t)st->skipped;
    e->pending = (uint64_t)st->pending;
    e->last_success_ms = st->last_success_ms;
}

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

static int attempts_row(void *ud, sqlite3_stmt *st)
{
    metrics_list *l = ud;
    const char *id = wh__sq_text(st, 0);
    for (size_t i = 0; id && i < l->n; i++) {
        wh__metrics_entry *e = &l->v[i];
        if (strcmp(e->id, id) != 0)
            continue;
        int col = 1;
        e->attempts = (uint64_t)sqlite3_column_int64(st, col++);
        e->retrying = (uint64_t)sqlite3_column_int64(st, col++);
        for (int k = 0; k < WH_STATUS_CLASSES; k++)
            e->by_class[k] = (uint64_t)sqlite3_column_int64(st, col++);
        e->latency_sum_us = sqlite3_column_int64(st, col++);
        for (int b = 0; b < WH__LATENCY_BUCKETS; b++)
            e->cum[b] = (uint64_t)sqlite3_column_int64(st, col++);
        break;
    }
    return 0;
}

static int events_row(void *ud, sqlite3_stmt *st)
{
    ((metrics_list *)ud)->events = (uint64_t)sqlite3_column_int64(st, 0);
    return 1;
}

static int attempt_metrics(wh__sq *c, void *arg)
{
    int rc = wh__sq_run(c, "metrics", attempts_sql, attempts_row, arg, NULL);
    if (rc == WH_OK)
        rc = wh__sq_run(c, "metrics", "SELECT count(*) FROM events", events_row, arg, NULL);
    return rc;
}

int wh__store_endpoint_metrics(wh__store *s, wh__metrics_entry **out, size_t *n_out,
                               uint64_t *events)
{
    metrics_list l = {0};
    int rc = wh__store_endpoint_stats(s, endpoint_row, &l);
    if (rc == WH_OK && l.oom)
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "metrics: out of memory");
    if (rc == WH_OK)
        rc = wh__sq_read(&S(s)->conn, attempt_metrics, &l);
    if (rc != WH_OK) {
        wh__metrics_entries_free(l.v, l.n);
        return rc;
    }
    for (size_t i = 0; i < l.n; i++)
        wh__metrics_publish(&l.v[i]);
    *out = l.v;
    *n_out = l.n;
    *events = l.events;
    return WH_OK;
}
