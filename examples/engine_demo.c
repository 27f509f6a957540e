/* A small workflow engine that links libwebhook: it runs three workflow runs of three tasks
 * each, emits an event for every step, and delivers them to three endpoints on a local
 * receiver (see examples/receiver.c):
 *
 *   /hooks       every event ("*")                                healthy: 204
 *   /fail-twice  workflow_run.completed, workflow_run.failed      500, 500, then 204
 *   /gone        workflow_run.*                                   410: disabled at once
 *
 *   engine_demo --receiver http://127.0.0.1:PORT --secret whsec_... [--store SPEC]
 *
 * Run 2 has a failing task (task_run.failed, registered with event_types.extra) and so fails;
 * run 3 has a cancelled task. The retry schedule is shortened to 200ms,400ms,800ms so the
 * whole demo takes a couple of seconds. Every attempt goes to a log sink; at the end the
 * attempt log is printed as a table, then the totals of wh_stats. The exit status is 0 only
 * when every endpoint saw exactly what it should have (see check()); 2 on a usage error.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "webhook/webhook.h"

#define GIVE_UP_MS 20000 /* drive at most this long after the last event */
#define TASK_MS 40       /* how long each simulated step "works" (driving delivery meanwhile) */

/* ---- the endpoints --------------------------------------------------------------------- */

enum { EP_HOOKS, EP_FAIL_TWICE, EP_GONE, N_EPS };

static const char *const hooks_types[] = {"*", NULL};
static const char *const fail_twice_types[] = {"workflow_run.completed", "workflow_run.failed",
                                               NULL};
static const char *const gone_types[] = {"workflow_run.*", NULL};

static struct {
    const char *path;
    const char *const *types;
    const char *description;
    char id[WH_ID_MAX];
} eps[N_EPS] = {
    [EP_HOOKS] = {"/hooks", hooks_types, "healthy", ""},
    [EP_FAIL_TWICE] = {"/fail-twice", fail_twice_types, "fails twice per event, then recovers", ""},
    [EP_GONE] = {"/gone", gone_types, "answers 410 Gone", ""},
};

/* The demo's own reading of a subscription, to know what each endpoint should receive. */
static bool subscribed(int ep, const char *type)
{
    for (const char *const *s = eps[ep].types; *s; s++) {
        size_t n = strlen(*s);
        if (strcmp(*s, "*") == 0 || strcmp(*s, type) == 0 ||
            (n >= 2 && (*s)[n - 1] == '*' && strncmp(*s, type, n - 1) == 0))
            return true;
    }
    return false;
}

static int endpoint_index(const char *id)
{
    for (int i = 0; i < N_EPS; i++)
        if (strcmp(eps[i].id, id) == 0)
            return i;
    return -1;
}

/* ---- what the engine emitted and what the log sink saw ---------------------------------- */

typedef struct {
    char id[WH_ID_MAX];
    char type[WH_ID_MAX];
} emitted;

typedef struct {
    char event_id[WH_ID_MAX], event_type[WH_ID_MAX];
    int ep; /* index in eps, -1 when unknown */
    int attempt;
    wh_outcome outcome;
    int http_status;
    char error[160];
    int64_t started_ms, duration_us, next_ms;
} row;

static struct {
    emitted ev[64];
    size_t n_ev;
    row *rows;
    size_t n_rows, cap_rows;
    bool sink_closed;
    bool oom;
    int problems; /* unexpected things, counted as they are found */
    int64_t t0_ms;
} g;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void problem(const char *fmt, ...)
{
    if (++g.problems > 20) { /* the count at the end says how many there were */
        if (g.problems == 21)
            puts("UNEXPECTED: ... (more not shown)");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fputs("UNEXPECTED: ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

/* The log sink: runs on the driving thread (ours); the attempt is valid during the call only. */
static void sink_write(void *ud, const wh_attempt *a)
{
    (void)ud;
    if (g.n_rows == g.cap_rows) {
        size_t cap = g.cap_rows ? 2 * g.cap_rows : 64;
        row *v = realloc(g.rows, cap * sizeof *v);
        if (!v) {
            g.oom = true;
            return;
        }
        g.rows = v, g.cap_rows = cap;
    }
    row *r = &g.rows[g.n_rows++];
    memset(r, 0, sizeof *r);
    snprintf(r->event_id, sizeof r->event_id, "%s", a->event_id);
    snprintf(r->event_type, sizeof r->event_type, "%s", a->event_type);
    r->ep = endpoint_index(a->endpoint_id);
    r->attempt = a->attempt;
    r->outcome = a->outcome;
    r->http_status = a->http_status;
    snprintf(r->error, sizeof r->error, "%s", a->error ? a->error : "");
    r->started_ms = a->started_ms;
    r->duration_us = a->duration_us;
    r->next_ms = a->next_attempt_ms;
}

static void sink_close(void *ud)
{
    (void)ud;
    g.sink_closed = true;
}

/* ---- the engine ------------------------------------------------------------------------- */

/* Lets a step "work" for ms milliseconds while delivery goes on, as a host loop would. */
static void work(wh_ctx *wh, int ms)
{
    int64_t until = mono_ms() + ms;
    for (int64_t left; (left = until - mono_ms()) > 0;) {
        int rc = wh_poll(wh, (int)left);
        if (rc < 0) {
            problem("wh_poll: %s (%s)", wh_strerror(rc), wh_last_error());
            return;
        }
    }
}

static void emit(wh_ctx *wh, const char *type, const char *run_id, const char *task_id,
                 const char *status)
{
    char id[WH_ID_MAX] = "";
    int n = wh_emit(wh, &(wh_event){.event_type = type, .run_id = run_id, .task_id = task_id,
                                    .status = status},
                    id);
    printf("  +%5" PRId64 "ms  %-22s run=%s task=%-7s -> ", wall_ms() - g.t0_ms, type, run_id,
           task_id ? task_id : "-");
    if (n < 0) {
        printf("error\n");
        problem("wh_emit %s: %s (%s)", type, wh_strerror(n), wh_last_error());
        return;
    }
    printf("%s, %d deliver%s\n", id, n, n == 1 ? "y" : "ies");
    if (g.n_ev < sizeof g.ev / sizeof g.ev[0]) {
        snprintf(g.ev[g.n_ev].id, sizeof g.ev[g.n_ev].id, "%s", id);
        snprintf(g.ev[g.n_ev].type, sizeof g.ev[g.n_ev].type, "%s", type);
        g.n_ev++;
    } else {
        problem("more events than the demo keeps track of");
    }
}

typedef enum { T_COMPLETED, T_FAILED, T_CANCELLED, T_NOT_RUN } task_end;

static const struct {
    const char *run_id;
    task_end tasks[3];
} runs[] = {
    {"run_1", {T_COMPLETED, T_COMPLETED, T_COMPLETED}},
    {"run_2", {T_COMPLETED, T_FAILED, T_NOT_RUN}}, /* a task fails: the run fails */
    {"run_3", {T_COMPLETED, T_CANCELLED, T_COMPLETED}}, /* a task is cancelled, the run goes on */
};

static void run_workflows(wh_ctx *wh)
{
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        const char *run_id = runs[r].run_id;
        bool failed = false;
        emit(wh, "workflow_run.started", run_id, NULL, "running");
        work(wh, TASK_MS);
        for (size_t t = 0; t < 3 && !failed; t++) {
            if (runs[r].tasks[t] == T_NOT_RUN)
                continue;
            char task_id[16];
            snprintf(task_id, sizeof task_id, "task_%zu", t + 1);
            emit(wh, "task_run.started", run_id, task_id, "running");
            work(wh, TASK_MS);
            switch (runs[r].tasks[t]) {
            case T_COMPLETED:
                emit(wh, "task_run.completed", run_id, task_id, "completed");
                break;
            case T_FAILED:
                emit(wh, "task_run.failed", run_id, task_id, "failed");
                failed = true;
                break;
            case T_CANCELLED:
                emit(wh, "task_run.cancelled", run_id, task_id, "cancelled");
                break;
            case T_NOT_RUN:
                break;
            }
            work(wh, TASK_MS);
        }
        emit(wh, failed ? "workflow_run.failed" : "workflow_run.completed", run_id, NULL,
             failed ? "failed" : "completed");
        work(wh, TASK_MS);
    }
}

/* Drives until nothing is pending or in flight; false when it gave up. */
static bool drain(wh_ctx *wh)
{
    int64_t deadline = mono_ms() + GIVE_UP_MS;
    for (;;) {
        wh_stats_info st;
        if (wh_stats(wh, &st) != WH_OK) {
            problem("wh_stats failed");
            return false;
        }
        if (st.pending == 0 && st.in_flight == 0)
            break;
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            problem("gave up after %d s with %" PRIu64 " deliveries pending and %" PRIu64
                    " in flight",
                    GIVE_UP_MS / 1000, st.pending, st.in_flight);
            return false;
        }
        int rc = wh_poll(wh, left < 250 ? (int)left : 250);
        if (rc < 0) {
            problem("wh_poll: %s (%s)", wh_strerror(rc), wh_last_error());
            return false;
        }
    }
    /* nothing left: a flush returns at once and hands any last records to the sink */
    int rc = wh_flush(wh, 1000);
    if (rc != WH_OK) {
        problem("wh_flush: %s (%s)", wh_strerror(rc), wh_last_error());
        return false;
    }
    return true;
}

/* ---- the report ------------------------------------------------------------------------- */

static void print_table(void)
{
    printf("\nattempt log (%zu attempts, in the order the log sink received them)\n\n",
           g.n_rows);
    printf("%-12s %7s  %-22s %-14s %-11s %3s  %-9s %4s %8s  %s\n", "time (UTC)", "+ms",
           "event type", "event id", "endpoint", "try", "outcome", "http", "ms", "error");
    printf("%-12s %7s  %-22s %-14s %-11s %3s  %-9s %4s %8s  %s\n", "------------", "-------",
           "----------------------", "--------------", "-----------", "---", "---------", "----",
           "--------", "-----");
    for (size_t i = 0; i < g.n_rows; i++) {
        const row *r = &g.rows[i];
        time_t secs = (time_t)(r->started_ms / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        char hms[16], status[8], ms[16];
        strftime(hms, sizeof hms, "%H:%M:%S", &tm);
        snprintf(status, sizeof status, "%d", r->http_status);
        if (r->outcome == WH_OUTCOME_SKIPPED)
            snprintf(ms, sizeof ms, "-");
        else
            snprintf(ms, sizeof ms, "%.1f", (double)r->duration_us / 1000.0);
        char short_id[16];
        snprintf(short_id, sizeof short_id, "%.12s..", r->event_id);
        char retry[32] = "";
        if (r->outcome == WH_OUTCOME_RETRYING && r->next_ms)
            snprintf(retry, sizeof retry, "; next in %" PRId64 " ms", r->next_ms - r->started_ms);
        printf("%s.%03d %7" PRId64 "  %-22s %-14s %-11s %3d  %-9s %4s %8s  %s%s\n", hms,
               (int)(r->started_ms % 1000), r->started_ms - g.t0_ms, r->event_type, short_id,
               r->ep >= 0 ? eps[r->ep].path : "?", r->attempt, wh_outcome_name(r->outcome),
               r->http_status ? status : "-", ms, r->error[0] ? r->error : "-", retry);
    }
}

static void print_endpoint(void *ud, const wh_endpoint_info *ep)
{
    (void)ud;
    int i = endpoint_index(ep->id);
    char subs[160] = "";
    for (const char *const *s = ep->event_types; *s; s++)
        snprintf(subs + strlen(subs), sizeof subs - strlen(subs), "%s%s",
                 s == ep->event_types ? "" : ",", *s);
    printf("  %-11s %-46s %-8s %s\n", i >= 0 ? eps[i].path : ep->url, subs,
           ep->enabled ? "enabled" : "DISABLED", ep->disabled_reason ? ep->disabled_reason : "");
}

static const row *find_row(int ep, const char *event_id, int attempt)
{
    for (size_t i = 0; i < g.n_rows; i++)
        if (g.rows[i].ep == ep && g.rows[i].attempt == attempt &&
            strcmp(g.rows[i].event_id, event_id) == 0)
            return &g.rows[i];
    return NULL;
}

static size_t count_rows(int ep, const char *event_id)
{
    size_t n = 0;
    for (size_t i = 0; i < g.n_rows; i++)
        n += g.rows[i].ep == ep && strcmp(g.rows[i].event_id, event_id) == 0;
    return n;
}

static void expect(int ep, const emitted *e, int attempt, wh_outcome outcome, int status)
{
    const row *r = find_row(ep, e->id, attempt);
    if (!r)
        problem("%s %s %s: no attempt %d in the log", eps[ep].path, e->type, e->id, attempt);
    else if (r->outcome != outcome || r->http_status != status)
        problem("%s %s %s attempt %d: %s HTTP %d, expected %s HTTP %d", eps[ep].path, e->type,
                e->id, attempt, wh_outcome_name(r->outcome), r->http_status,
                wh_outcome_name(outcome), status);
}

/* What each endpoint should have seen, event by event, and the totals that follow. */
static void check(const wh_stats_info *st)
{
    size_t want[N_EPS] = {0};
    uint64_t delivered = 0, failed = 0, skipped = 0, attempts = 0;
    bool gone_seen = false;
    for (size_t i = 0; i < g.n_ev; i++) {
        const emitted *e = &g.ev[i];
        for (int ep = 0; ep < N_EPS; ep++) {
            if (!subscribed(ep, e->type)) {
                if (count_rows(ep, e->id))
                    problem("%s got %s %s without subscribing to it", eps[ep].path, e->type, e->id);
                continue;
            }
            want[ep]++;
            size_t n = 0;
            switch (ep) {
            case EP_HOOKS:
                expect(ep, e, 1, WH_OUTCOME_DELIVERED, 204);
                n = 1, delivered++, attempts++;
                break;
            case EP_FAIL_TWICE:
                expect(ep, e, 1, WH_OUTCOME_RETRYING, 500);
                expect(ep, e, 2, WH_OUTCOME_RETRYING, 500);
                expect(ep, e, 3, WH_OUTCOME_DELIVERED, 204);
                n = 3, delivered++, attempts += 3;
                break;
            case EP_GONE:
                /* the first event meets the 410 and disables the endpoint; the rest are skipped */
                if (!gone_seen) {
                    expect(ep, e, 1, WH_OUTCOME_FAILED, 410);
                    failed++, attempts++;
                } else {
                    expect(ep, e, 1, WH_OUTCOME_SKIPPED, 0);
                    skipped++;
                }
                gone_seen = true;
                n = 1;
                break;
            }
            if (count_rows(ep, e->id) != n)
                problem("%s %s %s: %zu log rows, expected %zu", eps[ep].path, e->type, e->id,
                        count_rows(ep, e->id), n);
        }
    }
    for (size_t i = 0; i < g.n_rows; i++)
        if (g.rows[i].ep < 0)
            problem("a log row names an endpoint the demo did not add");
    if (want[EP_HOOKS] != g.n_ev)
        problem("/hooks subscribes to everything but %zu of %zu events matched", want[EP_HOOKS],
                g.n_ev);
    if (st->emitted != g.n_ev || st->delivered != delivered || st->failed != failed ||
        st->skipped != skipped || st->attempts != attempts)
        problem("wh_stats: emitted %" PRIu64 " delivered %" PRIu64 " failed %" PRIu64
                " skipped %" PRIu64 " attempts %" PRIu64 "; expected %zu %" PRIu64 " %" PRIu64
                " %" PRIu64 " %" PRIu64,
                st->emitted, st->delivered, st->failed, st->skipped, st->attempts, g.n_ev,
                delivered, failed, skipped, attempts);
    if (st->pending || st->in_flight)
        problem("wh_stats: %" PRIu64 " pending, %" PRIu64 " in flight at the end", st->pending,
                st->in_flight);
    if (st->endpoints != N_EPS || st->endpoints_disabled != 1)
        problem("wh_stats: %" PRIu64 " endpoints, %" PRIu64 " disabled; expected 3 and 1",
                st->endpoints, st->endpoints_disabled);
}

/* ---- main ------------------------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr, "usage: engine_demo --receiver http://127.0.0.1:PORT --secret whsec_... "
                    "[--store SPEC]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *receiver = NULL, *secret = NULL, *store = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--receiver") == 0 && i + 1 < argc)
            receiver = argv[++i];
        else if (strcmp(argv[i], "--secret") == 0 && i + 1 < argc)
            secret = argv[++i];
        else if (strcmp(argv[i], "--store") == 0 && i + 1 < argc)
            store = argv[++i];
        else
            return usage();
    }
    if (!receiver || !secret)
        return usage();
    size_t base_len = strlen(receiver);
    while (base_len && receiver[base_len - 1] == '/')
        base_len--;

    char err[256];
    wh_conf *conf = wh_conf_new();
    if (!conf) {
        fprintf(stderr, "engine_demo: out of memory\n");
        return 1;
    }
    const char *settings[][2] = {
        {"retry.schedule", "200ms,400ms,800ms"},
        {"retry.jitter", "0.1"},
        {"event_types.extra", "task_run.failed"},
        {"http.timeout_ms", "5000"},
        /* the demo's receiver is on loopback, which the SSRF guard refuses by default */
        {"security.allow_cidrs", "127.0.0.1/32"},
        {"store", store},
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        if (!settings[i][1])
            continue;
        if (wh_conf_set(conf, settings[i][0], settings[i][1], err, sizeof err) != WH_OK) {
            fprintf(stderr, "engine_demo: %s\n", err);
            wh_conf_destroy(conf);
            return 1;
        }
    }
    int rc = wh_conf_add_log_sink(conf, &(wh_log_sink){.write = sink_write, .close = sink_close});
    if (rc != WH_OK) {
        fprintf(stderr, "engine_demo: log sink: %s (%s)\n", wh_strerror(rc), wh_last_error());
        wh_conf_destroy(conf);
        return 1;
    }
    wh_ctx *wh = wh_new(conf, err, sizeof err);
    if (!wh) {
        fprintf(stderr, "engine_demo: %s\n", err);
        wh_conf_destroy(conf);
        return 1;
    }

    printf("libwebhook %s, store %s, retry.schedule %s\n\nendpoints on %.*s:\n", wh_version(),
           store ? store : "(default)", "200ms,400ms,800ms", (int)base_len, receiver);
    for (int i = 0; i < N_EPS; i++) {
        char url[512];
        snprintf(url, sizeof url, "%.*s%s", (int)base_len, receiver, eps[i].path);
        rc = wh_endpoint_add(wh,
                                 &(wh_endpoint_spec){.url = url, .event_types = eps[i].types,
                                                     .secret = secret,
                                                     .description = eps[i].description},
                                 eps[i].id);
        if (rc != WH_OK) {
            fprintf(stderr, "engine_demo: endpoint %s: %s (%s)\n", url, wh_strerror(rc),
                    wh_last_error());
            wh_destroy(wh);
            free(g.rows);
            return 1;
        }
        printf("  %-11s %s  %s\n", eps[i].path, eps[i].id, eps[i].description);
    }

    printf("\nengine: 3 workflow runs\n");
    g.t0_ms = wall_ms();
    run_workflows(wh);
    printf("engine: done at +%" PRId64 "ms; delivering what is left\n", wall_ms() - g.t0_ms);
    bool drained = drain(wh);
    printf("engine: all deliveries final at +%" PRId64 "ms\n", wall_ms() - g.t0_ms);

    wh_stats_info st;
    memset(&st, 0, sizeof st);
    wh_stats(wh, &st);
    printf("\nendpoints at the end:\n");
    wh_endpoint_list(wh, print_endpoint, NULL);
    wh_destroy(wh); /* closes the sink; would log anything still undelivered as FAILED */

    print_table();
    printf("\nwh_stats: emitted %" PRIu64 ", delivered %" PRIu64 ", failed %" PRIu64
           ", skipped %" PRIu64 ", attempts %" PRIu64 ", pending %" PRIu64 ", in flight %" PRIu64
           ", endpoints %" PRIu64 " (%" PRIu64 " disabled)\n",
           st.emitted, st.delivered, st.failed, st.skipped, st.attempts, st.pending, st.in_flight,
           st.endpoints, st.endpoints_disabled);

    if (drained)
        check(&st);
    if (!g.sink_closed)
        problem("wh_destroy did not close the log sink");
    if (g.oom)
        problem("out of memory while keeping the attempt log");
    if (g.problems)
        printf("\nengine_demo: %d unexpected thing%s (see above)\n", g.problems,
               g.problems == 1 ? "" : "s");
    else
        printf("\nengine_demo: every endpoint got what it should have\n");
    free(g.rows);
    return g.problems ? 1 : 0;
}
