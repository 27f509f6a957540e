/* Behaviour the other suites reached only from one side: a Retry-After on 503, the
 * attempt's own time in the signature, exact limits, type prefixes that share a word,
 * outcomes known while another request is still in flight, recovery of SKIPPED
 * deliveries, and the same rules reached through a second entry point. Each test
 * failed against a small bug put into the library on purpose. Public API only. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mock.h"
#include "scratch.h"
#include "support.h"
#include "webhook/webhook.h"

#define T0 1795719600000LL /* 2026-11-26 19:00:00 UTC */

static const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/* ---- a context on the mock transport and a fake clock ------------------------------ */

typedef struct {
    wh_attempt rows[256];
    char errors[256][256];
    size_t n;
} log_capture;

static void capture_write(void *ud, const wh_attempt *a)
{
    log_capture *c = ud;
    if (c->n == 256)
        return;
    c->rows[c->n] = *a;
    snprintf(c->errors[c->n], sizeof c->errors[0], "%s", a->error ? a->error : "");
    /* only what the tests read outlives the call */
    c->rows[c->n].event_id = c->rows[c->n].event_type = c->rows[c->n].endpoint_id = NULL;
    c->rows[c->n].url = c->rows[c->n].response_body = c->rows[c->n].error = NULL;
    c->n++;
}

typedef struct {
    mock *m;
    fake_clock clock;
    log_capture *log;
    wh_ctx *ctx;
    char dir[64], store[128]; /* store: "" for memory, else "sqlite:<dir>/webhooks.db" */
} rig;

static void rig_open(rig *r, const char *const *settings)
{
    r->m = calloc(1, sizeof *r->m);
    r->log = calloc(1, sizeof *r->log);
    ck_assert_ptr_nonnull(r->m);
    ck_assert_ptr_nonnull(r->log);
    wh_conf *c = wh_conf_new();
    char err[256];
    ck_assert_int_eq(wh_conf_set(c, "retry.jitter", "0", err, sizeof err), WH_OK);
    if (r->store[0])
        ck_assert_msg(wh_conf_set(c, "store", r->store, err, sizeof err) == WH_OK, "%s", err);
    for (const char *const *s = settings; s && *s; s += 2)
        ck_assert_msg(wh_conf_set(c, s[0], s[1], err, sizeof err) == WH_OK, "%s", err);
    wh_transport t = mock_transport(r->m);
    wh_conf_set_transport(c, &t);
    wh_conf_set_clock(c, fake_clock_now, &r->clock);
    wh_conf_add_log_sink(c, &(wh_log_sink){.write = capture_write, .ud = r->log});
    r->ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(r->ctx != NULL, "%s", err);
}

/* Ends the context and frees the mock and the log, keeping the clock and the store. */
static void rig_close(rig *r)
{
    wh_destroy(r->ctx);
    r->ctx = NULL;
    mock_free(r->m);
    free(r->m);
    free(r->log);
    r->m = NULL;
    r->log = NULL;
}

static void rig_up(rig *r, bool durable, const char *const *settings)
{
    memset(r, 0, sizeof *r);
    r->clock.now_ms = T0;
    if (durable) {
        scratch_dir_make(r->dir, sizeof r->dir, "wh-regr");
        snprintf(r->store, sizeof r->store, "sqlite:%s/webhooks.db", r->dir);
    }
    rig_open(r, settings);
}

static void rig_down(rig *r)
{
    if (r->ctx)
        rig_close(r);
    if (r->dir[0])
        scratch_dir_remove(r->dir);
}

static void add_endpoint(rig *r, const char *url, const char *const *types, int disabled,
                         char id[WH_ID_MAX])
{
    ck_assert_int_eq(wh_endpoint_add(r->ctx, &(wh_endpoint_spec){.url = url, .event_types = types,
                                                                  .secret = secret, .disabled = disabled},
                                     id),
                     WH_OK);
}

static int emit_type(wh_ctx *ctx, const char *type, const char *task_id, char id[WH_ID_MAX])
{
    return wh_emit(ctx, &(wh_event){.event_type = type, .run_id = "run_1", .task_id = task_id, .status = "ok"}, id);
}

static int emit(rig *r, char id[WH_ID_MAX]) { return emit_type(r->ctx, "task_run.completed", "task_1", id); }

/* The index (in submit order) of the one request to url, at or after `from`. */
static size_t request_to(const rig *r, const char *url, size_t from)
{
    for (size_t i = from; i < r->m->n; i++)
        if (strcmp(r->m->reqs[i].url, url) == 0)
            return i;
    ck_abort_msg("no request to %s", url);
    return 0;
}

/* outcome -1: every outcome */
static int log_count(wh_ctx *ctx, const char *endpoint_id, int outcome)
{
    unsigned bits = outcome < 0 ? 0 : WH_OUTCOME_BIT(outcome);
    return wh_log_query(ctx, &(wh_log_filter){.endpoint_id = endpoint_id, .outcomes = bits}, NULL, NULL);
}

static void keep_enabled(void *ud, const wh_endpoint_info *ep) { *(int *)ud = ep->enabled; }

static int enabled(wh_ctx *ctx, const char *id)
{
    int on = -1;
    ck_assert_int_eq(wh_endpoint_get(ctx, id, keep_enabled, &on), WH_OK);
    return on;
}

/* ---- 1. Retry-After on 503, not only on 429 ------------------------------------------ */

START_TEST(retry_after_on_503_sets_the_next_attempt)
{
    rig r;
    rig_up(&r, false, NULL);
    char ep[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", NULL, 0, ep);
    ck_assert_int_eq(emit(&r, NULL), 1);
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 1);
    mock_answer(r.m, 0, 503, "120", NULL);
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.log->n, 1);
    ck_assert_int_eq(r.log->rows[0].outcome, WH_OUTCOME_RETRYING);
    /* the schedule says 5 s; the receiver asked for 120 */
    ck_assert_int_eq(r.log->rows[0].next_attempt_ms - r.clock.now_ms, 120000);
    r.clock.now_ms += 119999;
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 1);
    r.clock.now_ms += 1;
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 2);
    rig_down(&r);
}
END_TEST

/* The same through libcurl and a real receiver: the header is read on a 503 too. */
START_TEST(retry_after_on_503_through_the_real_transport)
{
    rcv *rc = rcv_start();
    ck_assert_ptr_nonnull(rc);
    rcv_script(rc, "/busy", (rcv_rule[]){{.status = 503, .retry_after = "120"}}, 1, (rcv_rule){.status = 204});
    fake_clock clock = {.now_ms = (int64_t)time(NULL) * 1000};
    log_capture *log = calloc(1, sizeof *log);
    wh_conf *c = wh_conf_new();
    char err[256], url[128], ep[WH_ID_MAX];
    ck_assert_int_eq(wh_conf_set(c, "retry.jitter", "0", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    wh_conf_set_clock(c, fake_clock_now, &clock);
    wh_conf_add_log_sink(c, &(wh_log_sink){.write = capture_write, .ud = log});
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(rc, "/busy", url, sizeof url)}, ep), WH_OK);
    ck_assert_int_eq(emit_type(ctx, "workflow_run.started", NULL, NULL), 1);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(log->n, 1);
    ck_assert_int_eq(log->rows[0].http_status, 503);
    ck_assert_int_eq(log->rows[0].next_attempt_ms - clock.now_ms, 120000);
    clock.now_ms += 5000; /* the schedule's first delay: not yet */
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(rc, "/busy"), 1);
    clock.now_ms += 115000;
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(rc, "/busy"), 2);
    wh_destroy(ctx);
    free(log);
    rcv_stop(rc);
}
END_TEST

/* retry.max_delay caps the schedule's own delays, not only a Retry-After. */
START_TEST(max_delay_caps_the_schedule_itself)
{
    const char *set[] = {"retry.schedule", "2h,3h", "retry.max_delay", "1h", NULL};
    rig r;
    rig_up(&r, false, set);
    char ep[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", NULL, 0, ep);
    emit(&r, NULL);
    wh_poll(r.ctx, 0);
    mock_answer(r.m, 0, 500, NULL, NULL);
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.log->rows[0].next_attempt_ms - r.clock.now_ms, 3600000);
    rig_down(&r);
}
END_TEST

/* ---- 2. the signature's timestamp is the attempt's time ------------------------------- */

START_TEST(signature_timestamp_is_the_attempts_time_not_the_due_time)
{
    rig r;
    rig_up(&r, false, NULL);
    char ep[WH_ID_MAX], ev[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", NULL, 0, ep);
    ck_assert_int_eq(emit(&r, ev), 1); /* due at T0 */
    r.clock.now_ms = T0 + 90000;        /* the driver comes late */
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 1);
    mock_req *q = &r.m->reqs[0];
    ck_assert_int_eq(atoll(q->timestamp), (T0 + 90000) / 1000);
    ck_assert_int_eq(wh_verify(secret, q->id, q->timestamp, q->signature, q->body, q->body_len,
                               (T0 + 90000) / 1000, 0),
                     WH_OK);
    mock_answer(r.m, 0, 500, NULL, NULL);
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.log->rows[0].started_ms, T0 + 90000);
    /* the retry's delay counts from this attempt, not from the time it was due */
    ck_assert_int_eq(r.log->rows[0].next_attempt_ms, T0 + 95000);
    /* a retry made long after it was due (a host that slept, a restart) is signed now */
    r.clock.now_ms = T0 + 95000 + 3600000;
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 2);
    q = &r.m->reqs[1];
    ck_assert_str_eq(q->id, ev);
    ck_assert_int_eq(atoll(q->timestamp), r.clock.now_ms / 1000);
    ck_assert_int_eq(wh_verify(secret, q->id, q->timestamp, q->signature, q->body, q->body_len,
                               r.clock.now_ms / 1000, 0),
                     WH_OK);
    rig_down(&r);
}
END_TEST

/* ---- 3. queue.max_pending at its exact boundary --------------------------------------- */

START_TEST(max_pending_boundary_is_exact)
{
    const char *set[] = {"queue.max_pending", "2", NULL};
    rig r;
    rig_up(&r, false, set);
    char a[WH_ID_MAX], b[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", NULL, 0, a);
    add_endpoint(&r, "http://h/b", NULL, 0, b);
    ck_assert_int_eq(emit(&r, NULL), 2); /* exactly the limit: accepted */
    ck_assert_int_eq(emit(&r, NULL), WH_ERR_FULL);
    wh_stats_info st;
    wh_stats(r.ctx, &st);
    ck_assert_uint_eq(st.emitted, 1);
    ck_assert_uint_eq(st.pending, 2);
    /* finished deliveries make room again */
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 2);
    mock_answer(r.m, 0, 200, NULL, NULL);
    mock_answer(r.m, 1, 200, NULL, NULL);
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(emit(&r, NULL), 2);
    rig_down(&r);
}
END_TEST

/* wh_redeliver counts against queue.max_pending like wh_emit, at the same boundary. */
START_TEST(redeliver_meets_max_pending_at_the_same_boundary)
{
    const char *set[] = {"queue.max_pending", "2", NULL};
    rig r;
    rig_up(&r, false, set);
    char a[WH_ID_MAX], e1[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", NULL, 0, a);
    ck_assert_int_eq(emit(&r, e1), 1);
    wh_poll(r.ctx, 0);
    mock_answer(r.m, 0, 200, NULL, NULL);
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(emit(&r, NULL), 1);        /* one pending */
    ck_assert_int_eq(wh_redeliver(r.ctx, e1, NULL), 1); /* two: exactly the limit */
    ck_assert_int_eq(emit(&r, NULL), WH_ERR_FULL);
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 3);
    mock_answer(r.m, 1, 200, NULL, NULL);
    mock_answer(r.m, 2, 200, NULL, NULL);
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(emit(&r, NULL), 1);
    ck_assert_int_eq(emit(&r, NULL), 1);
    ck_assert_int_eq(wh_redeliver(r.ctx, e1, NULL), WH_ERR_FULL);
    ck_assert_int_eq(wh_recover(r.ctx, a, 0), 0); /* nothing failed: nothing to refuse */
    rig_down(&r);
}
END_TEST

/* ---- 4. a prefix subscription ends at the dot ----------------------------------------- */

START_TEST(prefix_subscription_does_not_match_a_longer_word)
{
    const char *set[] = {"event_types.extra", "workflow_runner.started", NULL};
    rig r;
    rig_up(&r, false, set);
    char runs[WH_ID_MAX], all[WH_ID_MAX];
    const char *wf[] = {"workflow_run.*", NULL};
    add_endpoint(&r, "http://h/runs", wf, 0, runs);
    add_endpoint(&r, "http://h/all", NULL, 0, all);
    ck_assert_int_eq(emit_type(r.ctx, "workflow_runner.started", NULL, NULL), 1); /* /all only */
    ck_assert_int_eq(emit_type(r.ctx, "workflow_run.started", NULL, NULL), 2);
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 3);
    size_t to_runs = 0;
    for (size_t i = 0; i < r.m->n; i++) {
        if (strcmp(r.m->reqs[i].url, "http://h/runs") != 0)
            continue;
        to_runs++;
        ck_assert_ptr_nonnull(strstr(r.m->reqs[i].body, "\"event_type\":\"workflow_run.started\""));
    }
    ck_assert_uint_eq(to_runs, 1);
    rig_down(&r);
}
END_TEST

/* The check made when an endpoint is added (a prefix must match some known type) ends at
 * the dot too: "deploy.*" matches nothing when only "deployment.finished" exists. */
START_TEST(prefix_that_only_matches_a_longer_word_is_refused)
{
    const char *set[] = {"event_types.extra", "deployment.finished", NULL};
    rig r;
    rig_up(&r, false, set);
    const char *deploy[] = {"deploy.*", NULL}, *deployment[] = {"deployment.*", NULL};
    char id[WH_ID_MAX];
    ck_assert_int_eq(wh_endpoint_add(r.ctx, &(wh_endpoint_spec){.url = "http://h/d", .event_types = deploy}, id),
                     WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "deploy.*"));
    ck_assert_int_eq(wh_endpoint_add(r.ctx, &(wh_endpoint_spec){.url = "http://h/d", .event_types = deployment}, id),
                     WH_OK);
    rig_down(&r);
}
END_TEST

/* The task_id rule of workflow_run.* and task_run.* leaves alone a type that only shares
 * the word without the dot. */
START_TEST(task_id_rule_does_not_reach_a_type_sharing_the_word)
{
    const char *set[] = {"event_types.extra", "workflow_runner.started,task_runner.started", NULL};
    rig r;
    rig_up(&r, false, set);
    char all[WH_ID_MAX];
    add_endpoint(&r, "http://h/all", NULL, 0, all);
    ck_assert_int_eq(emit_type(r.ctx, "workflow_runner.started", "task_1", NULL), 1);
    ck_assert_int_eq(emit_type(r.ctx, "task_runner.started", NULL, NULL), 1);
    /* while the rule itself holds */
    ck_assert_int_eq(emit_type(r.ctx, "workflow_run.started", "task_1", NULL), WH_ERR_INVALID);
    ck_assert_int_eq(emit_type(r.ctx, "task_run.started", NULL, NULL), WH_ERR_INVALID);
    rig_down(&r);
}
END_TEST

/* ---- 5. outcomes known while another request is in flight are durable ------------------ */

START_TEST(destroy_commits_outcomes_known_while_another_is_in_flight)
{
    rig r;
    rig_up(&r, true, NULL);
    char a[WH_ID_MAX], b[WH_ID_MAX], ev[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", NULL, 0, a);
    add_endpoint(&r, "http://h/b", NULL, 0, b);
    ck_assert_int_eq(emit(&r, ev), 2);
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 2);
    mock_answer(r.m, request_to(&r, "http://h/a", 0), 200, NULL, NULL);
    wh_poll(r.ctx, 0); /* /a delivered, /b still in flight */
    rig_close(&r);     /* no flush: the host shuts down now */

    rig_open(&r, NULL);
    wh_stats_info st;
    wh_stats(r.ctx, &st);
    ck_assert_uint_eq(st.pending, 1);
    wh_poll(r.ctx, 0);
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 1); /* /b again, and /a not */
    ck_assert_str_eq(r.m->reqs[0].url, "http://h/b");
    ck_assert_str_eq(r.m->reqs[0].id, ev);
    ck_assert_int_eq(log_count(r.ctx, a, WH_OUTCOME_DELIVERED), 1);
    ck_assert_int_eq(log_count(r.ctx, a, -1), 1);
    rig_down(&r);
}
END_TEST

/* An endpoint disabled by a 410 stays disabled after a restart, even when the host shuts
 * down while another request is still in flight. */
START_TEST(auto_disable_known_while_another_is_in_flight_survives_restart)
{
    rig r;
    rig_up(&r, true, NULL);
    char a[WH_ID_MAX], b[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", NULL, 0, a);
    add_endpoint(&r, "http://h/b", NULL, 0, b);
    ck_assert_int_eq(emit(&r, NULL), 2);
    wh_poll(r.ctx, 0);
    mock_answer(r.m, request_to(&r, "http://h/a", 0), 410, NULL, NULL);
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(enabled(r.ctx, a), 0);
    rig_close(&r);

    rig_open(&r, NULL);
    ck_assert_int_eq(enabled(r.ctx, a), 0);
    ck_assert_int_eq(enabled(r.ctx, b), 1);
    ck_assert_int_eq(emit(&r, NULL), 1); /* /b only */
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 2); /* the one cut short, and the new one */
    for (size_t i = 0; i < r.m->n; i++)
        ck_assert_str_eq(r.m->reqs[i].url, "http://h/b");
    ck_assert_int_eq(log_count(r.ctx, a, WH_OUTCOME_FAILED), 1);
    rig_down(&r);
}
END_TEST

/* Without a shutdown either: an outcome does not wait in memory for the slow request. */
START_TEST(outcome_known_while_another_is_in_flight_is_committed_soon)
{
    rig r;
    rig_up(&r, true, NULL);
    char a[WH_ID_MAX], b[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", NULL, 0, a);
    add_endpoint(&r, "http://h/b", NULL, 0, b);
    ck_assert_int_eq(emit(&r, NULL), 2);
    wh_poll(r.ctx, 0);
    mock_answer(r.m, request_to(&r, "http://h/a", 0), 200, NULL, NULL);
    /* the log of a sqlite: store is what the store holds; /b never answers */
    bool committed = false;
    for (int i = 0; i < 200 && !committed; i++) {
        wh_poll(r.ctx, 10);
        committed = log_count(r.ctx, a, WH_OUTCOME_DELIVERED) == 1;
    }
    ck_assert_msg(committed, "the delivered outcome was not committed while /b was in flight");
    ck_assert_uint_eq(mock_in_flight(r.m), 1);
    rig_down(&r);
}
END_TEST

/* ---- 6. wh_recover re-queues SKIPPED deliveries ----------------------------------------- */

static void recover_requeues_skipped(bool durable)
{
    rig r;
    rig_up(&r, durable, NULL);
    char ep[WH_ID_MAX], ev[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", NULL, 1, ep); /* disabled from the start */
    ck_assert_int_eq(emit(&r, ev), 0);
    ck_assert_int_eq(wh_flush(r.ctx, 2000), WH_OK);
    ck_assert_uint_eq(r.m->n, 0);
    ck_assert_int_eq(log_count(r.ctx, ep, WH_OUTCOME_SKIPPED), 1);
    ck_assert_int_eq(wh_endpoint_set_enabled(r.ctx, ep, 1), WH_OK);
    ck_assert_int_eq(wh_recover(r.ctx, ep, 0), 1);
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 1);
    ck_assert_str_eq(r.m->reqs[0].id, ev);
    mock_answer(r.m, 0, 200, NULL, NULL);
    ck_assert_int_eq(wh_flush(r.ctx, 2000), WH_OK);
    ck_assert_int_eq(log_count(r.ctx, ep, WH_OUTCOME_DELIVERED), 1);
    if (durable) /* the memory store keeps the SKIPPED record: see wh_recover(3) */
        ck_assert_int_eq(wh_recover(r.ctx, ep, 0), 0);
    rig_down(&r);
}

START_TEST(recover_requeues_skipped_sqlite) { recover_requeues_skipped(true); }
END_TEST

START_TEST(recover_requeues_skipped_memory) { recover_requeues_skipped(false); }
END_TEST

/* ---- more of the same kind -------------------------------------------------------------- */

/* Enabling an endpoint by hand restarts its failing clock: one more failure right after
 * does not disable it again at once. */
static void enabling_restarts_the_failing_clock(bool durable)
{
    const char *set[] = {"endpoint.disable_after", "1h", "retry.schedule", "20m,20m,20m,20m,20m,20m", NULL};
    rig r;
    rig_up(&r, durable, set);
    char ep[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", NULL, 0, ep);
    emit(&r, NULL);
    for (int i = 0; i < 4; i++) { /* fails at 0, 20, 40 and 60 min */
        wh_poll(r.ctx, 0);
        mock_answer(r.m, r.m->n - 1, 500, NULL, NULL);
        wh_poll(r.ctx, 0);
        if (i < 3)
            r.clock.now_ms += 20 * 60000;
    }
    ck_assert_int_eq(enabled(r.ctx, ep), 0);
    ck_assert_int_eq(wh_flush(r.ctx, 2000), WH_OK);
    r.clock.now_ms += 60000;
    ck_assert_int_eq(wh_endpoint_set_enabled(r.ctx, ep, 1), WH_OK);
    size_t sent = r.m->n;
    ck_assert_int_eq(emit(&r, NULL), 1);
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, sent + 1);
    mock_answer(r.m, sent, 500, NULL, NULL);
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.log->rows[r.log->n - 1].outcome, WH_OUTCOME_RETRYING);
    ck_assert_int_eq(enabled(r.ctx, ep), 1);
    rig_down(&r);
}

START_TEST(enabling_restarts_the_failing_clock_memory) { enabling_restarts_the_failing_clock(false); }
END_TEST

START_TEST(enabling_restarts_the_failing_clock_sqlite) { enabling_restarts_the_failing_clock(true); }
END_TEST

/* The failing clock of endpoint.disable_after survives a restart: an endpoint failing
 * since before the restart is disabled once the whole span has passed. */
START_TEST(failing_clock_survives_restart)
{
    const char *set[] = {"endpoint.disable_after", "1h", "retry.schedule", "1h,1h", NULL};
    rig r;
    rig_up(&r, true, set);
    char ep[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", NULL, 0, ep);
    emit(&r, NULL);
    wh_poll(r.ctx, 0);
    mock_answer(r.m, 0, 500, NULL, NULL);
    ck_assert_int_eq(wh_flush(r.ctx, 2000), WH_OK);
    rig_close(&r);

    r.clock.now_ms += 3600000;
    rig_open(&r, set);
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 1);
    mock_answer(r.m, 0, 500, NULL, NULL);
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(enabled(r.ctx, ep), 0);
    ck_assert_ptr_nonnull(strstr(r.log->errors[r.log->n - 1], "endpoint disabled"));
    rig_down(&r);
}
END_TEST

/* http.max_connections holds exactly, across endpoints. */
START_TEST(max_connections_limit_is_exact)
{
    const char *set[] = {"http.max_connections", "2", NULL};
    rig r;
    rig_up(&r, false, set);
    char a[WH_ID_MAX], b[WH_ID_MAX], c[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", NULL, 0, a);
    add_endpoint(&r, "http://h/b", NULL, 0, b);
    add_endpoint(&r, "http://h/c", NULL, 0, c);
    ck_assert_int_eq(emit(&r, NULL), 3);
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 2);
    wh_stats_info st;
    wh_stats(r.ctx, &st);
    ck_assert_uint_eq(st.in_flight, 2);
    ck_assert_uint_eq(st.pending, 1);
    mock_answer(r.m, 0, 200, NULL, NULL);
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 3); /* the freed slot goes to the one waiting */
    ck_assert_uint_eq(mock_in_flight(r.m), 2);
    rig_down(&r);
}
END_TEST


/* Issue 12, 1: a second thread driving at once gets WH_ERR_STATE, never a shared transfer. */
typedef struct {
    wh_ctx *ctx;
    int state_errors, other_errors;
    int64_t until_ms;
} driver;

static int64_t now_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *drive_loop(void *arg)
{
    driver *d = arg;
    while (now_wall_ms() < d->until_ms) {
        int rc = wh_poll(d->ctx, 5);
        if (rc == WH_ERR_STATE)
            d->state_errors++;
        else if (rc < 0)
            d->other_errors++;
    }
    return NULL;
}

START_TEST(a_second_thread_driving_at_once_gets_state_error_not_a_crash)
{
    rcv *r = rcv_start();
    char url[128];
    wh_conf *c = wh_conf_new();
    char err[256];
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/two", url, sizeof url)}, NULL), WH_OK);
    for (int i = 0; i < 300; i++)
        ck_assert_int_eq(emit_type(ctx, "task_run.completed", "task_1", NULL), 1);
    driver d[2] = {{.ctx = ctx, .until_ms = now_wall_ms() + 1500}, {.ctx = ctx, .until_ms = now_wall_ms() + 1500}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, drive_loop, &d[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(d[0].other_errors + d[1].other_errors, 0);
    ck_assert_int_gt(d[0].state_errors + d[1].state_errors, 0);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/two"), 300);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

/* Issue 12, 3: an endpoint disabled with many deliveries waiting is skipped in slices; an
 * emit from another thread gets in before they are all done. */
typedef struct {
    wh_ctx *ctx;
    uint64_t until;
} skipper;

static void *skip_all(void *arg)
{
    skipper *k = arg;
    wh_stats_info st = {0};
    while (wh_stats(k->ctx, &st) == WH_OK && st.skipped < k->until)
        wh_poll(k->ctx, 0);
    return NULL;
}

START_TEST(skipping_many_waiting_deliveries_never_stalls_emit_until_all_are_done)
{
    enum { WAITING = 100000 };
    rig r;
    rig_up(&r, false, NULL);
    char a[WH_ID_MAX];
    const char *only_started[] = {"workflow_run.started", NULL};
    add_endpoint(&r, "http://hooks.example/a", only_started, 0, a);
    const char *tasks[] = {"task_run.*", NULL};
    add_endpoint(&r, "http://hooks.example/b", tasks, 0, NULL);
    for (int i = 0; i < WAITING; i++)
        ck_assert_int_eq(emit_type(r.ctx, "workflow_run.started", NULL, NULL), 1);
    ck_assert_int_eq(wh_endpoint_set_enabled(r.ctx, a, 0), WH_OK);
    skipper k = {.ctx = r.ctx, .until = WAITING};
    wh_stats_info st = {0};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, skip_all, &k), 0);
    while (wh_stats(r.ctx, &st) == WH_OK && st.skipped == 0)
        ;
    ck_assert_int_eq(emit_type(r.ctx, "task_run.completed", "task_1", NULL), 1);
    wh_stats(r.ctx, &st);
    uint64_t skipped_by_then = st.skipped;
    pthread_join(t, NULL);
    ck_assert_msg(skipped_by_then < WAITING, "the emit waited until all %d were skipped", WAITING);
    wh_stats(r.ctx, &st);
    ck_assert_uint_eq(st.skipped, WAITING);
    rig_down(&r);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("regressions");
    TCase *tc = tcase_create("regressions");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, retry_after_on_503_sets_the_next_attempt);
    tcase_add_test(tc, skipping_many_waiting_deliveries_never_stalls_emit_until_all_are_done);
    tcase_add_test(tc, a_second_thread_driving_at_once_gets_state_error_not_a_crash);
    tcase_add_test(tc, retry_after_on_503_through_the_real_transport);
    tcase_add_test(tc, max_delay_caps_the_schedule_itself);
    tcase_add_test(tc, signature_timestamp_is_the_attempts_time_not_the_due_time);
    tcase_add_test(tc, max_pending_boundary_is_exact);
    tcase_add_test(tc, redeliver_meets_max_pending_at_the_same_boundary);
    tcase_add_test(tc, prefix_subscription_does_not_match_a_longer_word);
    tcase_add_test(tc, prefix_that_only_matches_a_longer_word_is_refused);
    tcase_add_test(tc, task_id_rule_does_not_reach_a_type_sharing_the_word);
    tcase_add_test(tc, destroy_commits_outcomes_known_while_another_is_in_flight);
    tcase_add_test(tc, auto_disable_known_while_another_is_in_flight_survives_restart);
    tcase_add_test(tc, outcome_known_while_another_is_in_flight_is_committed_soon);
    tcase_add_test(tc, recover_requeues_skipped_sqlite);
    tcase_add_test(tc, recover_requeues_skipped_memory);
    tcase_add_test(tc, enabling_restarts_the_failing_clock_memory);
    tcase_add_test(tc, enabling_restarts_the_failing_clock_sqlite);
    tcase_add_test(tc, failing_clock_survives_restart);
    tcase_add_test(tc, max_connections_limit_is_exact);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
