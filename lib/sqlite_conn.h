/* Private to libwebhook: one SQLite connection shared by many threads.
 *
 * Write jobs from many threads share one transaction (group commit: the first waiting thread
 * leads and commits everything queued behind it, a savepoint per job so that one caller's
 * failure never undoes another's). Read jobs run alone in a deferred transaction, so readers
 * never take the write lock. Statements are prepared once per connection and kept. */
#ifndef WH_SQLITE_CONN_H
#define WH_SQLITE_CONN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

typedef struct wh__sq_job wh__sq_job;

#define WH__SQ_CACHE 48

typedef struct wh__sq {
    sqlite3 *db;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    wh__sq_job *head, *tail;
    bool busy; /* a thread runs a batch or an exclusive job */
    struct {
        const char *sql; /* cached by address: callers pass string literals */
        sqlite3_stmt *st;
    } cache[WH__SQ_CACHE];
    int n_cached;
} wh__sq;

typedef int (*wh__sq_fn)(wh__sq *c, void *arg);

int wh__sq_init(wh__sq *c, sqlite3 *db);
/* Finalizes the statements and closes the connection. */
void wh__sq_close(wh__sq *c);

/* Runs fn in a write transaction shared with other threads' jobs. */
int wh__sq_write(wh__sq *c, wh__sq_fn fn, void *arg);
/* Runs fn alone in a read (deferred) transaction. */
int wh__sq_read(wh__sq *c, wh__sq_fn fn, void *arg);
/* Runs fn alone outside any transaction (a checkpoint needs that). */
int wh__sq_alone(wh__sq *c, wh__sq_fn fn, void *arg);

/* Runs one statement. `types` names the arguments that follow, one letter each:
 *   t  const char *  (NULL binds NULL)      i  int64_t      d  int
 *   T  const char *, size_t  (text of that length)
 *   b  const void *, size_t  (a blob; NULL binds NULL)
 * row (may be NULL) is called for each result row; a non-zero return stops the walk.
 * Returns WH_OK or, from wh__sq_fail, an error with a message naming `what`. */
int wh__sq_run(wh__sq *c, const char *what, const char *sql,
               int (*row)(void *ud, sqlite3_stmt *st), void *ud, const char *types, ...);
/* Rows changed by the last statement. */
int64_t wh__sq_changes(wh__sq *c);
/* WH_ERR_STORE (WH_ERR_NOMEM when SQLite ran out of memory) with
 * "store: what: <sqlite's message>". */
int wh__sq_fail(wh__sq *c, const char *what);
static inline const char *wh__sq_text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

#endif
