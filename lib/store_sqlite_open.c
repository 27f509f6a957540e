/* The SQLite store's file: opening it (read-only for tools that only look), refusing a
 * database that is not ours, the versioned schema and its migrations, and registering the
 * engine that opened it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "sqlite_conn.h"
#include "store.h"
#include "store_sqlite.h"
#include "store_sqlite.h"

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
    /* 3: several engines share a store. Endpoint rows carry a version that every change
     * raises; events (their targets not yet attempted) and pending deliveries carry the
     * claim of the engine that attempts them; engines hold leases. Work queued by a tool
     * is a pending delivery that nobody has claimed yet. */
    "ALTER TABLE endpoints ADD COLUMN version INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE events ADD COLUMN claimed_by TEXT;"
    "ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;"
    "ALTER TABLE deliveries DROP COLUMN queued_by_tool;"
    "CREATE INDEX deliveries_unclaimed ON deliveries(claimed_by) WHERE state = 0;"
    "CREATE TABLE engines(id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,"
    " started_ms INTEGER NOT NULL, lease_until_ms INTEGER NOT NULL);"
    "INSERT OR REPLACE INTO meta(key, value) VALUES('schema', 'libwebhook');",
    /* 4: a delivery queued again after it finished (wh_redeliver, wh_recover, webhookctl)
     * is marked as one, and so is every attempt it makes: the log tells a redelivery from
     * the first round. A delivery is one row per (event, endpoint), so the mark stays on
     * it once set; only a redelivery can queue a finished row again. */
    "ALTER TABLE deliveries ADD COLUMN redelivery INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE attempts ADD COLUMN redelivery INTEGER NOT NULL DEFAULT 0;",
    /* 5: every old secret that may still sign is stored, each with the end of its own grace
     * ("until_ms:secret", newest first, comma-separated), so that an engine opening the store
     * during overlapping graces signs with all of them. old_secret and old_until_ms keep the
     * newest, for an engine of an older library that still has the store open. */
    "ALTER TABLE endpoints ADD COLUMN old_secrets TEXT NOT NULL DEFAULT '';"
    "UPDATE endpoints SET old_secrets = old_until_ms || ':' || old_secret"
    " WHERE old_secret IS NOT NULL AND old_secret <> '' AND old_until_ms > 0;",
    /* 6: an event emitted with the caller's own id keeps it in dedup_id (unique) with what
     * its emit returned, so that the same id emitted again, by any engine, queues nothing
     * and returns the same; dedup_id is cleared once the id may be used again. An endpoint
     * may carry the caller's key (unique): adding the key again updates it. Attempts carry
     * the event's run and task ids. */
    "ALTER TABLE events ADD COLUMN dedup_id TEXT;"
    "ALTER TABLE events ADD COLUMN sendable INTEGER NOT NULL DEFAULT 0;"
    "CREATE UNIQUE INDEX events_by_dedup_id ON events(dedup_id) WHERE dedup_id IS NOT NULL;"
    "ALTER TABLE endpoints ADD COLUMN key TEXT;"
    "CREATE UNIQUE INDEX endpoints_by_key ON endpoints(key) WHERE key IS NOT NULL;"
    "ALTER TABLE attempts ADD COLUMN run_id TEXT;"
    "ALTER TABLE attempts ADD COLUMN task_id TEXT;",
    /* 7: an endpoint's own settings (wh_endpoint_set), a JSON object of key -> value as
     * given; '' while it has none. Changed by one key at a time inside the write, so two
     * writers of different keys keep both. */
    "ALTER TABLE endpoints ADD COLUMN settings TEXT NOT NULL DEFAULT '';",
    /* 8: what holds across the engines sharing the store. Ordering per run: an event keeps
     * its run, indexed with the event order, so that an engine asks before a first attempt
     * whether an earlier event of the run still has a delivery pending to the endpoint
     * (first attempts have no deliveries row: the event's targets say where it goes).
     * Rate limits: one token bucket per endpoint, from which the engines take small grants. */
    "ALTER TABLE events ADD COLUMN run_id TEXT;"
    "CREATE INDEX events_by_run ON events(run_id, seq) WHERE run_id IS NOT NULL;"
    "CREATE TABLE rate_buckets(endpoint_id TEXT PRIMARY KEY, tokens REAL NOT NULL,"
    " updated_ms INTEGER NOT NULL) WITHOUT ROWID;",
    /* 9: an outcome writes one index entry fewer. Deliveries by state and endpoint served
     * only the search for finished-but-not-delivered ones (wh_recover), yet took an entry
     * for every delivered row; pending rows have deliveries_unclaimed. */
    "DROP INDEX deliveries_by_state;"
    "CREATE INDEX deliveries_finished ON deliveries(endpoint_id, updated_ms) WHERE state IN (2, 3);",
    /* 10: an engine takes emits into a log of its own (event_log.h) and stores them in
     * batches; its row says how far its log is stored, for the engine that takes over. The
     * row of an engine with a log goes only once its log is stored: an engine of a library
     * before this one, which knows of no log, cannot remove it. */
    "ALTER TABLE engines ADD COLUMN log_folded INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE engines ADD COLUMN emit_log INTEGER NOT NULL DEFAULT 0;"
    "CREATE TRIGGER engines_keep_logs BEFORE DELETE ON engines WHEN OLD.emit_log = 1"
    " BEGIN SELECT RAISE(IGNORE); END;",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

static int64_t query_int(wh__sq *c, const char *sql, int64_t fallback)
{
    int64_t v = fallback;
    wh__sq_run(c, "schema", sql, wh__sqlite_int64_row, &v, NULL);
    return v;
}

/* A database that holds tables but none of ours is someone else's: never touch it. */
static int check_ours(wh__sq *c, const char *path, char *errstr, size_t errlen)
{
    int64_t version = -1, tables = -1, ours = -1;
    int rc = wh__sq_run(c, "schema", "PRAGMA user_version", wh__sqlite_int64_row, &version, NULL);
    if (rc == WH_OK)
        rc = wh__sq_run(c, "schema", "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                        wh__sqlite_int64_row, &tables, NULL);
    if (rc == WH_OK)
        rc = wh__sq_run(c, "schema", "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                        " AND name IN ('endpoints', 'events', 'deliveries', 'attempts')",
                        wh__sqlite_int64_row, &ours, NULL);
    if (rc != WH_OK) {
        char why[300];
        snprintf(why, sizeof why, "%s", wh_last_error());
        return wh__fail(errstr, errlen, rc, "store: \"%.200s\": %s", path, why);
    }
    if ((version == 0 && tables > 0) || (version > 0 && ours < 4))
        return wh__fail(errstr, errlen, WH_ERR_STORE,
                        "store: \"%.200s\" is a database without libwebhook's schema;"
                        " refusing to change it (give the store a file of its own)", path);
    if (version > SCHEMA_VERSION)
        return wh__fail(errstr, errlen, WH_ERR_STORE,
                        "store: schema version %lld is newer than this library's %d",
                        (long long)version, SCHEMA_VERSION);
    return WH_OK;
}

static int migrate(wh__sq *c, void *arg)
{
    (void)arg;
    int64_t v = query_int(c, "PRAGMA user_version", -1);
    if (v > SCHEMA_VERSION)
        return wh__fail(NULL, 0, WH_ERR_STORE, "store: schema version %lld is newer than this"
                        " library's %d", (long long)v, SCHEMA_VERSION);
    for (; v < SCHEMA_VERSION; v++) {
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d", (int)v + 1);
        if (sqlite3_exec(c->db, migrations[v], NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(c->db, pragma, NULL, NULL, NULL) != SQLITE_OK)
            return wh__fail(NULL, 0, WH_ERR_STORE, "store: migration to version %d: %s",
                            (int)v + 1, sqlite3_errmsg(c->db));
    }
    return WH_OK;
}

static int write_types(wh__sq *c, void *arg)
{
    const char *const *types = arg;
    size_t len = 1;
    for (const char *const *t = types; *t; t++)
        len += strlen(*t) + 1;
    char *joined = calloc(1, len), *p = joined;
    if (!joined)
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    for (const char *const *t = types; *t; t++)
        p = stpcpy(p + (t != types ? (*p = ',', 1) : 0), *t);
    int rc = wh__sq_run(c, "meta", "INSERT OR REPLACE INTO meta(key, value) VALUES('event_types', ?)",
                        NULL, NULL, "t", joined);
    free(joined);
    return rc;
}

void wh__store_host_key(char *out, size_t len)
{
    char boot[64] = "", ns[64] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (!fgets(boot, sizeof boot, f))
            boot[0] = '\0';
        fclose(f);
    }
    boot[strcspn(boot, "\n")] = '\0';
    ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
    ns[n > 0 ? n : 0] = '\0';
    snprintf(out, len, "%s/%s", boot, ns);
}

typedef struct {
    wh__sqlite_store *s;
    int64_t now_ms;
    const char *const *types;
} register_args;

static int register_engine(wh__sq *c, void *arg)
{
    register_args *r = arg;
    int rc = r->types ? write_types(c, (void *)r->types) : WH_OK;
    if (rc == WH_OK && r->s->engine_id[0])
        rc = wh__sq_run(c, "engine",
                        "INSERT INTO engines(id, host, pid, started_ms, lease_until_ms, emit_log)"
                        " VALUES(?, ?, ?, ?, ?, ?)",
                        NULL, NULL, "ttiiid", r->s->engine_id, r->s->host, (int64_t)getpid(),
                        r->now_ms, r->now_ms + r->s->lease_ms, r->s->log != NULL);
    return rc;
}

static int read_data_version(wh__sq *c, void *arg)
{
    wh__sqlite_store *s = arg;
    s->data_version = query_int(c, "PRAGMA data_version", s->data_version);
    return WH_OK;
}

/* "file:" URI of path with `query`, for the read-only fallbacks below. */
static char *file_uri(const char *path, const char *query)
{
    size_t n = strlen(path);
    char *uri = malloc(3 * n + strlen(query) + 8), *p = uri;
    if (!uri)
        return NULL;
    p = stpcpy(p, "file:");
    for (const unsigned char *c = (const unsigned char *)path; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            strchr("/-._~", *c))
            *p++ = (char)*c;
        else
            p += sprintf(p, "%%%02X", *c);
    }
    *p++ = '?';
    strcpy(p, query);
    return uri;
}

/* A reader with read permission only cannot create the WAL index next to the file. When no
 * engine has the store open (no -wal file), the file alone is the whole database and is read
 * as it stands; when one has (-shm exists), its index is read without writing to it. */
static sqlite3 *open_read_only_fallback(const char *path)
{
    char side[4200];
    snprintf(side, sizeof side, "%s-wal", path);
    bool wal = access(side, F_OK) == 0;
    snprintf(side, sizeof side, "%s-shm", path);
    bool shm = access(side, R_OK) == 0;
    if (wal && !shm)
        return NULL;
    char *uri = file_uri(path, wal ? "mode=ro&readonly_shm=1" : "immutable=1");
    sqlite3 *db = NULL;
    if (!uri || sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI |
                                SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        db = NULL;
    }
    free(uri);
    return db;
}

int wh__store_sqlite_open(const wh__sqlite_options *o, wh__store **out, char *errstr,
                          size_t errlen)
{
    *out = NULL;
    struct stat st;
    bool existed = stat(o->path, &st) == 0;
    if (!existed && (!o->create || o->read_only))
        return wh__fail(errstr, errlen, WH_ERR_STORE, "store: \"%.200s\": %s", o->path,
                        strerror(errno));
    if (!existed) {
        /* the file holds signing secrets: create it private before SQLite opens it */
        int fd = open(o->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) /* EEXIST: another engine starting at once made it */
            return wh__fail(errstr, errlen, WH_ERR_STORE, "store: cannot create \"%.200s\": %m",
                            o->path);
        existed = fd < 0;
        if (fd >= 0)
            close(fd);
    }
    wh__sqlite_store *s = calloc(1, sizeof *s);
    if (!s)
        return wh__fail(errstr, errlen, WH_ERR_NOMEM, "store: out of memory");
    s->base.ops = &wh__sqlite_ops;
    s->read_only = o->read_only;
    s->lease_ms = o->lease_ms;
    s->dedup_window_ms = o->dedup_window_ms;
    wh__store_host_key(s->host, sizeof s->host);
    if (o->engine_id)
        snprintf(s->engine_id, sizeof s->engine_id, "%s", o->engine_id);
    sqlite3 *db = NULL;
    int flags = (o->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_FULLMUTEX;
    int rc = WH_OK;
    if (sqlite3_open_v2(o->path, &db, flags, NULL) != SQLITE_OK) {
        rc = wh__fail(errstr, errlen, WH_ERR_STORE, "store: cannot open \"%.200s\": %s", o->path,
                      db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        free(s);
        goto removed;
    }
    wh__sq_init(&s->conn, db);
    sqlite3_busy_timeout(db, 5000);
    if (o->read_only && query_int(&s->conn, "PRAGMA user_version", -1) < 0 &&
        (sqlite3_errcode(db) & 0xff) == SQLITE_READONLY) {
        sqlite3 *ro = open_read_only_fallback(o->path);
        if (ro) {
            wh__sq_close(&s->conn);
            wh__sq_init(&s->conn, ro);
            sqlite3_busy_timeout(ro, 5000);
        }
    }
    if ((rc = check_ours(&s->conn, o->path, errstr, errlen)) != WH_OK)
        goto fail;
    if (o->read_only) {
        if (query_int(&s->conn, "PRAGMA user_version", -1) != SCHEMA_VERSION) {
            rc = wh__fail(errstr, errlen, WH_ERR_STORE,
                          "store: \"%.200s\" has an older schema; open it once with write"
                          " access to migrate it", o->path);
            goto fail;
        }
    } else {
        /* WAL bounded: checkpoints run off the emit path (upkeep), and the file is cut
         * back after each one instead of staying at its largest size */
        char pragmas[256];
        snprintf(pragmas, sizeof pragmas,
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA wal_autocheckpoint=0;"
                 " PRAGMA journal_size_limit=%d; PRAGMA cache_size=-16384;",
                 o->sync_full ? "FULL" : "NORMAL", 16 << 20);
        if (sqlite3_exec(db, pragmas, NULL, NULL, NULL) != SQLITE_OK) {
            rc = wh__fail(errstr, errlen, WH_ERR_STORE, "store: \"%.200s\": %s", o->path,
                          sqlite3_errmsg(db));
            goto fail;
        }
        register_args r = {.s = s, .now_ms = o->now_ms, .types = o->event_types};
        if ((rc = wh__sq_write(&s->conn, migrate, NULL)) != WH_OK) {
            wh__pass_error(errstr, errlen, rc);
            goto fail;
        }
        /* the log is named after the file as SQLite resolved it, the same from every
         * process whatever path or directory it opened it from; with store.sync=full an
         * emit waits for its commit's fsync, and there is no log */
        const char *resolved = sqlite3_db_filename(db, "main");
        if (!(s->path = strdup(resolved && *resolved ? resolved : o->path))) {
            rc = wh__fail(errstr, errlen, WH_ERR_NOMEM, "store: out of memory");
            goto fail;
        }
        if (!o->sync_full && s->engine_id[0] && (rc = wh__sqlite_log_open(s, errstr, errlen)) != WH_OK)
            goto fail;
        if ((rc = wh__sq_write(&s->conn, register_engine, &r)) != WH_OK) {
            wh__pass_error(errstr, errlen, rc);
            goto fail;
        }
    }
    wh__sq_read(&s->conn, read_data_version, s);
    *out = &s->base;
    return WH_OK;
fail:
    if (s->log)
        wh__sqlite_log_close(s);
    wh__sq_close(&s->conn);
    free(s->path);
    free(s);
removed:
    if (!existed && stat(o->path, &st) == 0 && st.st_size == 0) {
        /* a failed open leaves nothing behind (a file another engine has begun to use is
         * not empty any more, and stays) */
        char side[4200];
        unlink(o->path);
        snprintf(side, sizeof side, "%s-wal", o->path);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", o->path);
        unlink(side);
    }
    return rc;
}
