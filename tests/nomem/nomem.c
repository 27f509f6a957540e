/* Allocation failure, as curl's torture tests do it: each scenario of the public API's main
 * paths runs again and again with its N-th allocation failing, for N = 1, 2, ... until a run
 * meets no failure. Every run must end with no crash and no leak (AddressSanitizer and
 * LeakSanitizer), a failing call must say WH_ERR_NOMEM (or, for the SQLite store, the
 * documented WH_ERR_STORE whose message says "out of memory") with a message, and a call
 * that failed must have changed nothing: no endpoint half added, no event half queued.
 *
 * Two rounds. First the library's own allocations (malloc, calloc, realloc, strdup and strndup
 * are wrapped at link time: -Wl,--wrap=...) and cJSON's (cJSON_InitHooks) are counted and
 * fail, every N. Then SQLite's (SQLITE_CONFIG_MALLOC), for the scenarios on a SQLite store:
 * SQLite allocates thousands of times to create and migrate a store, so this round takes
 * every NOMEM_STRIDE-th N (default 17; 1 is the full torture, some minutes). libcurl and
 * OpenSSL are not used (the transport is this file's own, answering at once).
 *
 * Usage: nomem [SCENARIO [N]] -- all scenarios, one, or one run of one (in both rounds;
 * NOMEM_TRACE=1 prints the stack of the allocation that fails). Exit status 0 when every run behaved. Bounded:
 * each scenario stops at MAX_RUNS. */
#include <errno.h>
#include <glob.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#include <sqlite3.h>

#include "webhook/webhook.h"

#define MAX_RUNS 20000

/* ---- the failing allocator ---------------------------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);

enum { FROM_LIBRARY = 1, FROM_SQLITE = 2 };
static int failing_source = FROM_LIBRARY; /* whose allocations are counted and may fail */
static long fail_at;    /* 0: disarmed; else the allocation number that fails */
static long seen;       /* allocations counted since armed */
static bool hit;        /* the failure happened in this run */
static const char *running = "";
static long running_n;
static bool trace; /* NOMEM_TRACE=1: print the stack of the failing allocation */

static bool fail_now(int source)
{
    if (!__atomic_load_n(&fail_at, __ATOMIC_RELAXED) || !(failing_source & source))
        return false;
    if (__atomic_add_fetch(&seen, 1, __ATOMIC_RELAXED) != __atomic_load_n(&fail_at, __ATOMIC_RELAXED))
        return false;
    __atomic_store_n(&hit, true, __ATOMIC_RELAXED);
    if (trace)
        __sanitizer_print_stack_trace(); /* where the one failing allocation was */
    errno = ENOMEM;
    return true;
}

#define L FROM_LIBRARY
void *__wrap_malloc(size_t n) { return fail_now(L) ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { return fail_now(L) ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { return fail_now(L) ? NULL : __real_realloc(p, n); }
char *__wrap_strdup(const char *s) { return fail_now(L) ? NULL : __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n) { return fail_now(L) ? NULL : __real_strndup(s, n); }

/* cJSON and SQLite are shared libraries: their allocations come through their own hooks
 * (cJSON's count as the library's: it builds the library's JSON) */
static void *json_malloc(size_t n) { return fail_now(L) ? NULL : __real_malloc(n); }

static sqlite3_mem_methods sqlite_default;
static void *sq_malloc(int n) { return fail_now(FROM_SQLITE) ? NULL : sqlite_default.xMalloc(n); }
static void *sq_realloc(void *p, int n)
{
    return fail_now(FROM_SQLITE) ? NULL : sqlite_default.xRealloc(p, n);
}

static void install_hooks(void)
{
    cJSON_InitHooks(&(cJSON_Hooks){.malloc_fn = json_malloc, .free_fn = free});
    sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sqlite_default);
    sqlite3_mem_methods m = sqlite_default;
    m.xMalloc = sq_malloc;
    m.xRealloc = sq_realloc;
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &m) != SQLITE_OK) {
        fprintf(stderr, "nomem: cannot install SQLite's allocator\n");
        exit(2);
    }
}

static void arm(long n)
{
    seen = 0;
    hit = false;
    __atomic_store_n(&fail_at, n, __ATOMIC_RELAXED);
}

static void disarm(void) { __atomic_store_n(&fail_at, 0, __ATOMIC_RELAXED); }

/* ---- checks ------------------------------------------------------------------------- */

static void on_death(void) { fprintf(stderr, "nomem: died in scenario %s, N = %ld\n", running, running_n); }

__attribute__((format(printf, 2, 3))) static void check(bool ok, const char *fmt, ...)
{
    if (ok)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nomem: %s, N = %ld: ", running, running_n);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fprintf(stderr, "nomem: run it alone with: nomem %s %ld\n", running, running_n);
    exit(1);
}

/* The SQLite store may answer a failed allocation of SQLite's own with WH_ERR_STORE: SQLite
 * does not always say "out of memory" (a temporary file it could not open, for one). */
static bool durable_run;

/* A failure caused by the allocator: WH_ERR_NOMEM, or WH_ERR_STORE from the SQLite store;
 * with a message either way. */
static void check_nomem(int rc, const char *msg, const char *call)
{
    check(hit, "%s failed (%d: %s) with no allocation failing", call, rc, msg);
    check(rc == WH_ERR_NOMEM || (rc == WH_ERR_STORE && durable_run),
          "%s: %d (%s) is not WH_ERR_NOMEM: \"%s\"", call, rc, wh_strerror(rc), msg);
    check(msg && *msg, "%s: %s with no message", call, wh_strerror(rc));
}

/* ---- an immediate transport: /ok answers 200, /flaky 500 on a first attempt ---------- */

typedef struct {
    void *token[256];
    int status[256];
    size_t n;
} instant;

static int instant_submit(void *ud, const wh_request *req, void *token)
{
    instant *t = ud;
    if (t->n == 256)
        return WH_ERR_FULL;
    bool retry = false;
    for (const char *const *h = req->headers; *h; h++)
        retry |= strncmp(*h, "webhook-timestamp:", 18) == 0 && t->n % 2; /* some, not all */
    t->token[t->n] = token;
    t->status[t->n] = strstr(req->url, "/flaky") && retry ? 500 : 200;
    t->n++;
    return WH_OK;
}

static int instant_perform(void *ud, wh_transport_done_fn done, void *done_ud)
{
    instant *t = ud;
    size_t n = t->n;
    t->n = 0;
    for (size_t i = 0; i < n; i++) {
        wh_response r = {.http_status = t->status[i], .body = "ok", .body_len = 2, .duration_us = 10};
        done(done_ud, t->token[i], &r);
    }
    return (int)n;
}

static int instant_fd(void *ud) { (void)ud; return -1; }
static int instant_timeout(void *ud) { return ((instant *)ud)->n ? 0 : -1; }
static void instant_destroy(void *ud) { (void)ud; }

static instant transport_state;
static int64_t clock_ms;
static int64_t fake_now(void *ud) { (void)ud; return clock_ms; }

static char dir[64], store_spec[128];

/* A conf on the memory store or a fresh SQLite file, made with the allocator disarmed. */
/* "normal": an emit goes to the engine's log of emits; "full": it is a commit */
static const char *store_sync = "normal";

static wh_conf *make_conf(bool durable)
{
    durable_run = durable;
    wh_conf *c = wh_conf_new();
    char err[256];
    const char *set[][2] = {{"retry.schedule", "1s,1s"}, {"retry.jitter", "0"},
                            {"event_types.extra", "deploy.finished"},
                            {"store", durable ? store_spec : "memory"},
                            {"store.sync", store_sync}};
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        if (wh_conf_set(c, set[i][0], set[i][1], err, sizeof err) != WH_OK) {
            fprintf(stderr, "nomem: %s: %s\n", set[i][0], err);
            exit(2);
        }
    transport_state.n = 0;
    wh_conf_set_transport(c, &(wh_transport){.ud = &transport_state, .submit = instant_submit,
                                             .perform = instant_perform, .fd = instant_fd,
                                             .timeout_ms = instant_timeout,
                                             .destroy = instant_destroy});
    wh_conf_set_clock(c, fake_now, NULL);
    return c;
}

static void remove_store(void)
{
    const char *sfx[] = {"", "-wal", "-shm"};
    char p[160];
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/s.db%s", dir, sfx[i]);
        unlink(p);
    }
    /* the engines' logs of emits, also those a failure left behind */
    glob_t g;
    snprintf(p, sizeof p, "%s/s.db-emits-*", dir);
    if (glob(p, 0, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++)
            unlink(g.gl_pathv[i]);
    globfree(&g);
}

static wh_ctx *make_ctx(bool durable)
{
    remove_store();
    char err[256];
    wh_ctx *ctx = wh_new(make_conf(durable), err, sizeof err);
    if (!ctx) {
        fprintf(stderr, "nomem: wh_new: %s\n", err);
        exit(2);
    }
    return ctx;
}

static void add(wh_ctx *ctx, const char *url, int disabled, char id[WH_ID_MAX])
{
    if (wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url, .disabled = disabled}, id) != WH_OK) {
        fprintf(stderr, "nomem: setup: endpoint add: %s\n", wh_last_error());
        exit(2);
    }
}

static int emit(wh_ctx *ctx, char id[WH_ID_MAX])
{
    return wh_emit(ctx, &(wh_event){.event_type = "task_run.completed", .run_id = "run_1",
                                    .task_id = "task_1", .status = "completed"}, id);
}

static void count_cb(void *ud, const wh_endpoint_info *ep) { (void)ep; ++*(int *)ud; }

static wh_stats_info stats(wh_ctx *ctx)
{
    wh_stats_info st;
    wh_stats(ctx, &st);
    return st;
}

/* Drives until nothing is in flight or due, moving the clock past the retries; bounded. */
static void settle(wh_ctx *ctx)
{
    for (int i = 0; i < 20; i++) {
        wh_flush(ctx, 1000);
        wh_stats_info st = stats(ctx);
        if (st.pending + st.in_flight == 0)
            return;
        clock_ms += 1500;
    }
}

/* ---- the scenarios ------------------------------------------------------------------ */

static void sc_conf(long n)
{
    arm(n);
    wh_conf *c = wh_conf_new();
    if (!c) {
        disarm();
        check(hit, "wh_conf_new returned NULL with no allocation failing");
        return;
    }
    const char *set[][2] = {{"retry.schedule", "1s,5s,1m"}, {"security.allow_cidrs", "127.0.0.1/32,10.0.0.0/8"},
                            {"event_types.extra", "deploy.finished,task_run.failed"},
                            {"store", "sqlite:/nonexistent/x.db"}, {"http.timeout_ms", "5000"},
                            {"log.retention", "2d"}, {"tls.ca_file", "/etc/ssl/certs/ca-certificates.crt"}};
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++) {
        char before[512], err[256] = "";
        const char *b = wh_conf_get(c, set[i][0]);
        snprintf(before, sizeof before, "%s", b ? b : "(null)");
        int rc = wh_conf_set(c, set[i][0], set[i][1], err, sizeof err);
        if (rc == WH_OK)
            continue;
        check_nomem(rc, err, set[i][0]);
        const char *after = wh_conf_get(c, set[i][0]);
        check(strcmp(before, after ? after : "(null)") == 0,
              "a failed wh_conf_set changed %s from \"%s\" to \"%s\"", set[i][0], before, after);
    }
    disarm();
    wh_conf_destroy(c);
}

static void sc_new(long n, bool durable)
{
    remove_store();
    wh_conf *c = make_conf(durable);
    char err[256] = "";
    arm(n);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    disarm();
    if (!ctx) {
        check(hit, "wh_new failed with no allocation failing: %s", err);
        check(strstr(err, "out of memory") != NULL || (durable && strncmp(err, "store: ", 7) == 0),
              "wh_new: \"%s\" does not say out of memory", err);
        wh_conf_destroy(c); /* still the caller's */
        /* and nothing stops the next wh_new */
        wh_destroy(make_ctx(durable));
        return;
    }
    char id[WH_ID_MAX];
    add(ctx, "http://127.0.0.1:9/ok", 0, id);
    wh_destroy(ctx);
}

static void sc_new_memory(long n) { sc_new(n, false); }
static void sc_new_sqlite(long n) { sc_new(n, true); }

static void sc_endpoint_add(long n, bool durable)
{
    wh_ctx *ctx = make_ctx(durable);
    char first[WH_ID_MAX], id[WH_ID_MAX];
    add(ctx, "http://127.0.0.1:9/first", 0, first);
    const char *types[] = {"task_run.*", "deploy.finished", NULL};
    arm(n);
    int rc = wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "http://127.0.0.1:9/ok",
                                                     .event_types = types,
                                                     .description = "ops"}, id);
    disarm();
    char why[512];
    snprintf(why, sizeof why, "%s", wh_last_error());
    int count = 0;
    wh_endpoint_list(ctx, count_cb, &count);
    if (rc != WH_OK) {
        check_nomem(rc, why, "wh_endpoint_add");
        check(count == 1, "a failed wh_endpoint_add left %d endpoints (1 before)", count);
        /* and the endpoint can be added now */
        add(ctx, "http://127.0.0.1:9/ok", 0, id);
    } else {
        check(count == 2, "wh_endpoint_add succeeded but the list has %d", count);
    }
    wh_destroy(ctx);
    if (durable) {
        /* what the store holds is what the API said */
        ctx = wh_new(make_conf(true), NULL, 0);
        check(ctx != NULL, "reopen: %s", wh_last_error());
        count = 0;
        wh_endpoint_list(ctx, count_cb, &count);
        check(count == 2, "after reopening, %d endpoints (2 expected)", count);
        wh_destroy(ctx);
    }
}

static void sc_endpoint_add_memory(long n) { sc_endpoint_add(n, false); }
static void sc_endpoint_add_sqlite(long n) { sc_endpoint_add(n, true); }

/* The endpoint's settings joined with ';'. */
static void join_settings(void *ud, const wh_endpoint_info *ep)
{
    char *out = ud;
    out[0] = '\0';
    for (const char *const *p = ep->settings; *p; p++)
        snprintf(out + strlen(out), 512 - strlen(out), "%s;", *p);
}

static void settings_of(wh_ctx *ctx, const char *id, char out[512])
{
    strcpy(out, "(not read)");
    check(wh_endpoint_get(ctx, id, join_settings, out) == WH_OK, "wh_endpoint_get: %s",
          wh_last_error());
}

static void sc_endpoint_set(long n, bool durable)
{
    wh_ctx *ctx = make_ctx(durable);
    char id[WH_ID_MAX], before[512], after[512];
    add(ctx, "http://127.0.0.1:9/ok", 0, id);
    check(wh_endpoint_set(ctx, id, "header.X-A", "1") == WH_OK, "%s", wh_last_error());
    settings_of(ctx, id, before);
    static const char *const set[][2] = {{"retry.schedule", "1s,2s"}, {"header.x-a", "2"},
                                         {"header.X-A", NULL}};
    /* the N-th allocation of the three calls fails (the checks between them count none) */
    long left = n;
    bool any = false;
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++) {
        if (!any)
            arm(left);
        int rc = wh_endpoint_set(ctx, id, set[i][0], set[i][1]);
        if (!any) {
            any = hit;
            left -= seen;
            disarm();
        }
        char why[512];
        snprintf(why, sizeof why, "%s", wh_last_error());
        settings_of(ctx, id, after);
        if (rc != WH_OK) {
            check_nomem(rc, why, "wh_endpoint_set");
            check(strcmp(before, after) == 0, "a failed wh_endpoint_set changed \"%s\" to \"%s\"",
                  before, after);
        }
        snprintf(before, sizeof before, "%s", after);
    }
    hit = any;
    wh_destroy(ctx);
    if (durable) {
        /* what the store holds is what the API said */
        ctx = wh_new(make_conf(true), NULL, 0);
        check(ctx != NULL, "reopen: %s", wh_last_error());
        settings_of(ctx, id, after);
        check(strcmp(before, after) == 0, "after reopening \"%s\", not \"%s\"", after, before);
        wh_destroy(ctx);
    }
}

static void sc_endpoint_set_memory(long n) { sc_endpoint_set(n, false); }
static void sc_endpoint_set_sqlite(long n) { sc_endpoint_set(n, true); }

static void sc_emit(long n, bool durable)
{
    wh_ctx *ctx = make_ctx(durable);
    char a[WH_ID_MAX], b[WH_ID_MAX], off[WH_ID_MAX], ev[WH_ID_MAX] = "";
    add(ctx, "http://127.0.0.1:9/ok", 0, a);
    add(ctx, "http://127.0.0.1:9/flaky", 0, b);
    add(ctx, "http://127.0.0.1:9/off", 1, off);
    arm(n);
    int rc = emit(ctx, ev);
    disarm();
    char why[512];
    snprintf(why, sizeof why, "%s", wh_last_error());
    wh_stats_info st = stats(ctx);
    if (rc < 0) {
        check_nomem(rc, why, "wh_emit");
        check(st.emitted == 0 && st.pending == 0, "a failed wh_emit left %llu emitted, %llu pending",
              (unsigned long long)st.emitted, (unsigned long long)st.pending);
        check(ev[0] == '\0', "a failed wh_emit wrote an event id");
    } else {
        check(rc == 2 && st.emitted == 1 && st.pending == 3, "wh_emit: %d, %llu pending", rc,
              (unsigned long long)st.pending);
    }
    settle(ctx);
    st = stats(ctx);
    unsigned long long want = rc < 0 ? 0 : 3;
    check(st.delivered + st.skipped + st.failed == want && st.pending == 0,
          "after delivery: %llu delivered, %llu skipped, %llu failed, %llu pending (%llu expected)",
          (unsigned long long)st.delivered, (unsigned long long)st.skipped,
          (unsigned long long)st.failed, (unsigned long long)st.pending, want);
    wh_destroy(ctx);
    if (durable) {
        /* nothing of a failed emit is in the store to be sent after a restart */
        ctx = wh_new(make_conf(true), NULL, 0);
        check(ctx != NULL, "reopen: %s", wh_last_error());
        st = stats(ctx);
        check(st.pending == 0, "after reopening, %llu pending", (unsigned long long)st.pending);
        wh_destroy(ctx);
    }
}

static void sc_emit_memory(long n) { sc_emit(n, false); }
static void sc_emit_sqlite(long n) { sc_emit(n, true); }

/* the emit's own commit, which the log of emits leaves out */
static void sc_emit_sqlite_full(long n)
{
    store_sync = "full";
    sc_emit(n, true);
    store_sync = "normal";
}

/* A delivery round: three events to /ok and /flaky (a retry each), then a redelivery. Under
 * a failure an attempt may be lost from the log or counted failed, but every delivery ends
 * and nothing crashes or leaks. */
static void sc_deliver(long n, bool durable)
{
    wh_ctx *ctx = make_ctx(durable);
    char a[WH_ID_MAX], b[WH_ID_MAX], ev[WH_ID_MAX];
    add(ctx, "http://127.0.0.1:9/ok", 0, a);
    add(ctx, "http://127.0.0.1:9/flaky", 0, b);
    for (int i = 0; i < 3; i++)
        emit(ctx, ev);
    arm(n);
    for (int i = 0; i < 4; i++) {
        int rc = wh_flush(ctx, 1000);
        check(rc == WH_OK || rc == WH_ERR_TIMEOUT || hit, "wh_flush: %d %s", rc, wh_last_error());
        clock_ms += 1500;
    }
    int rc = wh_redeliver(ctx, ev, NULL);
    char why[512];
    snprintf(why, sizeof why, "%s", wh_last_error());
    if (rc < 0)
        check_nomem(rc, why, "wh_redeliver");
    wh_flush(ctx, 1000);
    disarm();
    settle(ctx);
    wh_stats_info st = stats(ctx);
    check(st.pending + st.in_flight == 0, "%llu deliveries never ended",
          (unsigned long long)(st.pending + st.in_flight));
    wh_destroy(ctx);
}

static void sc_deliver_memory(long n) { sc_deliver(n, false); }
static void sc_deliver_sqlite(long n) { sc_deliver(n, true); }

static void row_cb(void *ud, const wh_attempt *a) { (void)a; ++*(int *)ud; }

static void sc_log_query(long n, bool durable)
{
    wh_ctx *ctx = make_ctx(durable);
    char a[WH_ID_MAX], b[WH_ID_MAX];
    add(ctx, "http://127.0.0.1:9/ok", 0, a);
    add(ctx, "http://127.0.0.1:9/flaky", 0, b);
    for (int i = 0; i < 3; i++)
        emit(ctx, NULL);
    settle(ctx);
    int all = wh_log_query(ctx, NULL, NULL, NULL);
    int rows = 0;
    arm(n);
    int got = wh_log_query(ctx, &(wh_log_filter){.limit = 1000000}, row_cb, &rows);
    disarm();
    char why[512];
    snprintf(why, sizeof why, "%s", wh_last_error());
    if (got < 0) {
        check_nomem(got, why, "wh_log_query");
        check(rows == 0, "a failed wh_log_query passed %d rows", rows);
    } else {
        check(got == all && rows == all, "wh_log_query: %d, %d rows (%d expected)", got, rows, all);
    }
    wh_destroy(ctx);
}

static void sc_log_query_memory(long n) { sc_log_query(n, false); }
static void sc_log_query_sqlite(long n) { sc_log_query(n, true); }

static const struct {
    const char *name;
    void (*run)(long n);
} scenarios[] = {
    {"conf", sc_conf},
    {"new-memory", sc_new_memory},
    {"new-sqlite", sc_new_sqlite},
    {"endpoint-add-memory", sc_endpoint_add_memory},
    {"endpoint-add-sqlite", sc_endpoint_add_sqlite},
    {"endpoint-set-memory", sc_endpoint_set_memory},
    {"endpoint-set-sqlite", sc_endpoint_set_sqlite},
    {"emit-memory", sc_emit_memory},
    {"emit-sqlite", sc_emit_sqlite},
    {"emit-sqlite-full", sc_emit_sqlite_full},
    {"deliver-memory", sc_deliver_memory},
    {"deliver-sqlite", sc_deliver_sqlite},
    {"log-query-memory", sc_log_query_memory},
    {"log-query-sqlite", sc_log_query_sqlite},
};

int main(int argc, char **argv)
{
    install_hooks();
    trace = getenv("NOMEM_TRACE") && *getenv("NOMEM_TRACE") == '1';
    __sanitizer_set_death_callback(on_death);
    /* tmpfs when there is one: thousands of stores are made, and none needs a disk */
    snprintf(dir, sizeof dir, "%s/wh-nomem-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(dir))
        return 2;
    snprintf(store_spec, sizeof store_spec, "sqlite:%s/s.db", dir);
    long stride = getenv("NOMEM_STRIDE") ? atol(getenv("NOMEM_STRIDE")) : 17;
    if (stride < 1)
        stride = 1;
    int ran = 0;
    for (int round = 0; round < 2; round++) {
        failing_source = round == 0 ? FROM_LIBRARY : FROM_SQLITE;
        long step = round == 0 ? 1 : stride;
        for (size_t s = 0; s < sizeof scenarios / sizeof scenarios[0]; s++) {
            if (argc > 1 && strcmp(argv[1], scenarios[s].name) != 0)
                continue;
            if (round == 1 && !strstr(scenarios[s].name, "sqlite"))
                continue;
            running = scenarios[s].name;
            long first = argc > 2 ? atol(argv[2]) : 1, last = argc > 2 ? first : MAX_RUNS * step;
            long n = first, runs = 0;
            /* SQLite's round: every N at first (small paths allocate little), then strided */
            for (; n <= last; n += n < 200 ? 1 : step, runs++) {
                running_n = n;
                scenarios[s].run(n);
                if (!hit)
                    break;
            }
            check(n <= last || argc > 2, "still failing after %d runs", MAX_RUNS);
            /* a leak shows here, named by its scenario */
            running_n = 0;
            check(__lsan_do_recoverable_leak_check() == 0, "leaked (see above); rerun each N alone");
            printf("nomem: %-20s %-8s %5ld runs, %s: ok\n", running, round ? "SQLite's" : "own",
                   runs, step == 1 ? "each N-th allocation failing" : "every few N");
            fflush(stdout);
            ran++;
        }
    }
    remove_store();
    rmdir(dir);
    if (!ran) {
        fprintf(stderr, "nomem: no scenario \"%s\"\n", argc > 1 ? argv[1] : "");
        return 2;
    }
    return 0;
}
