/* The test receiver itself, driven with plain libcurl. */
#include <curl/curl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "support.h"
#include "webhook/webhook.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

typedef struct reply {
    CURLcode rc;
    long status;
    char headers[8192];
    size_t hlen;
    char *body;
    size_t blen;
    int64_t elapsed_ms;
    double connect_s;
} reply;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    reply *r = ud;
    size_t len = size * n, room = sizeof r->headers - 1 - r->hlen;
    size_t k = len < room ? len : room;
    memcpy(r->headers + r->hlen, p, k);
    r->hlen += k;
    r->headers[r->hlen] = '\0';
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    reply *r = ud;
    size_t len = size * n;
    char *nb = realloc(r->body, r->blen + len + 1);
    if (!nb)
        return 0;
    memcpy(nb + r->blen, p, len);
    r->body = nb;
    r->blen += len;
    r->body[r->blen] = '\0';
    return len;
}

/* POST body to url with extra header lines; fills *out (free out->body). */
static CURLcode post(const char *url, const char *const *hdrs, const char *body, size_t len,
                     long timeout_ms, reply *out)
{
    memset(out, 0, sizeof *out);
    CURL *h = curl_easy_init();
    ck_assert_ptr_nonnull(h);
    struct curl_slist *sl = NULL;
    for (size_t i = 0; hdrs && hdrs[i]; i++)
        sl = curl_slist_append(sl, hdrs[i]);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, sl);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    int64_t t0 = mono_ms();
    out->rc = curl_easy_perform(h);
    out->elapsed_ms = mono_ms() - t0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_getinfo(h, CURLINFO_CONNECT_TIME, &out->connect_s);
    curl_slist_free_all(sl);
    curl_easy_cleanup(h);
    return out->rc;
}

static long post_status(rcv *r, const char *path)
{
    char url[256];
    reply rp;
    post(rcv_url(r, path, url, sizeof url), NULL, "{}", 2, 5000, &rp);
    ck_assert_int_eq(rp.rc, CURLE_OK);
    free(rp.body);
    return rp.status;
}

static void setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void teardown(void)
{
    curl_global_cleanup();
}

START_TEST(post_is_recorded)
{
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    ck_assert_int_gt(rcv_port(r), 0);
    char url[256];
    rcv_url(r, "/hook", url, sizeof url);
    char want[64];
    snprintf(want, sizeof want, "http://127.0.0.1:%d/hook", rcv_port(r));
    ck_assert_str_eq(url, want);

    const char *body = "{\"event_type\":\"task_run.completed\",\"run_id\":\"r1\"}";
    const char *hdrs[] = {"webhook-id: msg_1", "webhook-timestamp: 1700000000",
                          "webhook-signature: v1,abc=", "Content-Type: application/json",
                          "User-Agent: libwebhook-test/1", NULL};
    int64_t before = (int64_t)time(NULL) * 1000;
    reply rp;
    post(url, hdrs, body, strlen(body), 5000, &rp);
    ck_assert_int_eq(rp.rc, CURLE_OK);
    ck_assert_int_eq(rp.status, 204);
    free(rp.body);

    ck_assert(rcv_wait(r, NULL, 1, 1000));
    ck_assert_uint_eq(rcv_count(r, NULL), 1);
    ck_assert_uint_eq(rcv_count(r, "/hook"), 1);
    ck_assert_uint_eq(rcv_count(r, "/other"), 0);
    rcv_request q;
    ck_assert_int_eq(rcv_get(r, 0, &q), 0);
    ck_assert_str_eq(q.path, "/hook");
    ck_assert_str_eq(q.webhook_id, "msg_1");
    ck_assert_str_eq(q.webhook_timestamp, "1700000000");
    ck_assert_str_eq(q.webhook_signature, "v1,abc=");
    ck_assert_str_eq(q.content_type, "application/json");
    ck_assert_str_eq(q.user_agent, "libwebhook-test/1");
    ck_assert_uint_eq(q.body_len, strlen(body));
    ck_assert_str_eq(q.body, body);
    ck_assert_int_eq(q.status_sent, 204);
    ck_assert_int_eq(q.signature_ok, -1);
    ck_assert_int_ge(q.received_ms, before);
    /* time() reads the coarse clock, a tick behind the one received_ms comes from */
    ck_assert_int_le(q.received_ms, (int64_t)time(NULL) * 1000 + 1100);
    rcv_request_free(&q);
    ck_assert_ptr_null(q.body);
    ck_assert_int_eq(rcv_get(r, 1, &q), -1);
    rcv_stop(r);
}
END_TEST

START_TEST(large_body_accumulates)
{
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    size_t len = 3 * 1024 * 1024 + 17;
    char *body = malloc(len);
    ck_assert_ptr_nonnull(body);
    for (size_t i = 0; i < len; i++)
        body[i] = (char)('a' + i % 26);
    char url[256];
    reply rp;
    post(rcv_url(r, "big", url, sizeof url), NULL, body, len, 10000, &rp);
    ck_assert_int_eq(rp.rc, CURLE_OK);
    ck_assert_int_eq(rp.status, 204);
    free(rp.body);
    rcv_request q;
    ck_assert_int_eq(rcv_get(r, 0, &q), 0);
    ck_assert_str_eq(q.path, "/big");
    ck_assert_uint_eq(q.body_len, len);
    ck_assert(memcmp(q.body, body, len) == 0);
    rcv_request_free(&q);
    free(body);
    rcv_stop(r);
}
END_TEST

START_TEST(script_in_order)
{
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    rcv_rule rules[] = {{.status = 500}, {.status = 500}};
    rcv_script(r, "/flaky", rules, 2, (rcv_rule){.status = 200});
    ck_assert_int_eq(post_status(r, "/flaky"), 500);
    ck_assert_int_eq(post_status(r, "/other"), 204);
    ck_assert_int_eq(post_status(r, "/flaky"), 500);
    ck_assert_int_eq(post_status(r, "/flaky"), 200);
    ck_assert_int_eq(post_status(r, "/flaky"), 200);
    ck_assert_uint_eq(rcv_count(r, "/flaky"), 4);
    ck_assert_uint_eq(rcv_count(r, NULL), 5);
    int want[] = {500, 204, 500, 200, 200};
    for (size_t i = 0; i < 5; i++) {
        rcv_request q;
        ck_assert_int_eq(rcv_get(r, i, &q), 0);
        ck_assert_int_eq(q.status_sent, want[i]);
        ck_assert_str_eq(q.path, i == 1 ? "/other" : "/flaky");
        rcv_request_free(&q);
    }
    /* scripting again restarts the script */
    rcv_script(r, "/flaky", (rcv_rule[]){{.status = 503}}, 1, (rcv_rule){.status = 201});
    ck_assert_int_eq(post_status(r, "/flaky"), 503);
    ck_assert_int_eq(post_status(r, "/flaky"), 201);
    /* no rules at all: `after` forever */
    rcv_script(r, "/gone", NULL, 0, (rcv_rule){.status = 410});
    ck_assert_int_eq(post_status(r, "/gone"), 410);
    ck_assert_int_eq(post_status(r, "/gone"), 410);
    rcv_stop(r);
}
END_TEST

typedef struct slow_arg {
    const char *url;
    reply rp;
} slow_arg;

static void *slow_post(void *p)
{
    slow_arg *a = p;
    post(a->url, NULL, "x", 1, 10000, &a->rp);
    return NULL;
}

START_TEST(delay_does_not_block_others)
{
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    rcv_rule slow = {.status = 200, .delay_ms = 700};
    rcv_script(r, "/slow", &slow, 1, (rcv_rule){.status = 204});
    char url[256];
    slow_arg a = {.url = rcv_url(r, "/slow", url, sizeof url)};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, slow_post, &a), 0);
    ck_assert(rcv_wait(r, "/slow", 1, 3000));
    int64_t t0 = mono_ms();
    ck_assert_int_eq(post_status(r, "/fast"), 204);
    ck_assert_int_lt(mono_ms() - t0, 500); /* answered while /slow still sleeps */
    pthread_join(t, NULL);
    ck_assert_int_eq(a.rp.rc, CURLE_OK);
    ck_assert_int_eq(a.rp.status, 200);
    ck_assert_int_ge(a.rp.elapsed_ms, 700);
    free(a.rp.body);
    /* the rule is used once; the next one is at once */
    reply rp;
    post(url, NULL, "x", 1, 5000, &rp);
    ck_assert_int_eq(rp.status, 204);
    ck_assert_int_lt(rp.elapsed_ms, 500);
    free(rp.body);
    rcv_stop(r);
}
END_TEST

START_TEST(delay_exceeds_client_timeout)
{
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    rcv_rule slow = {.status = 200, .delay_ms = 1000};
    rcv_script(r, "/slow", &slow, 1, (rcv_rule){.status = 204});
    char url[256];
    reply rp;
    post(rcv_url(r, "/slow", url, sizeof url), NULL, "x", 1, 300, &rp);
    ck_assert_int_eq(rp.rc, CURLE_OPERATION_TIMEDOUT);
    ck_assert_int_eq(rp.status, 0);
    ck_assert_int_ge(rp.elapsed_ms, 290);
    ck_assert_int_lt(rp.elapsed_ms, 900);
    free(rp.body);
    ck_assert_uint_eq(rcv_count(r, "/slow"), 1); /* recorded on arrival */
    rcv_stop(r);
}
END_TEST

START_TEST(stop_cuts_delay_short)
{
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    rcv_rule slow = {.status = 200, .delay_ms = 60000};
    rcv_script(r, "/slow", &slow, 1, (rcv_rule){.status = 204});
    char url[256];
    slow_arg a = {.url = rcv_url(r, "/slow", url, sizeof url)};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, slow_post, &a), 0);
    ck_assert(rcv_wait(r, "/slow", 1, 3000));
    int64_t t0 = mono_ms();
    rcv_stop(r);
    ck_assert_int_lt(mono_ms() - t0, 3000);
    pthread_join(t, NULL);
    free(a.rp.body);
}
END_TEST

START_TEST(retry_after_and_location)
{
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    char loc[256];
    snprintf(loc, sizeof loc, "http://127.0.0.1:%d/elsewhere", rcv_port(r));
    rcv_rule rules[] = {{.status = 429, .retry_after = "7"}, {.status = 302, .location = loc}};
    rcv_script(r, "/h", rules, 2, (rcv_rule){.status = 503, .retry_after = "120"});
    memset(loc, 0, sizeof loc); /* the script keeps its own copy */
    snprintf(loc, sizeof loc, "http://127.0.0.1:%d/elsewhere", rcv_port(r));
    char url[256];
    rcv_url(r, "/h", url, sizeof url);
    reply rp;

    post(url, NULL, "{}", 2, 5000, &rp);
    ck_assert_int_eq(rp.status, 429);
    ck_assert_ptr_nonnull(strcasestr(rp.headers, "\r\nRetry-After: 7\r\n"));
    ck_assert_ptr_null(strcasestr(rp.headers, "Location:"));
    free(rp.body);

    post(url, NULL, "{}", 2, 5000, &rp); /* curl does not follow by default */
    ck_assert_int_eq(rp.status, 302);
    char want[300];
    snprintf(want, sizeof want, "\r\nLocation: %s\r\n", loc);
    ck_assert_ptr_nonnull(strcasestr(rp.headers, want));
    ck_assert_ptr_null(strcasestr(rp.headers, "Retry-After:"));
    free(rp.body);

    post(url, NULL, "{}", 2, 5000, &rp);
    ck_assert_int_eq(rp.status, 503);
    ck_assert_ptr_nonnull(strcasestr(rp.headers, "\r\nRetry-After: 120\r\n"));
    free(rp.body);
    ck_assert_uint_eq(rcv_count(r, "/elsewhere"), 0);
    rcv_stop(r);
}
END_TEST

START_TEST(wait_times_out)
{
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    int64_t t0 = mono_ms();
    ck_assert(!rcv_wait(r, NULL, 1, 150));
    int64_t took = mono_ms() - t0;
    ck_assert_int_ge(took, 140);
    ck_assert_int_lt(took, 1000);
    ck_assert(rcv_wait(r, NULL, 0, 0));
    post_status(r, "/a");
    ck_assert(rcv_wait(r, NULL, 1, 0));
    ck_assert(rcv_wait(r, "/a", 1, 0));
    ck_assert(!rcv_wait(r, "/b", 1, 50));
    rcv_stop(r);
}
END_TEST

START_TEST(signatures_checked)
{
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    rcv_set_secret(r, "/signed", SECRET);
    const char *body = "{\"event_type\":\"workflow_run.completed\"}";
    char ts[32], sig[WH_SIGNATURE_MAX], h_ts[64], h_sig[WH_SIGNATURE_MAX + 32];
    int64_t now = (int64_t)time(NULL);
    snprintf(ts, sizeof ts, "%lld", (long long)now);
    ck_assert_int_eq(wh_sign(SECRET, "msg_s1", now, body, strlen(body), sig, sizeof sig), WH_OK);
    snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %s", ts);
    snprintf(h_sig, sizeof h_sig, "webhook-signature: %s", sig);
    const char *good[] = {"webhook-id: msg_s1", h_ts, h_sig, NULL};
    const char *bad[] = {"webhook-id: msg_s1", h_ts,
                         "webhook-signature: v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                         NULL};
    char url[256], url2[256];
    rcv_url(r, "/signed", url, sizeof url);
    rcv_url(r, "/unsigned", url2, sizeof url2);
    reply rp;
    post(url, good, body, strlen(body), 5000, &rp);
    ck_assert_int_eq(rp.status, 204);
    free(rp.body);
    post(url, bad, body, strlen(body), 5000, &rp);
    free(rp.body);
    post(url2, bad, body, strlen(body), 5000, &rp); /* no secret: not checked */
    free(rp.body);
    ck_assert_uint_eq(rcv_bad_signatures(r), 1);
    int want[] = {1, 0, -1};
    for (size_t i = 0; i < 3; i++) {
        rcv_request q;
        ck_assert_int_eq(rcv_get(r, i, &q), 0);
        ck_assert_int_eq(q.signature_ok, want[i]);
        rcv_request_free(&q);
    }
    rcv_set_secret(r, "/signed", NULL);
    post(url, bad, body, strlen(body), 5000, &rp);
    free(rp.body);
    ck_assert_uint_eq(rcv_bad_signatures(r), 1);
    rcv_stop(r);
}
END_TEST

START_TEST(blackhole_never_answers)
{
    int port = 0;
    int fd = blackhole_start(&port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_gt(port, 0);

    /* a plain connect completes */
    int c = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(c, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(c, (struct sockaddr *)&sa, sizeof sa), 0);
    close(c);

    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/dead", port);
    reply rp;
    post(url, NULL, "{}", 2, 300, &rp);
    ck_assert_int_eq(rp.rc, CURLE_OPERATION_TIMEDOUT);
    ck_assert_int_eq(rp.status, 0);
    ck_assert(rp.connect_s > 0); /* connected, then nothing came back */
    ck_assert_uint_eq(rp.hlen, 0);
    ck_assert_int_ge(rp.elapsed_ms, 290);
    ck_assert_int_lt(rp.elapsed_ms, 2000);
    free(rp.body);
    blackhole_stop(fd);
}
END_TEST

START_TEST(closed_port_refuses)
{
    int port = closed_port();
    ck_assert_int_gt(port, 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/nobody", port);
    reply rp;
    post(url, NULL, "{}", 2, 2000, &rp);
    ck_assert_int_eq(rp.rc, CURLE_COULDNT_CONNECT);
    ck_assert_int_eq(rp.status, 0);
    ck_assert_int_lt(rp.elapsed_ms, 1000);
    free(rp.body);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("receiver");
    TCase *tc = tcase_create("receiver");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, post_is_recorded);
    tcase_add_test(tc, large_body_accumulates);
    tcase_add_test(tc, script_in_order);
    tcase_add_test(tc, delay_does_not_block_others);
    tcase_add_test(tc, delay_exceeds_client_timeout);
    tcase_add_test(tc, stop_cuts_delay_short);
    tcase_add_test(tc, retry_after_and_location);
    tcase_add_test(tc, wait_times_out);
    tcase_add_test(tc, signatures_checked);
    tcase_add_test(tc, blackhole_never_answers);
    tcase_add_test(tc, closed_port_refuses);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return support_run_suite(suite());
}
