/* Ordering per run and per-endpoint rate limits, on every store and across engines: a real
 * receiver (tests/support/receiver.c), real engine processes on one SQLite file, and the
 * throwaway PostgreSQL server (tests/support/pg.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mock.h"
#include "pg_fixture.h"
#include "scratch.h"
#include "support.h"
#include "webhook/webhook.h"

#define RUNS 20
#define RATE_EVENTS 100

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
    scratch_dir_make(dir, sizeof dir, "wh-flow");
    snprintf(w.store, sizeof w.store, "sqlite:%s/webhooks.db", dir);
    return w;
}

static void sqlite_done(void) { scratch_dir_remove(dir); }

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

/* The endpoint's rate limit (per second; 0: none) and ordering, stored with it: every
 * engine that opens the store afterwards has them. */
static int set_flow(wh_ctx *ctx, const char *id, int rate, bool ordered)
{
    char v[16];
    snprintf(v, sizeof v, "%d", rate);
    int rc = wh_endpoint_set(ctx, id, "rate_limit", v);
    return rc == WH_OK ? wh_endpoint_set(ctx, id, "ordering", ordered ? "run" : "none") : rc;
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

/* ---- the logic, with a mock transport and a fake clock ------------------------------- */

typedef struct {
    mock m;
    fake_clock clock;
    wh_ctx *ctx;
    char id[WH_ID_MAX];
} rig;

static void rig_up(rig *r, int rate, bool ordered, const char *schedule)
{
    memset(r, 0, sizeof *r);
    r->clock.now_ms = 1700000000000;
    wh_conf *c = wh_conf_new();
    char err[256];
    ck_assert_int_eq(wh_conf_set(c, "retry.jitter", "0", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "retry.schedule", schedule, err, sizeof err), WH_OK);
    wh_transport t = mock_transport(&r->m);
    wh_conf_set_transport(c, &t);
    wh_conf_set_clock(c, fake_clock_now, &r->clock);
    r->ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(r->ctx != NULL, "%s", err);
    ck_assert_int_eq(wh_endpoint_add(r->ctx, &(wh_endpoint_spec){.url = "http://hooks.example/x"}, r->id),
                     WH_OK);
    ck_assert_int_eq(set_flow(r->ctx, r->id, rate, ordered), WH_OK);
}

static void rig_down(rig *r)
{
    wh_destroy(r->ctx);
    mock_free(&r->m);
}

/* The event (its run and type) of mock request i. */
static bool sent_is(rig *r, size_t i, int run, bool completed)
{
    char run_id[40];
    snprintf(run_id, sizeof run_id, "\"run_id\":\"run_%02d\"", run);
    return i < r->m.n && strstr(r->m.reqs[i].body, run_id) &&
           (strstr(r->m.reqs[i].body, "workflow_run.completed") != NULL) == completed;
}

START_TEST(retries_of_a_run_hold_the_rest_of_it_and_nothing_else)
{
    rig r;
    rig_up(&r, 0, true, "10s,10s");
    ck_assert_int_eq(emit_run(r.ctx, 1, false), 1);
    ck_assert_int_eq(emit_run(r.ctx, 1, true), 1);
    ck_assert_int_eq(emit_run(r.ctx, 2, false), 1);
    ck_assert_int_eq(emit_run(r.ctx, 2, true), 1);
    wh_poll(r.ctx, 0);
    /* the first of each run goes; the second of each waits */
    ck_assert_int_eq(r.m.n, 2);
    ck_assert(sent_is(&r, 0, 1, false) && sent_is(&r, 1, 2, false));
    mock_answer(&r.m, 0, 500, NULL, NULL); /* run 1's head is retried in 10 s */
    mock_answer(&r.m, 1, 200, NULL, NULL);
    wh_poll(r.ctx, 0);
    wh_poll(r.ctx, 0);
    /* run 2 goes on; run 1 waits for its head's retry */
    ck_assert_int_eq(r.m.n, 3);
    ck_assert(sent_is(&r, 2, 2, true));
    ck_assert_int_gt(wh_timeout_ms(r.ctx), 0);
    r.clock.now_ms += 10000;
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.m.n, 4);
    ck_assert(sent_is(&r, 3, 1, false));
    mock_answer(&r.m, 3, 200, NULL, NULL);
    wh_poll(r.ctx, 0);
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.m.n, 5);
    ck_assert(sent_is(&r, 4, 1, true));
    rig_down(&r);
}
END_TEST

START_TEST(a_given_up_head_lets_the_next_of_its_run_go)
{
    rig r;
    rig_up(&r, 0, true, "10s,10s");
    ck_assert_int_eq(emit_run(r.ctx, 1, false), 1);
    ck_assert_int_eq(emit_run(r.ctx, 1, true), 1);
    for (size_t i = 0; i < 3; i++) { /* three attempts: the schedule has two retries */
        wh_poll(r.ctx, 0);
        ck_assert_int_eq(r.m.n, i + 1);
        ck_assert(sent_is(&r, i, 1, false));
        mock_answer(&r.m, i, 500, NULL, NULL);
        wh_poll(r.ctx, 0);
        r.clock.now_ms += 10000;
    }
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.m.n, 4);
    ck_assert(sent_is(&r, 3, 1, true));
    rig_down(&r);
}
END_TEST

START_TEST(turning_ordering_off_lets_what_it_held_go_at_once)
{
    rig r;
    rig_up(&r, 0, true, "10s,10s");
    ck_assert_int_eq(emit_run(r.ctx, 1, false), 1);
    ck_assert_int_eq(emit_run(r.ctx, 1, true), 1);
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.m.n, 1);
    mock_answer(&r.m, 0, 500, NULL, NULL);
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.m.n, 1);
    ck_assert_int_eq(wh_endpoint_set(r.ctx, r.id, "ordering", "none"), WH_OK);
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.m.n, 2);
    ck_assert(sent_is(&r, 1, 1, true));
    rig_down(&r);
}
END_TEST

START_TEST(over_the_rate_a_delivery_waits_unlogged_and_the_driver_sleeps_until_a_token)
{
    rig r;
    rig_up(&r, 2, false, "100ms,100ms"); /* 2/s: a burst of 2, then one every 500 ms */
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(emit_run(r.ctx, i, false), 1);
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.m.n, 2);
    mock_answer(&r.m, 0, 200, NULL, NULL);
    mock_answer(&r.m, 1, 200, NULL, NULL);
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.m.n, 2);
    wh_stats_info st;
    ck_assert_int_eq(wh_stats(r.ctx, &st), WH_OK);
    ck_assert_int_eq(st.attempts, 2); /* waiting is no attempt, and no failure */
    ck_assert_int_eq(st.failed, 0);
    ck_assert_int_eq(st.pending, 3);
    /* the host may sleep until the next token: 500 ms, not a busy loop */
    int t = wh_timeout_ms(r.ctx);
    ck_assert_msg(t > 400 && t <= 500, "timeout %d", t);
    r.clock.now_ms += 499;
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.m.n, 2);
    r.clock.now_ms += 1;
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.m.n, 3);
    /* a 429's Retry-After (3 s) delays its retry beyond the schedule's 100 ms */
    mock_answer(&r.m, 2, 429, "3", NULL);
    wh_poll(r.ctx, 0);
    r.clock.now_ms += 1000;
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.m.n, 5); /* two more tokens in that second, for the two waiting */
    r.clock.now_ms += 1999;
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.m.n, 5);
    r.clock.now_ms += 1;
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.m.n, 6);
    ck_assert_str_eq(r.m.reqs[5].body, r.m.reqs[2].body); /* the retry */
    rig_down(&r);
}
END_TEST

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

/* A child engine: emits `started` (or `completed`) of every run, tells the parent through
 * fd, drives until its work is done. */
static void child_runs(const where *w, bool completed, int fd)
{
    wh_ctx *ctx = open_ctx(w);
    if (!ctx)
        _exit(3);
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
    ck_assert_int_eq(set_flow(ctx, id, 0, ordered), WH_OK);
    wh_destroy(ctx);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t a = fork();
    ck_assert_int_ge(a, 0);
    if (a == 0)
        child_runs(w, false, p[1]);
    char c;
    ck_assert_int_eq(read(p[0], &c, 1), 1); /* every `started` is in the store */
    pid_t b = fork();
    ck_assert_int_ge(b, 0);
    if (b == 0)
        child_runs(w, true, -1);
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

/* 20/s: no 1-second window holds more than 40 requests to /r (a second's burst and a
 * second's worth), and the 100 take at least 4 s from the first emit. */
static void assert_rate(rcv *r, int64_t start_ms)
{
    ck_assert_int_eq(rcv_count(r, "/r"), RATE_EVENTS);
    int64_t t[RATE_EVENTS];
    size_t n = 0;
    for (size_t i = 0; i < rcv_count(r, NULL); i++) {
        rcv_request q;
        ck_assert_int_eq(rcv_get(r, i, &q), 0);
        if (strcmp(q.path, "/r") == 0)
            t[n++] = q.received_ms;
        rcv_request_free(&q);
    }
    qsort(t, n, sizeof t[0], cmp_i64);
    size_t most = 0, at = 0;
    for (size_t i = 0, j = 0; i < n; i++) {
        while (j < n && t[j] < t[i] + 1000)
            j++;
        if (j - i > most)
            most = j - i, at = i;
    }
    if (most > 40)
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "%s%lld%s", i == at ? "[" : "", (long long)(t[i] - start_ms),
                    i + 1 < n ? " " : "\n");
    ck_assert_msg(most <= 40, "%zu requests in one second", most);
    ck_assert_msg(t[n - 1] - start_ms >= 4000, "100 requests in %lld ms",
                  (long long)(t[n - 1] - start_ms));
}

/* The endpoint limited to 20/s gets workflow_run.started; another, unlimited, gets
 * workflow_run.failed: the engine's connections to the receiver are opened through it
 * first, so that setting them up (slow under sanitizers) does not bunch the first second. */
static void add_rate_endpoints(wh_ctx *ctx, rcv *r, char id[WH_ID_MAX])
{
    char url[160];
    const char *limited[] = {"workflow_run.started", NULL}, *warm[] = {"workflow_run.failed", NULL};
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/r", url, sizeof url),
                                                              .event_types = limited}, id),
                     WH_OK);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/warm", url, sizeof url),
                                                              .event_types = warm}, NULL),
                     WH_OK);
}

static bool warm_up(wh_ctx *ctx)
{
    for (int i = 0; i < 20; i++)
        if (wh_emit(ctx, &(wh_event){.event_type = "workflow_run.failed", .run_id = "warm",
                                     .status = "failed"}, NULL) != 1)
            return false;
    return drive_until_idle(ctx, 30000);
}

START_TEST(a_rate_limit_spaces_deliveries_in_one_engine)
{
    where w = memory_store();
    rcv *r = rcv_start();
    wh_ctx *ctx = open_ctx(&w);
    ck_assert_ptr_nonnull(ctx);
    char id[WH_ID_MAX];
    add_rate_endpoints(ctx, r, id);
    ck_assert_int_eq(set_flow(ctx, id, 20, false), WH_OK);
    ck_assert(warm_up(ctx));
    int64_t start = wall_ms();
    for (int i = 0; i < RATE_EVENTS; i++)
        ck_assert_int_eq(emit_run(ctx, i % RUNS, false), 1);
    ck_assert(drive_until_idle(ctx, 30000));
    wh_stats_info st;
    ck_assert_int_eq(wh_stats(ctx, &st), WH_OK);
    ck_assert_int_eq(st.attempts, 20 + RATE_EVENTS); /* waiting is no attempt, no failure */
    ck_assert_int_eq(st.failed, 0);
    assert_rate(r, start);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

/* A child engine: warms up, tells the parent through fd when its load starts, emits
 * `events` to the limited endpoint and drives until they are delivered. */
static void child_rate(const where *w, int events, int fd)
{
    wh_ctx *ctx = open_ctx(w);
    if (!ctx)
        _exit(3);
    if (!warm_up(ctx))
        _exit(5);
    int64_t start = wall_ms();
    if (write(fd, &start, sizeof start) != sizeof start)
        _exit(6);
    for (int i = 0; i < events; i++)
        if (emit_run(ctx, i % RUNS, false) != 1)
            _exit(7);
    bool idle = drive_until_idle(ctx, 30000);
    wh_destroy(ctx);
    _exit(idle ? 0 : 8);
}

/* Two engine processes on one store, 50 events each to one endpoint limited to 20/s. */
static void two_engine_rate(const where *w)
{
    rcv *r = rcv_start();
    wh_ctx *ctx = open_ctx(w);
    ck_assert_ptr_nonnull(ctx);
    char id[WH_ID_MAX];
    add_rate_endpoints(ctx, r, id);
    ck_assert_int_eq(set_flow(ctx, id, 20, false), WH_OK);
    wh_destroy(ctx);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0)
            child_rate(w, RATE_EVENTS / 2, p[1]);
    }
    int64_t start = INT64_MAX;
    for (int i = 0; i < 2; i++) {
        int64_t t;
        ck_assert_int_eq(read(p[0], &t, sizeof t), sizeof t);
        if (t < start)
            start = t;
    }
    for (int i = 0; i < 2; i++)
        wait_child(pids[i]);
    close(p[0]);
    close(p[1]);
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
    TCase *logic = tcase_create("logic");
    ADD_TEST(logic, retries_of_a_run_hold_the_rest_of_it_and_nothing_else);
    ADD_TEST(logic, a_given_up_head_lets_the_next_of_its_run_go);
    ADD_TEST(logic, turning_ordering_off_lets_what_it_held_go_at_once);
    ADD_TEST(logic, over_the_rate_a_delivery_waits_unlogged_and_the_driver_sleeps_until_a_token);
    suite_add_tcase(s, logic);
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
    tcase_add_unchecked_fixture(pg, pg_fixture_up, pg_fixture_down);
    tcase_set_timeout(pg, 180);
    ADD_TEST(pg, ordering_holds_across_two_engines_on_postgresql);
    ADD_TEST(pg, two_postgresql_engines_without_ordering_invert_a_run);
    ADD_TEST(pg, a_rate_limit_holds_across_two_engines_on_postgresql);
    suite_add_tcase(s, pg);
    return s;
}

int main(void) { return support_run_suite(suite()); }
