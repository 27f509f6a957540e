/* The PostgreSQL store's database: recognising a connection string, connecting, refusing a
 * schema that is not ours, the versioned schema and its migrations (under an advisory lock,
 * so that engines starting together migrate once), and registering the engine. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "store.h"
#include "store_pg.h"
#include "util.h"

/* Schema versions, oldest first; a store opened by a newer library migrates up. Tables are
 * named without their schema: the connection's search_path is the store's schema.
 *
 * An emit writes the event and one deliveries row per endpoint, claimed by the emitting
 * engine (or by nobody, from wh_emit_pg: the first engine to look claims it). */
static const char *const migrations[] = {
    "CREATE TABLE meta(key text PRIMARY KEY, value text NOT NULL);"
    "CREATE TABLE endpoints(id text PRIMARY KEY, url text NOT NULL, event_types text NOT NULL,"
    " secret text NOT NULL, old_secret text, old_until_ms bigint NOT NULL DEFAULT 0,"
    " enabled boolean NOT NULL, disabled_reason text, description text NOT NULL DEFAULT '',"
    " created_ms bigint NOT NULL, failing_since_ms bigint NOT NULL DEFAULT 0,"
    " version bigint NOT NULL DEFAULT 1, ord bigserial);"
    "CREATE TABLE events(seq bigserial PRIMARY KEY, id text NOT NULL UNIQUE,"
    " event_type text NOT NULL, body text NOT NULL, created_ms bigint NOT NULL);"
    "CREATE INDEX events_by_time ON events(created_ms);"
    "CREATE TABLE deliveries(event_seq bigint NOT NULL, endpoint_id text NOT NULL,"
    " event_id text NOT NULL, state smallint NOT NULL, attempts integer NOT NULL,"
    " next_ms bigint NOT NULL, skip_only boolean NOT NULL, updated_ms bigint NOT NULL,"
    " claimed_by text, PRIMARY KEY(event_seq, endpoint_id));"
    "CREATE INDEX deliveries_by_event ON deliveries(event_id);"
    "CREATE INDEX deliveries_unclaimed ON deliveries(event_seq) WHERE state = 0 AND claimed_by IS NULL;"
    "CREATE INDEX deliveries_claimed ON deliveries(claimed_by, event_seq) WHERE state = 0;"
    "CREATE INDEX deliveries_finished ON deliveries(endpoint_id, updated_ms) WHERE state IN (2, 3);"
    "CREATE TABLE attempts(id bigserial PRIMARY KEY, event_id text NOT NULL,"
    " event_type text NOT NULL, endpoint_id text NOT NULL, url text NOT NULL,"
    " attempt integer NOT NULL, outcome smallint NOT NULL, http_status integer NOT NULL,"
    " error text, started_ms bigint NOT NULL, duration_us bigint NOT NULL,"
    " next_attempt_ms bigint NOT NULL, response_body bytea);"
    "CREATE INDEX attempts_by_time ON attempts(started_ms);"
    "CREATE INDEX attempts_by_endpoint ON attempts(endpoint_id, started_ms);"
    "CREATE INDEX attempts_by_event ON attempts(event_id);"
    "CREATE TABLE engines(id text PRIMARY KEY, host text NOT NULL, pid bigint NOT NULL,"
    " started_ms bigint NOT NULL, lease_until_ms bigint NOT NULL);"
    "INSERT INTO meta(key, value) VALUES('schema', 'libwebhook');",
    /* 2: every old secret that may still sign is stored, each with the end of its own grace
     * ("until_ms:secret", newest first, comma-separated), so that an engine connecting during
     * overlapping graces signs with all of them. old_secret and old_until_ms keep the newest,
     * for an engine of an older library that still has the store open. */
    "ALTER TABLE endpoints ADD COLUMN old_secrets text NOT NULL DEFAULT '';"
    "UPDATE endpoints SET old_secrets = old_until_ms::text || ':' || old_secret"
    " WHERE old_secret IS NOT NULL AND old_secret <> '' AND old_until_ms > 0;",
    /* 3: an event emitted with the caller's own id keeps it in dedup_id (unique) with what
     * its emit returned, so that the same id emitted again, by any engine, queues nothing
     * and returns the same; dedup_id is cleared once the id may be used again, and the id
     * itself is no longer unique (emit.dedup_window 0 lets an id be emitted twice). An
     * endpoint may carry the caller's key (unique): adding the key again updates it.
     * Attempts carry the event's run and task ids. A delivery queued again after it
     * finished is marked as one, and so is every attempt it makes (as SQLite's schema 4).
     * Written to be run again on a schema that has it already (a store whose version was
     * set back by hand). */
    "ALTER TABLE events ADD COLUMN IF NOT EXISTS dedup_id text;"
    "ALTER TABLE events ADD COLUMN IF NOT EXISTS sendable integer NOT NULL DEFAULT 0;"
    "CREATE UNIQUE INDEX IF NOT EXISTS events_by_dedup_id ON events(dedup_id)"
    " WHERE dedup_id IS NOT NULL;"
    "ALTER TABLE events DROP CONSTRAINT IF EXISTS events_id_key;"
    "CREATE INDEX IF NOT EXISTS events_by_id ON events(id);"
    "ALTER TABLE endpoints ADD COLUMN IF NOT EXISTS key text;"
    "CREATE UNIQUE INDEX IF NOT EXISTS endpoints_by_key ON endpoints(key) WHERE key IS NOT NULL;"
    "ALTER TABLE attempts ADD COLUMN IF NOT EXISTS run_id text;"
    "ALTER TABLE attempts ADD COLUMN IF NOT EXISTS task_id text;"
    "ALTER TABLE attempts ADD COLUMN IF NOT EXISTS redelivery boolean NOT NULL DEFAULT false;"
    "ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS redelivery boolean NOT NULL DEFAULT false;",
    /* 4: an endpoint's own settings (wh_endpoint_set), a JSON object of key -> value as
     * given; '' while it has none. Changed by one key at a time with the row locked, so two
     * writers of different keys keep both. */
    "ALTER TABLE endpoints ADD COLUMN settings text NOT NULL DEFAULT '';",
    /* 5: what holds across the engines sharing the store. Ordering per run: a delivery keeps
     * its event's run (NULL once it is queued again: a redelivery keeps no order), indexed by
     * (endpoint, run, event) while pending, so that an engine asks before a first attempt
     * whether an earlier one is pending elsewhere. Rate limits: one token bucket per
     * endpoint, from which the engines take small grants; `granted` is the last grant. */
    "ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS run_id text;"
    "CREATE INDEX IF NOT EXISTS deliveries_in_run_order ON deliveries(endpoint_id, run_id, event_seq)"
    " WHERE state = 0 AND run_id IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS rate_buckets(endpoint_id text PRIMARY KEY, tokens double precision NOT NULL,"
    " updated_ms bigint NOT NULL, granted integer NOT NULL DEFAULT 0);",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/* The first key of the advisory lock: "webh" */
#define LOCK_KEY 0x77656268

/* ---- connection strings and names ---------------------------------------------------- */

bool wh__store_is_pg(const char *v)
{
    if (!v)
        return false;
    if (strncmp(v, "postgresql://", 13) == 0 || strncmp(v, "postgres://", 11) == 0)
        return true;
    /* libpq's key=value form: a keyword, then '=' */
    const char *p = v;
    while (*p == ' ')
        p++;
    const char *k = p;
    while (islower((unsigned char)*p) || *p == '_')
        p++;
    if (p == k)
        return false;
    while (*p == ' ')
        p++;
    return *p == '=';
}

int wh__store_pg_check(const char *v, char *errstr, size_t errlen)
{
    char *why = NULL;
    PQconninfoOption *o = PQconninfoParse(v, &why);
    if (!o) {
        /* libpq names the keyword at fault; the string itself (and its password) is left out */
        char line[200] = "out of memory";
        if (why)
            snprintf(line, sizeof line, "%.*s", (int)strcspn(why, "\n"), why);
        PQfreemem(why);
        return wh__fail(errstr, errlen, WH_ERR_INVALID, "store: not a PostgreSQL connection string: %s",
                        line);
    }
    PQconninfoFree(o);
    return WH_OK;
}

int wh__store_schema_check(const char *v, char *errstr, size_t errlen)
{
    size_t n = strlen(v);
    bool ok = n > 0 && n <= 63 && (islower((unsigned char)v[0]) || v[0] == '_') &&
              strncmp(v, "pg_", 3) != 0;
    for (size_t i = 0; ok && i < n; i++)
        ok = islower((unsigned char)v[i]) || isdigit((unsigned char)v[i]) || v[i] == '_';
    if (!ok)
        return wh__fail(errstr, errlen, WH_ERR_INVALID,
                        "store.schema: invalid value \"%.64s\" (expected a lower-case name of"
                        " letters, digits and _, up to 63, not starting with pg_)", v);
    return WH_OK;
}

char *wh__pg_emit_sql(const char *schema, wh__pg_emit_step step)
{
    static const char *const fmt[] = {
        [WH__PG_EMIT_EXPIRE] = "UPDATE \"%s\".events SET dedup_id = NULL WHERE dedup_id = $1"
                               " AND created_ms < $2",
        [WH__PG_EMIT_INSERT] =
            "WITH e AS (INSERT INTO \"%s\".events(id, event_type, body, created_ms, dedup_id,"
            " sendable) VALUES($1, $2, $3, $4, $8, $9) ON CONFLICT (dedup_id)"
            " WHERE dedup_id IS NOT NULL DO NOTHING RETURNING seq),"
            " d AS (INSERT INTO \"%s\".deliveries(event_seq, endpoint_id, event_id, state,"
            " attempts, next_ms, skip_only, updated_ms, claimed_by, run_id) SELECT e.seq, t.ep, $1,"
            " 0, 0, $4, t.skip, $4, NULL, $10 FROM e, unnest($5::text[], $6::boolean[])"
            " AS t(ep, skip)"
            " RETURNING event_seq)"
            " SELECT pg_notify($7, 'w'), false, $9::integer FROM e"
            " UNION ALL SELECT NULL, true, sendable FROM \"%s\".events WHERE dedup_id = $8"
            " AND NOT EXISTS (SELECT 1 FROM e)",
        [WH__PG_EMIT_FIND] = "SELECT NULL, true, sendable FROM \"%s\".events WHERE dedup_id = $1",
    };
    size_t len = strlen(fmt[step]) + 3 * strlen(schema) + 1;
    char *sql = malloc(len);
    if (sql)
        snprintf(sql, len, fmt[step], schema, schema, schema);
    return sql;
}

bool wh__pg_store_names(const wh__store *s, const char **schema, const char **channel)
{
    if (!s || s->ops != &wh__pg_ops)
        return false;
    const wh__pg_store *p = (const wh__pg_store *)s;
    *schema = p->schema;
    *channel = p->channel;
    return true;
}

/* ---- the schema ------------------------------------------------------------------------ */

typedef struct {
    wh__pg_store *s;
    bool create, read_only;
    int64_t version;
    int64_t count;
    char *text;
} schema_args;

static int count_row(void *ud, const PGresult *r, int i)
{
    *(int64_t *)ud = wh__pg_int(r, i, 0);
    return 1;
}

static int text_row(void *ud, const PGresult *r, int i)
{
    char **t = ud;
    free(*t);
    *t = wh__strdup(wh__pg_text(r, i, 0) ? wh__pg_text(r, i, 0) : "");
    return 1;
}

/* The schema's version, 0 when it does not exist; an error when it holds tables that are
 * not ours. */
static int schema_version(wh__pg *c, schema_args *a)
{
    const char *name = a->s->schema;
    int64_t exists = 0, tables = 0, has_meta = 0;
    int rc = wh__pg_run(c, "schema", "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
                        count_row, &exists, "t", name);
    if (rc == WH_OK && exists)
        rc = wh__pg_run(c, "schema", "SELECT count(*) FROM pg_tables WHERE schemaname = $1", count_row, &tables, "t", name);
    if (rc == WH_OK && tables)
        rc = wh__pg_run(c, "schema", "SELECT count(*) FROM pg_tables WHERE schemaname = $1"
                        " AND tablename = 'meta'", count_row, &has_meta, "t", name);
    a->version = 0;
    if (rc != WH_OK || !tables)
        return rc;
    free(a->text);
    a->text = NULL;
    if (has_meta)
        rc = wh__pg_run(c, "schema", "SELECT value FROM meta WHERE key = 'schema'", text_row,
                        &a->text, NULL);
    if (rc == WH_OK && (!a->text || strcmp(a->text, "libwebhook") != 0))
        return wh__fail(NULL, 0, WH_ERR_STORE,
                        "store: schema \"%s\" holds tables that are not libwebhook's; refusing to"
                        " change it (give the store a schema of its own with store.schema)", name);
    free(a->text);
    a->text = NULL;
    if (rc == WH_OK)
        rc = wh__pg_run(c, "schema", "SELECT value FROM meta WHERE key = 'version'", text_row,
                        &a->text, NULL);
    if (rc == WH_OK)
        a->version = a->text ? strtoll(a->text, NULL, 10) : 0;
    if (rc == WH_OK && a->version > SCHEMA_VERSION)
        return wh__fail(NULL, 0, WH_ERR_STORE,
                        "store: schema version %lld is newer than this library's %d",
                        (long long)a->version, SCHEMA_VERSION);
    return rc;
}

static int migrate(wh__pg *c, void *arg)
{
    schema_args *a = arg;
    /* held until the commit: the engines that start at the same time wait here, then find
     * the schema made */
    int rc = wh__pg_run(c, "schema", "SELECT pg_advisory_xact_lock($1, hashtext($2))", NULL, NULL,
                        "dt", LOCK_KEY, a->s->schema);
    if (rc == WH_OK)
        rc = schema_version(c, a);
    if (rc != WH_OK)
        return rc;
    if (a->version == 0 && !a->create)
        return wh__fail(NULL, 0, WH_ERR_STORE, "store: no libwebhook store in schema \"%s\"",
                        a->s->schema);
    if (a->version == SCHEMA_VERSION)
        return WH_OK;
    char ddl[160];
    snprintf(ddl, sizeof ddl, "CREATE SCHEMA IF NOT EXISTS \"%s\"", a->s->schema);
    if ((rc = wh__pg_exec(c, "schema", ddl)) != WH_OK)
        return rc;
    for (int64_t v = a->version; v < SCHEMA_VERSION; v++) {
        char what[48];
        snprintf(what, sizeof what, "migration to version %d", (int)v + 1);
        if ((rc = wh__pg_exec(c, what, migrations[v])) != WH_OK)
            return rc;
    }
    char version[24];
    snprintf(version, sizeof version, "%d", SCHEMA_VERSION);
    return wh__pg_run(c, "schema",
                      "INSERT INTO meta(key, value) VALUES('version', $1)"
                      " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                      NULL, NULL, "t", version);
}

static int check_current(wh__pg *c, void *arg)
{
    schema_args *a = arg;
    int rc = schema_version(c, a);
    if (rc == WH_OK && a->version == 0)
        return wh__fail(NULL, 0, WH_ERR_STORE, "store: no libwebhook store in schema \"%s\"",
                        a->s->schema);
    if (rc == WH_OK && a->version != SCHEMA_VERSION)
        return wh__fail(NULL, 0, WH_ERR_STORE,
                        "store: schema \"%s\" has an older version; open it once with write"
                        " access to migrate it", a->s->schema);
    return rc;
}

typedef struct {
    wh__pg_store *s;
    int64_t now_ms;
    const char *const *types;
} register_args;

static int register_engine(wh__pg *c, void *arg)
{
    register_args *r = arg;
    int rc = WH_OK;
    if (r->types) {
        size_t len = 1;
        for (const char *const *t = r->types; *t; t++)
            len += strlen(*t) + 1;
        char *joined = calloc(1, len), *p = joined;
        if (!joined)
            return wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
        for (const char *const *t = r->types; *t; t++)
            p = stpcpy(p + (t != r->types ? (*p = ',', 1) : 0), *t);
        rc = wh__pg_run(c, "meta",
                        "INSERT INTO meta(key, value) VALUES('event_types', $1)"
                        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        NULL, NULL, "t", joined);
        free(joined);
    }
    if (rc == WH_OK && r->s->engine_id[0])
        rc = wh__pg_run(c, "engine",
                        "INSERT INTO engines(id, host, pid, started_ms, lease_until_ms)"
                        " VALUES($1, $2, $3, $4, $5)",
                        NULL, NULL, "ttiii", r->s->engine_id, r->s->host, (int64_t)getpid(),
                        r->now_ms, r->now_ms + r->s->lease_ms);
    return rc;
}

int wh__store_pg_open(const wh__pg_options *o, wh__store **out, char *errstr, size_t errlen)
{
    *out = NULL;
    const char *schema = o->schema ? o->schema : "webhook";
    int rc = wh__store_schema_check(schema, errstr, errlen);
    if (rc != WH_OK)
        return rc;
    wh__pg_store *s = calloc(1, sizeof *s);
    if (!s)
        return wh__fail(errstr, errlen, WH_ERR_NOMEM, "store: out of memory");
    s->base.ops = &wh__pg_ops;
    s->read_only = o->read_only;
    s->lease_ms = o->lease_ms;
    s->dedup_window_ms = o->dedup_window_ms;
    pthread_mutex_init(&s->fix_mu, NULL);
    wh__store_host_key(s->host, sizeof s->host);
    snprintf(s->schema, sizeof s->schema, "%s", schema);
    snprintf(s->channel, sizeof s->channel, "libwebhook.%s", schema);
    if (o->engine_id)
        snprintf(s->engine_id, sizeof s->engine_id, "%s", o->engine_id);
    /* every (re)connect: the store's tables first in the search path, notifications for an
     * engine, and a tool that only looks cannot write by mistake */
    char setup[400];
    snprintf(setup, sizeof setup, "SET search_path TO \"%s\"; %s%s%s%s", schema,
             s->engine_id[0] ? "LISTEN \"" : "", s->engine_id[0] ? s->channel : "",
             s->engine_id[0] ? "\"; " : "",
             o->read_only ? "SET default_transaction_read_only = on" : "");
    if ((rc = wh__pg_open(&s->conn, o->conninfo, setup, errstr, errlen)) != WH_OK)
        goto fail;
    schema_args a = {.s = s, .create = o->create, .read_only = o->read_only};
    if (o->read_only) {
        rc = wh__pg_read(&s->conn, check_current, &a);
    } else {
        register_args r = {.s = s, .now_ms = o->now_ms, .types = o->event_types};
        if ((rc = wh__pg_write(&s->conn, migrate, &a, NULL)) == WH_OK)
            rc = wh__pg_write(&s->conn, register_engine, &r, NULL);
    }
    free(a.text);
    if (rc != WH_OK) {
        wh__pass_error(errstr, errlen, rc);
        goto fail;
    }
    *out = &s->base;
    return WH_OK;
fail:
    wh__pg_close(&s->conn);
    pthread_mutex_destroy(&s->fix_mu);
    free(s);
    return rc;
}
