/* The scheduler's logic on a mock transport and a fake clock: retry schedule,
 * Retry-After, 410, auto-disable, limits, backpressure, rotation, shutdown. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pool.h"
#include "mock.h"
#include "support.h"

typedef struct {
    wh_attempt rows[512];
    char ids[512][WH_ID_MAX];
    char errors[512][256];
    size_t n;
    wh_ctx *reenter; /* emit from inside the sink when set */
    int closed;
} log_capture;

static void capture_write(void *ud, const wh_attempt *a)
{
    log_capture *c = ud;
    if (c->n == 512)
        return;
    c->rows[c->n] = *a;
    snprintf(c->ids[c->n], WH_ID_MAX, "%s", a->event_id);
    snprintf(c->errors[c->n], 256, "%s", a->error ? a->error : "");
    c->rows[c->n].event_id = c->ids[c->n];
    c->rows[c->n].error = a->error ? c->errors[c->n] : NULL;
    c->rows[c->n].event_type = c->rows[c->n].endpoint_id = c->rows[c->n].url = NULL;
    c->rows[c->n].response_body = NULL;
    c->n++;
    if (c->reenter)
        ck_assert_int_ge(wh_emit(c->reenter, &(wh_event){.event_type = "workflow_run.started", .run_id = "again", .status = "started"}, NULL), 0);
}

static void capture_close(void *ud) { ((log_capture *)ud)->closed++; }

typedef struct {
    mock *m;
    fake_clock clock;
    log_capture *log;
    wh_ctx *ctx;
} rig;

static const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

static void rig_up(rig *r, const char *const *settings)
{
    r->m = calloc(1, sizeof *r->m);
    r->log = calloc(1, sizeof *r->log);
    r->clock.now_ms = 1795719600000LL;
    wh_conf *c = wh_conf_new();
    char err[256];
    ck_assert_int_eq(wh_conf_set(c, "retry.jitter", "0", err, sizeof err), WH_OK);
    for (const char *const *s = settings; s && *s; s += 2)
        ck_assert_msg(wh_conf_set(c, s[0], s[1], err, sizeof err) == WH_OK, "%s", err);
    wh_transport t = mock_transport(r->m);
    wh_conf_set_transport(c, &t);
    wh_conf_set_clock(c, fake_clock_now, &r->clock);
    wh_conf_add_log_sink(c, &(wh_log_sink){.write = capture_write, .close = capture_close, .ud = r->log});
    r->ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(r->ctx != NULL, "%s", err);
}

static void rig_down(rig *r)
{
    if (r->ctx)
        wh_destroy(r->ctx);
    ck_assert_int_eq(r->log->closed, 1);
    ck_assert_int_eq(r->m->destroyed, 1);
    mock_free(r->m);
    free(r->m);
    free(r->log);
}

static void add_endpoint(rig *r, const char *url, char id[WH_ID_MAX])
{
    ck_assert_int_eq(wh_endpoint_add(r->ctx, &(wh_endpoint_spec){.url = url, .secret = secret}, id), WH_OK);
}

static int emit(rig *r, char id[WH_ID_MAX])
{
    return wh_emit(r->ctx, &(wh_event){.event_type = "task_run.completed", .run_id = "run_1",
                                        .task_id = "task_1", .status = "completed"},
                   id);
}

START_TEST(fails_twice_then_delivers_with_same_id_and_fresh_timestamps)
{
    rig r;
    rig_up(&r, NULL);
    char ep[WH_ID_MAX], ev[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", ep);
    ck_assert_int_eq(emit(&r, ev), 1);
    ck_assert_int_eq(wh_poll(r.ctx, 0), 0);
    ck_assert_uint_eq(r.m->n, 1);
    mock_answer(r.m, 0, 500, NULL, NULL);
    ck_assert_int_eq(wh_poll(r.ctx, 0), 1);
    ck_assert_uint_eq(r.log->n, 1);
    ck_assert_int_eq(r.log->rows[0].outcome, WH_OUTCOME_RETRYING);
    ck_assert_int_eq(r.log->rows[0].http_status, 500);
    ck_assert_int_eq(r.log->rows[0].attempt, 1);
    ck_assert_int_eq(r.log->rows[0].next_attempt_ms, r.clock.now_ms + 5000);
    /* not before the schedule says */
    r.clock.now_ms += 4999;
    ck_assert_int_eq(wh_timeout_ms(r.ctx), 1);
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 1);
    r.clock.now_ms += 1;
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 2);
    mock_answer(r.m, 1, 500, NULL, NULL);
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.log->rows[1].outcome, WH_OUTCOME_RETRYING);
    ck_assert_int_eq(r.log->rows[1].attempt, 2);
    ck_assert_int_eq(r.log->rows[1].next_attempt_ms, r.clock.now_ms + 300000);
    r.clock.now_ms += 300000;
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 3);
    mock_answer(r.m, 2, 200, NULL, NULL);
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.log->n, 3);
    ck_assert_int_eq(r.log->rows[2].outcome, WH_OUTCOME_DELIVERED);
    ck_assert_ptr_null(r.log->rows[2].error);
    ck_assert_int_eq(r.log->rows[2].next_attempt_ms, 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(r.m->reqs[i].id, ev);
        ck_assert_int_eq(wh_verify(secret, r.m->reqs[i].id, r.m->reqs[i].timestamp, r.m->reqs[i].signature,
                                   r.m->reqs[i].body, r.m->reqs[i].body_len, atoll(r.m->reqs[i].timestamp), 0),
                         WH_OK);
    }
    ck_assert_int_lt(atoll(r.m->reqs[0].timestamp), atoll(r.m->reqs[1].timestamp));
    ck_assert_int_lt(atoll(r.m->reqs[1].timestamp), atoll(r.m->reqs[2].timestamp));
    ck_assert_str_eq(r.m->reqs[0].body, r.m->reqs[2].body);
    wh_stats_info st;
    wh_stats(r.ctx, &st);
    ck_assert_uint_eq(st.delivered, 1);
    ck_assert_uint_eq(st.attempts, 3);
    ck_assert_uint_eq(st.pending, 0);
    rig_down(&r);
}
END_TEST

START_TEST(jitter_stays_within_bounds)
{
    const char *set[] = {"retry.jitter", "0.2", "retry.schedule", "10s", NULL};
    rig r;
    rig_up(&r, set);
    char ep[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", ep);
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 200; i++) {
        emit(&r, NULL);
        wh_poll(r.ctx, 0);
        mock_answer(r.m, r.m->n - 1, 500, NULL, NULL);
        wh_poll(r.ctx, 0);
        int64_t d = r.log->rows[r.log->n - 1].next_attempt_ms - r.clock.now_ms;
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    ck_assert_int_ge(lo, 8000);
    ck_assert_int_le(hi, 12000);
    ck_assert_int_lt(lo, 9000); /* spread, not a constant */
    ck_assert_int_gt(hi, 11000);
    rig_down(&r);
}
END_TEST

START_TEST(retry_after_is_honoured_never_sooner_and_capped)
{
    const char *set[] = {"retry.max_delay", "1h", NULL};
    rig r;
    rig_up(&r, set);
    char ep[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", ep);
    emit(&r, NULL);
    wh_poll(r.ctx, 0);
    mock_answer(r.m, 0, 429, "7", NULL);
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.log->rows[0].next_attempt_ms - r.clock.now_ms, 7000);
    r.clock.now_ms += 6999;
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 1);
    r.clock.now_ms += 1;
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 2);
    /* shorter than the schedule (5m for attempt 2): the schedule wins */
    mock_answer(r.m, 1, 503, "1", NULL);
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.log->rows[1].next_attempt_ms - r.clock.now_ms, 300000);
    r.clock.now_ms += 300000;
    wh_poll(r.ctx, 0);
    /* ten days: capped by retry.max_delay */
    mock_answer(r.m, 2, 429, "864000", NULL);
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.log->rows[2].next_attempt_ms - r.clock.now_ms, 3600000);
    r.clock.now_ms += 3600000;
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 4);
    /* an HTTP date two hours ahead: 2h > schedule's 2h for attempt 4? equal; use 3h */
    mock_answer(r.m, 3, 503, "Fri, 27 Nov 2026 20:00:00 GMT", NULL);
    r.clock.now_ms = 1795719600000LL + 2 * 3600000LL; /* 2026-11-26 21:00 UTC */
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.log->rows[3].next_attempt_ms - r.clock.now_ms, 3600000); /* cap */
    rig_down(&r);
}
END_TEST

START_TEST(retry_after_parsing)
{
    ck_assert_int_eq(wh__parse_retry_after("7", 0), 7000);
    ck_assert_int_eq(wh__parse_retry_after(" 120 ", 0), 120000);
    ck_assert_int_eq(wh__parse_retry_after("-1", 0), -1);
    ck_assert_int_eq(wh__parse_retry_after("soon", 0), -1);
    ck_assert_int_eq(wh__parse_retry_after(NULL, 0), -1);
    ck_assert_int_eq(wh__parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470000LL), 10000);
    ck_assert_int_eq(wh__parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490000LL), 0);
}
END_TEST

START_TEST(schedule_running_out_fails_the_delivery)
{
    const char *set[] = {"retry.schedule", "1s,2s", NULL};
    rig r;
    rig_up(&r, set);
    char ep[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", ep);
    emit(&r, NULL);
    for (int i = 0; i < 3; i++) {
        wh_poll(r.ctx, 0);
        ck_assert_uint_eq(r.m->n, (size_t)i + 1);
        mock_answer(r.m, i, 0, NULL, "Connection refused");
        wh_poll(r.ctx, 0);
        r.clock.now_ms += 2000;
    }
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 3);
    ck_assert_uint_eq(r.log->n, 3);
    ck_assert_int_eq(r.log->rows[2].outcome, WH_OUTCOME_FAILED);
    ck_assert_ptr_nonnull(strstr(r.log->errors[2], "Connection refused"));
    ck_assert_ptr_nonnull(strstr(r.log->errors[2], "gave up after 3 attempts"));
    wh_stats_info st;
    wh_stats(r.ctx, &st);
    ck_assert_uint_eq(st.failed, 1);
    ck_assert_uint_eq(st.pending, 0);
    rig_down(&r);
}
END_TEST

START_TEST(gone_disables_and_later_emits_are_skipped)
{
    rig r;
    rig_up(&r, NULL);
    char ep[WH_ID_MAX];
    add_endpoint(&r, "http://h/gone", ep);
    emit(&r, NULL);
    wh_poll(r.ctx, 0);
    mock_answer(r.m, 0, 410, NULL, NULL);
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.log->rows[0].outcome, WH_OUTCOME_FAILED);
    ck_assert_ptr_nonnull(strstr(r.log->errors[0], "410"));
    wh_stats_info st;
    wh_stats(r.ctx, &st);
    ck_assert_uint_eq(st.endpoints_disabled, 1);
    ck_assert_int_eq(emit(&r, NULL), 0); /* nobody enabled to send to */
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 1);
    ck_assert_uint_eq(r.log->n, 2);
    ck_assert_int_eq(r.log->rows[1].outcome, WH_OUTCOME_SKIPPED);
    ck_assert_ptr_nonnull(strstr(r.log->errors[1], "410"));
    rig_down(&r);
}
END_TEST

START_TEST(endpoint_failing_for_disable_after_is_disabled_and_success_resets)
{
    const char *set[] = {"endpoint.disable_after", "1h", "retry.schedule", "20m,20m,20m,20m,20m,20m", NULL};
    rig r;
    rig_up(&r, set);
    char ep[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", ep);
    emit(&r, NULL);
    /* fail 30 min, then succeed: the clock resets */
    wh_poll(r.ctx, 0);
    mock_answer(r.m, 0, 500, NULL, NULL);
    wh_poll(r.ctx, 0);
    r.clock.now_ms += 20 * 60000;
    wh_poll(r.ctx, 0);
    mock_answer(r.m, 1, 200, NULL, NULL);
    wh_poll(r.ctx, 0);
    /* then fail for an hour */
    emit(&r, NULL);
    for (int i = 0; i < 4; i++) {
        wh_poll(r.ctx, 0);
        mock_answer(r.m, r.m->n - 1, 500, NULL, NULL);
        wh_poll(r.ctx, 0);
        wh_stats_info st;
        wh_stats(r.ctx, &st);
        ck_assert_uint_eq(st.endpoints_disabled, i == 3 ? 1 : 0);
        r.clock.now_ms += 20 * 60000;
    }
    ck_assert_ptr_nonnull(strstr(r.log->errors[r.log->n - 1], "endpoint disabled"));
    wh_poll(r.ctx, 0);
    ck_assert_int_eq(r.log->rows[r.log->n - 1].outcome, WH_OUTCOME_SKIPPED);
    rig_down(&r);
}
END_TEST

START_TEST(per_endpoint_limit_holds_and_others_go_on)
{
    const char *set[] = {"endpoint.max_in_flight", "2", NULL};
    rig r;
    rig_up(&r, set);
    char slow[WH_ID_MAX], fast[WH_ID_MAX];
    const char *only_a[] = {"task_run.completed", NULL};
    const char *only_b[] = {"workflow_run.started", NULL};
    ck_assert_int_eq(wh_endpoint_add(r.ctx, &(wh_endpoint_spec){.url = "http://h/slow", .event_types = only_a}, slow), WH_OK);
    ck_assert_int_eq(wh_endpoint_add(r.ctx, &(wh_endpoint_spec){.url = "http://h/fast", .event_types = only_b}, fast), WH_OK);
    for (int i = 0; i < 5; i++)
        emit(&r, NULL);
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(mock_in_flight(r.m), 2);
    for (int i = 0; i < 3; i++)
        wh_emit(r.ctx, &(wh_event){.event_type = "workflow_run.started", .run_id = "r", .status = "started"}, NULL);
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(mock_in_flight(r.m), 4); /* the fast endpoint is not stuck behind the slow one */
    wh_stats_info st;
    wh_stats(r.ctx, &st);
    ck_assert_uint_eq(st.in_flight, 4);
    ck_assert_uint_eq(st.pending, 4);
    mock_answer(r.m, 0, 204, NULL, NULL);
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 5); /* the slow endpoint's freed slot goes to its own next */
    ck_assert_str_eq(r.m->reqs[4].url, "http://h/slow");
    ck_assert_uint_eq(mock_in_flight(r.m), 4);
    rig_down(&r);
}
END_TEST

START_TEST(waiting_deliveries_of_a_disabled_endpoint_are_skipped_not_stuck)
{
    const char *set[] = {"endpoint.max_in_flight", "2", NULL};
    rig r;
    rig_up(&r, set);
    char ep[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", ep);
    for (int i = 0; i < 5; i++)
        emit(&r, NULL);
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(mock_in_flight(r.m), 2); /* 3 wait behind the limit */
    ck_assert_int_eq(wh_endpoint_set_enabled(r.ctx, ep, 0), WH_OK);
    mock_answer(r.m, 0, 204, NULL, NULL);
    mock_answer(r.m, 1, 204, NULL, NULL);
    wh_poll(r.ctx, 0);
    wh_poll(r.ctx, 0);
    wh_stats_info st;
    wh_stats(r.ctx, &st);
    ck_assert_uint_eq(st.delivered, 2);
    ck_assert_uint_eq(st.skipped, 3);
    ck_assert_uint_eq(st.pending, 0);
    ck_assert_uint_eq(r.m->n, 2);
    rig_down(&r);
}
END_TEST

START_TEST(max_pending_refuses_and_queues_nothing)
{
    const char *set[] = {"queue.max_pending", "3", NULL};
    rig r;
    rig_up(&r, set);
    char a[WH_ID_MAX], b[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", a);
    add_endpoint(&r, "http://h/b", b);
    ck_assert_int_eq(emit(&r, NULL), 2);
    ck_assert_int_eq(emit(&r, NULL), WH_ERR_FULL);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "queue.max_pending"));
    wh_stats_info st;
    wh_stats(r.ctx, &st);
    ck_assert_uint_eq(st.emitted, 1);
    ck_assert_uint_eq(st.pending, 2);
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 2);
    rig_down(&r);
}
END_TEST

START_TEST(rotation_signs_with_both_newest_first_until_grace_ends)
{
    rig r;
    rig_up(&r, NULL);
    char ep[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", ep);
    const char *next = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    ck_assert_int_eq(wh_endpoint_rotate_secret(r.ctx, ep, next, 3600), WH_OK);
    emit(&r, NULL);
    wh_poll(r.ctx, 0);
    mock_req *q = &r.m->reqs[0];
    char first[512], second[512];
    ck_assert_int_eq(sscanf(q->signature, "%511s %511s", first, second), 2);
    int64_t ts = atoll(q->timestamp);
    ck_assert_int_eq(wh_verify(next, q->id, q->timestamp, first, q->body, q->body_len, ts, 0), WH_OK);
    ck_assert_int_eq(wh_verify(secret, q->id, q->timestamp, second, q->body, q->body_len, ts, 0), WH_OK);
    mock_answer(r.m, 0, 200, NULL, NULL);
    wh_poll(r.ctx, 0);
    r.clock.now_ms += 3600 * 1000;
    emit(&r, NULL);
    wh_poll(r.ctx, 0);
    q = &r.m->reqs[1];
    ck_assert_ptr_null(strchr(q->signature, ' '));
    ck_assert_int_eq(wh_verify(next, q->id, q->timestamp, q->signature, q->body, q->body_len, atoll(q->timestamp), 0), WH_OK);
    rig_down(&r);
}
END_TEST

/* The signatures of one request, split at spaces; returns how many. */
static int split_signatures(const char *header, char out[][128], int max)
{
    int n = 0;
    for (const char *p = header; *p && n < max;) {
        size_t len = strcspn(p, " ");
        ck_assert_uint_lt(len, 128);
        memcpy(out[n], p, len);
        out[n++][len] = '\0';
        p += len + (p[len] == ' ');
    }
    return n;
}

/* Sends one event and checks that its signatures are made, in order, with exactly these
 * secrets (newest first). */
static void expect_signed_by(rig *r, const char *const *secrets)
{
    size_t before = r->m->n;
    emit(r, NULL);
    wh_poll(r->ctx, 0);
    ck_assert_uint_eq(r->m->n, before + 1);
    mock_req *q = &r->m->reqs[before];
    char sigs[12][128];
    int n = split_signatures(q->signature, sigs, 12), want = 0;
    while (secrets[want])
        want++;
    ck_assert_msg(n == want, "%d signatures, expected %d: %s", n, want, q->signature);
    for (int i = 0; i < n; i++)
        ck_assert_msg(wh_verify(secrets[i], q->id, q->timestamp, sigs[i], q->body, q->body_len,
                                atoll(q->timestamp), 0) == WH_OK, "signature %d", i);
    mock_answer(r->m, before, 200, NULL, NULL);
    wh_poll(r->ctx, 0);
}

/* A second rotation inside the grace keeps the first old secret until its own grace ends:
 * a receiver that has not moved yet may still hold any of them. */
START_TEST(each_old_secret_signs_until_its_own_grace_ends)
{
    rig r;
    rig_up(&r, NULL);
    char ep[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", ep);
    const char *b = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const char *c = "whsec_dGhpcmQgc2VjcmV0IGZvciB0aGUgdGVzdA==";
    const char *d = "whsec_Zm91cnRoIHNlY3JldCBmb3IgdGhlIHRlc3Q=";
    ck_assert_int_eq(wh_endpoint_rotate_secret(r.ctx, ep, b, 3600), WH_OK);  /* a until 1 h */
    r.clock.now_ms += 600 * 1000;
    ck_assert_int_eq(wh_endpoint_rotate_secret(r.ctx, ep, c, 7200), WH_OK);  /* b until 2 h 10 m */
    expect_signed_by(&r, (const char *[]){c, b, secret, NULL});
    r.clock.now_ms += 3000 * 1000 - 1; /* a's grace: 1 ms left */
    expect_signed_by(&r, (const char *[]){c, b, secret, NULL});
    r.clock.now_ms += 1;
    expect_signed_by(&r, (const char *[]){c, b, NULL});
    /* no grace for c: it stops at once, b keeps its own */
    ck_assert_int_eq(wh_endpoint_rotate_secret(r.ctx, ep, d, -1), WH_OK);
    expect_signed_by(&r, (const char *[]){d, b, NULL});
    r.clock.now_ms += 4200 * 1000;
    expect_signed_by(&r, (const char *[]){d, NULL});
    rig_down(&r);
}
END_TEST

/* At most 8 old secrets sign at once; beyond that the one whose grace ends first goes. */
START_TEST(old_secrets_are_bounded)
{
    rig r;
    rig_up(&r, NULL);
    char ep[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", ep);
    char secrets[11][80], sig[64];
    const char *expect[11] = {NULL};
    for (int i = 0; i < 10; i++) {
        unsigned char raw[24];
        memset(raw, 'a' + i, sizeof raw);
        ck_assert_int_eq(wh_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "x", i, raw, sizeof raw,
                                 sig, sizeof sig), WH_OK);
        /* the base64 of a signature (32 bytes) doubles as a well-formed secret */
        snprintf(secrets[i], sizeof secrets[i], "whsec_%s", sig + 3);
        ck_assert_int_eq(wh_endpoint_rotate_secret(r.ctx, ep, secrets[i], 3600 + i), WH_OK);
    }
    expect[0] = secrets[9];
    for (int k = 1; k <= 8; k++)
        expect[k] = secrets[9 - k];
    expect_signed_by(&r, expect);
    rig_down(&r);
}
END_TEST

START_TEST(destroy_reports_pending_as_failed)
{
    rig r;
    rig_up(&r, NULL);
    char ep[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", ep);
    emit(&r, NULL);
    emit(&r, NULL);
    wh_poll(r.ctx, 0);
    mock_answer(r.m, 0, 500, NULL, NULL);
    wh_poll(r.ctx, 0); /* one retrying, one in flight */
    log_capture *log = r.log;
    wh_destroy(r.ctx);
    r.ctx = NULL;
    ck_assert_uint_eq(log->n, 3);
    ck_assert_int_eq(log->rows[1].outcome, WH_OUTCOME_FAILED);
    ck_assert_str_eq(log->errors[1], "destroyed");
    ck_assert_int_eq(log->rows[2].outcome, WH_OUTCOME_FAILED);
    ck_assert_str_eq(log->errors[2], "destroyed");
    rig_down(&r);
}
END_TEST

START_TEST(sink_may_emit_and_log_is_queryable)
{
    rig r;
    rig_up(&r, NULL);
    char ep[WH_ID_MAX], ev[WH_ID_MAX];
    add_endpoint(&r, "http://h/a", ep);
    emit(&r, ev);
    wh_poll(r.ctx, 0);
    r.log->reenter = r.ctx; /* a sink calling back into the library must not deadlock */
    mock_answer(r.m, 0, 200, NULL, NULL);
    wh_poll(r.ctx, 0);
    r.log->reenter = NULL;
    wh_poll(r.ctx, 0);
    ck_assert_uint_eq(r.m->n, 2);
    ck_assert_int_eq(wh_log_query(r.ctx, &(wh_log_filter){.event_id = ev}, NULL, NULL), 1);
    ck_assert_int_eq(wh_log_query(r.ctx, &(wh_log_filter){.outcomes = WH_OUTCOME_BIT(WH_OUTCOME_DELIVERED)}, NULL, NULL), 1);
    ck_assert_int_eq(wh_log_query(r.ctx, &(wh_log_filter){.outcomes = WH_OUTCOME_BIT(WH_OUTCOME_FAILED)}, NULL, NULL), 0);
    rig_down(&r);
}
END_TEST

/* The pool that events and deliveries come from (pool.c): from 4 threads at once, with no
 * reserve so that they add chunks concurrently, every block is 16-aligned and keeps what was
 * written into it, small and large alike; a block given back is the next one of its size. */
typedef struct {
    wh__pool *pool;
    int id;
    int bad;
} pool_worker;

#define POOL_BLOCKS 6000

static size_t pool_size(int i) { return (size_t)(i * 37 % 5000) + 1; }

static void *pool_main(void *arg)
{
    pool_worker *w = arg;
    unsigned char **b = malloc(POOL_BLOCKS * sizeof *b);
    for (int i = 0; i < POOL_BLOCKS; i++) {
        b[i] = wh__pool_alloc(w->pool, pool_size(i));
        if (!b[i] || (uintptr_t)b[i] % 16) {
            w->bad++;
            b[i] = NULL;
            continue;
        }
        memset(b[i], (w->id * 31 + i) & 0xff, pool_size(i));
    }
    for (int i = 0; i < POOL_BLOCKS; i++)
        for (size_t k = 0; b[i] && k < pool_size(i); k++)
            w->bad += b[i][k] != ((w->id * 31 + i) & 0xff);
    for (int i = 0; i < POOL_BLOCKS; i++)
        wh__pool_free(b[i]);
    free(b);
    return NULL;
}

START_TEST(pool_blocks_are_distinct_aligned_and_reused)
{
    wh__pool *pool = wh__pool_new(0);
    ck_assert_ptr_nonnull(pool);
    pool_worker w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (pool_worker){.pool = pool, .id = i};
        ck_assert_int_eq(pthread_create(&t[i], NULL, pool_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(w[i].bad, 0);
    }
#if !defined(__SANITIZE_ADDRESS__)
    void *a = wh__pool_alloc(pool, 300);
    wh__pool_free(a);
    ck_assert_ptr_eq(wh__pool_alloc(pool, 290), a); /* same 16-byte class */
    wh__pool_free(a);
#endif
    wh__pool_free(NULL);
    wh__pool_destroy(pool);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("scheduler");
    TCase *tc = tcase_create("scheduler");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, fails_twice_then_delivers_with_same_id_and_fresh_timestamps);
    tcase_add_test(tc, jitter_stays_within_bounds);
    tcase_add_test(tc, retry_after_is_honoured_never_sooner_and_capped);
    tcase_add_test(tc, retry_after_parsing);
    tcase_add_test(tc, schedule_running_out_fails_the_delivery);
    tcase_add_test(tc, gone_disables_and_later_emits_are_skipped);
    tcase_add_test(tc, endpoint_failing_for_disable_after_is_disabled_and_success_resets);
    tcase_add_test(tc, per_endpoint_limit_holds_and_others_go_on);
    tcase_add_test(tc, waiting_deliveries_of_a_disabled_endpoint_are_skipped_not_stuck);
    tcase_add_test(tc, max_pending_refuses_and_queues_nothing);
    tcase_add_test(tc, rotation_signs_with_both_newest_first_until_grace_ends);
    tcase_add_test(tc, each_old_secret_signs_until_its_own_grace_ends);
    tcase_add_test(tc, old_secrets_are_bounded);
    tcase_add_test(tc, destroy_reports_pending_as_failed);
    tcase_add_test(tc, sink_may_emit_and_log_is_queryable);
    tcase_add_test(tc, pool_blocks_are_distinct_aligned_and_reused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
