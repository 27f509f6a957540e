/* The SQLite store's engine operations: leases and claims, endpoint rows and column-level
 * changes, durable emits, outcomes, the attempt log, and housekeeping. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "store_sqlite.h"
#include "endpoint_settings.h"
#include "error.h"
#include "event_log.h"
#include "log_where.h"
#include "logsink.h"
#include "old_secrets.h"
#include "ratelimit.h"
#include "sqlite_conn.h"
#include "store.h"
#include "util.h"

#define S(st) ((wh__sqlite_store *)(st))
#define PRUNE_EVERY_MS 1000
#define CHECKPOINT_EVERY_US 250000
#define PRUNE_BATCH 1000
#define PRUNE_BUDGET_US 25000 /* per call: delivery never waits long behind housekeeping */

bool wh__target_next(wh__target_iter *it)
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

bool wh__target_in(const char *list, const char *id, size_t len)
{
    wh__target_iter it = {.next = list};
    while (wh__target_next(&it))
        if (it.len == len && memcmp(it.id, id, len) == 0)
            return true;
    return false;
}

static void close_store(wh__store *st)
{
    if (!st)
        return;
    wh__sqlite_log_close(S(st));
    wh__sq_close(&S(st)->conn);
    free(S(st)->path);
    free(st);
}

/* ---- engines: leases and claims ------------------------------------------------- */

typedef struct {
    wh__sqlite_store *s;
    int64_t now_ms;
    bool *lost;
} lease_args;

static int renew(wh__sq *c, void *arg)
{
    lease_args *a = arg;
    int rc = wh__sq_run(c, "engine", "UPDATE engines SET lease_until_ms = ?2 WHERE id = ?1", NULL,
                        NULL, "ti", a->s->engine_id, a->now_ms + a->s->lease_ms);
    if (rc != WH_OK || wh__sq_changes(c) > 0)
        return rc;
    /* judged dead and its claims taken: register again, for the work still to come */
    *a->lost = true;
    return wh__sq_run(c, "engine",
                      "INSERT INTO engines(id, host, pid, started_ms, lease_until_ms, log_folded)"
                      " VALUES(?, ?, ?, ?, ?, ?)",
                      NULL, NULL, "ttiiii", a->s->engine_id, a->s->host, (int64_t)getpid(),
                      a->now_ms, a->now_ms + a->s->lease_ms, a->s->log_folded);
}

static int heartbeat(wh__store *st, int64_t now_ms, bool *lost)
{
    *lost = false;
    if (!S(st)->engine_id[0])
        return WH_OK;
    lease_args a = {S(st), now_ms, lost};
    return wh__sq_write(&S(st)->conn, renew, &a);
}

static int end_lease(wh__sq *c, void *arg)
{
    wh__sqlite_store *s = arg;
    return wh__sq_run(c, "engine", "UPDATE engines SET lease_until_ms = 0 WHERE id = ?", NULL,
                      NULL, "t", s->engine_id);
}

static int release(wh__store *st)
{
    return S(st)->engine_id[0] ? wh__sq_write(&S(st)->conn, end_lease, S(st)) : WH_OK;
}

typedef struct {
    wh__sqlite_store *s;
    int64_t now_ms;
    bool all;
    wh__claim_cb cb;
    void *ud;
    char (*dead)[WH_ID_MAX];
    size_t n_dead, cap_dead;
    struct claim_key *kept, *kept_events, *left;
    size_t n_kept, cap_kept, n_kept_events, cap_kept_events, n_left, cap_left;
    bool unclaimed; /* deliveries queued by a tool or released wait for an engine */
    bool oom;
    /* the dead engines' logs of emits stored by this write, removed once it commits */
    struct wh__event_log **logs;
    size_t n_logs;
} claim_args;

static int dead_row(void *ud, sqlite3_stmt *st)
{
    claim_args *a = ud;
    const char *id = wh__sq_text(st, 0), *host = wh__sq_text(st, 1);
    int64_t pid = sqlite3_column_int64(st, 2), until = sqlite3_column_int64(st, 3);
    /* a lease that ran out, or a process that is gone (checked only where its pid means
     * the same process: same boot, same pid namespace) */
    bool gone = until < a->now_ms ||
                (host && strcmp(host, a->s->host) == 0 && pid > 0 &&
                 kill((pid_t)pid, 0) != 0 && errno == ESRCH);
    if (!gone || !id || strlen(id) >= WH_ID_MAX)
        return 0;
    if (a->n_dead == a->cap_dead) {
        size_t cap = a->cap_dead ? a->cap_dead * 2 : 4;
        void *v = realloc(a->dead, cap * sizeof *a->dead);
        if (!v) {
            a->oom = true;
            return 1;
        }
        a->dead = v, a->cap_dead = cap;
    }
    snprintf(a->dead[a->n_dead++], WH_ID_MAX, "%s", id);
    return 0;
}

static int flag_row(void *ud, sqlite3_stmt *st)
{
    (void)st;
    *(bool *)ud = true;
    return 1;
}

static int find_claimable(wh__sq *c, void *arg)
{
    claim_args *a = arg;
    a->n_dead = 0;
    a->unclaimed = false;
    int rc = wh__sq_run(c, "engines",
                        "SELECT id, host, pid, lease_until_ms FROM engines WHERE id <> ?", dead_row,
                        a, "t", a->s->engine_id);
    if (rc == WH_OK)
        rc = wh__sq_run(c, "deliveries",
                        "SELECT 1 FROM deliveries WHERE state = 0 AND claimed_by IS NULL LIMIT 1",
                        flag_row, &a->unclaimed, NULL);
    if (rc == WH_OK && a->oom)
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    return rc;
}

/* What a claim keeps or leaves, collected while its SELECT runs and written after it. */
typedef struct claim_key {
    int64_t seq, next_ms;
    char endpoint_id[WH_ID_MAX], event_id[WH_ID_MAX];
    bool skip_only;
} claim_key;

static bool push_key(claim_args *a, claim_key **v, size_t *n, size_t *cap, const claim_key *k)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        claim_key *nv = realloc(*v, c * sizeof *nv);
        if (!nv) {
            a->oom = true;
            return false;
        }
        *v = nv, *cap = c;
    }
    (*v)[(*n)++] = *k;
    return true;
}

static int claimed_delivery(void *ud, sqlite3_stmt *st)
{
    claim_args *a = ud;
    wh__claimed_row r = {
        .event_seq = sqlite3_column_int64(st, 0),
        .event_id = wh__sq_text(st, 1),
        .event_type = wh__sq_text(st, 2),
        .endpoint_id = wh__sq_text(st, 3),
        .body = wh__sq_text(st, 4),
        .body_len = (size_t)sqlite3_column_bytes(st, 4),
        .attempts = sqlite3_column_int(st, 5),
        .next_ms = sqlite3_column_int64(st, 6),
        .skip_only = sqlite3_column_int(st, 7) != 0,
        .endpoint_stored = sqlite3_column_int(st, 8) != 0,
        .redelivery = sqlite3_column_int(st, 9) != 0,
    };
    r.run_id = r.redelivery ? NULL : wh__sq_text(st, 10);
    if (!r.endpoint_id || strlen(r.endpoint_id) >= WH_ID_MAX || !a->cb(a->ud, &r))
        return 0;
    claim_key k = {.seq = r.event_seq};
    snprintf(k.endpoint_id, sizeof k.endpoint_id, "%s", r.endpoint_id);
    return push_key(a, &a->kept, &a->n_kept, &a->cap_kept, &k) ? 0 : 1;
}

static int claimed_event(void *ud, sqlite3_stmt *st)
{
    claim_args *a = ud;
    const char *targets = wh__sq_text(st, 5), *attempted = wh__sq_text(st, 6);
    const char *stored = wh__sq_text(st, 7); /* the targets that still have an endpoint row */
    wh__claimed_row r = {
        .event_seq = sqlite3_column_int64(st, 0),
        .event_id = wh__sq_text(st, 1),
        .event_type = wh__sq_text(st, 2),
        .body = wh__sq_text(st, 3),
        .body_len = (size_t)sqlite3_column_bytes(st, 3),
        .next_ms = sqlite3_column_int64(st, 4),
        .run_id = wh__sq_text(st, 8),
    };
    if (!r.event_id || strlen(r.event_id) >= WH_ID_MAX)
        return 0;
    wh__target_iter it = {.next = targets};
    bool any_kept = false;
    while (wh__target_next(&it)) {
        if (wh__target_in(attempted, it.id, it.len) || it.len >= WH_ID_MAX)
            continue;
        claim_key k = {.seq = r.event_seq, .next_ms = r.next_ms, .skip_only = it.skipped};
        memcpy(k.endpoint_id, it.id, it.len);
        k.endpoint_id[it.len] = '\0';
        r.skip_only = it.skipped;
        r.endpoint_id = k.endpoint_id;
        r.endpoint_stored = wh__target_in(stored, it.id, it.len);
        if (a->cb(a->ud, &r)) {
            any_kept = true;
            continue;
        }
        /* left for an engine that can take it: a pending row of its own, claimed by none */
        snprintf(k.event_id, sizeof k.event_id, "%s", r.event_id);
        if (!push_key(a, &a->left, &a->n_left, &a->cap_left, &k))
            return 1;
    }
    if (any_kept) {
        claim_key k = {.seq = r.event_seq};
        if (!push_key(a, &a->kept_events, &a->n_kept_events, &a->cap_kept_events, &k))
            return 1;
    }
    return 0;
}

/* Moves to this engine what `owner` (NULL: nobody) holds and the callback takes; what it
 * does not take is left claimed by nobody, for another engine. */
static int take_from(wh__sq *c, claim_args *a, const char *owner, bool events)
{
    const char *me = a->s->engine_id;
    a->n_kept = a->n_kept_events = a->n_left = 0;
    int rc = wh__sq_run(c, "claim",
                        "SELECT d.event_seq, e.id, e.event_type, d.endpoint_id, e.body, d.attempts,"
                        " d.next_ms, d.skip_only,"
                        " EXISTS (SELECT 1 FROM endpoints p WHERE p.id = d.endpoint_id), d.redelivery,"
                        " e.run_id FROM deliveries d JOIN events e ON e.seq = d.event_seq"
                        " WHERE d.state = 0 AND d.claimed_by IS ?1 ORDER BY d.event_seq",
                        claimed_delivery, a, "t", owner);
    for (size_t i = 0; rc == WH_OK && !a->oom && i < a->n_kept; i++)
        rc = wh__sq_run(c, "claim",
                        "UPDATE deliveries SET claimed_by = ?3 WHERE event_seq = ?1"
                        " AND endpoint_id = ?2 AND state = 0",
                        NULL, NULL, "itt", a->kept[i].seq, a->kept[i].endpoint_id, me);
    if (rc == WH_OK && !a->oom && owner)
        rc = wh__sq_run(c, "claim",
                        "UPDATE deliveries SET claimed_by = NULL WHERE state = 0 AND claimed_by = ?1",
                        NULL, NULL, "t", owner);
    if (rc != WH_OK || a->oom || !events)
        return rc == WH_OK && a->oom ? wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory") : rc;
    /* first attempts have no deliveries row yet: the event's targets without one */
    rc = wh__sq_run(c, "claim",
                    "SELECT e.seq, e.id, e.event_type, e.body, e.created_ms, e.targets,"
                    " (SELECT group_concat(d.endpoint_id) FROM deliveries d WHERE d.event_seq = e.seq),"
                    " (SELECT group_concat(p.id) FROM endpoints p WHERE instr(',' || replace("
                    "e.targets, '!', '') || ',', ',' || p.id || ',') > 0), e.run_id"
                    " FROM events e WHERE e.claimed_by IS ?1"
                    " AND " WH__SQL_ROWS_OF_EVENT " < " WH__SQL_TARGET_COUNT " ORDER BY e.seq",
                    claimed_event, a, "t", owner);
    for (size_t i = 0; rc == WH_OK && !a->oom && i < a->n_left; i++) {
        claim_key *k = &a->left[i];
        rc = wh__sq_run(c, "claim",
                        "INSERT INTO deliveries(event_seq, endpoint_id, event_id, state, attempts,"
                        " next_ms, skip_only, updated_ms, claimed_by) VALUES(?1, ?2, ?3, 0, 0, ?4, ?5,"
                        " ?6, NULL) ON CONFLICT(event_seq, endpoint_id) DO NOTHING",
                        NULL, NULL, "ittidi", k->seq, k->endpoint_id, k->event_id, k->next_ms,
                        (int)k->skip_only, a->now_ms);
    }
    for (size_t i = 0; rc == WH_OK && !a->oom && i < a->n_kept_events; i++)
        rc = wh__sq_run(c, "claim", "UPDATE events SET claimed_by = ?2 WHERE seq = ?1", NULL, NULL,
                        "it", a->kept_events[i].seq, me);
    return rc == WH_OK && a->oom ? wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory") : rc;
}

static int take(wh__sq *c, void *arg)
{
    claim_args *a = arg;
    /* judged again inside the write lock: another engine may have taken them meanwhile */
    int rc = find_claimable(c, a);
    if (rc == WH_OK && (a->unclaimed || a->all))
        rc = take_from(c, a, NULL, a->all);
    /* a write run again (a shared commit that failed) starts over */
    for (size_t i = 0; i < a->n_logs; i++)
        wh__event_log_close(a->logs[i], false);
    a->n_logs = 0;
    free(a->logs);
    a->logs = rc == WH_OK && a->n_dead ? calloc(a->n_dead, sizeof *a->logs) : NULL;
    if (rc == WH_OK && a->n_dead && !a->logs)
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    for (size_t i = 0; rc == WH_OK && i < a->n_dead; i++) {
        struct wh__event_log *held = NULL;
        rc = wh__sqlite_fold_dead_log(c, a->s, a->dead[i], &held);
        if (held)
            a->logs[a->n_logs++] = held;
        if (rc == WH_OK)
            rc = take_from(c, a, a->dead[i], true);
        if (rc == WH_OK)
            rc = wh__sq_run(c, "engines", "DELETE FROM engines WHERE id = ?", NULL, NULL, "t",
                            a->dead[i]);
    }
    return rc;
}

static int claim(wh__store *st, int64_t now_ms, bool all, wh__claim_cb cb, void *ud)
{
    wh__sqlite_store *s = S(st);
    if (!s->engine_id[0] || s->read_only)
        return WH_OK;
    claim_args a = {.s = s, .now_ms = now_ms, .all = all, .cb = cb, .ud = ud};
    /* looked for under a read lock first: most of the time there is nothing to take */
    int rc = all ? WH_OK : wh__sq_read(&s->conn, find_claimable, &a);
    if (rc == WH_OK && (all || a.unclaimed || a.n_dead))
        rc = wh__sq_write(&s->conn, take, &a);
    for (size_t i = 0; i < a.n_logs; i++)
        wh__event_log_close(a.logs[i], rc == WH_OK); /* stored: gone; else read again */
    free(a.logs);
    free(a.dead);
    free(a.kept);
    free(a.kept_events);
    free(a.left);
    return rc;
}

typedef struct {
    wh__sqlite_store *s;
    bool changed;
} changed_args;

static int int64_row(void *ud, sqlite3_stmt *st)
{
    *(int64_t *)ud = sqlite3_column_int64(st, 0);
    return 1;
}

static int data_version(wh__sq *c, void *arg)
{
    changed_args *a = arg;
    int64_t v = a->s->data_version;
    int rc = wh__sq_run(c, "data_version", "PRAGMA data_version", int64_row, &v, NULL);
    a->changed = v != a->s->data_version;
    a->s->data_version = v;
    return rc;
}

static int changed(wh__store *st, bool *out)
{
    changed_args a = {.s = S(st)};
    int rc = wh__sq_read(&S(st)->conn, data_version, &a);
    *out = a.changed;
    return rc;
}

/* ---- endpoints ------------------------------------------------------------------- */

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

static int endpoint_insert(wh__store *st, const wh__endpoint_row *row)
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

static int endpoint_delete(wh__store *st, const char *id)
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
static int apply_change(wh__sq *c, const wh__endpoint_change *ch)
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
    int rc = apply_change(c, a->c);
    if (rc == WH_OK)
        rc = wh__sq_run(c, "endpoint", ENDPOINT_COLUMNS " WHERE id = ?", endpoint_row, &a->rows,
                        "t", a->c->endpoint_id);
    if (rc == WH_OK && !a->rows.found)
        rc = wh__fail(NULL, 0, WH_ERR_NOTFOUND, "no endpoint \"%.63s\"", a->c->endpoint_id);
    return rc;
}

static int endpoint_change(wh__store *st, const wh__endpoint_change *c, wh__endpoint_row_cb cb,
                           void *ud)
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

static int endpoint_upsert(wh__store *st, const wh__endpoint_row *row, bool secret_given,
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

static int endpoints_load(wh__store *st, wh__endpoint_row_cb cb, void *ud)
{
    rows_args a = {.cb = cb, .ud = ud};
    return wh__sq_read(&S(st)->conn, load_endpoints, &a);
}

/* ---- events, deliveries, outcomes ---------------------------------------------------- */

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

static int event_add(wh__store *st, wh__event_row *ev, const wh__target *t, size_t n)
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
static int events_add(wh__store *st, wh__event_add *ev, size_t n)
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
    int rc = add_events(c, &f->events);
    if (rc == WH_OK)
        rc = wh__sq_run(c, "event", "UPDATE engines SET log_folded = ?2 WHERE id = ?1", NULL, NULL,
                        "ti", f->events.s->engine_id, f->folded);
    return rc;
}

int wh__sqlite_events_fold(wh__store *st, wh__event_add *ev, size_t n)
{
    wh__sqlite_store *s = S(st);
    if (!s->log)
        return wh__fail(NULL, 0, WH_ERR_STATE, "store: no log of emits");
    fold_args f = {{s, ev, n}, s->log_folded + (int64_t)n};
    int rc = wh__sq_write(&s->conn, fold_events, &f);
    if (rc == WH_OK) {
        s->log_folded = f.folded;
        wh__event_log_clear(s->log, f.folded); /* if it fails, the file is only longer */
    }
    return rc;
}

typedef struct {
    wh__sqlite_store *s;
    wh__delivery_row *d;
    size_t n;
    int64_t now_ms;
} deliveries_args;

static int add_deliveries(wh__sq *c, void *arg)
{
    deliveries_args *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        wh__delivery_row *d = &a->d[i];
        /* a delivery pending already, here or in another engine, stays as it is: one with
         * a row is pending while its state is 0; a first attempt not made yet has no row,
         * and is pending while a live engine holds its event */
        int rc = wh__sq_run(c, "delivery",
                            "INSERT INTO deliveries(event_seq, endpoint_id, event_id, state, attempts,"
                            " next_ms, skip_only, updated_ms, claimed_by, redelivery) SELECT ?1, ?2, ?3,"
                            " 0, 0, ?4, 0, ?5, ?6, 1 WHERE NOT EXISTS (SELECT 1 FROM events e JOIN engines g"
                            " ON g.id = e.claimed_by WHERE e.seq = ?1 AND e.claimed_by <> ?6"
                            " AND g.lease_until_ms >= ?7)"
                            " ON CONFLICT(event_seq, endpoint_id) DO UPDATE SET state = 0, attempts = 0,"
                            " next_ms = ?4, skip_only = 0, updated_ms = ?5, claimed_by = ?6,"
                            " redelivery = 1"
                            " WHERE state <> 0",
                            NULL, NULL, "ittiiti", d->event_seq, d->endpoint_id, d->event_id,
                            d->next_ms, a->now_ms, a->s->engine_id, wh__wall_ms());
        if (rc != WH_OK)
            return rc;
        d->accepted = wh__sq_changes(c) > 0;
    }
    return WH_OK;
}

static int deliveries_add(wh__store *st, wh__delivery_row *d, size_t n, int64_t now_ms)
{
    deliveries_args a = {S(st), d, n, now_ms};
    return n ? wh__sq_write(&S(st)->conn, add_deliveries, &a) : WH_OK;
}

typedef struct {
    wh__sqlite_store *s;
    const wh__result *r;
    size_t n;
    wh__endpoint_change *c;
    size_t nc;
} results_args;

static int write_results(wh__sq *c, void *arg)
{
    results_args *ra = arg;
    const char *me = ra->s->engine_id;
    for (size_t i = 0; i < ra->n; i++) {
        const wh__result *r = &ra->r[i];
        const wh_attempt *a = r->attempt;
        int rc = WH_OK;
        /* written only while this engine holds the claim: an engine judged dead whose
         * work was taken over must not overwrite what the new holder does */
        if (r->event_seq)
            rc = wh__sq_run(c, "delivery",
                            "INSERT INTO deliveries(event_seq, endpoint_id, event_id, state, attempts,"
                            " next_ms, skip_only, updated_ms, claimed_by) SELECT ?1, ?2, ?3, ?4, ?5,"
                            " ?6, ?7, ?8, ?9 WHERE EXISTS (SELECT 1 FROM events e WHERE e.seq = ?1"
                            " AND e.claimed_by = ?10)"
                            " ON CONFLICT(event_seq, endpoint_id) DO UPDATE SET state = ?4,"
                            " attempts = ?5, next_ms = ?6, skip_only = ?7, updated_ms = ?8,"
                            " claimed_by = ?9 WHERE claimed_by = ?10",
                            NULL, NULL, "ittddiditt", r->event_seq, r->endpoint_id, r->event_id,
                            r->state, r->attempts, r->next_ms, (int)r->skip_only,
                            a ? a->started_ms : wh__wall_ms(),
                            r->state == WH__DSTATE_PENDING ? me : NULL, me);
        if (rc == WH_OK && a)
            rc = wh__sq_run(c, "attempt",
                            "INSERT INTO attempts(event_id, event_type, endpoint_id, url, attempt,"
                            " outcome, http_status, error, started_ms, duration_us, next_attempt_ms,"
                            " response_body, redelivery, run_id, task_id)"
                            " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            NULL, NULL, "ttttdddtiiibdtt", a->event_id, a->event_type,
                            a->endpoint_id, a->url ? a->url : "", a->attempt, (int)a->outcome,
                            a->http_status, a->error, a->started_ms, a->duration_us,
                            a->next_attempt_ms, (const void *)a->response_body, a->response_len,
                            a->redelivery != 0, a->run_id, a->task_id);
        if (rc != WH_OK)
            return rc;
    }
    for (size_t i = 0; i < ra->nc; i++) {
        int rc = apply_change(c, &ra->c[i]);
        ra->c[i].version = 0;
        if (rc == WH_OK && ra->c[i].kind == WH__EP_DISABLE)
            rc = wh__sq_run(c, "endpoint", "SELECT version FROM endpoints WHERE id = ? AND enabled = 0",
                            int64_row, &ra->c[i].version, "t", ra->c[i].endpoint_id);
        if (rc != WH_OK)
            return rc;
    }
    return WH_OK;
}

static int results(wh__store *st, const wh__result *r, size_t n, wh__endpoint_change *c,
                   size_t nc)
{
    results_args a = {S(st), r, n, c, nc};
    return n || nc ? wh__sq_write(&S(st)->conn, write_results, &a) : WH_OK;
}

/* ---- the log ------------------------------------------------------------------------ */

typedef struct {
    const wh_log_filter *f;
    wh__record **rows;
    size_t n, cap, limit;
    bool oom;
} query_args;

static int attempt_row(void *ud, sqlite3_stmt *st)
{
    query_args *q = ud;
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        wh__record **v = realloc(q->rows, cap * sizeof *v);
        if (!v) {
            q->oom = true;
            return 1;
        }
        q->rows = v, q->cap = cap;
    }
    wh__record *r = calloc(1, sizeof *r);
    if (!r) {
        q->oom = true;
        return 1;
    }
    snprintf(r->event_id, sizeof r->event_id, "%s", wh__sq_text(st, 0));
    snprintf(r->event_type, sizeof r->event_type, "%s", wh__sq_text(st, 1));
    snprintf(r->endpoint_id, sizeof r->endpoint_id, "%s", wh__sq_text(st, 2));
    const char *url = wh__sq_text(st, 3), *error = wh__sq_text(st, 7);
    size_t blen = (size_t)sqlite3_column_bytes(st, 11);
    const void *blob = sqlite3_column_blob(st, 11);
    r->url = wh__strdup(url ? url : "");
    r->error = wh__strdup(error);
    if (blob && (r->body = malloc(blen + 1))) {
        memcpy(r->body, blob, blen);
        r->body[blen] = '\0';
    }
    bool ids = wh__record_set_ids(r, wh__sq_text(st, 13), wh__sq_text(st, 14));
    /* a record with a part missing is never handed out as if it were whole */
    if (!r->url || (error && !r->error) || (blob && !r->body) || !ids) {
        wh__record_free(r);
        q->oom = true;
        return 1;
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
        .redelivery = sqlite3_column_int(st, 12) != 0,
        .run_id = r->run_id,
        .task_id = r->task_id,
    };
    q->rows[q->n++] = r;
    return 0;
}

/* One statement per shape of filter (log_where.h), made once: the statement cache knows a
 * statement by the address of its text. */
static char log_sql[WH__LOG_SHAPES][WH__LOG_WHERE_MAX + 300];
static pthread_once_t log_sql_once = PTHREAD_ONCE_INIT;

static void make_log_sql(void)
{
    for (int shape = 0; shape < WH__LOG_SHAPES; shape++) {
        char where[WH__LOG_WHERE_MAX];
        wh__log_where(where, sizeof where, shape, false);
        snprintf(log_sql[shape], sizeof log_sql[shape],
                 "SELECT event_id, event_type, endpoint_id, url, attempt, outcome, http_status,"
                 " error, started_ms, duration_us, next_attempt_ms, response_body, redelivery,"
                 " run_id, task_id FROM attempts WHERE %s ORDER BY started_ms DESC, id DESC"
                 " LIMIT ?7",
                 where);
    }
}

const char *wh__sqlite_log_sql(int shape)
{
    pthread_once(&log_sql_once, make_log_sql);
    return log_sql[shape];
}

static int run_log_query(wh__sq *c, void *arg)
{
    query_args *q = arg;
    const wh_log_filter *f = q->f;
    int rc = wh__sq_run(c, "log query", wh__sqlite_log_sql(wh__log_shape(f)), attempt_row, q, "tttiiii",
                        f ? f->endpoint_id : NULL, f ? f->event_id : NULL,
                        f ? f->event_type : NULL, (int64_t)(f ? f->outcomes : 0),
                        f ? f->since_ms : 0, f ? f->until_ms : 0, (int64_t)q->limit);
    if (rc == WH_OK && q->oom)
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "log query: out of memory");
    return rc;
}

static int log_query(wh__store *st, const wh_log_filter *f, wh__attempt_cb cb, void *ud)
{
    query_args q = {.f = f, .limit = f && f->limit > 0 ? (size_t)f->limit : 100};
    int rc = wh__sq_read(&S(st)->conn, run_log_query, &q);
    /* rows are handed over with no lock held */
    for (size_t i = 0; i < q.n; i++) {
        if (rc == WH_OK && cb)
            cb(ud, &q.rows[i]->a);
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

static int event_row(void *ud, sqlite3_stmt *st)
{
    find_args *a = ud;
    int64_t seq = sqlite3_column_int64(st, 0);
    const char *type = wh__sq_text(st, 1), *body = wh__sq_text(st, 2);
    size_t body_len = (size_t)sqlite3_column_bytes(st, 2);
    wh__target_iter it = {.next = wh__sq_text(st, 3)};
    char id[WH_ID_MAX];
    while (wh__target_next(&it)) {
        if (it.len >= WH_ID_MAX)
            continue;
        memcpy(id, it.id, it.len);
        id[it.len] = '\0';
        a->event_cb(a->ud, seq, type, body, body_len, id);
        a->found++;
    }
    return 1;
}

static int run_find_event(wh__sq *c, void *arg)
{
    find_args *a = arg;
    /* through the deliveries index when the event was attempted, else a scan */
    return wh__sq_run(c, "event",
                      "SELECT seq, event_type, body, targets FROM events WHERE seq = coalesce("
                      "(SELECT event_seq FROM deliveries WHERE event_id = ?1 LIMIT 1),"
                      "(SELECT seq FROM events WHERE id = ?1))",
                      event_row, a, "t", a->event_id);
}

static int find_event(wh__store *st, const char *event_id,
                      void (*cb)(void *ud, int64_t seq, const char *type, const char *body,
                                 size_t len, const char *endpoint_id),
                      void *ud)
{
    find_args a = {.event_id = event_id, .event_cb = cb, .ud = ud};
    int rc = wh__sq_read(&S(st)->conn, run_find_event, &a);
    return rc == WH_OK ? a.found : rc;
}

static int failed_row(void *ud, sqlite3_stmt *st)
{
    find_args *a = ud;
    a->failed_cb(a->ud, wh__sq_text(st, 0));
    a->found++;
    return 0;
}

const char wh__sqlite_finished_sql[] =
    "SELECT DISTINCT event_id FROM deliveries WHERE endpoint_id = ?"
    " AND state IN (2, 3) AND updated_ms >= ? ORDER BY event_id";

static int run_find_failed(wh__sq *c, void *arg)
{
    find_args *a = arg;
    return wh__sq_run(c, "deliveries", wh__sqlite_finished_sql, failed_row, a, "ti",
                      a->endpoint_id, a->since_ms);
}

static int find_failed(wh__store *st, const char *endpoint_id, int64_t since_ms,
                       void (*cb)(void *ud, const char *event_id), void *ud)
{
    find_args a = {.endpoint_id = endpoint_id, .since_ms = since_ms, .failed_cb = cb, .ud = ud};
    int rc = wh__sq_read(&S(st)->conn, run_find_failed, &a);
    return rc == WH_OK ? a.found : rc;
}

/* ---- several engines: ordering per run, rate limits ------------------------------------- */

typedef struct {
    wh__sqlite_store *s;
    wh__order_query *q;
    wh__rate_ask *r;
    size_t n;
} shared_args;

static int flag_true(void *ud, sqlite3_stmt *st)
{
    (void)st;
    *(bool *)ud = true;
    return 1;
}

/* An earlier event of the run that goes to the endpoint and is pending there: with no
 * deliveries row (a first attempt not made), while its event is not this engine's; with a
 * row, while it is pending and not this engine's. A redelivery keeps no order. */
static int ask_order(wh__sq *c, void *arg)
{
    shared_args *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        wh__order_query *q = &a->q[i];
        q->blocked = false;
        int rc = wh__sq_run(c, "order",
                            "SELECT 1 FROM events e LEFT JOIN deliveries d ON d.event_seq = e.seq"
                            " AND d.endpoint_id = ?3 WHERE e.run_id = ?1 AND e.seq < ?2"
                            " AND instr(',' || replace(e.targets, '!', '') || ',', ',' || ?3 || ',') > 0"
                            " AND CASE WHEN d.event_seq IS NULL THEN e.claimed_by IS NOT ?4"
                            " ELSE d.state = 0 AND d.redelivery = 0 AND d.claimed_by IS NOT ?4 END"
                            " LIMIT 1",
                            flag_true, &q->blocked, "titt", q->run_id, q->event_seq,
                            q->endpoint_id, a->s->engine_id);
        if (rc != WH_OK)
            return rc;
    }
    return WH_OK;
}

static int order_blocked(wh__store *st, wh__order_query *q, size_t n)
{
    shared_args a = {.s = S(st), .q = q, .n = n};
    return n ? wh__sq_read(&S(st)->conn, ask_order, &a) : WH_OK;
}

typedef struct {
    bool found;
    double tokens;
    int64_t at_ms;
} bucket_row;

static int read_bucket(void *ud, sqlite3_stmt *st)
{
    bucket_row *b = ud;
    b->found = true;
    b->tokens = sqlite3_column_double(st, 0);
    b->at_ms = sqlite3_column_int64(st, 1);
    return 1;
}

/* Inside the write lock: every engine on this machine counts with the same wall clock. */
static int take_tokens(wh__sq *c, void *arg)
{
    shared_args *a = arg;
    int64_t now = wh__wall_ms();
    for (size_t i = 0; i < a->n; i++) {
        wh__rate_ask *r = &a->r[i];
        bucket_row b = {0};
        int rc = wh__sq_run(c, "rate", "SELECT tokens, updated_ms FROM rate_buckets WHERE endpoint_id = ?",
                            read_bucket, &b, "t", r->endpoint_id);
        if (rc != WH_OK)
            return rc;
        if (!b.found)
            b.at_ms = 0; /* a bucket never used is full */
        r->granted = wh__bucket_take(&b.tokens, &b.at_ms, r->rate_per_s,
                                     wh__rate_shared_burst(r->rate_per_s), r->want, now,
                                     &r->wait_ms);
        /* bound as an integer (micro-tokens): the statement binder knows no doubles */
        rc = wh__sq_run(c, "rate",
                        "INSERT OR REPLACE INTO rate_buckets(endpoint_id, tokens, updated_ms)"
                        " VALUES(?1, ?2 / 1000000.0, ?3)",
                        NULL, NULL, "tii", r->endpoint_id, (int64_t)(b.tokens * 1e6), b.at_ms);
        if (rc != WH_OK)
            return rc;
    }
    return WH_OK;
}

static int rate_take(wh__store *st, wh__rate_ask *r, size_t n)
{
    shared_args a = {.s = S(st), .r = r, .n = n};
    if (S(st)->read_only || !n)
        return WH_OK;
    return wh__sq_write(&S(st)->conn, take_tokens, &a);
}

/* ---- housekeeping ------------------------------------------------------------------- */

typedef struct {
    int64_t before_ms;
    int64_t dedup_before_ms; /* an event with its caller's id stays until then */
    int64_t attempts, events; /* deleted by the last batch */
} prune_args;

static int prune(wh__sq *c, void *arg)
{
    prune_args *p = arg;
    /* an event goes with its deliveries once every target was attempted (a row each:
     * first attempts have none), none is pending, and it is old enough. created_ms has no
     * index: only the events before the first one young enough are looked at (a rowid
     * range, found by a scan that stops at that event), never the whole table each second.
     * An event stamped earlier than one before it (engines' clocks apart) waits for it. */
    static const char *const sql[] = {
        "DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE started_ms < ?1 LIMIT ?2)",
        "CREATE TEMP TABLE IF NOT EXISTS prune_seq(seq INTEGER PRIMARY KEY)",
        "INSERT INTO prune_seq SELECT e.seq FROM events e WHERE e.seq < coalesce("
        "(SELECT seq FROM events WHERE created_ms >= ?1 ORDER BY seq LIMIT 1), 9223372036854775807)"
        " AND e.created_ms < ?1"
        " AND " WH__SQL_ROWS_OF_EVENT " >= " WH__SQL_TARGET_COUNT
        " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq AND d.state = 0)"
        " AND (e.dedup_id IS NULL OR e.created_ms < ?3)"
        " ORDER BY e.seq LIMIT ?2",
        "DELETE FROM deliveries WHERE event_seq IN (SELECT seq FROM prune_seq)",
        "DELETE FROM events WHERE seq IN (SELECT seq FROM prune_seq)",
        "DELETE FROM prune_seq",
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        /* parameters a statement does not have are ignored */
        int rc = wh__sq_run(c, "prune", sql[i], NULL, NULL, "iii", p->before_ms,
                            (int64_t)PRUNE_BATCH, p->dedup_before_ms);
        if (rc != WH_OK)
            return rc;
        if (i == 0)
            p->attempts = wh__sq_changes(c);
        else if (i == 4)
            p->events = wh__sq_changes(c);
    }
    return WH_OK;
}

static int checkpoint(wh__sq *c, void *arg)
{
    (void)arg;
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return rc == SQLITE_OK || rc == SQLITE_BUSY ? WH_OK : wh__sq_fail(c, "checkpoint");
}

static int upkeep(wh__store *st, int64_t now_ms, int64_t retention_ms)
{
    wh__sqlite_store *s = S(st);
    if (s->read_only)
        return WH_OK;
    int rc = WH_OK;
    int64_t now_us = wh__mono_us();
    if (now_us - s->last_checkpoint_us >= CHECKPOINT_EVERY_US) {
        s->last_checkpoint_us = now_us;
        rc = wh__sq_alone(&s->conn, checkpoint, NULL);
    }
    if (retention_ms <= 0 || now_ms - s->last_prune_ms < PRUNE_EVERY_MS)
        return rc;
    /* pruning keeps up with the write rate: batches until nothing old is left, within a
     * time budget; whatever is left is taken up at the next call, not a minute later */
    int64_t start = wh__mono_us();
    prune_args p = {.before_ms = now_ms - retention_ms,
                    .dedup_before_ms = now_ms - s->dedup_window_ms};
    bool behind;
    do {
        if ((rc = wh__sq_write(&s->conn, prune, &p)) != WH_OK)
            return rc;
        behind = p.attempts >= PRUNE_BATCH || p.events >= PRUNE_BATCH;
    } while (behind && wh__mono_us() - start < PRUNE_BUDGET_US);
    if (!behind)
        s->last_prune_ms = now_ms; /* caught up */
    return rc;
}

const wh__store_ops wh__sqlite_ops = {
    .version = 7,
    .name = "sqlite",
    .durable = true,
    .close = close_store,
    .heartbeat = heartbeat,
    .release = release,
    .claim = claim,
    .changed = changed,
    .endpoint_insert = endpoint_insert,
    .endpoint_delete = endpoint_delete,
    .endpoint_change = endpoint_change,
    .endpoints_load = endpoints_load,
    .event_add = event_add,
    .events_add = events_add,
    .deliveries_add = deliveries_add,
    .results = results,
    .log_query = log_query,
    .find_event = find_event,
    .find_failed = find_failed,
    .upkeep = upkeep,
    .get_meta = wh__sqlite_get_meta,
    .queue_redelivery = wh__sqlite_queue_redelivery,
    .queue_recovery = wh__sqlite_queue_recovery,
    .endpoint_stats = wh__sqlite_endpoint_stats,
    .attempt_stats = wh__sqlite_attempt_stats,
    .order_blocked = order_blocked,
    .rate_take = rate_take,
    .endpoint_upsert = endpoint_upsert,
    .events_log = wh__sqlite_events_log,
    .events_fold = wh__sqlite_events_fold,
};
