/* One SQLite connection shared by threads: group commit for writes, deferred transactions
 * for reads, and one helper for prepare/bind/step. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sqlite_conn.h"
#include "error.h"
#include "sqlite_conn.h"

enum { JOB_WRITE, JOB_READ, JOB_ALONE };

struct wh__sq_job {
    wh__sq_fn fn;
    void *arg;
    int kind;
    int rc;
    char error[256]; /* the job's own message, handed back to the caller's thread */
    bool done;
    wh__sq_job *next;
};

int wh__sq_fail(wh__sq *c, const char *what)
{
    /* SQLite out of memory is the process out of memory, not a broken store */
    int code = (sqlite3_errcode(c->db) & 0xff) == SQLITE_NOMEM ? WH_ERR_NOMEM : WH_ERR_STORE;
    return wh__fail(NULL, 0, code, "store: %s: %s", what, sqlite3_errmsg(c->db));
}

int wh__sq_init(wh__sq *c, sqlite3 *db)
{
    memset(c, 0, sizeof *c);
    c->db = db;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    return WH_OK;
}

void wh__sq_close(wh__sq *c)
{
    for (int i = 0; i < c->n_cached; i++)
        sqlite3_finalize(c->cache[i].st);
    c->n_cached = 0;
    sqlite3_close(c->db);
    c->db = NULL;
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static sqlite3_stmt *statement(wh__sq *c, const char *sql)
{
    for (int i = 0; i < c->n_cached; i++)
        if (c->cache[i].sql == sql)
            return c->cache[i].st;
    sqlite3_stmt *st;
    unsigned flags = c->n_cached < WH__SQ_CACHE ? SQLITE_PREPARE_PERSISTENT : 0;
    if (sqlite3_prepare_v3(c->db, sql, -1, flags, &st, NULL) != SQLITE_OK)
        return NULL;
    if (c->n_cached < WH__SQ_CACHE) {
        c->cache[c->n_cached].sql = sql;
        c->cache[c->n_cached].st = st;
        c->n_cached++;
    }
    return st;
}

static bool cached(const wh__sq *c, const sqlite3_stmt *st)
{
    for (int i = 0; i < c->n_cached; i++)
        if (c->cache[i].st == st)
            return true;
    return false;
}

int wh__sq_run(wh__sq *c, const char *what, const char *sql,
               int (*row)(void *ud, sqlite3_stmt *st), void *ud, const char *types, ...)
{
    sqlite3_stmt *st = statement(c, sql);
    if (!st)
        return wh__sq_fail(c, what);
    va_list ap;
    va_start(ap, types);
    for (int i = 1; types && types[i - 1]; i++) {
        switch (types[i - 1]) {
        case 't': {
            const char *t = va_arg(ap, const char *);
            sqlite3_bind_text(st, i, t, -1, SQLITE_STATIC);
            break;
        }
        case 'i':
            sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
            break;
        case 'd':
            sqlite3_bind_int(st, i, va_arg(ap, int));
            break;
        case 'T': {
            const char *t = va_arg(ap, const char *);
            size_t n = va_arg(ap, size_t);
            sqlite3_bind_text(st, i, t, (int)n, SQLITE_STATIC);
            break;
        }
        case 'b': {
            const void *p = va_arg(ap, const void *);
            size_t n = va_arg(ap, size_t);
            if (p)
                sqlite3_bind_blob(st, i, p, (int)n, SQLITE_STATIC);
            else
                sqlite3_bind_null(st, i);
            break;
        }
        }
    }
    va_end(ap);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (!row || row(ud, st) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    int out = rc == SQLITE_DONE ? WH_OK : wh__sq_fail(c, what);
    if (cached(c, st)) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    } else {
        sqlite3_finalize(st);
    }
    return out;
}

int64_t wh__sq_changes(wh__sq *c) { return sqlite3_changes64(c->db); }

/* ---- jobs ------------------------------------------------------------------------ */

static void finish(wh__sq_job *j, int rc)
{
    j->rc = rc;
    if (rc != WH_OK)
        snprintf(j->error, sizeof j->error, "%s",
                 wh__last_error_code() == rc && *wh_last_error() ? wh_last_error() : wh_strerror(rc));
}

static int run_one(wh__sq *c, wh__sq_job *j)
{
    /* a job that fails without a message of its own must not inherit an older one */
    wh__clear_error();
    return j->fn(c, j->arg);
}

static void run_batch(wh__sq *c, wh__sq_job *batch)
{
    if (batch->kind == JOB_ALONE) {
        finish(batch, run_one(c, batch));
        return;
    }
    bool read = batch->kind == JOB_READ;
    if (sqlite3_exec(c->db, read ? "BEGIN" : "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        int e = wh__sq_fail(c, "begin");
        for (wh__sq_job *j = batch; j; j = j->next)
            finish(j, e);
        return;
    }
    if (!batch->next) {
        finish(batch, run_one(c, batch));
        if (batch->rc != WH_OK || read) {
            sqlite3_exec(c->db, read ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
            return;
        }
    } else {
        for (wh__sq_job *j = batch; j; j = j->next) {
            if (sqlite3_exec(c->db, "SAVEPOINT job", NULL, NULL, NULL) != SQLITE_OK) {
                finish(j, wh__sq_fail(c, "savepoint"));
                continue;
            }
            finish(j, run_one(c, j));
            if (j->rc != WH_OK)
                sqlite3_exec(c->db, "ROLLBACK TO job", NULL, NULL, NULL);
            sqlite3_exec(c->db, "RELEASE job", NULL, NULL, NULL);
            if (sqlite3_get_autocommit(c->db)) {
                /* SQLite rolled the whole transaction back (an I/O error, out of memory):
                 * every job of the batch failed, the ones before this one included */
                int e = j->rc != WH_OK ? j->rc : wh__sq_fail(c, "transaction");
                char why[256];
                snprintf(why, sizeof why, "%s", j->rc != WH_OK ? j->error : wh_last_error());
                for (wh__sq_job *k = batch; k; k = k->next) {
                    k->rc = e;
                    snprintf(k->error, sizeof k->error, "store: the batch was rolled back: %.200s", why);
                }
                return;
            }
        }
    }
    if (sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        int e = wh__sq_fail(c, "commit");
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        for (wh__sq_job *j = batch; j; j = j->next)
            if (j->rc == WH_OK)
                finish(j, e);
    }
}

/* Takes the queued jobs that run together: every write job, or the first other one alone. */
static wh__sq_job *take_batch(wh__sq *c)
{
    wh__sq_job *first = c->head;
    if (first->kind != JOB_WRITE) {
        c->head = first->next;
        first->next = NULL;
    } else {
        wh__sq_job **tail = &first->next, *rest = NULL, **rest_tail = &rest;
        for (wh__sq_job *j = first->next, *next; j; j = next) {
            next = j->next;
            if (j->kind == JOB_WRITE) {
                *tail = j;
                tail = &j->next;
            } else {
                *rest_tail = j;
                rest_tail = &j->next;
            }
        }
        *tail = NULL;
        *rest_tail = NULL;
        c->head = rest;
    }
    c->tail = NULL;
    for (wh__sq_job *j = c->head; j; j = j->next)
        c->tail = j;
    return first;
}

static int submit(wh__sq *c, int kind, wh__sq_fn fn, void *arg)
{
    wh__sq_job j = {.fn = fn, .arg = arg, .kind = kind};
    pthread_mutex_lock(&c->mu);
    if (c->tail)
        c->tail->next = &j;
    else
        c->head = &j;
    c->tail = &j;
    while (!j.done) {
        if (c->busy) {
            pthread_cond_wait(&c->cv, &c->mu);
            continue;
        }
        c->busy = true;
        wh__sq_job *batch = take_batch(c);
        pthread_mutex_unlock(&c->mu);
        /* other threads' jobs run here: their messages must not become this thread's */
        run_batch(c, batch);
        pthread_mutex_lock(&c->mu);
        for (wh__sq_job *k = batch, *next; k; k = next) {
            next = k->next;
            k->done = true;
        }
        c->busy = false;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    if (j.rc != WH_OK)
        return wh__fail(NULL, 0, j.rc, "%s", j.error);
    wh__clear_error();
    return WH_OK;
}

int wh__sq_write(wh__sq *c, wh__sq_fn fn, void *arg) { return submit(c, JOB_WRITE, fn, arg); }
int wh__sq_read(wh__sq *c, wh__sq_fn fn, void *arg) { return submit(c, JOB_READ, fn, arg); }
int wh__sq_alone(wh__sq *c, wh__sq_fn fn, void *arg) { return submit(c, JOB_ALONE, fn, arg); }
