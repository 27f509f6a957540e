/* What a host may do again without harm, on every store (memory, a real SQLite file, the
 * throwaway PostgreSQL server): emitting an event under its own id (one delivery however
 * often, across restarts and across engine processes sharing the store), adding an endpoint
 * under its key (the README's start-up code run three times leaves one endpoint); and the
 * event's run and task ids on every attempt, in the log and in the sinks. A real receiver
 * throughout. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "pg_fixture.h"
#include "scratch.h"
#include "support.h"
#include "webhook/webhook.h"
#include "webhook/webhook_pg.h"

enum { MEMORY, SQLITE, PG, N_STORES };

static char dir[64];

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A store of kind `store` named `name`: a file in the test's folder, or a schema. */
typedef struct {
    int store;
    char name[48];
} where;

static wh_conf *conf_for(const where *w, const char *const *settings)
{
    wh_conf *c = wh_conf_new();
    char err[512], path[160];
    if (w->store == SQLITE) {
        snprintf(path, sizeof path, "sqlite:%s/%s.db", dir, w->name);
        ck_assert_int_eq(wh_conf_set(c, "store", path, err, sizeof err), WH_OK);
    } else if (w->store == PG) {
        ck_assert_int_eq(wh_conf_set(c, "store", cluster.conninfo, err, sizeof err), WH_OK);
        ck_assert_int_eq(wh_conf_set(c, "store.schema", w->name, err, sizeof err), WH_OK);
    }
    ck_assert_int_eq(wh_conf_set(c, "retry.jitter", "0", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    for (const char *const *s = settings; s && *s; s += 2)
        ck_assert_msg(wh_conf_set(c, s[0], s[1], err, sizeof err) == WH_OK, "%s", err);
    return c;
}

static wh_ctx *open_conf(wh_conf *c)
{
    char err[512];
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

static wh_ctx *open_at(const where *w, const char *const *settings)
{
    return open_conf(conf_for(w, settings));
}

/* Each loop test runs once per store; the durable ones in a place of their own. */
static where setup(int store, const char *name)
{
    where w = {.store = store};
    snprintf(w.name, sizeof w.name, "%s", name);
    if (store == SQLITE)
        scratch_dir_make(dir, sizeof dir, "wh-idem");
    return w;
}

static void teardown(const where *w)
{
    if (w->store == SQLITE)
        scratch_dir_remove(dir);
}

static int emit_id(wh_ctx *ctx, const char *id, const char *run, char out[WH_ID_MAX])
{
    return wh_emit(ctx, &(wh_event){.event_type = "task_run.completed", .run_id = run,
                                    .task_id = "task_9", .status = "completed", .id = id}, out);
}

/* Drives until `path` has n requests, then a little longer (a second one would show). */
static void deliver(wh_ctx *ctx, rcv *r, const char *path, size_t n)
{
    int64_t deadline = wall_ms() + 10000;
    while (rcv_count(r, path) < n && wall_ms() < deadline)
        wh_poll(ctx, 20);
    ck_assert_msg(rcv_count(r, path) >= n, "%zu of %zu requests arrived", rcv_count(r, path), n);
    int64_t settle = wall_ms() + 300;
    while (wall_ms() < settle)
        wh_poll(ctx, 20);
}

/* How many requests carried webhook-id `id`. */
static size_t requests_with_id(rcv *r, const char *id)
{
    size_t n = 0;
    for (size_t i = 0; i < rcv_count(r, NULL); i++) {
        rcv_request q;
        ck_assert_int_eq(rcv_get(r, i, &q), 0);
        n += strcmp(q.webhook_id, id) == 0;
        rcv_request_free(&q);
    }
    return n;
}

static void add_receiver(wh_ctx *ctx, rcv *r, const char *path, char ep[WH_ID_MAX])
{
    char url[128];
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = rcv_url(r, path, url, sizeof url)},
                                     ep), WH_OK);
}

/* ---- idempotent emit ---------------------------------------------------------------------- */

START_TEST(the_same_id_twice_is_one_delivery_and_the_same_answer)
{
    where w = setup(_i, "same_id");
    rcv *r = rcv_start();
    wh_ctx *ctx = open_at(&w, NULL);
    char a[WH_ID_MAX], b[WH_ID_MAX], ep[WH_ID_MAX];
    /* an id that went nowhere is remembered as such: added endpoints do not get it later */
    ck_assert_int_eq(emit_id(ctx, "early", "run_1", NULL), 0);
    add_receiver(ctx, r, "/one", ep);
    add_receiver(ctx, r, "/two", ep);
    ck_assert_int_eq(emit_id(ctx, "order-42.completed", "run_1", a), 2);
    ck_assert_str_eq(a, "order-42.completed");
    ck_assert_int_eq(emit_id(ctx, "order-42.completed", "run_1", b), 2);
    ck_assert_str_eq(b, "order-42.completed");
    deliver(ctx, r, NULL, 2);
    ck_assert_uint_eq(rcv_count(r, "/one"), 1);
    ck_assert_uint_eq(rcv_count(r, "/two"), 1);
    ck_assert_uint_eq(requests_with_id(r, "order-42.completed"), 2);
    /* the answer is the first emit's even when the endpoints changed since */
    ck_assert_int_eq(wh_endpoint_set_enabled(ctx, ep, 0), WH_OK);
    ck_assert_int_eq(emit_id(ctx, "order-42.completed", "run_1", b), 2);
    deliver(ctx, r, NULL, 2);
    ck_assert_uint_eq(rcv_count(r, NULL), 2);
    wh_stats_info st;
    ck_assert_int_eq(wh_stats(ctx, &st), WH_OK);
    ck_assert_uint_eq(st.emitted, 2);
    ck_assert_int_eq(emit_id(ctx, "early", "run_1", NULL), 0);
    deliver(ctx, r, NULL, 2);
    ck_assert_uint_eq(requests_with_id(r, "early"), 0);
    wh_destroy(ctx);
    rcv_stop(r);
    teardown(&w);
}
END_TEST

START_TEST(with_dedup_window_0_the_same_id_is_sent_twice)
{
    where w = setup(_i, "window_0");
    rcv *r = rcv_start();
    wh_ctx *ctx = open_at(&w, (const char *[]){"emit.dedup_window", "0", NULL});
    char ep[WH_ID_MAX];
    add_receiver(ctx, r, "/z", ep);
    ck_assert_int_eq(emit_id(ctx, "again", "run_1", NULL), 1);
    ck_assert_int_eq(emit_id(ctx, "again", "run_1", NULL), 1);
    deliver(ctx, r, "/z", 2);
    ck_assert_uint_eq(requests_with_id(r, "again"), 2);
    wh_destroy(ctx);
    rcv_stop(r);
    teardown(&w);
}
END_TEST

START_TEST(bad_ids_are_refused_naming_id)
{
    where w = setup(_i, "bad_ids");
    wh_ctx *ctx = open_at(&w, NULL);
    char ep[WH_ID_MAX];
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "http://127.0.0.1:9/x"}, ep),
                     WH_OK);
    char long_id[80];
    memset(long_id, 'a', 64);
    long_id[64] = '\0';
    const char *bad[] = {"", long_id, "a b", "a,b", "caf\xc3\xa9", "tab\there", "nl\n", "\x7f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[WH_ID_MAX] = "untouched";
        ck_assert_int_eq(emit_id(ctx, bad[i], "run_1", out), WH_ERR_INVALID);
        ck_assert_msg(strncmp(wh_last_error(), "id: ", 4) == 0, "%s", wh_last_error());
        ck_assert_str_eq(out, "untouched");
    }
    long_id[63] = '\0'; /* 63 bytes: the longest that fits */
    ck_assert_int_eq(emit_id(ctx, long_id, "run_1", NULL), 1);
    ck_assert_int_eq(emit_id(ctx, "evt~!#$%&'()*+-./:;<=>?@[]^_`{|}", "run_1", NULL), 1);
    wh_stats_info st;
    ck_assert_int_eq(wh_stats(ctx, &st), WH_OK);
    ck_assert_uint_eq(st.emitted, 2);
    wh_destroy(ctx);
    teardown(&w);
}
END_TEST

/* the durable stores only: */
START_TEST(the_same_id_after_a_restart_is_not_sent_again)
{
    where w = setup(_i, "restart");
    rcv *r = rcv_start();
    wh_ctx *ctx = open_at(&w, NULL);
    char ep[WH_ID_MAX];
    add_receiver(ctx, r, "/r", ep);
    ck_assert_int_eq(emit_id(ctx, "restart-1", "run_1", NULL), 1);
    deliver(ctx, r, "/r", 1);
    wh_destroy(ctx);
    /* and one emitted, not yet sent, when the engine stopped */
    ctx = open_at(&w, NULL);
    ck_assert_int_eq(emit_id(ctx, "restart-1", "run_1", NULL), 1);
    ck_assert_int_eq(emit_id(ctx, "restart-2", "run_1", NULL), 1);
    wh_destroy(ctx);
    ctx = open_at(&w, NULL);
    char out[WH_ID_MAX];
    ck_assert_int_eq(emit_id(ctx, "restart-2", "run_1", out), 1);
    ck_assert_str_eq(out, "restart-2");
    deliver(ctx, r, "/r", 2);
    ck_assert_uint_eq(requests_with_id(r, "restart-1"), 1);
    ck_assert_uint_eq(requests_with_id(r, "restart-2"), 1);
    wh_destroy(ctx);
    rcv_stop(r);
    teardown(&w);
}
END_TEST

/* Retention prunes what is older than log.retention, but never an event younger than the
 * dedup window: a clock moved past the retention, the id still holds. */
static int64_t clock_now(void *ud) { return wall_ms() + *(int64_t *)ud; }

START_TEST(retention_keeps_an_event_for_its_dedup_window)
{
    where w = setup(_i, "retention");
    rcv *r = rcv_start();
    int64_t ahead = 0;
    wh_conf *c = conf_for(&w, (const char *[]){"log.retention", "1h", NULL});
    wh_conf_set_clock(c, clock_now, &ahead);
    wh_ctx *ctx = open_conf(c);
    char ep[WH_ID_MAX];
    add_receiver(ctx, r, "/k", ep);
    ck_assert_int_eq(emit_id(ctx, "kept", "run_1", NULL), 1);
    ck_assert_int_eq(emit_id(ctx, "pruned", "run_1", NULL), 1);
    deliver(ctx, r, "/k", 2);
    wh_destroy(ctx);
    /* two hours on: both older than the retention, younger than the window */
    ahead = 2 * 3600 * 1000;
    c = conf_for(&w, (const char *[]){"log.retention", "1h", NULL});
    wh_conf_set_clock(c, clock_now, &ahead);
    ctx = open_conf(c);
    int64_t end = wall_ms() + 1500; /* upkeep prunes within a second or two */
    while (wall_ms() < end)
        wh_poll(ctx, 50);
    int rows = 0;
    wh_log_filter f = {.event_id = "kept"};
    ck_assert_int_eq(wh_log_query(ctx, &f, NULL, &rows), 0); /* its attempts went */
    ck_assert_int_eq(emit_id(ctx, "kept", "run_1", NULL), 1);
    deliver(ctx, r, "/k", 2);
    ck_assert_uint_eq(requests_with_id(r, "kept"), 1);
    wh_destroy(ctx);
    /* a day and more on: the window has passed, the id is new again */
    ahead = 26 * 3600 * 1000;
    c = conf_for(&w, (const char *[]){"log.retention", "1h", NULL});
    wh_conf_set_clock(c, clock_now, &ahead);
    ctx = open_conf(c);
    ck_assert_int_eq(emit_id(ctx, "pruned", "run_1", NULL), 1);
    deliver(ctx, r, "/k", 3);
    ck_assert_uint_eq(requests_with_id(r, "pruned"), 2);
    wh_destroy(ctx);
    rcv_stop(r);
    teardown(&w);
}
END_TEST

/* Two engine processes emit the same ids at the same moment: each id is one event, both get
 * the same answer for it, and the receiver sees it once. */
#define RACE_IDS 40

static void racing_engine(const where *w, int go_fd, int out_fd)
{
    char err[512];
    wh_conf *c = conf_for(w, NULL);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    if (!ctx)
        _exit(3);
    char go;
    if (read(go_fd, &go, 1) != 1)
        _exit(4);
    for (int i = 0; i < RACE_IDS; i++) {
        char id[32];
        snprintf(id, sizeof id, "race-%d", i);
        int n = emit_id(ctx, id, "run_race", NULL);
        if (write(out_fd, &n, sizeof n) != sizeof n)
            _exit(5);
    }
    /* what this engine holds goes to the others at once */
    wh_destroy(ctx);
    _exit(0);
}

START_TEST(two_engines_emitting_the_same_id_at_once_send_it_once)
{
    where w = setup(_i, "race");
    rcv *r = rcv_start();
    wh_ctx *ctx = open_at(&w, NULL);
    char ep[WH_ID_MAX];
    add_receiver(ctx, r, "/race", ep);
    wh_destroy(ctx);
    int go[2], out[2][2];
    ck_assert_int_eq(pipe(go), 0);
    pid_t pids[2];
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(pipe(out[k]), 0);
        pids[k] = fork();
        ck_assert_int_ge(pids[k], 0);
        if (pids[k] == 0) {
            close(go[1]);
            close(out[k][0]);
            racing_engine(&w, go[0], out[k][1]);
        }
        close(out[k][1]);
    }
    close(go[0]);
    usleep(300 * 1000); /* both connected and waiting */
    ck_assert_int_eq(write(go[1], "gg", 2), 2);
    close(go[1]);
    for (int i = 0; i < RACE_IDS; i++) {
        int n0 = -99, n1 = -99;
        ck_assert_int_eq(read(out[0][0], &n0, sizeof n0), (ssize_t)sizeof n0);
        ck_assert_int_eq(read(out[1][0], &n1, sizeof n1), (ssize_t)sizeof n1);
        ck_assert_int_eq(n0, 1);
        ck_assert_int_eq(n1, 1);
    }
    for (int k = 0; k < 2; k++) {
        int status;
        ck_assert_int_eq(waitpid(pids[k], &status, 0), pids[k]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "engine %d: %d", k, status);
        close(out[k][0]);
    }
    ctx = open_at(&w, NULL);
    deliver(ctx, r, "/race", RACE_IDS);
    int64_t settle = wall_ms() + 700;
    while (wall_ms() < settle)
        wh_poll(ctx, 20);
    ck_assert_uint_eq(rcv_count(r, "/race"), RACE_IDS);
    for (int i = 0; i < RACE_IDS; i++) {
        char id[32];
        snprintf(id, sizeof id, "race-%d", i);
        ck_assert_uint_eq(requests_with_id(r, id), 1);
    }
    wh_destroy(ctx);
    rcv_stop(r);
    teardown(&w);
}
END_TEST

START_TEST(wh_emit_pg_honours_the_id)
{
    where w = setup(PG, "emit_pg");
    rcv *r = rcv_start();
    wh_ctx *ctx = open_at(&w, NULL);
    char ep[WH_ID_MAX], out[WH_ID_MAX];
    add_receiver(ctx, r, "/pg", ep);
    PGconn *conn = PQconnectdb(cluster.conninfo);
    ck_assert_int_eq(PQstatus(conn), CONNECTION_OK);
    const wh_event ev = {.event_type = "task_run.completed", .run_id = "run_pg", .task_id = "t",
                         .status = "completed", .id = "pg-1"};
    for (int k = 0; k < 2; k++) {
        PQclear(PQexec(conn, "BEGIN"));
        ck_assert_int_eq(wh_emit_pg(ctx, conn, &ev, out), 1);
        ck_assert_str_eq(out, "pg-1");
        PQclear(PQexec(conn, "COMMIT"));
    }
    /* wh_emit sees it too, and the other way round */
    ck_assert_int_eq(emit_id(ctx, "pg-1", "run_pg", NULL), 1);
    ck_assert_int_eq(emit_id(ctx, "pg-2", "run_pg", NULL), 1);
    PQclear(PQexec(conn, "BEGIN"));
    ck_assert_int_eq(wh_emit_pg(ctx, conn, &(wh_event){.event_type = "task_run.completed",
                                                       .run_id = "run_pg", .task_id = "t",
                                                       .status = "completed", .id = "pg-2"},
                                NULL), 1);
    /* a bad id is refused and the host's transaction goes on */
    ck_assert_int_eq(wh_emit_pg(ctx, conn, &(wh_event){.event_type = "task_run.completed",
                                                       .run_id = "run_pg", .task_id = "t",
                                                       .status = "completed", .id = "a b"},
                                NULL), WH_ERR_INVALID);
    PGresult *res = PQexec(conn, "COMMIT");
    ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    PQfinish(conn);
    deliver(ctx, r, "/pg", 2);
    ck_assert_uint_eq(requests_with_id(r, "pg-1"), 1);
    ck_assert_uint_eq(requests_with_id(r, "pg-2"), 1);
    /* with no endpoint at all, an id is remembered all the same (an empty list of targets):
     * emitted again, it is a repeat */
    ck_assert_int_eq(wh_endpoint_remove(ctx, ep), WH_OK);
    conn = PQconnectdb(cluster.conninfo);
    ck_assert_int_eq(PQstatus(conn), CONNECTION_OK);
    const wh_event lone = {.event_type = "workflow_run.failed", .run_id = "run_pg",
                           .status = "failed", .id = "pg-lone"};
    for (int k = 0; k < 2; k++) {
        PQclear(PQexec(conn, "BEGIN"));
        ck_assert_int_eq(wh_emit_pg(ctx, conn, &lone, NULL), 0);
        res = PQexec(conn, "COMMIT");
        ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
        PQclear(res);
    }
    PQfinish(conn);
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.events WHERE id = 'pg-lone'", w.name);
    ck_assert_int_eq(pg_sql_int(&cluster, sql), 1);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

/* ---- endpoint keys ------------------------------------------------------------------------ */

typedef struct {
    int n;
    char id[WH_ID_MAX], url[256], key[64], secret[128], description[64], types[128];
    int enabled;
} ep_seen;

static void see_endpoint(void *ud, const wh_endpoint_info *e)
{
    ep_seen *s = ud;
    s->n++;
    snprintf(s->id, sizeof s->id, "%s", e->id);
    snprintf(s->url, sizeof s->url, "%s", e->url);
    snprintf(s->key, sizeof s->key, "%s", e->key ? e->key : "(null)");
    snprintf(s->secret, sizeof s->secret, "%s", e->secret);
    snprintf(s->description, sizeof s->description, "%s", e->description);
    s->types[0] = '\0';
    for (const char *const *t = e->event_types; *t; t++)
        snprintf(s->types + strlen(s->types), sizeof s->types - strlen(s->types), "%s%s",
                 t == e->event_types ? "" : ",", *t);
    s->enabled = e->enabled;
}

/* The README's start-up code: an engine that adds its endpoint every time it starts. */
static void readme_start_up(const where *w, char ep[WH_ID_MAX])
{
    wh_ctx *wh = open_at(w, (const char *[]){"retry.schedule", "10s,1m,10m,1h", NULL});
    const char *types[] = {"workflow_run.*", "task_run.completed", NULL};
    ck_assert_int_eq(wh_endpoint_add(wh, &(wh_endpoint_spec){.url = "https://ops.example.com/hooks",
                                                             .event_types = types,
                                                             .key = "ops-hooks"}, ep),
                     WH_OK);
    wh_destroy(wh);
}

START_TEST(the_readme_start_up_code_run_three_times_leaves_one_endpoint)
{
    where w = setup(_i, "readme");
    char first[WH_ID_MAX], ep[WH_ID_MAX];
    readme_start_up(&w, first);
    for (int k = 0; k < 2; k++) {
        readme_start_up(&w, ep);
        ck_assert_str_eq(ep, first);
    }
    wh_ctx *ctx = open_at(&w, NULL);
    ep_seen s = {0};
    ck_assert_int_eq(wh_endpoint_list(ctx, see_endpoint, &s), 1);
    ck_assert_str_eq(s.id, first);
    ck_assert_str_eq(s.key, "ops-hooks");
    ck_assert_str_eq(s.types, "workflow_run.*,task_run.completed");
    wh_destroy(ctx);
    teardown(&w);
}
END_TEST

START_TEST(adding_a_key_again_updates_that_endpoint_in_place)
{
    where w = setup(_i, "upsert");
    rcv *r = rcv_start();
    wh_ctx *ctx = open_at(&w, NULL);
    char url_a[128], url_b[128], a[WH_ID_MAX], b[WH_ID_MAX], plain[WH_ID_MAX];
    rcv_url(r, "/a", url_a, sizeof url_a);
    rcv_url(r, "/b", url_b, sizeof url_b);
    const char *started[] = {"task_run.started", NULL}, *completed[] = {"task_run.completed", NULL};
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url_a, .event_types = started,
                                                              .key = "team", .description = "one"},
                                     a), WH_OK);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url_a}, plain), WH_OK);
    ep_seen before = {0}, after = {0};
    ck_assert_int_eq(wh_endpoint_get(ctx, a, see_endpoint, &before), WH_OK);
    ck_assert_str_eq(before.key, "team");
    /* url, types and description change; no secret given: it is kept */
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url_b, .event_types = completed,
                                                              .key = "team", .description = "two"},
                                     b), WH_OK);
    ck_assert_str_eq(b, a);
    ck_assert_int_eq(wh_endpoint_list(ctx, NULL, NULL), 2);
    ck_assert_int_eq(wh_endpoint_get(ctx, a, see_endpoint, &after), WH_OK);
    ck_assert_str_eq(after.url, url_b);
    ck_assert_str_eq(after.types, "task_run.completed");
    ck_assert_str_eq(after.description, "two");
    ck_assert_str_eq(after.secret, before.secret);
    ep_seen other = {0};
    ck_assert_int_eq(wh_endpoint_get(ctx, plain, see_endpoint, &other), WH_OK);
    ck_assert_str_eq(other.key, "(null)");
    /* deliveries follow: completed goes to /b now, started nowhere keyed */
    ck_assert_int_eq(emit_id(ctx, NULL, "run_1", NULL), 2);
    deliver(ctx, r, NULL, 2);
    ck_assert_uint_eq(rcv_count(r, "/b"), 1);
    ck_assert_uint_eq(rcv_count(r, "/a"), 1); /* the plain endpoint */
    ck_assert_int_eq(wh_emit(ctx, &(wh_event){.event_type = "task_run.started", .run_id = "run_1",
                                              .task_id = "t", .status = "started"}, NULL), 1);
    deliver(ctx, r, NULL, 3);
    ck_assert_uint_eq(rcv_count(r, "/a"), 2);
    ck_assert_uint_eq(rcv_count(r, "/b"), 1);
    /* disabled by the spec, and enabled again */
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url_b, .event_types = completed,
                                                              .key = "team", .description = "two",
                                                              .disabled = 1}, b), WH_OK);
    ck_assert_int_eq(wh_endpoint_get(ctx, a, see_endpoint, &after), WH_OK);
    ck_assert_int_eq(after.enabled, 0);
    ck_assert_int_eq(emit_id(ctx, NULL, "run_1", NULL), 1);
    /* a secret given replaces it */
    const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url_b, .event_types = completed,
                                                              .key = "team", .secret = secret},
                                     b), WH_OK);
    ck_assert_int_eq(wh_endpoint_get(ctx, a, see_endpoint, &after), WH_OK);
    ck_assert_int_eq(after.enabled, 1);
    ck_assert_str_eq(after.secret, secret);
    ck_assert_str_eq(after.description, "");
    rcv_set_secret(r, "/b", secret);
    ck_assert_int_eq(emit_id(ctx, NULL, "run_1", NULL), 2);
    deliver(ctx, r, "/b", 2);
    ck_assert_uint_eq(rcv_bad_signatures(r), 0);
    /* a bad key is refused, naming it */
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url_b, .key = ""}, b),
                     WH_ERR_INVALID);
    ck_assert_msg(strncmp(wh_last_error(), "key: ", 5) == 0, "%s", wh_last_error());
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url_b, .key = "a b"}, b),
                     WH_ERR_INVALID);
    ck_assert_int_eq(wh_endpoint_list(ctx, NULL, NULL), 2);
    wh_destroy(ctx);

    if (w.store != MEMORY) {
        /* across a restart: the key finds the stored endpoint; the secret is kept */
        ctx = open_at(&w, NULL);
        ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url_a, .key = "team"}, b),
                         WH_OK);
        ck_assert_str_eq(b, a);
        ck_assert_int_eq(wh_endpoint_get(ctx, a, see_endpoint, &after), WH_OK);
        ck_assert_str_eq(after.secret, secret);
        ck_assert_str_eq(after.url, url_a);
        ck_assert_str_eq(after.types, "*");
        ck_assert_int_eq(wh_endpoint_list(ctx, NULL, NULL), 2);
        wh_destroy(ctx);
    }
    rcv_stop(r);
    teardown(&w);
}
END_TEST

/* Another engine, running, takes over what a key's update changed. */
START_TEST(an_engine_running_takes_over_another_engines_update)
{
    where w = setup(_i, "takeover");
    rcv *r = rcv_start();
    char url_a[128], url_b[128], a[WH_ID_MAX], b[WH_ID_MAX];
    rcv_url(r, "/a", url_a, sizeof url_a);
    rcv_url(r, "/b", url_b, sizeof url_b);
    wh_ctx *running = open_at(&w, NULL);
    ck_assert_int_eq(wh_endpoint_add(running, &(wh_endpoint_spec){.url = url_a, .key = "k"}, a),
                     WH_OK);
    wh_ctx *other = open_at(&w, NULL);
    ck_assert_int_eq(wh_endpoint_add(other, &(wh_endpoint_spec){.url = url_b, .key = "k"}, b), WH_OK);
    ck_assert_str_eq(b, a);
    wh_destroy(other);
    ep_seen s = {0};
    int64_t deadline = wall_ms() + 5000;
    do {
        wh_poll(running, 50);
        ck_assert_int_eq(wh_endpoint_get(running, a, see_endpoint, &s), WH_OK);
    } while (strcmp(s.url, url_b) != 0 && wall_ms() < deadline);
    ck_assert_str_eq(s.url, url_b);
    ck_assert_int_eq(emit_id(running, NULL, "run_1", NULL), 1);
    deliver(running, r, "/b", 1);
    ck_assert_uint_eq(rcv_count(r, "/a"), 0);
    wh_destroy(running);
    rcv_stop(r);
    teardown(&w);
}
END_TEST

/* Engines adding the same key at the same moment end with one endpoint. */
static void adding_engine(const where *w, int go_fd, int out_fd)
{
    char err[512];
    wh_ctx *ctx = wh_new(conf_for(w, NULL), err, sizeof err);
    char go, id[WH_ID_MAX] = "";
    if (!ctx || read(go_fd, &go, 1) != 1)
        _exit(3);
    for (int i = 0; i < 10; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        if (wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "http://127.0.0.1:9/x", .key = key},
                            id) != WH_OK ||
            write(out_fd, id, WH_ID_MAX) != WH_ID_MAX)
            _exit(4);
    }
    wh_destroy(ctx);
    _exit(0);
}

START_TEST(engines_adding_the_same_key_at_once_make_one_endpoint)
{
    where w = setup(_i, "keyrace");
    wh_destroy(open_at(&w, NULL)); /* the schema made first */
    int go[2], out[3][2];
    ck_assert_int_eq(pipe(go), 0);
    pid_t pids[3];
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(pipe(out[k]), 0);
        pids[k] = fork();
        ck_assert_int_ge(pids[k], 0);
        if (pids[k] == 0) {
            close(go[1]);
            close(out[k][0]);
            adding_engine(&w, go[0], out[k][1]);
        }
        close(out[k][1]);
    }
    close(go[0]);
    usleep(300 * 1000);
    ck_assert_int_eq(write(go[1], "ggg", 3), 3);
    close(go[1]);
    for (int i = 0; i < 10; i++) {
        char ids[3][WH_ID_MAX];
        for (int k = 0; k < 3; k++)
            ck_assert_int_eq(read(out[k][0], ids[k], WH_ID_MAX), WH_ID_MAX);
        ck_assert_str_eq(ids[0], ids[1]);
        ck_assert_str_eq(ids[0], ids[2]);
    }
    for (int k = 0; k < 3; k++) {
        int status;
        ck_assert_int_eq(waitpid(pids[k], &status, 0), pids[k]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "engine %d: %d", k, status);
        close(out[k][0]);
    }
    wh_ctx *ctx = open_at(&w, NULL);
    ck_assert_int_eq(wh_endpoint_list(ctx, NULL, NULL), 10);
    wh_destroy(ctx);
    teardown(&w);
}
END_TEST

/* ---- run and task ids on attempts ------------------------------------------------------ */

typedef struct {
    pthread_mutex_t mu;
    int n, with_ids, redeliveries;
} sink_seen;

static void sink_write(void *ud, const wh_attempt *a)
{
    sink_seen *s = ud;
    pthread_mutex_lock(&s->mu);
    s->n++;
    if (a->run_id && strcmp(a->run_id, "run_77") == 0 &&
        (strcmp(a->event_type, "workflow_run.started") == 0 ? !a->task_id
                                                            : a->task_id && strcmp(a->task_id, "task_9") == 0))
        s->with_ids++;
    s->redeliveries += a->redelivery != 0;
    pthread_mutex_unlock(&s->mu);
}

typedef struct {
    int n, task_ok, workflow_ok, redeliveries;
} log_seen;

static void log_row(void *ud, const wh_attempt *a)
{
    log_seen *s = ud;
    s->n++;
    if (!a->run_id || strcmp(a->run_id, "run_77") != 0)
        return;
    if (strcmp(a->event_type, "workflow_run.started") == 0)
        s->workflow_ok += a->task_id == NULL;
    else
        s->task_ok += a->task_id && strcmp(a->task_id, "task_9") == 0;
    s->redeliveries += a->redelivery != 0;
}

START_TEST(attempts_carry_the_run_and_task_ids)
{
    where w = setup(_i, "run_task");
    rcv *r = rcv_start();
    sink_seen sink = {.mu = PTHREAD_MUTEX_INITIALIZER};
    wh_conf *c = conf_for(&w, NULL);
    ck_assert_int_eq(wh_conf_add_log_sink(c, &(wh_log_sink){.write = sink_write, .ud = &sink}),
                     WH_OK);
    wh_ctx *ctx = open_conf(c);
    char ep[WH_ID_MAX], task_event[WH_ID_MAX];
    add_receiver(ctx, r, "/ids", ep);
    ck_assert_int_eq(emit_id(ctx, NULL, "run_77", task_event), 1);
    ck_assert_int_eq(wh_emit(ctx, &(wh_event){.event_type = "workflow_run.started",
                                              .run_id = "run_77", .status = "started"}, NULL), 1);
    deliver(ctx, r, "/ids", 2);
    log_seen l = {0};
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){0}, log_row, &l), 2);
    ck_assert_int_eq(l.task_ok, 1);
    ck_assert_int_eq(l.workflow_ok, 1);
    /* sent again: the stored event's ids (read back from the store) and the mark */
    ck_assert_int_eq(wh_redeliver(ctx, task_event, NULL), 1);
    deliver(ctx, r, "/ids", 3);
    l = (log_seen){0};
    ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){.event_id = task_event}, log_row, &l), 2);
    ck_assert_int_eq(l.task_ok, 2);
    ck_assert_int_eq(l.redeliveries, 1);
    pthread_mutex_lock(&sink.mu);
    ck_assert_int_eq(sink.n, 3);
    ck_assert_int_eq(sink.with_ids, 3);
    ck_assert_int_eq(sink.redeliveries, 1);
    pthread_mutex_unlock(&sink.mu);
    wh_destroy(ctx);
    if (w.store != MEMORY) {
        /* an event left pending by one engine carries its ids to the engine that sends it */
        rcv_script(r, "/ids", NULL, 0, (rcv_rule){.status = 503});
        c = conf_for(&w, (const char *[]){"retry.schedule", "1s", NULL});
        sink = (sink_seen){.mu = PTHREAD_MUTEX_INITIALIZER};
        ctx = open_conf(c);
        ck_assert_int_eq(emit_id(ctx, NULL, "run_77", NULL), 1);
        deliver(ctx, r, "/ids", 4);
        wh_destroy(ctx);
        rcv_script(r, "/ids", NULL, 0, (rcv_rule){.status = 204});
        c = conf_for(&w, NULL);
        ck_assert_int_eq(wh_conf_add_log_sink(c, &(wh_log_sink){.write = sink_write, .ud = &sink}),
                         WH_OK);
        ctx = open_conf(c);
        deliver(ctx, r, "/ids", 5);
        pthread_mutex_lock(&sink.mu);
        ck_assert_int_eq(sink.n, 1);
        ck_assert_int_eq(sink.with_ids, 1);
        pthread_mutex_unlock(&sink.mu);
        l = (log_seen){0};
        ck_assert_int_eq(wh_log_query(ctx, &(wh_log_filter){0}, log_row, &l), 5);
        ck_assert_int_eq(l.task_ok + l.workflow_ok, 5);
        wh_destroy(ctx);
    }
    rcv_stop(r);
    teardown(&w);
}
END_TEST

/* WH_TEST_ONLY=part-of-a-name runs only the tests whose name has it. */
#define ADD(tc, fn, from, to)                                                              \
    do {                                                                                   \
        const char *only_ = getenv("WH_TEST_ONLY");                                        \
        if (!only_ || strstr(#fn, only_))                                                  \
            tcase_add_loop_test(tc, fn, from, to);                                         \
    } while (0)

static Suite *suite(void)
{
    Suite *s = suite_create("idempotent");
    TCase *tc = tcase_create("idempotent");
    /* one server for every test (loop index PG), stopped and removed however they end */
    tcase_add_unchecked_fixture(tc, pg_fixture_up, pg_fixture_down);
    tcase_set_timeout(tc, 120);
    ADD(tc, the_same_id_twice_is_one_delivery_and_the_same_answer, MEMORY, N_STORES);
    ADD(tc, with_dedup_window_0_the_same_id_is_sent_twice, MEMORY, N_STORES);
    ADD(tc, bad_ids_are_refused_naming_id, MEMORY, N_STORES);
    ADD(tc, the_same_id_after_a_restart_is_not_sent_again, SQLITE, N_STORES);
    ADD(tc, retention_keeps_an_event_for_its_dedup_window, SQLITE, N_STORES);
    ADD(tc, two_engines_emitting_the_same_id_at_once_send_it_once, SQLITE, N_STORES);
    ADD(tc, wh_emit_pg_honours_the_id, 0, 1);
    ADD(tc, the_readme_start_up_code_run_three_times_leaves_one_endpoint, SQLITE, N_STORES);
    ADD(tc, adding_a_key_again_updates_that_endpoint_in_place, MEMORY, N_STORES);
    ADD(tc, an_engine_running_takes_over_another_engines_update, SQLITE, N_STORES);
    ADD(tc, engines_adding_the_same_key_at_once_make_one_endpoint, SQLITE, N_STORES);
    ADD(tc, attempts_carry_the_run_and_task_ids, MEMORY, N_STORES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
