/* Delivery against a real HTTP receiver on 127.0.0.1: subscriptions, signatures,
 * retries, 410, Retry-After, redirects, timeouts, refused and dead endpoints,
 * concurrency, and the three ways to drive. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "mock.h"
#include "support.h"
#include "webhook/webhook.h"

static const char *secret_a = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
static const char *secret_b = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

typedef struct {
    wh_attempt rows[256];
    char errors[256][256];
    size_t n;
    pthread_mutex_t mu;
} attempts;

static void keep_attempt(void *ud, const wh_attempt *a)
{
    attempts *c = ud;
    pthread_mutex_lock(&c->mu);
    if (c->n < 256) {
        c->rows[c->n] = *a;
        snprintf(c->errors[c->n], 256, "%s", a->error ? a->error : "");
        c->rows[c->n].event_id = c->rows[c->n].event_type = c->rows[c->n].endpoint_id = NULL;
        c->rows[c->n].url = c->rows[c->n].response_body = NULL;
        c->rows[c->n].error = NULL;
        c->n++;
    }
    pthread_mutex_unlock(&c->mu);
}

static wh_ctx *make_ctx(const char *const *settings, attempts *log, fake_clock *clock)
{
    wh_conf *c = wh_conf_new();
    char err[256];
    /* the receivers live on loopback, which the address guard refuses by default */
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    for (const char *const *s = settings; s && *s; s += 2)
        ck_assert_msg(wh_conf_set(c, s[0], s[1], err, sizeof err) == WH_OK, "%s", err);
    if (log) {
        pthread_mutex_init(&log->mu, NULL);
        wh_conf_add_log_sink(c, &(wh_log_sink){.write = keep_attempt, .ud = log});
    }
    if (clock)
        wh_conf_set_clock(c, fake_clock_now, clock);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

static void add(wh_ctx *ctx, rcv *r, const char *path, const char *const *types, const char *secret,
                char id[WH_ID_MAX])
{
    char url[256];
    rcv_url(r, path, url, sizeof url);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url, .event_types = types, .secret = secret}, id), WH_OK);
    if (secret)
        rcv_set_secret(r, path, secret);
}

static int emit(wh_ctx *ctx, const char *type, const char *run)
{
    bool task = strncmp(type, "task_run.", 9) == 0;
    return wh_emit(ctx, &(wh_event){.event_type = type, .run_id = run, .task_id = task ? "task_1" : NULL, .status = "ok"}, NULL);
}

START_TEST(each_endpoint_gets_exactly_what_it_subscribed_to)
{
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    wh_ctx *ctx = make_ctx(NULL, NULL, NULL);
    const char *wf[] = {"workflow_run.*", NULL};
    const char *done[] = {"task_run.completed", NULL};
    char a[WH_ID_MAX], b[WH_ID_MAX], c[WH_ID_MAX];
    add(ctx, r, "/workflows", wf, secret_a, a);
    add(ctx, r, "/completed", done, secret_b, b);
    add(ctx, r, "/all", NULL, secret_a, c);
    const char *types[] = {"workflow_run.started", "task_run.started", "task_run.completed",
                           "task_run.cancelled", "workflow_run.completed", "workflow_run.failed"};
    for (int i = 0; i < 6; i++)
        emit(ctx, types[i], "run_1");
    ck_assert_int_eq(wh_flush(ctx, 10000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/workflows"), 3);
    ck_assert_uint_eq(rcv_count(r, "/completed"), 1);
    ck_assert_uint_eq(rcv_count(r, "/all"), 6);
    ck_assert_uint_eq(rcv_bad_signatures(r), 0);
    for (size_t i = 0; i < rcv_count(r, NULL); i++) {
        rcv_request q;
        ck_assert_int_eq(rcv_get(r, i, &q), 0);
        ck_assert_int_eq(q.signature_ok, 1);
        ck_assert_str_eq(q.content_type, "application/json");
        ck_assert_str_eq(q.user_agent, "libwebhook/" WH_VERSION_STRING);
        cJSON *o = cJSON_Parse(q.body);
        ck_assert_ptr_nonnull(o);
        const char *type = cJSON_GetObjectItem(o, "event_type")->valuestring;
        ck_assert_str_eq(cJSON_GetObjectItem(o, "id")->valuestring, q.webhook_id);
        if (strcmp(q.path, "/workflows") == 0)
            ck_assert_int_eq(strncmp(type, "workflow_run.", 13), 0);
        if (strcmp(q.path, "/completed") == 0)
            ck_assert_str_eq(type, "task_run.completed");
        cJSON_Delete(o);
        rcv_request_free(&q);
    }
    wh_stats_info st;
    wh_stats(ctx, &st);
    ck_assert_uint_eq(st.delivered, 10);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

START_TEST(two_failures_then_success_same_id_fresh_timestamps)
{
    rcv *r = rcv_start();
    rcv_script(r, "/flaky", (rcv_rule[]){{.status = 500}, {.status = 500}}, 2, (rcv_rule){.status = 200});
    fake_clock clock = {.now_ms = (int64_t)time(NULL) * 1000};
    attempts log = {0};
    const char *set[] = {"retry.jitter", "0", NULL};
    wh_ctx *ctx = make_ctx(set, &log, &clock);
    char ep[WH_ID_MAX];
    add(ctx, r, "/flaky", NULL, NULL, ep);
    ck_assert_int_eq(emit(ctx, "task_run.completed", "run_9"), 1);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    clock.now_ms += 5000;
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    clock.now_ms += 300000;
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/flaky"), 3);
    ck_assert_uint_eq(log.n, 3);
    ck_assert_int_eq(log.rows[0].outcome, WH_OUTCOME_RETRYING);
    ck_assert_int_eq(log.rows[1].outcome, WH_OUTCOME_RETRYING);
    ck_assert_int_eq(log.rows[2].outcome, WH_OUTCOME_DELIVERED);
    ck_assert_int_eq(log.rows[0].http_status, 500);
    ck_assert_int_eq(log.rows[2].http_status, 200);
    rcv_request q[3];
    for (int i = 0; i < 3; i++) {
        rcv_get(r, (size_t)i, &q[i]);
        ck_assert_int_eq(wh_verify(secret_a, q[i].webhook_id, q[i].webhook_timestamp, q[i].webhook_signature,
                                   q[i].body, q[i].body_len, atoll(q[i].webhook_timestamp), 0),
                         WH_ERR_SIGNATURE); /* a generated secret, not secret_a */
    }
    ck_assert_str_eq(q[0].webhook_id, q[1].webhook_id);
    ck_assert_str_eq(q[1].webhook_id, q[2].webhook_id);
    ck_assert_int_lt(atoll(q[0].webhook_timestamp), atoll(q[1].webhook_timestamp));
    ck_assert_int_lt(atoll(q[1].webhook_timestamp), atoll(q[2].webhook_timestamp));
    ck_assert_str_eq(q[0].body, q[2].body);
    for (int i = 0; i < 3; i++)
        rcv_request_free(&q[i]);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

START_TEST(gone_retry_after_redirect_timeout_refused_and_exhaustion)
{
    rcv *r = rcv_start();
    rcv_script(r, "/gone", NULL, 0, (rcv_rule){.status = 410});
    rcv_script(r, "/busy", (rcv_rule[]){{.status = 429, .retry_after = "7"}}, 1, (rcv_rule){.status = 204});
    rcv_script(r, "/moved", NULL, 0, (rcv_rule){.status = 302, .location = "/elsewhere"});
    rcv_script(r, "/slow", NULL, 0, (rcv_rule){.status = 204, .delay_ms = 1500});
    fake_clock clock = {.now_ms = (int64_t)time(NULL) * 1000};
    attempts log = {0};
    const char *set[] = {"retry.jitter", "0", "retry.schedule", "1s,2s", "http.timeout_ms", "300", NULL};
    wh_ctx *ctx = make_ctx(set, &log, &clock);
    char gone[WH_ID_MAX], busy[WH_ID_MAX], moved[WH_ID_MAX], slow[WH_ID_MAX], refused[WH_ID_MAX];
    const char *t1[] = {"workflow_run.started", NULL}, *t2[] = {"workflow_run.completed", NULL},
               *t3[] = {"workflow_run.failed", NULL}, *t4[] = {"task_run.started", NULL},
               *t5[] = {"task_run.cancelled", NULL};
    add(ctx, r, "/gone", t1, NULL, gone);
    add(ctx, r, "/busy", t2, NULL, busy);
    add(ctx, r, "/moved", t3, NULL, moved);
    add(ctx, r, "/slow", t4, NULL, slow);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/nothing", closed_port());
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url, .event_types = t5}, refused), WH_OK);

    emit(ctx, "workflow_run.started", "r");
    emit(ctx, "workflow_run.completed", "r");
    emit(ctx, "workflow_run.failed", "r");
    emit(ctx, "task_run.started", "r");
    emit(ctx, "task_run.cancelled", "r");
    ck_assert_int_eq(wh_flush(ctx, 10000), WH_OK);
    ck_assert_uint_eq(log.n, 5);
    for (size_t i = 0; i < log.n; i++) {
        wh_attempt *a = &log.rows[i];
        if (a->http_status == 410) {
            ck_assert_int_eq(a->outcome, WH_OUTCOME_FAILED);
        } else if (a->http_status == 429) {
            ck_assert_int_eq(a->outcome, WH_OUTCOME_RETRYING);
            ck_assert_int_ge(a->next_attempt_ms - a->started_ms, 7000);
        } else if (a->http_status == 302) {
            ck_assert_int_eq(a->outcome, WH_OUTCOME_RETRYING);
            ck_assert_ptr_nonnull(strstr(log.errors[i], "redirect"));
        } else {
            ck_assert_int_eq(a->http_status, 0); /* timeout or refused */
            ck_assert_int_eq(a->outcome, WH_OUTCOME_RETRYING);
            ck_assert_str_ne(log.errors[i], "");
        }
    }
    ck_assert_uint_eq(rcv_count(r, "/elsewhere"), 0);
    wh_stats_info st;
    wh_stats(ctx, &st);
    ck_assert_uint_eq(st.endpoints_disabled, 1);

    /* 2 s later: the 429 waits for its 7 s; the others (1 s schedule) go again */
    clock.now_ms += 2000;
    ck_assert_int_eq(wh_flush(ctx, 10000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/busy"), 1);
    ck_assert_uint_eq(rcv_count(r, "/moved"), 2);
    clock.now_ms += 5000;
    ck_assert_int_eq(wh_flush(ctx, 10000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/busy"), 2);
    /* third attempt of the 1s,2s schedule is the last: then FAILED */
    clock.now_ms += 5000;
    ck_assert_int_eq(wh_flush(ctx, 10000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/moved"), 3);
    ck_assert_uint_eq(rcv_count(r, "/gone"), 1);
    wh_stats(ctx, &st);
    ck_assert_uint_eq(st.delivered, 1);
    ck_assert_uint_eq(st.failed, 4); /* gone, moved, slow, refused */
    ck_assert_uint_eq(st.pending, 0);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

START_TEST(dead_endpoint_does_not_delay_a_healthy_one)
{
    rcv *r = rcv_start();
    int port;
    int bh = blackhole_start(&port);
    ck_assert_int_ge(bh, 0);
    const char *set[] = {"http.timeout_ms", "20000", NULL};
    wh_ctx *ctx = make_ctx(set, NULL, NULL);
    char healthy[WH_ID_MAX], dead[WH_ID_MAX], url[128];
    add(ctx, r, "/healthy", NULL, NULL, healthy);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/dead", port);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url}, dead), WH_OK);
    for (int i = 0; i < 50; i++)
        emit(ctx, "task_run.completed", "r");
    /* bounded well below the 20 s request timeout the dead endpoint is stuck in */
    int64_t deadline = (int64_t)time(NULL) + 10;
    wh_stats_info st = {0};
    while (st.delivered < 50 && time(NULL) < deadline) {
        wh_poll(ctx, 100);
        wh_stats(ctx, &st);
    }
    ck_assert_uint_eq(rcv_count(r, "/healthy"), 50);
    ck_assert_uint_eq(st.delivered, 50);
    ck_assert_uint_eq(st.in_flight, 16); /* the dead one holds its own slots only */
    wh_destroy(ctx);
    blackhole_stop(bh);
    rcv_stop(r);
}
END_TEST

typedef struct {
    wh_ctx *ctx;
    int n;
    int failures;
} emitter;

static void *emit_many(void *arg)
{
    emitter *e = arg;
    for (int i = 0; i < e->n; i++)
        if (emit(e->ctx, "task_run.completed", "threaded") != 1)
            e->failures++;
    return NULL;
}

typedef struct {
    wh_ctx *ctx;
    rcv *r;
    size_t want;
} driver;

static void *drive(void *arg)
{
    driver *d = arg;
    int64_t deadline = (int64_t)time(NULL) + 120;
    while (time(NULL) < deadline) {
        wh_poll(d->ctx, 50);
        wh_stats_info st;
        wh_stats(d->ctx, &st);
        if (st.delivered >= d->want)
            break;
    }
    return NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* WH_TEST_EMITS_PER_THREAD scales the load down (make test-tsan and test-valgrind use 500);
 * the threads, the driver and every check stay the same. */
static int emits_per_thread(void)
{
    const char *v = getenv("WH_TEST_EMITS_PER_THREAD");
    int n = v ? atoi(v) : 0;
    return n > 0 ? n : 10000;
}

START_TEST(four_threads_emit_while_one_drives_exactly_once_each)
{
    enum { THREADS = 4 };
    const int PER = emits_per_thread();
    rcv *r = rcv_start();
    wh_ctx *ctx = make_ctx(NULL, NULL, NULL);
    char ep[WH_ID_MAX];
    add(ctx, r, "/many", NULL, NULL, ep);
    pthread_t drv, th[THREADS];
    driver d = {.ctx = ctx, .r = r, .want = THREADS * PER};
    emitter e[THREADS];
    pthread_create(&drv, NULL, drive, &d);
    for (int i = 0; i < THREADS; i++) {
        e[i] = (emitter){.ctx = ctx, .n = PER};
        pthread_create(&th[i], NULL, emit_many, &e[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(e[i].failures, 0);
    }
    pthread_join(drv, NULL);
    ck_assert(rcv_wait(r, "/many", THREADS * PER, 5000));
    size_t n = rcv_count(r, NULL);
    ck_assert_uint_eq(n, THREADS * PER);
    char **ids = calloc(n, sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        rcv_request q;
        rcv_get(r, i, &q);
        ids[i] = strdup(q.webhook_id);
        rcv_request_free(&q);
    }
    qsort(ids, n, sizeof *ids, cmp_str);
    for (size_t i = 1; i < n; i++)
        ck_assert_str_ne(ids[i - 1], ids[i]);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    wh_stats_info st;
    wh_stats(ctx, &st);
    ck_assert_uint_eq(st.delivered, THREADS * PER);
    ck_assert_uint_eq(st.emitted, THREADS * PER);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

static void drive_mode_setup(rcv **r, wh_ctx **ctx)
{
    *r = rcv_start();
    *ctx = make_ctx(NULL, NULL, NULL);
    char ep[WH_ID_MAX];
    add(*ctx, *r, "/mode", NULL, secret_a, ep);
    for (int i = 0; i < 20; i++)
        emit(*ctx, "workflow_run.started", "r");
}

START_TEST(drive_with_poll_loop)
{
    rcv *r;
    wh_ctx *ctx;
    drive_mode_setup(&r, &ctx);
    int done = 0;
    for (int i = 0; i < 200 && done < 20; i++) {
        int k = wh_poll(ctx, 100);
        ck_assert_int_ge(k, 0);
        done += k;
    }
    ck_assert_int_eq(done, 20);
    ck_assert_uint_eq(rcv_count(r, "/mode"), 20);
    ck_assert_uint_eq(rcv_bad_signatures(r), 0);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

START_TEST(drive_with_fd_in_own_epoll)
{
    rcv *r;
    wh_ctx *ctx;
    drive_mode_setup(&r, &ctx);
    int ep = epoll_create1(0);
    int fd = wh_fd(ctx);
    ck_assert_int_ge(fd, 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
    int done = 0;
    for (int i = 0; i < 1000 && done < 20; i++) {
        int t = wh_timeout_ms(ctx);
        struct epoll_event out;
        epoll_wait(ep, &out, 1, t < 0 || t > 100 ? 100 : t);
        int k = wh_poll(ctx, 0);
        ck_assert_int_ge(k, 0);
        done += k;
    }
    ck_assert_int_eq(done, 20);
    ck_assert_uint_eq(rcv_count(r, "/mode"), 20);
    /* nothing left: the fd goes quiet */
    struct epoll_event out;
    wh_poll(ctx, 0);
    ck_assert_int_eq(epoll_wait(ep, &out, 1, 50), 0);
    ck_assert_int_eq(wh_timeout_ms(ctx), -1);
    close(ep);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

START_TEST(drive_with_own_thread)
{
    rcv *r;
    wh_ctx *ctx;
    drive_mode_setup(&r, &ctx);
    ck_assert_int_eq(wh_start(ctx), WH_OK);
    ck_assert_int_eq(wh_start(ctx), WH_ERR_STATE);
    ck_assert_int_eq(wh_poll(ctx, 0), WH_ERR_STATE);
    ck_assert_int_eq(wh_flush(ctx, 0), WH_ERR_STATE);
    ck_assert_int_eq(wh_fd(ctx), WH_ERR_STATE);
    ck_assert(rcv_wait(r, "/mode", 20, 10000));
    for (int i = 0; i < 5; i++)
        emit(ctx, "workflow_run.completed", "r");
    ck_assert_int_eq(wh_stop(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/mode"), 25);
    ck_assert_int_eq(wh_stop(ctx, 0), WH_ERR_STATE);
    ck_assert_int_ge(wh_poll(ctx, 0), 0);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

START_TEST(log_file_has_one_json_line_per_attempt)
{
    rcv *r = rcv_start();
    char path[] = "/tmp/wh-log-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    const char *set[] = {"log.file", path, NULL};
    wh_ctx *ctx = make_ctx(set, NULL, NULL);
    char ep[WH_ID_MAX];
    rcv_script(r, "/x", (rcv_rule[]){{.status = 500}}, 1, (rcv_rule){.status = 200});
    add(ctx, r, "/x", NULL, secret_a, ep);
    emit(ctx, "workflow_run.started", "r");
    emit(ctx, "workflow_run.started", "r");
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    wh_destroy(ctx);
    FILE *f = fopen(path, "r");
    char line[4096];
    int n = 0, retrying = 0, delivered = 0, destroyed = 0;
    while (fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        ck_assert_ptr_nonnull(o);
        ck_assert_str_eq(cJSON_GetObjectItem(o, "endpoint_id")->valuestring, ep);
        const char *outcome = cJSON_GetObjectItem(o, "outcome")->valuestring;
        retrying += strcmp(outcome, "retrying") == 0;
        delivered += strcmp(outcome, "delivered") == 0;
        destroyed += strcmp(outcome, "failed") == 0 && strstr(line, "\"destroyed\"");
        ck_assert_ptr_null(strstr(line, "whsec_")); /* secrets never reach the log */
        cJSON_Delete(o);
        n++;
    }
    fclose(f);
    unlink(path);
    /* the retry was not due yet when the context went away: reported, not dropped */
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(retrying, 1);
    ck_assert_int_eq(delivered, 1);
    ck_assert_int_eq(destroyed, 1);
    rcv_stop(r);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("delivery");
    TCase *tc = tcase_create("delivery");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, each_endpoint_gets_exactly_what_it_subscribed_to);
    tcase_add_test(tc, two_failures_then_success_same_id_fresh_timestamps);
    tcase_add_test(tc, gone_retry_after_redirect_timeout_refused_and_exhaustion);
    tcase_add_test(tc, dead_endpoint_does_not_delay_a_healthy_one);
    tcase_add_test(tc, four_threads_emit_while_one_drives_exactly_once_each);
    tcase_add_test(tc, drive_with_poll_loop);
    tcase_add_test(tc, drive_with_fd_in_own_epoll);
    tcase_add_test(tc, drive_with_own_thread);
    tcase_add_test(tc, log_file_has_one_json_line_per_attempt);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
