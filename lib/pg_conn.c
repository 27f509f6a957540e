/* One PostgreSQL connection shared by threads: connecting and reconnecting, notifications,
 * and one helper for statements with parameters (prepared once per connection, or sent in
 * pipeline mode and answered after the batch's COMMIT). The jobs that run on it, and their
 * batches, are pg_batch.c's. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "pg_batch.h"
#include "pg_conn.h"
#include "util.h"

#define BACKOFF_FIRST_US 100000
#define BACKOFF_MAX_US 2000000
#define MAX_PARAMS 16

/* ---- messages ---------------------------------------------------------------------- */

/* The first line of a libpq message, without "ERROR:  " and the like. */
static void first_line(const char *msg, char *out, size_t len)
{
    if (!msg || !*msg)
        msg = "no message";
    const char *colon = strstr(msg, ":  ");
    if (colon && colon - msg < 10)
        msg = colon + 3;
    size_t n = strcspn(msg, "\n");
    snprintf(out, len, "%.*s", (int)n, msg);
}

static int fail_conn(wh__pg *c, const char *what)
{
    char line[256];
    first_line(PQerrorMessage(c->conn), line, sizeof line);
    return wh__fail(NULL, 0, WH_ERR_STORE, "store: %s: %s", what, line);
}

int wh__pg_fail_result(wh__pg *c, const char *what, const PGresult *r)
{
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!primary)
        return fail_conn(c, what);
    char line[256];
    first_line(primary, line, sizeof line);
    return wh__fail(NULL, 0, WH_ERR_STORE, "store: %s: %s", what, line);
}

void wh__pg_describe(const char *conninfo, char *out, size_t len)
{
    out[0] = '\0';
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    if (!opts)
        return;
    size_t used = 0;
    static const char *const shown[] = {"host", "hostaddr", "port", "dbname", "user"};
    for (PQconninfoOption *o = opts; o->keyword; o++)
        for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++)
            if (strcmp(o->keyword, shown[i]) == 0 && o->val && *o->val && used < len) {
                int w = snprintf(out + used, len - used, "%s%s=%s", used ? " " : "", o->keyword,
                                 o->val);
                used = w < 0 ? len : used + (size_t)w;
            }
    PQconninfoFree(opts);
}

/* ---- connecting ---------------------------------------------------------------------- */

static int run_setup(wh__pg *c)
{
    if (!c->setup)
        return WH_OK;
    PGresult *r = PQexec(c->conn, c->setup);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK
                 ? WH_OK
                 : wh__pg_fail_result(c, "connection setup", r);
    PQclear(r);
    return rc;
}

static void quiet(void *ud, const char *message)
{
    (void)ud;
    (void)message;
}

int wh__pg_open(wh__pg *c, const char *conninfo, const char *setup, char *errstr, size_t errlen)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    wh__pg_describe(conninfo, c->where, sizeof c->where);
    if (setup && !(c->setup = wh__strdup(setup)))
        return wh__fail(errstr, errlen, WH_ERR_NOMEM, "store: out of memory");
    /* ours come before the connection string's, which may override them: a server that does
     * not answer is given up after 5 s, and a peer that vanished is noticed within 40 s */
    const char *keys[] = {"connect_timeout", "fallback_application_name", "keepalives_idle",
                          "keepalives_interval", "keepalives_count", "dbname", NULL};
    const char *values[] = {"5", "libwebhook", "10", "10", "3", conninfo, NULL};
    c->conn = PQconnectdbParams(keys, values, 1);
    if (!c->conn)
        return wh__fail(errstr, errlen, WH_ERR_NOMEM, "store: out of memory");
    /* the server's notices (and the FATAL of a terminated connection) are not printed on
     * the host's stderr: what matters comes back as an error of the call that meets it */
    PQsetNoticeProcessor(c->conn, quiet, NULL);
    if (PQstatus(c->conn) != CONNECTION_OK) {
        char line[256];
        first_line(PQerrorMessage(c->conn), line, sizeof line);
        return wh__fail(errstr, errlen, WH_ERR_STORE, "store: cannot connect to PostgreSQL (%s): %s",
                        c->where[0] ? c->where : "defaults", line);
    }
    int rc = run_setup(c);
    c->up = rc == WH_OK;
    return rc == WH_OK ? WH_OK : wh__pass_error(errstr, errlen, rc);
}

void wh__pg_close(wh__pg *c)
{
    if (c->conn)
        PQfinish(c->conn);
    c->conn = NULL;
    free(c->setup);
    c->setup = NULL;
    free(c->piped);
    c->piped = NULL;
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

/* Opens the lost connection again; `now`: without waiting for the backoff (the connection
 * was just seen lost, the server is most likely there again or still). */
int wh__pg_reconnect(wh__pg *c, bool now)
{
    int64_t t = wh__mono_us();
    if (!now && t < c->retry_at_us)
        return wh__fail(NULL, 0, WH_ERR_STORE,
                        "store: the connection to PostgreSQL (%s) was lost; connecting again",
                        c->where);
    PQreset(c->conn);
    if (PQstatus(c->conn) == CONNECTION_OK && run_setup(c) == WH_OK) {
        c->up = true;
        c->generation++;
        c->backoff_us = 0;
        c->retry_at_us = 0;
        c->reconnects++;
        /* notifications sent while it was away are lost: look at everything again */
        __atomic_or_fetch(&c->notes, WH__PG_NOTE_ALL, __ATOMIC_ACQ_REL);
        return WH_OK;
    }
    c->up = false; /* connected but not set up: used never, reset again */
    char line[256];
    first_line(PQerrorMessage(c->conn), line, sizeof line);
    c->backoff_us = c->backoff_us ? c->backoff_us * 2 : BACKOFF_FIRST_US;
    if (c->backoff_us > BACKOFF_MAX_US)
        c->backoff_us = BACKOFF_MAX_US;
    c->retry_at_us = t + c->backoff_us;
    return wh__fail(NULL, 0, WH_ERR_STORE, "store: cannot connect to PostgreSQL (%s): %s",
                    c->where, line);
}

void wh__pg_collect_notes(wh__pg *c)
{
    int bits = 0, me = PQbackendPID(c->conn);
    PGnotify *n;
    while ((n = PQnotifies(c->conn))) {
        /* our own changes are in memory already */
        if (n->be_pid != me)
            bits |= n->extra && n->extra[0] == 'e' ? WH__PG_NOTE_ENDPOINTS : WH__PG_NOTE_WORK;
        PQfreemem(n);
    }
    if (bits)
        __atomic_or_fetch(&c->notes, bits, __ATOMIC_ACQ_REL);
}

int wh__pg_take_notes(wh__pg *c, int mask)
{
    return __atomic_fetch_and(&c->notes, ~mask, __ATOMIC_ACQ_REL) & mask;
}

/* ---- statements ------------------------------------------------------------------------ */

int64_t wh__pg_int(const PGresult *r, int i, int col)
{
    return PQgetisnull(r, i, col) ? 0 : strtoll(PQgetvalue(r, i, col), NULL, 10);
}

int64_t wh__pg_changes(const wh__pg *c) { return c->changes; }

int wh__pg_exec(wh__pg *c, const char *what, const char *sql)
{
    PGresult *r = PQexec(c->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? WH_OK
                                                             : wh__pg_fail_result(c, what, r);
    PQclear(r);
    return rc;
}

static PGresult *execute(wh__pg *c, const char *sql, bool fresh, int n, const char *const *values,
                         const int *lengths, const int *formats)
{
    int k = 0;
    while (!fresh && k < c->n_cached && c->cache[k].sql != sql)
        k++;
    if (fresh)
        return PQexecParams(c->conn, sql, n, NULL, values, lengths, formats, 0);
    if (k == c->n_cached) {
        if (k == WH__PG_CACHE)
            return PQexecParams(c->conn, sql, n, NULL, values, lengths, formats, 0);
        c->cache[k].sql = sql;
        c->cache[k].generation = c->generation - 1;
        c->n_cached++;
    }
    char name[16];
    snprintf(name, sizeof name, "wh_%d", k);
    if (c->cache[k].generation != c->generation) {
        PGresult *p = PQprepare(c->conn, name, sql, n, NULL);
        if (PQresultStatus(p) != PGRES_COMMAND_OK)
            return p;
        PQclear(p);
        c->cache[k].generation = c->generation;
    }
    return PQexecPrepared(c->conn, name, n, values, lengths, formats, 0);
}

/* In pipeline mode: one more query whose answer is read after the batch's COMMIT. */
static struct wh__pg_piped *add_piped(wh__pg *c)
{
    if (c->n_piped == c->cap_piped) {
        size_t cap = c->cap_piped ? c->cap_piped * 2 : 16;
        struct wh__pg_piped *v = realloc(c->piped, cap * sizeof *v);
        if (!v)
            return NULL;
        c->piped = v, c->cap_piped = cap;
    }
    struct wh__pg_piped *p = &c->piped[c->n_piped];
    *p = (struct wh__pg_piped){.job = c->piping_job, .parse = -1};
    return p;
}

/* In pipeline mode: sends the statement (after its Parse, the first time on this connection). */
static int send_piped(wh__pg *c, const char *what, const char *sql, bool fresh, int n,
                      const char *const *values, const int *lengths, const int *formats,
                      int (*row)(void *ud, const PGresult *r, int i), void *ud)
{
    int k = 0;
    while (!fresh && k < c->n_cached && c->cache[k].sql != sql)
        k++;
    if (fresh)
        k = WH__PG_CACHE; /* sent unnamed: planned for these parameters */
    else if (k == c->n_cached && k < WH__PG_CACHE) {
        c->cache[k].sql = sql;
        c->cache[k].generation = c->generation - 1;
        c->n_cached++;
    }
    char name[16];
    snprintf(name, sizeof name, "wh_%d", k);
    struct wh__pg_piped *p;
    if (k < WH__PG_CACHE && c->cache[k].generation != c->generation) {
        if (!(p = add_piped(c)))
            return wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
        if (!PQsendPrepare(c->conn, name, sql, n, NULL))
            return fail_conn(c, what);
        /* taken as prepared from here on; set back if its answer is not a success */
        p->parse = k;
        p->what = what;
        c->cache[k].generation = c->generation;
        c->n_piped++;
    }
    if (!(p = add_piped(c)))
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    int sent = k == WH__PG_CACHE
                   ? PQsendQueryParams(c->conn, sql, n, NULL, values, lengths, formats, 0)
                   : PQsendQueryPrepared(c->conn, name, n, values, lengths, formats, 0);
    if (!sent)
        return fail_conn(c, what);
    p->row = row;
    p->ud = ud;
    p->what = what;
    c->n_piped++;
    return WH_OK;
}

static int run(wh__pg *c, bool fresh, const char *what, const char *sql,
               int (*row)(void *ud, const PGresult *r, int i), void *ud, const char *types,
               va_list ap)
{
    const char *values[MAX_PARAMS];
    int lengths[MAX_PARAMS], formats[MAX_PARAMS];
    char numbers[MAX_PARAMS][24];
    int n = 0;
    for (; types && types[n] && n < MAX_PARAMS; n++) {
        lengths[n] = 0;
        formats[n] = 0;
        switch (types[n]) {
        case 't':
            values[n] = va_arg(ap, const char *);
            break;
        case 'i':
            snprintf(numbers[n], sizeof numbers[n], "%lld", (long long)va_arg(ap, int64_t));
            values[n] = numbers[n];
            break;
        case 'd':
            snprintf(numbers[n], sizeof numbers[n], "%d", va_arg(ap, int));
            values[n] = numbers[n];
            break;
        case 'B':
            values[n] = va_arg(ap, int) ? "t" : "f";
            break;
        case 'T': {
            /* text of a given length: the server takes it whole, NUL-free by construction */
            const char *t = va_arg(ap, const char *);
            size_t len = va_arg(ap, size_t);
            values[n] = t;
            lengths[n] = (int)len;
            formats[n] = 1;
            break;
        }
        case 'b': {
            const void *p = va_arg(ap, const void *);
            size_t len = va_arg(ap, size_t);
            values[n] = p;
            lengths[n] = (int)len;
            formats[n] = 1;
            break;
        }
        }
    }
    if (c->piping)
        return send_piped(c, what, sql, fresh, n, values, lengths, formats, row, ud);
    PGresult *r = execute(c, sql, fresh, n, values, lengths, formats);
    ExecStatusType st = PQresultStatus(r);
    int rc;
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        rc = WH_OK;
        const char *tuples = PQcmdTuples(r);
        c->changes = tuples && *tuples ? strtoll(tuples, NULL, 10) : 0;
        for (int i = 0, rows = PQntuples(r); row && i < rows; i++)
            if (row(ud, r, i) != 0)
                break;
    } else {
        rc = wh__pg_fail_result(c, what, r);
    }
    PQclear(r);
    return rc;
}

int wh__pg_run(wh__pg *c, const char *what, const char *sql,
               int (*row)(void *ud, const PGresult *r, int i), void *ud, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    int rc = run(c, false, what, sql, row, ud, types, ap);
    va_end(ap);
    return rc;
}

int wh__pg_run_fresh(wh__pg *c, const char *what, const char *sql,
                     int (*row)(void *ud, const PGresult *r, int i), void *ud, const char *types,
                     ...)
{
    va_list ap;
    va_start(ap, types);
    int rc = run(c, true, what, sql, row, ud, types, ap);
    va_end(ap);
    return rc;
}

static int pump(wh__pg *c, void *arg)
{
    (void)arg;
    if (wh__pg_ready(c) && !PQconsumeInput(c->conn) && !wh__pg_ready(c))
        return wh__pg_reconnect(c, true); /* terminated, or the server went down: try at once */
    if (!wh__pg_ready(c))
        return wh__pg_reconnect(c, false);
    wh__pg_collect_notes(c);
    return WH_OK;
}

int wh__pg_pump(wh__pg *c) { return wh__pg_alone(c, pump, NULL); }
