/* The PostgreSQL store's engine operations: leases and claims (FOR UPDATE SKIP LOCKED, in
 * batches), endpoint rows and column-level changes, durable emits, outcomes guarded by the
 * claim, the attempt log, notifications, and housekeeping. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "endpoint_settings.h"
#include "error.h"
#include "log_where.h"
#include "logsink.h"
#include "pg_array.h"
#include "old_secrets.h"
#include "ratelimit.h"
#include "store.h"
#include "store_pg.h"
#include "util.h"

#define S(st) ((wh__pg_store *)(st))
#define WATCH_MS 100            /* a change made elsewhere is seen within this */
#define CLAIM_CHECK_US 500000   /* dead engines are looked for this often */
#define CLAIM_BATCH 500
#define PRUNE_EVERY_MS 1000
#define PRUNE_BATCH 1000
#define PRUNE_BUDGET_US 25000

int wh__pg_notify(wh__pg *c, const char *channel, const char *what)
{
    return wh__pg_run(c, "notify", "SELECT pg_notify($1, $2)", NULL, NULL, "tt", channel, what);
}

static void close_store(wh__store *st)
{
    if (!st)
        return;
    wh__pg_close(&S(st)->conn);
    pthread_mutex_destroy(&S(st)->fix_mu);
    free(S(st)->fix);
    free(st);
}

/* An array literal of n strings taken from items (stride bytes apart); malloc'd. */
static char *text_array(const char *items, size_t stride, size_t n)
{
    wh__pg_arr a = {0};
    for (size_t i = 0; i < n; i++)
        wh__pg_arr_text(&a, items + i * stride);
    if (!wh__pg_arr_end(&a)) {
        wh__pg_arr_free(&a);
        return NULL;
    }
    return a.buf; /* the caller's now */
}

/* ---- engines: leases ------------------------------------------------------------------ */

typedef struct {
    wh__pg_store *s;
    int64_t now_ms;
    bool lost;
} lease_args;

static int renew(wh__pg *c, void *arg)
{
    lease_args *a = arg;
    a->lost = false;
    int rc = wh__pg_run(c, "engine", "UPDATE engines SET lease_until_ms = $2 WHERE id = $1", NULL,
                        NULL, "ti", a->s->engine_id, a->now_ms + a->s->lease_ms);
    if (rc != WH_OK || wh__pg_changes(c) > 0)
        return rc;
    /* judged dead and its claims taken: register again, for the work still to come */
    a->lost = true;
    return wh__pg_run(c, "engine",
                      "INSERT INTO engines(id, host, pid, started_ms, lease_until_ms)"
                      " VALUES($1, $2, $3, $4, $5)",
                      NULL, NULL, "ttiii", a->s->engine_id, a->s->host, (int64_t)getpid(),
                      a->now_ms, a->now_ms + a->s->lease_ms);
}

static int heartbeat(wh__store *st, int64_t now_ms, bool *lost)
{
    *lost = false;
    if (!S(st)->engine_id[0] || S(st)->read_only)
        return WH_OK;
    lease_args a = {S(st), now_ms, false};
    int rc = wh__pg_write(&S(st)->conn, renew, &a, NULL);
    *lost = a.lost;
    return rc;
}

static int end_lease(wh__pg *c, void *arg)
{
    wh__pg_store *s = arg;
    int rc = wh__pg_run(c, "engine", "UPDATE engines SET lease_until_ms = 0 WHERE id = $1", NULL,
                        NULL, "t", s->engine_id);
    return rc == WH_OK ? wh__pg_notify(c, s->channel, "w") : rc;
}

static int release(wh__store *st)
{
    if (!S(st)->engine_id[0] || S(st)->read_only)
        return WH_OK;
    return wh__pg_write(&S(st)->conn, end_lease, S(st), NULL);
}

/* ---- claims ----------------------------------------------------------------------------- */

/* A delivery a claim took or left, written once its SELECT has run. */
typedef struct {
    int64_t seq;
    char event_id[WH_ID_MAX], endpoint_id[WH_ID_MAX];
} claim_key;

typedef struct {
    claim_key *v;
    size_t n, cap;
} key_list;

typedef struct {
    wh__pg_store *s;
    int64_t now_ms;
    wh__claim_cb cb;
    void *ud;
    key_list kept, left; /* left: held by a dead engine, not taken here: claimed by nobody */
    int64_t rows, after_seq; /* this batch's rows; where the next batch starts */
    char after_ep[WH_ID_MAX];
    bool oom, any;
    char *gone; /* engines on this host whose process is gone (a text[] literal) */
} claim_args;

static bool push_key(claim_args *a, key_list *l, int64_t seq, const char *event_id,
                     const char *endpoint_id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        claim_key *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            a->oom = true;
            return false;
        }
        l->v = v, l->cap = cap;
    }
    claim_key *k = &l->v[l->n++];
    k->seq = seq;
    snprintf(k->event_id, sizeof k->event_id, "%s", event_id);
    snprintf(k->endpoint_id, sizeof k->endpoint_id, "%s", endpoint_id);
    return true;
}

/* Inside the transaction: the engine decides, and copies what it takes. */
static int candidate_row(void *ud, const PGresult *r, int i)
{
    claim_args *a = ud;
    wh__claimed_row row = {
        .event_seq = wh__pg_int(r, i, 0),
        .event_id = PQgetvalue(r, i, 1),
        .event_type = PQgetvalue(r, i, 2),
        .endpoint_id = PQgetvalue(r, i, 3),
        .body = PQgetvalue(r, i, 4),
        .body_len = (size_t)PQgetlength(r, i, 4),
        .attempts = (int)wh__pg_int(r, i, 5),
        .next_ms = wh__pg_int(r, i, 6),
        .skip_only = wh__pg_bool(r, i, 7),
        .endpoint_stored = wh__pg_bool(r, i, 8),
        .redelivery = wh__pg_bool(r, i, 10),
        .run_id = wh__pg_text(r, i, 11),
    };
    bool held = wh__pg_bool(r, i, 9);
    a->rows++;
    a->after_seq = row.event_seq;
    snprintf(a->after_ep, sizeof a->after_ep, "%s", row.endpoint_id);
    if (strlen(row.event_id) >= WH_ID_MAX || strlen(row.endpoint_id) >= WH_ID_MAX)
        return 0;
    if (a->cb(a->ud, &row))
        return push_key(a, &a->kept, row.event_seq, row.event_id, row.endpoint_id) ? 0 : 1;
    /* left for an engine that can take it */
    if (held && !push_key(a, &a->left, row.event_seq, row.event_id, row.endpoint_id))
        return 1;
    return 0;
}

static int flag_row(void *ud, const PGresult *r, int i)
{
    *(bool *)ud = wh__pg_bool(r, i, 0);
    return 1;
}

typedef struct {
    char (*ids)[WH_ID_MAX];
    size_t n, cap;
} id_list;

static int same_host_row(void *ud, const PGresult *r, int i)
{
    id_list *l = ud;
    const char *id = PQgetvalue(r, i, 0);
    int64_t pid = wh__pg_int(r, i, 1);
    /* a process that is gone, checked only where its pid means the same process */
    if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH || strlen(id) >= WH_ID_MAX)
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        void *v = realloc(l->ids, cap * sizeof *l->ids);
        if (!v)
            return 1;
        l->ids = v, l->cap = cap;
    }
    snprintf(l->ids[l->n++], WH_ID_MAX, "%s", id);
    return 0;
}

/* Is there anything to take: deliveries nobody holds, engines whose lease ran out, engines
 * of this host whose process is gone? Read only: most of the time there is nothing. */
static int find_claimable(wh__pg *c, void *arg)
{
    claim_args *a = arg;
    id_list gone = {0};
    a->any = false;
    free(a->gone);
    a->gone = NULL;
    int rc = wh__pg_run(c, "claim",
                        "SELECT EXISTS(SELECT 1 FROM deliveries WHERE state = 0 AND claimed_by IS NULL)"
                        " OR EXISTS(SELECT 1 FROM engines WHERE id <> $1 AND lease_until_ms < $2)",
                        flag_row, &a->any, "ti", a->s->engine_id, a->now_ms);
    if (rc == WH_OK)
        rc = wh__pg_run(c, "claim",
                        "SELECT id, pid FROM engines WHERE host = $1 AND id <> $2"
                        " AND lease_until_ms >= $3",
                        same_host_row, &gone, "tti", a->s->host, a->s->engine_id, a->now_ms);
    if (rc == WH_OK && gone.n) {
        a->any = true;
        if (!(a->gone = text_array(gone.ids[0], WH_ID_MAX, gone.n)))
            rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    }
    free(gone.ids);
    return rc;
}

/* Writes keys as two arrays (event seqs, endpoint ids) and runs sql with $1 me, $2, $3. */
static int write_keys(wh__pg *c, const char *sql, const char *me, const key_list *l)
{
    if (!l->n)
        return WH_OK;
    char *eps = text_array(l->v[0].endpoint_id, sizeof *l->v, l->n);
    char *seqs = malloc(l->n * 22 + 3), *p = seqs;
    int rc = WH_OK;
    if (!eps || !seqs) {
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    } else {
        *p++ = '{';
        for (size_t i = 0; i < l->n; i++)
            p += sprintf(p, "%s%lld", i ? "," : "", (long long)l->v[i].seq);
        strcpy(p, "}");
        rc = wh__pg_run(c, "claim", sql, NULL, NULL, "ttt", me, seqs, eps);
    }
    free(eps);
    free(seqs);
    return rc;
}

/* One batch, in key order from where the last one ended: what nobody holds and what dead
 * engines held, locked with SKIP LOCKED so that engines claiming at the same time each see
 * different rows; the engine takes what it can load, the rest is left claimed by nobody. */
static int take(wh__pg *c, void *arg)
{
    claim_args *a = arg;
    a->kept.n = a->left.n = 0;
    a->rows = 0;
    const char *me = a->s->engine_id;
    int rc = WH_OK;
    if (a->gone)
        rc = wh__pg_run(c, "claim", "UPDATE engines SET lease_until_ms = 0 WHERE id = ANY($1::text[])",
                        NULL, NULL, "t", a->gone);
    /* the dead engines' rows are locked first: one that renews its lease meanwhile either
     * did so before (and is not dead) or waits until these claims are committed */
    if (rc == WH_OK)
        rc = wh__pg_run(
            c, "claim",
            "WITH dead AS (SELECT id FROM engines WHERE lease_until_ms < $2 AND id <> $1"
            "  ORDER BY id FOR UPDATE)"
            " SELECT d.event_seq, d.event_id, e.event_type, d.endpoint_id, e.body, d.attempts,"
            " d.next_ms, d.skip_only, EXISTS(SELECT 1 FROM endpoints p WHERE p.id = d.endpoint_id),"
             " d.claimed_by IS NOT NULL, d.redelivery, d.run_id"
            " FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.state = 0"
            " AND (d.claimed_by IS NULL OR d.claimed_by IN (SELECT id FROM dead))"
            " AND (d.event_seq, d.endpoint_id) > ($4, $5)"
            " ORDER BY d.event_seq, d.endpoint_id LIMIT $3 FOR UPDATE OF d SKIP LOCKED",
            candidate_row, a, "tidit", me, a->now_ms, CLAIM_BATCH, a->after_seq, a->after_ep);
    if (rc == WH_OK && !a->oom)
        rc = write_keys(c,
                        "UPDATE deliveries d SET claimed_by = $1"
                        " FROM unnest($2::bigint[], $3::text[]) AS k(seq, ep)"
                        " WHERE d.event_seq = k.seq AND d.endpoint_id = k.ep AND d.state = 0",
                        me, &a->kept);
    if (rc == WH_OK && !a->oom)
        rc = write_keys(c,
                        "UPDATE deliveries d SET claimed_by = NULL"
                        " FROM unnest($2::bigint[], $3::text[]) AS k(seq, ep)"
                        " WHERE d.event_seq = k.seq AND d.endpoint_id = k.ep AND d.state = 0"
                        " AND d.claimed_by <> $1",
                        me, &a->left);
    /* a dead engine goes once nothing it held is left */
    if (rc == WH_OK && !a->oom)
        rc = wh__pg_run(c, "claim",
                        "DELETE FROM engines g WHERE g.lease_until_ms < $2 AND g.id <> $1"
                        " AND NOT EXISTS(SELECT 1 FROM deliveries d WHERE d.claimed_by = g.id"
                        " AND d.state = 0)",
                        NULL, NULL, "ti", me, a->now_ms);
    if (rc == WH_OK && a->oom)
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    return rc;
}

void wh__pg_fix_add(wh__pg_store *s, const char *event_id, const char *endpoint_id)
{
    pthread_mutex_lock(&s->fix_mu);
    if (s->n_fix == s->cap_fix) {
        size_t cap = s->cap_fix ? s->cap_fix * 2 : 16;
        void *v = realloc(s->fix, cap * sizeof *s->fix);
        if (!v) {
            pthread_mutex_unlock(&s->fix_mu);
            return; /* held until this engine ends, then taken by another */
        }
        s->fix = v, s->cap_fix = cap;
    }
    snprintf(s->fix[s->n_fix].event_id, WH_ID_MAX, "%s", event_id);
    snprintf(s->fix[s->n_fix].endpoint_id, WH_ID_MAX, "%s", endpoint_id ? endpoint_id : "");
    s->n_fix++;
    pthread_mutex_unlock(&s->fix_mu);
}

typedef struct {
    wh__pg_store *s;
    char *events, *endpoints;
} unfix_args;

static int hand_back(wh__pg *c, void *arg)
{
    unfix_args *u = arg;
    int rc = wh__pg_run(c, "claim",
                        "UPDATE deliveries d SET claimed_by = NULL"
                        " FROM unnest($2::text[], $3::text[]) AS x(ev, ep)"
                        " WHERE d.claimed_by = $1 AND d.state = 0 AND d.event_id = x.ev"
                        " AND (x.ep = '' OR d.endpoint_id = x.ep)",
                        NULL, NULL, "ttt", u->s->engine_id, u->events, u->endpoints);
    return rc == WH_OK ? wh__pg_notify(c, u->s->channel, "w") : rc;
}

/* Claims whose commit may have happened unseen are handed back to every engine (this one
 * included): they were never loaded here. */
static void unfix(wh__pg_store *s)
{
    pthread_mutex_lock(&s->fix_mu);
    struct wh__pg_fix *fix = s->fix;
    size_t n = s->n_fix;
    s->fix = NULL;
    s->n_fix = s->cap_fix = 0;
    pthread_mutex_unlock(&s->fix_mu);
    if (!n)
        return;
    unfix_args u = {.s = s, .events = text_array(fix[0].event_id, sizeof *fix, n),
                    .endpoints = text_array(fix[0].endpoint_id, sizeof *fix, n)};
    int rc = u.events && u.endpoints ? wh__pg_write(&s->conn, hand_back, &u, NULL) : WH_ERR_NOMEM;
    free(u.events);
    free(u.endpoints);
    if (rc != WH_OK) {
        for (size_t i = 0; i < n; i++)
            wh__pg_fix_add(s, fix[i].event_id, fix[i].endpoint_id);
    } else {
        __atomic_or_fetch(&s->conn.notes, WH__PG_NOTE_WORK, __ATOMIC_ACQ_REL);
    }
    free(fix);
}

static int claim(wh__store *st, int64_t now_ms, bool all, wh__claim_cb cb, void *ud)
{
    wh__pg_store *s = S(st);
    if (!s->engine_id[0] || s->read_only)
        return WH_OK;
    unfix(s);
    bool work = wh__pg_take_notes(&s->conn, WH__PG_NOTE_WORK) != 0;
    int64_t now_us = wh__mono_us();
    if (!all && !work && now_us - s->last_claim_check_us < CLAIM_CHECK_US)
        return WH_OK;
    s->last_claim_check_us = now_us;
    claim_args a = {.s = s, .now_ms = now_ms, .cb = cb, .ud = ud};
    key_list done = {0}; /* committed by the batches before */
    int rc = wh__pg_read(&s->conn, find_claimable, &a);
    /* batch after batch (a transaction each) until every candidate was seen once */
    while (rc == WH_OK && a.any) {
        bool unknown = false;
        /* never made twice: the engine has been asked about each row */
        rc = wh__pg_write_once(&s->conn, take, &a, &unknown);
        if (rc != WH_OK) {
            /* the engine acts on a claim only when the whole of it worked: what earlier
             * batches committed (and this one may have) goes back to every engine */
            for (size_t i = 0; i < done.n; i++)
                wh__pg_fix_add(s, done.v[i].event_id, done.v[i].endpoint_id);
            for (size_t i = 0; unknown && i < a.kept.n; i++)
                wh__pg_fix_add(s, a.kept.v[i].event_id, a.kept.v[i].endpoint_id);
            break;
        }
        for (size_t i = 0; i < a.kept.n; i++)
            if (!push_key(&a, &done, a.kept.v[i].seq, a.kept.v[i].event_id, a.kept.v[i].endpoint_id))
                break;
        free(a.gone);
        a.gone = NULL;
        if (a.rows < CLAIM_BATCH)
            break;
    }
    free(done.v);
    free(a.kept.v);
    free(a.left.v);
    free(a.gone);
    return rc;
}

static int changed(wh__store *st, bool *out)
{
    int rc = wh__pg_pump(&S(st)->conn);
    *out = wh__pg_take_notes(&S(st)->conn, WH__PG_NOTE_ENDPOINTS) != 0;
    return rc;
}

/* ---- endpoints ------------------------------------------------------------------------- */

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

static int endpoint_insert(wh__store *st, const wh__endpoint_row *row)
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

static int endpoint_delete(wh__store *st, const char *id)
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

static int endpoints_load(wh__store *st, wh__endpoint_row_cb cb, void *ud)
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

static int endpoint_change(wh__store *st, const wh__endpoint_change *c, wh__endpoint_row_cb cb,
                           void *ud)
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

static int endpoint_upsert(wh__store *st, const wh__endpoint_row *row, bool secret_given,
                           wh__endpoint_row_cb cb, void *ud)
{
    upsert_args a = {.s = S(st), .row = row, .secret_given = secret_given};
    int rc = wh__pg_write(&S(st)->conn, upsert_endpoint, &a, NULL);
    if (rc == WH_OK && cb)
        cb(ud, &a.copy.row);
    row_copy_free(&a.copy);
    return rc;
}

/* ---- deliveries queued again -------------------------------------------------------------- */

typedef struct {
    wh__pg_store *s;
    wh__delivery_row *d;
    size_t n;
    int64_t now_ms;
} deliveries_args;

static int add_deliveries(wh__pg *c, void *arg)
{
    deliveries_args *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        wh__delivery_row *d = &a->d[i];
        /* a delivery pending already, here or in another engine, stays as it is */
        int rc = wh__pg_run(c, "delivery",
                            "INSERT INTO deliveries(event_seq, endpoint_id, event_id, state, attempts,"
                            " next_ms, skip_only, updated_ms, claimed_by, redelivery)"
                            " VALUES($1, $2, $3, 0, 0, $4, false, $5, $6, true)"
                            " ON CONFLICT(event_seq, endpoint_id) DO UPDATE SET state = 0, attempts = 0,"
                            " next_ms = $4, skip_only = false, updated_ms = $5, claimed_by = $6,"
                            " redelivery = true, run_id = NULL WHERE deliveries.state <> 0",
                            NULL, NULL, "ittiit", d->event_seq, d->endpoint_id, d->event_id,
                            d->next_ms, a->now_ms, a->s->engine_id);
        if (rc != WH_OK)
            return rc;
        d->accepted = wh__pg_changes(c) > 0;
    }
    return WH_OK;
}

static int deliveries_add(wh__store *st, wh__delivery_row *d, size_t n, int64_t now_ms)
{
    deliveries_args a = {S(st), d, n, now_ms};
    return n ? wh__pg_write(&S(st)->conn, add_deliveries, &a, NULL) : WH_OK;
}

/* ---- the log ------------------------------------------------------------------------------ */

typedef struct {
    const wh_log_filter *f;
    wh__record **rows;
    size_t n, cap, limit;
    bool oom;
} query_args;

static int attempt_row(void *ud, const PGresult *res, int i)
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
    snprintf(r->event_id, sizeof r->event_id, "%s", PQgetvalue(res, i, 0));
    snprintf(r->event_type, sizeof r->event_type, "%s", PQgetvalue(res, i, 1));
    snprintf(r->endpoint_id, sizeof r->endpoint_id, "%s", PQgetvalue(res, i, 2));
    r->url = wh__strdup(PQgetvalue(res, i, 3));
    r->error = wh__strdup(wh__pg_text(res, i, 7));
    size_t blen = 0;
    if (!PQgetisnull(res, i, 11)) {
        unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 11), &blen);
        if (raw && (r->body = malloc(blen + 1))) {
            memcpy(r->body, raw, blen);
            r->body[blen] = '\0';
        }
        PQfreemem(raw);
    }
    bool ids = wh__record_set_ids(r, wh__pg_text(res, i, 13), wh__pg_text(res, i, 14));
    if (!r->url || (!PQgetisnull(res, i, 7) && !r->error) ||
        (!PQgetisnull(res, i, 11) && !r->body) || !ids) {
        /* a record with a part missing is never handed out as if it were whole */
        wh__record_free(r);
        q->oom = true;
        return 1;
    }
    r->a = (wh_attempt){
        .event_id = r->event_id,
        .event_type = r->event_type,
        .endpoint_id = r->endpoint_id,
        .url = r->url,
        .attempt = (int)wh__pg_int(res, i, 4),
        .outcome = (wh_outcome)wh__pg_int(res, i, 5),
        .http_status = (int)wh__pg_int(res, i, 6),
        .error = r->error,
        .started_ms = wh__pg_int(res, i, 8),
        .duration_us = wh__pg_int(res, i, 9),
        .next_attempt_ms = wh__pg_int(res, i, 10),
        .response_body = r->body,
        .response_len = r->body ? blen : 0,
        .redelivery = wh__pg_bool(res, i, 12),
        .run_id = r->run_id,
        .task_id = r->task_id,
    };
    q->rows[q->n++] = r;
    return 0;
}

/* One statement per shape of filter (log_where.h), made once: the connection prepares a
 * statement once, known by the address of its text. */
static char log_sql[WH__LOG_SHAPES][WH__LOG_WHERE_MAX + 300];
static pthread_once_t log_sql_once = PTHREAD_ONCE_INIT;

static void make_log_sql(void)
{
    for (int shape = 0; shape < WH__LOG_SHAPES; shape++) {
        char where[WH__LOG_WHERE_MAX];
        wh__log_where(where, sizeof where, shape, true);
        snprintf(log_sql[shape], sizeof log_sql[shape],
                 "SELECT event_id, event_type, endpoint_id, url, attempt, outcome, http_status,"
                 " error, started_ms, duration_us, next_attempt_ms, response_body, redelivery,"
                 " run_id, task_id FROM attempts WHERE %s ORDER BY started_ms DESC, id DESC"
                 " LIMIT $7",
                 where);
    }
}

static int run_log_query(wh__pg *c, void *arg)
{
    query_args *q = arg;
    const wh_log_filter *f = q->f;
    pthread_once(&log_sql_once, make_log_sql);
    int rc = wh__pg_run(c, "log query", log_sql[wh__log_shape(f)], attempt_row, q, "tttiiii",
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
    int rc = wh__pg_read(&S(st)->conn, run_log_query, &q);
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

static int event_row(void *ud, const PGresult *r, int i)
{
    find_args *a = ud;
    a->event_cb(a->ud, wh__pg_int(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                (size_t)PQgetlength(r, i, 2), PQgetvalue(r, i, 3));
    a->found++;
    return 0;
}

static int run_find_event(wh__pg *c, void *arg)
{
    find_args *a = arg;
    a->found = 0;
    return wh__pg_run(c, "event",
                      "SELECT e.seq, e.event_type, e.body, d.endpoint_id FROM events e"
                      " JOIN deliveries d ON d.event_seq = e.seq WHERE e.id = $1"
                      " ORDER BY d.endpoint_id",
                      event_row, a, "t", a->event_id);
}

static int find_event(wh__store *st, const char *event_id,
                      void (*cb)(void *ud, int64_t seq, const char *type, const char *body,
                                 size_t len, const char *endpoint_id),
                      void *ud)
{
    find_args a = {.event_id = event_id, .event_cb = cb, .ud = ud};
    int rc = wh__pg_read(&S(st)->conn, run_find_event, &a);
    return rc == WH_OK ? a.found : rc;
}

static int failed_row(void *ud, const PGresult *r, int i)
{
    find_args *a = ud;
    a->failed_cb(a->ud, PQgetvalue(r, i, 0));
    a->found++;
    return 0;
}

static int run_find_failed(wh__pg *c, void *arg)
{
    find_args *a = arg;
    a->found = 0;
    return wh__pg_run(c, "deliveries",
                      "SELECT DISTINCT event_id FROM deliveries WHERE endpoint_id = $1"
                      " AND state IN (2, 3) AND updated_ms >= $2 ORDER BY event_id",
                      failed_row, a, "ti", a->endpoint_id, a->since_ms);
}

static int find_failed(wh__store *st, const char *endpoint_id, int64_t since_ms,
                       void (*cb)(void *ud, const char *event_id), void *ud)
{
    find_args a = {.endpoint_id = endpoint_id, .since_ms = since_ms, .failed_cb = cb, .ud = ud};
    int rc = wh__pg_read(&S(st)->conn, run_find_failed, &a);
    return rc == WH_OK ? a.found : rc;
}

/* ---- several engines: ordering per run, rate limits ------------------------------------ */

typedef struct {
    wh__pg_store *s;
    wh__order_query *q;
    wh__rate_ask *r;
    size_t n;
    bool oom;
} shared_args;

static int blocked_row(void *ud, const PGresult *r, int i)
{
    shared_args *a = ud;
    int64_t k = wh__pg_int(r, i, 0) - 1; /* ordinality counts from 1 */
    if (k >= 0 && (size_t)k < a->n)
        a->q[k].blocked = true;
    return 0;
}

/* One statement for every query: which of them has an earlier delivery of its endpoint and
 * run pending that another engine (or none) holds. */
static int ask_order(wh__pg *c, void *arg)
{
    shared_args *a = arg;
    wh__pg_arr eps = {0}, runs = {0}, seqs = {0};
    for (size_t i = 0; i < a->n; i++) {
        a->q[i].blocked = false;
        wh__pg_arr_text(&eps, a->q[i].endpoint_id);
        wh__pg_arr_text(&runs, a->q[i].run_id);
        wh__pg_arr_int(&seqs, a->q[i].event_seq);
    }
    const char *ev = wh__pg_arr_end(&eps), *rv = wh__pg_arr_end(&runs), *sv = wh__pg_arr_end(&seqs);
    int rc = ev && rv && sv
                 ? wh__pg_run(c, "order",
                              "SELECT k.i FROM unnest($1::bigint[], $2::text[], $3::text[])"
                              " WITH ORDINALITY AS k(seq, ep, run, i) WHERE EXISTS(SELECT 1 FROM deliveries d"
                              " WHERE d.endpoint_id = k.ep AND d.run_id = k.run AND d.event_seq < k.seq"
                              " AND d.state = 0 AND d.claimed_by IS DISTINCT FROM $4)",
                              blocked_row, a, "tttt", sv, ev, rv, a->s->engine_id)
                 : wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    wh__pg_arr_free(&eps);
    wh__pg_arr_free(&runs);
    wh__pg_arr_free(&seqs);
    return rc;
}

static int order_blocked(wh__store *st, wh__order_query *q, size_t n)
{
    shared_args a = {.s = S(st), .q = q, .n = n};
    if (!n || !S(st)->engine_id[0])
        return WH_OK;
    return wh__pg_read(&S(st)->conn, ask_order, &a);
}

static int bucket_row(void *ud, const PGresult *r, int i)
{
    wh__rate_ask *ask = ud;
    double tokens = strtod(PQgetvalue(r, i, 0), NULL);
    ask->granted = (int)wh__pg_int(r, i, 1);
    /* until the next whole token, from what is left */
    ask->wait_ms = tokens >= 1.0 ? 0 : (int64_t)((1.0 - tokens) * 1000.0 / ask->rate_per_s) + 1;
    return 1;
}

/* One atomic statement per endpoint: the row is refilled to the server's clock (every engine
 * counts with the same one), capped at a second's worth, and the grant taken from it; a
 * bucket never used is full. */
static int take_tokens(wh__pg *c, void *arg)
{
    shared_args *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        wh__rate_ask *r = &a->r[i];
        char rate[40], burst[40];
        snprintf(rate, sizeof rate, "%.17g", r->rate_per_s);
        snprintf(burst, sizeof burst, "%.17g", wh__rate_shared_burst(r->rate_per_s));
        r->granted = 0;
        r->wait_ms = 0;
        int rc = wh__pg_run(
            c, "rate",
            "WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms)"
            " INSERT INTO rate_buckets AS b(endpoint_id, tokens, updated_ms, granted)"
            " SELECT $1, $3::float8 - least($4::int, floor($3::float8)), now.ms,"
            " least($4::int, floor($3::float8))::int FROM now"
            " ON CONFLICT(endpoint_id) DO UPDATE SET"
            " granted = least($4::int, floor(least($3::float8, b.tokens"
            "  + greatest(0, excluded.updated_ms - b.updated_ms) * $2::float8 / 1000)))::int,"
            " tokens = least($3::float8, b.tokens + greatest(0, excluded.updated_ms - b.updated_ms)"
            "  * $2::float8 / 1000) - least($4::int, floor(least($3::float8, b.tokens"
            "  + greatest(0, excluded.updated_ms - b.updated_ms) * $2::float8 / 1000))),"
            " updated_ms = greatest(b.updated_ms, excluded.updated_ms)"
            " RETURNING tokens, granted",
            bucket_row, r, "tttd", r->endpoint_id, rate, burst, r->want);
        if (rc != WH_OK)
            return rc;
    }
    return WH_OK;
}

static int rate_take(wh__store *st, wh__rate_ask *r, size_t n)
{
    shared_args a = {.s = S(st), .r = r, .n = n};
    if (!n || S(st)->read_only)
        return WH_OK;
    return wh__pg_write(&S(st)->conn, take_tokens, &a, NULL);
}

/* ---- housekeeping ------------------------------------------------------------------------- */

typedef struct {
    int64_t before_ms;
    int64_t dedup_before_ms; /* an event with its caller's id stays until then */
    int64_t attempts, events; /* deleted by the last batch */
} prune_args;

static int prune(wh__pg *c, void *arg)
{
    prune_args *p = arg;
    int rc = wh__pg_run(c, "prune",
                        "DELETE FROM attempts WHERE id IN (SELECT id FROM attempts"
                        " WHERE started_ms < $1 ORDER BY started_ms LIMIT $2)",
                        NULL, NULL, "id", p->before_ms, PRUNE_BATCH);
    p->attempts = wh__pg_changes(c);
    /* an event goes with its deliveries once none is pending and it is old enough */
    if (rc == WH_OK)
        rc = wh__pg_run(c, "prune",
                        "WITH old AS (SELECT e.seq FROM events e WHERE e.created_ms < $1"
                        "  AND NOT EXISTS(SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq"
                        "  AND d.state = 0) AND (e.dedup_id IS NULL OR e.created_ms < $3)"
                        "  ORDER BY e.created_ms LIMIT $2),"
                        " gone AS (DELETE FROM deliveries d USING old WHERE d.event_seq = old.seq)"
                        " DELETE FROM events e USING old WHERE e.seq = old.seq",
                        NULL, NULL, "idi", p->before_ms, PRUNE_BATCH, p->dedup_before_ms);
    p->events = wh__pg_changes(c);
    return rc;
}

static int upkeep(wh__store *st, int64_t now_ms, int64_t retention_ms)
{
    wh__pg_store *s = S(st);
    if (s->read_only || retention_ms <= 0 || now_ms - s->last_prune_ms < PRUNE_EVERY_MS)
        return WH_OK;
    /* pruning keeps up with the write rate: batches until nothing old is left, within a
     * time budget; whatever is left is taken up at the next call */
    int64_t start = wh__mono_us();
    prune_args p = {.before_ms = now_ms - retention_ms,
                    .dedup_before_ms = now_ms - s->dedup_window_ms};
    bool behind;
    do {
        int rc = wh__pg_write(&s->conn, prune, &p, NULL);
        if (rc != WH_OK)
            return rc;
        behind = p.attempts >= PRUNE_BATCH || p.events >= PRUNE_BATCH;
    } while (behind && wh__mono_us() - start < PRUNE_BUDGET_US);
    if (!behind)
        s->last_prune_ms = now_ms;
    return WH_OK;
}

const wh__store_ops wh__pg_ops = {
    .version = 6,
    .name = "postgresql",
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
    .event_add = wh__pg_event_add,
    .events_add = wh__pg_events_add,
    .deliveries_add = deliveries_add,
    .results = wh__pg_results,
    .log_query = log_query,
    .find_event = find_event,
    .find_failed = find_failed,
    .upkeep = upkeep,
    .watch_ms = WATCH_MS,
    .get_meta = wh__pg_get_meta,
    .queue_redelivery = wh__pg_queue_redelivery,
    .queue_recovery = wh__pg_queue_recovery,
    .endpoint_stats = wh__pg_endpoint_stats,
    .attempt_stats = wh__pg_attempt_stats,
    .order_blocked = order_blocked,
    .rate_take = rate_take,
    .endpoint_upsert = endpoint_upsert,
};
