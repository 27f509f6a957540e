/* Ordering per run and per-endpoint rate limits, on every store and across engines: a real
 * receiver (tests/support/receiver.c), real engine processes on one SQLite file, and the
 * throwaway PostgreSQL server (tests/support/pg.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "pg.h"
#include "support.h"
#include "webhook/webhook.h"

#define RUNS 20
#define RATE_EVENTS 100

static pg_cluster cluster;
static char dir[64];

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Where the engines keep their work: the memory store (store NULL), a SQLite file, or a
 * schema of the PostgreSQL server. */
typedef struct {
    char store[300];
    const char *schema;
} where;

static where memory_store(void) { return (where){0}; }

static where sqlite_store(void)
{
    where w = {0};
    snprintf(dir, sizeof dir, "/tmp/wh-flow-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(w.store, sizeof w.store, "sqlite:%s/webhooks.db", dir);
    return w;
}

static void sqlite_done(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static where pg_store(const char *schema)
{
    where w = {.schema = schema};
    snprintf(w.store, sizeof w.store, "%s", cluster.conninfo);
    return w;
}

/* NULL when wh_new refuses (the reason on stderr). */
static wh_ctx *open_ctx(const where *w)
{
    char err[512];
    wh_conf *c = wh_conf_new();
    const char *set[][2] = {
        {"store", w->store[0] ? w->store : NULL},
        {"store.schema", w->schema},
        /* every failed first attempt is tried again soon */
        {"retry.schedule", "300ms,300ms,300ms,300ms,300ms,300ms"},
        {"retry.jitter", "0"},
        {"security.allow_cidrs", "127.0.0.1/32"},
    };
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++) {
        if (set[i][1] && wh_conf_set(c, set[i][0], set[i][1], err, sizeof err) != WH_OK) {
            fprintf(stderr, "%s\n", err);
            wh_conf_destroy(c);
            return NULL;
        }
    }
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    if (!ctx) {
        fprintf(stderr, "wh_new: %s\n", err);
        wh_conf_destroy(c);
    }
    return ctx;
}

static void add_endpoint(wh_ctx *ctx, rcv *r, const char *path, char id[WH_ID_MAX])
{
    char url[160];
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, path, url, sizeof url)},
                                     id),
                     WH_OK);
}

/* The endpoint's flow settings in this engine. */
static int set_flow(wh_ctx *ctx, const char *id, double rate, bool ordered)
{
    return wh__endpoint_flow_set(ctx, id, rate, ordered);
}

static int emit_run(wh_ctx *ctx, int run, bool completed)
{
    char run_id[32];
    snprintf(run_id, sizeof run_id, "run_%02d", run);
    return wh_emit(ctx, &(wh_event){.event_type = completed ? "workflow_run.completed" : "workflow_run.started",
                                    .run_id = run_id, .status = completed ? "completed" : "running"},
                   NULL);
}

/* Drives until nothing of this engine is pending or in flight, at most ms. */
static bool drive_until_idle(wh_ctx *ctx, int ms)
{
    int64_t end = wall_ms() + ms;
    while (wall_ms() < end) {
        wh_poll(ctx, 20);
        wh_stats_info st;
        if (wh_stats(ctx, &st) == WH_OK && st.pending == 0 && st.in_flight == 0)
            return true;
    }
    return false;
}

/* ---- ordering ------------------------------------------------------------------------ */

/* Of each run: where (in arrival order) its `started` was first answered 2xx, and where its
 * `completed` first arrived. Returns the runs whose `completed` came first. */
static int inversions(rcv *r)
{
    long started_ok[RUNS], completed_first[RUNS];
    for (int i = 0; i < RUNS; i++)
        started_ok[i] = completed_first[i] = -1;
    size_t n = rcv_count(r, NULL);
    for (size_t i = 0; i < n; i++) {
        rcv_request q;
        ck_assert_int_eq(rcv_get(r, i, &q), 0);
        const char *run = strstr(q.body, "\"run_id\":\"run_");
        ck_assert_ptr_nonnull(run);
        int k = atoi(run + strlen("\"run_id\":\"run_"));
        ck_assert(k >= 0 && k < RUNS);
        bool completed = strstr(q.body, "workflow_run.completed") != NULL;
        if (completed && completed_first[k] < 0)
            completed_first[k] = (long)i;
        if (!completed && q.status_sent / 100 == 2 && started_ok[k] < 0)
            started_ok[k] = (long)i;
        rcv_request_free(&q);
    }
    int inv = 0;
    for (int k = 0; k < RUNS; k++) {
        ck_assert_msg(started_ok[k] >= 0 && completed_first[k] >= 0, "run %d was not delivered", k);
        inv += completed_first[k] < started_ok[k];
    }
    return inv;
}

/* 20 runs x (started, completed) from one engine to a receiver that fails each event's first
 * attempt; returns the inversions. */
static int one_engine_runs(const where *w, bool ordered)
{
    rcv *r = rcv_start();
    rcv_fail_first(r, "/o", 500);
    wh_ctx *ctx = open_ctx(w);
    ck_assert_ptr_nonnull(ctx);
    char id[WH_ID_MAX];
    add_endpoint(ctx, r, "/o", id);
    ck_assert_int_eq(set_flow(ctx, id, 0, ordered), WH_OK);
    for (int k = 0; k < RUNS; k++) {
        ck_assert_int_eq(emit_run(ctx, k, false), 1);
        ck_assert_int_eq(emit_run(ctx, k, true), 1);
    }
    ck_assert(drive_until_idle(ctx, 30000));
    ck_assert_int_eq(rcv_count(r, NULL), 4 * RUNS); /* each event: a 500, then a 2xx */
    int inv = inversions(r);
    wh_destroy(ctx);
    rcv_stop(r);
    return inv;
}

START_TEST(ordered_runs_go_one_at_a_time_in_emit_order)
{
    where w = memory_store();
    ck_assert_int_eq(one_engine_runs(&w, true), 0);
}
END_TEST

START_TEST(without_ordering_the_same_load_inverts_a_run)
{
    where w = memory_store();
    ck_assert_int_ge(one_engine_runs(&w, false), 1);
}
END_TEST

START_TEST(ordered_runs_on_one_sqlite_engine)
{
    where w = sqlite_store();
    ck_assert_int_eq(one_engine_runs(&w, true), 0);
    sqlite_done();
}
END_TEST

/* A child engine: sets the endpoint's flow, emits `started` (or `completed`) of every run,
 * tells the parent through fd, drives until its work is done. */
static void child_runs(const where *w, const char *id, bool ordered, bool completed, int fd)
{
    wh_ctx *ctx = open_ctx(w);
    if (!ctx)
        _exit(3);
    if (set_flow(ctx, id, 0, ordered) != WH_OK)
        _exit(4);
    for (int k = 0; k < RUNS; k++)
        if (emit_run(ctx, k, completed) != 1)
            _exit(5);
    if (fd >= 0 && write(fd, "e", 1) != 1)
        _exit(6);
    bool idle = drive_until_idle(ctx, 30000);
    wh_destroy(ctx);
    _exit(idle ? 0 : 7);
}

static void wait_child(pid_t pid)
{
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "engine exited with %d", status);
}

/* Two engine processes on one store: one emits every run's `started`, then the other every
 * run's `completed`; returns the inversions. */
static int two_engine_runs(const where *w, bool ordered)
{
    rcv *r = rcv_start();
    rcv_fail_first(r, "/o", 500);
    wh_ctx *ctx = open_ctx(w);
    ck_assert_ptr_nonnull(ctx);
    char id[WH_ID_MAX];
    add_endpoint(ctx, r, "/o", id);
    wh_destroy(ctx);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t a = fork();
    ck_assert_int_ge(a, 0);
    if (a == 0)
        child_runs(w, id, ordered, false, p[1]);
    char c;
    ck_assert_int_eq(read(p[0], &c, 1), 1); /* every `started` is in the store */
    pid_t b = fork();
    ck_assert_int_ge(b, 0);
    if (b == 0)
        child_runs(w, id, ordered, true, -1);
    wait_child(a);
    wait_child(b);
    close(p[0]);
    close(p[1]);
    ck_assert_int_eq(rcv_count(r, NULL), 4 * RUNS);
    int inv = inversions(r);
    rcv_stop(r);
    return inv;
}

START_TEST(ordering_holds_across_two_engines_on_one_sqlite_file)
{
    where w = sqlite_store();
    ck_assert_int_eq(two_engine_runs(&w, true), 0);
    sqlite_done();
}
END_TEST

START_TEST(two_sqlite_engines_without_ordering_invert_a_run)
{
    where w = sqlite_store();
    ck_assert_int_ge(two_engine_runs(&w, false), 1);
    sqlite_done();
}
END_TEST

START_TEST(ordering_holds_across_two_engines_on_postgresql)
{
    where w = pg_store("ordered");
    ck_assert_int_eq(two_engine_runs(&w, true), 0);
}
END_TEST

START_TEST(two_postgresql_engines_without_ordering_invert_a_run)
{
    where w = pg_store("unordered");
    ck_assert_int_ge(two_engine_runs(&w, false), 1);
}
END_TEST

/* ---- rate limits --------------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* 20/s: no 1-second window holds more than 40 requests (a second's burst and a second's
 * worth), and the 100 take at least 4 s from the first emit. */
static void assert_rate(rcv *r, int64_t start_ms)
{
    size_t n = rcv_count(r, NULL);
    ck_assert_int_eq(n, RATE_EVENTS);
    int64_t t[RATE_EVENTS];
    for (size_t i = 0; i < n; i++) {
        rcv_request q;
        ck_assert_int_eq(rcv_get(r, i, &q), 0);
        t[i] = q.received_ms;
        rcv_request_free(&q);
    }
    qsort(t, n, sizeof t[0], cmp_i64);
    size_t most = 0;
    for (size_t i = 0, j = 0; i < n; i++) {
        while (j < n && t[j] < t[i] + 1000)
            j++;
        if (j - i > most)
            most = j - i;
    }
    ck_assert_msg(most <= 40, "%zu requests in one second", most);
    ck_assert_msg(t[n - 1] - start_ms >= 4000, "100 requests in %lld ms",
                  (long long)(t[n - 1] - start_ms));
}

START_TEST(a_rate_limit_spaces_deliveries_in_one_engine)
{
    where w = memory_store();
    rcv *r = rcv_start();
    wh_ctx *ctx = open_ctx(&w);
    ck_assert_ptr_nonnull(ctx);
    char id[WH_ID_MAX];
    add_endpoint(ctx, r, "/r", id);
    ck_assert_int_eq(set_flow(ctx, id, 20, false), WH_OK);
    int64_t start = wall_ms();
    for (int i = 0; i < RATE_EVENTS; i++)
        ck_assert_int_eq(emit_run(ctx, i % RUNS, false), 1);
    /* the driver sleeps until the next token is due: no busy loop */
    ck_assert(drive_until_idle(ctx, 30000));
    wh_stats_info st;
    ck_assert_int_eq(wh_stats(ctx, &st), WH_OK);
    ck_assert_int_eq(st.attempts, RATE_EVENTS); /* waiting is neither an attempt nor a failure */
    ck_assert_int_eq(st.failed, 0);
    assert_rate(r, start);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

static void child_rate(const where *w, const char *id, int events)
{
    wh_ctx *ctx = open_ctx(w);
    if (!ctx)
        _exit(3);
    if (set_flow(ctx, id, 20, false) != WH_OK)
        _exit(4);
    for (int i = 0; i < events; i++)
        if (emit_run(ctx, i % RUNS, false) != 1)
            _exit(5);
    bool idle = drive_until_idle(ctx, 30000);
    wh_destroy(ctx);
    _exit(idle ? 0 : 7);
}

/* Two engine processes on one store, 50 events each to one endpoint limited to 20/s. */
static void two_engine_rate(const where *w)
{
    rcv *r = rcv_start();
    wh_ctx *ctx = open_ctx(w);
    ck_assert_ptr_nonnull(ctx);
    char id[WH_ID_MAX];
    add_endpoint(ctx, r, "/r", id);
    wh_destroy(ctx);
    int64_t start = wall_ms();
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0)
            child_rate(w, id, RATE_EVENTS / 2);
    }
    for (int i = 0; i < 2; i++)
        wait_child(pids[i]);
    assert_rate(r, start);
    rcv_stop(r);
}

START_TEST(a_rate_limit_holds_across_two_engines_on_one_sqlite_file)
{
    where w = sqlite_store();
    two_engine_rate(&w);
    sqlite_done();
}
END_TEST

START_TEST(a_rate_limit_holds_across_two_engines_on_postgresql)
{
    where w = pg_store("rated");
    two_engine_rate(&w);
}
END_TEST

/* ---- the suite ----------------------------------------------------------------------- */

static void cluster_up(void)
{
    ck_assert_msg(pg_cluster_start(&cluster) == 0, "could not start a PostgreSQL server");
}

static void cluster_down(void) { pg_cluster_stop(&cluster); }

/* WH_TEST_ONLY=part-of-a-name runs only the tests whose name has it. */
#define ADD_TEST(tc, fn)                                                                   \
    do {                                                                                   \
        const char *only_ = getenv("WH_TEST_ONLY");                                        \
        if (!only_ || strstr(#fn, only_))                                                  \
            tcase_add_test(tc, fn);                                                        \
    } while (0)

static Suite *suite(void)
{
    Suite *s = suite_create("flow");
    TCase *one = tcase_create("one store");
    tcase_set_timeout(one, 120);
    ADD_TEST(one, ordered_runs_go_one_at_a_time_in_emit_order);
    ADD_TEST(one, without_ordering_the_same_load_inverts_a_run);
    ADD_TEST(one, ordered_runs_on_one_sqlite_engine);
    ADD_TEST(one, ordering_holds_across_two_engines_on_one_sqlite_file);
    ADD_TEST(one, two_sqlite_engines_without_ordering_invert_a_run);
    ADD_TEST(one, a_rate_limit_spaces_deliveries_in_one_engine);
    ADD_TEST(one, a_rate_limit_holds_across_two_engines_on_one_sqlite_file);
    suite_add_tcase(s, one);
    TCase *pg = tcase_create("pg");
    /* one server for these tests, stopped and removed however they end */
    tcase_add_unchecked_fixture(pg, cluster_up, cluster_down);
    tcase_set_timeout(pg, 180);
    ADD_TEST(pg, ordering_holds_across_two_engines_on_postgresql);
    ADD_TEST(pg, two_postgresql_engines_without_ordering_invert_a_run);
    ADD_TEST(pg, a_rate_limit_holds_across_two_engines_on_postgresql);
    suite_add_tcase(s, pg);
    return s;
}

int main(void) { return support_run_suite(suite()); }
