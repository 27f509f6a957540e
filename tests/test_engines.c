/* Several engines on one SQLite store, and what the store must never do to an engine's
 * work: real processes on a real file, a real receiver, real SIGKILL and SIGSTOP. */
#include <errno.h>
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
    scratch_dir_make(dir, sizeof dir, "wh-engines");
    snprintf(db_path, sizeof db_path, "%s/webhooks.db", dir);
}

static void remove_dir(void) { scratch_dir_remove(dir); }

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* NULL with the reason in err when wh_new refuses. */
static wh_ctx *try_open(fake_clock *clock, const char *const *settings, char *err, size_t errlen)
{
    wh_conf *c = wh_conf_new();
    char store[160];
    snprintf(store, sizeof store, "sqlite:%s", db_path);
    ck_assert_int_eq(wh_conf_set(c, "store", store, err, errlen), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "retry.jitter", "0", err, errlen), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, errlen), WH_OK);
    for (const char *const *s = settings; s && *s; s += 2)
        ck_assert_msg(wh_conf_set(c, s[0], s[1], err, errlen) == WH_OK, "%s", err);
    if (clock)
        wh_conf_set_clock(c, fake_clock_now, clock);
    wh_ctx *ctx = wh_new(c, err, errlen);
    if (!ctx)
        wh_conf_destroy(c);
    return ctx;
}

static wh_ctx *open_store(fake_clock *clock, const char *const *settings)
{
    char err[512];
    wh_ctx *ctx = try_open(clock, settings, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

static int emit(wh_ctx *ctx, char id[WH_ID_MAX])
{
    return wh_emit(ctx, &(wh_event){.event_type = "task_run.completed", .run_id = "run_1", .task_id = "t", .status = "completed"}, id);
}

/* The requests' webhook ids: how many there were and how many of them were distinct. */
static void count_ids(rcv *r, size_t *total, size_t *distinct)
{
    size_t n = rcv_count(r, NULL);
    char **ids = calloc(n ? n : 1, sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        rcv_request q;
        ck_assert_int_eq(rcv_get(r, i, &q), 0);
        ids[i] = strdup(q.webhook_id);
        rcv_request_free(&q);
    }
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(ids[i], ids[k]) == 0;
        d += !seen;
    }
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    *total = n;
    *distinct = d;
}

/* ---- several engines ---------------------------------------------------------------- */

/* A child engine: emits `emits` events while it drives for `drive_ms`, then exits. */
static void child_engine(int emits, int drive_ms)
{
    const char *set[] = {"store.lease", "2s", NULL};
    char err[512];
    wh_ctx *ctx = try_open(NULL, set, err, sizeof err);
    if (!ctx)
        _exit(3);
    int64_t end = wall_ms() + drive_ms;
    int emitted = 0;
    while (wall_ms() < end) {
        if (emitted < emits && emit(ctx, NULL) == 1)
            emitted++;
        wh_poll(ctx, 10);
    }
    wh_flush(ctx, 5000);
    wh_destroy(ctx);
    _exit(emitted == emits ? 0 : 4);
}

START_TEST(two_engines_on_one_file_deliver_each_event_once)
{
    make_dir();
    rcv *r = rcv_start();
    char url[128];
    wh_ctx *ctx = open_store(NULL, NULL);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/both", url, sizeof url)}, NULL), WH_OK);
    /* 300 events waiting in the store before either engine starts (a rolling deploy) */
    for (int i = 0; i < 300; i++)
        ck_assert_int_eq(emit(ctx, NULL), 1);
    wh_destroy(ctx);
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0)
            child_engine(100, 2500);
    }
    for (int i = 0; i < 2; i++) {
        int status;
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "engine %d: status %d", i, status);
    }
    size_t total, distinct;
    count_ids(r, &total, &distinct);
    ck_assert_uint_eq(distinct, 500);
    ck_assert_msg(total == 500, "%zu requests for 500 events: some went out twice", total);
    rcv_stop(r);
    remove_dir();
}
END_TEST

/* A child engine that emits `n` events to a slow receiver, reports each acknowledged id on
 * the pipe and drives until it is stopped or killed. */
static volatile sig_atomic_t stop_asked;
static void ask_stop(int sig) { (void)sig, stop_asked = 1; }

/* The engine that sends slowly: when asked (SIGUSR1) it stops itself between two wh_poll
 * calls, where it holds no lock of the store's. A process stopped inside a SQLite write
 * (the WAL's write lock) or while it changes the WAL's index keeps every other process of
 * the file from writing or from reading, whatever the library does; what is tested here is
 * the lease of an engine that stopped while it held claims. */
static void child_slow_engine(int n, int fd)
{
    struct sigaction sa = {.sa_handler = ask_stop};
    sigaction(SIGUSR1, &sa, NULL);
    const char *set[] = {"store.lease", "2s", "endpoint.max_in_flight", "2", NULL};
    char err[512];
    wh_ctx *ctx = try_open(NULL, set, err, sizeof err);
    if (!ctx)
        _exit(3);
    for (int i = 0; i < n; i++) {
        char id[WH_ID_MAX];
        if (emit(ctx, id) == 1 && write(fd, id, WH_ID_MAX) != WH_ID_MAX)
            _exit(5);
    }
    close(fd);
    while (!stop_asked)
        wh_poll(ctx, 100);
    raise(SIGSTOP);
    for (;;)
        wh_poll(ctx, 100);
}

/* Runs engine B until every acknowledged id arrived or the deadline passed; returns the ids
 * that never arrived. */
static size_t missing_after(rcv *r, char (*acked)[WH_ID_MAX], size_t n, wh_ctx *b, int64_t deadline)
{
    size_t missing = n;
    while (missing && wall_ms() < deadline) {
        wh_poll(b, 50);
        size_t total = rcv_count(r, NULL);
        missing = 0;
        for (size_t i = 0; i < n; i++) {
            bool found = false;
            for (size_t k = 0; k < total && !found; k++) {
                rcv_request q;
                rcv_get(r, k, &q);
                found = strcmp(q.webhook_id, acked[i]) == 0;
                rcv_request_free(&q);
            }
            missing += !found;
        }
    }
    return missing;
}

static void takeover(int sig)
{
    make_dir();
    rcv *r = rcv_start();
    rcv_script(r, "/slow", NULL, 0, (rcv_rule){.status = 200, .delay_ms = 200});
    char url[128];
    const char *set[] = {"store.lease", "2s", NULL};
    wh_ctx *b = open_store(NULL, set);
    ck_assert_int_eq(wh_endpoint_add(b, &(wh_endpoint_spec){.url = rcv_url(r, "/slow", url, sizeof url)}, NULL), WH_OK);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t a = fork();
    ck_assert_int_ge(a, 0);
    if (a == 0) {
        close(p[0]);
        child_slow_engine(40, p[1]);
    }
    close(p[1]);
    char acked[40][WH_ID_MAX];
    size_t n = 0;
    while (n < 40 && read(p[0], acked[n], WH_ID_MAX) == WH_ID_MAX)
        n++;
    close(p[0]);
    ck_assert_uint_eq(n, 40);
    /* A holds the claims of all 40 and is sending them two at a time, 200 ms each */
    ck_assert(rcv_wait(r, "/slow", 2, 5000));
    if (sig == SIGSTOP) {
        int st;
        kill(a, SIGUSR1);
        ck_assert_int_eq(waitpid(a, &st, WUNTRACED), a);
        ck_assert(WIFSTOPPED(st));
    } else {
        kill(a, sig);
    }
    int64_t stopped_at = wall_ms();
    /* the lease (2 s) and one poll: B must have started on A's work by then */
    size_t missing = missing_after(r, acked, n, b, stopped_at + 2000 + 500 + 40 * 200 / 16 + 10000);
    ck_assert_msg(missing == 0, "%zu of %zu events of the stopped engine never arrived", missing, n);
    size_t first_by_b = 0;
    for (size_t k = 0, total = rcv_count(r, NULL); k < total; k++) {
        rcv_request q;
        rcv_get(r, k, &q);
        if (q.received_ms > stopped_at && (!first_by_b || (size_t)q.received_ms < first_by_b))
            first_by_b = (size_t)q.received_ms;
        rcv_request_free(&q);
    }
    ck_assert_msg(first_by_b && (int64_t)first_by_b - stopped_at <= 2000 + 1000,
                  "B began %lld ms after A stopped", (long long)((int64_t)first_by_b - stopped_at));
    kill(a, SIGKILL);
    waitpid(a, NULL, 0);
    wh_destroy(b);
    rcv_stop(r);
    remove_dir();
}

START_TEST(killed_engine_work_taken_over_by_another)
{
    takeover(SIGKILL);
}
END_TEST

START_TEST(stopped_engine_loses_its_claims_after_the_lease)
{
    takeover(SIGSTOP);
}
END_TEST

/* ---- the endpoint's failing clock ----------------------------------------------------- */

START_TEST(failing_clock_stops_in_the_store_so_an_old_failure_never_disables)
{
    make_dir();
    rcv *r = rcv_start();
    /* fails once, then recovers */
    rcv_script(r, "/x", (rcv_rule[]){{.status = 503}}, 1, (rcv_rule){.status = 200});
    fake_clock clock = {.now_ms = wall_ms()};
    const char *set[] = {"endpoint.disable_after", "5d", NULL};
    wh_ctx *ctx = open_store(&clock, set);
    char url[128], ep[WH_ID_MAX];
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/x", url, sizeof url)}, ep), WH_OK);
    ck_assert_int_eq(emit(ctx, NULL), 1);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    clock.now_ms += 5000;
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/x"), 2);
    wh_destroy(ctx);
    /* six healthy days later, after a restart, one 503 */
    rcv_script(r, "/x", (rcv_rule[]){{.status = 503}}, 1, (rcv_rule){.status = 200});
    clock.now_ms += 6 * 86400000LL;
    ctx = open_store(&clock, set);
    ck_assert_int_eq(emit(ctx, NULL), 1);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/x"), 3);
    wh_stats_info st;
    wh_stats(ctx, &st);
    ck_assert_msg(st.endpoints_disabled == 0, "a healthy endpoint was disabled by one 503");
    wh_destroy(ctx);
    rcv_stop(r);
    remove_dir();
}
END_TEST

/* ---- nothing settled without a record ------------------------------------------------- */

static int64_t query_int(const char *sql)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

START_TEST(delivery_to_an_endpoint_this_deploy_cannot_load_stays_pending)
{
    make_dir();
    rcv *r = rcv_start();
    char url[128];
    const char *with_type[] = {"event_types.extra", "deploy.finished", NULL};
    wh_ctx *ctx = open_store(NULL, with_type);
    const char *types[] = {"deploy.finished", NULL};
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/d", url, sizeof url), .event_types = types}, NULL), WH_OK);
    ck_assert_int_eq(wh_emit(ctx, &(wh_event){.event_type = "deploy.finished", .run_id = "r", .status = "ok"}, NULL), 1);
    wh_destroy(ctx); /* before any attempt */
    /* a deploy without the type: the endpoint cannot be loaded; said once, nothing settled */
    char err[512] = "";
    ctx = try_open(NULL, NULL, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    ck_assert_msg(strstr(wh_last_error(), "could not be loaded") != NULL, "wh_last_error: %s", wh_last_error());
    wh_flush(ctx, 1000);
    ck_assert_uint_eq(rcv_count(r, "/d"), 0);
    wh_destroy(ctx);
    ck_assert_int_eq(query_int("SELECT count(*) FROM deliveries WHERE state <> 0"), 0);
    /* the config fixed: it goes out */
    ctx = open_store(NULL, with_type);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/d"), 1);
    wh_destroy(ctx);
    rcv_stop(r);
    remove_dir();
}
END_TEST

/* ---- changes, not snapshots ----------------------------------------------------------- */

static void get_secret(void *ud, const wh_endpoint_info *ep) { snprintf(ud, 128, "%s", ep->secret); }

START_TEST(an_engine_write_never_undoes_another_process_change)
{
    make_dir();
    rcv *r = rcv_start();
    char url[128], ep[WH_ID_MAX];
    const char *secret_a = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const char *secret_b = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    wh_ctx *host = open_store(NULL, NULL);
    ck_assert_int_eq(wh_endpoint_add(host, &(wh_endpoint_spec){.url = rcv_url(r, "/c", url, sizeof url), .secret = secret_a, .disabled = 1}, ep), WH_OK);
    /* another process (a second engine here) rotates the leaked secret A to B */
    wh_ctx *other = open_store(NULL, NULL);
    ck_assert_int_eq(wh_endpoint_rotate_secret(other, ep, secret_b, -1), WH_OK);
    wh_destroy(other);
    /* the host, not having seen that yet, enables the endpoint */
    ck_assert_int_eq(wh_endpoint_set_enabled(host, ep, 1), WH_OK);
    char stored[128];
    wh_destroy(host);
    host = open_store(NULL, NULL);
    ck_assert_int_eq(wh_endpoint_get(host, ep, get_secret, stored), WH_OK);
    ck_assert_str_eq(stored, secret_b);
    /* and what goes out is signed with B */
    rcv_set_secret(r, "/c", secret_b);
    ck_assert_int_eq(emit(host, NULL), 1);
    ck_assert_int_eq(wh_flush(host, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/c"), 1);
    ck_assert_uint_eq(rcv_bad_signatures(r), 0);
    wh_destroy(host);
    rcv_stop(r);
    remove_dir();
}
END_TEST

/* ---- retention keeps up ---------------------------------------------------------------- */

/* The database file's size once everything written so far is in it (the write-ahead log,
 * whose size follows the checkpoints' timing, folded in and cut back). */
static off_t store_size(void)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    ck_assert_int_eq(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    struct stat st;
    ck_assert_int_eq(stat(db_path, &st), 0);
    return st.st_size;
}

START_TEST(retention_holds_the_file_size_flat_at_twice_the_old_prune_rate)
{
    make_dir();
    static mock m;
    memset(&m, 0, sizeof m);
    fake_clock clock = {.now_ms = wall_ms()};
    wh_conf *c = wh_conf_new();
    char err[256], store[160];
    snprintf(store, sizeof store, "sqlite:%s", db_path);
    ck_assert_int_eq(wh_conf_set(c, "store", store, err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "log.retention", "10s", err, sizeof err), WH_OK);
    wh_transport tr = mock_transport(&m);
    wh_conf_set_transport(c, &tr);
    wh_conf_set_clock(c, fake_clock_now, &clock);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "http://hooks.example/r"}, NULL), WH_OK);
    /* 20 events a (fake) second: 1,200 a minute, more than twice what 500 a minute prunes */
    off_t at_warm = 0, at_end = 0;
    for (int second = 0; second < 120; second++) {
        for (int i = 0; i < 20; i++) {
            ck_assert_int_eq(emit(ctx, NULL), 1);
            wh_poll(ctx, 0);
            mock_answer(&m, m.n - 1, 200, NULL, NULL);
            wh_poll(ctx, 0);
        }
        if (m.n > 4000) /* the mock's table is bounded: start it again */
            memset(&m, 0, sizeof m);
        clock.now_ms += 1000;
        wh_poll(ctx, 0);
        if (second == 40)
            at_warm = store_size();
    }
    wh_flush(ctx, 1000);
    at_end = store_size();
    ck_assert_msg(at_end <= at_warm + at_warm / 5, "the store grew from %lld to %lld bytes",
                  (long long)at_warm, (long long)at_end);
    wh_destroy(ctx);
    /* what is left is what the retention keeps: about 10 s of attempts */
    ck_assert_int_le(query_int("SELECT count(*) FROM attempts"), 20 * 12);
    mock_free(&m);
    remove_dir();
}
END_TEST

/* ---- a database that is not ours ------------------------------------------------------- */

START_TEST(a_database_without_our_schema_is_refused_and_left_alone)
{
    make_dir();
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);"
                                      " INSERT INTO users(name) VALUES('ada');", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    char err[512] = "";
    wh_ctx *ctx = try_open(NULL, NULL, err, sizeof err);
    ck_assert_ptr_null(ctx);
    ck_assert_msg(strstr(err, "without libwebhook's schema"), "%s", err);
    ck_assert_int_eq(query_int("SELECT count(*) FROM sqlite_master"), 1);
    ck_assert_int_eq(query_int("PRAGMA user_version"), 0);
    sqlite3_open(db_path, &db);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "delete");
    sqlite3_finalize(st);
    sqlite3_close(db);
    remove_dir();
}
END_TEST


/* ---- a store that fails ------------------------------------------------------------------ */

static void count_record(void *ud, const wh_attempt *a)
{
    (void)a;
    __atomic_add_fetch((int *)ud, 1, __ATOMIC_RELAXED);
}

/* A child engine whose store refuses every outcome (a trigger stands in for a full disk);
 * reports how many records its sinks heard. */
static void child_on_a_failing_store(const char *url, int fd)
{
    char err[256], store[160];
    int records = 0;
    wh_conf *c = wh_conf_new();
    snprintf(store, sizeof store, "sqlite:%s", db_path);
    wh_conf_set(c, "store", store, err, sizeof err);
    wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err);
    wh_conf_set(c, "endpoint.max_in_flight", "4", err, sizeof err);
    wh_conf_add_log_sink(c, &(wh_log_sink){.write = count_record, .ud = &records});
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    if (!ctx || wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url}, NULL) != WH_OK)
        _exit(3);
    for (int i = 0; i < 1000; i++)
        if (emit(ctx, NULL) != 1)
            _exit(4);
    int64_t end = wall_ms() + 3000;
    while (wall_ms() < end)
        wh_poll(ctx, 50);
    /* destroyed while the store still fails */
    wh_destroy(ctx);
    if (write(fd, &records, sizeof records) != sizeof records)
        _exit(6);
    _exit(0);
}

START_TEST(a_failing_store_pauses_attempts_and_reports_only_what_it_stored)
{
    make_dir();
    rcv *r = rcv_start();
    char url[128];
    rcv_url(r, "/f", url, sizeof url);
    wh_destroy(open_store(NULL, NULL));
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "CREATE TRIGGER full BEFORE INSERT ON attempts"
                                      " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
                                  NULL, NULL, NULL), SQLITE_OK);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[0]);
        child_on_a_failing_store(url, p[1]);
    }
    close(p[1]);
    int status, records = -1;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "engine: status %d", status);
    ck_assert_int_eq(read(p[0], &records, sizeof records), sizeof records);
    close(p[0]);
    size_t sent = rcv_count(r, "/f");
    /* attempts stop with the first commit that fails (outcomes are committed every 512 or
     * 10 ms): they do not go on while nothing of them can be stored */
    ck_assert_msg(sent <= 512 + 4, "%zu attempts made while none of their outcomes could be stored", sent);
    ck_assert_msg(records == 0, "the sinks heard %d outcomes that were never stored", records);
    ck_assert_int_eq(sqlite3_exec(db, "DROP TRIGGER full", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    /* the next engine sends all 1,000: those whose outcome was lost again, with the same id */
    wh_ctx *ctx = open_store(NULL, NULL);
    size_t total = 0, distinct = 0;
    int64_t end = wall_ms() + 20000;
    while (distinct < 1000 && wall_ms() < end) {
        wh_flush(ctx, 1000);
        count_ids(r, &total, &distinct);
    }
    wh_destroy(ctx);
    ck_assert_uint_eq(distinct, 1000);
    ck_assert_uint_le(total, 1000 + sent);
    rcv_stop(r);
    remove_dir();
}
END_TEST

/* ---- what a review of the protocol found -------------------------------------------- */

static wh_ctx *mock_engine(mock *m, const char *extra_types)
{
    wh_conf *c = wh_conf_new();
    char err[512], store[160];
    snprintf(store, sizeof store, "sqlite:%s", db_path);
    ck_assert_int_eq(wh_conf_set(c, "store", store, err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "retry.jitter", "0", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "store.lease", "2s", err, sizeof err), WH_OK);
    if (extra_types)
        ck_assert_int_eq(wh_conf_set(c, "event_types.extra", extra_types, err, sizeof err), WH_OK);
    wh_transport t = mock_transport(m);
    wh_conf_set_transport(c, &t);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

START_TEST(redelivery_on_one_engine_never_doubles_a_first_attempt_another_holds)
{
    make_dir();
    static mock ma, mb;
    memset(&ma, 0, sizeof ma);
    memset(&mb, 0, sizeof mb);
    char ev[WH_ID_MAX];
    wh_ctx *a = mock_engine(&ma, NULL);
    ck_assert_int_eq(wh_endpoint_add(a, &(wh_endpoint_spec){.url = "https://hooks.example/h"}, NULL), WH_OK);
    /* with the caller's id the event is committed at once, not logged first (an event in
     * A's log is not in the tables yet, and so not found by B) */
    ck_assert_int_eq(wh_emit(a, &(wh_event){.event_type = "task_run.completed", .run_id = "run_1",
                                            .task_id = "t", .status = "completed", .id = "evt_held"},
                             ev), 1);
    wh_ctx *b = mock_engine(&mb, NULL);
    /* A holds the event and has not attempted it yet: on its way, not queued twice */
    ck_assert_int_eq(wh_redeliver(b, ev, NULL), 0);
    for (int i = 0; i < 5; i++) {
        wh_poll(a, 0);
        wh_poll(b, 0);
    }
    ck_assert_uint_eq(ma.n, 1);
    ck_assert_uint_eq(mb.n, 0);
    wh_destroy(a);
    wh_destroy(b);
    mock_free(&ma);
    mock_free(&mb);
    remove_dir();
}
END_TEST

START_TEST(an_enable_right_after_a_verdict_disabled_the_endpoint_stays)
{
    make_dir();
    static mock m;
    memset(&m, 0, sizeof m);
    char gone[WH_ID_MAX];
    wh_ctx *a = mock_engine(&m, NULL);
    ck_assert_int_eq(wh_endpoint_add(a, &(wh_endpoint_spec){.url = "https://hooks.example/gone"}, gone), WH_OK);
    ck_assert_int_eq(wh_endpoint_add(a, &(wh_endpoint_spec){.url = "https://hooks.example/slow"}, NULL), WH_OK);
    ck_assert_int_eq(emit(a, NULL), 2);
    wh_poll(a, 0);
    ck_assert_uint_eq(m.n, 2);
    size_t to_gone = strstr(m.reqs[0].url, "gone") ? 0 : 1;
    /* 410: disabled by the verdict; the other request is still in flight, so the verdict's
     * change waits for the next commit */
    mock_answer(&m, to_gone, 410, NULL, NULL);
    wh_poll(a, 0);
    ck_assert_int_eq(wh_endpoint_set_enabled(a, gone, 1), WH_OK);
    mock_answer(&m, 1 - to_gone, 200, NULL, NULL);
    ck_assert_int_eq(wh_flush(a, 2000), WH_OK);
    wh_stats_info st;
    wh_stats(a, &st);
    ck_assert_uint_eq(st.endpoints_disabled, 0);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT enabled FROM endpoints WHERE id = '%s'", gone);
    ck_assert_int_eq(query_int(sql), 1);
    wh_destroy(a);
    mock_free(&m);
    remove_dir();
}
END_TEST

START_TEST(an_engine_that_cannot_load_an_endpoint_leaves_its_work_to_one_that_can)
{
    make_dir();
    static mock m1, m2, m3;
    memset(&m1, 0, sizeof m1);
    memset(&m2, 0, sizeof m2);
    memset(&m3, 0, sizeof m3);
    wh_ctx *first = mock_engine(&m1, "deploy.finished");
    const char *types[] = {"deploy.finished", NULL};
    ck_assert_int_eq(wh_endpoint_add(first, &(wh_endpoint_spec){.url = "https://hooks.example/d", .event_types = types}, NULL), WH_OK);
    ck_assert_int_eq(wh_emit(first, &(wh_event){.event_type = "deploy.finished", .run_id = "r", .status = "ok"}, NULL), 1);
    wh_destroy(first);
    /* an old deploy without the type takes the released work first, and stays up */
    wh_ctx *old = mock_engine(&m2, NULL);
    wh_ctx *fresh = mock_engine(&m3, "deploy.finished");
    int64_t end = wall_ms() + 3000;
    while (m3.n == 0 && wall_ms() < end) {
        wh_poll(old, 0);
        wh_poll(fresh, 50);
    }
    ck_assert_uint_eq(m2.n, 0);
    ck_assert_msg(m3.n == 1, "the engine that can load the endpoint sent %zu while the other lived", m3.n);
    wh_destroy(old);
    wh_destroy(fresh);
    mock_free(&m1);
    mock_free(&m2);
    mock_free(&m3);
    remove_dir();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("engines");
    TCase *tc = tcase_create("engines");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, two_engines_on_one_file_deliver_each_event_once);
    tcase_add_test(tc, killed_engine_work_taken_over_by_another);
    tcase_add_test(tc, stopped_engine_loses_its_claims_after_the_lease);
    tcase_add_test(tc, failing_clock_stops_in_the_store_so_an_old_failure_never_disables);
    tcase_add_test(tc, delivery_to_an_endpoint_this_deploy_cannot_load_stays_pending);
    tcase_add_test(tc, an_engine_write_never_undoes_another_process_change);
    tcase_add_test(tc, retention_holds_the_file_size_flat_at_twice_the_old_prune_rate);
    tcase_add_test(tc, a_database_without_our_schema_is_refused_and_left_alone);
    tcase_add_test(tc, a_failing_store_pauses_attempts_and_reports_only_what_it_stored);
    tcase_add_test(tc, redelivery_on_one_engine_never_doubles_a_first_attempt_another_holds);
    tcase_add_test(tc, an_enable_right_after_a_verdict_disabled_the_endpoint_stays);
    tcase_add_test(tc, an_engine_that_cannot_load_an_endpoint_leaves_its_work_to_one_that_can);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
