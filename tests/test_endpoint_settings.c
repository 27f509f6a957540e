/* Per-endpoint settings (wh_endpoint_set): every key checked with the key named, shown with
 * header values hidden, NULL back to the default, kept across a restart of a sqlite: store,
 * and what they change in delivery, against a real receiver. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "endpoint_settings.h"
#include "mock.h"
#include "scratch.h"
#include "support.h"
#include "webhook/webhook.h"

static char dir[64];
static char db_path[128];

static void make_dir(void)
{
    scratch_dir_make(dir, sizeof dir, "wh-epset");
    snprintf(db_path, sizeof db_path, "%s/webhooks.db", dir);
}

static void remove_dir(void) { scratch_dir_remove(dir); }

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
    /* what depends on the stored settings is checked in the store's write */
    char key[64];
    for (int i = 1; i < WH__EP_HEADERS_MAX; i++) {
        snprintf(key, sizeof key, "header.X-H%d", i);
        ck_assert_int_eq(wh_endpoint_set(ctx, id, key, "v"), WH_OK);
    }
    refused(ctx, id, "header.X-One-More", "v", "32 headers");
    for (int i = 1; i < WH__EP_HEADERS_MAX; i++) {
        snprintf(key, sizeof key, "header.X-H%d", i);
        ck_assert_int_eq(wh_endpoint_set(ctx, id, key, NULL), WH_OK);
    }
    wh_destroy(ctx);
    ctx = open_ctx(store, NULL);
    joined j;
    ck_assert_str_eq(settings_of(ctx, id, &j), "retry.schedule=1s,1m;header.X-Team=(hidden)");
    wh_destroy(ctx);
    remove_dir();
}
END_TEST

static int emit(wh_ctx *ctx)
{
    return wh_emit(ctx, &(wh_event){.event_type = "task_run.completed", .run_id = "run_1",
                                    .task_id = "t", .status = "completed"}, NULL);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Everything a sink was told, as text. */
typedef struct {
    char *text;
    size_t len;
} sink_text;

static void append_text(sink_text *t, const char *s, size_t n)
{
    char *v = realloc(t->text, t->len + n + 2);
    ck_assert_ptr_nonnull(v);
    t->text = v;
    memcpy(t->text + t->len, s, n);
    t->len += n;
    t->text[t->len++] = '\n';
    t->text[t->len] = '\0';
}

static void sink_write(void *ud, const wh_attempt *a)
{
    const char *parts[] = {a->event_id, a->event_type, a->endpoint_id, a->url, a->error};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (parts[i])
            append_text(ud, parts[i], strlen(parts[i]));
    if (a->response_body)
        append_text(ud, a->response_body, a->response_len);
}

/* Attempts to one endpoint, newest first. */
typedef struct {
    int n;
    wh_attempt a[16];
    char error[16][256];
} attempts;

static void keep_attempt(void *ud, const wh_attempt *a)
{
    attempts *k = ud;
    if (k->n < 16) {
        k->a[k->n] = *a;
        snprintf(k->error[k->n], sizeof k->error[k->n], "%s", a->error ? a->error : "");
        k->a[k->n].error = k->error[k->n];
        k->a[k->n].event_id = k->a[k->n].event_type = k->a[k->n].endpoint_id = k->a[k->n].url = NULL;
        k->a[k->n].response_body = NULL;
        k->n++;
    }
}

static attempts attempts_of(wh_ctx *ctx, const char *id)
{
    attempts k = {0};
    ck_assert_int_ge(wh_log_query(ctx, &(wh_log_filter){.endpoint_id = id}, keep_attempt, &k), 0);
    return k;
}

/* Drives until `id` has logged n attempts (bounded: 10 s). */
static attempts drive_until_attempts(wh_ctx *ctx, const char *id, int n)
{
    int64_t end = mono_ms() + 10000;
    attempts k;
    while ((k = attempts_of(ctx, id)).n < n && mono_ms() < end)
        wh_poll(ctx, 20);
    ck_assert_msg(k.n >= n, "%s: %d attempts logged, %d expected", id, k.n, n);
    return k;
}

/* The request headers the receiver saw on the i-th request to path. */
static void headers_of(rcv *r, const char *path, size_t nth, char out[4096])
{
    size_t seen = 0;
    rcv_request q;
    for (size_t i = 0; rcv_get(r, i, &q) == 0; i++) {
        bool match = strcmp(q.path, path) == 0;
        if (match && seen++ == nth) {
            snprintf(out, 4096, "%s", q.headers);
            rcv_request_free(&q);
            return;
        }
        rcv_request_free(&q);
    }
    ck_abort_msg("no request %zu to %s", nth, path);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

START_TEST(headers_arrive_as_set_and_their_values_are_in_no_log)
{
    make_dir();
    rcv *r = rcv_start();
    char log_path[160], url[128];
    snprintf(log_path, sizeof log_path, "%s/attempts.jsonl", dir);
    wh_conf *c = wh_conf_new();
    char err[256];
    ck_assert_int_eq(wh_conf_set(c, "retry.jitter", "0", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "retry.schedule", "50ms", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "log.file", log_path, err, sizeof err), WH_OK);
    sink_text sunk = {0};
    ck_assert_int_eq(wh_conf_add_log_sink(c, &(wh_log_sink){.write = sink_write, .ud = &sunk}), WH_OK);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    char a[WH_ID_MAX], b[WH_ID_MAX];
    add_endpoint(ctx, rcv_url(r, "/a", url, sizeof url), a);
    add_endpoint(ctx, rcv_url(r, "/b", url, sizeof url), b);
    /* the first attempt fails, so that a retry and its error are logged too */
    rcv_script(r, "/a", (rcv_rule[]){{.status = 500}}, 1, (rcv_rule){.status = 204});
    ck_assert_int_eq(wh_endpoint_set(ctx, a, "header.Authorization", "Bearer s3cr3t-tok"), WH_OK);
    ck_assert_int_eq(wh_endpoint_set(ctx, a, "header.X-Team", "s3cr3t-team \xc3\xa9"), WH_OK);
    ck_assert_int_eq(emit(ctx), 2);
    drive_until_attempts(ctx, a, 2);
    ck_assert(rcv_wait(r, "/b", 1, 5000));
    char h[4096];
    for (size_t i = 0; i < 2; i++) {
        headers_of(r, "/a", i, h);
        ck_assert_msg(strstr(h, "Authorization: Bearer s3cr3t-tok\n"), "%s", h);
        ck_assert_msg(strstr(h, "X-Team: s3cr3t-team \xc3\xa9\n"), "%s", h);
        /* the library's own are still there, once */
        ck_assert_msg(strstr(h, "Content-Type: application/json\n"), "%s", h);
        ck_assert_msg(strstr(h, "webhook-signature: v1,"), "%s", h);
    }
    headers_of(r, "/b", 0, h);
    ck_assert_msg(!strstr(h, "Authorization") && !strstr(h, "X-Team"), "%s", h);

    /* changed and removed: the next request carries what is set now */
    ck_assert_int_eq(wh_endpoint_set(ctx, a, "header.authorization", "Bearer s3cr3t-two"), WH_OK);
    ck_assert_int_eq(wh_endpoint_set(ctx, a, "header.X-Team", NULL), WH_OK);
    ck_assert_int_eq(emit(ctx), 2);
    drive_until_attempts(ctx, a, 3);
    headers_of(r, "/a", 2, h);
    ck_assert_msg(strstr(h, "authorization: Bearer s3cr3t-two\n") ||
                  strstr(h, "Authorization: Bearer s3cr3t-two\n"), "%s", h);
    ck_assert_msg(!strstr(h, "s3cr3t-tok") && !strstr(h, "X-Team"), "%s", h);

    /* nowhere else: not the log file, a sink, the log, the endpoint as read, an error */
    joined j;
    ck_assert_ptr_null(strstr(settings_of(ctx, a, &j), "s3cr3t"));
    ck_assert_int_eq(wh_endpoint_set(ctx, a, "header.Host", "s3cr3t-host"), WH_ERR_INVALID);
    ck_assert_ptr_null(strstr(wh_last_error(), "s3cr3t"));
    wh_destroy(ctx);
    ck_assert_ptr_nonnull(sunk.text);
    ck_assert_ptr_nonnull(strstr(sunk.text, "HTTP 500")); /* the sink did see the attempts */
    ck_assert_msg(!strstr(sunk.text, "s3cr3t"), "a sink saw a header value: %s", sunk.text);
    const char *logged = read_file(log_path);
    ck_assert_ptr_nonnull(strstr(logged, "HTTP 500"));
    ck_assert_msg(!strstr(logged, "s3cr3t"), "log.file has a header value: %s", logged);
    free(sunk.text);
    rcv_stop(r);
    remove_dir();
}
END_TEST

START_TEST(a_slow_receiver_times_out_on_the_endpoint_with_a_short_timeout_only)
{
    rcv *r = rcv_start();
    static const char *const conf[] = {"retry.schedule", "1h", NULL};
    wh_ctx *ctx = open_ctx(NULL, conf);
    char url[128], quick[WH_ID_MAX], patient[WH_ID_MAX];
    add_endpoint(ctx, rcv_url(r, "/quick", url, sizeof url), quick);
    add_endpoint(ctx, rcv_url(r, "/patient", url, sizeof url), patient);
    rcv_script(r, "/quick", NULL, 0, (rcv_rule){.status = 204, .delay_ms = 1500});
    rcv_script(r, "/patient", NULL, 0, (rcv_rule){.status = 204, .delay_ms = 1500});
    ck_assert_int_eq(wh_endpoint_set(ctx, quick, "http.timeout_ms", "200"), WH_OK);
    ck_assert_int_eq(emit(ctx), 2);
    attempts q = drive_until_attempts(ctx, quick, 1);
    attempts p = drive_until_attempts(ctx, patient, 1);
    ck_assert_int_eq(q.a[0].outcome, WH_OUTCOME_RETRYING);
    ck_assert_msg(strstr(q.error[0], "timed out"), "%s", q.error[0]);
    ck_assert_int_eq(p.a[0].outcome, WH_OUTCOME_DELIVERED);
    /* NULL: the conf's timeout again */
    ck_assert_int_eq(wh_endpoint_set(ctx, quick, "http.timeout_ms", NULL), WH_OK);
    ck_assert_int_eq(emit(ctx), 2);
    q = drive_until_attempts(ctx, quick, 2);
    ck_assert_int_eq(q.a[0].outcome, WH_OUTCOME_DELIVERED);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

START_TEST(the_endpoint_retry_schedule_replaces_the_conf_one)
{
    rcv *r = rcv_start();
    static const char *const conf[] = {"retry.schedule", "1h", NULL};
    wh_ctx *ctx = open_ctx(NULL, conf);
    char url[128], own[WH_ID_MAX], dflt[WH_ID_MAX];
    add_endpoint(ctx, rcv_url(r, "/own", url, sizeof url), own);
    add_endpoint(ctx, rcv_url(r, "/default", url, sizeof url), dflt);
    rcv_script(r, "/own", NULL, 0, (rcv_rule){.status = 500});
    rcv_script(r, "/default", NULL, 0, (rcv_rule){.status = 500});
    ck_assert_int_eq(wh_endpoint_set(ctx, own, "retry.schedule", "20ms,30ms"), WH_OK);
    ck_assert_int_eq(emit(ctx), 2);
    /* two retries then given up, at the endpoint's pace; the other waits its hour */
    attempts o = drive_until_attempts(ctx, own, 3);
    ck_assert_int_eq(o.a[0].outcome, WH_OUTCOME_FAILED);
    ck_assert_msg(strstr(o.error[0], "gave up after 3 attempts"), "%s", o.error[0]);
    /* next_attempt_ms counts from the answer: the delay plus how long the attempt took */
    ck_assert_int_ge(o.a[2].next_attempt_ms - o.a[2].started_ms, 20);
    ck_assert_int_lt(o.a[2].next_attempt_ms - o.a[2].started_ms, 60000);
    ck_assert_int_ge(o.a[1].next_attempt_ms - o.a[1].started_ms, 30);
    ck_assert_int_lt(o.a[1].next_attempt_ms - o.a[1].started_ms, 60000);
    attempts d = attempts_of(ctx, dflt);
    ck_assert_int_eq(d.n, 1);
    ck_assert_int_eq(d.a[0].outcome, WH_OUTCOME_RETRYING);
    ck_assert_int_ge(d.a[0].next_attempt_ms - d.a[0].started_ms, 3600000);
    /* NULL: the conf's schedule again */
    ck_assert_int_eq(wh_endpoint_set(ctx, own, "retry.schedule", NULL), WH_OK);
    ck_assert_int_eq(emit(ctx), 2);
    o = drive_until_attempts(ctx, own, 4);
    ck_assert_int_eq(o.a[0].outcome, WH_OUTCOME_RETRYING);
    ck_assert_int_ge(o.a[0].next_attempt_ms - o.a[0].started_ms, 3600000);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

static size_t in_flight_to(const mock *m, const char *url)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++)
        n += !m->reqs[i].answered && strcmp(m->reqs[i].url, url) == 0;
    return n;
}

START_TEST(max_in_flight_of_the_endpoint_holds_and_a_raise_lets_waiting_work_go)
{
    mock *m = calloc(1, sizeof *m);
    wh_conf *c = wh_conf_new();
    char err[256];
    wh_transport t = mock_transport(m);
    ck_assert_int_eq(wh_conf_set_transport(c, &t), WH_OK);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    char one[WH_ID_MAX], many[WH_ID_MAX];
    add_endpoint(ctx, "https://one.example/h", one);
    add_endpoint(ctx, "https://many.example/h", many);
    ck_assert_int_eq(wh_endpoint_set(ctx, one, "max_in_flight", "1"), WH_OK);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(emit(ctx), 2);
    for (int i = 0; i < 5; i++)
        wh_poll(ctx, 0);
    ck_assert_uint_eq(in_flight_to(m, "https://one.example/h"), 1);
    ck_assert_uint_eq(in_flight_to(m, "https://many.example/h"), 5);
    /* the waiting ones go under the new limit, without waiting for the one in flight */
    ck_assert_int_eq(wh_endpoint_set(ctx, one, "max_in_flight", "3"), WH_OK);
    for (int i = 0; i < 5; i++)
        wh_poll(ctx, 0);
    ck_assert_uint_eq(in_flight_to(m, "https://one.example/h"), 3);
    /* back to the conf's 16 */
    ck_assert_int_eq(wh_endpoint_set(ctx, one, "max_in_flight", NULL), WH_OK);
    for (int i = 0; i < 5; i++)
        wh_poll(ctx, 0);
    ck_assert_uint_eq(in_flight_to(m, "https://one.example/h"), 5);
    wh_destroy(ctx);
    mock_free(m);
    free(m);
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
    tcase_add_test(tc, headers_arrive_as_set_and_their_values_are_in_no_log);
    tcase_add_test(tc, a_slow_receiver_times_out_on_the_endpoint_with_a_short_timeout_only);
    tcase_add_test(tc, the_endpoint_retry_schedule_replaces_the_conf_one);
    tcase_add_test(tc, max_in_flight_of_the_endpoint_holds_and_a_raise_lets_waiting_work_go);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
