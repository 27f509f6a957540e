/* The PostgreSQL store's leases and claims: an engine's lease, renewed by its heartbeat;
 * deliveries claimed in batches (FOR UPDATE SKIP LOCKED) from nobody and from dead engines;
 * claims whose commit may have happened unseen, handed back once the connection is back. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "pg_array.h"
#include "store_pg.h"
#include "util.h"

#define S(st) ((wh__pg_store *)(st))
#define CLAIM_CHECK_US 500000   /* dead engines are looked for this often */
#define CLAIM_BATCH 500

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

int wh__pg_heartbeat(wh__store *st, int64_t now_ms, bool *lost)
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

int wh__pg_release(wh__store *st)
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

int wh__pg_claim(wh__store *st, int64_t now_ms, bool all, wh__claim_cb cb, void *ud)
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
