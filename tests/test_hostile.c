/* Hostile and broken receivers, on raw sockets on 127.0.0.1: each is a deliberately
 * broken peer, not an HTTP server. Whatever the peer does, the attempt ends in a logged,
 * retried attempt: no crash, leak, hang, unbounded memory or lost event. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "support.h"
#include "webhook/webhook.h"

/* ---- broken peers ------------------------------------------------------------- */

typedef enum {
    PEER_RESET,      /* a status line and part of the body, then a TCP reset */
    PEER_GARBAGE,    /* bytes that are not HTTP, then close */
    PEER_ENDLESS,    /* a 200 whose body never ends */
    PEER_TRICKLE,    /* the response headers one byte a second */
    PEER_NEVER_READ, /* accepts, never reads, never answers */
    PEER_IDLE_CLOSE, /* a kept-alive 204, then closes the idle connection */
} peer_kind;

typedef struct peer {
    peer_kind kind;
    const char *garbage; /* PEER_GARBAGE: what to send */
    size_t garbage_len;
    int lfd, port;
    pthread_t th;
    int stop;              /* atomic */
    int accepted;          /* atomic */
    int requests;          /* atomic: requests read in full */
    uint64_t bytes_sent;   /* atomic */
} peer;

static bool stopping(peer *p) { return __atomic_load_n(&p->stop, __ATOMIC_ACQUIRE); }

/* Sleeps ms in small steps; false if asked to stop meanwhile. */
static bool nap(peer *p, int ms)
{
    for (; ms > 0; ms -= 20) {
        if (stopping(p))
            return false;
        usleep(20000);
    }
    return !stopping(p);
}

/* Reads one request (headers and Content-Length body); false on error or stop. */
static bool read_request(peer *p, int fd)
{
    char buf[16384];
    size_t n = 0;
    long body = -1;
    size_t head = 0;
    while (!stopping(p)) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
        if (r <= 0)
            return false;
        n += (size_t)r;
        buf[n] = '\0';
        if (!head) {
            char *end = strstr(buf, "\r\n\r\n");
            if (!end) {
                if (n == sizeof buf - 1)
                    return false;
                continue;
            }
            head = (size_t)(end - buf) + 4;
            const char *cl = strcasestr(buf, "\r\ncontent-length:");
            body = cl ? strtol(cl + 17, NULL, 10) : 0;
        }
        if (n >= head + (size_t)body) {
            __atomic_add_fetch(&p->requests, 1, __ATOMIC_SEQ_CST);
            return true;
        }
    }
    return false;
}

static bool send_all(peer *p, int fd, const char *data, size_t len)
{
    while (len && !stopping(p)) {
        ssize_t w = send(fd, data, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        __atomic_add_fetch(&p->bytes_sent, (uint64_t)w, __ATOMIC_RELAXED);
        data += w, len -= (size_t)w;
    }
    return len == 0;
}

static void serve(peer *p, int fd)
{
    switch (p->kind) {
    case PEER_RESET: {
        if (!read_request(p, fd))
            break;
        static const char part[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"partial\":";
        send_all(p, fd, part, sizeof part - 1);
        nap(p, 100);
        struct linger lg = {.l_onoff = 1, .l_linger = 0}; /* close sends RST */
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        break;
    }
    case PEER_GARBAGE:
        if (read_request(p, fd))
            send_all(p, fd, p->garbage, p->garbage_len);
        nap(p, 50);
        break;
    case PEER_ENDLESS: {
        if (!read_request(p, fd))
            break;
        static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
        static char block[65536];
        memset(block, 'x', sizeof block);
        if (send_all(p, fd, head, sizeof head - 1))
            while (send_all(p, fd, block, sizeof block)) {
            }
        break;
    }
    case PEER_TRICKLE: {
        if (!read_request(p, fd))
            break;
        static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Slow: yes\r\n\r\n";
        for (size_t i = 0; i < sizeof resp - 1; i++)
            if (!send_all(p, fd, resp + i, 1) || !nap(p, 1000))
                break;
        break;
    }
    case PEER_IDLE_CLOSE: {
        static const char resp[] = "HTTP/1.1 204 No Content\r\n\r\n";
        if (read_request(p, fd) && send_all(p, fd, resp, sizeof resp - 1))
            nap(p, 100);
        break;
    }
    case PEER_NEVER_READ:
        /* hold the connection until the client gives up (or the test ends) */
        while (!stopping(p)) {
            struct pollfd pf = {.fd = fd, .events = POLLRDHUP};
            if (poll(&pf, 1, 50) > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR)))
                break;
        }
        break;
    }
    close(fd);
}

static void *peer_main(void *arg)
{
    peer *p = arg;
    while (!stopping(p)) {
        struct pollfd pf = {.fd = p->lfd, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        int fd = accept(p->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        __atomic_add_fetch(&p->accepted, 1, __ATOMIC_SEQ_CST);
        serve(p, fd);
    }
    return NULL;
}

static void peer_start(peer *p, peer_kind kind)
{
    p->kind = kind;
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(p->lfd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(p->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(p->lfd, 16), 0);
    socklen_t len = sizeof sa;
    getsockname(p->lfd, (struct sockaddr *)&sa, &len);
    p->port = ntohs(sa.sin_port);
    ck_assert_int_eq(pthread_create(&p->th, NULL, peer_main, p), 0);
}

static void peer_stop(peer *p)
{
    __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
    pthread_join(p->th, NULL);
    close(p->lfd);
}

/* ---- the sender ------------------------------------------------------------------ */

typedef struct {
    int n, retrying, other;
    /* the first attempt */
    int outcome, http_status;
    char error[256];
    size_t response_len;
    int64_t duration_us;
    /* every attempt */
    size_t max_response_len;
} attempt_log;

static void keep(void *ud, const wh_attempt *a)
{
    attempt_log *l = ud;
    if (a->error && strcmp(a->error, "destroyed") == 0)
        return; /* wh_destroy reporting the retry still pending: not an attempt */
    if (l->n++ == 0) {
        l->outcome = a->outcome;
        l->http_status = a->http_status;
        snprintf(l->error, sizeof l->error, "%s", a->error ? a->error : "");
        l->response_len = a->response_len;
        l->duration_us = a->duration_us;
    }
    if (a->outcome == WH_OUTCOME_RETRYING)
        l->retrying++;
    else
        l->other++;
    if (a->response_len > l->max_response_len)
        l->max_response_len = a->response_len;
}

static int64_t frozen_now_ms;
static int64_t frozen_clock(void *ud)
{
    (void)ud;
    return frozen_now_ms; /* never moves: a retry never comes due during a test */
}

static wh_ctx *make_ctx(const char *const *settings, attempt_log *log)
{
    frozen_now_ms = (int64_t)time(NULL) * 1000;
    char err[256];
    wh_conf *c = wh_conf_new();
    /* the peers are on loopback, which the address guard refuses by default */
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    for (const char *const *s = settings; s && *s; s += 2)
        ck_assert_msg(wh_conf_set(c, s[0], s[1], err, sizeof err) == WH_OK, "%s", err);
    memset(log, 0, sizeof *log);
    wh_conf_add_log_sink(c, &(wh_log_sink){.write = keep, .ud = log});
    wh_conf_set_clock(c, frozen_clock, NULL);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

static void add_endpoint(wh_ctx *ctx, int port, const char *path)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url}, NULL), WH_OK);
}

static int emit(wh_ctx *ctx)
{
    return wh_emit(ctx, &(wh_event){.event_type = "task_run.completed", .run_id = "run_1",
                                    .task_id = "task_1", .status = "completed"}, NULL);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Nothing lost: the delivery waits for its retry; nothing on the wire. */
static void assert_one_retry_pending(wh_ctx *ctx, const attempt_log *log)
{
    ck_assert_int_eq(log->n, 1);
    ck_assert_int_eq(log->outcome, WH_OUTCOME_RETRYING);
    ck_assert_int_eq(log->http_status, 0);
    ck_assert_str_ne(log->error, "");
    wh_stats_info st;
    wh_stats(ctx, &st);
    ck_assert_uint_eq(st.attempts, 1);
    ck_assert_uint_eq(st.pending, 1);
    ck_assert_uint_eq(st.in_flight, 0);
    ck_assert_uint_eq(st.delivered + st.failed + st.skipped, 0);
}

/* Sends one event to a peer of this kind; returns the time wh_flush took, in ms. */
static int64_t deliver_to(peer *p, const char *const *settings, attempt_log *log, wh_ctx **ctx_out)
{
    wh_ctx *ctx = make_ctx(settings, log);
    add_endpoint(ctx, p->port, "/hook");
    ck_assert_int_eq(emit(ctx), 1);
    int64_t t0 = mono_ms();
    ck_assert_int_eq(wh_flush(ctx, 30000), WH_OK);
    int64_t took = mono_ms() - t0;
    ck_assert_int_ge(__atomic_load_n(&p->accepted, __ATOMIC_SEQ_CST), 1);
    *ctx_out = ctx;
    return took;
}

START_TEST(connection_reset_mid_response)
{
    peer p = {0};
    peer_start(&p, PEER_RESET);
    attempt_log log;
    wh_ctx *ctx;
    deliver_to(&p, NULL, &log, &ctx);
    ck_assert_int_eq(__atomic_load_n(&p.requests, __ATOMIC_SEQ_CST), 1);
    /* a 200 status line followed by a reset is not a delivery */
    assert_one_retry_pending(ctx, &log);
    wh_destroy(ctx);
    peer_stop(&p);
}
END_TEST

#define GARBAGE(name, text) {name, text, sizeof text - 1}
static const struct {
    const char *name, *bytes;
    size_t len;
} garbage[] = {
    GARBAGE("not http", "SSH-2.0-OpenSSH_9.2\r\n\r\n"),
    GARBAGE("binary", "\x00\xff\xfe\x01\x80garbage\r\n\r\n\x00"),
    GARBAGE("bad status line", "HTTP/1.1 2OO OK\r\n\r\n"),
    GARBAGE("bad chunking", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzzzz\r\nnot a chunk\r\n"),
};

START_TEST(garbage_instead_of_http)
{
    peer p = {0};
    p.garbage = garbage[_i].bytes;
    p.garbage_len = garbage[_i].len;
    peer_start(&p, PEER_GARBAGE);
    attempt_log log;
    wh_ctx *ctx;
    deliver_to(&p, NULL, &log, &ctx);
    ck_assert_msg(log.outcome == WH_OUTCOME_RETRYING, "%s: outcome %d (%s)", garbage[_i].name,
                  log.outcome, log.error);
    assert_one_retry_pending(ctx, &log);
    wh_destroy(ctx);
    peer_stop(&p);
}
END_TEST

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (size_t)sysconf(_SC_PAGESIZE);
}

START_TEST(endless_body_keeps_only_response_max_and_times_out)
{
    peer p = {0};
    peer_start(&p, PEER_ENDLESS);
    const char *set[] = {"log.response_max", "1000", "http.timeout_ms", "2000", NULL};
    attempt_log log;
    wh_ctx *ctx = make_ctx(set, &log);
    add_endpoint(ctx, p.port, "/hook");
    ck_assert_int_eq(emit(ctx), 1);
    size_t rss_before = rss_bytes();
    int64_t t0 = mono_ms();
    ck_assert_int_eq(wh_flush(ctx, 30000), WH_OK);
    int64_t took = mono_ms() - t0;
    size_t rss_after = rss_bytes();
    uint64_t sent = __atomic_load_n(&p.bytes_sent, __ATOMIC_RELAXED);
    assert_one_retry_pending(ctx, &log);
    ck_assert_msg(strstr(log.error, "timed out"), "%s", log.error);
    ck_assert_uint_eq(log.response_len, 1000); /* the first log.response_max bytes, no more */
    ck_assert_int_ge(took, 1900);
    ck_assert_int_lt(took, 2000 + 3000);
    /* the peer streamed far more than the process grew: the rest was read and dropped */
    ck_assert_msg(sent > 32u << 20, "only %llu bytes streamed", (unsigned long long)sent);
    ck_assert_msg(rss_after < rss_before + (16u << 20), "RSS grew from %zu to %zu while %llu bytes streamed",
                  rss_before, rss_after, (unsigned long long)sent);
    wh_destroy(ctx);
    peer_stop(&p);
}
END_TEST

START_TEST(headers_trickled_a_byte_a_second_hit_the_total_timeout)
{
    peer p = {0};
    peer_start(&p, PEER_TRICKLE);
    const char *set[] = {"http.timeout_ms", "2000", NULL};
    attempt_log log;
    wh_ctx *ctx;
    int64_t took = deliver_to(&p, set, &log, &ctx);
    assert_one_retry_pending(ctx, &log);
    ck_assert_msg(strstr(log.error, "timed out"), "%s", log.error);
    /* every byte resets no timer: the whole attempt is bounded by http.timeout_ms */
    ck_assert_int_ge(took, 1900);
    ck_assert_int_lt(took, 2000 + 1500);
    ck_assert_int_lt(log.duration_us, (2000 + 1500) * 1000LL);
    ck_assert_uint_le(__atomic_load_n(&p.bytes_sent, __ATOMIC_RELAXED), 4);
    wh_destroy(ctx);
    peer_stop(&p);
}
END_TEST

START_TEST(receiver_that_never_reads_or_answers_times_out)
{
    peer p = {0};
    peer_start(&p, PEER_NEVER_READ);
    const char *set[] = {"http.timeout_ms", "1500", NULL};
    attempt_log log;
    wh_ctx *ctx;
    int64_t took = deliver_to(&p, set, &log, &ctx);
    assert_one_retry_pending(ctx, &log);
    ck_assert_msg(strstr(log.error, "timed out"), "%s", log.error);
    ck_assert_int_ge(took, 1400);
    ck_assert_int_lt(took, 1500 + 1500);
    ck_assert_int_eq(__atomic_load_n(&p.requests, __ATOMIC_SEQ_CST), 0);
    wh_destroy(ctx);
    peer_stop(&p);
}
END_TEST

/* The same broken peers with a second, healthy delivery in the same context: the broken one
 * costs its own attempt only. */
START_TEST(a_broken_peer_does_not_stop_the_others)
{
    peer bad[3] = {{0}};
    peer_start(&bad[0], PEER_NEVER_READ);
    peer_start(&bad[1], PEER_TRICKLE);
    peer_start(&bad[2], PEER_ENDLESS);
    rcv *good = rcv_start();
    ck_assert_ptr_nonnull(good);
    const char *set[] = {"http.timeout_ms", "2000", "log.response_max", "100", NULL};
    attempt_log log;
    wh_ctx *ctx = make_ctx(set, &log);
    for (int i = 0; i < 3; i++)
        add_endpoint(ctx, bad[i].port, "/bad");
    char url[128];
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(good, "/good", url, sizeof url)}, NULL), WH_OK);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(emit(ctx), 4);
    /* the healthy endpoint has all five well before any broken one times out */
    int64_t t0 = mono_ms();
    while (rcv_count(good, "/good") < 5 && mono_ms() - t0 < 1500)
        wh_poll(ctx, 50);
    ck_assert_uint_eq(rcv_count(good, "/good"), 5);
    ck_assert_int_eq(wh_flush(ctx, 30000), WH_OK);
    wh_stats_info st;
    wh_stats(ctx, &st);
    ck_assert_uint_eq(st.delivered, 5);
    ck_assert_uint_eq(st.pending, 15);
    ck_assert_uint_eq(st.in_flight, 0);
    ck_assert_int_eq(log.retrying, 15);
    ck_assert_uint_le(log.max_response_len, 100);
    wh_destroy(ctx);
    for (int i = 0; i < 3; i++)
        peer_stop(&bad[i]);
    rcv_stop(good);
}
END_TEST

START_TEST(ten_thousand_refusing_endpoints_at_once)
{
    enum { N = 10000 };
    int port = closed_port();
    ck_assert_int_gt(port, 0);
    const char *set[] = {"http.connect_timeout_ms", "2000", "log.ring_size", "0", NULL};
    attempt_log log;
    wh_ctx *ctx = make_ctx(set, &log);
    for (int i = 0; i < N; i++) {
        char path[32];
        snprintf(path, sizeof path, "/ep/%d", i);
        add_endpoint(ctx, port, path);
    }
    int64_t t0 = mono_ms();
    ck_assert_int_eq(emit(ctx), N);
    ck_assert_int_eq(wh_flush(ctx, 120000), WH_OK);
    int64_t took = mono_ms() - t0;
    ck_assert_int_eq(log.n, N);
    ck_assert_int_eq(log.retrying, N);
    ck_assert_int_eq(log.other, 0);
    wh_stats_info st;
    wh_stats(ctx, &st);
    ck_assert_uint_eq(st.attempts, N);
    ck_assert_uint_eq(st.pending, N);
    ck_assert_uint_eq(st.in_flight, 0);
    ck_assert_uint_eq(st.endpoints_disabled, 0);
    ck_assert_msg(took < 60000, "10,000 refused attempts took %lld ms", (long long)took);
    wh_destroy(ctx);
}
END_TEST

static int64_t thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The connection of a delivery stays open for the next one; when the peer closes it while it
 * is idle, the driver neither spins on it nor loses the next delivery (a new connection). */
START_TEST(kept_alive_connection_closed_while_idle)
{
    peer p = {0};
    peer_start(&p, PEER_IDLE_CLOSE);
    attempt_log log;
    wh_ctx *ctx;
    deliver_to(&p, NULL, &log, &ctx);
    ck_assert_int_eq(log.outcome, WH_OUTCOME_DELIVERED);
    ck_assert_int_eq(log.http_status, 204);
    /* the peer closes 100 ms after its answer: the driver wakes for it once, then sleeps */
    int64_t cpu0 = thread_cpu_ms();
    ck_assert_int_eq(wh_poll(ctx, 600), 0);
    int64_t cpu = thread_cpu_ms() - cpu0;
    ck_assert_msg(cpu < 200, "%lld ms of CPU in 600 ms with nothing to deliver", (long long)cpu);
    ck_assert_int_eq(emit(ctx), 1);
    ck_assert_int_eq(wh_flush(ctx, 30000), WH_OK);
    ck_assert_int_eq(log.n, 2);
    ck_assert_int_eq(log.other, 2);
    wh_stats_info st;
    wh_stats(ctx, &st);
    ck_assert_uint_eq(st.delivered, 2);
    ck_assert_int_eq(__atomic_load_n(&p.accepted, __ATOMIC_SEQ_CST), 2);
    wh_destroy(ctx);
    peer_stop(&p);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("hostile");
    TCase *tc = tcase_create("hostile");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, connection_reset_mid_response);
    tcase_add_loop_test(tc, garbage_instead_of_http, 0, sizeof garbage / sizeof garbage[0]);
    tcase_add_test(tc, endless_body_keeps_only_response_max_and_times_out);
    tcase_add_test(tc, headers_trickled_a_byte_a_second_hit_the_total_timeout);
    tcase_add_test(tc, receiver_that_never_reads_or_answers_times_out);
    tcase_add_test(tc, a_broken_peer_does_not_stop_the_others);
    tcase_add_test(tc, ten_thousand_refusing_endpoints_at_once);
    tcase_add_test(tc, kept_alive_connection_closed_while_idle);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
