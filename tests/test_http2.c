/* HTTP/2 receivers that answer before they have read the whole request. RFC 9113 section 8.1
 * lets a server send its complete response early and then reset the stream with NO_ERROR,
 * and says clients must not discard that response; nginx does exactly this for `return 204`.
 * The receiver here is nginx with TLS and HTTP/2 on 127.0.0.1, its certificate from a CA the
 * test makes (given to the library as tls.ca_file). Every early 2xx answer is a delivery on
 * the first attempt; a stream reset with an error code, before the answer or in the middle
 * of its body, stays a failure and is retried. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nginx.h"
#include "pki.h"
#include "support.h"
#include "webhook/webhook.h"

#define EARLY_EVENTS 2000
#define RESET_EVENTS 20

/* ---- a backend that announces 100 bytes of body and sends 3 --------------------- */

static int backend_fd = -1, backend_port;
static int *backend_requests; /* atomic; shared, since the tests run in processes of their own */
static pid_t backend_pid;

/* Reads the request head and its Content-Length body, so that the short answer comes after
 * the whole request and nginx has forwarded the status before the cut. */
static void read_request(int c)
{
    char buf[8192];
    size_t have = 0;
    char *end = NULL;
    while (!end && have < sizeof buf - 1) {
        ssize_t r = recv(c, buf + have, sizeof buf - 1 - have, 0);
        if (r <= 0)
            return;
        have += (size_t)r;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (!end)
        return;
    long body = 0;
    for (char *p = buf; p < end; p = strstr(p, "\r\n") + 2)
        if (strncasecmp(p, "content-length:", 15) == 0)
            body = strtol(p + 15, NULL, 10);
    long left = body - (long)(have - (size_t)(end + 4 - buf));
    while (left > 0) {
        ssize_t r = recv(c, buf, sizeof buf, 0);
        if (r <= 0)
            return;
        left -= r;
    }
}

static void backend_serve(void)
{
    for (;;) {
        int c = accept(backend_fd, NULL, NULL);
        if (c < 0 && (errno == EINTR || errno == ECONNABORTED))
            continue;
        if (c < 0)
            _exit(1);
        read_request(c);
        static const char cut[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc";
        if (send(c, cut, sizeof cut - 1, MSG_NOSIGNAL) == (ssize_t)sizeof cut - 1)
            __atomic_add_fetch(backend_requests, 1, __ATOMIC_SEQ_CST);
        close(c);
    }
}

/* A process of its own (no thread in the runner, whose tests fork), killed in teardown or,
 * should the runner die first, with it. */
static void backend_start(void)
{
    backend_requests = mmap(NULL, sizeof *backend_requests, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert(backend_requests != MAP_FAILED);
    backend_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    ck_assert_int_ge(backend_fd, 0);
    ck_assert_int_eq(bind(backend_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(backend_fd, 64), 0);
    ck_assert_int_eq(getsockname(backend_fd, (struct sockaddr *)&sa, &len), 0);
    backend_port = ntohs(sa.sin_port);
    pid_t parent = getpid();
    backend_pid = fork();
    ck_assert_int_ge(backend_pid, 0);
    if (backend_pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(1);
        backend_serve();
    }
    close(backend_fd);
}

static void backend_stop(void)
{
    if (backend_pid > 0) {
        kill(backend_pid, SIGKILL);
        waitpid(backend_pid, NULL, 0);
        backend_pid = 0;
    }
    munmap(backend_requests, sizeof *backend_requests);
}

/* ---- the receiver: nginx, started once for the test case ------------------------ */

static pki_cred ca, server;
static char ca_file[64];
static nginx *ngx;

static void setup(void)
{
    ck_assert_int_eq(pki_make(&ca, "libwebhook test CA", NULL, NULL), 0);
    ck_assert_int_eq(pki_make(&server, "localhost", &ca, "DNS:localhost,IP:127.0.0.1"), 0);
    snprintf(ca_file, sizeof ca_file, "/tmp/wh-h2-ca-XXXXXX");
    int fd = mkstemp(ca_file);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char *ca_pem = pki_cert_pem(&ca), *cert = pki_cert_pem(&server), *key = pki_key_pem(&server);
    ck_assert(ca_pem && cert && key);
    ck_assert_int_eq(pki_write_file(ca_file, ca_pem), 0);
    backend_start();
    char locations[512], err[768];
    snprintf(locations, sizeof locations,
             /* answers without reading the body, then RST_STREAM(NO_ERROR) */
             "        location /early { return 204; }\n"
             /* closes the stream without an answer: RST_STREAM with an error code */
             "        location /reset { return 444; }\n"
             /* 200 and 3 of 100 bytes, then RST_STREAM(INTERNAL_ERROR) */
             "        location /cut { proxy_pass http://127.0.0.1:%d; }",
             backend_port);
    ngx = nginx_start(cert, key, locations, err, sizeof err);
    free(ca_pem);
    free(cert);
    free(key);
    ck_assert_msg(ngx != NULL, "%s", err);
}

static void teardown(void)
{
    nginx_stop(ngx);
    ngx = NULL;
    backend_stop();
    unlink(ca_file);
    pki_free(&ca);
    pki_free(&server);
}

/* ---- delivering ------------------------------------------------------------------ */

typedef struct {
    int attempts, delivered, retrying, other;
    int status_counts[600];
    char error[512]; /* the first error */
} tally;

static void count_attempt(void *ud, const wh_attempt *a)
{
    tally *t = ud;
    t->attempts++;
    if (a->outcome == WH_OUTCOME_DELIVERED)
        t->delivered++;
    else if (a->outcome == WH_OUTCOME_RETRYING)
        t->retrying++;
    else
        t->other++;
    if (a->http_status >= 0 && a->http_status < 600)
        t->status_counts[a->http_status]++;
    if (a->error && !t->error[0])
        snprintf(t->error, sizeof t->error, "%s", a->error);
}

static int64_t frozen_clock(void *ud) { return *(int64_t *)ud; }

/* Emits n events to https://127.0.0.1:PORT<path> and drives until every first attempt has
 * ended; the clock stands still, so no retry comes due. */
static void deliver(const char *path, int n, tally *out)
{
    static int64_t now_ms;
    now_ms = (int64_t)time(NULL) * 1000;
    char err[256], url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d%s", nginx_port(ngx), path);
    wh_conf *c = wh_conf_new();
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    ck_assert_msg(wh_conf_set(c, "tls.ca_file", ca_file, err, sizeof err) == WH_OK, "%s", err);
    ck_assert_int_eq(wh_conf_set(c, "http.timeout_ms", "20000", err, sizeof err), WH_OK);
    memset(out, 0, sizeof *out);
    tally live = {0};
    wh_conf_add_log_sink(c, &(wh_log_sink){.write = count_attempt, .ud = &live});
    wh_conf_set_clock(c, frozen_clock, &now_ms);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url}, NULL), WH_OK);
    for (int i = 0; i < n; i++) {
        char run[32];
        snprintf(run, sizeof run, "run_%d", i);
        ck_assert_int_eq(wh_emit(ctx, &(wh_event){.event_type = "workflow_run.started", .run_id = run,
                                                  .status = "started"}, NULL), 1);
    }
    ck_assert_int_eq(wh_flush(ctx, 90000), WH_OK);
    wh_stats_info st;
    wh_stats(ctx, &st);
    ck_assert_uint_eq(st.in_flight, 0);
    *out = live; /* before wh_destroy reports what is still pending */
    wh_destroy(ctx);
}

/* nginx writes its access log line after the answer has gone out: wait for it, bounded. */
static size_t wait_log(const char *line, size_t want)
{
    size_t got = 0;
    for (int i = 0; i < 500 && (got = nginx_log_count(ngx, line)) < want; i++) /* 5 s */
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000000}, NULL);
    return got;
}

START_TEST(early_answer_is_delivered_on_first_attempt)
{
    tally t;
    deliver("/early", EARLY_EVENTS, &t);
    ck_assert_msg(t.delivered == EARLY_EVENTS, "%d of %d delivered, %d to retry; first error: %s",
                  t.delivered, EARLY_EVENTS, t.retrying, t.error);
    ck_assert_int_eq(t.attempts, EARLY_EVENTS);
    ck_assert_int_eq(t.status_counts[204], EARLY_EVENTS);
    ck_assert_str_eq(t.error, "");
    /* each was one HTTP/2 request */
    ck_assert_uint_eq(wait_log("HTTP/2.0 204 /early", EARLY_EVENTS), EARLY_EVENTS);
}
END_TEST

START_TEST(error_reset_before_the_answer_is_retried)
{
    tally t;
    deliver("/reset", RESET_EVENTS, &t);
    ck_assert_int_eq(t.retrying, RESET_EVENTS);
    ck_assert_int_eq(t.attempts, RESET_EVENTS);
    ck_assert_int_eq(t.status_counts[0], RESET_EVENTS);
    ck_assert_msg(t.error[0], "a failure says why");
    ck_assert_uint_eq(wait_log("HTTP/2.0 444 /reset", RESET_EVENTS), RESET_EVENTS);
}
END_TEST

START_TEST(error_reset_in_the_middle_of_a_2xx_is_retried)
{
    tally t;
    deliver("/cut", RESET_EVENTS, &t);
    ck_assert_int_eq(t.retrying, RESET_EVENTS);
    ck_assert_int_eq(t.attempts, RESET_EVENTS);
    ck_assert_int_eq(t.status_counts[0], RESET_EVENTS); /* the 200 is not an answer */
    ck_assert_msg(t.error[0], "a failure says why");
    /* nginx did send the 200 before the reset */
    ck_assert_uint_eq(wait_log("HTTP/2.0 200 /cut", RESET_EVENTS), RESET_EVENTS);
    ck_assert_int_eq(__atomic_load_n(backend_requests, __ATOMIC_SEQ_CST), RESET_EVENTS);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("http2");
    TCase *tc = tcase_create("http2");
    tcase_set_timeout(tc, 120);
    /* in the runner process: nginx is stopped after the tests, whether they pass or not */
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, early_answer_is_delivered_on_first_attempt);
    tcase_add_test(tc, error_reset_before_the_answer_is_retried);
    tcase_add_test(tc, error_reset_in_the_middle_of_a_2xx_is_retried);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
