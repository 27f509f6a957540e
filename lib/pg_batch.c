/* The jobs of threads that share a PostgreSQL connection: queued, taken in batches (every
 * write job queued together, group commit; any other job alone), each batch run the plain
 * way or in pipeline mode, and made again after a lost connection. */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "pg_batch.h"
#include "pg_conn.h"

enum { JOB_WRITE, JOB_READ, JOB_ALONE, JOB_ONCE };

struct wh__pg_job {
    wh__pg_fn fn;
    void *arg;
    int kind;
    bool piped; /* wh__pg_write_piped */
    int rc;
    bool unknown; /* the COMMIT's answer was lost */
    char error[256]; /* the job's own message, handed back to the caller's thread */
    bool done;
    wh__pg_job *next;
};

static void finish(wh__pg_job *j, int rc)
{
    j->rc = rc;
    if (rc != WH_OK)
        snprintf(j->error, sizeof j->error, "%s",
                 wh__last_error_code() == rc && *wh_last_error() ? wh_last_error() : wh_strerror(rc));
}

static void fail_all(wh__pg_job *batch, int rc)
{
    for (wh__pg_job *j = batch; j; j = j->next)
        finish(j, rc);
}

enum { ATTEMPT_DONE, ATTEMPT_LOST, ATTEMPT_SPLIT };

/* The COMMIT went out and its answer never came: the caller is told it may have happened. */
static int lost_commit(wh__pg *c)
{
    return wh__fail(NULL, 0, WH_ERR_STORE, "store: commit: the connection to PostgreSQL (%s) was"
                    " lost before its answer: it may or may not have been made", c->where);
}

static int attempt_plain(wh__pg *c, wh__pg_job *batch);

/* Each job of the batch again in a transaction of its own: one's failure is not the others'. */
static void each_alone(wh__pg *c, wh__pg_job *batch)
{
    for (wh__pg_job *j = batch, *next; j; j = next) {
        next = j->next;
        j->next = NULL;
        if (attempt_plain(c, j) == ATTEMPT_LOST &&
            (wh__pg_reconnect(c, true) != WH_OK || attempt_plain(c, j) == ATTEMPT_LOST))
            finish(j, wh__fail(NULL, 0, WH_ERR_STORE,
                               "store: the connection to PostgreSQL (%s) was lost", c->where));
        j->next = next;
    }
}

/* One transaction of the batch's jobs. ATTEMPT_LOST: the connection went away before the
 * COMMIT was sent, so nothing of it happened and it may run again. */
static int attempt_plain(wh__pg *c, wh__pg_job *batch)
{
    bool read = batch->kind == JOB_READ;
    int rc = wh__pg_exec(c, "begin", read ? "BEGIN READ ONLY" : "BEGIN");
    if (rc != WH_OK) {
        if (!wh__pg_ready(c))
            return ATTEMPT_LOST;
        fail_all(batch, rc);
        return ATTEMPT_DONE;
    }
    wh__pg_job *failed = NULL;
    for (wh__pg_job *j = batch; j && !failed; j = j->next) {
        wh__clear_error(); /* a job that fails without a message must not inherit one */
        j->unknown = false;
        finish(j, j->fn(c, j->arg));
        if (j->rc != WH_OK)
            failed = j;
    }
    if (failed) {
        if (!wh__pg_ready(c))
            return ATTEMPT_LOST;
        wh__pg_exec(c, "rollback", "ROLLBACK");
        if (batch->next)
            each_alone(c, batch);
        return ATTEMPT_DONE;
    }
    PGresult *r = PQexec(c->conn, "COMMIT");
    bool committed = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
    if (!committed) {
        bool unknown = !wh__pg_ready(c) && !read;
        int e = PQresultStatus(r) == PGRES_COMMAND_OK
                    ? wh__fail(NULL, 0, WH_ERR_STORE, "store: commit: the transaction was rolled back")
                : unknown ? lost_commit(c)
                          : wh__pg_fail_result(c, "commit", r);
        for (wh__pg_job *j = batch; j; j = j->next) {
            finish(j, e);
            j->unknown = unknown;
        }
    }
    PQclear(r);
    return ATTEMPT_DONE;
}

/* The next query's answer in pipeline mode (NULL: the connection is gone); the NULL that ends
 * it is taken too. */
static PGresult *next_piped(wh__pg *c)
{
    PGresult *r = PQgetResult(c->conn), *extra;
    while (r && PQresultStatus(r) != PGRES_PIPELINE_SYNC && (extra = PQgetResult(c->conn)))
        PQclear(extra);
    return r;
}

static bool piped_ok(const PGresult *r)
{
    return PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
}

/* The batch (write jobs that look at no answer before the commit) in pipeline mode: BEGIN,
 * every job's statements and COMMIT sent at once, then the answers read in order. Returns
 * ATTEMPT_LOST when nothing can have been committed and the connection is gone, ATTEMPT_SPLIT
 * when a statement failed (rolled back: the jobs run again the plain way, each alone). */
static int attempt_piped(wh__pg *c, wh__pg_job *batch)
{
    if (PQenterPipelineMode(c->conn) != 1)
        return ATTEMPT_SPLIT;
    c->n_piped = 0;
    bool sent = PQsendQueryParams(c->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) == 1;
    c->piping = true;
    for (wh__pg_job *j = batch; j && sent; j = j->next) {
        wh__clear_error();
        j->unknown = false;
        c->piping_job = j;
        finish(j, j->fn(c, j->arg));
        sent = j->rc == WH_OK;
    }
    c->piping = false;
    c->piping_job = NULL;
    /* whatever went out before a failure is undone */
    bool ended = PQsendQueryParams(c->conn, sent ? "COMMIT" : "ROLLBACK", 0, NULL, NULL, NULL,
                                   NULL, 0) == 1;
    /* the server runs each statement as it arrives: a COMMIT handed to libpq may have run */
    bool commit_out = sent && ended;
    ended = PQpipelineSync(c->conn) == 1 && ended;
    bool gone = false, committed = false;
    PGresult *r = next_piped(c); /* BEGIN */
    gone = !r;
    PQclear(r);
    for (size_t i = 0; i < c->n_piped && !gone; i++) {
        struct wh__pg_piped *p = &c->piped[i];
        r = next_piped(c);
        gone = !r;
        if (r && piped_ok(r)) {
            for (int row = 0, rows = PQntuples(r); p->row && row < rows; row++)
                if (p->row(p->ud, r, row) != 0)
                    break;
        } else {
            if (p->parse >= 0)
                c->cache[p->parse].generation = c->generation - 1;
            if (r && PQresultStatus(r) == PGRES_FATAL_ERROR && p->job->rc == WH_OK)
                /* its own message, for its caller */
                finish(p->job, wh__pg_fail_result(c, p->what, r));
        }
        PQclear(r);
    }
    if (!gone && ended) { /* COMMIT or ROLLBACK, then the sync */
        r = next_piped(c);
        gone = !r;
        committed = sent && r && PQresultStatus(r) == PGRES_COMMAND_OK &&
                    strcmp(PQcmdStatus(r), "COMMIT") == 0;
        PQclear(r);
        while (!gone && (r = PQgetResult(c->conn)) && PQresultStatus(r) != PGRES_PIPELINE_SYNC)
            PQclear(r);
        PQclear(r);
    }
    if (wh__pg_ready(c) && PQexitPipelineMode(c->conn) != 1)
        PQreset(c->conn), c->up = false; /* answers left unread: start afresh */
    if (committed) {
        for (wh__pg_job *j = batch; j; j = j->next)
            finish(j, WH_OK);
        return ATTEMPT_DONE;
    }
    if (!wh__pg_ready(c)) {
        /* the COMMIT went out and no answer came back: it may or may not have happened */
        if (commit_out) {
            int e = lost_commit(c);
            for (wh__pg_job *j = batch; j; j = j->next) {
                finish(j, e);
                j->unknown = true;
            }
            return ATTEMPT_DONE;
        }
        return ATTEMPT_LOST;
    }
    if (PQtransactionStatus(c->conn) != PQTRANS_IDLE)
        wh__pg_exec(c, "rollback", "ROLLBACK");
    return ATTEMPT_SPLIT;
}

static bool all_piped(const wh__pg_job *batch)
{
    for (const wh__pg_job *j = batch; j; j = j->next)
        if (!j->piped)
            return false;
    return true;
}

static int attempt(wh__pg *c, wh__pg_job *batch)
{
    if (!all_piped(batch))
        return attempt_plain(c, batch);
    int a = attempt_piped(c, batch);
    if (a == ATTEMPT_SPLIT)
        each_alone(c, batch);
    return a == ATTEMPT_LOST ? ATTEMPT_LOST : ATTEMPT_DONE;
}

static void run_batch(wh__pg *c, wh__pg_job *batch)
{
    if (batch->kind == JOB_ALONE) {
        wh__clear_error();
        finish(batch, batch->fn(c, batch->arg));
        return;
    }
    /* a job that must not run twice is not made again after a lost connection */
    for (int round = 0; round < (batch->kind == JOB_ONCE ? 1 : 2); round++) {
        if (!wh__pg_ready(c)) {
            int e = wh__pg_reconnect(c, round > 0);
            if (e != WH_OK) {
                fail_all(batch, e);
                return;
            }
        }
        if (attempt(c, batch) == ATTEMPT_DONE)
            return;
    }
    fail_all(batch, wh__fail(NULL, 0, WH_ERR_STORE, "store: the connection to PostgreSQL (%s) was lost",
                             c->where));
}

/* Takes the queued jobs that run together: every write job, or the first other one alone. */
static wh__pg_job *take_batch(wh__pg *c)
{
    wh__pg_job *first = c->head;
    if (first->kind != JOB_WRITE) {
        c->head = first->next;
        first->next = NULL;
    } else {
        wh__pg_job **tail = &first->next, *rest = NULL, **rest_tail = &rest;
        for (wh__pg_job *j = first->next, *next; j; j = next) {
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
    for (wh__pg_job *j = c->head; j; j = j->next)
        c->tail = j;
    return first;
}

static int submit(wh__pg *c, int kind, bool piped, wh__pg_fn fn, void *arg, bool *unknown)
{
    wh__pg_job j = {.fn = fn, .arg = arg, .kind = kind, .piped = piped};
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
        wh__pg_job *batch = take_batch(c);
        pthread_mutex_unlock(&c->mu);
        /* other threads' jobs run here: their messages must not become this thread's */
        run_batch(c, batch);
        if (wh__pg_ready(c))
            wh__pg_collect_notes(c);
        pthread_mutex_lock(&c->mu);
        for (wh__pg_job *k = batch, *next; k; k = next) {
            next = k->next;
            k->done = true;
        }
        c->busy = false;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    if (unknown)
        *unknown = j.unknown;
    if (j.rc != WH_OK)
        return wh__fail(NULL, 0, j.rc, "%s", j.error);
    wh__clear_error();
    return WH_OK;
}

int wh__pg_write_once(wh__pg *c, wh__pg_fn fn, void *arg, bool *unknown)
{
    return submit(c, JOB_ONCE, false, fn, arg, unknown);
}

int wh__pg_write(wh__pg *c, wh__pg_fn fn, void *arg, bool *unknown)
{
    return submit(c, JOB_WRITE, false, fn, arg, unknown);
}

int wh__pg_write_piped(wh__pg *c, wh__pg_fn fn, void *arg, bool *unknown)
{
    return submit(c, JOB_WRITE, true, fn, arg, unknown);
}
int wh__pg_read(wh__pg *c, wh__pg_fn fn, void *arg) { return submit(c, JOB_READ, false, fn, arg, NULL); }
int wh__pg_alone(wh__pg *c, wh__pg_fn fn, void *arg) { return submit(c, JOB_ALONE, false, fn, arg, NULL); }
