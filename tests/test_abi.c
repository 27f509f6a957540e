/* The binary interface: every public struct's layout pinned on LP64 (a field moved or a size
 * changed by accident fails the build of this file), and the rule of reserved room (see
 * "ABI: how structs grow" in libwebhook(7)): a caller-allocated struct whose reserved slots
 * are not zero is refused, naming the struct; wh_stats zeroes its whole struct. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "support.h"
#include "webhook/webhook.h"

/* Caller-allocated structs never change size: a new field takes a reserved slot. The ones
 * the library allocates (wh_endpoint_info, wh_attempt, wh_request, wh_endpoint_metrics,
 * wh_notice) grow only at the end: their size pin moves then, never an offset. */
#if defined(__LP64__)
#define PIN(s, f, off) _Static_assert(offsetof(s, f) == (off), #s "." #f " moved")
#define PIN_SIZE(s, n) _Static_assert(sizeof(s) == (n), "sizeof(" #s ") changed")
PIN_SIZE(wh_endpoint_spec, 112);
PIN(wh_endpoint_spec, url, 0);
PIN(wh_endpoint_spec, event_types, 8);
PIN(wh_endpoint_spec, secret, 16);
PIN(wh_endpoint_spec, disabled, 24);
PIN(wh_endpoint_spec, description, 32);
PIN(wh_endpoint_spec, key, 40);
PIN(wh_endpoint_spec, reserved, 48);
PIN_SIZE(wh_endpoint_info, 80);
PIN(wh_endpoint_info, id, 0);
PIN(wh_endpoint_info, url, 8);
PIN(wh_endpoint_info, event_types, 16);
PIN(wh_endpoint_info, secret, 24);
PIN(wh_endpoint_info, enabled, 32);
PIN(wh_endpoint_info, description, 40);
PIN(wh_endpoint_info, disabled_reason, 48);
PIN(wh_endpoint_info, created_ms, 56);
PIN(wh_endpoint_info, settings, 64);
PIN(wh_endpoint_info, key, 72);
PIN_SIZE(wh_event, 112);
PIN(wh_event, event_type, 0);
PIN(wh_event, run_id, 8);
PIN(wh_event, task_id, 16);
PIN(wh_event, status, 24);
PIN(wh_event, timestamp_ms, 32);
PIN(wh_event, id, 40);
PIN(wh_event, reserved, 48);
PIN_SIZE(wh_attempt, 120);
PIN(wh_attempt, event_id, 0);
PIN(wh_attempt, event_type, 8);
PIN(wh_attempt, endpoint_id, 16);
PIN(wh_attempt, url, 24);
PIN(wh_attempt, attempt, 32);
PIN(wh_attempt, outcome, 36);
PIN(wh_attempt, http_status, 40);
PIN(wh_attempt, error, 48);
PIN(wh_attempt, started_ms, 56);
PIN(wh_attempt, duration_us, 64);
PIN(wh_attempt, next_attempt_ms, 72);
PIN(wh_attempt, response_body, 80);
PIN(wh_attempt, response_len, 88);
PIN(wh_attempt, redelivery, 96);
PIN(wh_attempt, run_id, 104);
PIN(wh_attempt, task_id, 112);
PIN_SIZE(wh_log_sink, 88);
PIN(wh_log_sink, write, 0);
PIN(wh_log_sink, close, 8);
PIN(wh_log_sink, ud, 16);
PIN(wh_log_sink, reserved, 24);
PIN_SIZE(wh_log_filter, 120);
PIN(wh_log_filter, endpoint_id, 0);
PIN(wh_log_filter, event_id, 8);
PIN(wh_log_filter, event_type, 16);
PIN(wh_log_filter, outcomes, 24);
PIN(wh_log_filter, since_ms, 32);
PIN(wh_log_filter, until_ms, 40);
PIN(wh_log_filter, limit, 48);
PIN(wh_log_filter, reserved, 56);
PIN_SIZE(wh_request, 56);
PIN(wh_request, url, 0);
PIN(wh_request, headers, 8);
PIN(wh_request, body, 16);
PIN(wh_request, body_len, 24);
PIN(wh_request, timeout_ms, 32);
PIN(wh_request, connect_timeout_ms, 40);
PIN(wh_request, response_max, 48);
PIN_SIZE(wh_response, 120);
PIN(wh_response, http_status, 0);
PIN(wh_response, error, 8);
PIN(wh_response, body, 16);
PIN(wh_response, body_len, 24);
PIN(wh_response, retry_after, 32);
PIN(wh_response, duration_us, 40);
PIN(wh_response, blocked, 48);
PIN(wh_response, reserved, 56);
PIN_SIZE(wh_transport, 112);
PIN(wh_transport, ud, 0);
PIN(wh_transport, submit, 8);
PIN(wh_transport, perform, 16);
PIN(wh_transport, fd, 24);
PIN(wh_transport, timeout_ms, 32);
PIN(wh_transport, destroy, 40);
PIN(wh_transport, reserved, 48);
PIN_SIZE(wh_stats_info, 136);
PIN(wh_stats_info, emitted, 0);
PIN(wh_stats_info, delivered, 8);
PIN(wh_stats_info, failed, 16);
PIN(wh_stats_info, skipped, 24);
PIN(wh_stats_info, attempts, 32);
PIN(wh_stats_info, pending, 40);
PIN(wh_stats_info, in_flight, 48);
PIN(wh_stats_info, endpoints, 56);
PIN(wh_stats_info, endpoints_disabled, 64);
PIN(wh_stats_info, reserved, 72);
PIN_SIZE(wh_endpoint_metrics, 176);
PIN(wh_endpoint_metrics, endpoint_id, 0);
PIN(wh_endpoint_metrics, url, 8);
PIN(wh_endpoint_metrics, enabled, 16);
PIN(wh_endpoint_metrics, delivered, 24);
PIN(wh_endpoint_metrics, failed, 32);
PIN(wh_endpoint_metrics, skipped, 40);
PIN(wh_endpoint_metrics, retrying, 48);
PIN(wh_endpoint_metrics, attempts, 56);
PIN(wh_endpoint_metrics, attempts_by_class, 64);
PIN(wh_endpoint_metrics, latency_buckets, 120);
PIN(wh_endpoint_metrics, latency_le_us, 128);
PIN(wh_endpoint_metrics, latency_count, 136);
PIN(wh_endpoint_metrics, latency_sum_us, 144);
PIN(wh_endpoint_metrics, pending, 152);
PIN(wh_endpoint_metrics, in_flight, 160);
PIN(wh_endpoint_metrics, last_success_ms, 168);
PIN_SIZE(wh_notice, 40);
PIN(wh_notice, kind, 0);
PIN(wh_notice, endpoint_id, 8);
PIN(wh_notice, event_id, 16);
PIN(wh_notice, reason, 24);
PIN(wh_notice, time_ms, 32);
_Static_assert(WH_RESERVED_SLOTS == 8, "the reserved room changed");
_Static_assert(WH_ABI_VERSION == 1, "a new ABI: update the pins above with it");
#endif

static wh_ctx *memory_ctx(wh_conf *c)
{
    char err[256];
    if (!c)
        c = wh_conf_new();
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

static void assert_refused(int rc, const char *name)
{
    ck_assert_int_eq(rc, WH_ERR_INVALID);
    char want[64];
    snprintf(want, sizeof want, "%s: reserved fields must be zero", name);
    ck_assert_msg(strstr(wh_last_error(), want), "%s", wh_last_error());
}

START_TEST(an_event_with_reserved_fields_set_is_refused_and_queues_nothing)
{
    wh_ctx *ctx = memory_ctx(NULL);
    char ep[WH_ID_MAX];
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "https://a.example/h"}, ep),
                     WH_OK);
    for (int slot = 0; slot < WH_RESERVED_SLOTS; slot++) {
        wh_event ev = {.event_type = "workflow_run.started", .run_id = "r", .status = "started"};
        ev.reserved[slot] = &ev;
        assert_refused(wh_emit(ctx, &ev, NULL), "wh_event");
    }
    wh_stats_info st;
    ck_assert_int_eq(wh_stats(ctx, &st), WH_OK);
    ck_assert_uint_eq(st.emitted, 0);
    ck_assert_uint_eq(st.pending, 0);
    /* zeroed, the same event goes */
    ck_assert_int_eq(wh_emit(ctx, &(wh_event){.event_type = "workflow_run.started", .run_id = "r",
                                              .status = "started"}, NULL), 1);
    wh_destroy(ctx);
}
END_TEST

START_TEST(an_endpoint_spec_with_reserved_fields_set_is_refused)
{
    wh_ctx *ctx = memory_ctx(NULL);
    wh_endpoint_spec spec = {.url = "https://a.example/h"};
    spec.reserved[WH_RESERVED_SLOTS - 1] = &spec;
    char ep[WH_ID_MAX];
    assert_refused(wh_endpoint_add(ctx, &spec, ep), "wh_endpoint_spec");
    ck_assert_int_eq(wh_endpoint_list(ctx, NULL, NULL), 0);
    wh_destroy(ctx);
}
END_TEST

static void count_row(void *ud, const wh_attempt *a)
{
    (void)a;
    ++*(int *)ud;
}

START_TEST(a_log_filter_with_reserved_fields_set_is_refused)
{
    wh_ctx *ctx = memory_ctx(NULL);
    int rows = 0;
    wh_log_filter f = {.limit = 10};
    f.reserved[0] = &f;
    assert_refused(wh_log_query(ctx, &f, count_row, &rows), "wh_log_filter");
    f.reserved[0] = NULL;
    ck_assert_int_eq(wh_log_query(ctx, &f, count_row, &rows), 0);
    wh_destroy(ctx);
}
END_TEST

static void sink_write(void *ud, const wh_attempt *a)
{
    (void)ud, (void)a;
}

static int no_submit(void *ud, const wh_request *req, void *token)
{
    (void)ud, (void)req, (void)token;
    return WH_ERR_TRANSPORT;
}

static int no_perform(void *ud, wh_transport_done_fn done, void *done_ud)
{
    (void)ud, (void)done, (void)done_ud;
    return 0;
}

START_TEST(a_log_sink_or_transport_with_reserved_fields_set_is_refused)
{
    wh_conf *c = wh_conf_new();
    wh_log_sink sink = {.write = sink_write};
    sink.reserved[3] = &sink;
    assert_refused(wh_conf_add_log_sink(c, &sink), "wh_log_sink");
    wh_transport t = {.submit = no_submit, .perform = no_perform};
    t.reserved[5] = &t;
    assert_refused(wh_conf_set_transport(c, &t), "wh_transport");
    sink.reserved[3] = NULL;
    t.reserved[5] = NULL;
    ck_assert_int_eq(wh_conf_add_log_sink(c, &sink), WH_OK);
    ck_assert_int_eq(wh_conf_set_transport(c, &t), WH_OK);
    wh_conf_destroy(c);
}
END_TEST

/* A transport that answers every request at once with 200 and, when told to, a response
 * whose reserved room is not zero (as one built against a newer header might). */
typedef struct {
    void *token[8];
    int n;
    bool dirty;
} instant;

static int instant_submit(void *ud, const wh_request *req, void *token)
{
    (void)req;
    instant *t = ud;
    if (t->n == 8)
        return WH_ERR_TRANSPORT;
    t->token[t->n++] = token;
    return WH_OK;
}

static int instant_perform(void *ud, wh_transport_done_fn done, void *done_ud)
{
    instant *t = ud;
    int n = t->n;
    for (int i = 0; i < n; i++) {
        wh_response r = {.http_status = 200};
        if (t->dirty)
            r.reserved[2] = t;
        done(done_ud, t->token[i], &r);
    }
    t->n = 0;
    return n;
}

typedef struct {
    int n;
    wh_outcome outcome;
    char error[128];
} last_attempt;

static void keep_last(void *ud, const wh_attempt *a)
{
    last_attempt *l = ud;
    l->n++;
    l->outcome = a->outcome;
    snprintf(l->error, sizeof l->error, "%s", a->error ? a->error : "");
}

START_TEST(a_response_with_reserved_fields_set_fails_the_attempt)
{
    for (int dirty = 0; dirty < 2; dirty++) {
        instant t = {.dirty = dirty};
        last_attempt seen = {0};
        wh_conf *c = wh_conf_new();
        ck_assert_int_eq(wh_conf_set_transport(c, &(wh_transport){.ud = &t, .submit = instant_submit,
                                                                  .perform = instant_perform}),
                         WH_OK);
        ck_assert_int_eq(wh_conf_add_log_sink(c, &(wh_log_sink){.write = keep_last, .ud = &seen}),
                         WH_OK);
        wh_ctx *ctx = memory_ctx(c);
        char ep[WH_ID_MAX];
        ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "https://a.example/h"}, ep),
                         WH_OK);
        ck_assert_int_eq(wh_emit(ctx, &(wh_event){.event_type = "workflow_run.started",
                                                  .run_id = "r", .status = "started"}, NULL), 1);
        for (int i = 0; i < 50 && !seen.n; i++)
            wh_poll(ctx, 10);
        ck_assert_int_eq(seen.n, 1);
        if (dirty) {
            ck_assert_int_eq(seen.outcome, WH_OUTCOME_RETRYING);
            ck_assert_msg(strstr(seen.error, "wh_response: reserved fields must be zero"), "%s",
                          seen.error);
        } else {
            ck_assert_int_eq(seen.outcome, WH_OUTCOME_DELIVERED);
        }
        wh_destroy(ctx);
    }
}
END_TEST

START_TEST(wh_stats_zeroes_the_whole_struct)
{
    wh_ctx *ctx = memory_ctx(NULL);
    wh_stats_info st;
    memset(&st, 0xa5, sizeof st);
    ck_assert_int_eq(wh_stats(ctx, &st), WH_OK);
    for (int i = 0; i < WH_RESERVED_SLOTS; i++)
        ck_assert_ptr_null(st.reserved[i]);
    ck_assert_uint_eq(st.emitted, 0);
    wh_destroy(ctx);
}
END_TEST

START_TEST(the_version_and_abi_are_those_of_the_header)
{
    ck_assert_str_eq(wh_version(), WH_VERSION_STRING);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", WH_VERSION_MAJOR, WH_VERSION_MINOR, WH_VERSION_PATCH);
    ck_assert_str_eq(wh_version(), want);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("abi");
    TCase *tc = tcase_create("abi");
    tcase_add_test(tc, an_event_with_reserved_fields_set_is_refused_and_queues_nothing);
    tcase_add_test(tc, an_endpoint_spec_with_reserved_fields_set_is_refused);
    tcase_add_test(tc, a_log_filter_with_reserved_fields_set_is_refused);
    tcase_add_test(tc, a_log_sink_or_transport_with_reserved_fields_set_is_refused);
    tcase_add_test(tc, a_response_with_reserved_fields_set_fails_the_attempt);
    tcase_add_test(tc, wh_stats_zeroes_the_whole_struct);
    tcase_add_test(tc, the_version_and_abi_are_those_of_the_header);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
