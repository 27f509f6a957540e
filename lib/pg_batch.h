/* Private to pg_conn.c and pg_batch.c: what running a batch of jobs (pg_batch.c) uses of
 * the connection (pg_conn.c), and the statements sent in pipeline mode, whose answers the
 * batch reads after its COMMIT. */
#ifndef WH_PG_BATCH_H
#define WH_PG_BATCH_H

#include <stdbool.h>

#include "pg_conn.h"

/* A statement sent in pipeline mode, its answer still to be read. */
struct wh__pg_piped {
    int (*row)(void *ud, const PGresult *r, int i);
    void *ud;
    wh__pg_job *job;
    const char *what;
    int parse; /* a Parse of this cache slot, or -1: a statement */
};

static inline bool wh__pg_ready(const wh__pg *c)
{
    return c->up && PQstatus(c->conn) == CONNECTION_OK;
}
/* Opens the lost connection again; `now`: without waiting for the backoff. */
int wh__pg_reconnect(wh__pg *c, bool now);
/* Takes the notifications the server sent as WH__PG_NOTE_* bits. */
void wh__pg_collect_notes(wh__pg *c);
/* WH_ERR_STORE with the first line of r's message (or the connection's), naming `what`. */
int wh__pg_fail_result(wh__pg *c, const char *what, const PGresult *r);

#endif
