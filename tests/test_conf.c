/* Configuration: validated at set time, clear errors, nothing half-applied. */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scratch.h"
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
    /* one syntax for every number, duration and list */
    {"http.timeout_ms", " 5"},      {"http.timeout_ms", "+5"},
    {"http.timeout_ms", "5 "},      {"http.timeout_ms", "-0"},
    {"http.timeout_ms", "0x10"},    {"http.timeout_ms", "5.0"},
    {"http.timeout_ms", ""},        {"queue.max_pending", "99999999999999999999999"},
    {"log.response_max", "1e3"},    {"log.ring_size", "\xd9\xa3"},
    {"retry.max_delay", " 5s"},     {"retry.max_delay", "+5s"},
    {"retry.max_delay", "5s "},     {"retry.max_delay", ".5s"},
    {"retry.max_delay", "inf"},     {"retry.max_delay", "nan"},
    {"retry.jitter", "0x0.8"},      {"retry.jitter", " 0.5"},
    {"retry.jitter", "+0.5"},       {"retry.jitter", ".5"},
    {"retry.jitter", "5e-1"},       {"retry.jitter", "0.5 "},
    {"retry.jitter", "1."},         {"retry.jitter", ""},
    {"retry.jitter", "nan"},        {"retry.jitter", "1.0001"},
    {"retry.schedule", ",5s"},      {"retry.schedule", "5s, 5m"},
    {"security.allow_cidrs", "127.0.0.1/32,"},  {"security.allow_cidrs", ",127.0.0.1/32"},
    {"security.allow_cidrs", "127.0.0.1/+8"},   {"security.allow_cidrs", "127.0.0.1/ 8"},
    {"security.allow_cidrs", "127.0.0.1/0x8"},  {"security.allow_cidrs", ","},
    {"security.allow_cidrs", "127.0.0.1/32, 10.0.0.0/8"},
    {"event_types.extra", "a.b,"},  {"event_types.extra", ",a.b"},
    {"event_types.extra", "a.b,,c.d"},          {"event_types.extra", ","},
    {"event_types.extra", "task_run.completed"}, {"event_types.extra", "deploy.done,workflow_run.started"},
    {"event_types.extra", "deploy.done,deploy.done"}, {"event_types.extra", "a.b,c.d,a.b"},
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

/* What the one syntax does accept, and each refusal names the key and says why. */
START_TEST(numbers_durations_and_lists_share_one_syntax)
{
    wh_conf *c = wh_conf_new();
    char err[256];
    static const struct {
        const char *key, *value;
    } good[] = {
        {"http.timeout_ms", "1"},      {"http.timeout_ms", "3600000"},  {"http.timeout_ms", "007"},
        {"log.response_max", "0"},     {"retry.jitter", "0"},           {"retry.jitter", "1"},
        {"retry.jitter", "0.25"},      {"retry.jitter", "1.0"},         {"retry.max_delay", "90"},
        {"retry.max_delay", "1.5h"},   {"retry.max_delay", "250ms"},    {"retry.max_delay", "0"},
        {"retry.schedule", "1s"},      {"retry.schedule", "1s,2.5m,1d"},
        {"security.allow_cidrs", ""},  {"security.allow_cidrs", "127.0.0.1/32,10.0.0.0/8,::1"},
        {"security.allow_cidrs", "10.0.0.0/008"},
        {"event_types.extra", ""},     {"event_types.extra", "deploy.done,task_run.failed"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_msg(wh_conf_set(c, good[i].key, good[i].value, err, sizeof err) == WH_OK, "%s=%s: %s",
                      good[i].key, good[i].value, err);

    ck_assert_int_eq(wh_conf_set(c, "http.timeout_ms", "+5", err, sizeof err), WH_ERR_INVALID);
    ck_assert_str_eq(err, "http.timeout_ms: invalid value \"+5\" (expected an integer from 1 to 3600000)");
    ck_assert_int_eq(wh_conf_set(c, "http.timeout_ms", "0", err, sizeof err), WH_ERR_INVALID);
    ck_assert_str_eq(err, "http.timeout_ms: invalid value \"0\" (expected an integer from 1 to 3600000)");
    ck_assert_int_eq(wh_conf_set(c, "retry.schedule", "5s,,5m", err, sizeof err), WH_ERR_INVALID);
    ck_assert_msg(strstr(err, "retry.schedule: ") == err && strstr(err, "empty item"), "%s", err);
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32,", err, sizeof err), WH_ERR_INVALID);
    ck_assert_msg(strstr(err, "security.allow_cidrs: ") == err && strstr(err, "empty item"), "%s", err);
    ck_assert_int_eq(wh_conf_set(c, "event_types.extra", "deploy.done,", err, sizeof err), WH_ERR_INVALID);
    ck_assert_msg(strstr(err, "event_types.extra: ") == err && strstr(err, "empty item"), "%s", err);
    ck_assert_int_eq(wh_conf_set(c, "event_types.extra", "task_run.started", err, sizeof err), WH_ERR_INVALID);
    ck_assert_str_eq(err, "event_types.extra: \"task_run.started\" is a built-in event type");
    ck_assert_int_eq(wh_conf_set(c, "event_types.extra", "a.b,c.d,a.b", err, sizeof err), WH_ERR_INVALID);
    ck_assert_str_eq(err, "event_types.extra: \"a.b\" is listed twice");
    ck_assert_str_eq(wh_conf_get(c, "event_types.extra"), "deploy.done,task_run.failed");
    /* as many extra types as a context takes, and not one more */
    char many[257 * 12] = "";
    for (int i = 0; i < 257; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%sx.t%d", i ? "," : "", i);
    ck_assert_int_eq(wh_conf_set(c, "event_types.extra", many, err, sizeof err), WH_ERR_INVALID);
    ck_assert_msg(strstr(err, "at most 256"), "%s", err);
    *strrchr(many, ',') = '\0';
    ck_assert_msg(wh_conf_set(c, "event_types.extra", many, err, sizeof err) == WH_OK, "%s", err);
    wh_conf_destroy(c);
}
END_TEST

/* The decimal point is always '.', whatever the host's locale says: a host that calls
 * setlocale() for its own output must not change what the configuration means. A German
 * locale (decimal comma) is compiled into a temporary folder for the test. */
START_TEST(numbers_do_not_depend_on_the_locale)
{
    char dir[64], cmd[256];
    scratch_dir_make(dir, sizeof dir, "wh-locale");
    snprintf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 2>/dev/null", dir);
    ck_assert_msg(system(cmd) == 0, "localedef failed (make deps installs the locales package)");
    setenv("LOCPATH", dir, 1);
    ck_assert_ptr_nonnull(setlocale(LC_NUMERIC, "de_DE.UTF-8"));
    ck_assert_int_eq(localeconv()->decimal_point[0], ',');
    wh_conf *c = wh_conf_new();
    ck_assert_ptr_nonnull(c);
    char err[256];
    ck_assert_msg(wh_conf_set(c, "retry.jitter", "0.5", err, sizeof err) == WH_OK, "%s", err);
    ck_assert_msg(wh_conf_set(c, "retry.max_delay", "1.5h", err, sizeof err) == WH_OK, "%s", err);
    ck_assert_int_eq(wh_conf_set(c, "retry.jitter", "0,5", err, sizeof err), WH_ERR_INVALID);
    wh_conf_destroy(c);
    setlocale(LC_NUMERIC, "C");
    scratch_dir_remove(dir);
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
    tcase_set_timeout(tc, 60); /* compiling a locale with localedef takes seconds on a busy machine */
    tcase_add_test(tc, defaults_are_readable);
    tcase_add_test(tc, unknown_key_is_named);
    tcase_add_loop_test(tc, bad_value_is_refused_and_changes_nothing, 0,
                        sizeof bad_values / sizeof bad_values[0]);
    tcase_add_test(tc, good_values_apply);
    tcase_add_test(tc, numbers_durations_and_lists_share_one_syntax);
    tcase_add_test(tc, numbers_do_not_depend_on_the_locale);
    tcase_add_test(tc, null_conf_means_defaults);
    tcase_add_test(tc, strerror_names_every_code);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
