/* Metrics: the per-endpoint counters count what a real receiver answered, the gauges show
 * what waits and what is on the wire, and both Prometheus texts (wh_metrics_write and
 * `webhookctl metrics` on the store) pass Prometheus's own `promtool check metrics` and
 * say the same. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pg_fixture.h"
#include "support.h"
#include "webhook/webhook.h"

static const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
static char dir[256];

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "%s/whmetrics.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

/* ---- a context, its endpoints, and the metrics it reports ------------------------------- */

static wh_ctx *engine(const char *store, const char *schedule)
{
    char err[256];
    wh_conf *c = wh_conf_new();
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "retry.schedule", schedule, err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "retry.jitter", "0", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "http.timeout_ms", "30000", err, sizeof err), WH_OK);
    if (store)
        ck_assert_int_eq(wh_conf_set(c, "store", store, err, sizeof err), WH_OK);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

static void add(wh_ctx *ctx, const char *url, int disabled, char id[WH_ID_MAX])
{
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url, .secret = secret,
                                                               .disabled = disabled}, id), WH_OK);
}

static void add_path(wh_ctx *ctx, rcv *r, const char *path, char id[WH_ID_MAX])
{
    char url[256];
    add(ctx, rcv_url(r, path, url, sizeof url), 0, id);
    rcv_set_secret(r, path, secret);
}

static void emit(wh_ctx *ctx)
{
    ck_assert_int_ge(wh_emit(ctx, &(wh_event){.event_type = "workflow_run.started",
                                              .run_id = "run_1", .status = "running"}, NULL), 0);
}

typedef struct snap {
    char id[WH_ID_MAX];
    int found, enabled;
    uint64_t delivered, failed, skipped, retrying, attempts, pending, in_flight;
    uint64_t by_class[WH_STATUS_CLASSES];
    size_t buckets;
    int64_t le_us[64];
    uint64_t count[64];
    int64_t sum_us, last_success_ms;
} snap;

static void take(void *ud, const wh_endpoint_metrics *m)
{
    snap *s = ud;
    if (strcmp(m->endpoint_id, s->id) != 0)
        return;
    s->found++;
    s->enabled = m->enabled;
    s->delivered = m->delivered, s->failed = m->failed, s->skipped = m->skipped;
    s->retrying = m->retrying, s->attempts = m->attempts;
    s->pending = m->pending, s->in_flight = m->in_flight;
    memcpy(s->by_class, m->attempts_by_class, sizeof s->by_class);
    ck_assert_uint_le(m->latency_buckets, 64);
    s->buckets = m->latency_buckets;
    memcpy(s->le_us, m->latency_le_us, m->latency_buckets * sizeof *s->le_us);
    memcpy(s->count, m->latency_count, m->latency_buckets * sizeof *s->count);
    s->sum_us = m->latency_sum_us;
    s->last_success_ms = m->last_success_ms;
}

static snap metrics_of(wh_ctx *ctx, const char *id)
{
    snap s = {0};
    snprintf(s.id, sizeof s.id, "%s", id);
    ck_assert_int_ge(wh_metrics_list(ctx, take, &s), 1);
    ck_assert_int_eq(s.found, 1);
    return s;
}

/* Drives until every endpoint's deliveries have ended (bounded). */
static void drive_until_settled(wh_ctx *ctx, uint64_t finished)
{
    int64_t deadline = wall_ms() + 20000;
    wh_stats_info st = {0};
    while (wall_ms() < deadline &&
           (wh_stats(ctx, &st), st.delivered + st.failed + st.skipped < finished))
        wh_poll(ctx, 20);
    ck_assert_uint_eq(st.delivered + st.failed + st.skipped, finished);
    ck_assert_int_eq(wh_flush(ctx, 10000), WH_OK);
}

static void expect_counts(const snap *s, uint64_t delivered, uint64_t failed, uint64_t skipped,
                          uint64_t retrying, uint64_t attempts)
{
    ck_assert_msg(s->delivered == delivered && s->failed == failed && s->skipped == skipped &&
                      s->retrying == retrying && s->attempts == attempts,
                  "%s: delivered %llu failed %llu skipped %llu retrying %llu attempts %llu", s->id,
                  (unsigned long long)s->delivered, (unsigned long long)s->failed,
                  (unsigned long long)s->skipped, (unsigned long long)s->retrying,
                  (unsigned long long)s->attempts);
}

/* The histogram holds every attempt once: cumulative, ascending bounds, total = attempts. */
static void expect_histogram_whole(const snap *s)
{
    ck_assert_uint_gt(s->buckets, 0);
    for (size_t i = 1; i < s->buckets; i++) {
        ck_assert_int_gt(s->le_us[i], s->le_us[i - 1]);
        ck_assert_uint_ge(s->count[i], s->count[i - 1]);
    }
    ck_assert_uint_le(s->count[s->buckets - 1], s->attempts);
    uint64_t by_class = 0;
    for (int k = 0; k < WH_STATUS_CLASSES; k++)
        by_class += s->by_class[k];
    ck_assert_uint_eq(by_class, s->attempts);
}

/* Five endpoints, each answered its own way, two events each. */
typedef struct scenario {
    rcv *r;
    char ok[WH_ID_MAX], flaky[WH_ID_MAX], gone[WH_ID_MAX], slow[WH_ID_MAX], refused[WH_ID_MAX],
        off[WH_ID_MAX];
} scenario;

static void scenario_run(wh_ctx *ctx, scenario *sc)
{
    sc->r = rcv_start();
    ck_assert_ptr_nonnull(sc->r);
    /* /flaky: 500 and 503 to the two first attempts (sent at once), 200 to both retries; /gone:
     * 410 (given up at once, disabled);
     * /slow: 200 after 120 ms; a refused port: no response, given up after the schedule */
    rcv_rule flaky[] = {{.status = 500}, {.status = 503}};
    rcv_script(sc->r, "/flaky", flaky, 2, (rcv_rule){.status = 200});
    rcv_script(sc->r, "/gone", NULL, 0, (rcv_rule){.status = 410});
    rcv_script(sc->r, "/slow", NULL, 0, (rcv_rule){.status = 200, .delay_ms = 120});
    add_path(ctx, sc->r, "/ok", sc->ok);
    add_path(ctx, sc->r, "/flaky", sc->flaky);
    add_path(ctx, sc->r, "/gone", sc->gone);
    add_path(ctx, sc->r, "/slow", sc->slow);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/nothing", closed_port());
    add(ctx, url, 0, sc->refused);
    add(ctx, "http://127.0.0.1:1/off", 1, sc->off);
    emit(ctx);
    emit(ctx);
    drive_until_settled(ctx, 12);
    ck_assert_uint_eq(rcv_bad_signatures(sc->r), 0);
}

/* Once everything has ended, nothing waits and nothing is on the wire. */
static void expect_idle(const snap *s)
{
    ck_assert_msg(s->pending == 0 && s->in_flight == 0, "%s: pending %llu in flight %llu", s->id,
                  (unsigned long long)s->pending, (unsigned long long)s->in_flight);
}

START_TEST(counters_count_what_the_receiver_answered)
{
    wh_ctx *ctx = engine(NULL, "20ms,20ms");
    scenario sc;
    int64_t before = wall_ms();
    scenario_run(ctx, &sc);
    int64_t after = wall_ms();

    snap s = metrics_of(ctx, sc.ok);
    expect_counts(&s, 2, 0, 0, 0, 2);
    expect_idle(&s);
    ck_assert_uint_eq(s.by_class[2], 2);
    ck_assert(s.last_success_ms >= before && s.last_success_ms <= after);
    ck_assert_int_eq(s.enabled, 1);
    expect_histogram_whole(&s);

    s = metrics_of(ctx, sc.flaky);
    expect_counts(&s, 2, 0, 0, 2, 4);
    expect_idle(&s);
    ck_assert_uint_eq(s.by_class[5], 2);
    ck_assert_uint_eq(s.by_class[2], 2);
    expect_histogram_whole(&s);

    /* both events went out at once; each 410 gives up (and disables the endpoint) */
    s = metrics_of(ctx, sc.gone);
    expect_counts(&s, 0, 2, 0, 0, 2);
    ck_assert_uint_eq(s.by_class[4], 2);
    ck_assert_int_eq(s.last_success_ms, 0);
    ck_assert_int_eq(s.enabled, 0);

    /* each attempt took at least the receiver's 120 ms: none in a bucket below that */
    s = metrics_of(ctx, sc.slow);
    expect_counts(&s, 2, 0, 0, 0, 2);
    expect_histogram_whole(&s);
    for (size_t i = 0; i < s.buckets; i++)
        if (s.le_us[i] < 120000)
            ck_assert_uint_eq(s.count[i], 0);
    ck_assert_int_ge(s.sum_us, 2 * 120000);

    s = metrics_of(ctx, sc.refused);
    expect_counts(&s, 0, 2, 0, 4, 6);
    expect_idle(&s);
    ck_assert_uint_eq(s.by_class[0], 6);
    expect_histogram_whole(&s);

    /* disabled before the emit: skipped, never attempted */
    s = metrics_of(ctx, sc.off);
    expect_counts(&s, 0, 0, 2, 0, 0);
    expect_idle(&s);
    ck_assert_uint_eq(s.count[s.buckets - 1], 0);
    ck_assert_int_eq(s.sum_us, 0);

    /* the per-endpoint counters add up to the context's */
    wh_stats_info st;
    ck_assert_int_eq(wh_stats(ctx, &st), WH_OK);
    ck_assert_uint_eq(st.delivered, 6);
    ck_assert_uint_eq(st.failed, 4);
    ck_assert_uint_eq(st.skipped, 2);
    ck_assert_uint_eq(st.attempts, 2 + 4 + 2 + 2 + 6);
    wh_destroy(ctx);
    rcv_stop(sc.r);
}
END_TEST

START_TEST(gauges_show_what_waits_and_what_is_on_the_wire)
{
    wh_ctx *ctx = engine(NULL, "1h");
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    rcv_script(r, "/down", NULL, 0, (rcv_rule){.status = 500});
    int port;
    int bh = blackhole_start(&port);
    ck_assert_int_ge(bh, 0);
    char down[WH_ID_MAX], hang[WH_ID_MAX], url[128];
    add_path(ctx, r, "/down", down);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hang", port);
    add(ctx, url, 0, hang);

    emit(ctx);
    emit(ctx);
    emit(ctx);
    snap s = metrics_of(ctx, down);
    ck_assert_uint_eq(s.pending, 3);
    ck_assert_uint_eq(s.in_flight, 0);

    /* /down answers 500 to each first attempt and waits an hour for the retry; the black
     * hole holds every request on the wire */
    int64_t deadline = wall_ms() + 20000;
    snap h = {0};
    while (wall_ms() < deadline) {
        wh_poll(ctx, 20);
        s = metrics_of(ctx, down);
        h = metrics_of(ctx, hang);
        if (s.retrying == 3 && h.in_flight == 3)
            break;
    }
    expect_counts(&s, 0, 0, 0, 3, 3);
    ck_assert_uint_eq(s.pending, 3);
    ck_assert_uint_eq(s.in_flight, 0);
    ck_assert_uint_eq(h.in_flight, 3);
    ck_assert_uint_eq(h.pending, 0);
    ck_assert_uint_eq(h.attempts, 0);

    /* removing an endpoint ends its series */
    ck_assert_int_eq(wh_endpoint_remove(ctx, down), WH_OK);
    snap gone = {0};
    snprintf(gone.id, sizeof gone.id, "%s", down);
    ck_assert_int_eq(wh_metrics_list(ctx, take, &gone), 1);
    ck_assert_int_eq(gone.found, 0);
    wh_destroy(ctx);
    blackhole_stop(bh);
    rcv_stop(r);
}
END_TEST

/* ---- the Prometheus text, checked by promtool --------------------------------------------- */

typedef struct output {
    int status;
    char *out, *err;
} output;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap);
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0)
        if ((n += got) == cap - 1)
            buf = realloc(buf, cap *= 2);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Runs argv with stdin from in_path (or /dev/null), bounded in time. */
static output run(const char *const *argv, const char *in_path)
{
    char out_path[300], err_path[300];
    snprintf(out_path, sizeof out_path, "%s/stdout", dir);
    snprintf(err_path, sizeof err_path, "%s/stderr", dir);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int i = open(in_path ? in_path : "/dev/null", O_RDONLY),
            o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600),
            e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (i < 0 || o < 0 || e < 0 || dup2(i, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(126);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    int64_t deadline = wall_ms() + 60000;
    pid_t w;
    while ((w = waitpid(pid, &st, WNOHANG)) == 0 && wall_ms() < deadline)
        usleep(2000);
    if (w == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        ck_abort_msg("%s did not finish within 60 s", argv[0]);
    }
    output r = {.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1};
    r.out = slurp(out_path);
    r.err = slurp(err_path);
    ck_assert_msg(r.status != 127, "could not run %s (promtool comes with the Debian package "
                                   "prometheus: make deps)", argv[0]);
    return r;
}

/* promtool reads the text on stdin; it fails on a format error and on any lint problem
 * (names, units, counters' _total, HELP). */
static void promtool_accepts(const char *text)
{
    char path[300];
    snprintf(path, sizeof path, "%s/metrics.txt", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    output r = run((const char *[]){"promtool", "check", "metrics", NULL}, path);
    if (r.status != 0 || *r.out || *r.err)
        fprintf(stderr, "promtool check metrics on:\n%s", text);
    ck_assert_msg(r.status == 0 && !*r.out && !*r.err, "promtool check metrics exited %d:\n%.1500s%.1500s",
                  r.status, r.out, r.err);
    free(r.out);
    free(r.err);
}

static char *metrics_text(wh_ctx *ctx)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(wh_metrics_write(ctx, f), WH_OK);
    fclose(f);
    return buf;
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p += n)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

static void expect_line(const char *text, const char *fmt, const char *id, const char *value)
{
    char line[512];
    snprintf(line, sizeof line, fmt, id, value);
    if (!has_line(text, line))
        fprintf(stderr, "%s", text);
    ck_assert_msg(has_line(text, line), "no line \"%s\" in the text above", line);
}

START_TEST(prometheus_text_passes_promtool)
{
    wh_ctx *ctx = engine(NULL, "20ms,20ms");
    /* no endpoint yet: the families alone */
    char *text = metrics_text(ctx);
    promtool_accepts(text);
    ck_assert(has_line(text, "# TYPE webhook_deliveries_total counter"));
    free(text);

    scenario sc;
    scenario_run(ctx, &sc);
    text = metrics_text(ctx);
    promtool_accepts(text);
    ck_assert(has_line(text, "webhook_events_emitted_total 2"));
    expect_line(text, "webhook_deliveries_total{endpoint=\"%s\",outcome=\"delivered\"} %s", sc.flaky, "2");
    expect_line(text, "webhook_retries_total{endpoint=\"%s\"} %s", sc.flaky, "2");
    expect_line(text, "webhook_attempts_total{endpoint=\"%s\",status_class=\"5xx\"} %s", sc.flaky, "2");
    expect_line(text, "webhook_attempts_total{endpoint=\"%s\",status_class=\"2xx\"} %s", sc.flaky, "2");
    expect_line(text, "webhook_deliveries_total{endpoint=\"%s\",outcome=\"failed\"} %s", sc.gone, "2");
    expect_line(text, "webhook_endpoint_enabled{endpoint=\"%s\"} %s", sc.gone, "0");
    expect_line(text, "webhook_deliveries_total{endpoint=\"%s\",outcome=\"skipped\"} %s", sc.off, "2");
    expect_line(text, "webhook_attempts_total{endpoint=\"%s\",status_class=\"none\"} %s", sc.refused, "6");
    expect_line(text, "webhook_attempt_duration_seconds_bucket{endpoint=\"%s\",le=\"0.1\"} %s", sc.slow, "0");
    expect_line(text, "webhook_attempt_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %s", sc.slow, "2");
    expect_line(text, "webhook_attempt_duration_seconds_count{endpoint=\"%s\"} %s", sc.slow, "2");
    expect_line(text, "webhook_pending_deliveries{endpoint=\"%s\"} %s", sc.ok, "0");
    expect_line(text, "webhook_in_flight_requests{endpoint=\"%s\"} %s", sc.ok, "0");
    expect_line(text, "webhook_last_success_timestamp_seconds{endpoint=\"%s\"} %s", sc.gone, "0.000");
    free(text);
    wh_destroy(ctx);
    rcv_stop(sc.r);
}
END_TEST

/* The sample lines of a text, minus those only an engine knows or that it times itself. */
static char *comparable(const char *text)
{
    size_t len = strlen(text);
    char *out = malloc(len + 1), *o = out;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p + 1) : strlen(p);
        bool skip = *p == '#' || strncmp(p, "webhook_in_flight_requests", 26) == 0 ||
                    strncmp(p, "webhook_last_success_timestamp_seconds", 38) == 0;
        if (!skip) {
            memcpy(o, p, n);
            o += n;
        }
        p += n;
    }
    *o = '\0';
    return out;
}

/* The path of webhookctl, built by make. */
static void webhookctl_path(char *ctl, size_t len)
{
    const char *root = getenv("WH_TEST_ROOT"), *bin = getenv("WH_WEBHOOKCTL");
    snprintf(ctl, len, "%s", bin && *bin ? bin : "build/bin/webhookctl");
    if (!(bin && *bin) && root && *root)
        snprintf(ctl, len, "%s/build/bin/webhookctl", root);
    ck_assert_msg(access(ctl, X_OK) == 0, "%s is missing: make build/bin/webhookctl", ctl);
}

/* The scenario on an engine with `store`, then `webhookctl -s STORE metrics` (argv from
 * ctl_args, NULL-terminated after the program): the same text but for what only an engine
 * knows. */
static void store_metrics_match_the_engine(const char *store, const char *const *ctl_args)
{
    char ctl[1024];
    webhookctl_path(ctl, sizeof ctl);
    wh_ctx *ctx = engine(store, "20ms,20ms");
    scenario sc;
    scenario_run(ctx, &sc);
    char *engine_text = metrics_text(ctx);
    wh_destroy(ctx); /* every outcome committed */

    const char *argv[16] = {ctl};
    size_t k = 1;
    for (const char *const *a = ctl_args; *a && k < 14; a++)
        argv[k++] = *a;
    argv[k++] = "metrics";
    argv[k] = NULL;
    output r = run(argv, NULL);
    ck_assert_msg(r.status == 0 && !*r.err, "webhookctl metrics exited %d: %s", r.status, r.err);
    promtool_accepts(r.out);
    ck_assert_msg(!strstr(r.out, "webhook_in_flight_requests"), "a store knows nothing on the wire");
    expect_line(r.out, "webhook_deliveries_total{endpoint=\"%s\",outcome=\"delivered\"} %s", sc.flaky, "2");
    /* the store times a success by its commit, so only its presence is compared */
    expect_line(r.out, "webhook_last_success_timestamp_seconds{endpoint=\"%s\"} %s", sc.gone, "0.000");
    char ok_prefix[200];
    snprintf(ok_prefix, sizeof ok_prefix, "webhook_last_success_timestamp_seconds{endpoint=\"%s\"} 1", sc.ok);
    ck_assert_msg(strstr(r.out, ok_prefix), "no success time for %s:\n%s", sc.ok, r.out);
    char *a = comparable(engine_text), *b = comparable(r.out);
    if (strcmp(a, b) != 0)
        fprintf(stderr, "the engine said:\n%s\nthe store says:\n%s", a, b);
    ck_assert_msg(strcmp(a, b) == 0, "the store's metrics differ from the engine's");
    free(a);
    free(b);
    free(engine_text);
    free(r.out);
    free(r.err);
    rcv_stop(sc.r);
}

START_TEST(webhookctl_metrics_reads_the_same_from_the_store)
{
    char store[400], store_url[420];
    snprintf(store, sizeof store, "%s/webhooks.db", dir);
    snprintf(store_url, sizeof store_url, "sqlite:%s", store);
    store_metrics_match_the_engine(store_url, (const char *[]){"-s", store, NULL});
}
END_TEST

START_TEST(webhookctl_metrics_reads_the_same_from_a_postgresql_store)
{
    store_metrics_match_the_engine(cluster.conninfo,
                                   (const char *[]){"-s", cluster.conninfo, NULL});
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, counters_count_what_the_receiver_answered);
    tcase_add_test(tc, gauges_show_what_waits_and_what_is_on_the_wire);
    tcase_add_test(tc, prometheus_text_passes_promtool);
    tcase_add_test(tc, webhookctl_metrics_reads_the_same_from_the_store);
    suite_add_tcase(s, tc);
    /* a server of its own, stopped also when a test fails */
    TCase *pg = tcase_create("postgresql");
    tcase_add_unchecked_fixture(pg, pg_fixture_up, pg_fixture_down);
    tcase_add_checked_fixture(pg, setup, teardown);
    tcase_set_timeout(pg, 60);
    tcase_add_test(pg, webhookctl_metrics_reads_the_same_from_a_postgresql_store);
    suite_add_tcase(s, pg);
    return support_run_suite(s);
}
