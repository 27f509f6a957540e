/* The durable store on SQLite: WAL, versioned schema with migrations, and
 * group commit (writers from many threads share one transaction). All SQL and
 * locking details of SQLite stay in this file. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "internal.h"

typedef struct job {
    int (*run)(wh__store *s, void *arg);
    void *arg;
    int rc;
    char error[256]; /* the leader's message, handed back to the caller's thread */
    bool done;
    struct job *next;
} job;

struct wh__store {
    sqlite3 *db;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;
    bool leader; /* a thread is committing a batch */
    sqlite3_stmt *ins_event, *put_delivery, *ins_attempt, *upd_endpoint_state;
    int64_t data_version;
    char err[256];
};

/* Schema versions, oldest first; a store opened by a newer library migrates up. */
static const char *const migrations[] = {
    /* 1. An emit appends one events row and nothing else, so that a durable emit is one
     * small commit; delivery rows are written by the driver, many per commit. */
    "CREATE TABLE endpoints(id TEXT PRIMARY KEY, url TEXT NOT NULL, event_types TEXT NOT NULL,"
    " secret TEXT NOT NULL, old_secret TEXT, old_until_ms INTEGER NOT NULL DEFAULT 0,"
    " enabled INTEGER NOT NULL, disabled_reason TEXT, description TEXT NOT NULL DEFAULT '',"
    " created_ms INTEGER NOT NULL);"
    "CREATE TABLE events(seq INTEGER PRIMARY KEY, id TEXT NOT NULL, event_type TEXT NOT NULL,"
    " body TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    " targets TEXT NOT NULL);" /* endpoint ids, comma-separated; '!' marks a skipped one */
    "CREATE TABLE deliveries(event_seq INTEGER NOT NULL, endpoint_id TEXT NOT NULL,"
    " event_id TEXT NOT NULL, state INTEGER NOT NULL, attempts INTEGER NOT NULL,"
    " next_ms INTEGER NOT NULL, skip_only INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    " PRIMARY KEY(event_seq, endpoint_id)) WITHOUT ROWID;"
    "CREATE INDEX deliveries_by_event ON deliveries(event_id);"
    "CREATE TABLE attempts(id INTEGER PRIMARY KEY, event_id TEXT NOT NULL,"
    " event_type TEXT NOT NULL, endpoint_id TEXT NOT NULL, url TEXT NOT NULL,"
    " attempt INTEGER NOT NULL, outcome INTEGER NOT NULL, http_status INTEGER NOT NULL,"
    " error TEXT, started_ms INTEGER NOT NULL, duration_us INTEGER NOT NULL,"
    " next_attempt_ms INTEGER NOT NULL, response_body BLOB);"
    "CREATE INDEX attempts_by_time ON attempts(started_ms);",
    /* 2: auto-disable survives restarts; other processes can queue redeliveries; the log
     * is searched by endpoint and event */
    "ALTER TABLE endpoints ADD COLUMN failing_since_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE deliveries ADD COLUMN queued_by_tool INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX deliveries_by_state ON deliveries(state, endpoint_id);"
    "CREATE INDEX attempts_by_endpoint ON attempts(endpoint_id, started_ms);"
    "CREATE INDEX attempts_by_event ON attempts(event_id);"
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

static int fail_db(wh__store *s, const char *what)
{
    return wh__fail(NULL, 0, WH_ERR_STORE, "store: %s: %s", what, sqlite3_errmsg(s->db));
}

/* ---- group commit ---------------------------------------------------------- */

static void set_rc(job *j, int rc)
{
    j->rc = rc;
    if (rc != WH_OK)
        snprintf(j->error, sizeof j->error, "%s", wh_last_error());
}

static void run_batch(wh__store *s, job *batch)
{
    int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int e = fail_db(s, "begin");
        for (job *j = batch; j; j = j->next)
            set_rc(j, e);
        return;
    }
    if (!batch->next) {
        set_rc(batch, batch->run(s, batch->arg));
        if (batch->rc != WH_OK) {
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return;
        }
    } else {
        for (job *j = batch; j; j = j->next) {
            /* a savepoint per job: one caller's bad write never undoes another's */
            sqlite3_exec(s->db, "SAVEPOINT job", NULL, NULL, NULL);
            set_rc(j, j->run(s, j->arg));
            if (j->rc != WH_OK)
                sqlite3_exec(s->db, "ROLLBACK TO job", NULL, NULL, NULL);
            sqlite3_exec(s->db, "RELEASE job", NULL, NULL, NULL);
        }
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        int e = fail_db(s, "commit");
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        for (job *j = batch; j; j = j->next)
            if (j->rc == WH_OK)
                set_rc(j, e);
    }
}

static int submit(wh__store *s, int (*run)(wh__store *, void *), void *arg)
{
    job j = {.run = run, .arg = arg};
    pthread_mutex_lock(&s->mu);
    if (s->tail)
        s->tail->next = &j;
    else
        s->head = &j;
    s->tail = &j;
    while (!j.done) {
        if (s->leader) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        /* lead: commit everything queued so far in one transaction */
        s->leader = true;
        job *batch = s->head;
        s->head = s->tail = NULL;
        pthread_mutex_unlock(&s->mu);
        /* other threads' jobs may fail here: their messages must not become this thread's */
        char own[512];
        int own_code = wh__last_error_code();
        snprintf(own, sizeof own, "%s", wh_last_error());
        run_batch(s, batch);
        if (own_code)
            wh__fail(NULL, 0, own_code, "%s", own);
        else
            wh__clear_error();
        pthread_mutex_lock(&s->mu);
        for (job *k = batch, *next; k; k = next) {
            next = k->next;
            k->done = true;
        }
        s->leader = false;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (j.rc != WH_OK)
        wh__fail(NULL, 0, j.rc, "%s", j.error);
    return j.rc;
}

/* Runs fn alone on the connection, outside any transaction (a checkpoint needs that). */
static int exclusive(wh__store *s, int (*fn)(wh__store *s))
{
    pthread_mutex_lock(&s->mu);
    while (s->leader)
        pthread_cond_wait(&s->cv, &s->mu);
    s->leader = true;
    pthread_mutex_unlock(&s->mu);
    int rc = fn(s);
    pthread_mutex_lock(&s->mu);
    s->leader = false;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int checkpoint(wh__store *s)
{
    int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return rc == SQLITE_OK || rc == SQLITE_BUSY ? WH_OK : fail_db(s, "checkpoint");
}

int wh__store_checkpoint(wh__store *s) { return exclusive(s, checkpoint); }

/* ---- open and migrate -------------------------------------------------------- */

static int user_version(sqlite3 *db)
{
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int migrate(wh__store *s, char *errstr, size_t errlen)
{
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return wh__fail(errstr, errlen, WH_ERR_STORE, "store: cannot lock for migration: %s",
                        sqlite3_errmsg(s->db));
    int v = user_version(s->db);
    if (v > SCHEMA_VERSION) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return wh__fail(errstr, errlen, WH_ERR_STORE,
                        "store: schema version %d is newer than this library's %d", v,
                        SCHEMA_VERSION);
    }
    for (; v < SCHEMA_VERSION; v++) {
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d", v + 1);
        if (sqlite3_exec(s->db, migrations[v], NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(s->db, pragma, NULL, NULL, NULL) != SQLITE_OK) {
            int rc = wh__fail(errstr, errlen, WH_ERR_STORE, "store: migration to version %d: %s",
                              v + 1, sqlite3_errmsg(s->db));
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return wh__fail(errstr, errlen, WH_ERR_STORE, "store: migration commit: %s",
                        sqlite3_errmsg(s->db));
    return WH_OK;
}

static int prepare(wh__store *s, sqlite3_stmt **st, const char *sql)
{
    return sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK
               ? WH_OK
               : fail_db(s, "prepare");
}

static int write_types(wh__store *s, void *arg)
{
    const char *const *types = arg;
    size_t len = 1;
    for (const char *const *t = types; *t; t++)
        len += strlen(*t) + 1;
    char *joined = calloc(1, len);
    if (!joined)
        return WH_ERR_NOMEM;
    for (const char *const *t = types; *t; t++) {
        if (t != types)
            strcat(joined, ",");
        strcat(joined, *t);
    }
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO meta(key, value) VALUES('event_types', ?)", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, joined, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_finalize(st);
    free(joined);
    return rc == SQLITE_OK ? WH_OK : fail_db(s, "meta");
}

int wh__store_open(const char *path, bool sync_full, const char *const *event_types,
                   wh__store **out, char *errstr, size_t errlen)
{
    /* the file holds signing secrets: create it private before SQLite opens it */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return wh__fail(errstr, errlen, WH_ERR_STORE, "store: cannot open \"%.200s\": %m", path);
    close(fd);
    wh__store *s = calloc(1, sizeof *s);
    if (!s)
        return wh__fail(errstr, errlen, WH_ERR_NOMEM, "store: out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int rc;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
        rc = wh__fail(errstr, errlen, WH_ERR_STORE, "store: cannot open \"%.200s\": %s", path,
                      s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 5000);
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA wal_autocheckpoint=0;"
             " PRAGMA cache_size=-16384;",
             sync_full ? "FULL" : "NORMAL");
    if (sqlite3_exec(s->db, pragmas, NULL, NULL, NULL) != SQLITE_OK) {
        rc = wh__fail(errstr, errlen, WH_ERR_STORE, "store: \"%.200s\": %s", path, sqlite3_errmsg(s->db));
        goto fail;
    }
    if ((rc = migrate(s, errstr, errlen)) != WH_OK)
        goto fail;
    if ((rc = prepare(s, &s->ins_event, "INSERT INTO events(id, event_type, body, created_ms, targets) VALUES(?,?,?,?,?)")) ||
        (rc = prepare(s, &s->put_delivery,
                      "INSERT INTO deliveries(event_seq, endpoint_id, event_id, state, attempts, next_ms,"
                      " skip_only, updated_ms, queued_by_tool) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)"
                      " ON CONFLICT(event_seq, endpoint_id) DO UPDATE SET state=?4, attempts=?5,"
                      " next_ms=?6, skip_only=?7, updated_ms=?8, queued_by_tool=?9")) ||
        (rc = prepare(s, &s->ins_attempt, "INSERT INTO attempts(event_id, event_type, endpoint_id, url, attempt, outcome, http_status, error, started_ms, duration_us, next_attempt_ms, response_body) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)")) ||
        (rc = prepare(s, &s->upd_endpoint_state, "UPDATE endpoints SET enabled=?, disabled_reason=?, failing_since_ms=? WHERE id=?"))) {
        wh__fail(errstr, errlen, rc, "%s", wh_last_error());
        goto fail;
    }
    if (event_types && (rc = submit(s, write_types, (void *)event_types)) != WH_OK) {
        wh__fail(errstr, errlen, rc, "%s", wh_last_error());
        goto fail;
    }
    bool ignored;
    wh__store_changed(s, &ignored);
    *out = s;
    return WH_OK;
fail:
    wh__store_close(s);
    return rc;
}

void wh__store_close(wh__store *s)
{
    if (!s)
        return;
    sqlite3_finalize(s->ins_event);
    sqlite3_finalize(s->put_delivery);
    sqlite3_finalize(s->ins_attempt);
    sqlite3_finalize(s->upd_endpoint_state);
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

/* ---- writes -------------------------------------------------------------------- */

static int step_done(wh__store *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? WH_OK : fail_db(s, what);
}

static int put_endpoint(wh__store *s, void *arg)
{
    const wh__endpoint_row *ep = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT OR REPLACE INTO endpoints(id, url, event_types, secret, old_secret,"
                           " old_until_ms, enabled, disabled_reason, description, created_ms,"
                           " failing_since_ms) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        return fail_db(s, "endpoint");
    sqlite3_bind_text(st, 1, ep->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ep->url, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, ep->event_types, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, ep->secret, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, ep->old_secret, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, ep->old_until_ms);
    sqlite3_bind_int(st, 7, ep->enabled);
    sqlite3_bind_text(st, 8, ep->disabled_reason, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, ep->description ? ep->description : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, ep->created_ms);
    sqlite3_bind_int64(st, 11, ep->failing_since_ms);
    int rc = sqlite3_step(st) == SQLITE_DONE ? WH_OK : fail_db(s, "endpoint");
    sqlite3_finalize(st);
    return rc;
}

int wh__store_put_endpoint(wh__store *s, const wh__endpoint_row *ep)
{
    return submit(s, put_endpoint, (void *)ep);
}

static int delete_endpoint(wh__store *s, void *arg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM endpoints WHERE id=?", -1, &st, NULL) != SQLITE_OK)
        return fail_db(s, "endpoint");
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE ? WH_OK : fail_db(s, "endpoint");
    sqlite3_finalize(st);
    return rc;
}

int wh__store_delete_endpoint(wh__store *s, const char *id)
{
    return submit(s, delete_endpoint, (void *)id);
}

typedef struct {
    const wh__event *ev;
    int64_t now_ms;
    wh__delivery *const *ds;
    size_t n;
    bool from_tool;
} add_args;

static int put_delivery(wh__store *s, int64_t seq, const char *endpoint_id, const char *event_id,
                        int state, int attempts, int64_t next_ms, bool skip_only,
                        int64_t updated_ms, bool from_tool)
{
    sqlite3_stmt *st = s->put_delivery;
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_text(st, 2, endpoint_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, event_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, state);
    sqlite3_bind_int(st, 5, attempts);
    sqlite3_bind_int64(st, 6, next_ms);
    sqlite3_bind_int(st, 7, skip_only);
    sqlite3_bind_int64(st, 8, updated_ms);
    sqlite3_bind_int(st, 9, from_tool);
    return step_done(s, st, "delivery");
}

static int add_event(wh__store *s, void *arg)
{
    const add_args *a = arg;
    size_t len = 1;
    for (size_t i = 0; i < a->n; i++)
        len += strlen(a->ds[i]->ep->id) + 2;
    char local[512], *targets = len <= sizeof local ? local : malloc(len), *p = targets;
    if (!targets)
        return WH_ERR_NOMEM;
    for (size_t i = 0; i < a->n; i++) {
        if (i)
            *p++ = ',';
        if (a->ds[i]->skip_only)
            *p++ = '!';
        p = stpcpy(p, a->ds[i]->ep->id);
    }
    *p = '\0';
    sqlite3_stmt *st = s->ins_event;
    sqlite3_bind_text(st, 1, a->ev->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->ev->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, a->ev->body, (int)a->ev->body_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, a->now_ms);
    sqlite3_bind_text(st, 5, targets, -1, SQLITE_STATIC);
    int rc = step_done(s, st, "event");
    if (targets != local)
        free(targets);
    if (rc == WH_OK)
        ((wh__event *)a->ev)->seq = sqlite3_last_insert_rowid(s->db);
    return rc;
}

int wh__store_add_event(wh__store *s, const wh__event *ev, int64_t now_ms, wh__delivery *const *ds,
                        size_t n)
{
    add_args a = {.ev = ev, .now_ms = now_ms, .ds = ds, .n = n};
    return submit(s, add_event, &a);
}

static int add_deliveries(wh__store *s, void *arg)
{
    const add_args *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        const wh__delivery *d = a->ds[i];
        int rc = put_delivery(s, d->ev->seq, d->ep->id, d->ev->id, WH__DSTATE_PENDING, 0,
                              d->next_ms, d->skip_only, a->now_ms, a->from_tool);
        if (rc != WH_OK)
            return rc;
    }
    return WH_OK;
}

int wh__store_add_deliveries(wh__store *s, wh__delivery *const *ds, size_t n, int64_t now_ms,
                             bool from_tool)
{
    add_args a = {.now_ms = now_ms, .ds = ds, .n = n, .from_tool = from_tool};
    return submit(s, add_deliveries, &a);
}

typedef struct {
    const wh__result *r;
    size_t n;
} results_args;

static int write_results(wh__store *s, void *arg)
{
    const results_args *ra = arg;
    for (size_t i = 0; i < ra->n; i++) {
        const wh__result *r = &ra->r[i];
        int rc;
        if (r->event_seq &&
            (rc = put_delivery(s, r->event_seq, r->endpoint_id, r->event_id, r->state, r->attempts,
                               r->next_ms, r->skip_only,
                               r->rec ? r->rec->a.started_ms : wh__wall_ms(), false)) != WH_OK)
            return rc;
        if (r->rec) {
            const wh_attempt *a = &r->rec->a;
            sqlite3_stmt *st = s->ins_attempt;
            sqlite3_bind_text(st, 1, a->event_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, a->event_type, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, a->endpoint_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, a->url ? a->url : "", -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 5, a->attempt);
            sqlite3_bind_int(st, 6, a->outcome);
            sqlite3_bind_int(st, 7, a->http_status);
            sqlite3_bind_text(st, 8, a->error, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 9, a->started_ms);
            sqlite3_bind_int64(st, 10, a->duration_us);
            sqlite3_bind_int64(st, 11, a->next_attempt_ms);
            if (a->response_body)
                sqlite3_bind_blob(st, 12, a->response_body, (int)a->response_len, SQLITE_STATIC);
            if ((rc = step_done(s, st, "attempt")) != WH_OK)
                return rc;
        }
        if (r->endpoint_changed) {
            sqlite3_stmt *st = s->upd_endpoint_state;
            sqlite3_bind_int(st, 1, r->endpoint_enabled);
            sqlite3_bind_text(st, 2, r->disabled_reason, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, r->failing_since_ms);
            sqlite3_bind_text(st, 4, r->endpoint_id, -1, SQLITE_STATIC);
            if ((rc = step_done(s, st, "endpoint")) != WH_OK)
                return rc;
        }
    }
    return WH_OK;
}

int wh__store_results(wh__store *s, const wh__result *r, size_t n)
{
    results_args a = {.r = r, .n = n};
    return n ? submit(s, write_results, &a) : WH_OK;
}

/* ---- reads ----------------------------------------------------------------------- */

/* Walks an event's targets: endpoint ids, comma-separated, '!' before a skipped one
 * (also a plain list such as group_concat gives). */
typedef struct {
    const char *next;
    const char *id; /* not NUL-terminated: len bytes */
    size_t len;
    bool skipped;
} target_iter;

static bool next_target(target_iter *it)
{
    if (!it->next || !*it->next)
        return false;
    const char *end = strchr(it->next, ',');
    size_t len = end ? (size_t)(end - it->next) : strlen(it->next);
    it->skipped = *it->next == '!';
    it->id = it->next + it->skipped;
    it->len = len - it->skipped;
    it->next = end ? end + 1 : it->next + len;
    return true;
}

static bool list_has(const char *list, const char *id, size_t len)
{
    target_iter it = {.next = list};
    while (next_target(&it))
        if (it.len == len && memcmp(it.id, id, len) == 0)
            return true;
    return false;
}

/* The id as a C string, or false when it cannot be an id. */
static bool target_id(const target_iter *it, char id[WH_ID_MAX])
{
    if (it->len >= WH_ID_MAX)
        return false;
    memcpy(id, it->id, it->len);
    id[it->len] = '\0';
    return true;
}

typedef struct {
    void (*cb)(void *ud, const wh__endpoint_row *r);
    void *ud;
} ep_load_args;

static const char *col_text(sqlite3_stmt *st, int i) { return (const char *)sqlite3_column_text(st, i); }

static int load_endpoints(wh__store *s, void *arg)
{
    ep_load_args *a = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, url, event_types, secret, old_secret, old_until_ms, enabled,"
                           " disabled_reason, description, created_ms, failing_since_ms"
                           " FROM endpoints ORDER BY created_ms, rowid",
                           -1, &st, NULL) != SQLITE_OK)
        return fail_db(s, "endpoints");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        wh__endpoint_row r = {
            .id = col_text(st, 0),
            .url = col_text(st, 1),
            .event_types = col_text(st, 2),
            .secret = col_text(st, 3),
            .old_secret = col_text(st, 4),
            .old_until_ms = sqlite3_column_int64(st, 5),
            .enabled = sqlite3_column_int(st, 6) != 0,
            .disabled_reason = col_text(st, 7),
            .description = col_text(st, 8),
            .created_ms = sqlite3_column_int64(st, 9),
            .failing_since_ms = sqlite3_column_int64(st, 10),
        };
        a->cb(a->ud, &r);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? WH_OK : fail_db(s, "endpoints");
}

int wh__store_load_endpoints(wh__store *s, void (*cb)(void *ud, const wh__endpoint_row *r), void *ud)
{
    ep_load_args a = {cb, ud};
    return submit(s, load_endpoints, &a);
}

typedef struct {
    bool only_from_tool;
    void (*cb)(void *ud, const wh__pending_row *r);
    void *ud;
} pending_args;

static int load_pending(wh__store *s, void *arg)
{
    pending_args *a = arg;
    sqlite3_stmt *st;
    /* retries (and redeliveries) have a row in deliveries */
    const char *sql =
        a->only_from_tool
            ? "SELECT d.event_seq, e.id, e.event_type, d.endpoint_id, e.body, d.attempts, d.next_ms,"
              " d.skip_only FROM deliveries d JOIN events e ON e.seq = d.event_seq"
              " WHERE d.state = 0 AND d.queued_by_tool = 1 ORDER BY d.event_seq"
            : "SELECT d.event_seq, e.id, e.event_type, d.endpoint_id, e.body, d.attempts, d.next_ms,"
              " d.skip_only FROM deliveries d JOIN events e ON e.seq = d.event_seq"
              " WHERE d.state = 0 ORDER BY d.event_seq";
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return fail_db(s, "deliveries");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        wh__pending_row r = {
            .event_seq = sqlite3_column_int64(st, 0),
            .event_id = col_text(st, 1),
            .event_type = col_text(st, 2),
            .endpoint_id = col_text(st, 3),
            .body = col_text(st, 4),
            .body_len = (size_t)sqlite3_column_bytes(st, 4),
            .attempts = sqlite3_column_int(st, 5),
            .next_ms = sqlite3_column_int64(st, 6),
            .skip_only = sqlite3_column_int(st, 7) != 0,
        };
        a->cb(a->ud, &r);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return fail_db(s, "deliveries");
    if (a->only_from_tool)
        return sqlite3_exec(s->db, "UPDATE deliveries SET queued_by_tool = 0 WHERE queued_by_tool = 1",
                            NULL, NULL, NULL) == SQLITE_OK
                   ? WH_OK
                   : fail_db(s, "deliveries");
    sqlite3_exec(s->db, "UPDATE deliveries SET queued_by_tool = 0 WHERE queued_by_tool = 1", NULL, NULL, NULL);
    /* first attempts have no row yet: the event's targets without one */
    if (sqlite3_prepare_v2(s->db,
                           "SELECT e.seq, e.id, e.event_type, e.body, e.created_ms, e.targets,"
                           " (SELECT group_concat(d.endpoint_id) FROM deliveries d WHERE d.event_seq = e.seq)"
                           " FROM events e ORDER BY e.seq",
                           -1, &st, NULL) != SQLITE_OK)
        return fail_db(s, "events");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *targets = col_text(st, 5), *attempted = col_text(st, 6);
        wh__pending_row r = {
            .event_seq = sqlite3_column_int64(st, 0),
            .event_id = col_text(st, 1),
            .event_type = col_text(st, 2),
            .body = col_text(st, 3),
            .body_len = (size_t)sqlite3_column_bytes(st, 3),
            .next_ms = sqlite3_column_int64(st, 4),
        };
        target_iter it = {.next = targets};
        char id[WH_ID_MAX];
        while (next_target(&it)) {
            if (list_has(attempted, it.id, it.len) || !target_id(&it, id))
                continue;
            r.skip_only = it.skipped;
            r.endpoint_id = id;
            a->cb(a->ud, &r);
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? WH_OK : fail_db(s, "events");
}

int wh__store_load_pending(wh__store *s, bool only_from_tool,
                           void (*cb)(void *ud, const wh__pending_row *r), void *ud)
{
    pending_args a = {only_from_tool, cb, ud};
    return submit(s, load_pending, &a);
}

static int read_data_version(wh__store *s, void *arg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "PRAGMA data_version", -1, &st, NULL) != SQLITE_OK)
        return fail_db(s, "data_version");
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : s->data_version;
    sqlite3_finalize(st);
    *(bool *)arg = v != s->data_version;
    s->data_version = v;
    return WH_OK;
}

int wh__store_changed(wh__store *s, bool *changed)
{
    *changed = false;
    return submit(s, read_data_version, changed);
}

typedef struct {
    const wh_log_filter *f;
    wh__record **rows;
    size_t n, cap;
} query_args;

static int log_query(wh__store *s, void *arg)
{
    query_args *q = arg;
    const wh_log_filter *f = q->f;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT event_id, event_type, endpoint_id, url, attempt, outcome,"
                           " http_status, error, started_ms, duration_us, next_attempt_ms, response_body"
                           " FROM attempts WHERE (?1 IS NULL OR endpoint_id = ?1)"
                           " AND (?2 IS NULL OR event_id = ?2) AND (?3 IS NULL OR event_type = ?3)"
                           " AND (?4 < 0 OR outcome = ?4) AND (?5 = 0 OR started_ms >= ?5)"
                           " AND (?6 = 0 OR started_ms <= ?6)"
                           " ORDER BY started_ms DESC, id DESC LIMIT ?7",
                           -1, &st, NULL) != SQLITE_OK)
        return fail_db(s, "log query");
    sqlite3_bind_text(st, 1, f ? f->endpoint_id : NULL, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, f ? f->event_id : NULL, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, f ? f->event_type : NULL, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, f ? f->outcome : -1);
    sqlite3_bind_int64(st, 5, f ? f->since_ms : 0);
    sqlite3_bind_int64(st, 6, f ? f->until_ms : 0);
    sqlite3_bind_int(st, 7, (int)q->cap);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && q->n < q->cap) {
        wh__record *r = calloc(1, sizeof *r);
        if (!r)
            break;
        snprintf(r->event_id, sizeof r->event_id, "%s", col_text(st, 0));
        snprintf(r->event_type, sizeof r->event_type, "%s", col_text(st, 1));
        snprintf(r->endpoint_id, sizeof r->endpoint_id, "%s", col_text(st, 2));
        r->url = wh__strdup(col_text(st, 3));
        r->error = wh__strdup(col_text(st, 7));
        size_t blen = (size_t)sqlite3_column_bytes(st, 11);
        const void *blob = sqlite3_column_blob(st, 11);
        if (blob && (r->body = malloc(blen + 1))) {
            memcpy(r->body, blob, blen);
            r->body[blen] = '\0';
        }
        r->a = (wh_attempt){
            .event_id = r->event_id,
            .event_type = r->event_type,
            .endpoint_id = r->endpoint_id,
            .url = r->url,
            .attempt = sqlite3_column_int(st, 4),
            .outcome = (wh_outcome)sqlite3_column_int(st, 5),
            .http_status = sqlite3_column_int(st, 6),
            .error = r->error,
            .started_ms = sqlite3_column_int64(st, 8),
            .duration_us = sqlite3_column_int64(st, 9),
            .next_attempt_ms = sqlite3_column_int64(st, 10),
            .response_body = r->body,
            .response_len = r->body ? blen : 0,
        };
        q->rows[q->n++] = r;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? WH_OK : fail_db(s, "log query");
}

int wh__store_log_query(wh__store *s, const wh_log_filter *f,
                        void (*row)(void *ud, const wh_attempt *a), void *ud)
{
    int limit = f && f->limit > 0 ? f->limit : 100;
    query_args q = {.f = f, .cap = (size_t)limit, .rows = calloc((size_t)limit, sizeof(wh__record *))};
    if (!q.rows)
        return WH_ERR_NOMEM;
    int rc = submit(s, log_query, &q);
    /* rows are handed over with no lock held */
    for (size_t i = 0; i < q.n; i++) {
        if (rc == WH_OK && row)
            row(ud, &q.rows[i]->a);
        wh__record_free(q.rows[i]);
    }
    free(q.rows);
    return rc == WH_OK ? (int)q.n : rc;
}

typedef struct {
    const char *event_id, *endpoint_id;
    int64_t since_ms;
    void (*event_cb)(void *ud, int64_t seq, const char *type, const char *body, size_t len,
                     const char *endpoint_id);
    void (*failed_cb)(void *ud, const char *event_id);
    void *ud;
    int found;
} find_args;

static int find_event(wh__store *s, void *arg)
{
    find_args *a = arg;
    sqlite3_stmt *st;
    /* through the deliveries index when the event was attempted, else a scan */
    if (sqlite3_prepare_v2(s->db,
                           "SELECT seq, event_type, body, targets FROM events WHERE seq = coalesce("
                           "(SELECT event_seq FROM deliveries WHERE event_id = ?1 LIMIT 1),"
                           "(SELECT seq FROM events WHERE id = ?1))",
                           -1, &st, NULL) != SQLITE_OK)
        return fail_db(s, "event");
    sqlite3_bind_text(st, 1, a->event_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        const char *type = col_text(st, 1), *body = col_text(st, 2);
        size_t body_len = (size_t)sqlite3_column_bytes(st, 2);
        target_iter it = {.next = col_text(st, 3)};
        char id[WH_ID_MAX];
        while (next_target(&it)) {
            if (!target_id(&it, id))
                continue;
            a->event_cb(a->ud, seq, type, body, body_len, id);
            a->found++;
        }
        rc = SQLITE_DONE;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? WH_OK : fail_db(s, "event");
}

int wh__store_find_event(wh__store *s, const char *event_id,
                         void (*cb)(void *ud, int64_t seq, const char *type, const char *body,
                                    size_t len, const char *endpoint_id),
                         void *ud)
{
    find_args a = {.event_id = event_id, .event_cb = cb, .ud = ud};
    int rc = submit(s, find_event, &a);
    return rc == WH_OK ? a.found : rc;
}

static int find_failed(wh__store *s, void *arg)
{
    find_args *a = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT DISTINCT event_id FROM deliveries WHERE endpoint_id = ?"
                           " AND state IN (2, 3) AND updated_ms >= ? ORDER BY event_id",
                           -1, &st, NULL) != SQLITE_OK)
        return fail_db(s, "deliveries");
    sqlite3_bind_text(st, 1, a->endpoint_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, a->since_ms);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        a->failed_cb(a->ud, col_text(st, 0));
        a->found++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? WH_OK : fail_db(s, "deliveries");
}

int wh__store_find_failed(wh__store *s, const char *endpoint_id, int64_t since_ms,
                          void (*cb)(void *ud, const char *event_id), void *ud)
{
    find_args a = {.endpoint_id = endpoint_id, .since_ms = since_ms, .failed_cb = cb, .ud = ud};
    int rc = submit(s, find_failed, &a);
    return rc == WH_OK ? a.found : rc;
}

typedef struct {
    int64_t before_ms;
    int batch;
    int deleted;
} prune_args;

static int prune(wh__store *s, void *arg)
{
    prune_args *p = arg;
    /* an event goes with its deliveries, once none is pending and it is old enough */
    static const char *const sql[] = {
        "DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE started_ms < ?1 LIMIT ?2)",
        "CREATE TEMP TABLE IF NOT EXISTS prune_seq(seq INTEGER PRIMARY KEY)",
        /* every target attempted (a row each: first attempts have none) and none pending */
        "INSERT INTO prune_seq SELECT e.seq FROM events e WHERE e.created_ms < ?1"
        " AND (SELECT count(*) FROM deliveries d WHERE d.event_seq = e.seq)"
        " >= length(e.targets) - length(replace(e.targets, ',', '')) + 1"
        " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq AND d.state = 0)"
        " ORDER BY e.seq LIMIT ?2",
        "DELETE FROM deliveries WHERE event_seq IN (SELECT seq FROM prune_seq)",
        "DELETE FROM events WHERE seq IN (SELECT seq FROM prune_seq)",
        "DELETE FROM prune_seq",
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(s->db, sql[i], -1, &st, NULL) != SQLITE_OK)
            return fail_db(s, "prune");
        if (sqlite3_bind_parameter_count(st) >= 1)
            sqlite3_bind_int64(st, 1, p->before_ms);
        if (sqlite3_bind_parameter_count(st) >= 2)
            sqlite3_bind_int(st, 2, p->batch);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            return fail_db(s, "prune");
        if (i == 0 || i == 3 || i == 4)
            p->deleted += sqlite3_changes(s->db);
    }
    return WH_OK;
}

int wh__store_prune(wh__store *s, int64_t before_ms, int batch)
{
    prune_args p = {.before_ms = before_ms, .batch = batch};
    int rc = submit(s, prune, &p);
    return rc == WH_OK ? p.deleted : rc;
}

/* ---- for webhookctl: another process working on the same file --------------------- */

typedef struct {
    const char *key;
    char *value;
} meta_args;

static int get_meta(wh__store *s, void *arg)
{
    meta_args *m = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) != SQLITE_OK)
        return fail_db(s, "meta");
    sqlite3_bind_text(st, 1, m->key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && !(m->value = wh__strdup(col_text(st, 0))))
        rc = SQLITE_NOMEM;
    sqlite3_finalize(st);
    if (rc == SQLITE_NOMEM)
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? WH_OK : fail_db(s, "meta");
}

int wh__store_get_meta(wh__store *s, const char *key, char **value_out)
{
    meta_args m = {.key = key};
    int rc = submit(s, get_meta, &m);
    *value_out = rc == WH_OK ? m.value : NULL;
    if (rc != WH_OK)
        free(m.value);
    return rc;
}

/* Runs one UPDATE/DELETE on the endpoint ?1; NOTFOUND when no row had that id. */
typedef struct {
    const char *sql, *id, *text;
    int64_t num;
} ep_update_args;

static int update_endpoint(wh__store *s, void *arg)
{
    ep_update_args *u = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, u->sql, -1, &st, NULL) != SQLITE_OK)
        return fail_db(s, "endpoint");
    sqlite3_bind_text(st, 1, u->id, -1, SQLITE_STATIC);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_int64(st, 2, u->num);
    if (sqlite3_bind_parameter_count(st) >= 3)
        sqlite3_bind_text(st, 3, u->text, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return fail_db(s, "endpoint");
    return sqlite3_changes(s->db) > 0
               ? WH_OK
               : wh__fail(NULL, 0, WH_ERR_NOTFOUND, "no endpoint \"%.63s\"", u->id);
}

int wh__store_set_endpoint_enabled(wh__store *s, const char *id, bool enabled)
{
    /* by hand: enabling clears the reason and the failing clock; disabling keeps the
     * reason of an endpoint that was disabled already */
    ep_update_args u = {
        .id = id,
        .sql = enabled ? "UPDATE endpoints SET enabled = 1, disabled_reason = NULL,"
                         " failing_since_ms = 0 WHERE id = ?1"
                       : "UPDATE endpoints SET disabled_reason = CASE WHEN enabled THEN NULL"
                         " ELSE disabled_reason END, enabled = 0 WHERE id = ?1",
    };
    return submit(s, update_endpoint, &u);
}

int wh__store_rotate_endpoint_secret(wh__store *s, const char *id, const char *new_secret,
                                     int64_t old_until_ms)
{
    /* one statement: the secret that becomes the old one is the one stored right now */
    ep_update_args u = {
        .id = id,
        .num = old_until_ms,
        .text = new_secret,
        .sql = "UPDATE endpoints SET old_secret = CASE WHEN ?2 > 0 THEN secret ELSE NULL END,"
               " old_until_ms = ?2, secret = ?3 WHERE id = ?1",
    };
    return submit(s, update_endpoint, &u);
}

typedef struct {
    const char *event_id, *endpoint_id;
    int64_t since_ms, now_ms;
    int queued;
} requeue_args;

/* Runs sql with ?1 = a (text), ?2 = b (text or NULL), ?3 = n; *found: it gave a row, whose
 * first column goes to *col0 when col0 is not NULL. */
static int lookup(wh__store *s, const char *sql, const char *a, const char *b, int64_t n,
                  bool *found, int64_t *col0)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return fail_db(s, "lookup");
    int np = sqlite3_bind_parameter_count(st);
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (np >= 2)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    if (np >= 3)
        sqlite3_bind_int64(st, 3, n);
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW && col0)
        *col0 = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? WH_OK : fail_db(s, "lookup");
}

/* Turns finished deliveries back into pending ones that a running engine claims
 * (queued_by_tool); a first attempt not made yet, or a retry, is on its way already. */
#define REQUEUE_SET                                                                       \
    "UPDATE deliveries SET state = 0, attempts = 0, next_ms = ?3, skip_only = 0,"         \
    " updated_ms = ?3, queued_by_tool = 1"

static int queue_redelivery(wh__store *s, void *arg)
{
    requeue_args *q = arg;
    bool found;
    int64_t seq = 0;
    /* through the deliveries index when the event was attempted, else a scan */
    int rc = lookup(s,
                    "SELECT seq FROM events WHERE seq = coalesce("
                    "(SELECT event_seq FROM deliveries WHERE event_id = ?1 LIMIT 1),"
                    "(SELECT seq FROM events WHERE id = ?1))",
                    q->event_id, NULL, 0, &found, &seq);
    if (rc == WH_OK && !found)
        return wh__fail(NULL, 0, WH_ERR_NOTFOUND, "no event \"%.63s\" in the store", q->event_id);
    if (rc == WH_OK && q->endpoint_id) {
        rc = lookup(s, "SELECT 1 FROM endpoints WHERE id = ?1", q->endpoint_id, NULL, 0, &found,
                    NULL);
        if (rc == WH_OK && !found)
            return wh__fail(NULL, 0, WH_ERR_NOTFOUND, "no endpoint \"%.63s\"", q->endpoint_id);
        /* targets: endpoint ids, comma-separated, '!' before a skipped one */
        if (rc == WH_OK)
            rc = lookup(s,
                        "SELECT 1 FROM events WHERE seq = ?3 AND instr(',' || replace(targets, '!', '')"
                        " || ',', ',' || ?2 || ',') > 0",
                        q->event_id, q->endpoint_id, seq, &found, NULL);
        if (rc == WH_OK && !found)
            return wh__fail(NULL, 0, WH_ERR_NOTFOUND, "event %.63s never went to endpoint \"%.63s\"",
                            q->event_id, q->endpoint_id);
    }
    if (rc != WH_OK)
        return rc;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           REQUEUE_SET " WHERE event_seq = ?1 AND state <> 0"
                           " AND (?2 IS NULL OR endpoint_id = ?2)"
                           " AND endpoint_id IN (SELECT id FROM endpoints)",
                           -1, &st, NULL) != SQLITE_OK)
        return fail_db(s, "deliveries");
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_text(st, 2, q->endpoint_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, q->now_ms);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return fail_db(s, "deliveries");
    q->queued = sqlite3_changes(s->db);
    return WH_OK;
}

int wh__store_queue_redelivery(wh__store *s, const char *event_id, const char *endpoint_id,
                               int64_t now_ms)
{
    requeue_args q = {.event_id = event_id, .endpoint_id = endpoint_id, .now_ms = now_ms};
    int rc = submit(s, queue_redelivery, &q);
    return rc == WH_OK ? q.queued : rc;
}

static int queue_recovery(wh__store *s, void *arg)
{
    requeue_args *q = arg;
    bool found;
    int rc = lookup(s, "SELECT 1 FROM endpoints WHERE id = ?1", q->endpoint_id, NULL, 0, &found,
                    NULL);
    if (rc == WH_OK && !found)
        return wh__fail(NULL, 0, WH_ERR_NOTFOUND, "no endpoint \"%.63s\"", q->endpoint_id);
    if (rc != WH_OK)
        return rc;
    /* a delivery is one row per (event, endpoint): one delivered since is not FAILED any
     * more, and one queued already is pending */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           REQUEUE_SET " WHERE endpoint_id = ?1 AND state IN (2, 3) AND updated_ms >= ?2"
                           " AND EXISTS (SELECT 1 FROM events e WHERE e.seq = event_seq)",
                           -1, &st, NULL) != SQLITE_OK)
        return fail_db(s, "deliveries");
    sqlite3_bind_text(st, 1, q->endpoint_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, q->since_ms);
    sqlite3_bind_int64(st, 3, q->now_ms);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return fail_db(s, "deliveries");
    q->queued = sqlite3_changes(s->db);
    return WH_OK;
}

int wh__store_queue_recovery(wh__store *s, const char *endpoint_id, int64_t since_ms,
                             int64_t now_ms)
{
    requeue_args q = {.endpoint_id = endpoint_id, .since_ms = since_ms, .now_ms = now_ms};
    int rc = submit(s, queue_recovery, &q);
    return rc == WH_OK ? q.queued : rc;
}

typedef struct {
    wh__endpoint_stats st;
    char *id, *url;
} stats_entry;

typedef struct {
    stats_entry *v;
    size_t n, cap;
} stats_list;

static stats_entry *stats_find(stats_list *l, const char *id, size_t len)
{
    for (size_t i = 0; i < l->n; i++)
        if (strlen(l->v[i].id) == len && memcmp(l->v[i].id, id, len) == 0)
            return &l->v[i];
    return NULL;
}

static stats_entry *stats_push(stats_list *l, const char *id, size_t len)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        stats_entry *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return NULL;
        l->v = v, l->cap = cap;
    }
    stats_entry *e = &l->v[l->n];
    memset(e, 0, sizeof *e);
    if (!(e->id = strndup(id, len)))
        return NULL;
    l->n++;
    return e;
}

static int endpoint_stats(wh__store *s, void *arg)
{
    stats_list *l = arg;
    sqlite3_stmt *st;
    /* the endpoints, then removed ones that still have deliveries; by state */
    if (sqlite3_prepare_v2(
            s->db,
            "SELECT i.id, ep.url, ep.enabled, ep.id IS NOT NULL,"
            " COALESCE(SUM(d.state = 1), 0), COALESCE(SUM(d.state = 2), 0),"
            " COALESCE(SUM(d.state = 3), 0), COALESCE(SUM(d.state = 0), 0),"
            " COALESCE(MAX(CASE WHEN d.state = 1 THEN d.updated_ms END), 0)"
            " FROM (SELECT id FROM endpoints UNION SELECT DISTINCT endpoint_id FROM deliveries) i"
            " LEFT JOIN endpoints ep ON ep.id = i.id LEFT JOIN deliveries d ON d.endpoint_id = i.id"
            " GROUP BY i.id ORDER BY ep.id IS NULL, ep.created_ms, ep.rowid, i.id",
            -1, &st, NULL) != SQLITE_OK)
        return fail_db(s, "stats");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = col_text(st, 0), *url = col_text(st, 1);
        stats_entry *e = stats_push(l, id, strlen(id));
        if (!e || (url && !(e->url = wh__strdup(url)))) {
            sqlite3_finalize(st);
            return wh__fail(NULL, 0, WH_ERR_NOMEM, "stats: out of memory");
        }
        e->st = (wh__endpoint_stats){
            .enabled = sqlite3_column_int(st, 2) != 0,
            .exists = sqlite3_column_int(st, 3) != 0,
            .delivered = sqlite3_column_int64(st, 4),
            .failed = sqlite3_column_int64(st, 5),
            .skipped = sqlite3_column_int64(st, 6),
            .pending = sqlite3_column_int64(st, 7),
            .last_success_ms = sqlite3_column_int64(st, 8),
        };
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return fail_db(s, "stats");
    /* first attempts not made yet have no deliveries row: the events' targets without one */
    if (sqlite3_prepare_v2(s->db,
                           "SELECT e.targets, (SELECT group_concat(d.endpoint_id) FROM deliveries d"
                           " WHERE d.event_seq = e.seq) FROM events e WHERE"
                           " (SELECT count(*) FROM deliveries d WHERE d.event_seq = e.seq)"
                           " < length(e.targets) - length(replace(e.targets, ',', '')) + 1",
                           -1, &st, NULL) != SQLITE_OK)
        return fail_db(s, "stats");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *done = col_text(st, 1);
        target_iter it = {.next = col_text(st, 0)};
        while (next_target(&it)) {
            if (list_has(done, it.id, it.len))
                continue;
            stats_entry *e = stats_find(l, it.id, it.len);
            if (!e && (e = stats_push(l, it.id, it.len)))
                e->st.exists = false;
            if (!e) {
                sqlite3_finalize(st);
                return wh__fail(NULL, 0, WH_ERR_NOMEM, "stats: out of memory");
            }
            e->st.pending++;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? WH_OK : fail_db(s, "stats");
}

int wh__store_endpoint_stats(wh__store *s, void (*cb)(void *ud, const wh__endpoint_stats *st),
                             void *ud)
{
    stats_list l = {0};
    int rc = submit(s, endpoint_stats, &l);
    /* rows are handed over outside the transaction */
    for (size_t i = 0; i < l.n; i++) {
        if (rc == WH_OK) {
            l.v[i].st.id = l.v[i].id;
            l.v[i].st.url = l.v[i].url;
            cb(ud, &l.v[i].st);
        }
        free(l.v[i].id);
        free(l.v[i].url);
    }
    free(l.v);
    return rc;
}
