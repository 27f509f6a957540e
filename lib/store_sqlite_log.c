/* The SQLite store's log of emits (event_log.h): one file per engine beside the database,
 * "<database>-emits-<engine id>". The engine folds it into the events table in batches
 * (wh__sqlite_events_fold, store_sqlite_events.c); an engine that takes over a dead one stores
 * what the dead one had not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "event_log.h"
#include "store_sqlite.h"

static void log_path(const wh__sqlite_store *s, const char *engine_id, char *out, size_t len)
{
    snprintf(out, len, "%s-emits-%s", s->path, engine_id);
}

int wh__sqlite_log_open(wh__sqlite_store *s, char *errstr, size_t errlen)
{
    char path[4200];
    log_path(s, s->engine_id, path, sizeof path);
    __atomic_store_n(&s->log_folded, 0, __ATOMIC_RELAXED);
    int rc = wh__event_log_open(path, true, true, 1, &s->log, errstr, errlen);
    if (rc == WH_ERR_STATE)
        rc = wh__fail(errstr, errlen, WH_ERR_STORE, "store: emit log \"%.200s\" is in use", path);
    return rc;
}

void wh__sqlite_log_close(wh__sqlite_store *s)
{
    if (!s->log)
        return;
    /* kept while it holds what is not stored yet: the engine that takes over stores it */
    wh__event_log_close(s->log, __atomic_load_n(&s->log_folded, __ATOMIC_RELAXED) ==
                                    wh__event_log_last_lsn(s->log));
    s->log = NULL;
}

int wh__sqlite_events_log(wh__store *st, const wh__event_add *ev, size_t n)
{
    wh__sqlite_store *s = (wh__sqlite_store *)st;
    if (!s->log)
        return WH_ERR_STATE;
    wh__log_record local[8], *r = n <= 8 ? local : calloc(n, sizeof *r);
    char *joined_local[8], **joined = n <= 8 ? joined_local : calloc(n, sizeof *joined);
    char buf[8][256];
    int rc = r && joined ? WH_OK : WH_ERR_NOMEM;
    size_t made = 0;
    for (; rc == WH_OK && made < n; made++) {
        const wh__event_row *row = &ev[made].row;
        if (row->dedup_id || row->run_id) {
            rc = wh__fail(NULL, 0, WH_ERR_INVALID, "store: an event with %s is not logged",
                          row->dedup_id ? "the caller's id" : "its run");
            break;
        }
        joined[made] = wh__sqlite_join_targets(ev[made].targets, ev[made].n_targets,
                                               made < 8 ? buf[made] : NULL, made < 8 ? sizeof buf[0] : 0);
        if (!joined[made]) {
            rc = WH_ERR_NOMEM;
            break;
        }
        r[made] = (wh__log_record){.created_ms = row->created_ms, .sendable = row->sendable,
                                   .id = row->id, .type = row->type, .targets = joined[made],
                                   .body = row->body, .body_len = row->body_len};
    }
    if (rc == WH_OK)
        rc = wh__event_log_append(s->log, r, n);
    for (size_t i = 0; i < made; i++)
        if (i >= 8 || joined[i] != buf[i])
            free(joined[i]);
    if (r != local)
        free(r);
    if (joined != joined_local)
        free(joined);
    return rc == WH_ERR_NOMEM ? wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory") : rc;
}

typedef struct {
    wh__sq *c;
    const char *engine_id;
    int64_t last;
} dead_fold;

static int store_record(void *ud, const wh__log_record *r)
{
    dead_fold *d = ud;
    d->last = r->lsn;
    return wh__sq_run(d->c, "event",
                      "INSERT INTO events(id, event_type, body, created_ms, targets, claimed_by,"
                      " sendable) VALUES(?,?,?,?,?,?,?)",
                      NULL, NULL, "ttTittd", r->id, r->type, r->body, r->body_len, r->created_ms,
                      r->targets, d->engine_id, r->sendable);
}

static int live_log_index(const wh__sqlite_store *s, const char *engine_id)
{
    for (int i = 0; i < s->n_live_logs; i++)
        if (strcmp(s->live_logs[i].engine_id, engine_id) == 0)
            return i;
    return -1;
}

static void forget_live_log(wh__sqlite_store *s, int i)
{
    s->live_logs[i] = s->live_logs[--s->n_live_logs];
}

/* The oldest remembered log makes room. */
void wh__sqlite_log_read_live(wh__sqlite_store *s, const char *engine_id, const wh__event_log *l)
{
    if (wh__event_log_locked(l))
        return;
    int i = live_log_index(s, engine_id);
    if (i < 0 && s->n_live_logs == (int)(sizeof s->live_logs / sizeof s->live_logs[0]))
        forget_live_log(s, 0);
    if (i < 0)
        i = s->n_live_logs++;
    snprintf(s->live_logs[i].engine_id, sizeof s->live_logs[i].engine_id, "%s", engine_id);
    s->live_logs[i].mark = wh__event_log_mark(l);
}

bool wh__sqlite_log_unchanged(wh__sqlite_store *s, const char *engine_id)
{
    int i = live_log_index(s, engine_id);
    if (i < 0)
        return false;
    char path[4200];
    log_path(s, engine_id, path, sizeof path);
    /* its writer still holds it (a lock taken here is dropped at once), and wrote nothing */
    wh__event_log *l;
    bool same = wh__event_log_open(path, false, false, 1, &l, NULL, 0) == WH_OK;
    if (same) {
        same = !wh__event_log_locked(l) && wh__event_log_unchanged(l, &s->live_logs[i].mark);
        wh__event_log_close(l, false);
    }
    if (!same)
        forget_live_log(s, i);
    return same;
}

int wh__sqlite_fold_dead_log(wh__sq *c, wh__sqlite_store *s, const char *engine_id,
                             struct wh__event_log **held, bool *done)
{
    char path[4200];
    log_path(s, engine_id, path, sizeof path);
    *held = NULL;
    *done = false;
    wh__event_log *l;
    /* a process that still holds its log was judged dead by its lease alone (stopped longer
     * than that): what it logged so far is taken like its claims, read without the lock, and
     * its file and row stay. It may send some of it again once it runs (see the lease in
     * store_sync.c). */
    int rc = wh__event_log_open(path, false, false, 1, &l, NULL, 0);
    if (rc == WH_ERR_NOTFOUND) {
        *done = true;
        return WH_OK;
    }
    if (rc != WH_OK)
        return WH_OK; /* unreadable now (its row stays): the other engines' work goes on */
    *held = l;
    dead_fold d = {c, engine_id, 0};
    int64_t folded = 0;
    rc = wh__sq_run(c, "engines", "SELECT log_folded FROM engines WHERE id = ?", wh__sqlite_int64_row, &folded,
                    "t", engine_id);
    if (rc == WH_OK)
        rc = wh__event_log_read(l, folded, store_record, &d);
    /* a file that could not be read to its end (a bad block): what came before is stored,
     * its row stays, and it is read again at the next claim; the other engines' work goes
     * on meanwhile */
    bool unreadable = rc == WH_ERR_IO;
    if (unreadable)
        rc = WH_OK;
    if (rc == WH_OK && d.last > folded)
        rc = wh__sq_run(c, "engines", "UPDATE engines SET log_folded = ?2 WHERE id = ?1", NULL, NULL,
                        "ti", engine_id, d.last);
    if (unreadable) {
        wh__event_log_close(l, false);
        *held = NULL;
        return rc;
    }
    *done = rc == WH_OK && wh__event_log_locked(l);
    return rc;
}
