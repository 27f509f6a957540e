/* wh_emit_batch on every store (memory, a real SQLite file, the throwaway PostgreSQL
 * server), with a real receiver: each event delivered once, in the batch's order; all of a
 * batch or none of it when the store refuses one of its events (a trigger made by the test
 * raises an error for one run id), or when one event is invalid; ids repeated within a
 * batch and across batches; the limits of n; and threads emitting at once, whose emits share
 * commits, each failing only for its own refused event. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "pg_fixture.h"
#include "scratch.h"
#include "support.h"
#include "webhook/webhook.h"

enum { MEMORY, SQLITE, PG, N_STORES };

static char dir[64];

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SQLite with store.sync=full: each emit is a commit of the store's, which a trigger can
 * refuse (with normal it goes to the engine's log first: test_emit_log) */
static bool commit_each_emit;

/* A context on store kind `store`; the durable ones in a place of their own (`name`). */
static wh_ctx *open_store(int store, const char *name)
{
    wh_conf *c = wh_conf_new();
    char err[512], path[160];
    if (store == SQLITE) {
        scratch_dir_make(dir, sizeof dir, "wh-batch");
        snprintf(path, sizeof path, "sqlite:%s/%s.db", dir, name);
        ck_assert_int_eq(wh_conf_set(c, "store", path, err, sizeof err), WH_OK);
        if (commit_each_emit)
            ck_assert_int_eq(wh_conf_set(c, "store.sync", "full", err, sizeof err), WH_OK);
    } else if (store == PG) {
        ck_assert_int_eq(wh_conf_set(c, "store", cluster.conninfo, err, sizeof err), WH_OK);
        ck_assert_int_eq(wh_conf_set(c, "store.schema", name, err, sizeof err), WH_OK);
    }
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

static void close_store(wh_ctx *ctx, int store)
{
    wh_destroy(ctx);
    if (store == SQLITE)
        scratch_dir_remove(dir);
}

/* Events stored (durable stores), or -1 for memory. */
static int64_t stored_events(int store, const char *name)
{
    char sql[160];
    if (store == PG) {
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.events", name);
        return pg_sql_int(&cluster, sql);
    }
    if (store != SQLITE)
        return -1;
    char path[160];
    snprintf(path, sizeof path, "%s/%s.db", dir, name);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM events", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* The store refuses any event of run "boom", the way a failing write would. */
static void refuse_run_boom(int store, const char *name)
{
    char sql[512];
    if (store == PG) {
        snprintf(sql, sizeof sql,
                 "CREATE FUNCTION %s.boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                 " IF NEW.body LIKE '%%\"run_id\":\"boom\"%%' THEN RAISE EXCEPTION 'boom'; END IF;"
                 " RETURN NEW; END $$; CREATE TRIGGER boom BEFORE INSERT ON %s.events"
                 " FOR EACH ROW EXECUTE FUNCTION %s.boom()", name, name, name);
        char out[64];
        ck_assert_int_eq(pg_sql(&cluster, sql, out, sizeof out), 0);
        return;
    }
    char path[160];
    snprintf(path, sizeof path, "%s/%s.db", dir, name);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    ck_assert_int_eq(sqlite3_exec(db,
                                  "CREATE TRIGGER boom BEFORE INSERT ON events"
                                  " WHEN NEW.body LIKE '%\"run_id\":\"boom\"%' BEGIN SELECT RAISE(ABORT, 'boom'); END",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
}

static void drive(wh_ctx *ctx, rcv *r, const char *path, size_t n)
{
    int64_t deadline = wall_ms() + 15000;
    while (rcv_count(r, path) < n && wall_ms() < deadline)
        wh_poll(ctx, 20);
    int64_t settle = wall_ms() + 300; /* a request too many would show */
    while (wall_ms() < settle)
        wh_poll(ctx, 20);
}

static const char *const store_name[] = {"memory", "sqlite", "pg"};

/* What each test works on: a context on store kind `store` in a place of its own, named
 * after the test and the store ("order_sqlite"), a receiver, and an endpoint on it. */
typedef struct {
    int store;
    char name[32];
    wh_ctx *ctx;
    rcv *r;
    char ep[WH_ID_MAX];
} batch_rig;

/* path: where the endpoint takes every event; NULL: no endpoint. */
static void rig_up(batch_rig *rig, int store, const char *test, const char *path)
{
    rig->store = store;
    snprintf(rig->name, sizeof rig->name, "%s_%s", test, store_name[store]);
    rig->ctx = open_store(store, rig->name);
    rig->r = rcv_start();
    if (path) {
        char url[128];
        rcv_url(rig->r, path, url, sizeof url);
        ck_assert_int_eq(wh_endpoint_add(rig->ctx, &(wh_endpoint_spec){.url = url}, rig->ep), WH_OK);
    }
}

static void rig_down(batch_rig *rig)
{
    rcv_stop(rig->r);
    close_store(rig->ctx, rig->store);
}

START_TEST(a_batch_is_delivered_once_each_in_the_batch_order)
{
    batch_rig rig;
    rig_up(&rig, _i, "order", "/b");
    /* one at a time per run: arrival order is the order the store gave the events */
    ck_assert_int_eq(wh_endpoint_set(rig.ctx, rig.ep, "ordering", "run"), WH_OK);
    enum { N = 40 };
    wh_event evs[N];
    char tasks[N][24];
    for (int i = 0; i < N; i++) {
        snprintf(tasks[i], sizeof tasks[i], "task_%d", i);
        evs[i] = (wh_event){.event_type = "task_run.completed", .run_id = "run_1",
                            .task_id = tasks[i], .status = "completed"};
    }
    int sendable[N];
    char ids[N][WH_ID_MAX];
    ck_assert_int_eq(wh_emit_batch(rig.ctx, evs, N, sendable, ids), N);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(sendable[i], 1);
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(ids[i], ids[j]);
    }
    if (rig.store != MEMORY)
        ck_assert_int_eq(stored_events(rig.store, rig.name), N);
    drive(rig.ctx, rig.r, "/b", N);
    ck_assert_uint_eq(rcv_count(rig.r, "/b"), N);
    for (int i = 0; i < N; i++) {
        rcv_request q;
        ck_assert_int_eq(rcv_get(rig.r, (size_t)i, &q), 0);
        ck_assert_str_eq(q.webhook_id, ids[i]);
        ck_assert_int_eq(q.signature_ok != 0, 1);
        rcv_request_free(&q);
    }
    wh_stats_info st = {0};
    ck_assert_int_eq(wh_stats(rig.ctx, &st), WH_OK);
    ck_assert_uint_eq(st.emitted, N);
    rig_down(&rig);
}
END_TEST

START_TEST(a_batch_the_store_refuses_in_part_stores_nothing)
{
    batch_rig rig;
    commit_each_emit = true;
    rig_up(&rig, _i, "refuse", "/b");
    refuse_run_boom(rig.store, rig.name);
    wh_event evs[3] = {
        {.event_type = "workflow_run.started", .run_id = "run_a", .status = "running"},
        {.event_type = "workflow_run.started", .run_id = "run_b", .status = "running"},
        {.event_type = "workflow_run.started", .run_id = "boom", .status = "running"},
    };
    int sendable[3] = {-7, -7, -7};
    ck_assert_int_eq(wh_emit_batch(rig.ctx, evs, 3, sendable, NULL), WH_ERR_STORE);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "boom"));
    ck_assert_int_eq(sendable[0], -7); /* nothing reported for a batch that failed */
    ck_assert_int_eq(stored_events(rig.store, rig.name), 0);
    drive(rig.ctx, rig.r, "/b", 1);
    ck_assert_uint_eq(rcv_count(rig.r, "/b"), 0);
    wh_stats_info st = {0};
    ck_assert_int_eq(wh_stats(rig.ctx, &st), WH_OK);
    ck_assert_uint_eq(st.emitted, 0);
    /* the same batch without it goes through whole */
    ck_assert_int_eq(wh_emit_batch(rig.ctx, evs, 2, NULL, NULL), 2);
    ck_assert_int_eq(stored_events(rig.store, rig.name), 2);
    drive(rig.ctx, rig.r, "/b", 2);
    ck_assert_uint_eq(rcv_count(rig.r, "/b"), 2);
    rig_down(&rig);
}
END_TEST

START_TEST(an_invalid_event_is_named_and_nothing_is_queued)
{
    batch_rig rig;
    rig_up(&rig, _i, "invalid", "/b");
    wh_event evs[3] = {
        {.event_type = "workflow_run.started", .run_id = "run_a", .status = "running"},
        {.event_type = "workflow_run.started", .run_id = "run_b", .status = "running"},
        {.event_type = "workflow_run.started", .run_id = NULL, .status = "running"},
    };
    ck_assert_int_eq(wh_emit_batch(rig.ctx, evs, 3, NULL, NULL), WH_ERR_INVALID);
    ck_assert_msg(strncmp(wh_last_error(), "events[2]: ", 11) == 0, "%s", wh_last_error());
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "run_id"));
    ck_assert_int_eq(wh_emit_batch(rig.ctx, evs, 0, NULL, NULL), WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "n:"));
    ck_assert_int_eq(wh_emit_batch(rig.ctx, evs, WH_EMIT_BATCH_MAX + 1, NULL, NULL), WH_ERR_INVALID);
    ck_assert_int_eq(wh_emit_batch(rig.ctx, NULL, 1, NULL, NULL), WH_ERR_INVALID);
    ck_assert_int_eq(wh_emit_batch(NULL, evs, 1, NULL, NULL), WH_ERR_INVALID);
    if (rig.store != MEMORY)
        ck_assert_int_eq(stored_events(rig.store, rig.name), 0);
    drive(rig.ctx, rig.r, "/b", 1);
    ck_assert_uint_eq(rcv_count(rig.r, "/b"), 0);
    wh_stats_info st = {0};
    ck_assert_int_eq(wh_stats(rig.ctx, &st), WH_OK);
    ck_assert_uint_eq(st.emitted, 0);
    rig_down(&rig);
}
END_TEST

START_TEST(an_id_repeated_in_a_batch_or_across_batches_is_sent_once)
{
    batch_rig rig;
    rig_up(&rig, _i, "dedup", "/b");
    wh_event evs[3] = {
        {.event_type = "workflow_run.started", .run_id = "run_a", .status = "running", .id = "evt_a"},
        {.event_type = "workflow_run.started", .run_id = "run_b", .status = "running", .id = "evt_b"},
        {.event_type = "workflow_run.started", .run_id = "run_a", .status = "running", .id = "evt_a"},
    };
    int sendable[3];
    char ids[3][WH_ID_MAX];
    /* the repeat answers what its first emit did */
    ck_assert_int_eq(wh_emit_batch(rig.ctx, evs, 3, sendable, ids), 3);
    ck_assert_int_eq(sendable[0], 1);
    ck_assert_int_eq(sendable[1], 1);
    ck_assert_int_eq(sendable[2], 1);
    ck_assert_str_eq(ids[0], "evt_a");
    ck_assert_str_eq(ids[2], "evt_a");
    ck_assert_int_eq(wh_emit_batch(rig.ctx, evs + 1, 2, sendable, NULL), 2);
    if (rig.store != MEMORY)
        ck_assert_int_eq(stored_events(rig.store, rig.name), 2);
    drive(rig.ctx, rig.r, "/b", 3);
    ck_assert_uint_eq(rcv_count(rig.r, "/b"), 2);
    wh_stats_info st = {0};
    ck_assert_int_eq(wh_stats(rig.ctx, &st), WH_OK);
    ck_assert_uint_eq(st.emitted, 2);
    rig_down(&rig);
}
END_TEST

/* Threads emitting at the same moment (their emits share a commit): an event the store
 * refuses fails its own emit only. */
typedef struct {
    wh_ctx *ctx;
    int thread, ok, refused, other;
} emitter;

enum { THREADS = 4, EMITS = 60 };

static void *emit_some(void *arg)
{
    emitter *e = arg;
    for (int i = 0; i < EMITS; i++) {
        char run[32];
        bool boom = i % 7 == e->thread;
        snprintf(run, sizeof run, boom ? "boom" : "run_%d_%d", e->thread, i);
        int rc = wh_emit(e->ctx, &(wh_event){.event_type = "workflow_run.started", .run_id = run,
                                             .status = "running"},
                         NULL);
        if (rc == 1 && !boom)
            e->ok++;
        else if (rc == WH_ERR_STORE && boom && strstr(wh_last_error(), "boom"))
            e->refused++;
        else
            e->other++;
    }
    return NULL;
}

START_TEST(emits_of_threads_at_once_fail_only_where_the_store_refuses)
{
    batch_rig rig;
    commit_each_emit = true;
    rig_up(&rig, _i, "threads", "/t");
    refuse_run_boom(rig.store, rig.name);
    pthread_t t[THREADS];
    emitter e[THREADS];
    for (int i = 0; i < THREADS; i++) {
        e[i] = (emitter){.ctx = rig.ctx, .thread = i};
        ck_assert_int_eq(pthread_create(&t[i], NULL, emit_some, &e[i]), 0);
    }
    int ok = 0, refused = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(e[i].other, 0);
        ok += e[i].ok, refused += e[i].refused;
    }
    ck_assert_int_gt(refused, 0);
    ck_assert_int_eq(ok + refused, THREADS * EMITS);
    ck_assert_int_eq(stored_events(rig.store, rig.name), ok);
    drive(rig.ctx, rig.r, "/t", (size_t)ok);
    ck_assert_uint_eq(rcv_count(rig.r, "/t"), (size_t)ok);
    rig_down(&rig);
}
END_TEST

/* Rows with a run stored: events (SQLite) or deliveries (PostgreSQL). */
static int64_t stored_runs(int store, const char *name)
{
    char sql[160];
    if (store == PG) {
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.deliveries WHERE run_id IS NOT NULL", name);
        return pg_sql_int(&cluster, sql);
    }
    char path[160];
    snprintf(path, sizeof path, "%s/%s.db", dir, name);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM events WHERE run_id IS NOT NULL",
                                        -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* The store keeps (and indexes) an event's run only when an endpoint it goes to orders by
 * run: the other events cost no index entry. */
START_TEST(the_run_is_stored_only_for_an_endpoint_that_orders_by_it)
{
    batch_rig rig;
    rig_up(&rig, _i, "runs", NULL);
    char url[128], plain[WH_ID_MAX], ordered[WH_ID_MAX];
    ck_assert_int_eq(wh_endpoint_add(rig.ctx, &(wh_endpoint_spec){.url = rcv_url(rig.r, "/p", url, sizeof url),
                                                                  .event_types = (const char *[]){"workflow_run.started", NULL}},
                                     plain),
                     WH_OK);
    ck_assert_int_eq(wh_endpoint_add(rig.ctx, &(wh_endpoint_spec){.url = rcv_url(rig.r, "/o", url, sizeof url),
                                                                  .event_types = (const char *[]){"workflow_run.completed", NULL}},
                                     ordered),
                     WH_OK);
    ck_assert_int_eq(wh_endpoint_set(rig.ctx, ordered, "ordering", "run"), WH_OK);
    wh_event evs[3] = {
        {.event_type = "workflow_run.started", .run_id = "run_a", .status = "running"},
        {.event_type = "workflow_run.started", .run_id = "run_b", .status = "running"},
        {.event_type = "workflow_run.completed", .run_id = "run_a", .status = "completed"},
    };
    ck_assert_int_eq(wh_emit_batch(rig.ctx, evs, 3, NULL, NULL), 3);
    ck_assert_int_eq(wh_emit(rig.ctx, &evs[2], NULL), 1);
    ck_assert_int_eq(stored_runs(rig.store, rig.name), 2);
    drive(rig.ctx, rig.r, "/o", 2);
    ck_assert_uint_eq(rcv_count(rig.r, "/p"), 2);
    ck_assert_uint_eq(rcv_count(rig.r, "/o"), 2);
    rig_down(&rig);
}
END_TEST

/* WH_TEST_ONLY=part-of-a-name runs only the tests whose name has it. */
#define ADD(tc, fn, from, to)                                                              \
    do {                                                                                   \
        const char *only_ = getenv("WH_TEST_ONLY");                                        \
        if (!only_ || strstr(#fn, only_))                                                  \
            tcase_add_loop_test(tc, fn, from, to);                                         \
    } while (0)

static Suite *suite(void)
{
    Suite *s = suite_create("emit_batch");
    TCase *tc = tcase_create("emit_batch");
    /* one server for every test (loop index PG), stopped and removed however they end */
    tcase_add_unchecked_fixture(tc, pg_fixture_up, pg_fixture_down);
    tcase_set_timeout(tc, 120);
    ADD(tc, a_batch_is_delivered_once_each_in_the_batch_order, MEMORY, N_STORES);
    ADD(tc, a_batch_the_store_refuses_in_part_stores_nothing, SQLITE, N_STORES);
    ADD(tc, an_invalid_event_is_named_and_nothing_is_queued, MEMORY, N_STORES);
    ADD(tc, an_id_repeated_in_a_batch_or_across_batches_is_sent_once, MEMORY, N_STORES);
    ADD(tc, emits_of_threads_at_once_fail_only_where_the_store_refuses, SQLITE, N_STORES);
    ADD(tc, the_run_is_stored_only_for_an_endpoint_that_orders_by_it, SQLITE, N_STORES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
