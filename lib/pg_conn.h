/* Private to libwebhook: one PostgreSQL connection shared by many threads.
 *
 * Write jobs from many threads share one transaction (group commit: the first waiting thread
 * leads and commits everything queued behind it; when one job fails, the others run again
 * each in a transaction of its own, so that one caller's failure never undoes another's).
 * Read jobs run alone in a read-only transaction. Statements are prepared once per connection.
 * Jobs that never look at what their statements return before the commit (wh__pg_write_piped)
 * are sent together in pipeline mode when a batch holds only such jobs: BEGIN, their
 * statements and COMMIT in one round trip, the answers read after.
 *
 * A lost connection (a server restart, pg_terminate_backend) is opened again: at once when a
 * transaction failed before its COMMIT was sent (the batch then runs again, nothing of it was
 * committed), else with a backoff while the server stays away. A COMMIT whose answer was lost
 * may or may not have happened: the job is told so (`unknown`), and the caller finds out.
 * Notifications (LISTEN) are collected as bits that the store takes when it looks. */
#ifndef WH_PG_CONN_H
#define WH_PG_CONN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

typedef struct wh__pg_job wh__pg_job;

#define WH__PG_CACHE 64

/* What a notification said (its payload), and a reconnect, which may have missed some. */
enum { WH__PG_NOTE_ENDPOINTS = 1, WH__PG_NOTE_WORK = 2, WH__PG_NOTE_ALL = 3 };

typedef struct wh__pg {
    PGconn *conn;
    bool up; /* connected and set up */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    wh__pg_job *head, *tail;
    bool busy; /* a thread runs a batch or an exclusive job */
    int generation; /* raised by every reconnect: statements are prepared again */
    struct {
        const char *sql; /* cached by address: callers pass string literals */
        int generation;  /* prepared on this connection when equal to the current one */
    } cache[WH__PG_CACHE];
    int n_cached;
    char *setup;   /* run after every (re)connect: search_path, LISTEN, read-only */
    char where[200]; /* host, port and database, never the password: for messages */
    int64_t retry_at_us, backoff_us;
    int notes;     /* atomic: WH__PG_NOTE_* bits not taken yet */
    int64_t changes; /* rows the last statement changed */
    bool piping;     /* statements are sent now and answered after the batch's COMMIT */
    wh__pg_job *piping_job;
    struct wh__pg_piped *piped; /* the statements sent, in order */
    size_t n_piped, cap_piped;
    int64_t reconnects;
} wh__pg;

typedef int (*wh__pg_fn)(wh__pg *c, void *arg);

/* Connects with conninfo (a URI or key=value string), then runs `setup` (may be NULL).
 * The connection string's password never appears in a message. */
int wh__pg_open(wh__pg *c, const char *conninfo, const char *setup, char *errstr, size_t errlen);
void wh__pg_close(wh__pg *c);

/* Runs fn in a write transaction shared with other threads' jobs; *unknown (may be NULL) is
 * set when the job failed because the COMMIT's answer was lost. */
int wh__pg_write(wh__pg *c, wh__pg_fn fn, void *arg, bool *unknown);
/* wh__pg_write for a job whose statements may all be answered after the COMMIT: fn only runs
 * statements (its row callbacks may be called after it returns, and wh__pg_changes means
 * nothing in it). Batches of such jobs take one round trip. */
int wh__pg_write_piped(wh__pg *c, wh__pg_fn fn, void *arg, bool *unknown);
/* Runs fn alone in a write transaction that is never made again (fn calls back into the
 * engine): a lost connection fails it. */
int wh__pg_write_once(wh__pg *c, wh__pg_fn fn, void *arg, bool *unknown);
/* Runs fn alone in a read-only transaction. */
int wh__pg_read(wh__pg *c, wh__pg_fn fn, void *arg);
/* Runs fn alone outside any transaction. */
int wh__pg_alone(wh__pg *c, wh__pg_fn fn, void *arg);

/* Reads what the server sent meanwhile (notifications, a lost connection) without waiting;
 * opens the connection again when it was lost and the backoff allows. */
int wh__pg_pump(wh__pg *c);
/* Takes (clears and returns) the notification bits in mask. */
int wh__pg_take_notes(wh__pg *c, int mask);

/* Runs one statement, prepared once per connection. `types` names the arguments that follow:
 *   t  const char *  (NULL binds NULL)      i  int64_t      d  int      B  bool (an int)
 *   T  const char *, size_t  (text of that length)
 *   b  const void *, size_t  (bytea; NULL binds NULL)
 * row (may be NULL) is called for each result row; a non-zero return stops the walk.
 * Returns WH_OK or WH_ERR_STORE with a message naming `what`. */
int wh__pg_run(wh__pg *c, const char *what, const char *sql,
               int (*row)(void *ud, const PGresult *r, int i), void *ud, const char *types, ...);
/* wh__pg_run for a statement planned anew each time, for its parameters: one that joins a
 * batch's arrays to a table. Prepared once, its generic plan could be made while the table
 * was nearly empty (a scan of it, fine then) and kept while the table grows. */
int wh__pg_run_fresh(wh__pg *c, const char *what, const char *sql,
                     int (*row)(void *ud, const PGresult *r, int i), void *ud, const char *types,
                     ...);
/* Runs one statement of text without parameters (DDL, BEGIN). */
int wh__pg_exec(wh__pg *c, const char *what, const char *sql);
/* Rows changed by the last statement. */
int64_t wh__pg_changes(const wh__pg *c);

static inline const char *wh__pg_text(const PGresult *r, int i, int col)
{
    return PQgetisnull(r, i, col) ? NULL : PQgetvalue(r, i, col);
}
int64_t wh__pg_int(const PGresult *r, int i, int col);
static inline bool wh__pg_bool(const PGresult *r, int i, int col)
{
    return PQgetvalue(r, i, col)[0] == 't';
}


/* "host=... port=... dbname=..." of conninfo, without the password; "" when unparsable. */
void wh__pg_describe(const char *conninfo, char *out, size_t len);

#endif
