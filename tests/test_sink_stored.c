/* A durable store's attempt records reach the log sinks only once their outcomes are stored:
 * a sink that looks in the real SQLite file for each attempt it is told of finds every one,
 * also while another thread's endpoint calls commit outcomes first; and wh_destroy commits
 * what is still queued (a new engine on the file sends nothing again). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "scratch.h"
#include "support.h"
#include "webhook/webhook.h"

static char dir[64], db_path[128];

static void make_dir(void)
{
    scratch_dir_make(dir, sizeof dir, "wh-commit");
    snprintf(db_path, sizeof db_path, "%s/c.db", dir);
}

static void remove_dir(void) { scratch_dir_remove(dir); }

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static wh_ctx *open_ctx(const wh_log_sink *sink)
{
    wh_conf *c = wh_conf_new();
    char err[512], store[160];
    snprintf(store, sizeof store, "sqlite:%s", db_path);
    ck_assert_int_eq(wh_conf_set(c, "store", store, err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    if (sink)
        ck_assert_int_eq(wh_conf_add_log_sink(c, sink), WH_OK);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

static int emit(wh_ctx *ctx, int i)
{
    char task[32];
    snprintf(task, sizeof task, "task_%d", i);
    return wh_emit(ctx, &(wh_event){.event_type = "task_run.completed", .run_id = "run_1",
                                    .task_id = task, .status = "completed"},
                   NULL);
}

/* The sink's view: each attempt it is told of, looked up in the file through a connection of
 * its own. */
typedef struct {
    sqlite3 *db;
    int told, missing;
} looking_sink;

static void look(void *ud, const wh_attempt *a)
{
    looking_sink *s = ud;
    sqlite3_stmt *st;
    s->told++;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM attempts WHERE event_id = ?1 AND attempt = ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        s->missing++;
        return;
    }
    sqlite3_bind_text(st, 1, a->event_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, a->attempt);
    if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0) < 1)
        s->missing++;
    sqlite3_finalize(st);
}

/* Endpoint calls from another thread: each commits the queued outcomes first. */
typedef struct {
    wh_ctx *ctx;
    const char *ep;
    int stop; /* atomic */
} meddler;

static void *meddle(void *arg)
{
    meddler *m = arg;
    for (int i = 0; !__atomic_load_n(&m->stop, __ATOMIC_ACQUIRE); i++) {
        wh_endpoint_set(m->ctx, m->ep, "header.X-Round", i % 2 ? "odd" : "even");
        usleep(500);
    }
    return NULL;
}

START_TEST(a_sink_hears_only_of_attempts_already_stored)
{
    make_dir();
    rcv *r = rcv_start();
    /* the file exists (and has its tables) before the sink's connection opens it */
    wh_ctx *ctx = open_ctx(NULL);
    wh_destroy(ctx);
    looking_sink s = {0};
    ck_assert_int_eq(sqlite3_open_v2(db_path, &s.db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(s.db, 5000);
    ctx = open_ctx(&(wh_log_sink){.write = look, .ud = &s});
    char url[128], ep[WH_ID_MAX];
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/c", url, sizeof url)}, ep), WH_OK);
    /* each fails once: retries are outcomes too */
    rcv_fail_first(r, "/c", 500);
    ck_assert_int_eq(wh_endpoint_set(ctx, ep, "retry.schedule", "10ms"), WH_OK);
    meddler m = {.ctx = ctx, .ep = ep};
    pthread_t t;
    if (_i)
        ck_assert_int_eq(pthread_create(&t, NULL, meddle, &m), 0);
    enum { N = 200 };
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(emit(ctx, i), 1);
    int64_t end = mono_ms() + 20000;
    wh_stats_info st = {0};
    while (mono_ms() < end && st.delivered < N) {
        wh_poll(ctx, 20);
        ck_assert_int_eq(wh_stats(ctx, &st), WH_OK);
    }
    if (_i) {
        __atomic_store_n(&m.stop, 1, __ATOMIC_RELEASE);
        pthread_join(t, NULL);
    }
    ck_assert_uint_eq(st.delivered, N);
    ck_assert_int_eq(wh_flush(ctx, 10000), WH_OK);
    /* every attempt told, each one found in the file when it was told */
    ck_assert_int_eq(s.told, (int)st.attempts);
    ck_assert_int_gt(s.told, N);
    ck_assert_int_eq(s.missing, 0);
    wh_destroy(ctx);
    sqlite3_close(s.db);
    rcv_stop(r);
    remove_dir();
}
END_TEST

START_TEST(wh_destroy_stores_the_outcomes_still_queued)
{
    make_dir();
    rcv *r = rcv_start();
    wh_ctx *ctx = open_ctx(NULL);
    char url[128], ep[WH_ID_MAX];
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/d", url, sizeof url)}, ep), WH_OK);
    enum { N = 100 };
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(emit(ctx, i), 1);
    /* as soon as the receiver has them all: their outcomes may not be stored yet */
    int64_t end = mono_ms() + 20000;
    while (mono_ms() < end && rcv_count(r, "/d") < N)
        wh_poll(ctx, 5);
    ck_assert_uint_eq(rcv_count(r, "/d"), N);
    wh_stats_info st = {0};
    end = mono_ms() + 5000;
    while (mono_ms() < end && st.delivered < N) {
        wh_poll(ctx, 5);
        wh_stats(ctx, &st);
    }
    wh_destroy(ctx);
    /* a new engine finds nothing pending: nothing is sent again */
    ctx = open_ctx(NULL);
    end = mono_ms() + 1500;
    while (mono_ms() < end)
        wh_poll(ctx, 20);
    ck_assert_uint_eq(rcv_count(r, "/d"), N);
    wh_destroy(ctx);
    rcv_stop(r);
    remove_dir();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sink_stored");
    TCase *tc = tcase_create("sink_stored");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, a_sink_hears_only_of_attempts_already_stored, 0, 2);
    tcase_add_test(tc, wh_destroy_stores_the_outcomes_still_queued);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
