/* The PostgreSQL store's engine operations (its table, at the end; leases and claims,
 * endpoint rows, events, outcomes and the tools' operations are in store_pg_*.c), and what
 * is left: notifications, deliveries queued again, the attempt log, ordering per run and
 * rate limits shared by several engines, and housekeeping. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log_sql.h"
#include "logsink.h"
#include "pg_array.h"
#include "ratelimit.h"
#include "store.h"
#include "store_pg.h"
#include "util.h"

#define S(st) ((wh__pg_store *)(st))
#define WATCH_MS 100            /* a change made elsewhere is seen within this */
#define PRUNE_EVERY_MS 1000
#define PRUNE_BATCH 1000
#define PRUNE_BUDGET_US 25000

int wh__pg_notify(wh__pg *c, const char *channel, const char *what)
{
    return wh__pg_run(c, "notify", "SELECT pg_notify($1, $2)", NULL, NULL, "tt", channel, what);
}

static void close_store(wh__store *st)
{
    if (!st)
        return;
    wh__pg_close(&S(st)->conn);
    pthread_mutex_destroy(&S(st)->fix_mu);
    free(S(st)->fix);
    free(st);
}

static int changed(wh__store *st, bool *out)
{
    int rc = wh__pg_pump(&S(st)->conn);
    *out = wh__pg_take_notes(&S(st)->conn, WH__PG_NOTE_ENDPOINTS) != 0;
    return rc;
}

/* ---- deliveries queued again -------------------------------------------------------------- */

typedef struct {
    wh__pg_store *s;
    wh__delivery_row *d;
    size_t n;
    int64_t now_ms;
} deliveries_args;

static int add_deliveries(wh__pg *c, void *arg)
{
    deliveries_args *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        wh__delivery_row *d = &a->d[i];
        /* a delivery pending already, here or in another engine, stays as it is */
        int rc = wh__pg_run(c, "delivery",
                            "INSERT INTO deliveries(event_seq, endpoint_id, event_id, state, attempts,"
                            " next_ms, skip_only, updated_ms, claimed_by, redelivery)"
                            " VALUES($1, $2, $3, 0, 0, $4, false, $5, $6, true)"
                            " ON CONFLICT(event_seq, endpoint_id) DO UPDATE SET state = 0, attempts = 0,"
                            " next_ms = $4, skip_only = false, updated_ms = $5, claimed_by = $6,"
                            " redelivery = true, run_id = NULL WHERE deliveries.state <> 0",
                            NULL, NULL, "ittiit", d->event_seq, d->endpoint_id, d->event_id,
                            d->next_ms, a->now_ms, a->s->engine_id);
        if (rc != WH_OK)
            return rc;
        d->accepted = wh__pg_changes(c) > 0;
    }
    return WH_OK;
}

static int deliveries_add(wh__store *st, wh__delivery_row *d, size_t n, int64_t now_ms)
{
    deliveries_args a = {S(st), d, n, now_ms};
    return n ? wh__pg_write(&S(st)->conn, add_deliveries, &a, NULL) : WH_OK;
}

/* ---- the log ------------------------------------------------------------------------------ */

typedef struct {
    const wh_log_filter *f;
    wh__record_list list;
    size_t limit;
} query_args;

static int attempt_row(void *ud, const PGresult *res, int i)
{
    query_args *q = ud;
    size_t blen = 0;
    unsigned char *body = NULL;
    if (!PQgetisnull(res, i, 11) &&
        !(body = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 11), &blen))) {
        q->list.oom = true;
        return 1;
    }
    wh_attempt a = {
        .event_id = PQgetvalue(res, i, 0),
        .event_type = PQgetvalue(res, i, 1),
        .endpoint_id = PQgetvalue(res, i, 2),
        .url = PQgetvalue(res, i, 3),
        .attempt = (int)wh__pg_int(res, i, 4),
        .outcome = (wh_outcome)wh__pg_int(res, i, 5),
        .http_status = (int)wh__pg_int(res, i, 6),
        .error = wh__pg_text(res, i, 7),
        .started_ms = wh__pg_int(res, i, 8),
        .duration_us = wh__pg_int(res, i, 9),
        .next_attempt_ms = wh__pg_int(res, i, 10),
        .response_body = (const char *)body,
        .response_len = blen,
        .redelivery = wh__pg_bool(res, i, 12),
        .run_id = wh__pg_text(res, i, 13),
        .task_id = wh__pg_text(res, i, 14),
    };
    bool kept = wh__record_list_add(&q->list, &a);
    PQfreemem(body);
    return kept ? 0 : 1;
}

static int run_log_query(wh__pg *c, void *arg)
{
    query_args *q = arg;
    const wh_log_filter *f = q->f;
    int rc = wh__pg_run(c, "log query", wh__log_sql(wh__log_shape(f), true), attempt_row, q, "tttiiii",
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
    int rc = wh__pg_read(&S(st)->conn, run_log_query, &q);
    return wh__record_list_hand_over(&q.list, rc, cb, ud); /* with no connection held */
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

static int event_row(void *ud, const PGresult *r, int i)
{
    find_args *a = ud;
    a->event_cb(a->ud, wh__pg_int(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                (size_t)PQgetlength(r, i, 2), PQgetvalue(r, i, 3));
    a->found++;
    return 0;
}

static int run_find_event(wh__pg *c, void *arg)
{
    find_args *a = arg;
    a->found = 0;
    return wh__pg_run(c, "event",
                      "SELECT e.seq, e.event_type, e.body, d.endpoint_id FROM events e"
                      " JOIN deliveries d ON d.event_seq = e.seq WHERE e.id = $1"
                      " ORDER BY d.endpoint_id",
                      event_row, a, "t", a->event_id);
}

static int find_event(wh__store *st, const char *event_id,
                      void (*cb)(void *ud, int64_t seq, const char *type, const char *body,
                                 size_t len, const char *endpoint_id),
                      void *ud)
{
    find_args a = {.event_id = event_id, .event_cb = cb, .ud = ud};
    int rc = wh__pg_read(&S(st)->conn, run_find_event, &a);
    return rc == WH_OK ? a.found : rc;
}

static int failed_row(void *ud, const PGresult *r, int i)
{
    find_args *a = ud;
    a->failed_cb(a->ud, PQgetvalue(r, i, 0));
    a->found++;
    return 0;
}

static int run_find_failed(wh__pg *c, void *arg)
{
    find_args *a = arg;
    a->found = 0;
    return wh__pg_run(c, "deliveries",
                      "SELECT DISTINCT event_id FROM deliveries WHERE endpoint_id = $1"
                      " AND state IN (2, 3) AND updated_ms >= $2 ORDER BY event_id",
                      failed_row, a, "ti", a->endpoint_id, a->since_ms);
}

static int find_failed(wh__store *st, const char *endpoint_id, int64_t since_ms,
                       void (*cb)(void *ud, const char *event_id), void *ud)
{
    find_args a = {.endpoint_id = endpoint_id, .since_ms = since_ms, .failed_cb = cb, .ud = ud};
    int rc = wh__pg_read(&S(st)->conn, run_find_failed, &a);
    return rc == WH_OK ? a.found : rc;
}

/* ---- several engines: ordering per run, rate limits ------------------------------------ */

typedef struct {
    wh__pg_store *s;
    wh__order_query *q;
    wh__rate_ask *r;
    size_t n;
    bool oom;
} shared_args;

static int blocked_row(void *ud, const PGresult *r, int i)
{
    shared_args *a = ud;
    int64_t k = wh__pg_int(r, i, 0) - 1; /* ordinality counts from 1 */
    if (k >= 0 && (size_t)k < a->n)
        a->q[k].blocked = true;
    return 0;
}

/* One statement for every query: which of them has an earlier delivery of its endpoint and
 * run pending that another engine (or none) holds. */
static int ask_order(wh__pg *c, void *arg)
{
    shared_args *a = arg;
    wh__pg_arr eps = {0}, runs = {0}, seqs = {0};
    for (size_t i = 0; i < a->n; i++) {
        a->q[i].blocked = false;
        wh__pg_arr_text(&eps, a->q[i].endpoint_id);
        wh__pg_arr_text(&runs, a->q[i].run_id);
        wh__pg_arr_int(&seqs, a->q[i].event_seq);
    }
    const char *ev = wh__pg_arr_end(&eps), *rv = wh__pg_arr_end(&runs), *sv = wh__pg_arr_end(&seqs);
    int rc = ev && rv && sv
                 ? wh__pg_run(c, "order",
                              "SELECT k.i FROM unnest($1::bigint[], $2::text[], $3::text[])"
                              " WITH ORDINALITY AS k(seq, ep, run, i) WHERE EXISTS(SELECT 1 FROM deliveries d"
                              " WHERE d.endpoint_id = k.ep AND d.run_id = k.run AND d.event_seq < k.seq"
                              " AND d.state = 0 AND d.claimed_by IS DISTINCT FROM $4)",
                              blocked_row, a, "tttt", sv, ev, rv, a->s->engine_id)
                 : wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    wh__pg_arr_free(&eps);
    wh__pg_arr_free(&runs);
    wh__pg_arr_free(&seqs);
    return rc;
}

static int order_blocked(wh__store *st, wh__order_query *q, size_t n)
{
    shared_args a = {.s = S(st), .q = q, .n = n};
    if (!n || !S(st)->engine_id[0])
        return WH_OK;
    return wh__pg_read(&S(st)->conn, ask_order, &a);
}

static int bucket_row(void *ud, const PGresult *r, int i)
{
    wh__rate_ask *ask = ud;
    double tokens = strtod(PQgetvalue(r, i, 0), NULL);
    ask->granted = (int)wh__pg_int(r, i, 1);
    /* until the next whole token, from what is left */
    ask->wait_ms = tokens >= 1.0 ? 0 : (int64_t)((1.0 - tokens) * 1000.0 / ask->rate_per_s) + 1;
    return 1;
}

/* One atomic statement per endpoint: the row is refilled to the server's clock (every engine
 * counts with the same one), capped at a second's worth, and the grant taken from it; a
 * bucket never used is full. */
static int take_tokens(wh__pg *c, void *arg)
{
    shared_args *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        wh__rate_ask *r = &a->r[i];
        char rate[40], burst[40];
        snprintf(rate, sizeof rate, "%.17g", r->rate_per_s);
        snprintf(burst, sizeof burst, "%.17g", wh__rate_shared_burst(r->rate_per_s));
        r->granted = 0;
        r->wait_ms = 0;
        int rc = wh__pg_run(
            c, "rate",
            "WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms)"
            " INSERT INTO rate_buckets AS b(endpoint_id, tokens, updated_ms, granted)"
            " SELECT $1, $3::float8 - least($4::int, floor($3::float8)), now.ms,"
            " least($4::int, floor($3::float8))::int FROM now"
            " ON CONFLICT(endpoint_id) DO UPDATE SET"
            " granted = least($4::int, floor(least($3::float8, b.tokens"
            "  + greatest(0, excluded.updated_ms - b.updated_ms) * $2::float8 / 1000)))::int,"
            " tokens = least($3::float8, b.tokens + greatest(0, excluded.updated_ms - b.updated_ms)"
            "  * $2::float8 / 1000) - least($4::int, floor(least($3::float8, b.tokens"
            "  + greatest(0, excluded.updated_ms - b.updated_ms) * $2::float8 / 1000))),"
            " updated_ms = greatest(b.updated_ms, excluded.updated_ms)"
            " RETURNING tokens, granted",
            bucket_row, r, "tttd", r->endpoint_id, rate, burst, r->want);
        if (rc != WH_OK)
            return rc;
    }
    return WH_OK;
}

static int rate_take(wh__store *st, wh__rate_ask *r, size_t n)
{
    shared_args a = {.s = S(st), .r = r, .n = n};
    if (!n || S(st)->read_only)
        return WH_OK;
    return wh__pg_write(&S(st)->conn, take_tokens, &a, NULL);
}

/* ---- housekeeping ------------------------------------------------------------------------- */

typedef struct {
    int64_t before_ms;
    int64_t dedup_before_ms; /* an event with its caller's id stays until then */
    int64_t attempts, events; /* deleted by the last batch */
} prune_args;

static int prune(wh__pg *c, void *arg)
{
    prune_args *p = arg;
    int rc = wh__pg_run(c, "prune",
                        "DELETE FROM attempts WHERE id IN (SELECT id FROM attempts"
                        " WHERE started_ms < $1 ORDER BY started_ms LIMIT $2)",
                        NULL, NULL, "id", p->before_ms, PRUNE_BATCH);
    p->attempts = wh__pg_changes(c);
    /* an event goes with its deliveries once none is pending and it is old enough */
    if (rc == WH_OK)
        rc = wh__pg_run(c, "prune",
                        "WITH old AS (SELECT e.seq FROM events e WHERE e.created_ms < $1"
                        "  AND NOT EXISTS(SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq"
                        "  AND d.state = 0) AND (e.dedup_id IS NULL OR e.created_ms < $3)"
                        "  ORDER BY e.created_ms LIMIT $2),"
                        " gone AS (DELETE FROM deliveries d USING old WHERE d.event_seq = old.seq)"
                        " DELETE FROM events e USING old WHERE e.seq = old.seq",
                        NULL, NULL, "idi", p->before_ms, PRUNE_BATCH, p->dedup_before_ms);
    p->events = wh__pg_changes(c);
    return rc;
}

static int upkeep(wh__store *st, int64_t now_ms, int64_t retention_ms)
{
    wh__pg_store *s = S(st);
    if (s->read_only || retention_ms <= 0 || now_ms - s->last_prune_ms < PRUNE_EVERY_MS)
        return WH_OK;
    /* pruning keeps up with the write rate: batches until nothing old is left, within a
     * time budget; whatever is left is taken up at the next call */
    int64_t start = wh__mono_us();
    prune_args p = {.before_ms = now_ms - retention_ms,
                    .dedup_before_ms = now_ms - s->dedup_window_ms};
    bool behind;
    do {
        int rc = wh__pg_write(&s->conn, prune, &p, NULL);
        if (rc != WH_OK)
            return rc;
        behind = p.attempts >= PRUNE_BATCH || p.events >= PRUNE_BATCH;
    } while (behind && wh__mono_us() - start < PRUNE_BUDGET_US);
    if (!behind)
        s->last_prune_ms = now_ms;
    return WH_OK;
}

const wh__store_ops wh__pg_ops = {
    .version = 6,
    .name = "postgresql",
    .durable = true,
    .close = close_store,
    .heartbeat = wh__pg_heartbeat,
    .release = wh__pg_release,
    .claim = wh__pg_claim,
    .changed = changed,
    .endpoint_insert = wh__pg_endpoint_insert,
    .endpoint_delete = wh__pg_endpoint_delete,
    .endpoint_change = wh__pg_endpoint_change,
    .endpoints_load = wh__pg_endpoints_load,
    .event_add = wh__pg_event_add,
    .events_add = wh__pg_events_add,
    .deliveries_add = deliveries_add,
    .results = wh__pg_results,
    .log_query = log_query,
    .find_event = find_event,
    .find_failed = find_failed,
    .upkeep = upkeep,
    .watch_ms = WATCH_MS,
    .get_meta = wh__pg_get_meta,
    .queue_redelivery = wh__pg_queue_redelivery,
    .queue_recovery = wh__pg_queue_recovery,
    .endpoint_stats = wh__pg_endpoint_stats,
    .attempt_stats = wh__pg_attempt_stats,
    .order_blocked = order_blocked,
    .rate_take = rate_take,
    .endpoint_upsert = wh__pg_endpoint_upsert,
};
