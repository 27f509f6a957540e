/* What the tools do to a SQLite store besides the engine's operations: meta values,
 * queueing redeliveries and recoveries for whichever engine claims them, statistics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "sqlite_conn.h"
#include "store.h"
#include "store_sqlite.h"
#include "util.h"
#include "store_sqlite.h"

#define S(st) ((wh__sqlite_store *)(st))

typedef struct {
    const char *key;
    char *value;
    bool oom;
} meta_args;

static int meta_row(void *ud, sqlite3_stmt *st)
{
    meta_args *m = ud;
    m->oom = !(m->value = wh__strdup(wh__sq_text(st, 0)));
    return 1;
}

static int get_meta(wh__sq *c, void *arg)
{
    meta_args *m = arg;
    int rc = wh__sq_run(c, "meta", "SELECT value FROM meta WHERE key = ?", meta_row, m, "t", m->key);
    return rc == WH_OK && m->oom ? wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory") : rc;
}

int wh__sqlite_get_meta(wh__store *s, const char *key, char **value_out)
{
    meta_args m = {.key = key};
    int rc = wh__sq_read(&S(s)->conn, get_meta, &m);
    *value_out = rc == WH_OK ? m.value : NULL;
    if (rc != WH_OK)
        free(m.value);
    return rc;
}

typedef struct {
    const char *event_id, *endpoint_id;
    int64_t since_ms, now_ms;
    int64_t queued;
} requeue_args;

static int found_row(void *ud, sqlite3_stmt *st)
{
    int64_t *v = ud;
    *v = sqlite3_column_int64(st, 0);
    return 1;
}

/* Finished deliveries become pending ones that no engine holds yet: the first engine to
 * look claims them. A first attempt not made yet, or a retry, is on its way already. */
#define REQUEUE_SET                                                                       \
    "UPDATE deliveries SET state = 0, attempts = 0, next_ms = ?3, skip_only = 0,"         \
    " updated_ms = ?3, claimed_by = NULL, redelivery = 1"

static int queue_redelivery(wh__sq *c, void *arg)
{
    requeue_args *q = arg;
    int64_t seq = 0, found = 0;
    int rc = wh__sq_run(c, "event",
                        "SELECT seq FROM events WHERE seq = coalesce("
                        "(SELECT event_seq FROM deliveries WHERE event_id = ?1 LIMIT 1),"
                        "(SELECT seq FROM events WHERE id = ?1))",
                        found_row, &seq, "t", q->event_id);
    if (rc == WH_OK && !seq)
        return wh__fail(NULL, 0, WH_ERR_NOTFOUND, "no event \"%.63s\" in the store", q->event_id);
    if (rc == WH_OK && q->endpoint_id) {
        rc = wh__sq_run(c, "endpoint", "SELECT 1 FROM endpoints WHERE id = ?", found_row, &found,
                        "t", q->endpoint_id);
        if (rc == WH_OK && !found)
            return wh__fail(NULL, 0, WH_ERR_NOTFOUND, "no endpoint \"%.63s\"", q->endpoint_id);
        found = 0;
        /* targets: endpoint ids, comma-separated, '!' before a skipped one */
        if (rc == WH_OK)
            rc = wh__sq_run(c, "event",
                            "SELECT 1 FROM events WHERE seq = ?1 AND instr(',' || replace(targets,"
                            " '!', '') || ',', ',' || ?2 || ',') > 0",
                            found_row, &found, "it", seq, q->endpoint_id);
        if (rc == WH_OK && !found)
            return wh__fail(NULL, 0, WH_ERR_NOTFOUND, "event %.63s never went to endpoint \"%.63s\"",
                            q->event_id, q->endpoint_id);
    }
    if (rc == WH_OK)
        rc = wh__sq_run(c, "deliveries",
                        REQUEUE_SET " WHERE event_seq = ?1 AND state <> 0"
                        " AND (?2 IS NULL OR endpoint_id = ?2)"
                        " AND endpoint_id IN (SELECT id FROM endpoints)",
                        NULL, NULL, "iti", seq, q->endpoint_id, q->now_ms);
    q->queued = wh__sq_changes(c);
    return rc;
}

int wh__sqlite_queue_redelivery(wh__store *s, const char *event_id, const char *endpoint_id,
                               int64_t now_ms)
{
    requeue_args q = {.event_id = event_id, .endpoint_id = endpoint_id, .now_ms = now_ms};
    int rc = wh__sq_write(&S(s)->conn, queue_redelivery, &q);
    return rc == WH_OK ? (int)q.queued : rc;
}

static int queue_recovery(wh__sq *c, void *arg)
{
    requeue_args *q = arg;
    int64_t found = 0;
    int rc = wh__sq_run(c, "endpoint", "SELECT 1 FROM endpoints WHERE id = ?", found_row, &found,
                        "t", q->endpoint_id);
    if (rc == WH_OK && !found)
        return wh__fail(NULL, 0, WH_ERR_NOTFOUND, "no endpoint \"%.63s\"", q->endpoint_id);
    /* a delivery is one row per (event, endpoint): one delivered since is not FAILED any
     * more, and one queued already is pending */
    if (rc == WH_OK)
        rc = wh__sq_run(c, "deliveries",
                        REQUEUE_SET " WHERE endpoint_id = ?1 AND state IN (2, 3) AND updated_ms >= ?2"
                        " AND EXISTS (SELECT 1 FROM events e WHERE e.seq = event_seq)",
                        NULL, NULL, "tii", q->endpoint_id, q->since_ms, q->now_ms);
    q->queued = wh__sq_changes(c);
    return rc;
}

int wh__sqlite_queue_recovery(wh__store *s, const char *endpoint_id, int64_t since_ms,
                             int64_t now_ms)
{
    requeue_args q = {.endpoint_id = endpoint_id, .since_ms = since_ms, .now_ms = now_ms};
    int rc = wh__sq_write(&S(s)->conn, queue_recovery, &q);
    return rc == WH_OK ? (int)q.queued : rc;
}

/* ---- statistics ------------------------------------------------------------------- */

typedef struct {
    wh__endpoint_stats st;
    char *id, *url;
} stats_entry;

typedef struct {
    stats_entry *v;
    size_t n, cap;
    bool oom;
} stats_list;

static stats_entry *stats_find(stats_list *l, const char *id, size_t len)
{
    for (size_t i = 0; i < l->n; i++)
        if (strlen(l->v[i].id) == len && memcmp(l->v[i].id, id, len) == 0)
            return &l->v[i];
    return NULL;
}

static stats_entry *stats_push(stats_list *l, const char *id, size_t len)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        stats_entry *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return NULL;
        l->v = v, l->cap = cap;
    }
    stats_entry *e = &l->v[l->n];
    memset(e, 0, sizeof *e);
    if (!(e->id = strndup(id, len)))
        return NULL;
    l->n++;
    return e;
}

static int stats_row(void *ud, sqlite3_stmt *st)
{
    stats_list *l = ud;
    const char *id = wh__sq_text(st, 0), *url = wh__sq_text(st, 1);
    stats_entry *e = stats_push(l, id, strlen(id));
    if (!e || (url && !(e->url = wh__strdup(url)))) {
        l->oom = true;
        return 1;
    }
    e->st = (wh__endpoint_stats){
        .enabled = sqlite3_column_int(st, 2) != 0,
        .exists = sqlite3_column_int(st, 3) != 0,
        .delivered = sqlite3_column_int64(st, 4),
        .failed = sqlite3_column_int64(st, 5),
        .skipped = sqlite3_column_int64(st, 6),
        .pending = sqlite3_column_int64(st, 7),
        .last_success_ms = sqlite3_column_int64(st, 8),
    };
    return 0;
}

/* First attempts not made yet have no deliveries row: they count as pending. */
static int unattempted_row(void *ud, sqlite3_stmt *st)
{
    stats_list *l = ud;
    const char *done = wh__sq_text(st, 1);
    wh__target_iter it = {.next = wh__sq_text(st, 0)};
    while (wh__target_next(&it)) {
        if (wh__target_in(done, it.id, it.len))
            continue;
        stats_entry *e = stats_find(l, it.id, it.len);
        if (!e && (e = stats_push(l, it.id, it.len)))
            e->st.exists = false;
        if (!e) {
            l->oom = true;
            return 1;
        }
        e->st.pending++;
    }
    return 0;
}

static int endpoint_stats(wh__sq *c, void *arg)
{
    stats_list *l = arg;
    /* the endpoints, then removed ones that still have deliveries; by state */
    int rc = wh__sq_run(
        c, "stats",
        "SELECT i.id, ep.url, ep.enabled, ep.id IS NOT NULL,"
        " COALESCE(SUM(d.state = 1), 0), COALESCE(SUM(d.state = 2), 0),"
        " COALESCE(SUM(d.state = 3), 0), COALESCE(SUM(d.state = 0), 0),"
        " COALESCE(MAX(CASE WHEN d.state = 1 THEN d.updated_ms END), 0)"
        " FROM (SELECT id FROM endpoints UNION SELECT DISTINCT endpoint_id FROM deliveries) i"
        " LEFT JOIN endpoints ep ON ep.id = i.id LEFT JOIN deliveries d ON d.endpoint_id = i.id"
        " GROUP BY i.id ORDER BY ep.id IS NULL, ep.created_ms, ep.rowid, i.id",
        stats_row, l, NULL);
    if (rc == WH_OK && !l->oom)
        rc = wh__sq_run(c, "stats",
                        "SELECT e.targets, (SELECT group_concat(d.endpoint_id) FROM deliveries d"
                        " WHERE d.event_seq = e.seq) FROM events e WHERE "
                        WH__SQL_ROWS_OF_EVENT " < " WH__SQL_TARGET_COUNT,
                        unattempted_row, l, NULL);
    return rc == WH_OK && l->oom ? wh__fail(NULL, 0, WH_ERR_NOMEM, "stats: out of memory") : rc;
}

int wh__sqlite_endpoint_stats(wh__store *s, void (*cb)(void *ud, const wh__endpoint_stats *st),
                             void *ud)
{
    stats_list l = {0};
    int rc = wh__sq_read(&S(s)->conn, endpoint_stats, &l);
    /* rows are handed over outside the transaction */
    for (size_t i = 0; i < l.n; i++) {
        if (rc == WH_OK) {
            l.v[i].st.id = l.v[i].id;
            l.v[i].st.url = l.v[i].url;
            cb(ud, &l.v[i].st);
        }
        free(l.v[i].id);
        free(l.v[i].url);
    }
    free(l.v);
    return rc;
}
