/* Configuration: validated at set time, clear errors, nothing half-applied. */
#include <stdio.h>
#include <string.h>

#include "support.h"
#include "webhook/webhook.h"

START_TEST(defaults_are_readable)
{
    wh_conf *c = wh_conf_new();
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(wh_conf_get(c, "store"), "memory");
    ck_assert_str_eq(wh_conf_get(c, "retry.schedule"), "5s,5m,30m,2h,5h,10h,14h,20h,24h");
    ck_assert_str_eq(wh_conf_get(c, "retry.jitter"), "0.2");
    ck_assert_str_eq(wh_conf_get(c, "http.timeout_ms"), "15000");
    ck_assert_str_eq(wh_conf_get(c, "endpoint.max_in_flight"), "16");
    ck_assert_str_eq(wh_conf_get(c, "queue.max_pending"), "1000000");
    ck_assert_str_eq(wh_conf_get(c, "log.response_max"), "4096");
    ck_assert_ptr_null(wh_conf_get(c, "no.such.key"));
    wh_conf_destroy(c);
}
END_TEST

START_TEST(unknown_key_is_named)
{
    wh_conf *c = wh_conf_new();
    char err[256] = "";
    ck_assert_int_eq(wh_conf_set(c, "retry.schedul", "5s", err, sizeof err), WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "retry.schedul"));
    ck_assert_int_eq(wh_conf_set(c, NULL, "x", err, sizeof err), WH_ERR_INVALID);
    ck_assert_int_eq(wh_conf_set(c, "store", NULL, err, sizeof err), WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "store"));
    ck_assert_int_eq(wh_conf_set(NULL, "store", "memory", err, sizeof err), WH_ERR_INVALID);
    wh_conf_destroy(c);
}
END_TEST

static const struct {
    const char *key, *value;
} bad_values[] = {
    {"store", "postgres:x"},        {"store", "sqlite:"},
    {"store.sync", "sometimes"},    {"retry.schedule", "5s,,5m"},
    {"retry.schedule", "5s,"},      {"retry.schedule", "five"},
    {"retry.schedule", "-5s"},      {"retry.schedule", "5y"},
    {"retry.schedule", ""},         {"retry.schedule", "0x10"},
    {"retry.max_delay", "1e3"},     {"retry.max_delay", "5.s"},
    {"retry.jitter", "1.5"},        {"retry.jitter", "-0.1"},
    {"retry.jitter", "x"},          {"retry.max_delay", "forever"},
    {"endpoint.disable_after", ""}, {"endpoint.max_in_flight", "0"},
    {"http.timeout_ms", "12abc"},   {"http.max_connections", "-3"},
    {"queue.max_pending", "99999999999999"}, {"event_types.extra", "Workflow.Paused"},
    {"event_types.extra", "a.b,nodot"},      {"event_types.extra", "a.b.c"},
};

START_TEST(bad_value_is_refused_and_changes_nothing)
{
    wh_conf *c = wh_conf_new();
    const char *key = bad_values[_i].key;
    char before[512];
    snprintf(before, sizeof before, "%s", wh_conf_get(c, key));
    char err[256] = "";
    ck_assert_int_eq(wh_conf_set(c, key, bad_values[_i].value, err, sizeof err), WH_ERR_INVALID);
    ck_assert_msg(strstr(err, key), "error \"%s\" should name %s", err, key);
    ck_assert_str_eq(wh_conf_get(c, key), before);
    wh_conf_destroy(c);
}
END_TEST

START_TEST(good_values_apply)
{
    wh_conf *c = wh_conf_new();
    char err[256];
    ck_assert_int_eq(wh_conf_set(c, "retry.schedule", "1s,250ms,2m,1h,1d", err, sizeof err), WH_OK);
    ck_assert_str_eq(wh_conf_get(c, "retry.schedule"), "1s,250ms,2m,1h,1d");
    ck_assert_int_eq(wh_conf_set(c, "retry.jitter", "0", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "event_types.extra", "workflow_run.cancelled,task_run.failed", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "store", "sqlite:/tmp/x.db", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "store", "memory", err, sizeof err), WH_OK);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    /* the extra type is now a known one */
    const char *types[] = {"task_run.failed", NULL};
    char id[WH_ID_MAX];
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "http://127.0.0.1:9/x", .event_types = types}, id), WH_OK);
    wh_destroy(ctx);
}
END_TEST

START_TEST(null_conf_means_defaults)
{
    char err[256];
    wh_ctx *ctx = wh_new(NULL, err, sizeof err);
    ck_assert_ptr_nonnull(ctx);
    ck_assert_str_eq(wh_version(), WH_VERSION_STRING);
    wh_destroy(ctx);
}
END_TEST

START_TEST(strerror_names_every_code)
{
    for (int e = WH_ERR_TRANSPORT; e <= WH_OK; e++) {
        ck_assert_ptr_nonnull(wh_strerror(e));
        ck_assert_str_ne(wh_strerror(e), "unknown error");
    }
    ck_assert_str_eq(wh_strerror(-999), "unknown error");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc = tcase_create("conf");
    tcase_add_test(tc, defaults_are_readable);
    tcase_add_test(tc, unknown_key_is_named);
    tcase_add_loop_test(tc, bad_value_is_refused_and_changes_nothing, 0,
                        sizeof bad_values / sizeof bad_values[0]);
    tcase_add_test(tc, good_values_apply);
    tcase_add_test(tc, null_conf_means_defaults);
    tcase_add_test(tc, strerror_names_every_code);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
