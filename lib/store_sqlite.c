/* The SQLite store's engine operations (its table, at the end; leases and claims, endpoint
 * rows, events and the log of emits, and the tools' operations are in store_sqlite_*.c),
 * and what is left: changes seen from other engines, deliveries queued again, outcomes, the
 * attempt log, ordering per run and rate limits shared by several engines, and housekeeping. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log_sql.h"
#include "logsink.h"
#include "ratelimit.h"
#include "sqlite_conn.h"
#include "store.h"
#include "store_sqlite.h"
#include "util.h"

#define S(st) ((wh__sqlite_store *)(st))
#define PRUNE_EVERY_MS 1000
#define CHECKPOINT_EVERY_US 250000
#define PRUNE_BATCH 1000
#define PRUNE_BUDGET_US 25000 /* per call: delivery never waits long behind housekeeping */

bool wh__target_next(wh__target_iter *it)
{
    if (!it->next || !*it->next)
        return false;
    const char *end = strchr(it->next, ',');
    size_t len = end ? (size_t)(end - it->next) : strlen(it->next);
    it->skipped = *it->next == '!';
    it->id = it->next + it->skipped;
    it->len = len - it->skipped;
    it->next = end ? end + 1 : it->next + len;
    return true;
}

bool wh__target_in(const char *list, const char *id, size_t len)
{
    wh__target_iter it = {.next = list};
    while (wh__target_next(&it))
        if (it.len == len && memcmp(it.id, id, len) == 0)
            return true;
    return false;
}

static void close_store(wh__store *st)
{
    if (!st)
        return;
    wh__sqlite_log_close(S(st));
    wh__sq_close(&S(st)->conn);
    free(S(st)->path);
    free(st);
}

typedef struct {
    wh__sqlite_store *s;
    bool changed;
} changed_args;

int wh__sqlite_int64_row(void *ud, sqlite3_stmt *st)
{
    *(int64_t *)ud = sqlite3_column_int64(st, 0);
    return 1;
}

static int data_version(wh__sq *c, void *arg)
{
    changed_args *a = arg;
    int64_t v = a->s->data_version;
    int rc = wh__sq_run(c, "data_version", "PRAGMA data_version", wh__sqlite_int64_row, &v, NULL);
    a->changed = v != a->s->data_version;
    a->s->data_version = v;
    return rc;
}

static int changed(wh__store *st, bool *out)
{
    changed_args a = {.s = S(st)};
    int rc = wh__sq_read(&S(st)->conn, data_version, &a);
    *out = a.changed;
    return rc;
}

/* ---- deliveries, outcomes ----------------------------------------------------------- */

typedef struct {
    wh__sqlite_store *s;
    wh__delivery_row *d;
    size_t n;
    int64_t now_ms;
} deliveries_args;

static int add_deliveries(wh__sq *c, void *arg)
{
    deliveries_args *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        wh__delivery_row *d = &a->d[i];
        /* a delivery pending already, here or in another engine, stays as it is: one with
         * a row is pending while its state is 0; a first attempt not made yet has no row,
         * and is pending while a live engine holds its event */
        int rc = wh__sq_run(c, "delivery",
                            "INSERT INTO deliveries(event_seq, endpoint_id, event_id, state, attempts,"
                            " next_ms, skip_only, updated_ms, claimed_by, redelivery) SELECT ?1, ?2, ?3,"
                            " 0, 0, ?4, 0, ?5, ?6, 1 WHERE NOT EXISTS (SELECT 1 FROM events e JOIN engines g"
                            " ON g.id = e.claimed_by WHERE e.seq = ?1 AND e.claimed_by <> ?6"
                            " AND g.lease_until_ms >= ?7)"
                            " ON CONFLICT(event_seq, endpoint_id) DO UPDATE SET state = 0, attempts = 0,"
                            " next_ms = ?4, skip_only = 0, updated_ms = ?5, claimed_by = ?6,"
                            " redelivery = 1"
                            " WHERE state <> 0",
                            NULL, NULL, "ittiiti", d->event_seq, d->endpoint_id, d->event_id,
                            d->next_ms, a->now_ms, a->s->engine_id, wh__wall_ms());
        if (rc != WH_OK)
            return rc;
        d->accepted = wh__sq_changes(c) > 0;
    }
    return WH_OK;
}

static int deliveries_add(wh__store *st, wh__delivery_row *d, size_t n, int64_t now_ms)
{
    deliveries_args a = {S(st), d, n, now_ms};
    return n ? wh__sq_write(&S(st)->conn, add_deliveries, &a) : WH_OK;
}

typedef struct {
    wh__sqlite_store *s;
    const wh__result *r;
    size_t n;
    wh__endpoint_change *c;
    size_t nc;
} results_args;

static int write_results(wh__sq *c, void *arg)
{
    results_args *ra = arg;
    const char *me = ra->s->engine_id;
    for (size_t i = 0; i < ra->n; i++) {
        const wh__result *r = &ra->r[i];
        const wh_attempt *a = r->attempt;
        int rc = WH_OK;
        /* written only while this engine holds the claim: an engine judged dead whose
         * work was taken over must not overwrite what the new holder does */
        if (r->event_seq)
            rc = wh__sq_run(c, "delivery",
                            "INSERT INTO deliveries(event_seq, endpoint_id, event_id, state, attempts,"
                            " next_ms, skip_only, updated_ms, claimed_by) SELECT ?1, ?2, ?3, ?4, ?5,"
                            " ?6, ?7, ?8, ?9 WHERE EXISTS (SELECT 1 FROM events e WHERE e.seq = ?1"
                            " AND e.claimed_by = ?10)"
                            " ON CONFLICT(event_seq, endpoint_id) DO UPDATE SET state = ?4,"
                            " attempts = ?5, next_ms = ?6, skip_only = ?7, updated_ms = ?8,"
                            " claimed_by = ?9 WHERE claimed_by = ?10",
                            NULL, NULL, "ittddiditt", r->event_seq, r->endpoint_id, r->event_id,
                            r->state, r->attempts, r->next_ms, (int)r->skip_only,
                            a ? a->started_ms : wh__wall_ms(),
                            r->state == WH__DSTATE_PENDING ? me : NULL, me);
        if (rc == WH_OK && a)
            rc = wh__sq_run(c, "attempt",
                            "INSERT INTO attempts(event_id, event_type, endpoint_id, url, attempt,"
                            " outcome, http_status, error, started_ms, duration_us, next_attempt_ms,"
                            " response_body, redelivery, run_id, task_id)"
                            " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            NULL, NULL, "ttttdddtiiibdtt", a->event_id, a->event_type,
                            a->endpoint_id, a->url ? a->url : "", a->attempt, (int)a->outcome,
                            a->http_status, a->error, a->started_ms, a->duration_us,
                            a->next_attempt_ms, (const void *)a->response_body, a->response_len,
                            a->redelivery != 0, a->run_id, a->task_id);
        if (rc != WH_OK)
            return rc;
    }
    for (size_t i = 0; i < ra->nc; i++) {
        int rc = wh__sqlite_apply_change(c, &ra->c[i]);
        ra->c[i].version = 0;
        if (rc == WH_OK && ra->c[i].kind == WH__EP_DISABLE)
            rc = wh__sq_run(c, "endpoint", "SELECT version FROM endpoints WHERE id = ? AND enabled = 0",
                            wh__sqlite_int64_row, &ra->c[i].version, "t", ra->c[i].endpoint_id);
        if (rc != WH_OK)
            return rc;
    }
    return WH_OK;
}

static int results(wh__store *st, const wh__result *r, size_t n, wh__endpoint_change *c,
                   size_t nc)
{
    results_args a = {S(st), r, n, c, nc};
    return n || nc ? wh__sq_write(&S(st)->conn, write_results, &a) : WH_OK;
}

/* ---- the log ------------------------------------------------------------------------ */

typedef struct {
    const wh_log_filter *f;
    wh__record_list list;
    size_t limit;
} query_args;

static int attempt_row(void *ud, sqlite3_stmt *st)
{
    query_args *q = ud;
    const void *body = sqlite3_column_blob(st, 11);
    wh_attempt a = {
        .event_id = wh__sq_text(st, 0),
        .event_type = wh__sq_text(st, 1),
        .endpoint_id = wh__sq_text(st, 2),
        .url = wh__sq_text(st, 3),
        .attempt = sqlite3_column_int(st, 4),
        .outcome = (wh_outcome)sqlite3_column_int(st, 5),
        .http_status = sqlite3_column_int(st, 6),
        .error = wh__sq_text(st, 7),
        .started_ms = sqlite3_column_int64(st, 8),
        .duration_us = sqlite3_column_int64(st, 9),
        .next_attempt_ms = sqlite3_column_int64(st, 10),
        .response_body = body,
        .response_len = (size_t)sqlite3_column_bytes(st, 11),
        .redelivery = sqlite3_column_int(st, 12) != 0,
        .run_id = wh__sq_text(st, 13),
        .task_id = wh__sq_text(st, 14),
    };
    return wh__record_list_add(&q->list, &a) ? 0 : 1;
}

static int run_log_query(wh__sq *c, void *arg)
{
    query_args *q = arg;
    const wh_log_filter *f = q->f;
    int rc = wh__sq_run(c, "log query", wh__log_sql(wh__log_shape(f), false), attempt_row, q, "tttiiii",
                        f ? f->endpoint_id : NULL, f ? f->event_id : NULL,
                        f ? f->event_type : NULL, (int64_t)(f ? f->outcomes : 0),
                        f ? f->since_ms : 0, f ? f->until_ms : 0, (int64_t)q->limit);
    if (rc == WH_OK && q->list.oom)
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "log query: out of memory");
    return rc;
}

static int log_query(wh__store *st, const wh_log_filter *f, wh__attempt_cb cb, void *ud)
{
    query_args q = {.f = f, .limit = f && f->limit > 0 ? (size_t)f->limit : 100};
    int rc = wh__sq_read(&S(st)->conn, run_log_query, &q);
    return wh__record_list_hand_over(&q.list, rc, cb, ud); /* with no lock held */
}

typedef struct {
    const char *event_id, *endpoint_id;
    int64_t since_ms;
    void (*event_cb)(void *ud, int64_t seq, const char *type, const char *body, size_t len,
                     const char *endpoint_id);
    void (*failed_cb)(void *ud, const char *event_id);
    void *ud;
    int found;
} find_args;

static int event_row(void *ud, sqlite3_stmt *st)
{
    find_args *a = ud;
    int64_t seq = sqlite3_column_int64(st, 0);
    const char *type = wh__sq_text(st, 1), *body = wh__sq_text(st, 2);
    size_t body_len = (size_t)sqlite3_column_bytes(st, 2);
    wh__target_iter it = {.next = wh__sq_text(st, 3)};
    char id[WH_ID_MAX];
    while (wh__target_next(&it)) {
        if (it.len >= WH_ID_MAX)
            continue;
        memcpy(id, it.id, it.len);
        id[it.len] = '\0';
        a->event_cb(a->ud, seq, type, body, body_len, id);
        a->found++;
    }
    return 1;
}

static int run_find_event(wh__sq *c, void *arg)
{
    find_args *a = arg;
    /* through the deliveries index when the event was attempted, else a scan */
    return wh__sq_run(c, "event",
                      "SELECT seq, event_type, body, targets FROM events WHERE seq = coalesce("
                      "(SELECT event_seq FROM deliveries WHERE event_id = ?1 LIMIT 1),"
                      "(SELECT seq FROM events WHERE id = ?1))",
                      event_row, a, "t", a->event_id);
}

static int find_event(wh__store *st, const char *event_id,
                      void (*cb)(void *ud, int64_t seq, const char *type, const char *body,
                                 size_t len, const char *endpoint_id),
                      void *ud)
{
    find_args a = {.event_id = event_id, .event_cb = cb, .ud = ud};
    int rc = wh__sq_read(&S(st)->conn, run_find_event, &a);
    return rc == WH_OK ? a.found : rc;
}

static int failed_row(void *ud, sqlite3_stmt *st)
{
    find_args *a = ud;
    a->failed_cb(a->ud, wh__sq_text(st, 0));
    a->found++;
    return 0;
}

const char wh__sqlite_finished_sql[] =
    "SELECT DISTINCT event_id FROM deliveries WHERE endpoint_id = ?"
    " AND state IN (2, 3) AND updated_ms >= ? ORDER BY event_id";

static int run_find_failed(wh__sq *c, void *arg)
{
    find_args *a = arg;
    return wh__sq_run(c, "deliveries", wh__sqlite_finished_sql, failed_row, a, "ti",
                      a->endpoint_id, a->since_ms);
}

static int find_failed(wh__store *st, const char *endpoint_id, int64_t since_ms,
                       void (*cb)(void *ud, const char *event_id), void *ud)
{
    find_args a = {.endpoint_id = endpoint_id, .since_ms = since_ms, .failed_cb = cb, .ud = ud};
    int rc = wh__sq_read(&S(st)->conn, run_find_failed, &a);
    return rc == WH_OK ? a.found : rc;
}

/* ---- several engines: ordering per run, rate limits ------------------------------------- */

typedef struct {
    wh__sqlite_store *s;
    wh__order_query *q;
    wh__rate_ask *r;
    size_t n;
} shared_args;

static int flag_true(void *ud, sqlite3_stmt *st)
{
    (void)st;
    *(bool *)ud = true;
    return 1;
}

/* An earlier event of the run that goes to the endpoint and is pending there: with no
 * deliveries row (a first attempt not made), while its event is not this engine's; with a
 * row, while it is pending and not this engine's. A redelivery keeps no order. */
static int ask_order(wh__sq *c, void *arg)
{
    shared_args *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        wh__order_query *q = &a->q[i];
        q->blocked = false;
        int rc = wh__sq_run(c, "order",
                            "SELECT 1 FROM events e LEFT JOIN deliveries d ON d.event_seq = e.seq"
                            " AND d.endpoint_id = ?3 WHERE e.run_id = ?1 AND e.seq < ?2"
                            " AND instr(',' || replace(e.targets, '!', '') || ',', ',' || ?3 || ',') > 0"
                            " AND CASE WHEN d.event_seq IS NULL THEN e.claimed_by IS NOT ?4"
                            " ELSE d.state = 0 AND d.redelivery = 0 AND d.claimed_by IS NOT ?4 END"
                            " LIMIT 1",
                            flag_true, &q->blocked, "titt", q->run_id, q->event_seq,
                            q->endpoint_id, a->s->engine_id);
        if (rc != WH_OK)
            return rc;
    }
    return WH_OK;
}

static int order_blocked(wh__store *st, wh__order_query *q, size_t n)
{
    shared_args a = {.s = S(st), .q = q, .n = n};
    return n ? wh__sq_read(&S(st)->conn, ask_order, &a) : WH_OK;
}

typedef struct {
    bool found;
    double tokens;
    int64_t at_ms;
} bucket_row;

static int read_bucket(void *ud, sqlite3_stmt *st)
{
    bucket_row *b = ud;
    b->found = true;
    b->tokens = sqlite3_column_double(st, 0);
    b->at_ms = sqlite3_column_int64(st, 1);
    return 1;
}

/* Inside the write lock: every engine on this machine counts with the same wall clock. */
static int take_tokens(wh__sq *c, void *arg)
{
    shared_args *a = arg;
    int64_t now = wh__wall_ms();
    for (size_t i = 0; i < a->n; i++) {
        wh__rate_ask *r = &a->r[i];
        bucket_row b = {0};
        int rc = wh__sq_run(c, "rate", "SELECT tokens, updated_ms FROM rate_buckets WHERE endpoint_id = ?",
                            read_bucket, &b, "t", r->endpoint_id);
        if (rc != WH_OK)
            return rc;
        if (!b.found)
            b.at_ms = 0; /* a bucket never used is full */
        r->granted = wh__bucket_take(&b.tokens, &b.at_ms, r->rate_per_s,
                                     wh__rate_shared_burst(r->rate_per_s), r->want, now,
                                     &r->wait_ms);
        /* bound as an integer (micro-tokens): the statement binder knows no doubles */
        rc = wh__sq_run(c, "rate",
                        "INSERT OR REPLACE INTO rate_buckets(endpoint_id, tokens, updated_ms)"
                        " VALUES(?1, ?2 / 1000000.0, ?3)",
                        NULL, NULL, "tii", r->endpoint_id, (int64_t)(b.tokens * 1e6), b.at_ms);
        if (rc != WH_OK)
            return rc;
    }
    return WH_OK;
}

static int rate_take(wh__store *st, wh__rate_ask *r, size_t n)
{
    shared_args a = {.s = S(st), .r = r, .n = n};
    if (S(st)->read_only || !n)
        return WH_OK;
    return wh__sq_write(&S(st)->conn, take_tokens, &a);
}

/* ---- housekeeping ------------------------------------------------------------------- */

typedef struct {
    int64_t before_ms;
    int64_t dedup_before_ms; /* an event with its caller's id stays until then */
    int64_t attempts, events; /* deleted by the last batch */
} prune_args;

static int prune(wh__sq *c, void *arg)
{
    prune_args *p = arg;
    /* an event goes with its deliveries once every target was attempted (a row each:
     * first attempts have none), none is pending, and it is old enough. created_ms has no
     * index: only the events before the first one young enough are looked at (a rowid
     * range, found by a scan that stops at that event), never the whole table each second.
     * An event stamped earlier than one before it (engines' clocks apart) waits for it. */
    static const char *const sql[] = {
        "DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE started_ms < ?1 LIMIT ?2)",
        "CREATE TEMP TABLE IF NOT EXISTS prune_seq(seq INTEGER PRIMARY KEY)",
        "INSERT INTO prune_seq SELECT e.seq FROM events e WHERE e.seq < coalesce("
        "(SELECT seq FROM events WHERE created_ms >= ?1 ORDER BY seq LIMIT 1), 9223372036854775807)"
        " AND e.created_ms < ?1"
        " AND " WH__SQL_ROWS_OF_EVENT " >= " WH__SQL_TARGET_COUNT
        " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq AND d.state = 0)"
        " AND (e.dedup_id IS NULL OR e.created_ms < ?3)"
        " ORDER BY e.seq LIMIT ?2",
        "DELETE FROM deliveries WHERE event_seq IN (SELECT seq FROM prune_seq)",
        "DELETE FROM events WHERE seq IN (SELECT seq FROM prune_seq)",
        "DELETE FROM prune_seq",
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        /* parameters a statement does not have are ignored */
        int rc = wh__sq_run(c, "prune", sql[i], NULL, NULL, "iii", p->before_ms,
                            (int64_t)PRUNE_BATCH, p->dedup_before_ms);
        if (rc != WH_OK)
            return rc;
        if (i == 0)
            p->attempts = wh__sq_changes(c);
        else if (i == 4)
            p->events = wh__sq_changes(c);
    }
    return WH_OK;
}

static int checkpoint(wh__sq *c, void *arg)
{
    (void)arg;
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return rc == SQLITE_OK || rc == SQLITE_BUSY ? WH_OK : wh__sq_fail(c, "checkpoint");
}

static int upkeep(wh__store *st, int64_t now_ms, int64_t retention_ms)
{
    wh__sqlite_store *s = S(st);
    if (s->read_only)
        return WH_OK;
    int rc = WH_OK;
    int64_t now_us = wh__mono_us();
    if (now_us - s->last_checkpoint_us >= CHECKPOINT_EVERY_US) {
        s->last_checkpoint_us = now_us;
        rc = wh__sq_alone(&s->conn, checkpoint, NULL);
    }
    if (retention_ms <= 0 || now_ms - s->last_prune_ms < PRUNE_EVERY_MS)
        return rc;
    /* pruning keeps up with the write rate: batches until nothing old is left, within a
     * time budget; whatever is left is taken up at the next call, not a minute later */
    int64_t start = wh__mono_us();
    prune_args p = {.before_ms = now_ms - retention_ms,
                    .dedup_before_ms = now_ms - s->dedup_window_ms};
    bool behind;
    do {
        if ((rc = wh__sq_write(&s->conn, prune, &p)) != WH_OK)
            return rc;
        behind = p.attempts >= PRUNE_BATCH || p.events >= PRUNE_BATCH;
    } while (behind && wh__mono_us() - start < PRUNE_BUDGET_US);
    if (!behind)
        s->last_prune_ms = now_ms; /* caught up */
    return rc;
}

const wh__store_ops wh__sqlite_ops = {
    .version = 7,
    .name = "sqlite",
    .durable = true,
    .close = close_store,
    .heartbeat = wh__sqlite_heartbeat,
    .release = wh__sqlite_release,
    .claim = wh__sqlite_claim,
    .changed = changed,
    .endpoint_insert = wh__sqlite_endpoint_insert,
    .endpoint_delete = wh__sqlite_endpoint_delete,
    .endpoint_change = wh__sqlite_endpoint_change,
    .endpoints_load = wh__sqlite_endpoints_load,
    .event_add = wh__sqlite_event_add,
    .events_add = wh__sqlite_events_add,
    .deliveries_add = deliveries_add,
    .results = results,
    .log_query = log_query,
    .find_event = find_event,
    .find_failed = find_failed,
    .upkeep = upkeep,
    .get_meta = wh__sqlite_get_meta,
    .queue_redelivery = wh__sqlite_queue_redelivery,
    .queue_recovery = wh__sqlite_queue_recovery,
    .endpoint_stats = wh__sqlite_endpoint_stats,
    .attempt_stats = wh__sqlite_attempt_stats,
    .order_blocked = order_blocked,
    .rate_take = rate_take,
    .endpoint_upsert = wh__sqlite_endpoint_upsert,
    .events_log = wh__sqlite_events_log,
    .events_fold = wh__sqlite_events_fold,
};
