/* Notices (wh_conf_set_notify), the operational events that carry them (webhook.*), and
 * wh_wakeup: a real receiver on 127.0.0.1, real SQLite files shared by two engines, webhookctl
 * in another process, the throwaway PostgreSQL server. */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "pg_fixture.h"
#include "support.h"
#include "webhook/webhook.h"

static const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_ms_f(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- what the callback heard -------------------------------------------------------------- */

typedef struct {
    int kind;
    char endpoint_id[WH_ID_MAX], event_id[WH_ID_MAX];
    bool has_event;
    char reason[512];
    int64_t time_ms;
    bool on_driver;
} heard;

typedef struct {
    pthread_mutex_t mu;
    heard v[128];
    size_t n;
    pthread_t driver;      /* the thread expected to tell them */
    wh_ctx *ctx;           /* set: the callback calls back into the library */
    int calls_ok, calls_failed;
} notices;

static void got_endpoint(void *ud, const wh_endpoint_info *ep) { *(bool *)ud = ep->id != NULL; }
static void got_row(void *ud, const wh_attempt *a) { (void)a, (void)ud; }

static void on_notice(void *ud, const wh_notice *n)
{
    notices *s = ud;
    pthread_mutex_lock(&s->mu);
    if (s->n < 128) {
        heard *h = &s->v[s->n++];
        h->kind = n->kind;
        snprintf(h->endpoint_id, sizeof h->endpoint_id, "%s", n->endpoint_id);
        h->has_event = n->event_id != NULL;
        snprintf(h->event_id, sizeof h->event_id, "%s", n->event_id ? n->event_id : "");
        snprintf(h->reason, sizeof h->reason, "%s", n->reason ? n->reason : "(null)");
        h->time_ms = n->time_ms;
        h->on_driver = pthread_equal(pthread_self(), s->driver);
    }
    pthread_mutex_unlock(&s->mu);
    if (s->ctx) {
        /* no lock of the library is held: each of these would deadlock otherwise */
        bool seen = false;
        int ok = wh_endpoint_get(s->ctx, n->endpoint_id, got_endpoint, &seen) == WH_OK && seen;
        ok &= wh_emit(s->ctx, &(wh_event){.event_type = "workflow_run.started", .run_id = "r",
                                          .status = "started"}, NULL) >= 0;
        ok &= wh_log_query(s->ctx, NULL, got_row, NULL) >= 0;
        wh_stats_info st;
        ok &= wh_stats(s->ctx, &st) == WH_OK;
        pthread_mutex_lock(&s->mu);
        if (ok)
            s->calls_ok++;
        else
            s->calls_failed++;
        pthread_mutex_unlock(&s->mu);
    }
}

static size_t count(notices *s, int kind, const char *endpoint_id)
{
    pthread_mutex_lock(&s->mu);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        k += s->v[i].kind == kind && (!endpoint_id || strcmp(s->v[i].endpoint_id, endpoint_id) == 0);
    pthread_mutex_unlock(&s->mu);
    return k;
}

/* The first notice of a kind (a copy). */
static heard first(notices *s, int kind)
{
    heard h = {0};
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].kind == kind) {
            h = s->v[i];
            break;
        }
    pthread_mutex_unlock(&s->mu);
    return h;
}

/* ---- contexts ------------------------------------------------------------------------------- */

static char dir[256], db[512], store[600];

static void tmp_setup(void)
{
    snprintf(dir, sizeof dir, "%s/whnotice.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(db, sizeof db, "%s/webhooks.db", dir);
    snprintf(store, sizeof store, "sqlite:%s", db);
}

static void tmp_teardown(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* store: NULL = memory. */
static wh_ctx *open_ctx(const char *store_value, const char *const *settings, notices *s)
{
    wh_conf *c = wh_conf_new();
    char err[512];
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "retry.jitter", "0", err, sizeof err), WH_OK);
    if (store_value)
        ck_assert_msg(wh_conf_set(c, "store", store_value, err, sizeof err) == WH_OK, "%s", err);
    for (const char *const *k = settings; k && *k; k += 2)
        ck_assert_msg(wh_conf_set(c, k[0], k[1], err, sizeof err) == WH_OK, "%s", err);
    if (s) {
        pthread_mutex_init(&s->mu, NULL);
        s->driver = pthread_self();
        ck_assert_int_eq(wh_conf_set_notify(c, on_notice, s), WH_OK);
    }
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

static void add(wh_ctx *ctx, rcv *r, const char *path, const char *const *types, char id[WH_ID_MAX])
{
    char url[256];
    rcv_url(r, path, url, sizeof url);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url, .event_types = types,
                                                              .secret = secret}, id), WH_OK);
    rcv_set_secret(r, path, secret);
}

static int emit(wh_ctx *ctx, char id[WH_ID_MAX])
{
    return wh_emit(ctx, &(wh_event){.event_type = "task_run.completed", .run_id = "run_1",
                                    .task_id = "t", .status = "completed"}, id);
}

/* Drives for ms (several store syncs on a durable store). */
static void drive_for(wh_ctx *ctx, int ms)
{
    int64_t end = mono_ms() + ms;
    while (mono_ms() < end)
        wh_poll(ctx, 20);
}

/* Drives until the callback heard `want` notices of a kind, or 10 s. */
static bool drive_until(wh_ctx *ctx, notices *s, int kind, size_t want)
{
    int64_t end = mono_ms() + 10000;
    while (count(s, kind, NULL) < want && mono_ms() < end)
        wh_poll(ctx, 20);
    return count(s, kind, NULL) >= want;
}

static const char *store_of(int i) { return i == 0 ? NULL : store; }

/* ---- notices -------------------------------------------------------------------------------- */

static const char *const task_types[] = {"task_run.*", NULL};

/* Run once with the memory store (_i = 0), once with a sqlite: file (_i = 1). */
START_TEST(a_410_disables_the_endpoint_with_one_notice)
{
    rcv *r = rcv_start();
    rcv_script(r, "/gone", NULL, 0, (rcv_rule){.status = 410});
    notices s = {0};
    wh_ctx *ctx = open_ctx(store_of(_i), NULL, &s);
    char ep[WH_ID_MAX], ok_ep[WH_ID_MAX];
    add(ctx, r, "/gone", task_types, ep);
    add(ctx, r, "/ok", task_types, ok_ep);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(emit(ctx, NULL), 2);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(count(&s, WH_NOTICE_ENDPOINT_DISABLED, NULL), 1);
    heard h = first(&s, WH_NOTICE_ENDPOINT_DISABLED);
    ck_assert_str_eq(h.endpoint_id, ep);
    ck_assert_msg(strstr(h.reason, "410"), "%s", h.reason);
    ck_assert(!h.has_event);
    ck_assert(h.on_driver);
    ck_assert_int_gt(h.time_ms, 0);
    /* several syncs of the row this engine wrote itself: nothing is told again */
    drive_for(ctx, 800);
    ck_assert_uint_eq(count(&s, WH_NOTICE_ENDPOINT_DISABLED, NULL), 1);
    ck_assert_uint_eq(count(&s, WH_NOTICE_ENDPOINT_ENABLED, NULL), 0);
    ck_assert_uint_eq(count(&s, WH_NOTICE_DELIVERY_FAILED, ok_ep), 0);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

START_TEST(failing_for_disable_after_disables_with_one_notice)
{
    rcv *r = rcv_start();
    rcv_script(r, "/down", NULL, 0, (rcv_rule){.status = 500});
    notices s = {0};
    const char *const settings[] = {"retry.schedule", "50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms",
                                    "endpoint.disable_after", "200ms", NULL};
    wh_ctx *ctx = open_ctx(store_of(_i), settings, &s);
    char ep[WH_ID_MAX];
    add(ctx, r, "/down", task_types, ep);
    ck_assert_int_eq(emit(ctx, NULL), 1);
    ck_assert(drive_until(ctx, &s, WH_NOTICE_ENDPOINT_DISABLED, 1));
    drive_for(ctx, 600);
    ck_assert_uint_eq(count(&s, WH_NOTICE_ENDPOINT_DISABLED, NULL), 1);
    heard h = first(&s, WH_NOTICE_ENDPOINT_DISABLED);
    ck_assert_str_eq(h.endpoint_id, ep);
    ck_assert_msg(strstr(h.reason, "endpoint.disable_after"), "%s", h.reason);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

typedef struct {
    wh_ctx *ctx;
    const char *id;
} toggle_args;

static void *toggle(void *arg)
{
    toggle_args *a = arg;
    sleep_ms(50);
    ck_assert_int_eq(wh_endpoint_set_enabled(a->ctx, a->id, 0), WH_OK);
    ck_assert_int_eq(wh_endpoint_set_enabled(a->ctx, a->id, 0), WH_OK); /* no change */
    sleep_ms(50);
    ck_assert_int_eq(wh_endpoint_set_enabled(a->ctx, a->id, 1), WH_OK);
    return NULL;
}

START_TEST(disabled_and_enabled_by_hand_one_notice_each_on_the_driving_thread)
{
    rcv *r = rcv_start();
    notices s = {0};
    wh_ctx *ctx = open_ctx(store_of(_i), NULL, &s);
    char ep[WH_ID_MAX];
    add(ctx, r, "/h", task_types, ep);
    /* told by the driver, not by the calling thread */
    ck_assert_int_eq(wh_endpoint_set_enabled(ctx, ep, 0), WH_OK);
    ck_assert_uint_eq(count(&s, WH_NOTICE_ENDPOINT_DISABLED, NULL), 0);
    wh_poll(ctx, 0);
    ck_assert_uint_eq(count(&s, WH_NOTICE_ENDPOINT_DISABLED, ep), 1);
    ck_assert_int_eq(wh_endpoint_set_enabled(ctx, ep, 1), WH_OK);
    wh_poll(ctx, 0);
    ck_assert_uint_eq(count(&s, WH_NOTICE_ENDPOINT_ENABLED, ep), 1);
    heard h = first(&s, WH_NOTICE_ENDPOINT_ENABLED);
    ck_assert_msg(strstr(h.reason, "wh_endpoint_set_enabled"), "%s", h.reason);

    /* from another thread while this one waits in wh_poll: the waiting driver tells them */
    toggle_args a = {ctx, ep};
    pthread_t t;
    pthread_create(&t, NULL, toggle, &a);
    int64_t end = mono_ms() + 5000;
    while (count(&s, WH_NOTICE_ENDPOINT_ENABLED, ep) < 2 && mono_ms() < end)
        wh_poll(ctx, 1000);
    pthread_join(t, NULL);
    drive_for(ctx, 800); /* and a few syncs of those rows */
    ck_assert_uint_eq(count(&s, WH_NOTICE_ENDPOINT_DISABLED, ep), 2);
    ck_assert_uint_eq(count(&s, WH_NOTICE_ENDPOINT_ENABLED, ep), 2);
    pthread_mutex_lock(&s.mu);
    ck_assert_uint_eq(s.n, 4);
    for (size_t i = 0; i < s.n; i++) {
        ck_assert_int_eq(s.v[i].kind, i % 2 ? WH_NOTICE_ENDPOINT_ENABLED : WH_NOTICE_ENDPOINT_DISABLED);
        ck_assert(s.v[i].on_driver);
    }
    pthread_mutex_unlock(&s.mu);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

/* wh_endpoint_add with an existing key updates `disabled` in place: told like any change. */
START_TEST(an_update_by_key_that_disables_or_enables_is_told_once)
{
    rcv *r = rcv_start();
    notices s = {0};
    wh_ctx *ctx = open_ctx(store_of(_i), NULL, &s);
    char url[256], id[WH_ID_MAX], again[WH_ID_MAX];
    rcv_url(r, "/k", url, sizeof url);
    wh_endpoint_spec spec = {.url = url, .event_types = task_types, .key = "ops-hook"};
    ck_assert_int_eq(wh_endpoint_add(ctx, &spec, id), WH_OK);
    ck_assert_int_eq(wh_endpoint_add(ctx, &spec, again), WH_OK); /* no change */
    spec.disabled = 1;
    ck_assert_int_eq(wh_endpoint_add(ctx, &spec, again), WH_OK);
    ck_assert_str_eq(again, id);
    ck_assert_int_eq(wh_endpoint_add(ctx, &spec, again), WH_OK); /* disabled already */
    drive_for(ctx, 100);
    spec.disabled = 0;
    ck_assert_int_eq(wh_endpoint_add(ctx, &spec, again), WH_OK);
    drive_for(ctx, 600);
    ck_assert_uint_eq(count(&s, WH_NOTICE_ENDPOINT_DISABLED, id), 1);
    ck_assert_uint_eq(count(&s, WH_NOTICE_ENDPOINT_ENABLED, id), 1);
    pthread_mutex_lock(&s.mu);
    ck_assert_uint_eq(s.n, 2);
    ck_assert_int_eq(s.v[0].kind, WH_NOTICE_ENDPOINT_DISABLED);
    ck_assert_msg(strstr(s.v[0].reason, "wh_endpoint_add"), "%s", s.v[0].reason);
    pthread_mutex_unlock(&s.mu);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

START_TEST(a_delivery_given_up_after_its_last_retry_is_told_with_its_event_id)
{
    rcv *r = rcv_start();
    rcv_script(r, "/down", NULL, 0, (rcv_rule){.status = 500});
    notices s = {0};
    const char *const settings[] = {"retry.schedule", "20ms,20ms", NULL};
    wh_ctx *ctx = open_ctx(store_of(_i), settings, &s);
    char ep[WH_ID_MAX], id[WH_ID_MAX];
    add(ctx, r, "/down", task_types, ep);
    ck_assert_int_eq(emit(ctx, id), 1);
    ck_assert(drive_until(ctx, &s, WH_NOTICE_DELIVERY_FAILED, 1));
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/down"), 3);
    ck_assert_uint_eq(count(&s, WH_NOTICE_DELIVERY_FAILED, NULL), 1);
    heard h = first(&s, WH_NOTICE_DELIVERY_FAILED);
    ck_assert_str_eq(h.endpoint_id, ep);
    ck_assert(h.has_event);
    ck_assert_str_eq(h.event_id, id);
    ck_assert_msg(strstr(h.reason, "HTTP 500"), "%s", h.reason);
    ck_assert_uint_eq(count(&s, WH_NOTICE_ENDPOINT_DISABLED, NULL), 0);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

START_TEST(the_callback_may_call_the_library)
{
    rcv *r = rcv_start();
    rcv_script(r, "/gone", NULL, 0, (rcv_rule){.status = 410});
    notices s = {0};
    wh_ctx *ctx = open_ctx(store_of(_i), NULL, &s);
    s.ctx = ctx;
    char ep[WH_ID_MAX];
    add(ctx, r, "/gone", task_types, ep);
    ck_assert_int_eq(emit(ctx, NULL), 1);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(count(&s, WH_NOTICE_ENDPOINT_DISABLED, ep), 1);
    ck_assert_uint_eq(count(&s, WH_NOTICE_DELIVERY_FAILED, ep), 1);
    ck_assert_int_eq(s.calls_ok, 2);
    ck_assert_int_eq(s.calls_failed, 0);
    /* and by hand, from the callback itself: told on the next turn */
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

/* Two engines on one SQLite file: each is told once, the one that made the change with its
 * own reason, the other from the row it syncs. */
START_TEST(two_engines_on_one_file_are_each_told_once)
{
    rcv *r = rcv_start();
    rcv_script(r, "/gone", NULL, 0, (rcv_rule){.status = 410});
    notices sa = {0}, sb = {0};
    wh_ctx *a = open_ctx(store, NULL, &sa);
    wh_ctx *b = open_ctx(store, NULL, &sb);
    char ep[WH_ID_MAX], gone[WH_ID_MAX], other[WH_ID_MAX];
    add(a, r, "/h", task_types, ep);
    add(a, r, "/gone", task_types, gone);
    add(a, r, "/other", task_types, other);
    drive_for(b, 400); /* b loads both */
    ck_assert_int_eq(wh_endpoint_set_enabled(a, ep, 0), WH_OK);
    int64_t end = mono_ms() + 5000;
    while (count(&sb, WH_NOTICE_ENDPOINT_DISABLED, ep) < 1 && mono_ms() < end) {
        wh_poll(a, 10);
        wh_poll(b, 10);
    }
    ck_assert_int_eq(wh_endpoint_set_enabled(a, ep, 1), WH_OK);
    ck_assert_int_eq(emit(a, NULL), 3);
    end = mono_ms() + 5000;
    while ((count(&sb, WH_NOTICE_ENDPOINT_ENABLED, ep) < 1 ||
            count(&sb, WH_NOTICE_ENDPOINT_DISABLED, gone) < 1) && mono_ms() < end) {
        wh_poll(a, 10);
        wh_poll(b, 10);
    }
    /* b changes another endpoint: a syncs every row again, its own changes among them */
    ck_assert_int_eq(wh_endpoint_set_enabled(b, other, 0), WH_OK);
    end = mono_ms() + 5000;
    while (count(&sa, WH_NOTICE_ENDPOINT_DISABLED, other) < 1 && mono_ms() < end) {
        wh_poll(a, 10);
        wh_poll(b, 10);
    }
    for (int i = 0; i < 40; i++) { /* several syncs each */
        wh_poll(a, 10);
        wh_poll(b, 10);
    }
    ck_assert_uint_eq(count(&sa, WH_NOTICE_ENDPOINT_DISABLED, other), 1);
    ck_assert_uint_eq(count(&sb, WH_NOTICE_ENDPOINT_DISABLED, other), 1);
    ck_assert_uint_eq(count(&sa, WH_NOTICE_ENDPOINT_DISABLED, ep), 1);
    ck_assert_uint_eq(count(&sa, WH_NOTICE_ENDPOINT_ENABLED, ep), 1);
    ck_assert_uint_eq(count(&sb, WH_NOTICE_ENDPOINT_DISABLED, ep), 1);
    ck_assert_uint_eq(count(&sb, WH_NOTICE_ENDPOINT_ENABLED, ep), 1);
    ck_assert_uint_eq(count(&sa, WH_NOTICE_ENDPOINT_DISABLED, gone) + count(&sb, WH_NOTICE_ENDPOINT_DISABLED, gone), 2);
    heard hb = first(&sb, WH_NOTICE_ENDPOINT_DISABLED);
    ck_assert_msg(strstr(hb.reason, "another process"), "%s", hb.reason);
    /* the 410 was answered to one of them; the other reads the reason from the row */
    for (size_t i = 0; i < sb.n; i++)
        if (sb.v[i].kind == WH_NOTICE_ENDPOINT_DISABLED && strcmp(sb.v[i].endpoint_id, gone) == 0)
            ck_assert_msg(strstr(sb.v[i].reason, "410"), "%s", sb.v[i].reason);
    for (size_t i = 0; i < sa.n; i++)
        if (sa.v[i].kind == WH_NOTICE_ENDPOINT_DISABLED && strcmp(sa.v[i].endpoint_id, gone) == 0)
            ck_assert_msg(strstr(sa.v[i].reason, "410"), "%s", sa.v[i].reason);
    wh_destroy(a);
    wh_destroy(b);
    rcv_stop(r);
}
END_TEST

static int run_ctl(const char *store_arg, const char *extra, const char *args)
{
    const char *bin = getenv("WH_WEBHOOKCTL"), *root = getenv("WH_TEST_ROOT");
    char path[512], cmd[2048];
    if (bin && *bin)
        snprintf(path, sizeof path, "%s", bin);
    else
        snprintf(path, sizeof path, "%s/build/bin/webhookctl", root && *root ? root : ".");
    ck_assert_msg(access(path, X_OK) == 0, "%s is missing", path);
    snprintf(cmd, sizeof cmd, "%s -s '%s' %s %s >/dev/null 2>&1", path, store_arg, extra, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A running engine is told of what webhookctl did in another process. */
static void webhookctl_changes_are_told(const char *store_value, const char *ctl_store,
                                        const char *ctl_extra, const char *const *settings)
{
    rcv *r = rcv_start();
    notices s = {0};
    wh_ctx *ctx = open_ctx(store_value, settings, &s);
    char ep[WH_ID_MAX], args[256];
    add(ctx, r, "/h", task_types, ep);
    drive_for(ctx, 100);
    snprintf(args, sizeof args, "endpoint disable %s", ep);
    ck_assert_int_eq(run_ctl(ctl_store, ctl_extra, args), 0);
    ck_assert(drive_until(ctx, &s, WH_NOTICE_ENDPOINT_DISABLED, 1));
    heard h = first(&s, WH_NOTICE_ENDPOINT_DISABLED);
    ck_assert_str_eq(h.endpoint_id, ep);
    ck_assert_msg(strstr(h.reason, "another process"), "%s", h.reason);
    ck_assert(h.on_driver);
    snprintf(args, sizeof args, "endpoint enable %s", ep);
    ck_assert_int_eq(run_ctl(ctl_store, ctl_extra, args), 0);
    ck_assert(drive_until(ctx, &s, WH_NOTICE_ENDPOINT_ENABLED, 1));
    drive_for(ctx, 600);
    ck_assert_uint_eq(count(&s, WH_NOTICE_ENDPOINT_DISABLED, ep), 1);
    ck_assert_uint_eq(count(&s, WH_NOTICE_ENDPOINT_ENABLED, ep), 1);
    wh_destroy(ctx);
    rcv_stop(r);
}

START_TEST(webhookctl_disabling_on_a_shared_file_is_told_to_the_running_engine)
{
    webhookctl_changes_are_told(store, db, "", NULL);
}
END_TEST

/* ---- operational events --------------------------------------------------------------------- */

/* The requests to path, parsed (at most 16). */
static size_t bodies(rcv *r, const char *path, cJSON *out[16], rcv_request reqs[16])
{
    size_t n = 0;
    for (size_t i = 0; n < 16; i++) {
        rcv_request q;
        if (rcv_get(r, i, &q) != 0)
            break;
        if (strcmp(q.path, path) != 0) {
            rcv_request_free(&q);
            continue;
        }
        out[n] = cJSON_Parse(q.body);
        reqs[n++] = q;
    }
    return n;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

START_TEST(operational_events_go_to_their_subscribers_and_never_to_the_endpoint_concerned)
{
    rcv *r = rcv_start();
    rcv_script(r, "/gone", NULL, 0, (rcv_rule){.status = 410});
    wh_ctx *ctx = open_ctx(store_of(_i), NULL, NULL);
    const char *const ops[] = {"webhook.*", NULL};
    const char *const all[] = {"*", NULL};
    const char *const gone_types[] = {"task_run.*", "webhook.*", NULL};
    char gone[WH_ID_MAX], opsep[WH_ID_MAX], allep[WH_ID_MAX], ev[WH_ID_MAX];
    add(ctx, r, "/gone", gone_types, gone);
    add(ctx, r, "/ops", ops, opsep);
    add(ctx, r, "/all", all, allep);
    ck_assert_int_eq(emit(ctx, ev), 2);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);

    /* the subscriber: endpoint_disabled and delivery_failed about /gone, signed */
    cJSON *b[16];
    rcv_request q[16];
    size_t n = bodies(r, "/ops", b, q);
    ck_assert_uint_eq(n, 2);
    bool disabled = false, failed = false;
    for (size_t i = 0; i < n; i++) {
        ck_assert_ptr_nonnull(b[i]);
        ck_assert_int_eq(q[i].signature_ok, 1);
        ck_assert_str_eq(jstr(b[i], "id"), q[i].webhook_id);
        ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(b[i], "run_id")));
        ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(b[i], "task_id")));
        ck_assert_ptr_nonnull(jstr(b[i], "timestamp"));
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(b[i], "data");
        ck_assert_str_eq(jstr(data, "endpoint_id"), gone);
        ck_assert_ptr_nonnull(jstr(data, "reason"));
        const char *type = jstr(b[i], "event_type");
        if (strcmp(type, "webhook.endpoint_disabled") == 0) {
            disabled = true;
            ck_assert_str_eq(jstr(b[i], "status"), "disabled");
            ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(data, "event_id")));
            ck_assert_msg(strstr(jstr(data, "reason"), "410"), "%s", jstr(data, "reason"));
        } else {
            ck_assert_str_eq(type, "webhook.delivery_failed");
            failed = true;
            ck_assert_str_eq(jstr(b[i], "status"), "failed");
            ck_assert_str_eq(jstr(data, "event_id"), ev);
        }
        cJSON_Delete(b[i]);
        rcv_request_free(&q[i]);
    }
    ck_assert(disabled && failed);
    /* `*` does not take operational events; the endpoint concerned never gets its own */
    ck_assert_uint_eq(rcv_count(r, "/all"), 1);
    ck_assert_uint_eq(rcv_count(r, "/gone"), 1);

    /* enabled again by hand: told to /ops; /ops disabled by hand: not told to itself */
    ck_assert_int_eq(wh_endpoint_set_enabled(ctx, gone, 1), WH_OK);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/ops"), 3);
    ck_assert_uint_eq(rcv_count(r, "/gone"), 1);
    rcv_script(r, "/gone", NULL, 0, (rcv_rule){.status = 204});
    ck_assert_int_eq(wh_endpoint_set_enabled(ctx, opsep, 0), WH_OK);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    ck_assert_uint_eq(rcv_count(r, "/ops"), 3);
    ck_assert_uint_eq(rcv_count(r, "/gone"), 2); /* /gone takes webhook.* too */
    n = bodies(r, "/gone", b, q);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(jstr(b[1], "event_type"), "webhook.endpoint_disabled");
    ck_assert_str_eq(jstr(cJSON_GetObjectItemCaseSensitive(b[1], "data"), "endpoint_id"), opsep);
    for (size_t i = 0; i < n; i++) {
        cJSON_Delete(b[i]);
        rcv_request_free(&q[i]);
    }
    ck_assert_uint_eq(rcv_count(r, "/all"), 1);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

START_TEST(operational_types_are_the_library_s_own)
{
    wh_ctx *ctx = open_ctx(NULL, NULL, NULL);
    ck_assert_int_eq(wh_emit(ctx, &(wh_event){.event_type = "webhook.endpoint_disabled",
                                              .run_id = "r", .status = "x"}, NULL),
                     WH_ERR_INVALID);
    ck_assert_msg(strstr(wh_last_error(), "event_type"), "%s", wh_last_error());
    char id[WH_ID_MAX];
    const char *const exact[] = {"webhook.delivery_failed", NULL};
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "https://example.com/h",
                                                              .event_types = exact}, id), WH_OK);
    wh_destroy(ctx);
    wh_conf *c = wh_conf_new();
    char err[256];
    ck_assert_int_eq(wh_conf_set(c, "event_types.extra", "webhook.custom", err, sizeof err),
                     WH_ERR_INVALID);
    ck_assert_msg(strstr(err, "event_types.extra"), "%s", err);
    ck_assert_int_eq(wh_conf_set_notify(NULL, on_notice, NULL), WH_ERR_INVALID);
    wh_conf_destroy(c);
}
END_TEST

/* Two engines on one store see one 410, each tells its host, and both emit the operational
 * event under the one id the change gives it: the store's de-duplication keeps one. */
static void engines_name_a_change_alike(const char *store_value, const char *const *settings)
{
    rcv *r = rcv_start();
    rcv_script(r, "/gone", NULL, 0, (rcv_rule){.status = 410});
    notices sa = {0}, sb = {0};
    wh_ctx *a = open_ctx(store_value, settings, &sa);
    wh_ctx *b = open_ctx(store_value, settings, &sb);
    const char *const ops[] = {"webhook.endpoint_disabled", NULL};
    char gone[WH_ID_MAX], opsep[WH_ID_MAX];
    add(a, r, "/gone", task_types, gone);
    add(a, r, "/ops", ops, opsep);
    int64_t end = mono_ms() + 5000;
    while (wh_endpoint_get(b, opsep, got_endpoint, &(bool){false}) != WH_OK && mono_ms() < end)
        wh_poll(b, 20);
    ck_assert_int_eq(emit(a, NULL), 1);
    end = mono_ms() + 10000;
    while ((count(&sa, WH_NOTICE_ENDPOINT_DISABLED, gone) < 1 ||
            count(&sb, WH_NOTICE_ENDPOINT_DISABLED, gone) < 1) && mono_ms() < end) {
        wh_poll(a, 10);
        wh_poll(b, 10);
    }
    ck_assert_uint_eq(count(&sa, WH_NOTICE_ENDPOINT_DISABLED, gone), 1);
    ck_assert_uint_eq(count(&sb, WH_NOTICE_ENDPOINT_DISABLED, gone), 1);
    ck_assert_int_eq(wh_flush(a, 5000), WH_OK);
    ck_assert_int_eq(wh_flush(b, 5000), WH_OK);
    cJSON *bd[16];
    rcv_request q[16];
    drive_for(a, 300);
    drive_for(b, 300);
    size_t n = bodies(r, "/ops", bd, q);
    ck_assert_uint_eq(n, 1);
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(q[i].webhook_id, q[0].webhook_id);
        ck_assert_str_eq(jstr(bd[i], "event_type"), "webhook.endpoint_disabled");
        ck_assert_str_eq(jstr(cJSON_GetObjectItemCaseSensitive(bd[i], "data"), "endpoint_id"), gone);
        cJSON_Delete(bd[i]);
        rcv_request_free(&q[i]);
    }
    wh_destroy(a);
    wh_destroy(b);
    rcv_stop(r);
}

START_TEST(engines_sharing_a_file_name_a_change_alike)
{
    engines_name_a_change_alike(store, NULL);
}
END_TEST

/* ---- wh_wakeup ------------------------------------------------------------------------------ */

typedef struct {
    wh_ctx *ctx;
    int rounds;
    double returned_ms[8];
    int done; /* atomic: rounds finished */
} poller;

static void *poll_forever(void *arg)
{
    poller *p = arg;
    for (int i = 0; i < p->rounds; i++) {
        wh_poll(p->ctx, -1);
        p->returned_ms[i] = mono_ms_f();
        __atomic_store_n(&p->done, i + 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

/* The wakeup comes 50 ms into each wh_poll(ctx, -1); each must end within 10 ms of it. */
static void wakeups_end_waiting_polls(wh_ctx *ctx)
{
    poller p = {.ctx = ctx, .rounds = 3};
    pthread_t t;
    pthread_create(&t, NULL, poll_forever, &p);
    for (int i = 0; i < p.rounds; i++) {
        sleep_ms(50);
        ck_assert_int_eq(__atomic_load_n(&p.done, __ATOMIC_ACQUIRE), i); /* still waiting */
        double woke = mono_ms_f();
        ck_assert_int_eq(wh_wakeup(ctx), WH_OK);
        int64_t end = mono_ms() + 5000;
        while (__atomic_load_n(&p.done, __ATOMIC_ACQUIRE) <= i && mono_ms() < end)
            sleep_ms(1);
        ck_assert_msg(__atomic_load_n(&p.done, __ATOMIC_ACQUIRE) > i, "wh_poll(ctx, -1) never returned");
        double took = p.returned_ms[i] - woke;
        ck_assert_msg(took < 10.0, "round %d: wh_poll returned %.2f ms after wh_wakeup", i, took);
    }
    pthread_join(t, NULL);
}

START_TEST(wh_wakeup_ends_a_waiting_poll_within_10_ms)
{
    wh_ctx *ctx = open_ctx(NULL, NULL, NULL);
    wakeups_end_waiting_polls(ctx);
    ck_assert_int_eq(wh_wakeup(NULL), WH_ERR_INVALID);
    wh_destroy(ctx);
}
END_TEST

START_TEST(wh_wakeup_ends_a_poll_waiting_on_a_request_in_flight)
{
    rcv *r = rcv_start();
    rcv_script(r, "/slow", NULL, 0, (rcv_rule){.status = 204, .delay_ms = 3000});
    const char *const settings[] = {"http.timeout_ms", "4000", NULL};
    wh_ctx *ctx = open_ctx(NULL, settings, NULL);
    char ep[WH_ID_MAX];
    add(ctx, r, "/slow", task_types, ep);
    ck_assert_int_eq(emit(ctx, NULL), 1);
    wakeups_end_waiting_polls(ctx);
    wh_stats_info st;
    wh_stats(ctx, &st);
    ck_assert_uint_eq(st.in_flight, 1); /* the request was on the wire all along */
    rcv_stop(r);
    wh_destroy(ctx);
}
END_TEST

START_TEST(a_wakeup_before_the_poll_makes_it_return_at_once)
{
    wh_ctx *ctx = open_ctx(NULL, NULL, NULL);
    ck_assert_int_eq(wh_wakeup(ctx), WH_OK);
    double t0 = mono_ms_f();
    ck_assert_int_eq(wh_poll(ctx, -1), 0);
    double took = mono_ms_f() - t0;
    ck_assert_msg(took < 10.0, "wh_poll took %.2f ms", took);
    /* several wakeups before one poll still end only that one: a thread ends the next */
    wh_wakeup(ctx);
    wh_wakeup(ctx);
    ck_assert_int_eq(wh_poll(ctx, -1), 0);
    wakeups_end_waiting_polls(ctx);
    wh_destroy(ctx);
}
END_TEST

START_TEST(wh_wakeup_makes_wh_fd_readable)
{
    wh_ctx *ctx = open_ctx(NULL, NULL, NULL);
    int fd = wh_fd(ctx);
    ck_assert_int_ge(fd, 0);
    wh_poll(ctx, 0);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    ck_assert_int_eq(poll(&pfd, 1, 50), 0);
    ck_assert_int_eq(wh_wakeup(ctx), WH_OK);
    double t0 = mono_ms_f();
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    ck_assert_msg(mono_ms_f() - t0 < 10.0, "readable after %.2f ms", mono_ms_f() - t0);
    ck_assert_int_eq(wh_poll(ctx, 0), 0);
    wh_destroy(ctx);
}
END_TEST

/* wh_start's thread waits up to a second at a time; a wakeup ends that wait at once, which it
 * shows by reading its clock again. */
static int clock_reads;
static int64_t counting_clock(void *ud)
{
    (void)ud;
    __atomic_add_fetch(&clock_reads, 1, __ATOMIC_RELAXED);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

START_TEST(wh_wakeup_ends_the_wait_of_the_delivery_thread)
{
    wh_conf *c = wh_conf_new();
    wh_conf_set_clock(c, counting_clock, NULL);
    char err[256];
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(wh_start(ctx), WH_OK);
    for (int round = 0; round < 3; round++) {
        sleep_ms(100); /* the thread is waiting now */
        int before = __atomic_load_n(&clock_reads, __ATOMIC_RELAXED);
        double t0 = mono_ms_f();
        ck_assert_int_eq(wh_wakeup(ctx), WH_OK);
        while (__atomic_load_n(&clock_reads, __ATOMIC_RELAXED) == before && mono_ms_f() - t0 < 5000)
            sleep_ms(0);
        double took = mono_ms_f() - t0;
        ck_assert_msg(took < 10.0, "the delivery thread woke after %.2f ms", took);
    }
    ck_assert_int_eq(wh_stop(ctx, 0), WH_OK);
    wh_destroy(ctx);
}
END_TEST

/* ---- PostgreSQL ----------------------------------------------------------------------------- */

START_TEST(webhookctl_disabling_on_postgresql_is_told_to_the_running_engine)
{
    const char *const settings[] = {"store.schema", "notices", NULL};
    webhookctl_changes_are_told(cluster.conninfo, cluster.conninfo, "--schema notices", settings);
}
END_TEST

START_TEST(engines_sharing_postgresql_name_a_change_alike)
{
    const char *const settings[] = {"store.schema", "alike", NULL};
    engines_name_a_change_alike(cluster.conninfo, settings);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("notices");
    TCase *tc = tcase_create("notices");
    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, a_410_disables_the_endpoint_with_one_notice, 0, 2);
    tcase_add_loop_test(tc, failing_for_disable_after_disables_with_one_notice, 0, 2);
    tcase_add_loop_test(tc, disabled_and_enabled_by_hand_one_notice_each_on_the_driving_thread, 0, 2);
    tcase_add_loop_test(tc, a_delivery_given_up_after_its_last_retry_is_told_with_its_event_id, 0, 2);
    tcase_add_loop_test(tc, an_update_by_key_that_disables_or_enables_is_told_once, 0, 2);
    tcase_add_loop_test(tc, the_callback_may_call_the_library, 0, 2);
    tcase_add_test(tc, two_engines_on_one_file_are_each_told_once);
    tcase_add_test(tc, webhookctl_disabling_on_a_shared_file_is_told_to_the_running_engine);
    tcase_add_loop_test(tc, operational_events_go_to_their_subscribers_and_never_to_the_endpoint_concerned, 0, 2);
    tcase_add_test(tc, operational_types_are_the_library_s_own);
    tcase_add_test(tc, engines_sharing_a_file_name_a_change_alike);
    tcase_add_test(tc, wh_wakeup_ends_a_waiting_poll_within_10_ms);
    tcase_add_test(tc, wh_wakeup_ends_a_poll_waiting_on_a_request_in_flight);
    tcase_add_test(tc, a_wakeup_before_the_poll_makes_it_return_at_once);
    tcase_add_test(tc, wh_wakeup_makes_wh_fd_readable);
    tcase_add_test(tc, wh_wakeup_ends_the_wait_of_the_delivery_thread);
    suite_add_tcase(s, tc);
    TCase *pg = tcase_create("postgresql");
    tcase_add_unchecked_fixture(pg, pg_fixture_up, pg_fixture_down);
    tcase_set_timeout(pg, 120);
    tcase_add_test(pg, webhookctl_disabling_on_postgresql_is_told_to_the_running_engine);
    tcase_add_test(pg, engines_sharing_postgresql_name_a_change_alike);
    suite_add_tcase(s, pg);
    return s;
}

int main(void) { return support_run_suite(suite()); }
