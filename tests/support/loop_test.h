/* What the three loop-adapter tests (test_loop_libuv.c, test_loop_libevent.c,
 * test_loop_libev.c) share: each fills in a loop_ops for its loop and runs loop_suite(). They are
 * three programs because libev and libevent both define EV_READ and friends, so no one file
 * can include both. */
#ifndef WH_TEST_LOOP_TEST_H
#define WH_TEST_LOOP_TEST_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support.h"
#include "webhook/webhook.h"

static const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/* Every host loop here also has a 100 ms repeating timer of its own, so that one turn of the
 * loop never blocks for long; that timer does nothing else, in particular never calls wh_poll. */
typedef struct loop_ops {
    const char *name;
    void *(*create)(void);
    int (*attach)(void *loop, wh_ctx *ctx, void **adapter);
    void (*detach)(void *adapter);
    void (*run_once)(void *loop);
    /* after detach: stops the host's own timer, turns the loop a few times without blocking,
     * and says whether any watcher is left */
    bool (*still_watching)(void *loop);
    void (*destroy)(void *loop);
} loop_ops;

static const loop_ops *ops; /* the loop under test, set by loop_suite */

/* ---- a context with one endpoint on the receiver, and a log sink that counts ----------- */

typedef struct tally {
    int finished, delivered, retrying;
    int detach_after; /* > 0: the sink detaches the adapter once this many have finished */
    void *adapter;
} tally;

static void count_attempt(void *ud, const wh_attempt *a)
{
    tally *t = ud;
    if (a->outcome == WH_OUTCOME_RETRYING) {
        t->retrying++;
        return;
    }
    t->finished++;
    t->delivered += a->outcome == WH_OUTCOME_DELIVERED;
    if (t->detach_after > 0 && t->finished == t->detach_after && t->adapter) {
        ops->detach(t->adapter);
        t->adapter = NULL;
    }
}

static wh_ctx *make_ctx(rcv *r, tally *t)
{
    char err[256], url[256], ep[WH_ID_MAX];
    wh_conf *c = wh_conf_new();
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "retry.schedule", "50ms", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_add_log_sink(c, &(wh_log_sink){.write = count_attempt, .ud = t}), WH_OK);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    rcv_url(r, "/hooks", url, sizeof url);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url, .secret = secret}, ep), WH_OK);
    rcv_set_secret(r, "/hooks", secret);
    return ctx;
}

static void emit(wh_ctx *ctx, int i)
{
    char task[32];
    snprintf(task, sizeof task, "task_%d", i);
    ck_assert_int_eq(wh_emit(ctx, &(wh_event){.event_type = "task_run.completed", .run_id = "run_1",
                                               .task_id = task, .status = "completed"}, NULL), 1);
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Turns the loop until at least n deliveries have finished: at most 2000 turns and 20 s. */
static void run_until(void *loop, const tally *t, int n)
{
    long long give_up = mono_ms() + 20000;
    for (int i = 0; i < 2000 && t->finished < n && mono_ms() < give_up; i++)
        ops->run_once(loop);
    ck_assert_msg(t->finished >= n, "%s: %d of %d finished", ops->name, t->finished, n);
}

/* ---- the tests --------------------------------------------------------------------------- */

START_TEST(delivers_signed_events_and_retries)
{
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    /* the first request fails: its retry comes due only through the loop's wakeups */
    rcv_script(r, "/hooks", (rcv_rule[]){{.status = 500}}, 1, (rcv_rule){.status = 204});
    tally t = {0};
    wh_ctx *ctx = make_ctx(r, &t);
    for (int i = 0; i < 20; i++) /* before attaching: attaching must pick them up */
        emit(ctx, i);
    void *loop = ops->create();
    ck_assert_int_eq(ops->attach(loop, ctx, &t.adapter), WH_OK);
    run_until(loop, &t, 10);
    for (int i = 20; i < 25; i++) /* from the loop's thread while it runs */
        emit(ctx, i);
    run_until(loop, &t, 25);

    ck_assert_int_eq(t.finished, 25);
    ck_assert_int_eq(t.delivered, 25);
    ck_assert_int_eq(t.retrying, 1);
    ck_assert_uint_eq(rcv_count(r, "/hooks"), 26);
    ck_assert_uint_eq(rcv_bad_signatures(r), 0);
    for (size_t i = 0; i < 26; i++) {
        rcv_request q;
        ck_assert_int_eq(rcv_get(r, i, &q), 0);
        ck_assert_int_eq(q.signature_ok, 1);
        rcv_request_free(&q);
    }
    ops->detach(t.adapter);
    ck_assert_msg(!ops->still_watching(loop), "%s: a watcher is left after detach", ops->name);
    ops->destroy(loop);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

START_TEST(detach_from_a_log_sink)
{
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    tally t = {.detach_after = 1};
    wh_ctx *ctx = make_ctx(r, &t);
    for (int i = 0; i < 10; i++)
        emit(ctx, i);
    void *loop = ops->create();
    ck_assert_int_eq(ops->attach(loop, ctx, &t.adapter), WH_OK);
    run_until(loop, &t, 1);
    ck_assert_ptr_null(t.adapter);
    ck_assert_msg(!ops->still_watching(loop), "%s: a watcher is left after detach", ops->name);
    ops->destroy(loop);
    /* the context is unharmed and drives on without the loop */
    ck_assert_int_eq(wh_flush(ctx, 10000), WH_OK);
    ck_assert_int_eq(t.delivered, 10);
    ck_assert_uint_eq(rcv_bad_signatures(r), 0);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

START_TEST(attach_fails_cleanly)
{
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    tally t = {0};
    wh_ctx *ctx = make_ctx(r, &t);
    void *loop = ops->create();
    void *adapter = NULL;
    ck_assert_int_eq(ops->attach(loop, NULL, &adapter), WH_ERR_INVALID);
    ck_assert_int_eq(ops->attach(loop, ctx, NULL), WH_ERR_INVALID);
    ck_assert_int_eq(wh_start(ctx), WH_OK);
    ck_assert_int_eq(ops->attach(loop, ctx, &adapter), WH_ERR_STATE);
    ck_assert_ptr_null(adapter);
    ck_assert_int_eq(wh_stop(ctx, 5000), WH_OK);
    ops->detach(NULL);
    ck_assert_msg(!ops->still_watching(loop), "%s: a failed attach left a watcher", ops->name);
    ops->destroy(loop);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

static inline int loop_suite(const loop_ops *loop)
{
    ops = loop;
    Suite *s = suite_create(loop->name);
    TCase *tc = tcase_create("adapter");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, delivers_signed_events_and_retries);
    tcase_add_test(tc, detach_from_a_log_sink);
    tcase_add_test(tc, attach_fails_cleanly);
    suite_add_tcase(s, tc);
    return support_run_suite(s);
}

#endif
