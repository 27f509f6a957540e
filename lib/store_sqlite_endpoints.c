/* The SQLite store's endpoint rows: inserted, deleted, loaded, changed column by column (a
 * rotation and a setting read the row as stored, inside the write) and upserted by key. */
#include <string.h>

#include <openssl/crypto.h>

#include "endpoint_settings.h"
#include "error.h"
#include "old_secrets.h"
#include "store_sqlite.h"
#include "util.h"

#define S(st) ((wh__sqlite_store *)(st))

static int insert_endpoint(wh__sq *c, void *arg)
{
    const wh__endpoint_row *ep = arg;
    return wh__sq_run(c, "endpoint",
                      "INSERT INTO endpoints(id, url, event_types, secret, old_secret, old_until_ms,"
                      " enabled, disabled_reason, description, created_ms, failing_since_ms, version,"
                      " old_secrets, settings, key) VALUES(?,?,?,?,?,?,?,?,?,?,?,1,?,?,?)",
                      NULL, NULL, "tttttidttiittt", ep->id, ep->url, ep->event_types, ep->secret,
                      ep->old_secret, ep->old_until_ms, (int)ep->enabled, ep->disabled_reason,
                      ep->description ? ep->description : "", ep->created_ms,
                      ep->failing_since_ms, ep->old_secrets ? ep->old_secrets : "",
                      ep->settings ? ep->settings : "", ep->key);
}

int wh__sqlite_endpoint_insert(wh__store *st, const wh__endpoint_row *row)
{
    return wh__sq_write(&S(st)->conn, insert_endpoint, (void *)row);
}

static int delete_endpoint(wh__sq *c, void *arg)
{
    int rc = wh__sq_run(c, "endpoint", "DELETE FROM endpoints WHERE id = ?", NULL, NULL, "t",
                        (const char *)arg);
    if (rc == WH_OK && wh__sq_changes(c) == 0)
        rc = wh__fail(NULL, 0, WH_ERR_NOTFOUND, "no endpoint \"%.63s\"", (const char *)arg);
    return rc;
}

int wh__sqlite_endpoint_delete(wh__store *st, const char *id)
{
    return wh__sq_write(&S(st)->conn, delete_endpoint, (void *)id);
}

#define ENDPOINT_COLUMNS                                                                   \
    "SELECT id, url, event_types, secret, old_secret, old_until_ms, enabled,"              \
    " disabled_reason, description, created_ms, failing_since_ms, version, old_secrets,"   \
    " settings, key FROM endpoints"

typedef struct {
    wh__endpoint_row_cb cb;
    void *ud;
    bool found;
} rows_args;

static int endpoint_row(void *ud, sqlite3_stmt *st)
{
    rows_args *a = ud;
    wh__endpoint_row r = {
        .id = wh__sq_text(st, 0),
        .url = wh__sq_text(st, 1),
        .event_types = wh__sq_text(st, 2),
        .secret = wh__sq_text(st, 3),
        .old_secret = wh__sq_text(st, 4),
        .old_until_ms = sqlite3_column_int64(st, 5),
        .enabled = sqlite3_column_int(st, 6) != 0,
        .disabled_reason = wh__sq_text(st, 7),
        .description = wh__sq_text(st, 8),
        .created_ms = sqlite3_column_int64(st, 9),
        .failing_since_ms = sqlite3_column_int64(st, 10),
        .version = sqlite3_column_int64(st, 11),
        .old_secrets = wh__sq_text(st, 12),
        .settings = wh__sq_text(st, 13),
        .key = wh__sq_text(st, 14),
    };
    a->found = true;
    if (a->cb)
        a->cb(a->ud, &r);
    return 0;
}

typedef struct {
    const wh__endpoint_change *c;
    rows_args rows;
} change_args;

/* The secrets of a row as stored, for a rotation. */
typedef struct {
    bool found;
    char secret[WH__SECRET_TEXT_MAX];
    wh__old_secret old[WH__MAX_OLD_KEYS];
    size_t n_old;
} stored_secrets;

static int secrets_row(void *ud, sqlite3_stmt *st)
{
    stored_secrets *s = ud;
    const char *secret = wh__sq_text(st, 0);
    s->found = true;
    if (secret && strlen(secret) < sizeof s->secret)
        strcpy(s->secret, secret);
    s->n_old = wh__old_secrets_read(wh__sq_text(st, 1), wh__sq_text(st, 2),
                                    sqlite3_column_int64(st, 3), s->old);
    return 1;
}

/* Inside the write: the list comes from the row as stored now, whoever rotated last. */
static int rotate(wh__sq *c, const wh__endpoint_change *ch)
{
    stored_secrets s = {0};
    int rc = wh__sq_run(c, "endpoint",
                        "SELECT secret, old_secrets, old_secret, old_until_ms FROM endpoints"
                        " WHERE id = ?", secrets_row, &s, "t", ch->endpoint_id);
    if (rc != WH_OK || !s.found)
        return rc;
    size_t n = wh__old_secrets_rotate(s.old, s.n_old, s.secret, ch->old_until_ms, ch->secret,
                                      ch->now_ms);
    char list[WH__OLD_SECRETS_TEXT_MAX];
    wh__old_secrets_write(s.old, n, list);
    /* old_secret and old_until_ms: the newest, for libraries that know only one */
    rc = wh__sq_run(c, "endpoint",
                    "UPDATE endpoints SET secret = ?2, old_secrets = ?3, old_secret = ?4,"
                    " old_until_ms = ?5, version = version + 1 WHERE id = ?1",
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

static int settings_row(void *ud, sqlite3_stmt *st)
{
    stored_settings *s = ud;
    s->found = true;
    const char *t = wh__sq_text(st, 0);
    s->oom = !(s->text = wh__strdup(t ? t : ""));
    return 1;
}

/* Inside the write: one key changes in the settings as stored now, whoever set the others. */
static int set_setting(wh__sq *c, const wh__endpoint_change *ch)
{
    stored_settings s = {0};
    char *updated = NULL;
    int rc = wh__sq_run(c, "endpoint", "SELECT settings FROM endpoints WHERE id = ?",
                        settings_row, &s, "t", ch->endpoint_id);
    if (rc != WH_OK || !s.found)
        return rc; /* no such endpoint: the caller says so */
    if (s.oom)
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    rc = wh__ep_settings_change(s.text, ch->setting_key, ch->setting_value, &updated);
    if (rc == WH_OK && updated)
        rc = wh__sq_run(c, "endpoint",
                        "UPDATE endpoints SET settings = ?2, version = version + 1 WHERE id = ?1",
                        NULL, NULL, "tt", ch->endpoint_id, updated);
    wh__ep_settings_free(updated);
    return rc;
}

/* One column-level UPDATE; the version rises only when something changed. */
int wh__sqlite_apply_change(wh__sq *c, const wh__endpoint_change *ch)
{
    const char *id = ch->endpoint_id;
    switch (ch->kind) {
    case WH__EP_ENABLE:
        return wh__sq_run(c, "endpoint",
                          "UPDATE endpoints SET enabled = 1, disabled_reason = NULL,"
                          " failing_since_ms = 0, version = version + 1 WHERE id = ?1 AND"
                          " (enabled = 0 OR disabled_reason IS NOT NULL OR failing_since_ms <> 0)",
                          NULL, NULL, "t", id);
    case WH__EP_DISABLE:
        return wh__sq_run(c, "endpoint",
                          "UPDATE endpoints SET enabled = 0, disabled_reason = ?2,"
                          " version = version + 1 WHERE id = ?1 AND enabled = 1",
                          NULL, NULL, "tt", id, ch->reason);
    case WH__EP_ROTATE:
        return rotate(c, ch);
    case WH__EP_FAILING:
        if (ch->failing_since_ms)
            return wh__sq_run(c, "endpoint",
                              "UPDATE endpoints SET failing_since_ms = ?2, version = version + 1"
                              " WHERE id = ?1 AND failing_since_ms = 0 AND enabled = 1",
                              NULL, NULL, "ti", id, ch->failing_since_ms);
        return wh__sq_run(c, "endpoint",
                          "UPDATE endpoints SET failing_since_ms = 0, version = version + 1"
                          " WHERE id = ?1 AND failing_since_ms <> 0",
                          NULL, NULL, "t", id);
    case WH__EP_SETTING:
        return set_setting(c, ch);
    }
    return wh__fail(NULL, 0, WH_ERR_INVALID, "store: unknown endpoint change");
}

static int change_endpoint(wh__sq *c, void *arg)
{
    change_args *a = arg;
    int rc = wh__sqlite_apply_change(c, a->c);
    if (rc == WH_OK)
        rc = wh__sq_run(c, "endpoint", ENDPOINT_COLUMNS " WHERE id = ?", endpoint_row, &a->rows,
                        "t", a->c->endpoint_id);
    if (rc == WH_OK && !a->rows.found)
        rc = wh__fail(NULL, 0, WH_ERR_NOTFOUND, "no endpoint \"%.63s\"", a->c->endpoint_id);
    return rc;
}

int wh__sqlite_endpoint_change(wh__store *st, const wh__endpoint_change *c,
                                wh__endpoint_row_cb cb, void *ud)
{
    change_args a = {.c = c, .rows = {.cb = cb, .ud = ud}};
    return wh__sq_write(&S(st)->conn, change_endpoint, &a);
}

typedef struct {
    const wh__endpoint_row *row;
    bool secret_given;
    rows_args rows;
} upsert_args;

/* Inside the write (serialised across engines): the key's endpoint is updated column by
 * column where the spec differs, or the row inserted. */
static int upsert_endpoint(wh__sq *c, void *arg)
{
    upsert_args *a = arg;
    const wh__endpoint_row *ep = a->row;
    a->rows.found = false;
    int rc = wh__sq_run(c, "endpoint",
                        "UPDATE endpoints SET url = ?2, event_types = ?3, description = ?4,"
                        " enabled = ?5,"
                        " disabled_reason = CASE WHEN enabled = ?5 THEN disabled_reason END,"
                        " failing_since_ms = CASE WHEN enabled = ?5 THEN failing_since_ms ELSE 0 END,"
                        " secret = CASE WHEN ?6 THEN ?7 ELSE secret END, version = version + 1"
                        " WHERE key = ?1 AND (url IS NOT ?2 OR event_types IS NOT ?3"
                        " OR description IS NOT ?4 OR enabled <> ?5 OR (?6 AND secret IS NOT ?7))",
                        NULL, NULL, "ttttddt", ep->key, ep->url, ep->event_types,
                        ep->description ? ep->description : "", (int)ep->enabled,
                        (int)a->secret_given, ep->secret);
    if (rc == WH_OK)
        rc = wh__sq_run(c, "endpoint", ENDPOINT_COLUMNS " WHERE key = ?", endpoint_row, &a->rows,
                        "t", ep->key);
    if (rc != WH_OK || a->rows.found)
        return rc;
    rc = insert_endpoint(c, (void *)ep);
    if (rc == WH_OK)
        rc = wh__sq_run(c, "endpoint", ENDPOINT_COLUMNS " WHERE key = ?", endpoint_row, &a->rows,
                        "t", ep->key);
    return rc;
}

int wh__sqlite_endpoint_upsert(wh__store *st, const wh__endpoint_row *row, bool secret_given,
                                wh__endpoint_row_cb cb, void *ud)
{
    upsert_args a = {.row = row, .secret_given = secret_given, .rows = {.cb = cb, .ud = ud}};
    int rc = wh__sq_write(&S(st)->conn, upsert_endpoint, &a);
    if (rc == WH_OK && !a.rows.found)
        rc = wh__fail(NULL, 0, WH_ERR_STORE, "store: endpoint with key \"%.63s\" not written",
                      row->key);
    return rc;
}

static int load_endpoints(wh__sq *c, void *arg)
{
    return wh__sq_run(c, "endpoints", ENDPOINT_COLUMNS " ORDER BY created_ms, rowid", endpoint_row,
                      arg, NULL);
}

int wh__sqlite_endpoints_load(wh__store *st, wh__endpoint_row_cb cb, void *ud)
{
    rows_args a = {.cb = cb, .ud = ud};
    return wh__sq_read(&S(st)->conn, load_endpoints, &a);
}
