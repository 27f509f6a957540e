/* The SQLite store's events: an emit's row (its caller's id kept for the dedup window),
 * wh_emit_batch's events in one write, and the engine's log of emits folded into the
 * events table with how far it is stored. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "event_log.h"
#include "store_sqlite.h"
#include "util.h"

#define S(st) ((wh__sqlite_store *)(st))

typedef struct {
    wh__sqlite_store *s;
    wh__event_row *ev;
    const wh__target *t;
    size_t n;
} event_args;

static int first_event_row(void *ud, sqlite3_stmt *st)
{
    wh__event_row *ev = ud;
    ev->seq = sqlite3_column_int64(st, 0);
    ev->sendable = sqlite3_column_int(st, 1);
    return 1;
}

char *wh__sqlite_join_targets(const wh__target *t, size_t n, char *local, size_t local_len)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(t[i].endpoint_id) + 2;
    char *targets = len <= local_len ? local : malloc(len), *p = targets;
    if (!targets)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        if (t[i].skip_only)
            *p++ = '!';
        p = stpcpy(p, t[i].endpoint_id);
    }
    *p = '\0';
    return targets;
}

static int add_event(wh__sq *c, void *arg)
{
    event_args *a = arg;
    char local[512], *targets = wh__sqlite_join_targets(a->t, a->n, local, sizeof local);
    if (!targets)
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    wh__event_row *ev = a->ev;
    ev->duplicate = false;
    int rc = WH_OK;
    /* an id whose window has passed may be used again (writes are serialised: no engine
     * can insert the same one between these statements) */
    if (ev->dedup_id)
        rc = wh__sq_run(c, "event",
                        "UPDATE events SET dedup_id = NULL WHERE dedup_id = ?1 AND created_ms < ?2",
                        NULL, NULL, "ti", ev->dedup_id, ev->dedup_after_ms);
    if (rc == WH_OK)
        rc = wh__sq_run(c, "event",
                        "INSERT INTO events(id, event_type, body, created_ms, targets, claimed_by,"
                        " dedup_id, sendable, run_id) VALUES(?,?,?,?,?,?,?,?,?)"
                        " ON CONFLICT DO NOTHING",
                        NULL, NULL, "ttTitttit", ev->id, ev->type, ev->body, ev->body_len,
                        ev->created_ms, targets, a->s->engine_id, ev->dedup_id,
                        (int64_t)ev->sendable, ev->run_id);
    if (targets != local)
        free(targets);
    if (rc == WH_OK && ev->dedup_id && wh__sq_changes(c) == 0) {
        ev->duplicate = true;
        return wh__sq_run(c, "event", "SELECT seq, sendable FROM events WHERE dedup_id = ?",
                          first_event_row, ev, "t", ev->dedup_id);
    }
    if (rc == WH_OK)
        ev->seq = sqlite3_last_insert_rowid(c->db);
    return rc;
}

int wh__sqlite_event_add(wh__store *st, wh__event_row *ev, const wh__target *t, size_t n)
{
    event_args a = {S(st), ev, t, n};
    return wh__sq_write(&S(st)->conn, add_event, &a);
}

typedef struct {
    wh__sqlite_store *s;
    wh__event_add *ev;
    size_t n;
} events_args;

static int add_events(wh__sq *c, void *arg)
{
    events_args *a = arg;
    int rc = WH_OK;
    for (size_t i = 0; i < a->n && rc == WH_OK; i++) {
        event_args one = {a->s, &a->ev[i].row, a->ev[i].targets, a->ev[i].n_targets};
        rc = add_event(c, &one);
    }
    return rc;
}

/* One job, so one savepoint: a failure undoes every event of the batch. */
int wh__sqlite_events_add(wh__store *st, wh__event_add *ev, size_t n)
{
    events_args a = {S(st), ev, n};
    return wh__sq_write(&S(st)->conn, add_events, &a);
}

typedef struct {
    events_args events;
    int64_t folded; /* the log's last record stored by this write */
} fold_args;

/* The logged events, and how far the log is stored, in one commit: an engine that takes the
 * log over after a crash stores only what comes after. */
static int fold_events(wh__sq *c, void *arg)
{
    fold_args *f = arg;
    wh__sqlite_store *s = f->events.s;
    /* An engine that took this one for dead (stopped past its lease, or not driving) stored
     * the log's records up to its row's mark already, under its own claim: those are its
     * now, and are not stored twice. Their events keep seq 0 here, so that what this engine
     * still sends of them is logged as attempts without touching the new holder's rows. */
    int64_t mark = 0, own = f->folded - (int64_t)f->events.n;
    int rc = wh__sq_run(c, "event", "SELECT log_folded FROM engines WHERE id = ?", wh__sqlite_int64_row, &mark,
                        "t", s->engine_id);
    size_t taken = mark > own ? (size_t)(mark - own) : 0;
    if (taken > f->events.n)
        taken = f->events.n;
    for (size_t i = 0; i < taken; i++)
        f->events.ev[i].row.seq = 0;
    events_args rest = {s, f->events.ev + taken, f->events.n - taken};
    if (rc == WH_OK)
        rc = add_events(c, &rest);
    /* never lowered: an engine that took this one for dead may have stored more of it */
    if (rc == WH_OK)
        rc = wh__sq_run(c, "event", "UPDATE engines SET log_folded = max(log_folded, ?2) WHERE id = ?1",
                        NULL, NULL, "ti", s->engine_id, f->folded);
    /* a row taken away meanwhile comes back with the mark: the log stays someone's */
    if (rc == WH_OK && wh__sq_changes(c) == 0) {
        int64_t now = wh__wall_ms();
        rc = wh__sq_run(c, "engine",
                        "INSERT INTO engines(id, host, pid, started_ms, lease_until_ms, log_folded,"
                        " emit_log) VALUES(?, ?, ?, ?, ?, ?, 1)",
                        NULL, NULL, "ttiiii", s->engine_id, s->host, (int64_t)getpid(), now,
                        now + s->lease_ms, f->folded);
    }
    return rc;
}

int wh__sqlite_events_fold(wh__store *st, wh__event_add *ev, size_t n)
{
    wh__sqlite_store *s = S(st);
    if (!s->log)
        return wh__fail(NULL, 0, WH_ERR_STATE, "store: no log of emits");
    /* folds take turns (the engine's fold lock); renew reads the mark from its own thread */
    fold_args f = {{s, ev, n}, __atomic_load_n(&s->log_folded, __ATOMIC_RELAXED) + (int64_t)n};
    int rc = wh__sq_write(&s->conn, fold_events, &f);
    if (rc == WH_OK) {
        __atomic_store_n(&s->log_folded, f.folded, __ATOMIC_RELAXED);
        /* not while appends came meanwhile */
        rc = wh__event_log_clear(s->log, f.folded) ? WH_OK : 1;
    }
    return rc;
}
