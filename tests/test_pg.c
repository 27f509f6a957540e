/* The PostgreSQL store: a real server started for these tests (tests/support/pg.c), real
 * engine processes, a real receiver, real SIGKILL, a real server restart. Each test works in
 * a schema of its own. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "mock.h"
#include "pg_fixture.h"
#include "support.h"
#include "webhook/webhook.h"
#include "webhook/webhook_pg.h"

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How many events the load tests emit in all (WH_TEST_PG_EVENTS; the 20,000 runs
 * in a few minutes on two cores). */
static int load_events(void)
{
    const char *v = getenv("WH_TEST_PG_EVENTS");
    int n = v ? atoi(v) : 2000;
    return n > 0 ? n : 2000;
}

static void drive_for(wh_ctx *ctx, int ms);

/* NULL with the reason in err when wh_new refuses. */
static wh_ctx *try_open(const char *schema, const char *const *settings, char *err, size_t errlen)
{
    wh_conf *c = wh_conf_new();
    ck_assert_int_eq(wh_conf_set(c, "store", cluster.conninfo, err, errlen), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "store.schema", schema, err, errlen), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "retry.jitter", "0", err, errlen), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, errlen), WH_OK);
    for (const char *const *s = settings; s && *s; s += 2)
        ck_assert_msg(wh_conf_set(c, s[0], s[1], err, errlen) == WH_OK, "%s", err);
    wh_ctx *ctx = wh_new(c, err, errlen);
    if (!ctx)
        wh_conf_destroy(c);
    return ctx;
}

static wh_ctx *open_store(const char *schema, const char *const *settings)
{
    char err[512];
    wh_ctx *ctx = try_open(schema, settings, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

static int emit(wh_ctx *ctx, char id[WH_ID_MAX])
{
    return wh_emit(ctx, &(wh_event){.event_type = "task_run.completed", .run_id = "run_1",
                                    .task_id = "t", .status = "completed"}, id);
}

/* Sorted copies of the requests' webhook ids. */
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char **request_ids(rcv *r, size_t *n)
{
    *n = rcv_count(r, NULL);
    char **ids = calloc(*n ? *n : 1, sizeof *ids);
    for (size_t i = 0; i < *n; i++) {
        rcv_request q;
        ck_assert_int_eq(rcv_get(r, i, &q), 0);
        ids[i] = strdup(q.webhook_id);
        rcv_request_free(&q);
    }
    qsort(ids, *n, sizeof *ids, cmp_str);
    return ids;
}

static void free_ids(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

static void count_ids(rcv *r, size_t *total, size_t *distinct)
{
    char **ids = request_ids(r, total);
    *distinct = 0;
    for (size_t i = 0; i < *total; i++)
        *distinct += i == 0 || strcmp(ids[i], ids[i - 1]) != 0;
    free_ids(ids, *total);
}

/* How many of the n acknowledged ids never arrived. */
static size_t missing_ids(rcv *r, char (*acked)[WH_ID_MAX], size_t n)
{
    size_t total, missing = 0;
    char **ids = request_ids(r, &total);
    for (size_t i = 0; i < n; i++) {
        const char *key = acked[i];
        missing += !bsearch(&key, ids, total, sizeof *ids, cmp_str);
    }
    free_ids(ids, total);
    return missing;
}

/* ---- one engine ---------------------------------------------------------------------------- */

START_TEST(emits_are_stored_delivered_and_reloaded)
{
    rcv *r = rcv_start();
    char url[128], ep[WH_ID_MAX], id[WH_ID_MAX];
    wh_ctx *ctx = open_store("one", NULL);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/a", url, sizeof url)}, ep), WH_OK);
    ck_assert_int_eq(emit(ctx, id), 1);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/a"), 1);
    wh_log_filter f = {.event_id = id};
    ck_assert_int_eq(wh_log_query(ctx, &f, NULL, NULL), 1);
    wh_destroy(ctx);
    /* a new engine finds the endpoint and the log in the database */
    ctx = open_store("one", NULL);
    ck_assert_int_eq(wh_log_query(ctx, &f, NULL, NULL), 1);
    ck_assert_int_eq(emit(ctx, NULL), 1);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/a"), 2);
    /* a redelivery goes out again with the same id */
    ck_assert_int_eq(wh_redeliver(ctx, id, NULL), 1);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/a"), 3);
    wh_destroy(ctx);
    ck_assert_int_eq(pg_sql_int(&cluster, "SELECT count(*) FROM one.attempts"), 3);
    ck_assert_int_eq(pg_sql_int(&cluster, "SELECT count(*) FROM one.deliveries WHERE state = 1"), 2);
    rcv_stop(r);
}
END_TEST

START_TEST(pending_work_survives_the_engine)
{
    rcv *r = rcv_start();
    char url[128];
    wh_ctx *ctx = open_store("survive", NULL);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/s", url, sizeof url)}, NULL), WH_OK);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(emit(ctx, NULL), 1);
    wh_destroy(ctx); /* before any attempt */
    ck_assert_uint_eq(rcv_count(r, "/s"), 0);
    ctx = open_store("survive", NULL);
    ck_assert_int_eq(wh_flush(ctx, 10000), WH_OK);
    size_t total, distinct;
    count_ids(r, &total, &distinct);
    ck_assert_uint_eq(distinct, 50);
    ck_assert_uint_eq(total, 50);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

START_TEST(a_schema_that_is_not_ours_is_refused_and_left_alone)
{
    ck_assert_int_eq(pg_sql(&cluster, "CREATE SCHEMA app", NULL, 0), 0);
    ck_assert_int_eq(pg_sql(&cluster, "CREATE TABLE app.users(id int, name text)", NULL, 0), 0);
    char err[512] = "";
    ck_assert_ptr_null(try_open("app", NULL, err, sizeof err));
    ck_assert_msg(strstr(err, "not libwebhook's"), "%s", err);
    ck_assert_int_eq(pg_sql_int(&cluster, "SELECT count(*) FROM pg_tables WHERE schemaname = 'app'"), 1);
}
END_TEST

START_TEST(a_password_never_appears_in_a_message)
{
    char err[512] = "";
    wh_conf *c = wh_conf_new();
    char uri[256];
    /* nothing listens on port 1 */
    snprintf(uri, sizeof uri, "postgresql://someone:s3cr3t-pw@127.0.0.1:1/db");
    ck_assert_int_eq(wh_conf_set(c, "store", uri, err, sizeof err), WH_OK);
    ck_assert_ptr_null(wh_new(c, err, sizeof err));
    ck_assert_msg(strstr(err, "cannot connect"), "%s", err);
    ck_assert_msg(!strstr(err, "s3cr3t"), "%s", err);
    ck_assert_int_eq(wh_conf_set(c, "store", "host=127.0.0.1 port=1 password=s3cr3t-pw", err, sizeof err), WH_OK);
    ck_assert_ptr_null(wh_new(c, err, sizeof err));
    ck_assert_msg(!strstr(err, "s3cr3t"), "%s", err);
    ck_assert_int_eq(wh_conf_set(c, "store", "host=x port", err, sizeof err), WH_ERR_INVALID);
    ck_assert_int_eq(wh_conf_set(c, "store.schema", "Bad-Name", err, sizeof err), WH_ERR_INVALID);
    wh_conf_destroy(c);
}
END_TEST

/* Engines that start at the same moment on a new schema: one migrates, none fails. */
START_TEST(engines_starting_together_migrate_once)
{
    pid_t pids[6];
    for (int i = 0; i < 6; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            char err[512];
            wh_ctx *ctx = try_open("together", NULL, err, sizeof err);
            if (!ctx) {
                fprintf(stderr, "engine %d: %s\n", i, err);
                _exit(3);
            }
            wh_destroy(ctx);
            _exit(0);
        }
    }
    for (int i = 0; i < 6; i++) {
        int status;
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "engine %d: status %d", i, status);
    }
    ck_assert_int_eq(pg_sql_int(&cluster, "SELECT count(*) FROM together.meta WHERE key = 'schema'"), 1);
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

/* Emits from four threads share the engine's one connection (and its commits). */
START_TEST(emits_from_many_threads_are_each_stored_and_delivered_once)
{
    rcv *r = rcv_start();
    char url[128];
    wh_ctx *ctx = open_store("threads", NULL);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/m", url, sizeof url)}, NULL), WH_OK);
    ck_assert_int_eq(wh_start(ctx), WH_OK);
    int per = load_events() / 8;
    emitter e[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        e[i] = (emitter){.ctx = ctx, .n = per};
        ck_assert_int_eq(pthread_create(&t[i], NULL, emit_many, &e[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(e[i].ok, per);
    }
    ck_assert_int_eq(wh_stop(ctx, 30000), WH_OK);
    size_t total, distinct;
    count_ids(r, &total, &distinct);
    ck_assert_uint_eq(distinct, (size_t)(4 * per));
    ck_assert_uint_eq(total, (size_t)(4 * per));
    ck_assert_int_eq(pg_sql_int(&cluster, "SELECT count(*) FROM threads.events"), 4 * per);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

START_TEST(retention_keeps_the_tables_flat)
{
    static mock m;
    memset(&m, 0, sizeof m);
    fake_clock clock = {.now_ms = wall_ms()};
    wh_conf *c = wh_conf_new();
    char err[256];
    ck_assert_int_eq(wh_conf_set(c, "store", cluster.conninfo, err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "store.schema", "retention", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "log.retention", "10s", err, sizeof err), WH_OK);
    wh_transport tr = mock_transport(&m);
    wh_conf_set_transport(c, &tr);
    wh_conf_set_clock(c, fake_clock_now, &clock);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "http://hooks.example/r"}, NULL), WH_OK);
    /* 20 events a (fake) second for two minutes: what is older than 10 s goes */
    for (int second = 0; second < 120; second++) {
        for (int i = 0; i < 20; i++) {
            ck_assert_int_eq(emit(ctx, NULL), 1);
            wh_poll(ctx, 0);
            mock_answer(&m, m.n - 1, 200, NULL, NULL);
            wh_poll(ctx, 0);
        }
        if (m.n > 4000)
            memset(&m, 0, sizeof m);
        clock.now_ms += 1000;
        wh_poll(ctx, 0);
    }
    wh_flush(ctx, 1000);
    wh_destroy(ctx);
    ck_assert_int_le(pg_sql_int(&cluster, "SELECT count(*) FROM retention.attempts"), 20 * 12);
    ck_assert_int_le(pg_sql_int(&cluster, "SELECT count(*) FROM retention.events"), 20 * 12);
    ck_assert_int_le(pg_sql_int(&cluster, "SELECT count(*) FROM retention.deliveries"), 20 * 12);
    mock_free(&m);
}
END_TEST

/* An engine that cannot load an endpoint (a type this deploy lacks) leaves its deliveries
 * to one that can, claimed by nobody. */
START_TEST(work_an_engine_cannot_load_is_left_to_one_that_can)
{
    rcv *r = rcv_start();
    char url[128];
    const char *with_type[] = {"event_types.extra", "deploy.finished", NULL};
    wh_ctx *ctx = open_store("unloadable", with_type);
    const char *types[] = {"deploy.finished", NULL};
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/d", url, sizeof url), .event_types = types}, NULL), WH_OK);
    ck_assert_int_eq(wh_emit(ctx, &(wh_event){.event_type = "deploy.finished", .run_id = "r", .status = "ok"}, NULL), 1);
    wh_destroy(ctx); /* before any attempt: its claims are handed over */
    ctx = open_store("unloadable", NULL);
    drive_for(ctx, 700);
    ck_assert_uint_eq(rcv_count(r, "/d"), 0);
    ck_assert_int_eq(pg_sql_int(&cluster, "SELECT count(*) FROM unloadable.deliveries"
                                          " WHERE state = 0 AND claimed_by IS NULL"), 1);
    /* an engine of the right deploy, running next to it, takes it */
    wh_ctx *right = open_store("unloadable", with_type);
    ck_assert_int_eq(wh_flush(right, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/d"), 1);
    wh_destroy(right);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

/* ---- several engines ------------------------------------------------------------------ */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Emits with retries while the database is away (WH_ERR_STORE: nothing acknowledged),
 * driving in between; true once acknowledged. */
static bool emit_retrying(wh_ctx *ctx, char id[WH_ID_MAX], int64_t deadline)
{
    while (wall_ms() < deadline) {
        int rc = emit(ctx, id);
        if (rc == 1)
            return true;
        if (rc != WH_ERR_STORE)
            return false;
        wh_poll(ctx, 20);
    }
    return false;
}

/* A child engine: emits `emits` events while it drives (for pace_ms after each), reporting
 * each acknowledged id on fd (if >= 0); then drives until killed (forever) or, with
 * `finish`, until it is idle. */
static void child_engine(const char *schema, const char *const *settings, int emits, int pace_ms,
                         int fd, bool finish)
{
    char err[512];
    wh_ctx *ctx = try_open(schema, settings, err, sizeof err);
    if (!ctx) {
        fprintf(stderr, "engine: %s\n", err);
        _exit(3);
    }
    int64_t deadline = wall_ms() + 120000;
    for (int i = 0; i < emits; i++) {
        char id[WH_ID_MAX];
        if (!emit_retrying(ctx, id, deadline)) {
            fprintf(stderr, "engine: emit: %s\n", wh_last_error());
            _exit(4);
        }
        if (fd >= 0 && write(fd, id, WH_ID_MAX) != WH_ID_MAX)
            _exit(5);
        int64_t next = wall_ms() + pace_ms;
        do
            wh_poll(ctx, pace_ms);
        while (wall_ms() < next);
    }
    if (fd >= 0)
        close(fd);
    if (!finish)
        for (;;)
            wh_poll(ctx, 100);
    while (wh_flush(ctx, 1000) != WH_OK && wall_ms() < deadline) {
    }
    /* a little longer: work handed over by the others is taken too */
    int64_t end = wall_ms() + 1500;
    while (wall_ms() < end)
        wh_poll(ctx, 50);
    wh_destroy(ctx);
    _exit(0);
}

static void add_endpoint(const char *schema, rcv *r, const char *path, char ep[WH_ID_MAX])
{
    char url[128];
    wh_ctx *ctx = open_store(schema, NULL);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, path, url, sizeof url)}, ep), WH_OK);
    wh_destroy(ctx);
}

/* Emits n events inside transactions of the test's own connection: nobody's claim. */
static void emit_unclaimed(const char *schema, int n)
{
    wh_ctx *ctx = open_store(schema, NULL);
    PGconn *conn = PQconnectdb(cluster.conninfo);
    ck_assert_int_eq(PQstatus(conn), CONNECTION_OK);
    for (int i = 0; i < n; i++) {
        PQclear(PQexec(conn, "BEGIN"));
        ck_assert_int_eq(wh_emit_pg(ctx, conn, &(wh_event){.event_type = "task_run.completed",
                                                          .run_id = "run_pg", .task_id = "t",
                                                          .status = "completed"}, NULL), 1);
        PGresult *r = PQexec(conn, "COMMIT");
        ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
    }
    PQfinish(conn);
    wh_destroy(ctx);
}

static void wait_ok(pid_t pid, const char *who)
{
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: status %d", who, status);
}

START_TEST(three_engines_deliver_each_event_once)
{
    rcv *r = rcv_start();
    char ep[WH_ID_MAX];
    add_endpoint("three", r, "/t", ep);
    int total_events = load_events(), per = total_events / 3, unclaimed = 300;
    /* work that nobody holds yet, for all three to claim at once */
    emit_unclaimed("three", unclaimed);
    const char *set[] = {"store.lease", "2s", "endpoint.max_in_flight", "32", NULL};
    pid_t pids[3];
    for (int i = 0; i < 3; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0)
            child_engine("three", set, per, 0, -1, true);
    }
    for (int i = 0; i < 3; i++)
        wait_ok(pids[i], "engine");
    size_t total, distinct;
    count_ids(r, &total, &distinct);
    size_t expected = (size_t)(3 * per + unclaimed);
    ck_assert_uint_eq(distinct, expected);
    ck_assert_msg(total == expected, "%zu requests for %zu events: some went out twice", total, expected);
    ck_assert_int_eq(pg_sql_int(&cluster, "SELECT count(*) FROM three.deliveries WHERE state <> 1"), 0);
    rcv_stop(r);
}
END_TEST

/* Three engines that report the ids they emitted (acked) and drive until killed. */
typedef struct {
    pid_t pids[3];
    int fd; /* the ids as they are acknowledged: the test acts while they are still coming */
    char (*acked)[WH_ID_MAX];
    size_t n;
} fleet;

static void fleet_start(fleet *f, const char *schema, const char *const *settings, int per,
                        int pace_ms)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    for (int i = 0; i < 3; i++) {
        f->pids[i] = fork();
        ck_assert_int_ge(f->pids[i], 0);
        if (f->pids[i] == 0) {
            close(p[0]);
            child_engine(schema, settings, per, pace_ms, p[1], false);
        }
    }
    close(p[1]);
    f->acked = calloc((size_t)(3 * per), WH_ID_MAX);
    f->n = 0;
    f->fd = p[0];
}

/* Reads every acknowledged id (the pipe closes when the three have emitted all). */
static void fleet_collect(fleet *f, int per)
{
    size_t n = 0;
    while (n < (size_t)(3 * per) && read(f->fd, f->acked[n], WH_ID_MAX) == WH_ID_MAX)
        n++;
    close(f->fd);
    f->n = n;
}

static void fleet_kill(fleet *f)
{
    for (int i = 0; i < 3; i++) {
        if (f->pids[i] > 0) {
            kill(f->pids[i], SIGKILL);
            waitpid(f->pids[i], NULL, 0);
        }
    }
    free(f->acked);
}

/* Waits until every acknowledged id has arrived; returns how many never did. */
static size_t wait_delivered(rcv *r, fleet *f, int timeout_ms)
{
    int64_t deadline = wall_ms() + timeout_ms;
    size_t missing = f->n;
    while ((missing = missing_ids(r, f->acked, f->n)) > 0 && wall_ms() < deadline)
        sleep_ms(200);
    return missing;
}

START_TEST(killing_one_of_three_engines_loses_nothing)
{
    rcv *r = rcv_start();
    rcv_script(r, "/k", NULL, 0, (rcv_rule){.status = 200, .delay_ms = 20});
    char ep[WH_ID_MAX];
    add_endpoint("killed", r, "/k", ep);
    int per = load_events() / 6;
    const char *set[] = {"store.lease", "2s", "endpoint.max_in_flight", "4", NULL};
    fleet f;
    fleet_start(&f, "killed", set, per, 0);
    /* engine 0 holds claims and has requests in flight */
    ck_assert(rcv_wait(r, "/k", 50, 30000));
    kill(f.pids[0], SIGKILL);
    waitpid(f.pids[0], NULL, 0);
    f.pids[0] = 0;
    int64_t killed_at = wall_ms();
    fleet_collect(&f, per);
    ck_assert_msg(f.n >= (size_t)(2 * per), "only %zu events acknowledged", f.n);
    size_t missing = wait_delivered(r, &f, 60000);
    ck_assert_msg(missing == 0, "%zu of %zu acknowledged events never arrived", missing, f.n);
    size_t total, distinct;
    count_ids(r, &total, &distinct);
    /* repeats: only what the killed engine had in flight (4 at a time) or had answered but
     * not committed yet (outcomes are committed every 10 ms, and a commit takes a while) */
    ck_assert_msg(total - distinct <= 16, "%zu repeats", total - distinct);
    printf("killed engine: %zu events, %zu repeats, all delivered %lld ms after the kill\n",
           distinct, total - distinct, (long long)(wall_ms() - killed_at));
    fleet_kill(&f);
    rcv_stop(r);
}
END_TEST

/* Waits (bounded) until n engines are connected to the server. */
static bool wait_engines_connected(int n)
{
    int64_t end = wall_ms() + 20000;
    for (;;) {
        if (pg_sql_int(&cluster, "SELECT count(*) FROM pg_stat_activity"
                                 " WHERE application_name = 'libwebhook'") >= n)
            return true;
        if (wall_ms() > end)
            return false;
        sleep_ms(50);
    }
}

START_TEST(a_server_restart_and_terminated_connections_lose_nothing)
{
    rcv *r = rcv_start();
    rcv_script(r, "/r", NULL, 0, (rcv_rule){.status = 200, .delay_ms = 5});
    char ep[WH_ID_MAX];
    add_endpoint("restart", r, "/r", ep);
    int per = load_events() / 6;
    const char *set[] = {"store.lease", "10s", "endpoint.max_in_flight", "8", NULL};
    fleet f;
    /* paced: the engines are still emitting through both cuts */
    fleet_start(&f, "restart", set, per, 10);
    ck_assert(rcv_wait(r, "/r", 30, 30000));
    ck_assert_int_eq(pg_cluster_restart(&cluster), 0);
    ck_assert_msg(wait_engines_connected(3), "the engines did not connect again after the restart");
    /* and every engine's connection cut under it */
    ck_assert_int_ge(pg_sql_int(&cluster, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                          " WHERE application_name = 'libwebhook'"), 3);
    fleet_collect(&f, per);
    ck_assert_msg(f.n == (size_t)(3 * per), "only %zu of %d events acknowledged", f.n, 3 * per);
    size_t missing = wait_delivered(r, &f, 60000);
    ck_assert_msg(missing == 0, "%zu of %zu acknowledged events never arrived", missing, f.n);
    size_t total, distinct;
    count_ids(r, &total, &distinct);
    printf("restart: %zu events, %zu repeats (%zu emits acknowledged)\n", distinct, total - distinct, f.n);
    /* the engines carried on: connected again */
    ck_assert(wait_engines_connected(3));
    fleet_kill(&f);
    rcv_stop(r);
}
END_TEST

/* ---- transactional emit ------------------------------------------------------------------ */

static void drive_for(wh_ctx *ctx, int ms)
{
    int64_t end = wall_ms() + ms;
    while (wall_ms() < end)
        wh_poll(ctx, 20);
}

static PGresult *must(PGconn *conn, const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQresultErrorMessage(r));
    return r;
}

START_TEST(an_event_emitted_in_a_rolled_back_transaction_is_never_sent)
{
    rcv *r = rcv_start();
    char url[128], id[WH_ID_MAX];
    wh_ctx *ctx = open_store("tx", NULL);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/x", url, sizeof url)}, NULL), WH_OK);
    PGconn *conn = PQconnectdb(cluster.conninfo);
    ck_assert_int_eq(PQstatus(conn), CONNECTION_OK);
    wh_event ev = {.event_type = "workflow_run.completed", .run_id = "run_tx", .status = "completed"};
    /* outside a transaction it is refused: nothing could undo it */
    ck_assert_int_eq(wh_emit_pg(ctx, conn, &ev, id), WH_ERR_STATE);
    /* the host's state change and its event, rolled back together */
    PQclear(must(conn, "BEGIN"));
    PQclear(must(conn, "CREATE TABLE runs(id text)"));
    PQclear(must(conn, "INSERT INTO runs VALUES('run_tx')"));
    ck_assert_int_eq(wh_emit_pg(ctx, conn, &ev, id), 1);
    drive_for(ctx, 300); /* not committed: no engine sees it */
    ck_assert_uint_eq(rcv_count(r, "/x"), 0);
    PQclear(must(conn, "ROLLBACK"));
    drive_for(ctx, 1000);
    ck_assert_uint_eq(rcv_count(r, "/x"), 0);
    ck_assert_int_eq(pg_sql_int(&cluster, "SELECT count(*) FROM tx.events"), 0);
    /* committed: delivered, by the engine the NOTIFY woke */
    PQclear(must(conn, "BEGIN"));
    PQclear(must(conn, "CREATE TABLE runs(id text)"));
    ck_assert_int_eq(wh_emit_pg(ctx, conn, &ev, id), 1);
    PQclear(must(conn, "INSERT INTO runs VALUES('run_tx')")); /* the transaction goes on */
    drive_for(ctx, 300);
    ck_assert_uint_eq(rcv_count(r, "/x"), 0);
    PQclear(must(conn, "COMMIT"));
    int64_t end = wall_ms() + 5000;
    while (rcv_count(r, "/x") == 0 && wall_ms() < end)
        wh_poll(ctx, 20);
    ck_assert_uint_eq(rcv_count(r, "/x"), 1);
    rcv_request q;
    ck_assert_int_eq(rcv_get(r, 0, &q), 0);
    ck_assert_str_eq(q.webhook_id, id);
    rcv_request_free(&q);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    drive_for(ctx, 300);
    ck_assert_uint_eq(rcv_count(r, "/x"), 1);
    ck_assert_int_eq(pg_sql_int(&cluster, "SELECT count(*) FROM tx.deliveries WHERE state = 1"), 1);
    PQfinish(conn);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

/* ---- webhookctl ---------------------------------------------------------------------------- */

/* Runs webhookctl on the test's database; its output (stdout and stderr) into out. */
static int ctl(const char *schema, const char *args, char *out, size_t len)
{
    const char *bin = getenv("WH_WEBHOOKCTL"), *root = getenv("WH_TEST_ROOT");
    char path[512], cmd[2048];
    if (bin && *bin)
        snprintf(path, sizeof path, "%s", bin);
    else
        snprintf(path, sizeof path, "%s/build/bin/webhookctl", root && *root ? root : ".");
    ck_assert_msg(access(path, X_OK) == 0, "%s is missing", path);
    snprintf(cmd, sizeof cmd, "%s -s '%s' --schema %s %s 2>&1", path, cluster.conninfo, schema, args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* marks[0]: attempts marked as a redelivery; marks[1]: those not */
static void count_redeliveries(void *ud, const wh_attempt *a)
{
    int *marks = ud;
    marks[a->redelivery ? 0 : 1]++;
}

START_TEST(webhookctl_works_on_a_postgresql_store)
{
    rcv *r = rcv_start();
    char out[8192], args[512], url[128], id[WH_ID_MAX];
    /* a read-only command creates nothing */
    ck_assert_int_eq(ctl("ctl", "endpoint list", out, sizeof out), 1);
    ck_assert_msg(strstr(out, "no libwebhook store"), "%s", out);
    ck_assert_int_eq(pg_sql_int(&cluster, "SELECT count(*) FROM pg_namespace WHERE nspname = 'ctl'"), 0);
    snprintf(args, sizeof args, "endpoint add %s --events 'task_run.*'", rcv_url(r, "/c", url, sizeof url));
    ck_assert_msg(ctl("ctl", args, out, sizeof out) == 0, "%s", out);
    char ep[WH_ID_MAX] = "";
    sscanf(strstr(out, "ep_"), "%63[A-Za-z0-9_]", ep);
    ck_assert_int_eq(ctl("ctl", "endpoint list", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, ep));
    wh_ctx *ctx = open_store("ctl", NULL);
    ck_assert_int_eq(emit(ctx, id), 1);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/c"), 1);
    snprintf(args, sizeof args, "log --event %s", id);
    ck_assert_int_eq(ctl("ctl", args, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "delivered"), "%s", out);
    /* a redelivery queued by the tool: the engine is woken and claims it */
    snprintf(args, sizeof args, "redeliver %s", id);
    ck_assert_msg(ctl("ctl", args, out, sizeof out) == 0, "%s", out);
    int64_t end = wall_ms() + 5000;
    while (rcv_count(r, "/c") < 2 && wall_ms() < end)
        wh_poll(ctx, 20);
    ck_assert_uint_eq(rcv_count(r, "/c"), 2);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    /* its attempt is marked as a redelivery, in the store and in the tool's log */
    int marks[2] = {0};
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){.event_id = id}, count_redeliveries, marks), 2);
    ck_assert_int_eq(marks[0], 1);
    ck_assert_int_eq(marks[1], 1);
    snprintf(args, sizeof args, "log --json --event %s", id);
    ck_assert_int_eq(ctl("ctl", args, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "\"redelivery\":true") && strstr(out, "\"redelivery\":false"), "%s", out);
    /* recover: the failed deliveries since a time */
    rcv_script(r, "/c", NULL, 0, (rcv_rule){.status = 410});
    ck_assert_int_eq(emit(ctx, NULL), 1);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    snprintf(args, sizeof args, "endpoint enable %s", ep);
    ck_assert_msg(ctl("ctl", args, out, sizeof out) == 0, "%s", out);
    rcv_script(r, "/c", NULL, 0, (rcv_rule){.status = 204});
    snprintf(args, sizeof args, "recover %s --since 1h", ep);
    ck_assert_msg(ctl("ctl", args, out, sizeof out) == 0, "%s", out);
    end = wall_ms() + 5000;
    while (rcv_count(r, "/c") < 4 && wall_ms() < end)
        wh_poll(ctx, 20);
    ck_assert_uint_eq(rcv_count(r, "/c"), 4);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_int_eq(ctl("ctl", "stats", out, sizeof out), 0);
    ck_assert_msg(strstr(out, ep), "%s", out);
    snprintf(args, sizeof args, "endpoint show %s", ep);
    ck_assert_int_eq(ctl("ctl", args, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "enabled"), "%s", out);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

/* A child engine that drives until it sees the endpoint disabled, then reports when. */
static void child_watching(const char *schema, int fd)
{
    char err[512];
    wh_ctx *ctx = try_open(schema, NULL, err, sizeof err);
    if (!ctx)
        _exit(3);
    char ready = 'r';
    if (write(fd, &ready, 1) != 1)
        _exit(5);
    int64_t deadline = wall_ms() + 20000;
    while (wall_ms() < deadline) {
        wh_poll(ctx, 100);
        wh_stats_info st;
        wh_stats(ctx, &st);
        if (st.endpoints_disabled == 1) {
            int64_t now = wall_ms();
            /* and what it emits now is skipped */
            if (emit(ctx, NULL) != 0)
                _exit(6);
            wh_flush(ctx, 2000);
            if (write(fd, &now, sizeof now) != sizeof now)
                _exit(5);
            wh_destroy(ctx);
            _exit(0);
        }
    }
    _exit(7);
}

START_TEST(an_endpoint_disabled_with_webhookctl_is_skipped_by_every_engine_at_once)
{
    rcv *r = rcv_start();
    char ep[WH_ID_MAX], out[4096], args[256];
    add_endpoint("watch", r, "/w", ep);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pids[3];
    for (int i = 0; i < 3; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            close(p[0]);
            child_watching("watch", p[1]);
        }
    }
    close(p[1]);
    for (int i = 0; i < 3; i++) {
        char ready;
        ck_assert_int_eq(read(p[0], &ready, 1), 1);
    }
    sleep_ms(300);
    snprintf(args, sizeof args, "endpoint disable %s", ep);
    ck_assert_msg(ctl("watch", args, out, sizeof out) == 0, "%s", out);
    int64_t done = wall_ms();
    int64_t worst = 0;
    for (int i = 0; i < 3; i++) {
        int64_t seen;
        ck_assert_int_eq(read(p[0], &seen, sizeof seen), sizeof seen);
        if (seen - done > worst)
            worst = seen - done;
    }
    close(p[0]);
    for (int i = 0; i < 3; i++)
        wait_ok(pids[i], "engine");
    printf("disabled: seen by all three engines %lld ms after webhookctl returned\n", (long long)worst);
    /* woken by a notification, not found on a slow poll (the driver ticks every 100 ms) */
    ck_assert_msg(worst <= 1000, "an engine saw the change %lld ms late", (long long)worst);
    ck_assert_uint_eq(rcv_count(r, "/w"), 0);
    rcv_stop(r);
}
END_TEST

/* ---- secret rotation ----------------------------------------------------------------------- */

static const char *secret_a = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
static const char *secret_b = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
static const char *secret_c = "whsec_dGhpcyBpcyBhIHRoaXJkIHRlc3Qgc2VjcmV0IQ==";

/* A clock offset_ms ahead of the wall clock. */
static int64_t ahead_now(void *ud) { return wall_ms() + *(const int64_t *)ud; }

static wh_ctx *open_ahead(const char *schema, const int64_t *offset_ms)
{
    wh_conf *c = wh_conf_new();
    char err[512];
    ck_assert_int_eq(wh_conf_set(c, "store", cluster.conninfo, err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "store.schema", schema, err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set_clock(c, ahead_now, (void *)offset_ms), WH_OK);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

/* Whether the i-th request verifies with secret, at the time it was signed. */
static bool verifies(rcv *r, size_t i, const char *secret)
{
    rcv_request q;
    ck_assert_int_eq(rcv_get(r, i, &q), 0);
    bool ok = wh_verify(secret, q.webhook_id, q.webhook_timestamp, q.webhook_signature, q.body,
                        q.body_len, atoll(q.webhook_timestamp), 0) == WH_OK;
    rcv_request_free(&q);
    return ok;
}

/* Emits one event and waits until path has n requests. */
static void deliver_one(wh_ctx *ctx, rcv *r, const char *path, size_t n)
{
    ck_assert_int_eq(emit(ctx, NULL), 1);
    int64_t end = wall_ms() + 10000;
    while (rcv_count(r, path) < n && wall_ms() < end)
        wh_poll(ctx, 20);
    ck_assert_uint_eq(rcv_count(r, path), n);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
}

static size_t count_of(const char *text, const char *what)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

/* Rotated twice within the grace, once by an engine and once by webhookctl in another
 * process: the store keeps both old secrets, so an engine started afterwards signs with all
 * three, and each old one stops when its own grace ends. */
START_TEST(every_old_secret_is_stored_and_signs_after_a_restart)
{
    rcv *r = rcv_start();
    char url[128], ep[WH_ID_MAX], out[4096], args[512];
    wh_ctx *ctx = open_store("rot", NULL);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/k", url, sizeof url),
                                                              .secret = secret_a}, ep), WH_OK);
    ck_assert_int_eq(wh_endpoint_rotate_secret(ctx, ep, secret_b, 60), WH_OK); /* a: 1 min */
    snprintf(args, sizeof args, "endpoint rotate-secret %s --secret '%s' --grace 1h", ep, secret_c);
    ck_assert_msg(ctl("rot", args, out, sizeof out) == 0, "%s", out);
    wh_destroy(ctx);
    snprintf(args, sizeof args, "endpoint show %s", ep);
    ck_assert_int_eq(ctl("rot", args, out, sizeof out), 0);
    ck_assert_msg(count_of(out, "old secret:") == 2, "%s", out);

    ctx = open_store("rot", NULL);
    deliver_one(ctx, r, "/k", 1);
    ck_assert(verifies(r, 0, secret_c));
    ck_assert(verifies(r, 0, secret_b));
    ck_assert(verifies(r, 0, secret_a));
    wh_destroy(ctx);

    /* two minutes on, a's grace has ended and b's has not */
    static const int64_t later = 120000;
    ctx = open_ahead("rot", &later);
    deliver_one(ctx, r, "/k", 2);
    ck_assert(verifies(r, 1, secret_c));
    ck_assert(verifies(r, 1, secret_b));
    ck_assert(!verifies(r, 1, secret_a));
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

/* A store of the first schema keeps its one old secret through the migration; and a
 * rotation by an engine of that library, still running (it writes only old_secret), adds
 * its old secret to the ones stored. */
START_TEST(an_old_secret_of_the_first_schema_keeps_signing)
{
    rcv *r = rcv_start();
    char url[128], ep[WH_ID_MAX], sql[512];
    wh_ctx *ctx = open_store("mig", NULL);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/m", url, sizeof url),
                                                              .secret = secret_b}, ep), WH_OK);
    wh_destroy(ctx);
    /* the endpoints table as version 1 had it, with a rotation from a to b an hour long */
    ck_assert_int_eq(pg_sql(&cluster, "ALTER TABLE mig.endpoints DROP COLUMN old_secrets", NULL, 0), 0);
    ck_assert_int_eq(pg_sql(&cluster, "ALTER TABLE mig.endpoints DROP COLUMN settings", NULL, 0), 0);
    ck_assert_int_eq(pg_sql(&cluster, "UPDATE mig.meta SET value = '1' WHERE key = 'version'", NULL, 0), 0);
    snprintf(sql, sizeof sql, "UPDATE mig.endpoints SET old_secret = '%s', old_until_ms = %lld",
             secret_a, (long long)wall_ms() + 3600000);
    ck_assert_int_eq(pg_sql(&cluster, sql, NULL, 0), 0);

    ctx = open_store("mig", NULL);
    ck_assert_int_ge(pg_sql_int(&cluster, "SELECT value::int FROM mig.meta WHERE key = 'version'"), 4);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM mig.endpoints WHERE old_secrets LIKE '%%:%s'", secret_a);
    ck_assert_int_eq(pg_sql_int(&cluster, sql), 1);
    deliver_one(ctx, r, "/m", 1);
    ck_assert(verifies(r, 0, secret_b));
    ck_assert(verifies(r, 0, secret_a));
    wh_destroy(ctx);

    /* the old library rotates b to c: its one column names b, the list still a */
    snprintf(sql, sizeof sql, "UPDATE mig.endpoints SET secret = '%s', old_secret = secret,"
             " old_until_ms = %lld, version = version + 1", secret_c, (long long)wall_ms() + 3600000);
    ck_assert_int_eq(pg_sql(&cluster, sql, NULL, 0), 0);
    ctx = open_store("mig", NULL);
    deliver_one(ctx, r, "/m", 2);
    ck_assert(verifies(r, 1, secret_c));
    ck_assert(verifies(r, 1, secret_b));
    ck_assert(verifies(r, 1, secret_a));
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

/* ---- per-endpoint settings ------------------------------------------------------------------ */

typedef struct {
    char text[1024];
} settings_text;

static void get_settings(void *ud, const wh_endpoint_info *ep)
{
    settings_text *t = ud;
    t->text[0] = '\0';
    for (const char *const *s = ep->settings; *s; s++) {
        size_t len = strlen(t->text);
        snprintf(t->text + len, sizeof t->text - len, "%s;", *s);
    }
}

/* Drives ctx until endpoint ep's settings ("k=v;k=v;") have `want` (or, has false, do not). */
static bool drive_until_setting(wh_ctx *ctx, const char *ep, const char *want, bool has)
{
    int64_t end = wall_ms() + 5000;
    settings_text t;
    for (;;) {
        ck_assert_int_eq(wh_endpoint_get(ctx, ep, get_settings, &t), WH_OK);
        if ((strstr(t.text, want) != NULL) == has || wall_ms() >= end)
            return (strstr(t.text, want) != NULL) == has;
        wh_poll(ctx, 20);
    }
}

/* The headers of the i-th request received. */
static void headers_at(rcv *r, size_t i, char out[4096])
{
    rcv_request q;
    ck_assert_int_eq(rcv_get(r, i, &q), 0);
    snprintf(out, 4096, "%s", q.headers);
    rcv_request_free(&q);
}

START_TEST(endpoint_settings_are_kept_and_shared_through_a_postgresql_store)
{
    rcv *r = rcv_start();
    char url[128], ep[WH_ID_MAX], out[8192], args[512], h[4096];
    wh_ctx *ctx = open_store("eps", NULL);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/s", url, sizeof url)},
                                     ep), WH_OK);
    ck_assert_int_eq(wh_endpoint_set(ctx, ep, "header.X-Engine", "s3cr3t-pg-e"), WH_OK);
    ck_assert_int_eq(wh_endpoint_set(ctx, ep, "rate_limit", "600/m"), WH_OK);
    ck_assert_int_eq(wh_endpoint_set(ctx, ep, "rate_limit", NULL), WH_OK);
    ck_assert_int_eq(wh_endpoint_set(ctx, ep, "header.Connection", "x"), WH_ERR_INVALID);
    /* a second engine on the store, and webhookctl in another process */
    wh_ctx *other = open_store("eps", NULL);
    snprintf(args, sizeof args, "endpoint set %s header.X-Ctl s3cr3t-pg-c", ep);
    ck_assert_msg(ctl("eps", args, out, sizeof out) == 0, "%s", out);
    ck_assert_ptr_null(strstr(out, "s3cr3t"));
    snprintf(args, sizeof args, "endpoint set %s retry.schedule 1h", ep);
    ck_assert_msg(ctl("eps", args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "endpoint show %s", ep);
    ck_assert_msg(ctl("eps", args, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "setting:       header.X-Engine=(hidden)\n") &&
                  strstr(out, "setting:       header.X-Ctl=(hidden)\n") &&
                  strstr(out, "setting:       retry.schedule=1h\n") && !strstr(out, "s3cr3t") &&
                  !strstr(out, "rate_limit"), "%s", out);
    for (wh_ctx **c = (wh_ctx *[]){ctx, other, NULL}; *c; c++) {
        ck_assert(drive_until_setting(*c, ep, "header.X-Ctl=(hidden);", true));
        ck_assert(drive_until_setting(*c, ep, "retry.schedule=1h;", true));
        ck_assert(drive_until_setting(*c, ep, "header.X-Engine=(hidden);", true));
    }
    /* the other engine sends what both set */
    deliver_one(other, r, "/s", 1);
    headers_at(r, 0, h);
    ck_assert_msg(strstr(h, "X-Engine: s3cr3t-pg-e\n") && strstr(h, "X-Ctl: s3cr3t-pg-c\n"), "%s", h);
    wh_destroy(other);
    wh_destroy(ctx);

    /* a restart keeps them; an unset made while no engine runs is seen by the next */
    snprintf(args, sizeof args, "endpoint unset %s header.x-ctl", ep);
    ck_assert_msg(ctl("eps", args, out, sizeof out) == 0, "%s", out);
    ctx = open_store("eps", NULL);
    settings_text t;
    ck_assert_int_eq(wh_endpoint_get(ctx, ep, get_settings, &t), WH_OK);
    ck_assert_str_eq(t.text, "header.X-Engine=(hidden);retry.schedule=1h;");
    deliver_one(ctx, r, "/s", 2);
    headers_at(r, 1, h);
    ck_assert_msg(strstr(h, "X-Engine: s3cr3t-pg-e\n") && !strstr(h, "X-Ctl"), "%s", h);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

/* WH_TEST_ONLY=part-of-a-name runs only the tests whose name has it. */
#define ADD_TEST(tc, fn)                                                                   \
    do {                                                                                   \
        const char *only_ = getenv("WH_TEST_ONLY");                                        \
        if (!only_ || strstr(#fn, only_))                                                  \
            tcase_add_test(tc, fn);                                                        \
    } while (0)

static Suite *suite(void)
{
    Suite *s = suite_create("pg");
    TCase *tc = tcase_create("pg");
    /* one server for every test, stopped and removed however they end */
    tcase_add_unchecked_fixture(tc, pg_fixture_up, pg_fixture_down);
    tcase_set_timeout(tc, 180);
    ADD_TEST(tc, emits_are_stored_delivered_and_reloaded);
    ADD_TEST(tc, pending_work_survives_the_engine);
    ADD_TEST(tc, a_schema_that_is_not_ours_is_refused_and_left_alone);
    ADD_TEST(tc, a_password_never_appears_in_a_message);
    ADD_TEST(tc, engines_starting_together_migrate_once);
    ADD_TEST(tc, emits_from_many_threads_are_each_stored_and_delivered_once);
    ADD_TEST(tc, retention_keeps_the_tables_flat);
    ADD_TEST(tc, work_an_engine_cannot_load_is_left_to_one_that_can);
    ADD_TEST(tc, three_engines_deliver_each_event_once);
    ADD_TEST(tc, killing_one_of_three_engines_loses_nothing);
    ADD_TEST(tc, a_server_restart_and_terminated_connections_lose_nothing);
    ADD_TEST(tc, an_event_emitted_in_a_rolled_back_transaction_is_never_sent);
    ADD_TEST(tc, webhookctl_works_on_a_postgresql_store);
    ADD_TEST(tc, an_endpoint_disabled_with_webhookctl_is_skipped_by_every_engine_at_once);
    ADD_TEST(tc, every_old_secret_is_stored_and_signs_after_a_restart);
    ADD_TEST(tc, an_old_secret_of_the_first_schema_keeps_signing);
    ADD_TEST(tc, endpoint_settings_are_kept_and_shared_through_a_postgresql_store);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
