/* A COMMIT whose answer is lost, on the PostgreSQL store: a proxy between the engine and the
 * tests' server (tests/support/pgproxy.c) cuts the connection right after a COMMIT went out,
 * letting it run (committed) or not (rolled back), and the engine is never told which. What
 * the engine then says and does is checked against what the database itself holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg_fixture.h"
#include "pgproxy.h"
#include "support.h"
#include "webhook/webhook.h"

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static wh_ctx *open_via(pgproxy *p, const char *schema)
{
    char uri[256], err[512];
    wh_conf *c = wh_conf_new();
    ck_assert_int_eq(wh_conf_set(c, "store", pgproxy_uri(p, uri, sizeof uri), err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "store.schema", schema, err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "retry.jitter", "0", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

static int emit(wh_ctx *ctx, char id[WH_ID_MAX])
{
    return wh_emit(ctx, &(wh_event){.event_type = "task_run.completed", .run_id = "run_1",
                                    .task_id = "t", .status = "completed"}, id);
}

/* An emit that may meet the connection coming back (bounded); want: the deliveries it queues. */
static void emit_ok(wh_ctx *ctx, int want)
{
    char id[WH_ID_MAX];
    int rc = 0;
    for (int i = 0; i < 50 && (rc = emit(ctx, id)) < 0; i++)
        wh_poll(ctx, 50);
    ck_assert_msg(rc == want, "emit after the lost commit: %d %s", rc, wh_last_error());
}

static void drive_until_settled(wh_ctx *ctx, const char *schema, int timeout_ms)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.deliveries WHERE state = 0", schema);
    int64_t end = wall_ms() + timeout_ms;
    while (wall_ms() < end && pg_sql_int(&cluster, sql) != 0)
        wh_poll(ctx, 50);
    ck_assert_int_eq(pg_sql_int(&cluster, sql), 0);
}

/* The receiver's webhook ids, sorted, joined by commas; the count of requests into *total. */
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void received(rcv *r, char *out, size_t len, size_t *total, size_t *distinct)
{
    size_t n = rcv_count(r, NULL);
    char **ids = calloc(n ? n : 1, sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        rcv_request q;
        ck_assert_int_eq(rcv_get(r, i, &q), 0);
        ids[i] = strdup(q.webhook_id);
        rcv_request_free(&q);
    }
    qsort(ids, n, sizeof *ids, cmp_str);
    size_t used = 0;
    *distinct = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(ids[i], ids[i - 1]) != 0) {
            used += (size_t)snprintf(out + used, len - used, "%s%s", *distinct ? "," : "", ids[i]);
            ck_assert_uint_lt(used, len);
            ++*distinct;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    *total = n;
}

/* The events the database holds, as the receiver's list is. */
static void stored(const char *schema, char *out, size_t len)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(string_agg(id, ',' ORDER BY id COLLATE \"C\"), '') FROM %s.events", schema);
    out[0] = '\0';
    ck_assert_int_eq(pg_sql(&cluster, sql, out, len), 0);
}

/* ---- wh_emit ----------------------------------------------------------------------------- */

static void lost_emit(bool runs, const char *schema)
{
    pgproxy *p = pgproxy_start(cluster.port);
    ck_assert_ptr_nonnull(p);
    rcv *r = rcv_start();
    char url[128], ep[WH_ID_MAX], id[WH_ID_MAX];
    wh_ctx *ctx = open_via(p, schema);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/a", url, sizeof url)}, ep), WH_OK);
    for (int i = 0; i < 3; i++)
        emit_ok(ctx, 1);
    pgproxy_arm(p, "INSERT INTO events", 0, runs);
    int rc = emit(ctx, id);
    ck_assert_int_eq(pgproxy_cuts(p, NULL), 1);
    char sql[256];
    /* never acknowledged unless committed; the message says what happened */
    if (rc == 1) {
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.events WHERE id = '%s'", schema, id);
        ck_assert_int_eq(pg_sql_int(&cluster, sql), 1);
    } else {
        ck_assert_int_eq(rc, WH_ERR_STORE);
        ck_assert_msg(strstr(wh_last_error(), "lost"), "%s", wh_last_error());
    }
    for (int i = 0; i < 3; i++)
        emit_ok(ctx, 1);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.events", schema);
    int64_t events = pg_sql_int(&cluster, sql);
    /* a COMMIT that ran is there, one that never reached the server is not */
    ck_assert_int_eq(events, runs ? 7 : 6);
    ck_assert_int_eq(wh_flush(ctx, 10000), WH_OK);
    drive_until_settled(ctx, schema, 10000);
    char got[4096], want[4096];
    size_t total, distinct;
    received(r, got, sizeof got, &total, &distinct);
    stored(schema, want, sizeof want);
    /* what the database holds is delivered, once each, and nothing else */
    ck_assert_str_eq(got, want);
    ck_assert_uint_eq(total, (size_t)events);
    wh_destroy(ctx);
    rcv_stop(r);
    pgproxy_stop(p);
}

START_TEST(an_emit_whose_commit_ran_unheard_is_delivered_once)
{
    lost_emit(true, "lost_emit_ran");
}
END_TEST

START_TEST(an_emit_whose_commit_never_ran_fails_and_is_never_sent)
{
    lost_emit(false, "lost_emit_not");
}
END_TEST

/* ---- results ----------------------------------------------------------------------------- */

/* How many requests carried webhook-id id. */
static size_t requests_of(rcv *r, const char *id)
{
    size_t n = 0;
    for (size_t i = 0, all = rcv_count(r, NULL); i < all; i++) {
        rcv_request q;
        ck_assert_int_eq(rcv_get(r, i, &q), 0);
        n += strcmp(q.webhook_id, id) == 0;
        rcv_request_free(&q);
    }
    return n;
}

static void lost_results(bool runs, const char *schema)
{
    pgproxy *p = pgproxy_start(cluster.port);
    ck_assert_ptr_nonnull(p);
    rcv *r = rcv_start();
    char url[128], ep[WH_ID_MAX], sql[512];
    wh_ctx *ctx = open_via(p, schema);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/a", url, sizeof url)}, ep), WH_OK);
    /* a first half delivered and stored before, whose outcomes no lost commit holds */
    enum { HALF = 6, N = 2 * HALF };
    char before[HALF][WH_ID_MAX], id[WH_ID_MAX];
    for (int i = 0; i < HALF; i++)
        ck_assert_int_eq(emit(ctx, before[i]), 1);
    ck_assert_int_eq(wh_flush(ctx, 10000), WH_OK);
    drive_until_settled(ctx, schema, 10000);
    pgproxy_arm(p, "INSERT INTO attempts", 0, runs);
    for (int i = 0; i < HALF; i++)
        ck_assert_int_eq(emit(ctx, id), 1);
    int64_t end = wall_ms() + 10000;
    while (wall_ms() < end && pgproxy_cuts(p, NULL) == 0)
        wh_poll(ctx, 20);
    int in_commit = 0;
    ck_assert_int_eq(pgproxy_cuts(p, &in_commit), 1);
    ck_assert_int_gt(in_commit, 0);
    ck_assert_int_le(in_commit, HALF);
    wh_flush(ctx, 10000);
    drive_until_settled(ctx, schema, 20000);
    char got[4096], want[4096];
    size_t total, distinct;
    received(r, got, sizeof got, &total, &distinct);
    stored(schema, want, sizeof want);
    /* every event delivered; repeats only for the outcomes of the lost commit */
    ck_assert_str_eq(got, want);
    ck_assert_uint_eq(distinct, N);
    ck_assert_uint_le(total - distinct, (size_t)in_commit);
    for (int i = 0; i < HALF; i++)
        ck_assert_uint_eq(requests_of(r, before[i]), 1);
    /* settled, none pending */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.deliveries WHERE state <> 1", schema);
    ck_assert_int_eq(pg_sql_int(&cluster, sql), 0);
    /* every attempt logged; one logged twice only if its outcome was in that commit */
    snprintf(sql, sizeof sql, "SELECT count(DISTINCT event_id) FROM %s.attempts", schema);
    ck_assert_int_eq(pg_sql_int(&cluster, sql), N);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.attempts", schema);
    int64_t logged = pg_sql_int(&cluster, sql);
    ck_assert_int_ge(logged, (int64_t)total);
    ck_assert_int_le(logged - N, in_commit);
    for (int i = 0; i < HALF; i++) {
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.attempts WHERE event_id = '%s'", schema,
                 before[i]);
        ck_assert_int_eq(pg_sql_int(&cluster, sql), 1);
    }
    wh_destroy(ctx);
    rcv_stop(r);
    pgproxy_stop(p);
}

START_TEST(results_whose_commit_ran_unheard_are_kept_and_settled)
{
    lost_results(true, "lost_results_ran");
}
END_TEST

START_TEST(results_whose_commit_never_ran_are_written_again)
{
    lost_results(false, "lost_results_not");
}
END_TEST

/* ---- an endpoint change ------------------------------------------------------------------- */

static void get_enabled(void *ud, const wh_endpoint_info *ep) { *(int *)ud = ep->enabled; }

static void lost_change(bool runs, const char *schema)
{
    pgproxy *p = pgproxy_start(cluster.port);
    ck_assert_ptr_nonnull(p);
    rcv *r = rcv_start();
    char url[128], ep[WH_ID_MAX], sql[512];
    wh_ctx *ctx = open_via(p, schema);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/a", url, sizeof url)}, ep), WH_OK);
    pgproxy_arm(p, "UPDATE endpoints SET enabled", 0, runs);
    int rc = wh_endpoint_set_enabled(ctx, ep, 0);
    ck_assert_int_eq(pgproxy_cuts(p, NULL), 1);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.endpoints WHERE id = '%s' AND NOT enabled",
             schema, ep);
    int64_t disabled = pg_sql_int(&cluster, sql);
    ck_assert_int_eq(disabled, runs ? 1 : 0);
    /* success only for what is stored */
    if (rc == WH_OK)
        ck_assert_int_eq(disabled, 1);
    else
        ck_assert_msg(rc == WH_ERR_STORE && strstr(wh_last_error(), "lost"), "%d %s", rc,
                      wh_last_error());
    /* the engine's view comes to the stored row */
    int enabled = -1;
    int64_t end = wall_ms() + 5000;
    do {
        wh_poll(ctx, 20);
        ck_assert_int_eq(wh_endpoint_get(ctx, ep, get_enabled, &enabled), WH_OK);
    } while (enabled != !disabled && wall_ms() < end);
    ck_assert_int_eq(enabled, !disabled);
    /* and so does what it sends */
    emit_ok(ctx, disabled ? 0 : 1);
    wh_flush(ctx, 3000);
    drive_until_settled(ctx, schema, 5000);
    ck_assert_uint_eq(rcv_count(r, NULL), disabled ? 0 : 1);
    wh_destroy(ctx);
    rcv_stop(r);
    pgproxy_stop(p);
}

START_TEST(an_endpoint_change_whose_commit_ran_unheard_is_seen_stored)
{
    lost_change(true, "lost_change_ran");
}
END_TEST

START_TEST(an_endpoint_change_whose_commit_never_ran_fails_and_is_undone)
{
    lost_change(false, "lost_change_not");
}
END_TEST

#define ADD_TEST(tc, fn)                                                                   \
    do {                                                                                   \
        const char *only_ = getenv("WH_TEST_ONLY");                                        \
        if (!only_ || strstr(#fn, only_))                                                  \
            tcase_add_test(tc, fn);                                                        \
    } while (0)

static Suite *suite(void)
{
    Suite *s = suite_create("pg_commit");
    TCase *tc = tcase_create("pg_commit");
    /* one server for every test, stopped and removed however they end */
    tcase_add_unchecked_fixture(tc, pg_fixture_up, pg_fixture_down);
    tcase_set_timeout(tc, 120);
    ADD_TEST(tc, an_emit_whose_commit_ran_unheard_is_delivered_once);
    ADD_TEST(tc, an_emit_whose_commit_never_ran_fails_and_is_never_sent);
    ADD_TEST(tc, results_whose_commit_ran_unheard_are_kept_and_settled);
    ADD_TEST(tc, results_whose_commit_never_ran_are_written_again);
    ADD_TEST(tc, an_endpoint_change_whose_commit_ran_unheard_is_seen_stored);
    ADD_TEST(tc, an_endpoint_change_whose_commit_never_ran_fails_and_is_undone);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
