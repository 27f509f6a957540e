/* The PostgreSQL store's endpoint rows: inserted, deleted, loaded, changed column by column
 * (a rotation and a setting read the row as stored, locked until the commit) and upserted by
 * key; every change that did something tells the other engines. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "endpoint_settings.h"
#include "error.h"
#include "old_secrets.h"
#include "store_pg.h"
#include "util.h"

#define S(st) ((wh__pg_store *)(st))

static int insert_endpoint(wh__pg *c, void *arg)
{
    const wh__endpoint_row *ep = ((void **)arg)[0];
    const wh__pg_store *s = ((void **)arg)[1];
    int rc = wh__pg_run(c, "endpoint",
                        "INSERT INTO endpoints(id, url, event_types, secret, old_secret, old_until_ms,"
                        " enabled, disabled_reason, description, created_ms, failing_since_ms, version,"
                        " old_secrets, settings, key) VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
                        " $11, 1, $12, $13, $14)",
                        NULL, NULL, "tttttiBttiittt", ep->id, ep->url, ep->event_types, ep->secret,
                        ep->old_secret, ep->old_until_ms, (int)ep->enabled, ep->disabled_reason,
                        ep->description ? ep->description : "", ep->created_ms,
                        ep->failing_since_ms, ep->old_secrets ? ep->old_secrets : "",
                        ep->settings ? ep->settings : "", ep->key);
    return rc == WH_OK ? wh__pg_notify(c, s->channel, "e") : rc;
}

int wh__pg_endpoint_insert(wh__store *st, const wh__endpoint_row *row)
{
    void *args[2] = {(void *)row, st};
    return wh__pg_write(&S(st)->conn, insert_endpoint, args, NULL);
}

static int delete_endpoint(wh__pg *c, void *arg)
{
    const char *id = ((void **)arg)[0];
    const wh__pg_store *s = ((void **)arg)[1];
    int rc = wh__pg_run(c, "endpoint", "DELETE FROM endpoints WHERE id = $1", NULL, NULL, "t", id);
    if (rc == WH_OK && wh__pg_changes(c) == 0)
        return wh__fail(NULL, 0, WH_ERR_NOTFOUND, "no endpoint \"%.63s\"", id);
    return rc == WH_OK ? wh__pg_notify(c, s->channel, "e") : rc;
}

int wh__pg_endpoint_delete(wh__store *st, const char *id)
{
    void *args[2] = {(void *)id, st};
    return wh__pg_write(&S(st)->conn, delete_endpoint, args, NULL);
}

#define ENDPOINT_COLUMNS                                                                   \
    "SELECT id, url, event_types, secret, old_secret, old_until_ms, enabled,"              \
    " disabled_reason, description, created_ms, failing_since_ms, version, old_secrets,"   \
    " settings, key FROM endpoints"

static wh__endpoint_row endpoint_from(const PGresult *r, int i)
{
    return (wh__endpoint_row){
        .id = wh__pg_text(r, i, 0),
        .url = wh__pg_text(r, i, 1),
        .event_types = wh__pg_text(r, i, 2),
        .secret = wh__pg_text(r, i, 3),
        .old_secret = wh__pg_text(r, i, 4),
        .old_until_ms = wh__pg_int(r, i, 5),
        .enabled = wh__pg_bool(r, i, 6),
        .disabled_reason = wh__pg_text(r, i, 7),
        .description = wh__pg_text(r, i, 8),
        .created_ms = wh__pg_int(r, i, 9),
        .failing_since_ms = wh__pg_int(r, i, 10),
        .version = wh__pg_int(r, i, 11),
        .old_secrets = wh__pg_text(r, i, 12),
        .settings = wh__pg_text(r, i, 13),
        .key = wh__pg_text(r, i, 14),
    };
}

typedef struct {
    wh__endpoint_row_cb cb;
    void *ud;
} rows_args;

static int endpoint_row(void *ud, const PGresult *r, int i)
{
    rows_args *a = ud;
    wh__endpoint_row row = endpoint_from(r, i);
    a->cb(a->ud, &row);
    return 0;
}

static int load_endpoints(wh__pg *c, void *arg)
{
    return wh__pg_run(c, "endpoints", ENDPOINT_COLUMNS " ORDER BY created_ms, ord", endpoint_row,
                      arg, NULL);
}

int wh__pg_endpoints_load(wh__store *st, wh__endpoint_row_cb cb, void *ud)
{
    rows_args a = {cb, ud};
    return wh__pg_read(&S(st)->conn, load_endpoints, &a);
}

/* The secrets of a row as stored, for a rotation. */
typedef struct {
    bool found;
    char secret[WH__SECRET_TEXT_MAX];
    wh__old_secret old[WH__MAX_OLD_KEYS];
    size_t n_old;
} stored_secrets;

static int secrets_row(void *ud, const PGresult *r, int i)
{
    stored_secrets *s = ud;
    const char *secret = wh__pg_text(r, i, 0);
    s->found = true;
    if (secret && strlen(secret) < sizeof s->secret)
        strcpy(s->secret, secret);
    s->n_old = wh__old_secrets_read(wh__pg_text(r, i, 1), wh__pg_text(r, i, 2),
                                    wh__pg_int(r, i, 3), s->old);
    return 1;
}

/* Inside the write, with the row locked until the commit: the list comes from the row as
 * stored now, whoever rotated last. */
static int rotate(wh__pg *c, const wh__endpoint_change *ch)
{
    stored_secrets s = {0};
    int rc = wh__pg_run(c, "endpoint",
                        "SELECT secret, old_secrets, old_secret, old_until_ms FROM endpoints"
                        " WHERE id = $1 FOR UPDATE", secrets_row, &s, "t", ch->endpoint_id);
    if (rc != WH_OK || !s.found)
        return rc;
    size_t n = wh__old_secrets_rotate(s.old, s.n_old, s.secret, ch->old_until_ms, ch->secret,
                                      ch->now_ms);
    char list[WH__OLD_SECRETS_TEXT_MAX];
    wh__old_secrets_write(s.old, n, list);
    /* old_secret and old_until_ms: the newest, for libraries that know only one */
    rc = wh__pg_run(c, "endpoint",
                    "UPDATE endpoints SET secret = $2, old_secrets = $3, old_secret = $4,"
                    " old_until_ms = $5, version = version + 1 WHERE id = $1",
                    NULL, NULL, "tttti", ch->endpoint_id, ch->secret, list,
                    n ? s.old[0].secret : NULL, n ? s.old[0].until_ms : (int64_t)0);
    OPENSSL_cleanse(&s, sizeof s);
    OPENSSL_cleanse(list, sizeof list);
    return rc;
}

typedef struct {
    char *text;
    bool found, oom;
} stored_settings;

static int settings_row(void *ud, const PGresult *r, int i)
{
    stored_settings *s = ud;
    s->found = true;
    const char *t = wh__pg_text(r, i, 0);
    s->oom = !(s->text = wh__strdup(t ? t : ""));
    return 1;
}

/* Inside the write, with the row locked until the commit: one key changes in the settings
 * as stored now, whoever set the others. */
static int set_setting(wh__pg *c, const wh__endpoint_change *ch)
{
    stored_settings s = {0};
    char *updated = NULL;
    int rc = wh__pg_run(c, "endpoint", "SELECT settings FROM endpoints WHERE id = $1 FOR UPDATE",
                        settings_row, &s, "t", ch->endpoint_id);
    if (rc != WH_OK || !s.found)
        return rc; /* no such endpoint: the caller says so */
    if (s.oom)
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    rc = wh__ep_settings_change(s.text, ch->setting_key, ch->setting_value, &updated);
    if (rc == WH_OK && updated)
        rc = wh__pg_run(c, "endpoint",
                        "UPDATE endpoints SET settings = $2, version = version + 1 WHERE id = $1",
                        NULL, NULL, "tt", ch->endpoint_id, updated);
    wh__ep_settings_free(updated);
    return rc;
}

/* One column-level UPDATE; the version rises only when something changed. */
int wh__pg_apply_change(wh__pg *c, const wh__endpoint_change *ch)
{
    const char *id = ch->endpoint_id;
    switch (ch->kind) {
    case WH__EP_ENABLE:
        return wh__pg_run(c, "endpoint",
                          "UPDATE endpoints SET enabled = true, disabled_reason = NULL,"
                          " failing_since_ms = 0, version = version + 1 WHERE id = $1 AND"
                          " (NOT enabled OR disabled_reason IS NOT NULL OR failing_since_ms <> 0)",
                          NULL, NULL, "t", id);
    case WH__EP_DISABLE:
        return wh__pg_run(c, "endpoint",
                          "UPDATE endpoints SET enabled = false, disabled_reason = $2,"
                          " version = version + 1 WHERE id = $1 AND enabled",
                          NULL, NULL, "tt", id, ch->reason);
    case WH__EP_ROTATE:
        return rotate(c, ch);
    case WH__EP_FAILING:
        if (ch->failing_since_ms)
            return wh__pg_run(c, "endpoint",
                              "UPDATE endpoints SET failing_since_ms = $2, version = version + 1"
                              " WHERE id = $1 AND failing_since_ms = 0 AND enabled",
                              NULL, NULL, "ti", id, ch->failing_since_ms);
        return wh__pg_run(c, "endpoint",
                          "UPDATE endpoints SET failing_since_ms = 0, version = version + 1"
                          " WHERE id = $1 AND failing_since_ms <> 0",
                          NULL, NULL, "t", id);
    case WH__EP_SETTING:
        return set_setting(c, ch);
    }
    return wh__fail(NULL, 0, WH_ERR_INVALID, "store: unknown endpoint change");
}

/* An endpoint row copied out of the transaction, handed over after the commit. */
#define ROW_STRINGS 10

typedef struct {
    wh__endpoint_row row;
    char *strings[ROW_STRINGS];
    bool found, oom;
} row_copy;

static void row_copy_free(row_copy *rc)
{
    for (int k = 0; k < ROW_STRINGS; k++) {
        if (rc->strings[k])
            OPENSSL_cleanse(rc->strings[k], strlen(rc->strings[k])); /* secrets among them */
        free(rc->strings[k]);
        rc->strings[k] = NULL;
    }
}

static int copy_row(void *ud, const PGresult *r, int i)
{
    row_copy *rc = ud;
    row_copy_free(rc);
    rc->row = endpoint_from(r, i);
    const char **fields[ROW_STRINGS] = {&rc->row.id, &rc->row.url, &rc->row.event_types,
                                        &rc->row.secret, &rc->row.old_secret,
                                        &rc->row.disabled_reason, &rc->row.description,
                                        &rc->row.old_secrets, &rc->row.settings, &rc->row.key};
    for (int k = 0; k < ROW_STRINGS; k++) {
        if (*fields[k] && !(rc->strings[k] = wh__strdup(*fields[k])))
            rc->oom = true;
        *fields[k] = rc->strings[k];
    }
    rc->found = true;
    return 1;
}

typedef struct {
    wh__pg_store *s;
    const wh__endpoint_change *c;
    row_copy copy;
} change_args;

static int change_endpoint(wh__pg *c, void *arg)
{
    change_args *a = arg;
    a->copy.found = a->copy.oom = false;
    int rc = wh__pg_apply_change(c, a->c);
    bool changed = wh__pg_changes(c) > 0;
    if (rc == WH_OK)
        rc = wh__pg_run(c, "endpoint", ENDPOINT_COLUMNS " WHERE id = $1", copy_row, &a->copy, "t",
                        a->c->endpoint_id);
    if (rc == WH_OK && !a->copy.found)
        return wh__fail(NULL, 0, WH_ERR_NOTFOUND, "no endpoint \"%.63s\"", a->c->endpoint_id);
    if (rc == WH_OK && a->copy.oom)
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    return rc == WH_OK && changed ? wh__pg_notify(c, a->s->channel, "e") : rc;
}

int wh__pg_endpoint_change(wh__store *st, const wh__endpoint_change *c,
                           wh__endpoint_row_cb cb, void *ud)
{
    change_args a = {.s = S(st), .c = c};
    int rc = wh__pg_write(&S(st)->conn, change_endpoint, &a, NULL);
    if (rc == WH_OK && cb)
        cb(ud, &a.copy.row);
    row_copy_free(&a.copy);
    return rc;
}

typedef struct {
    wh__pg_store *s;
    const wh__endpoint_row *row;
    bool secret_given;
    row_copy copy;
} upsert_args;

/* One statement: engines adding the same key at once meet on its unique index, the second
 * waiting for the first and then updating the row it made. The version rises only when a
 * column changed. */
static int upsert_endpoint(wh__pg *c, void *arg)
{
    upsert_args *a = arg;
    const wh__endpoint_row *ep = a->row;
    a->copy.found = a->copy.oom = false;
    int rc = wh__pg_run(
        c, "endpoint",
        "INSERT INTO endpoints AS p(id, url, event_types, secret, old_secret, old_until_ms,"
        " enabled, disabled_reason, description, created_ms, failing_since_ms, version,"
        " old_secrets, key) VALUES($1, $2, $3, $4, NULL, 0, $5, NULL, $6, $7, 0, 1, '', $8)"
        " ON CONFLICT (key) WHERE key IS NOT NULL DO UPDATE SET url = excluded.url,"
        " event_types = excluded.event_types, description = excluded.description,"
        " enabled = excluded.enabled,"
        " disabled_reason = CASE WHEN p.enabled = excluded.enabled THEN p.disabled_reason END,"
        " failing_since_ms = CASE WHEN p.enabled = excluded.enabled THEN p.failing_since_ms"
        " ELSE 0 END,"
        " secret = CASE WHEN $9::boolean THEN excluded.secret ELSE p.secret END,"
        " version = p.version + 1"
        " WHERE (p.url, p.event_types, p.description, p.enabled)"
        " IS DISTINCT FROM (excluded.url, excluded.event_types, excluded.description,"
        " excluded.enabled) OR ($9::boolean AND p.secret <> excluded.secret)",
        NULL, NULL, "ttttBtitB", ep->id, ep->url, ep->event_types, ep->secret, (int)ep->enabled,
        ep->description ? ep->description : "", ep->created_ms, ep->key, (int)a->secret_given);
    bool changed = wh__pg_changes(c) > 0;
    if (rc == WH_OK)
        rc = wh__pg_run(c, "endpoint", ENDPOINT_COLUMNS " WHERE key = $1", copy_row, &a->copy,
                        "t", ep->key);
    if (rc == WH_OK && !a->copy.found)
        return wh__fail(NULL, 0, WH_ERR_STORE, "store: endpoint with key \"%.63s\" not written",
                        ep->key);
    if (rc == WH_OK && a->copy.oom)
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    return rc == WH_OK && changed ? wh__pg_notify(c, a->s->channel, "e") : rc;
}

int wh__pg_endpoint_upsert(wh__store *st, const wh__endpoint_row *row, bool secret_given,
                           wh__endpoint_row_cb cb, void *ud)
{
    upsert_args a = {.s = S(st), .row = row, .secret_given = secret_given};
    int rc = wh__pg_write(&S(st)->conn, upsert_endpoint, &a, NULL);
    if (rc == WH_OK && cb)
        cb(ud, &a.copy.row);
    row_copy_free(&a.copy);
    return rc;
}
