/* The SQLite store on a real file: durable emit, restart, migrations, the log,
 * redelivery, recovery, retention, group commit, and a real SIGKILL. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mock.h"
#include "scratch.h"
#include "support.h"
#include "webhook/webhook.h"

static char dir[64];
static char db_path[128];

static void make_dir(void)
{
    scratch_dir_make(dir, sizeof dir, "wh-store");
    snprintf(db_path, sizeof db_path, "%s/webhooks.db", dir);
}

static void remove_dir(void) { scratch_dir_remove(dir); }

static wh_ctx *open_store(fake_clock *clock, const char *const *settings)
{
    wh_conf *c = wh_conf_new();
    char err[256], store[160];
    snprintf(store, sizeof store, "sqlite:%s", db_path);
    ck_assert_int_eq(wh_conf_set(c, "store", store, err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "retry.jitter", "0", err, sizeof err), WH_OK);
    /* the receivers live on loopback, which the address guard refuses by default */
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    for (const char *const *s = settings; s && *s; s += 2)
        ck_assert_msg(wh_conf_set(c, s[0], s[1], err, sizeof err) == WH_OK, "%s", err);
    if (clock)
        wh_conf_set_clock(c, fake_clock_now, clock);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

static int emit(wh_ctx *ctx, char id[WH_ID_MAX])
{
    return wh_emit(ctx, &(wh_event){.event_type = "task_run.completed", .run_id = "run_1", .task_id = "t", .status = "completed"}, id);
}

static uint64_t pending(wh_ctx *ctx)
{
    wh_stats_info st;
    wh_stats(ctx, &st);
    return st.pending + st.in_flight;
}

START_TEST(file_is_private_and_wal)
{
    make_dir();
    wh_ctx *ctx = open_store(NULL, NULL);
    struct stat st;
    ck_assert_int_eq(stat(db_path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    wh_destroy(ctx);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    sqlite3_close(db);
    remove_dir();
}
END_TEST

START_TEST(endpoints_and_pending_retries_survive_restart)
{
    make_dir();
    rcv *r = rcv_start();
    rcv_script(r, "/x", (rcv_rule[]){{.status = 500}}, 1, (rcv_rule){.status = 200});
    fake_clock clock = {.now_ms = (int64_t)time(NULL) * 1000};
    wh_ctx *ctx = open_store(&clock, NULL);
    char url[128], ep[WH_ID_MAX], ev[WH_ID_MAX];
    rcv_url(r, "/x", url, sizeof url);
    const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url, .secret = secret, .description = "x"}, ep), WH_OK);
    ck_assert_int_eq(emit(ctx, ev), 1);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/x"), 1);
    wh_destroy(ctx);

    ctx = open_store(&clock, NULL);
    ck_assert_int_eq(wh_endpoint_list(ctx, NULL, NULL), 1);
    ck_assert_uint_eq(pending(ctx), 1);
    ck_assert_int_eq(wh_flush(ctx, 2000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/x"), 1); /* not before its time */
    clock.now_ms += 5000;
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/x"), 2);
    rcv_request q;
    rcv_get(r, 1, &q);
    ck_assert_str_eq(q.webhook_id, ev);
    ck_assert_int_eq(wh_verify(secret, q.webhook_id, q.webhook_timestamp, q.webhook_signature, q.body, q.body_len, 0, 0), WH_OK);
    rcv_request_free(&q);
    ck_assert_uint_eq(pending(ctx), 0);
    /* the log carries both attempts, newest first */
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){.event_id = ev}, NULL, NULL), 2);
    wh_destroy(ctx);
    rcv_stop(r);
    remove_dir();
}
END_TEST

START_TEST(deliveries_to_an_endpoint_removed_offline_are_settled_not_kept_pending)
{
    make_dir();
    wh_ctx *ctx = open_store(NULL, NULL);
    char url[64], ep[WH_ID_MAX];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/gone", closed_port());
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url}, ep), WH_OK);
    ck_assert_int_eq(emit(ctx, NULL), 1);
    wh_destroy(ctx); /* never polled: the delivery is pending in the file */
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "DELETE FROM endpoints", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ctx = open_store(NULL, NULL);
    ck_assert_uint_eq(pending(ctx), 0);
    /* an idle engine on a durable store still wakes to watch for other processes */
    int t = wh_timeout_ms(ctx);
    ck_assert_int_ge(t, 0);
    ck_assert_int_le(t, 1000);
    wh_destroy(ctx);
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT state FROM deliveries", -1, &st, NULL);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 3); /* skipped */
    sqlite3_finalize(st);
    sqlite3_close(db);
    remove_dir();
}
END_TEST

START_TEST(retention_keeps_an_old_event_with_a_target_not_yet_attempted)
{
    make_dir();
    rcv *r = rcv_start();
    char a[WH_ID_MAX], b[WH_ID_MAX], url[128];
    const char *set[] = {"log.retention", "1h", NULL};
    wh_ctx *ctx = open_store(NULL, set);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/a", url, sizeof url)}, a), WH_OK);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/b", url, sizeof url)}, b), WH_OK);
    wh_destroy(ctx);
    /* a day-old event: delivered to A, B's first attempt never made (a long outage) */
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO events(seq, id, event_type, body, created_ms, targets)"
             " VALUES(1, 'evt_old', 'task_run.completed', '{}', 1, '%s,%s');"
             "INSERT INTO deliveries(event_seq, endpoint_id, event_id, state, attempts, next_ms,"
             " skip_only, updated_ms) VALUES(1, '%s', 'evt_old', 1, 1, 0, 0, 1);",
             a, b, a);
    ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ctx = open_store(NULL, set);
    ck_assert_uint_eq(pending(ctx), 1);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK); /* prunes first, then delivers */
    ck_assert_uint_eq(rcv_count(r, "/b"), 1);
    ck_assert_uint_eq(rcv_count(r, "/a"), 0);
    wh_destroy(ctx);
    /* the prune that ran before B's attempt left the event alone */
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM events", -1, &st, NULL);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    rcv_stop(r);
    remove_dir();
}
END_TEST

static void keep_enabled(void *ud, const wh_endpoint_info *ep) { *(int *)ud = ep->enabled; }

START_TEST(a_call_whose_store_write_fails_changes_nothing)
{
    make_dir();
    /* store.sync=full: an emit is a commit of the store's (with normal it goes to the
     * engine's log, which takes no lock: test_emit_log) */
    static const char *const full[] = {"store.sync", "full", NULL};
    wh_ctx *ctx = open_store(NULL, full);
    char url[64], ep[WH_ID_MAX];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", closed_port());
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url}, ep), WH_OK);
    /* another process holds the write lock past the busy timeout (5 s) */
    sqlite3 *other;
    ck_assert_int_eq(sqlite3_open(db_path, &other), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_eq(wh_endpoint_set_enabled(ctx, ep, 0), WH_ERR_STORE);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "store"));
    int enabled = -1;
    ck_assert_int_eq(wh_endpoint_get(ctx, ep, keep_enabled, &enabled), WH_OK);
    ck_assert_int_eq(enabled, 1);
    ck_assert_int_eq(emit(ctx, NULL), WH_ERR_STORE);
    ck_assert_uint_eq(pending(ctx), 0);
    sqlite3_exec(other, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(other);
    /* once the lock is gone, the same calls work */
    ck_assert_int_eq(wh_endpoint_set_enabled(ctx, ep, 0), WH_OK);
    ck_assert_int_eq(wh_endpoint_get(ctx, ep, keep_enabled, &enabled), WH_OK);
    ck_assert_int_eq(enabled, 0);
    wh_destroy(ctx);
    remove_dir();
}
END_TEST

/* The first schema, as version 1 of the library wrote it. */
static const char *schema_v1 =
    "CREATE TABLE endpoints(id TEXT PRIMARY KEY, url TEXT NOT NULL, event_types TEXT NOT NULL,"
    " secret TEXT NOT NULL, old_secret TEXT, old_until_ms INTEGER NOT NULL DEFAULT 0,"
    " enabled INTEGER NOT NULL, disabled_reason TEXT, description TEXT NOT NULL DEFAULT '',"
    " created_ms INTEGER NOT NULL);"
    "CREATE TABLE events(seq INTEGER PRIMARY KEY, id TEXT NOT NULL, event_type TEXT NOT NULL,"
    " body TEXT NOT NULL, created_ms INTEGER NOT NULL, targets TEXT NOT NULL);"
    "CREATE TABLE deliveries(event_seq INTEGER NOT NULL, endpoint_id TEXT NOT NULL,"
    " event_id TEXT NOT NULL, state INTEGER NOT NULL, attempts INTEGER NOT NULL,"
    " next_ms INTEGER NOT NULL, skip_only INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    " PRIMARY KEY(event_seq, endpoint_id)) WITHOUT ROWID;"
    "CREATE INDEX deliveries_by_event ON deliveries(event_id);"
    "CREATE TABLE attempts(id INTEGER PRIMARY KEY, event_id TEXT NOT NULL,"
    " event_type TEXT NOT NULL, endpoint_id TEXT NOT NULL, url TEXT NOT NULL,"
    " attempt INTEGER NOT NULL, outcome INTEGER NOT NULL, http_status INTEGER NOT NULL,"
    " error TEXT, started_ms INTEGER NOT NULL, duration_us INTEGER NOT NULL,"
    " next_attempt_ms INTEGER NOT NULL, response_body BLOB);"
    "CREATE INDEX attempts_by_time ON attempts(started_ms);"
    "PRAGMA user_version=1;";

START_TEST(store_of_first_schema_migrates_and_works)
{
    make_dir();
    rcv *r = rcv_start();
    char url[128];
    rcv_url(r, "/old", url, sizeof url);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, schema_v1, NULL, NULL, NULL), SQLITE_OK);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO endpoints(id, url, event_types, secret, enabled, created_ms)"
             " VALUES('ep_old', '%s', 'task_run.*', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 1, 1);"
             /* one event retrying, one never attempted */
             "INSERT INTO events VALUES(1, 'evt_old', 'task_run.completed', '{\"id\":\"evt_old\"}', 1, 'ep_old');"
             "INSERT INTO deliveries VALUES(1, 'ep_old', 'evt_old', 0, 1, 0, 0, 1);"
             "INSERT INTO events VALUES(2, 'evt_new', 'task_run.started', '{\"id\":\"evt_new\"}', 2, 'ep_old');",
             url);
    ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    wh_ctx *ctx = open_store(NULL, NULL);
    ck_assert_int_eq(wh_endpoint_list(ctx, NULL, NULL), 1);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/old"), 2);
    for (size_t i = 0; i < 2; i++) {
        rcv_request q;
        rcv_get(r, i, &q);
        ck_assert_int_eq(strcmp(q.webhook_id, "evt_old") == 0 || strcmp(q.webhook_id, "evt_new") == 0, 1);
        if (strcmp(q.webhook_id, "evt_old") == 0)
            ck_assert_str_eq(q.body, "{\"id\":\"evt_old\"}");
        rcv_request_free(&q);
    }
    ck_assert_int_eq(emit(ctx, NULL), 1);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/old"), 3);
    wh_destroy(ctx);
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    sqlite3_step(st);
    ck_assert_int_ge(sqlite3_column_int(st, 0), 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
    rcv_stop(r);
    remove_dir();
}
END_TEST

static bool request_verifies(rcv *r, size_t i, const char *secret)
{
    rcv_request q;
    ck_assert_int_eq(rcv_get(r, i, &q), 0);
    bool ok = wh_verify(secret, q.webhook_id, q.webhook_timestamp, q.webhook_signature, q.body,
                        q.body_len, 0, 0) == WH_OK;
    rcv_request_free(&q);
    return ok;
}

static void exec_sql(const char *sql)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    char *err = NULL;
    ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK, "%s: %s", sql, err);
    sqlite3_close(db);
}

/* A store of the first schema keeps its one old secret through the migration to the list of
 * them; and a rotation by an engine of an older library that still has the store open (it
 * writes only old_secret) adds its old secret to the ones stored. */
START_TEST(an_old_secret_of_the_first_schema_keeps_signing)
{
    make_dir();
    rcv *r = rcv_start();
    char url[128], sql[1024];
    rcv_url(r, "/old", url, sizeof url);
    const char *a = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", *b = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
               *c = "whsec_dGhpcyBpcyBhIHRoaXJkIHRlc3Qgc2VjcmV0IQ==";
    long long until = (long long)time(NULL) * 1000 + 3600000;
    exec_sql(schema_v1);
    snprintf(sql, sizeof sql,
             "INSERT INTO endpoints(id, url, event_types, secret, old_secret, old_until_ms, enabled,"
             " created_ms) VALUES('ep_old', '%s', '*', '%s', '%s', %lld, 1, 1)", url, b, a, until);
    exec_sql(sql);

    wh_ctx *ctx = open_store(NULL, NULL);
    ck_assert_int_eq(emit(ctx, NULL), 1);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/old"), 1);
    ck_assert(request_verifies(r, 0, b));
    ck_assert(request_verifies(r, 0, a));
    wh_destroy(ctx);
    sqlite3 *db;
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT old_secrets FROM endpoints", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    char want[256];
    snprintf(want, sizeof want, "%lld:%s", until, a);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), want);
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* the older engine rotates b to c: its one column names b, the list still a */
    snprintf(sql, sizeof sql, "UPDATE endpoints SET secret = '%s', old_secret = secret,"
             " old_until_ms = %lld, version = version + 1", c, until);
    exec_sql(sql);
    ctx = open_store(NULL, NULL);
    ck_assert_int_eq(emit(ctx, NULL), 1);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/old"), 2);
    ck_assert(request_verifies(r, 1, c));
    ck_assert(request_verifies(r, 1, b));
    ck_assert(request_verifies(r, 1, a));
    wh_destroy(ctx);
    rcv_stop(r);
    remove_dir();
}
END_TEST

typedef struct {
    char ids[64][WH_ID_MAX];
    int outcomes[64];
    int64_t started[64];
    int n, redeliveries;
} rows;

static void keep_row(void *ud, const wh_attempt *a)
{
    rows *r = ud;
    snprintf(r->ids[r->n], WH_ID_MAX, "%s", a->event_id);
    r->outcomes[r->n] = a->outcome;
    r->started[r->n] = a->started_ms;
    r->redeliveries += a->redelivery;
    r->n++;
}

static void log_filters_and_order(bool durable)
{
    make_dir();
    rcv *r = rcv_start();
    rcv_script(r, "/bad", NULL, 0, (rcv_rule){.status = 500});
    fake_clock clock = {.now_ms = (int64_t)time(NULL) * 1000};
    const char *set[] = {"retry.schedule", "1s", NULL};
    wh_ctx *ctx;
    if (durable) {
        ctx = open_store(&clock, set);
    } else {
        wh_conf *c = wh_conf_new();
        char err[256];
        wh_conf_set(c, "retry.schedule", "1s", err, sizeof err);
        wh_conf_set(c, "retry.jitter", "0", err, sizeof err);
        wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err);
        wh_conf_set_clock(c, fake_clock_now, &clock);
        ctx = wh_new(c, err, sizeof err);
    }
    char good[WH_ID_MAX], bad[WH_ID_MAX], url[128], ev[3][WH_ID_MAX];
    const char *done[] = {"task_run.completed", NULL};
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/good", url, sizeof url), .event_types = done}, good), WH_OK);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/bad", url, sizeof url)}, bad), WH_OK);
    for (int i = 0; i < 3; i++) {
        emit(ctx, ev[i]);
        ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
        clock.now_ms += 1000;
    }
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK); /* the bad endpoint's retries give up */
    rows all = {0};
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){0}, keep_row, &all), 9);
    for (int i = 1; i < all.n; i++)
        ck_assert_int_ge(all.started[i - 1], all.started[i]); /* newest first */
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){.endpoint_id = good}, NULL, NULL), 3);
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){.endpoint_id = bad, .outcomes = WH_OUTCOME_BIT(WH_OUTCOME_FAILED)}, NULL, NULL), 3);
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){.event_id = ev[1]}, NULL, NULL), 3);
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){.event_type = "workflow_run.started"}, NULL, NULL), 0);
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){.limit = 2}, NULL, NULL), 2);
    rows recent = {0};
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){.since_ms = clock.now_ms - 1500}, keep_row, &recent), 4); /* the last two rounds */
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){.until_ms = all.started[all.n - 1]}, NULL, NULL), 2);
    /* a zeroed filter is every outcome; outcomes is a set */
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){0}, NULL, NULL), 9);
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){.outcomes = WH_OUTCOME_BIT(WH_OUTCOME_DELIVERED) | WH_OUTCOME_BIT(WH_OUTCOME_FAILED)}, NULL, NULL), 6);
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){.outcomes = WH_OUTCOME_BIT(WH_OUTCOME_RETRYING)}, NULL, NULL), 3);
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){.outcomes = WH_OUTCOME_BIT(WH_OUTCOME_SKIPPED)}, NULL, NULL), 0);
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){.outcomes = WH_OUTCOME_BIT(4)}, NULL, NULL), WH_ERR_INVALID);
    ck_assert_msg(strstr(wh_last_error(), "outcomes"), "%s", wh_last_error());
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){.limit = -1}, NULL, NULL), WH_ERR_INVALID);
    ck_assert_msg(strstr(wh_last_error(), "limit"), "%s", wh_last_error());
    /* a limit far above what is there costs what is there, not the limit */
    rows huge = {0};
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){.limit = INT_MAX}, keep_row, &huge), 9);
    ck_assert_str_eq(huge.ids[0], all.ids[0]);

    /* redeliver: same id, again, to both; recover: the bad endpoint's failures */
    size_t before = rcv_count(r, NULL);
    ck_assert_int_eq(wh_redeliver(ctx, ev[0], NULL), 2);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, NULL), before + 2);
    rcv_request q;
    rcv_get(r, before, &q);
    ck_assert_str_eq(q.webhook_id, ev[0]);
    rcv_request_free(&q);
    /* the log tells the redelivered attempts from the first round */
    rows again = {0};
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){.event_id = ev[0]}, keep_row, &again), 5);
    ck_assert_int_eq(again.redeliveries, 2);
    ck_assert_int_eq(all.redeliveries, 0);
    ck_assert_int_eq(wh_redeliver(ctx, ev[0], good), 1);
    ck_assert_int_eq(wh_redeliver(ctx, "evt_nope", NULL), WH_ERR_NOTFOUND);
    ck_assert_int_eq(wh_redeliver(ctx, NULL, NULL), WH_ERR_INVALID);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    rcv_script(r, "/bad", NULL, 0, (rcv_rule){.status = 204});
    size_t bad_before = rcv_count(r, "/bad");
    clock.now_ms += 5000;
    /* ev[0] is already on its way to /bad again (redelivered above): not recovered twice */
    int recovered = wh_recover(ctx, bad, 0);
    ck_assert_int_eq(recovered, 2);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/bad"), bad_before + 3);
    ck_assert_int_eq(wh_recover(ctx, "ep_unknown", 0), WH_ERR_NOTFOUND);
    wh_destroy(ctx);
    rcv_stop(r);
    remove_dir();
}

START_TEST(log_query_redeliver_recover_sqlite) { log_filters_and_order(true); }
END_TEST

START_TEST(log_query_redeliver_recover_memory) { log_filters_and_order(false); }
END_TEST

typedef struct {
    char run_ids[8][256];
    int n;
} run_rows;

static void keep_run_id(void *ud, const wh_attempt *a)
{
    run_rows *r = ud;
    snprintf(r->run_ids[r->n++], sizeof r->run_ids[0], "%s", a->run_id ? a->run_id : "(none)");
}

/* The memory store's log is a ring of the newest attempts: once it is full each new one
 * takes the oldest one's place, longer or shorter than it; what the log and redelivery read
 * back is the new attempt's, whole. */
START_TEST(memory_ring_keeps_the_newest_attempts_whole)
{
    rcv *r = rcv_start();
    wh_conf *c = wh_conf_new();
    char err[256], url[128];
    ck_assert_int_eq(wh_conf_set(c, "log.ring_size", "3", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/ring", url, sizeof url)}, NULL), WH_OK);
    static const size_t lens[] = {1, 200, 3, 255, 17, 120, 2};
    enum { N = sizeof lens / sizeof lens[0] };
    char ids[N][WH_ID_MAX], run_ids[N][256];
    for (size_t i = 0; i < N; i++) {
        memset(run_ids[i], 'a' + (int)i, lens[i]);
        run_ids[i][lens[i]] = '\0';
        ck_assert_int_eq(wh_emit(ctx, &(wh_event){.event_type = "task_run.completed", .run_id = run_ids[i], .task_id = "t", .status = "completed"}, ids[i]), 1);
        ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    }
    run_rows got = {0};
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){0}, keep_run_id, &got), 3);
    for (int k = 0; k < 3; k++)
        ck_assert_str_eq(got.run_ids[k], run_ids[N - 1 - k]); /* newest first */
    /* redelivery finds the body in the ring: the same bytes go out again */
    ck_assert_int_eq(wh_redeliver(ctx, ids[N - 2], NULL), 1);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/ring"), N + 1);
    rcv_request first, again;
    ck_assert_int_eq(rcv_get(r, N - 2, &first), 0);
    ck_assert_int_eq(rcv_get(r, N, &again), 0);
    ck_assert_str_eq(again.webhook_id, ids[N - 2]);
    ck_assert_uint_eq(again.body_len, first.body_len);
    ck_assert_mem_eq(again.body, first.body, first.body_len);
    rcv_request_free(&first);
    rcv_request_free(&again);
    ck_assert_int_eq(wh_redeliver(ctx, ids[0], NULL), WH_ERR_NOTFOUND); /* out of the ring */
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

START_TEST(retention_prunes_old_attempts)
{
    make_dir();
    rcv *r = rcv_start();
    fake_clock clock = {.now_ms = (int64_t)time(NULL) * 1000};
    const char *set[] = {"log.retention", "1h", NULL};
    wh_ctx *ctx = open_store(&clock, set);
    char url[128];
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/p", url, sizeof url)}, NULL), WH_OK);
    for (int i = 0; i < 5; i++)
        emit(ctx, NULL);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){0}, NULL, NULL), 5);
    clock.now_ms += 30 * 60000;
    emit(ctx, NULL);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    clock.now_ms += 45 * 60000; /* the first five are 75 min old, the last 45 */
    wh_poll(ctx, 0);
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){0}, NULL, NULL), 1);
    wh_destroy(ctx);
    sqlite3 *db;
    sqlite3_open(db_path, &db);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM deliveries)", -1, &st, NULL);
    sqlite3_step(st);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 1);
    ck_assert_int_eq(sqlite3_column_int(st, 1), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    rcv_stop(r);
    remove_dir();
}
END_TEST

typedef struct {
    wh_ctx *ctx;
    int n, ok;
} emitter;

static void *emit_many(void *arg)
{
    emitter *e = arg;
    for (int i = 0; i < e->n; i++)
        e->ok += emit(e->ctx, NULL) == 1;
    return NULL;
}

START_TEST(concurrent_durable_emits_are_all_committed)
{
    make_dir();
    wh_ctx *ctx = open_store(NULL, NULL);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/down", closed_port());
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url}, NULL), WH_OK);
    enum { T = 4, N = 2000 };
    pthread_t th[T];
    emitter e[T];
    for (int i = 0; i < T; i++) {
        e[i] = (emitter){.ctx = ctx, .n = N};
        pthread_create(&th[i], NULL, emit_many, &e[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(e[i].ok, N);
    }
    wh_destroy(ctx); /* never polled: everything is still pending, in the file */
    ctx = open_store(NULL, NULL);
    ck_assert_uint_eq(pending(ctx), T * N);
    wh_destroy(ctx);
    remove_dir();
}
END_TEST

/* ---- crash safety with a real SIGKILL ---------------------------------------- */

static void child_emit_forever(const char *url, int ack_fd)
{
    /* runs in a forked child: emits and delivers until killed */
    wh_ctx *ctx = open_store(NULL, NULL);
    if (wh_endpoint_list(ctx, NULL, NULL) == 0)
        wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url}, NULL);
    for (int i = 0; i < 5000; i++) {
        char id[WH_ID_MAX];
        if (emit(ctx, id) == 1) {
            id[WH_ID_MAX - 1] = '\n';
            if (write(ack_fd, id, WH_ID_MAX) != WH_ID_MAX)
                _exit(3);
        }
        if (i % 10 == 0)
            wh_poll(ctx, 0);
    }
    wh_flush(ctx, 10000);
    _exit(0);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

START_TEST(killed_engine_loses_no_acknowledged_event)
{
    static const int kill_after_ms[] = {20, 150, 400, 900};
    rcv *r = rcv_start();
    char url[128];
    rcv_url(r, "/crash", url, sizeof url);
    make_dir();
    size_t acknowledged_total = 0;
    char **acked = NULL;
    size_t nacked = 0, cap = 0;
    int killed_mid_run = 0;
    srand((unsigned)time(NULL));
    for (size_t round = 0; round < sizeof kill_after_ms / sizeof kill_after_ms[0]; round++) {
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            close(p[0]);
            child_emit_forever(url, p[1]);
        }
        close(p[1]);
        struct timespec ts = {0, (long)(kill_after_ms[round] + rand() % 50) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        killed_mid_run += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        char id[WH_ID_MAX];
        ssize_t got;
        while ((got = read(p[0], id, WH_ID_MAX)) == WH_ID_MAX) {
            id[WH_ID_MAX - 1] = '\0';
            if (nacked == cap) {
                cap = cap ? cap * 2 : 1024;
                acked = realloc(acked, cap * sizeof *acked);
            }
            acked[nacked++] = strdup(id);
        }
        close(p[0]);
        acknowledged_total = nacked;
    }
    /* a new process (here: this one) opens the store and flushes what is left */
    wh_ctx *ctx = open_store(NULL, NULL);
    int64_t deadline = (int64_t)time(NULL) + 60;
    while (pending(ctx) > 0 && time(NULL) < deadline)
        wh_flush(ctx, 1000);
    ck_assert_uint_eq(pending(ctx), 0);
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){.outcomes = WH_OUTCOME_BIT(WH_OUTCOME_FAILED)}, NULL, NULL), 0);
    wh_destroy(ctx);
    ck_assert_int_ge(killed_mid_run, 2); /* the kills landed while the child was working */
    size_t n = rcv_count(r, "/crash");
    char **seen = calloc(n ? n : 1, sizeof *seen);
    for (size_t i = 0; i < n; i++) {
        rcv_request q;
        rcv_get(r, i, &q);
        seen[i] = strdup(q.webhook_id);
        rcv_request_free(&q);
    }
    qsort(seen, n, sizeof *seen, cmp_str);
    size_t missing = 0;
    for (size_t i = 0; i < nacked; i++)
        if (!bsearch(&acked[i], seen, n, sizeof *seen, cmp_str))
            missing++;
    ck_assert_msg(acknowledged_total > 0, "no emit was acknowledged before the kills");
    ck_assert_msg(missing == 0, "%zu of %zu acknowledged events never arrived", missing, nacked);
    for (size_t i = 0; i < nacked; i++)
        free(acked[i]);
    for (size_t i = 0; i < n; i++)
        free(seen[i]);
    free(acked);
    free(seen);
    rcv_stop(r);
    remove_dir();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, file_is_private_and_wal);
    tcase_add_test(tc, endpoints_and_pending_retries_survive_restart);
    tcase_add_test(tc, store_of_first_schema_migrates_and_works);
    tcase_add_test(tc, an_old_secret_of_the_first_schema_keeps_signing);
    tcase_add_test(tc, deliveries_to_an_endpoint_removed_offline_are_settled_not_kept_pending);
    tcase_add_test(tc, log_query_redeliver_recover_sqlite);
    tcase_add_test(tc, log_query_redeliver_recover_memory);
    tcase_add_test(tc, memory_ring_keeps_the_newest_attempts_whole);
    tcase_add_test(tc, retention_prunes_old_attempts);
    tcase_add_test(tc, a_call_whose_store_write_fails_changes_nothing);
    tcase_add_test(tc, retention_keeps_an_old_event_with_a_target_not_yet_attempted);
    tcase_add_test(tc, concurrent_durable_emits_are_all_committed);
    tcase_add_test(tc, killed_engine_loses_no_acknowledged_event);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
