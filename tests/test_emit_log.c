/* The SQLite store's log of emits, on real files with a real receiver and real processes:
 * an emit is taken while another process holds the database's write lock; a killed engine's
 * logged emits are delivered by the next engine, once each; a record cut short by the kill
 * is not; a log whose records were stored before the kill (the file not yet emptied) sends
 * nothing twice; nor does a batch cut short; the log is found whatever path opened the
 * database; store.sync=full keeps no log. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "receiver.h"
#include "support.h"
#include "webhook/webhook.h"

#define EVENTS 40

static char dir[64], db_path[128];
static rcv *r;
static char url[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/wh-emitlog-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(db_path, sizeof db_path, "%s/webhooks.db", dir);
    r = NULL;
}

/* After any fork: a child forked while the receiver's thread runs could inherit an allocator
 * lock that thread held, and never get it. */
static void start_receiver(void)
{
    r = rcv_start();
    rcv_url(r, "/log", url, sizeof url);
}

static void teardown(void)
{
    if (r)
        rcv_stop(r);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static wh_ctx *open_engine(const char *sync)
{
    wh_conf *c = wh_conf_new();
    char err[256], store[160];
    snprintf(store, sizeof store, "sqlite:%s", db_path);
    ck_assert_int_eq(wh_conf_set(c, "store", store, err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "store.sync", sync, err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

static int emit(wh_ctx *ctx, char id[WH_ID_MAX])
{
    return wh_emit(ctx, &(wh_event){.event_type = "task_run.completed", .run_id = "run_1",
                                    .task_id = "t", .status = "completed"},
                   id);
}

/* The engines' logs in the store's folder: how many, and the path of the last one seen. */
static int logs(char *path, size_t len)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, "webhooks.db-emits-")) {
            n++;
            if (path)
                snprintf(path, len, "%s/%s", dir, e->d_name);
        }
    closedir(d);
    return n;
}

/* Where a log's records end: the writer allocates its file ahead (event_log.c), so the file's
 * size says nothing of it. Walks the records' heads (magic, length, number; the payload and
 * 16 bytes of check follow) while their numbers follow each other. */
static off_t records_end(const char *path)
{
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    off_t at = 0;
    uint64_t prev = 0;
    unsigned char h[16];
    while (pread(fd, h, sizeof h, at) == (ssize_t)sizeof h) {
        uint32_t magic = 0, len = 0;
        uint64_t lsn = 0;
        for (int i = 3; i >= 0; i--) {
            magic = magic << 8 | h[i];
            len = len << 8 | h[4 + i];
        }
        for (int i = 7; i >= 0; i--)
            lsn = lsn << 8 | h[8 + i];
        if ((magic != 0x31454857u && magic != 0x32454857u) || (at && lsn != prev + 1))
            break;
        prev = lsn;
        at += 16 + (off_t)len + 16;
    }
    close(fd);
    return at;
}

/* Every id delivered exactly once, and nothing else. */
static void assert_delivered_once(char ids[][WH_ID_MAX], size_t n)
{
    size_t got = rcv_count(r, "/log");
    ck_assert_uint_eq(got, n);
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        for (size_t k = 0; k < got; k++) {
            rcv_request q;
            rcv_get(r, k, &q);
            seen += strcmp(q.webhook_id, ids[i]) == 0;
            rcv_request_free(&q);
        }
        ck_assert_msg(seen == 1, "%s delivered %d times", ids[i], seen);
    }
}

/* A child engine emits EVENTS events (their ids go up the pipe), does what `before_kill`
 * says, and is killed; returns its exit status. */
enum { JUST_EMIT, FOLD_THEN_KILL, THEN_A_BATCH };

static int child_engine(int what, char ids[][WH_ID_MAX])
{
    int p[2], u[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(pipe(u), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[0]);
        close(u[1]);
        /* the receiver is started once this process is forked: its address comes here */
        if (read(u[0], url, sizeof url) != (ssize_t)sizeof url)
            _exit(7);
        wh_ctx *ctx = open_engine("normal");
        char ep[WH_ID_MAX], id[WH_ID_MAX];
        if (wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url}, ep) != WH_OK)
            _exit(2);
        for (int i = 0; i < EVENTS; i++) {
            if (emit(ctx, id) != 1 || write(p[1], id, WH_ID_MAX) != WH_ID_MAX)
                _exit(3);
        }
        if (what == THEN_A_BATCH) {
            wh_event batch[5];
            for (int i = 0; i < 5; i++)
                batch[i] = (wh_event){.event_type = "task_run.completed", .run_id = "run_b",
                                      .task_id = "t", .status = "completed"};
            if (wh_emit_batch(ctx, batch, 5, NULL, NULL) != 5)
                _exit(8);
        }
        if (what == FOLD_THEN_KILL && wh_flush(ctx, 10000) != WH_OK)
            _exit(5);
        raise(SIGKILL);
        _exit(6);
    }
    close(p[1]);
    close(u[0]);
    start_receiver();
    ck_assert_int_eq(write(u[1], url, sizeof url), (ssize_t)sizeof url);
    close(u[1]);
    size_t n = 0;
    while (n < EVENTS && read(p[0], ids[n], WH_ID_MAX) == WH_ID_MAX)
        n++;
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    ck_assert_uint_eq(n, EVENTS);
    return status;
}

/* The next engine on the file: takes over the dead one and delivers what is left. */
static void next_engine_delivers(void)
{
    wh_ctx *ctx = open_engine("normal");
    for (int i = 0; i < 50 && rcv_count(r, "/log") < EVENTS; i++)
        wh_flush(ctx, 200);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    wh_destroy(ctx);
}

START_TEST(an_emit_is_taken_while_another_process_holds_the_write_lock)
{
    start_receiver();
    wh_ctx *ctx = open_engine("normal");
    char ep[WH_ID_MAX], id[1][WH_ID_MAX];
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url}, ep), WH_OK);
    sqlite3 *other;
    ck_assert_int_eq(sqlite3_open(db_path, &other), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    time_t t0 = time(NULL);
    ck_assert_int_eq(emit(ctx, id[0]), 1);
    ck_assert_int_lt(time(NULL) - t0, 3); /* the busy timeout is 5 s: it waited for nothing */
    sqlite3_exec(other, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(other);
    ck_assert_int_eq(wh_flush(ctx, 10000), WH_OK);
    assert_delivered_once(id, 1);
    wh_destroy(ctx);
    ck_assert_int_eq(logs(NULL, 0), 0); /* all of it stored: the log is gone */
}
END_TEST

START_TEST(a_killed_engines_logged_emits_are_delivered_once_by_the_next)
{
    char ids[EVENTS][WH_ID_MAX], log[400];
    int status = child_engine(JUST_EMIT, ids);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    ck_assert_int_eq(logs(log, sizeof log), 1);
    ck_assert_int_gt(records_end(log), 0);
    ck_assert_uint_eq(rcv_count(r, "/log"), 0);
    next_engine_delivers();
    assert_delivered_once(ids, EVENTS);
    ck_assert_int_eq(logs(NULL, 0), 0);
}
END_TEST

START_TEST(a_record_cut_short_by_the_kill_is_not_delivered)
{
    char ids[EVENTS][WH_ID_MAX], log[400];
    int status = child_engine(JUST_EMIT, ids);
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_eq(logs(log, sizeof log), 1);
    /* the first 100 bytes of its first record, written again at the end: a write that the
     * kill cut short */
    char head[100];
    int fd = open(log, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, head, sizeof head, 0), (ssize_t)sizeof head);
    ck_assert_int_gt(records_end(log), (off_t)sizeof head);
    ck_assert_int_eq(pwrite(fd, head, sizeof head, records_end(log)), (ssize_t)sizeof head);
    close(fd);
    next_engine_delivers();
    assert_delivered_once(ids, EVENTS);
}
END_TEST

START_TEST(a_batch_cut_short_by_the_kill_gives_none_of_its_events)
{
    char ids[EVENTS][WH_ID_MAX], log[400];
    int status = child_engine(THEN_A_BATCH, ids);
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_eq(logs(log, sizeof log), 1);
    /* the batch's five records were written last, with one write: cut into its last one, as
     * a kill between two pages of that write would; its first four are whole */
    ck_assert_int_eq(truncate(log, records_end(log) - 50), 0);
    next_engine_delivers();
    assert_delivered_once(ids, EVENTS); /* and none of the batch */
}
END_TEST

/* The engine that takes over names the dead one's log as SQLite resolved the database's
 * path, not as it was given: here relative, and the working directory changed since. */
START_TEST(a_dead_engines_log_is_found_from_another_working_directory)
{
    char cwd[512];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(dir), 0);
    wh_conf *c = wh_conf_new();
    char err[256];
    ck_assert_int_eq(wh_conf_set(c, "store", "sqlite:webhooks.db", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "store.lease", "1s", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    wh_ctx *b = wh_new(c, err, sizeof err);
    ck_assert_msg(b != NULL, "%s", err);
    ck_assert_int_eq(chdir("/"), 0);
    char ids[EVENTS][WH_ID_MAX];
    int status = child_engine(JUST_EMIT, ids);
    ck_assert(WIFSIGNALED(status));
    /* B finds A dead at one of its claims (wh_poll drives them; wh_flush has nothing to wait
     * for until then) */
    for (int i = 0; i < 200 && rcv_count(r, "/log") < EVENTS; i++)
        wh_poll(b, 100);
    ck_assert_int_eq(wh_flush(b, 5000), WH_OK);
    wh_destroy(b);
    ck_assert_int_eq(chdir(cwd), 0);
    assert_delivered_once(ids, EVENTS);
    ck_assert_int_eq(logs(NULL, 0), 0);
}
END_TEST

/* An engine of a library that knows of no log removes a dead engine's row; the row of one
 * with a log stays until its log is stored. */
START_TEST(the_row_of_an_engine_with_a_log_is_not_removed_by_a_plain_delete)
{
    start_receiver();
    wh_ctx *ctx = open_engine("normal");
    sqlite3 *other;
    ck_assert_int_eq(sqlite3_open(db_path, &other), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(other, "DELETE FROM engines", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(other, "SELECT count(*) FROM engines", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
    sqlite3_close(other);
    wh_destroy(ctx);
}
END_TEST

START_TEST(records_stored_before_the_kill_are_not_sent_twice)
{
    char ids[EVENTS][WH_ID_MAX];
    int status = child_engine(FOLD_THEN_KILL, ids);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
    /* the child delivered them itself before it was killed; its log, emptied by being
     * written again from its start, still holds their records */
    ck_assert_uint_eq(rcv_count(r, "/log"), EVENTS);
    char log[400];
    ck_assert_int_eq(logs(log, sizeof log), 1);
    ck_assert_int_gt(records_end(log), 0);
    next_engine_delivers();
    assert_delivered_once(ids, EVENTS);
    ck_assert_int_eq(logs(NULL, 0), 0);
}
END_TEST

static int stored_events(void);

/* An engine that emits and does not drive lets its lease run out: another engine takes its
 * logged emits and sends them, and those it logs after that too (its log is read again once
 * it holds more); when the first one stores its log later, what was taken is not stored (nor
 * sent) again. */
START_TEST(emits_taken_from_a_live_engine_are_not_stored_twice)
{
    start_receiver();
    wh_conf *c = wh_conf_new();
    char err[256], store[160];
    snprintf(store, sizeof store, "sqlite:%s", db_path);
    ck_assert_int_eq(wh_conf_set(c, "store", store, err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "store.lease", "1s", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    wh_ctx *a = wh_new(c, err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    char ep[WH_ID_MAX], ids[20][WH_ID_MAX];
    ck_assert_int_eq(wh_endpoint_add(a, &(wh_endpoint_spec){.url = url}, ep), WH_OK);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(emit(a, ids[i]), 1);
    struct timespec ts = {1, 600000000}; /* past A's lease, which only driving renews */
    nanosleep(&ts, NULL);
    wh_ctx *b = open_engine("normal");
    for (int i = 0; i < 50 && rcv_count(r, "/log") < 10; i++)
        wh_poll(b, 100);
    ck_assert_int_eq(stored_events(), 10);
    for (int i = 10; i < 20; i++)
        ck_assert_int_eq(emit(a, ids[i]), 1);
    for (int i = 0; i < 50 && rcv_count(r, "/log") < 20; i++)
        wh_poll(b, 100);
    ck_assert_int_eq(stored_events(), 20);
    wh_destroy(a); /* stores its log: the twenty are B's already */
    ck_assert_int_eq(stored_events(), 20);
    for (int i = 0; i < 10; i++)
        wh_poll(b, 100);
    ck_assert_int_eq(wh_flush(b, 5000), WH_OK);
    wh_destroy(b);
    assert_delivered_once(ids, 20);
    ck_assert_int_eq(logs(NULL, 0), 0);
}
END_TEST

static int stored_events(void)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM events", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* A small batch goes to the log like single emits; one of 16 events or more shares a commit
 * of its own among them already, and is committed at once. */
START_TEST(a_large_batch_is_committed_at_once)
{
    start_receiver();
    wh_ctx *ctx = open_engine("normal");
    char ep[WH_ID_MAX];
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url}, ep), WH_OK);
    wh_event batch[16];
    for (int i = 0; i < 16; i++)
        batch[i] = (wh_event){.event_type = "task_run.completed", .run_id = "run_b", .task_id = "t",
                              .status = "completed"};
    ck_assert_int_eq(wh_emit_batch(ctx, batch, 15, NULL, NULL), 15);
    ck_assert_int_eq(stored_events(), 0);
    ck_assert_int_eq(wh_emit_batch(ctx, batch, 16, NULL, NULL), 16);
    ck_assert_int_eq(stored_events(), 16);
    ck_assert_int_eq(wh_flush(ctx, 10000), WH_OK);
    ck_assert_int_eq(stored_events(), 31);
    ck_assert_uint_eq(rcv_count(r, "/log"), 31);
    wh_destroy(ctx);
}
END_TEST

START_TEST(store_sync_full_keeps_no_log)
{
    start_receiver();
    wh_ctx *ctx = open_engine("full");
    char ep[WH_ID_MAX], id[1][WH_ID_MAX];
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url}, ep), WH_OK);
    ck_assert_int_eq(emit(ctx, id[0]), 1);
    ck_assert_int_eq(logs(NULL, 0), 0);
    ck_assert_int_eq(wh_flush(ctx, 10000), WH_OK);
    assert_delivered_once(id, 1);
    wh_destroy(ctx);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("emit_log");
    TCase *tc = tcase_create("emit_log");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, an_emit_is_taken_while_another_process_holds_the_write_lock);
    tcase_add_test(tc, a_killed_engines_logged_emits_are_delivered_once_by_the_next);
    tcase_add_test(tc, a_record_cut_short_by_the_kill_is_not_delivered);
    tcase_add_test(tc, records_stored_before_the_kill_are_not_sent_twice);
    tcase_add_test(tc, a_batch_cut_short_by_the_kill_gives_none_of_its_events);
    tcase_add_test(tc, a_dead_engines_log_is_found_from_another_working_directory);
    tcase_add_test(tc, the_row_of_an_engine_with_a_log_is_not_removed_by_a_plain_delete);
    tcase_add_test(tc, store_sync_full_keeps_no_log);
    tcase_add_test(tc, a_large_batch_is_committed_at_once);
    tcase_add_test(tc, emits_taken_from_a_live_engine_are_not_stored_twice);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
