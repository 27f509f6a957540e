/* Per-endpoint settings (wh_endpoint_set): every key checked with the key named, shown with
 * header values hidden, NULL back to the default, kept across a restart of a sqlite: store,
 * and what they change in delivery, against a real receiver. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "endpoint_settings.h"
#include "support.h"
#include "webhook/webhook.h"

static char dir[64];
static char db_path[128];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/wh-epset-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(db_path, sizeof db_path, "%s/webhooks.db", dir);
}

static void remove_dir(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* store NULL: memory. settings: key, value pairs, NULL-terminated. */
static wh_ctx *open_ctx(const char *store, const char *const *settings)
{
    wh_conf *c = wh_conf_new();
    char err[256];
    if (store)
        ck_assert_msg(wh_conf_set(c, "store", store, err, sizeof err) == WH_OK, "%s", err);
    ck_assert_int_eq(wh_conf_set(c, "retry.jitter", "0", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    for (const char *const *s = settings; s && *s; s += 2)
        ck_assert_msg(wh_conf_set(c, s[0], s[1], err, sizeof err) == WH_OK, "%s", err);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

static void add_endpoint(wh_ctx *ctx, const char *url, char id[WH_ID_MAX])
{
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url}, id), WH_OK);
}

/* The endpoint's settings list joined with ';' ("" when none). */
typedef struct {
    char text[2048];
} joined;

static void join_settings(void *ud, const wh_endpoint_info *ep)
{
    joined *j = ud;
    j->text[0] = '\0';
    ck_assert_ptr_nonnull(ep->settings);
    for (const char *const *s = ep->settings; *s; s++) {
        size_t len = strlen(j->text);
        snprintf(j->text + len, sizeof j->text - len, "%s%s", len ? ";" : "", *s);
    }
}

static const char *settings_of(wh_ctx *ctx, const char *id, joined *j)
{
    ck_assert_int_eq(wh_endpoint_get(ctx, id, join_settings, j), WH_OK);
    return j->text;
}

/* key, value refused, with wh_last_error naming the key (and, when given, saying `why`). */
static void refused(wh_ctx *ctx, const char *id, const char *key, const char *value,
                    const char *why)
{
    int rc = wh_endpoint_set(ctx, id, key, value);
    ck_assert_msg(rc == WH_ERR_INVALID, "%s=%s: %d", key, value ? value : "(null)", rc);
    const char *msg = wh_last_error();
    ck_assert_msg(strncmp(msg, key, strlen(key)) == 0 || strstr(msg, "header.<Name>"),
                  "%s: message does not name the key: %s", key, msg);
    if (why)
        ck_assert_msg(strstr(msg, why), "%s: \"%s\" does not say \"%s\"", key, msg, why);
}

START_TEST(every_key_is_checked_and_named)
{
    wh_ctx *ctx = open_ctx(NULL, NULL);
    char id[WH_ID_MAX];
    add_endpoint(ctx, "http://127.0.0.1:9/a", id);
    static const char *const good[][2] = {
        {"rate_limit", "50"},          {"rate_limit", "50/s"},      {"rate_limit", "600/m"},
        {"rate_limit", "3600/h"},      {"rate_limit", "0"},         {"rate_limit", "0.5/s"},
        {"max_in_flight", "1"},        {"max_in_flight", "100000"}, {"http.timeout_ms", "250"},
        {"retry.schedule", "1s,5m,2h"}, {"ordering", "run"},        {"ordering", "none"},
        {"header.Authorization", "Bearer abc"}, {"header.X-Team", "ops \xc3\xa9quipe"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_msg(wh_endpoint_set(ctx, id, good[i][0], good[i][1]) == WH_OK, "%s=%s: %s",
                      good[i][0], good[i][1], wh_last_error());
    joined before;
    settings_of(ctx, id, &before);
    refused(ctx, id, "rate_limit", "fast", "expected N, N/s, N/m or N/h");
    refused(ctx, id, "rate_limit", "50/d", NULL);
    refused(ctx, id, "rate_limit", "-1", NULL);
    refused(ctx, id, "rate_limit", "", NULL);
    refused(ctx, id, "max_in_flight", "0", "from 1 to 100000");
    refused(ctx, id, "max_in_flight", "many", NULL);
    refused(ctx, id, "http.timeout_ms", "0", "from 1 to 3600000");
    refused(ctx, id, "retry.schedule", "1s,,5m", "empty item");
    refused(ctx, id, "retry.schedule", "soon", "duration");
    refused(ctx, id, "retry.schedule", "", "at least one delay");
    refused(ctx, id, "ordering", "fifo", "\"none\" or \"run\"");
    refused(ctx, id, "colour", "blue", "unknown endpoint setting");
    refused(ctx, id, "colour", NULL, "unknown endpoint setting");
    /* a refused value changed nothing */
    joined after;
    ck_assert_str_eq(settings_of(ctx, id, &after), before.text);
    ck_assert_int_eq(wh_endpoint_set(ctx, id, NULL, "1"), WH_ERR_INVALID);
    ck_assert_int_eq(wh_endpoint_set(NULL, id, "rate_limit", "1"), WH_ERR_INVALID);
    ck_assert_int_eq(wh_endpoint_set(ctx, "ep_nope", "rate_limit", "1"), WH_ERR_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "ep_nope"));
    wh_destroy(ctx);
}
END_TEST

START_TEST(header_names_and_values_are_checked_without_quoting_the_value)
{
    wh_ctx *ctx = open_ctx(NULL, NULL);
    char id[WH_ID_MAX];
    add_endpoint(ctx, "http://127.0.0.1:9/a", id);
    static const char *const reserved[] = {
        "header.webhook-id", "header.Webhook-Signature", "header.WEBHOOK-x", "header.content-type",
        "header.Content-Length", "header.HOST", "header.User-Agent", "header.transfer-encoding",
        "header.Connection", "header.expect"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        refused(ctx, id, reserved[i], "v", "reserved");
    refused(ctx, id, "header.", "v", "names no header");
    refused(ctx, id, "header.X Y", "v", "HTTP token");
    refused(ctx, id, "header.X:Y", "v", "HTTP token");
    refused(ctx, id, "header.X\r\nEvil", "v", NULL);
    /* values: the message names the key and never carries the value */
    static const char *const bad[][2] = {
        {"s3cr3t-one\r\nX-Evil: 1", "CR or LF"},
        {"s3cr3t-two\nX-Evil: 1", "CR or LF"},
        {"s3cr3t-three\r", "CR or LF"},
        {"s3cr3t-four\x01", "control character"},
        {"s3cr3t-five\xff", "UTF-8"},
        {"", "empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        refused(ctx, id, "header.Authorization", bad[i][0], bad[i][1]);
        ck_assert_msg(!strstr(wh_last_error(), "s3cr3t"), "the value leaked: %s", wh_last_error());
    }
    char big[WH__EP_HEADER_VALUE_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    refused(ctx, id, "header.Authorization", big, "longer than 4096");
    joined j;
    ck_assert_str_eq(settings_of(ctx, id, &j), "");
    /* at most 32 headers; a name set again in another case replaces it */
    char key[64];
    for (int i = 0; i < WH__EP_HEADERS_MAX; i++) {
        snprintf(key, sizeof key, "header.X-H%d", i);
        ck_assert_int_eq(wh_endpoint_set(ctx, id, key, "v"), WH_OK);
    }
    ck_assert_int_eq(wh_endpoint_set(ctx, id, "header.x-h0", "w"), WH_OK);
    refused(ctx, id, "header.X-One-More", "v", "32 headers");
    ck_assert_int_eq(wh_endpoint_set(ctx, id, "header.X-H1", NULL), WH_OK);
    ck_assert_int_eq(wh_endpoint_set(ctx, id, "header.X-One-More", "v"), WH_OK);
    ck_assert_ptr_nonnull(strstr(settings_of(ctx, id, &j), "header.x-h0=(hidden)"));
    ck_assert_ptr_null(strstr(j.text, "header.X-H0="));
    ck_assert_ptr_null(strstr(j.text, "header.X-H1="));
    wh_destroy(ctx);
}
END_TEST

START_TEST(settings_are_listed_with_header_values_hidden_and_null_restores_the_default)
{
    wh_ctx *ctx = open_ctx(NULL, NULL);
    char id[WH_ID_MAX], other[WH_ID_MAX];
    add_endpoint(ctx, "http://127.0.0.1:9/a", id);
    add_endpoint(ctx, "http://127.0.0.1:9/b", other);
    joined j;
    ck_assert_str_eq(settings_of(ctx, id, &j), "");
    ck_assert_int_eq(wh_endpoint_set(ctx, id, "rate_limit", "600/m"), WH_OK);
    ck_assert_int_eq(wh_endpoint_set(ctx, id, "header.Authorization", "Bearer tok-1"), WH_OK);
    ck_assert_int_eq(wh_endpoint_set(ctx, id, "http.timeout_ms", "2000"), WH_OK);
    ck_assert_int_eq(wh_endpoint_set(ctx, id, "rate_limit", "50/s"), WH_OK);
    ck_assert_str_eq(settings_of(ctx, id, &j),
                     "header.Authorization=(hidden);http.timeout_ms=2000;rate_limit=50/s");
    ck_assert_str_eq(settings_of(ctx, other, &j), "");
    ck_assert_int_eq(wh_endpoint_set(ctx, id, "http.timeout_ms", NULL), WH_OK);
    ck_assert_int_eq(wh_endpoint_set(ctx, id, "header.authorization", NULL), WH_OK);
    ck_assert_str_eq(settings_of(ctx, id, &j), "rate_limit=50/s");
    /* removing what is not set is not an error */
    ck_assert_int_eq(wh_endpoint_set(ctx, id, "ordering", NULL), WH_OK);
    ck_assert_int_eq(wh_endpoint_set(ctx, id, "rate_limit", NULL), WH_OK);
    ck_assert_str_eq(settings_of(ctx, id, &j), "");
    wh_destroy(ctx);
}
END_TEST

/* The parsed forms the scheduler reads. */
START_TEST(stored_text_parses_into_the_endpoint_fields)
{
    char *text = NULL, *next = NULL;
    ck_assert_int_eq(wh__ep_settings_update(NULL, "rate_limit", "600/m", &text, NULL, 0), WH_OK);
    ck_assert_int_eq(wh__ep_settings_update(text, "ordering", "run", &next, NULL, 0), WH_OK);
    free(text), text = next;
    ck_assert_int_eq(wh__ep_settings_update(text, "retry.schedule", "1s,2m", &next, NULL, 0), WH_OK);
    free(text), text = next;
    ck_assert_int_eq(wh__ep_settings_update(text, "header.X-A", "1", &next, NULL, 0), WH_OK);
    free(text), text = next;
    ck_assert_int_eq(wh__ep_settings_update(text, "max_in_flight", "3", &next, NULL, 0), WH_OK);
    free(text), text = next;
    ck_assert_int_eq(wh__ep_settings_update(text, "http.timeout_ms", "1500", &next, NULL, 0), WH_OK);
    free(text), text = next;
    wh__ep_settings s;
    ck_assert_int_eq(wh__ep_settings_parse(text, &s), WH_OK);
    ck_assert(s.rate_limit_per_s > 9.999 && s.rate_limit_per_s < 10.001);
    ck_assert(s.ordering_run);
    ck_assert_int_eq(s.max_in_flight, 3);
    ck_assert_int_eq(s.timeout_ms, 1500);
    ck_assert_uint_eq(s.retry_schedule_len, 2);
    ck_assert_int_eq(s.retry_schedule_ms[0], 1000);
    ck_assert_int_eq(s.retry_schedule_ms[1], 120000);
    ck_assert_ptr_nonnull(s.headers);
    ck_assert_uint_eq(s.headers->n, 1);
    ck_assert_str_eq(s.headers->lines[0], "X-A: 1");
    wh__ep_settings_clear(&s);
    /* a key of a newer library, or a value this one refuses, is left out */
    ck_assert_int_eq(wh__ep_settings_parse("{\"rate_limit\":\"3600/h\",\"colour\":\"blue\","
                                           "\"max_in_flight\":\"0\",\"header.Host\":\"x\"}", &s),
                     WH_OK);
    ck_assert(s.rate_limit_per_s > 0.999 && s.rate_limit_per_s < 1.001);
    ck_assert_int_eq(s.max_in_flight, 0);
    ck_assert_ptr_null(s.headers);
    wh__ep_settings_clear(&s);
    /* none at all */
    ck_assert_int_eq(wh__ep_settings_update(NULL, "rate_limit", NULL, &next, NULL, 0), WH_OK);
    ck_assert_str_eq(next, "");
    free(next);
    free(text);
}
END_TEST

START_TEST(settings_survive_a_restart_of_a_sqlite_store)
{
    make_dir();
    char store[160];
    snprintf(store, sizeof store, "sqlite:%s", db_path);
    wh_ctx *ctx = open_ctx(store, NULL);
    char id[WH_ID_MAX];
    add_endpoint(ctx, "http://127.0.0.1:9/a", id);
    ck_assert_int_eq(wh_endpoint_set(ctx, id, "retry.schedule", "1s,1m"), WH_OK);
    ck_assert_int_eq(wh_endpoint_set(ctx, id, "header.X-Team", "ops"), WH_OK);
    ck_assert_int_eq(wh_endpoint_set(ctx, id, "ordering", "run"), WH_OK);
    ck_assert_int_eq(wh_endpoint_set(ctx, id, "ordering", NULL), WH_OK);
    wh_destroy(ctx);
    ctx = open_ctx(store, NULL);
    joined j;
    ck_assert_str_eq(settings_of(ctx, id, &j), "retry.schedule=1s,1m;header.X-Team=(hidden)");
    wh_destroy(ctx);
    remove_dir();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("endpoint_settings");
    TCase *tc = tcase_create("endpoint_settings");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, every_key_is_checked_and_named);
    tcase_add_test(tc, header_names_and_values_are_checked_without_quoting_the_value);
    tcase_add_test(tc, settings_are_listed_with_header_values_hidden_and_null_restores_the_default);
    tcase_add_test(tc, stored_text_parses_into_the_endpoint_fields);
    tcase_add_test(tc, settings_survive_a_restart_of_a_sqlite_store);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
