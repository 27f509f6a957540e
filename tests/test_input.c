/* What callers hand the library: ids, status, event types, URLs and descriptions can never
 * put a header or a line break into a request; bad URLs are refused with a message naming
 * `url`; secrets never reach the log file, wh_attempt.error or the log query. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "scratch.h"
#include "support.h"
#include "webhook/webhook.h"

static const char *secret_a = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
static const char *secret_b = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/* ---- a transport that keeps every request as sent ------------------------------ */

typedef struct {
    char *headers[64][8];
    char *bodies[64];
    void *tokens[64];
    size_t n, answered;
} capture;

static int cap_submit(void *ud, const wh_request *req, void *token)
{
    capture *c = ud;
    if (c->n == 64)
        return WH_ERR_FULL;
    size_t k = 0;
    for (const char *const *h = req->headers; *h && k < 7; h++)
        c->headers[c->n][k++] = strdup(*h);
    c->bodies[c->n] = strndup(req->body, req->body_len);
    c->tokens[c->n++] = token;
    return WH_OK;
}

static int cap_perform(void *ud, wh_transport_done_fn done, void *done_ud)
{
    capture *c = ud;
    int k = 0;
    for (; c->answered < c->n; c->answered++, k++)
        done(done_ud, c->tokens[c->answered], &(wh_response){.http_status = 204});
    return k;
}

static void cap_destroy(void *ud)
{
    capture *c = ud;
    for (size_t i = 0; i < c->n; i++) {
        for (size_t k = 0; c->headers[i][k]; k++)
            free(c->headers[i][k]);
        free(c->bodies[i]);
    }
}

static wh_ctx *capture_ctx(capture *c)
{
    memset(c, 0, sizeof *c);
    wh_conf *conf = wh_conf_new();
    wh_conf_set_transport(conf, &(wh_transport){.ud = c, .submit = cap_submit, .perform = cap_perform,
                                                .destroy = cap_destroy});
    char err[256];
    wh_ctx *ctx = wh_new(conf, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "https://hooks.example.com/in",
                                                              .secret = secret_a}, NULL), WH_OK);
    return ctx;
}

/* ---- event fields ------------------------------------------------------------- */

static const char *const hostile_text[] = {
    "run\r\nX-Evil: 1", "run\nX-Evil: 1", "run\rX-Evil: 1", "\r\n", "tab\there", "bell\a",
    "esc\x1b[31m", "del\x7f", "nel\xc2\x85line", "bad utf-8 \xff", "overlong \xc0\xaf",
};

START_TEST(event_fields_with_control_characters_are_refused)
{
    capture c;
    wh_ctx *ctx = capture_ctx(&c);
    const char *v = hostile_text[_i];
    const char *fields[] = {"run_id", "task_id", "status"};
    for (int f = 0; f < 3; f++) {
        wh_event ev = {.event_type = "task_run.completed", .run_id = "run_1", .task_id = "task_1",
                       .status = "completed"};
        if (f == 0)
            ev.run_id = v;
        else if (f == 1)
            ev.task_id = v;
        else
            ev.status = v;
        ck_assert_int_eq(wh_emit(ctx, &ev, NULL), WH_ERR_INVALID);
        ck_assert_msg(strncmp(wh_last_error(), fields[f], strlen(fields[f])) == 0, "%s", wh_last_error());
    }
    /* as an event type, too (never a known type, and never one by syntax) */
    char type[64];
    snprintf(type, sizeof type, "task_run.completed%s", v);
    ck_assert_int_eq(wh_emit(ctx, &(wh_event){.event_type = type, .run_id = "r", .task_id = "t",
                                              .status = "s"}, NULL), WH_ERR_INVALID);
    ck_assert_int_eq(strncmp(wh_last_error(), "event_type:", 11), 0);
    ck_assert_int_eq(wh_flush(ctx, 1000), WH_OK);
    ck_assert_uint_eq(c.n, 0); /* nothing was sent */
    wh_stats_info st;
    wh_stats(ctx, &st);
    ck_assert_uint_eq(st.emitted, 0);
    wh_destroy(ctx);
}
END_TEST

static void assert_header_lines_clean(const capture *c)
{
    for (size_t i = 0; i < c->n; i++)
        for (size_t k = 0; c->headers[i][k]; k++)
            for (const unsigned char *p = (const unsigned char *)c->headers[i][k]; *p; p++)
                ck_assert_msg(*p >= 0x20 && *p < 0x7f, "header \"%s\" has byte 0x%02x", c->headers[i][k], *p);
}

START_TEST(accepted_text_stays_in_the_json_body)
{
    capture c;
    wh_ctx *ctx = capture_ctx(&c);
    /* quotes, backslashes and non-ASCII are fine: they are JSON-escaped in the body only.
     * A NUL ends a C string: what follows it is never seen. */
    const char run[] = "run \"42\" \\ r\xc3\xbcn \xe2\x9c\x93\0\r\nX-Evil: 1";
    ck_assert_int_eq(wh_emit(ctx, &(wh_event){.event_type = "task_run.completed", .run_id = run,
                                              .task_id = "task:7; x=y", .status = "ok <b>"}, NULL), 1);
    ck_assert_int_eq(wh_flush(ctx, 1000), WH_OK);
    ck_assert_uint_eq(c.n, 1);
    assert_header_lines_clean(&c);
    int n = 0;
    for (size_t k = 0; c.headers[0][k]; k++) {
        n++;
        ck_assert_ptr_null(strstr(c.headers[0][k], "run"));
        ck_assert_ptr_null(strstr(c.headers[0][k], "task:7"));
        ck_assert_ptr_null(strcasestr(c.headers[0][k], "X-Evil"));
    }
    ck_assert_int_eq(n, 6); /* Content-Type, User-Agent, webhook-id/-timestamp/-signature, Expect */
    cJSON *o = cJSON_Parse(c.bodies[0]);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "run_id")->valuestring, run);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "status")->valuestring, "ok <b>");
    cJSON_Delete(o);
    ck_assert_ptr_null(strstr(c.bodies[0], "X-Evil"));
    for (const char *p = c.bodies[0]; *p; p++)
        ck_assert_msg((unsigned char)*p >= 0x20, "raw control character in the body");
    wh_destroy(ctx);
}
END_TEST

/* ---- URLs -------------------------------------------------------------------- */

static const struct {
    const char *url, *why;
} bad_urls[] = {
    {"http://hooks.example.com/\r\nX-Evil: 1", "control character"},
    {"http://hooks.example.com/a\nb", "control character"},
    {"http://hooks.exa\rmple.com/", "control character"},
    {"http://hooks.example.com/a b", "space"},
    {"http://hooks.example.com/\t", "control character"},
    {"http://hooks.example.com/\x7f", "control character"},
    {"http://user:password@hooks.example.com/", "user:password"},
    {"https://user@hooks.example.com/", "user:password"},
    {"https://:secret@hooks.example.com/", "user:password"},
    {"http://hooks.example.com/in#fragment", "fragment"},
    {"https://hooks.example.com/#", "fragment"},
    {"ftp://hooks.example.com/", "http:// or https://"},
    {"file:///etc/passwd", "http:// or https://"},
    {"gopher://hooks.example.com:70/", "http:// or https://"},
    {"dict://127.0.0.1:11211/stat", "http:// or https://"},
    {"javascript:alert(1)", "http:// or https://"},
    {"//hooks.example.com/in", "http:// or https://"},
    {"hooks.example.com/in", "http:// or https://"},
    {"", "empty"},
    {"http://", "URL"},
    {"http://127.0.0.1:9/caf\xe9\xff", "UTF-8"},
    {"http://127.0.0.1:9/\xc0\xaf", "UTF-8"},
    {"http://127.0.0.1:9/a\xc2\x85", "control character"},
};

START_TEST(bad_urls_are_refused_naming_url)
{
    capture c;
    wh_ctx *ctx = capture_ctx(&c);
    const char *url = bad_urls[_i].url;
    char id[WH_ID_MAX] = "";
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url}, id), WH_ERR_INVALID);
    const char *e = wh_last_error();
    ck_assert_msg(strncmp(e, "url: ", 5) == 0 && strstr(e, bad_urls[_i].why), "%s -> %s", url, e);
    ck_assert_str_eq(id, "");
    /* the message is for a person and for the host's logs: it quotes the URL, but never a
     * raw control character from it */
    for (const char *p = e; *p; p++)
        ck_assert_msg((unsigned char)*p >= 0x20 && *p != 0x7f, "%s", e);
    ck_assert_msg(strstr(e, "\xe9\xff") == NULL && strstr(e, "\xc0\xaf") == NULL, "%s", e);
    wh_stats_info st;
    wh_stats(ctx, &st);
    ck_assert_uint_eq(st.endpoints, 1);
    wh_destroy(ctx);
}
END_TEST

START_TEST(a_url_in_utf8_is_accepted)
{
    capture c;
    wh_ctx *ctx = capture_ctx(&c);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "http://127.0.0.1:9/caf\xc3\xa9"}, NULL), WH_OK);
    wh_destroy(ctx);
}
END_TEST

START_TEST(descriptions_subscriptions_and_ids_with_control_characters_are_refused)
{
    capture c;
    wh_ctx *ctx = capture_ctx(&c);
    char ep[WH_ID_MAX];
    for (size_t i = 0; i < sizeof hostile_text / sizeof hostile_text[0]; i++) {
        ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "https://a.example/",
                                                                  .description = hostile_text[i]}, ep),
                         WH_ERR_INVALID);
        ck_assert_int_eq(strncmp(wh_last_error(), "description: ", 13), 0);
        char sub[64];
        snprintf(sub, sizeof sub, "task_run.completed%s", hostile_text[i]);
        const char *types[] = {sub, NULL};
        ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "https://a.example/",
                                                                  .event_types = types}, ep),
                         WH_ERR_INVALID);
        ck_assert_int_eq(strncmp(wh_last_error(), "event_types: ", 13), 0);
        /* ids that were never handed out are simply unknown */
        ck_assert_int_eq(wh_endpoint_set_enabled(ctx, hostile_text[i], 0), WH_ERR_NOTFOUND);
        ck_assert_int_eq(wh_endpoint_remove(ctx, hostile_text[i]), WH_ERR_NOTFOUND);
        ck_assert_int_lt(wh_redeliver(ctx, hostile_text[i], NULL), 0);
    }
    /* extra event types are checked by syntax when set */
    wh_conf *conf = wh_conf_new();
    char err[256];
    ck_assert_int_eq(wh_conf_set(conf, "event_types.extra", "deploy.done\r\nX-Evil: 1", err, sizeof err), WH_ERR_INVALID);
    ck_assert_int_eq(wh_conf_set(conf, "event_types.extra", "deploy.done,Deploy.Done", err, sizeof err), WH_ERR_INVALID);
    ck_assert_int_eq(wh_conf_set(conf, "event_types.extra", "deploy.done,deploy.failed", err, sizeof err), WH_OK);
    wh_conf_destroy(conf);
    wh_stats_info st;
    wh_stats(ctx, &st);
    ck_assert_uint_eq(st.endpoints, 1);
    /* a description that is merely unusual text is kept as given */
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "https://a.example/",
                                                              .description = "Ops \"alerts\" \xe2\x9c\x93"}, ep),
                     WH_OK);
    wh_destroy(ctx);
}
END_TEST

/* A one-shot raw HTTP peer that keeps the request bytes exactly as they arrived. */
typedef struct {
    int lfd, port;
    pthread_t th;
    char raw[8192];
    size_t len;
} raw_peer;

static void *raw_peer_main(void *arg)
{
    raw_peer *p = arg;
    struct pollfd pf = {.fd = p->lfd, .events = POLLIN};
    if (poll(&pf, 1, 10000) <= 0)
        return NULL;
    int fd = accept(p->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    for (;;) {
        struct pollfd q = {.fd = fd, .events = POLLIN};
        if (poll(&q, 1, 10000) <= 0)
            break;
        ssize_t r = read(fd, p->raw + p->len, sizeof p->raw - 1 - p->len);
        if (r <= 0)
            break;
        p->len += (size_t)r;
        p->raw[p->len] = '\0';
        char *end = strstr(p->raw, "\r\n\r\n");
        const char *cl = strcasestr(p->raw, "\r\ncontent-length:");
        if (end && cl && p->len >= (size_t)(end + 4 - p->raw) + (size_t)atol(cl + 17))
            break;
    }
    static const char ok[] = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
    ssize_t w = write(fd, ok, sizeof ok - 1);
    (void)w;
    close(fd);
    return NULL;
}

START_TEST(percent_encoded_line_breaks_stay_encoded_on_the_wire)
{
    raw_peer p = {0};
    p.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(p.lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(p.lfd, 4), 0);
    socklen_t sl = sizeof sa;
    getsockname(p.lfd, (struct sockaddr *)&sa, &sl);
    p.port = ntohs(sa.sin_port);
    pthread_create(&p.th, NULL, raw_peer_main, &p);

    wh_conf *conf = wh_conf_new();
    char err[256], url[160];
    ck_assert_int_eq(wh_conf_set(conf, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    wh_ctx *ctx = wh_new(conf, err, sizeof err);
    ck_assert_ptr_nonnull(ctx);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/in%%0D%%0AX-Evil:%%201?q=%%0d%%0aX-Evil2:%%202", p.port);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url}, NULL), WH_OK);
    ck_assert_int_eq(wh_emit(ctx, &(wh_event){.event_type = "workflow_run.started", .run_id = "r",
                                              .status = "started"}, NULL), 1);
    ck_assert_int_eq(wh_flush(ctx, 10000), WH_OK);
    pthread_join(p.th, NULL);
    close(p.lfd);
    wh_stats_info st;
    wh_stats(ctx, &st);
    ck_assert_uint_eq(st.delivered, 1);
    wh_destroy(ctx);
    /* the request line carries the escapes as text; no line of the request is X-Evil */
    ck_assert_msg(strncmp(p.raw, "POST /in%0D%0AX-Evil:%201?q=%0d%0aX-Evil2:%202 HTTP/1.1\r\n", 57) == 0, "%s", p.raw);
    ck_assert_ptr_null(strcasestr(p.raw, "\nX-Evil"));
    ck_assert_ptr_null(strstr(p.raw, "\r\r"));
}
END_TEST

/* ---- secrets ------------------------------------------------------------------- */

typedef struct {
    char text[64 * 1024];
    size_t len;
    int rows;
} seen;

static void append(seen *s, const char *v)
{
    if (!v)
        return;
    size_t n = strlen(v);
    if (s->len + n + 2 < sizeof s->text) {
        memcpy(s->text + s->len, v, n);
        s->len += n;
        s->text[s->len++] = '\n';
        s->text[s->len] = '\0';
    }
}

static void see_attempt(void *ud, const wh_attempt *a)
{
    seen *s = ud;
    s->rows++;
    append(s, a->event_id);
    append(s, a->event_type);
    append(s, a->endpoint_id);
    append(s, a->url);
    append(s, a->error);
    if (a->response_body)
        append(s, a->response_body);
}

/* True if any spelling of the secret (whole, or its key text) appears in text. */
static bool leaks(const char *text, const char *secret)
{
    return strstr(text, secret) || strstr(text, secret + 6);
}

/* Drives until no delivery is left (the 1 ms retries included). */
static void settle(wh_ctx *ctx)
{
    wh_stats_info st;
    for (int i = 0; i < 500; i++) {
        ck_assert_int_eq(wh_flush(ctx, 10000), WH_OK);
        wh_stats(ctx, &st);
        if (st.pending == 0)
            return;
        usleep(10000);
    }
    ck_abort_msg("deliveries still pending");
}

static void secrets_stay_out_of_logs(bool sqlite)
{
    char dir[64];
    scratch_dir_make(dir, sizeof dir, "wh-input");
    char log_path[128], store[160];
    snprintf(log_path, sizeof log_path, "%s/attempts.jsonl", dir);
    snprintf(store, sizeof store, "sqlite:%s/webhooks.db", dir);
    rcv *r = rcv_start();
    rcv_script(r, "/flaky", (rcv_rule[]){{.status = 500}}, 1, (rcv_rule){.status = 204});
    seen sink = {.len = 0};
    wh_conf *c = wh_conf_new();
    char err[256];
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "retry.schedule", "1ms", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "log.file", log_path, err, sizeof err), WH_OK);
    if (sqlite)
        ck_assert_int_eq(wh_conf_set(c, "store", store, err, sizeof err), WH_OK);
    wh_conf_add_log_sink(c, &(wh_log_sink){.write = see_attempt, .ud = &sink});
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);

    char url[128], ep_flaky[WH_ID_MAX], ep_down[WH_ID_MAX], ep_blocked[WH_ID_MAX];
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, "/flaky", url, sizeof url),
                                                              .secret = secret_a}, ep_flaky), WH_OK);
    rcv_set_secret(r, "/flaky", secret_a);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/down", closed_port());
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url, .secret = secret_a}, ep_down), WH_OK);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "http://10.0.0.5/x", .secret = secret_a},
                                     ep_blocked), WH_OK);
    /* a refused secret is not echoed back */
    char bad[80];
    snprintf(bad, sizeof bad, "%s\r\nX-Evil: 1", secret_b);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "https://a.example/", .secret = bad}, NULL), WH_ERR_INVALID);
    ck_assert(!leaks(wh_last_error(), secret_b));
    ck_assert_int_eq(wh_endpoint_rotate_secret(ctx, ep_flaky, bad, 60), WH_ERR_INVALID);
    ck_assert(!leaks(wh_last_error(), secret_b));
    snprintf(bad, sizeof bad, "%s==", secret_b);
    ck_assert_int_eq(wh_endpoint_rotate_secret(ctx, ep_flaky, bad, 60), WH_ERR_INVALID);
    ck_assert(!leaks(wh_last_error(), secret_b));

    ck_assert_int_eq(wh_emit(ctx, &(wh_event){.event_type = "workflow_run.failed", .run_id = "r",
                                              .status = "failed"}, NULL), 3);
    settle(ctx);
    /* rotate: both secrets sign during the grace period */
    ck_assert_int_eq(wh_endpoint_rotate_secret(ctx, ep_flaky, secret_b, 3600), WH_OK);
    rcv_set_secret(r, "/flaky", secret_b);
    ck_assert_int_eq(wh_emit(ctx, &(wh_event){.event_type = "workflow_run.completed", .run_id = "r",
                                              .status = "completed"}, NULL), 3);
    settle(ctx);
    ck_assert_uint_ge(rcv_count(r, "/flaky"), 3);
    ck_assert_uint_eq(rcv_bad_signatures(r), 0);

    /* every kind of outcome was logged: delivered, retrying, failed, skipped (blocked) */
    ck_assert_msg(sink.rows == 9, "%d rows:\n%s", sink.rows, sink.text);
    ck_assert_ptr_nonnull(strstr(sink.text, "blocked: 10.0.0.5"));
    ck_assert_ptr_nonnull(strstr(sink.text, "HTTP 500"));
    ck_assert(!leaks(sink.text, secret_a));
    ck_assert(!leaks(sink.text, secret_b));

    seen query = {.len = 0};
    int n = wh_log_query(ctx, &(wh_log_filter){.limit = 1000}, see_attempt, &query);
    ck_assert_int_eq(n, sink.rows);
    ck_assert(!leaks(query.text, secret_a));
    ck_assert(!leaks(query.text, secret_b));
    wh_destroy(ctx);

    FILE *f = fopen(log_path, "r");
    ck_assert_ptr_nonnull(f);
    static char file_text[256 * 1024];
    size_t len = fread(file_text, 1, sizeof file_text - 1, f);
    file_text[len] = '\0';
    fclose(f);
    ck_assert_uint_gt(len, 0);
    ck_assert(!leaks(file_text, secret_a));
    ck_assert(!leaks(file_text, secret_b));
    ck_assert_ptr_null(strstr(file_text, "whsec_"));
    rcv_stop(r);
    scratch_dir_remove(dir);
}

START_TEST(secrets_never_reach_the_log_memory_store) { secrets_stay_out_of_logs(false); }
END_TEST

START_TEST(secrets_never_reach_the_log_sqlite_store) { secrets_stay_out_of_logs(true); }
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("input");
    TCase *tc = tcase_create("input");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, event_fields_with_control_characters_are_refused, 0,
                        sizeof hostile_text / sizeof hostile_text[0]);
    tcase_add_test(tc, accepted_text_stays_in_the_json_body);
    tcase_add_loop_test(tc, bad_urls_are_refused_naming_url, 0, sizeof bad_urls / sizeof bad_urls[0]);
    tcase_add_test(tc, a_url_in_utf8_is_accepted);
    tcase_add_test(tc, descriptions_subscriptions_and_ids_with_control_characters_are_refused);
    tcase_add_test(tc, percent_encoded_line_breaks_stay_encoded_on_the_wire);
    tcase_add_test(tc, secrets_never_reach_the_log_memory_store);
    tcase_add_test(tc, secrets_never_reach_the_log_sqlite_store);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
