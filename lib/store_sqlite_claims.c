/* The SQLite store's leases and claims: an engine's lease, renewed by its heartbeat and
 * ended by its release; deliveries claimed from nobody and, in the same write, from engines
 * found dead, whose logs of emits are stored first (store_sqlite_log.c). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "event_log.h"
#include "store_sqlite.h"

#define S(st) ((wh__sqlite_store *)(st))

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
                      "INSERT INTO engines(id, host, pid, started_ms, lease_until_ms, log_folded,"
                      " emit_log) VALUES(?, ?, ?, ?, ?, ?, ?)",
                      NULL, NULL, "ttiiiid", a->s->engine_id, a->s->host, (int64_t)getpid(),
                      a->now_ms, a->now_ms + a->s->lease_ms,
                      __atomic_load_n(&a->s->log_folded, __ATOMIC_RELAXED), a->s->log != NULL);
}

int wh__sqlite_heartbeat(wh__store *st, int64_t now_ms, bool *lost)
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

int wh__sqlite_release(wh__store *st)
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
    const char **log_owners; /* the engine of each */
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
    /* taken over already while it lived, and nothing new since */
    if (wh__sqlite_log_unchanged(a->s, id))
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
    free(a->log_owners);
    a->logs = rc == WH_OK && a->n_dead ? calloc(a->n_dead, sizeof *a->logs) : NULL;
    a->log_owners = a->logs ? calloc(a->n_dead, sizeof *a->log_owners) : NULL;
    if (rc == WH_OK && a->n_dead && !a->log_owners)
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    for (size_t i = 0; rc == WH_OK && i < a->n_dead; i++) {
        struct wh__event_log *held = NULL;
        bool log_done = false;
        rc = wh__sqlite_fold_dead_log(c, a->s, a->dead[i], &held, &log_done);
        if (held) {
            a->log_owners[a->n_logs] = a->dead[i];
            a->logs[a->n_logs++] = held;
        }
        if (rc == WH_OK)
            rc = take_from(c, a, a->dead[i], true);
        /* the row stays while its log may still get records (its writer lives) or could not
         * be read: it is looked at again at the next claim */
        if (rc == WH_OK && log_done)
            rc = wh__sq_run(c, "engines", "UPDATE engines SET emit_log = 0 WHERE id = ?", NULL,
                            NULL, "t", a->dead[i]);
        if (rc == WH_OK && log_done)
            rc = wh__sq_run(c, "engines", "DELETE FROM engines WHERE id = ?", NULL, NULL, "t",
                            a->dead[i]);
    }
    return rc;
}

int wh__sqlite_claim(wh__store *st, int64_t now_ms, bool all, wh__claim_cb cb, void *ud)
{
    wh__sqlite_store *s = S(st);
    if (!s->engine_id[0] || s->read_only)
        return WH_OK;
    claim_args a = {.s = s, .now_ms = now_ms, .all = all, .cb = cb, .ud = ud};
    /* looked for under a read lock first: most of the time there is nothing to take */
    int rc = all ? WH_OK : wh__sq_read(&s->conn, find_claimable, &a);
    if (rc == WH_OK && (all || a.unclaimed || a.n_dead))
        rc = wh__sq_write(&s->conn, take, &a);
    for (size_t i = 0; i < a.n_logs; i++) {
        /* a write rolled back remembers nothing: its logs are read again */
        if (rc == WH_OK)
            wh__sqlite_log_read_live(s, a.log_owners[i], a.logs[i]);
        wh__event_log_close(a.logs[i], rc == WH_OK); /* stored: gone; else read again */
    }
    free(a.logs);
    free(a.log_owners);
    free(a.dead);
    free(a.kept);
    free(a.kept_events);
    free(a.left);
    return rc;
}
