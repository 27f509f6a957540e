/* The PostgreSQL store's events: an emit is one statement that writes the event and its
 * deliveries (claimed by this engine), answered after the commit so that emits of several
 * threads share a round trip; wh_emit_batch's events are one statement of arrays. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "pg_array.h"
#include "store_pg.h"

#define S(st) ((wh__pg_store *)(st))

typedef struct {
    wh__pg_store *s;
    wh__event_row *ev;
    wh__pg_arr endpoint_arr, skip_arr;
    const char *endpoints, *skips; /* their literals */
    int sendable; /* as the emit gave it */
    bool answered; /* the statement returned the event's row */
} event_args;

static int seq_row(void *ud, const PGresult *r, int i)
{
    *(int64_t *)ud = wh__pg_int(r, i, 0);
    return 1;
}

/* The event as written (duplicate false), or the one stored already under its dedup_id. */
static int emitted_row(void *ud, const PGresult *r, int i)
{
    event_args *a = ud;
    a->ev->seq = wh__pg_int(r, i, 0);
    a->ev->duplicate = wh__pg_bool(r, i, 1);
    a->ev->sendable = (int)wh__pg_int(r, i, 2);
    a->answered = true;
    return 1;
}

static int add_event(wh__pg *c, void *arg)
{
    event_args *a = arg;
    wh__event_row *ev = a->ev;
    ev->seq = 0;
    ev->duplicate = false;
    ev->sendable = a->sendable;
    a->answered = false;
    int rc = WH_OK;
    /* an id whose window has passed may be used again */
    if (ev->dedup_id)
        rc = wh__pg_run(c, "event",
                        "UPDATE events SET dedup_id = NULL WHERE dedup_id = $1 AND created_ms < $2",
                        NULL, NULL, "ti", ev->dedup_id, ev->dedup_after_ms);
    /* an engine emitting the same id at once waits on the unique index, then writes
     * nothing; the event it waited for is not in this statement's snapshot, and is read
     * after the commit */
    if (rc == WH_OK)
        rc = wh__pg_run(c, "event",
                        "WITH e AS (INSERT INTO events(id, event_type, body, created_ms, dedup_id,"
                        " sendable) VALUES($1, $2, $3, $4, $8, $9)"
                        " ON CONFLICT (dedup_id) WHERE dedup_id IS NOT NULL DO NOTHING RETURNING seq),"
                        " d AS (INSERT INTO deliveries(event_seq, endpoint_id, event_id, state,"
                        " attempts, next_ms, skip_only, updated_ms, claimed_by, run_id)"
                        " SELECT e.seq, t.ep, $1, 0, 0, $4, t.skip, $4, $7, $10"
                        " FROM e, unnest($5::text[], $6::boolean[]) AS t(ep, skip))"
                        " SELECT seq, false, $9::integer FROM e"
                        " UNION ALL SELECT seq, true, sendable FROM events WHERE dedup_id = $8"
                        " AND NOT EXISTS (SELECT 1 FROM e)",
                        emitted_row, a, "ttTittttit", ev->id, ev->type, ev->body, ev->body_len,
                        ev->created_ms, a->endpoints, a->skips, a->s->engine_id, ev->dedup_id,
                        (int64_t)a->sendable, ev->run_id);
    return rc;
}

static int find_seq(wh__pg *c, void *arg)
{
    event_args *a = arg;
    a->ev->seq = 0;
    a->answered = false;
    if (a->ev->dedup_id)
        return wh__pg_run(c, "event", "SELECT seq, true, sendable FROM events WHERE dedup_id = $1",
                          emitted_row, a, "t", a->ev->dedup_id);
    return wh__pg_run(c, "event", "SELECT seq FROM events WHERE id = $1", seq_row, &a->ev->seq,
                      "t", a->ev->id);
}

/* The event's endpoints and skip flags as two arrays, for add_event. */
static int event_args_init(event_args *a, wh__pg_store *s, wh__event_row *ev,
                           const wh__target *t, size_t n)
{
    *a = (event_args){.s = s, .ev = ev, .sendable = ev->sendable};
    for (size_t i = 0; i < n; i++) {
        wh__pg_arr_text(&a->endpoint_arr, t[i].endpoint_id);
        wh__pg_arr_bool(&a->skip_arr, t[i].skip_only);
    }
    if (!(a->endpoints = wh__pg_arr_end(&a->endpoint_arr)) ||
        !(a->skips = wh__pg_arr_end(&a->skip_arr)))
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    return WH_OK;
}

static void event_args_free(event_args *a)
{
    wh__pg_arr_free(&a->endpoint_arr);
    wh__pg_arr_free(&a->skip_arr);
}

static int event_add_alone(wh__pg_store *s, wh__event_row *ev, const wh__target *t, size_t n)
{
    event_args a;
    int rc = event_args_init(&a, s, ev, t, n);
    if (rc == WH_OK) {
        bool unknown = false;
        /* one statement whose answer is needed only after the commit: emits from several
         * threads go out together, in one round trip */
        rc = wh__pg_write_piped(&s->conn, add_event, &a, &unknown);
        if (rc == WH_OK && !a.answered) {
            /* written by an engine that emitted the same id at once, committed since */
            rc = wh__pg_read(&s->conn, find_seq, &a);
            if (rc == WH_OK && !a.answered)
                rc = wh__fail(NULL, 0, WH_ERR_STORE, "store: event %.63s: not written", ev->id);
        } else if (rc != WH_OK && unknown) {
            /* the COMMIT's answer was lost: ask again once the connection is back */
            int e = rc;
            char msg[256];
            snprintf(msg, sizeof msg, "%s", wh_last_error());
            if (wh__pg_read(&s->conn, find_seq, &a) == WH_OK) {
                /* written under the caller's id, by this emit or another: either way it is
                 * not scheduled here, and whatever this engine may hold of it goes to
                 * whichever engine claims it */
                if (ev->seq && ev->dedup_id)
                    wh__pg_fix_add(s, ev->id, NULL);
                rc = ev->seq ? WH_OK : wh__fail(NULL, 0, e, "%s", msg);
            } else {
                /* committed or not, it is not acknowledged: if it was, whichever engine looks
                 * next delivers it */
                wh__pg_fix_add(s, ev->id, NULL);
                rc = wh__fail(NULL, 0, e, "%s", msg);
            }
        }
    }
    event_args_free(&a);
    return rc;
}

/* ---- events in batches ---- */

typedef struct {
    wh__pg_store *s;
    wh__event_add *ev;
    size_t n, answered;
    event_args *one; /* with a caller's id among them: one statement each, in order */
    const char *col[9];
} events_args;

static int batch_seq_row(void *ud, const PGresult *r, int i)
{
    events_args *a = ud;
    if (a->answered < a->n)
        a->ev[a->answered++].row.seq = wh__pg_int(r, i, 0);
    return 0;
}

static int add_events(wh__pg *c, void *arg)
{
    events_args *a = arg;
    if (a->one) {
        int rc = WH_OK;
        for (size_t i = 0; i < a->n && rc == WH_OK; i++)
            rc = add_event(c, &a->one[i]);
        return rc;
    }
    a->answered = 0;
    /* the seqs are taken in the batch's order (ordering per run follows them), and each
     * event's deliveries join it by its place in the batch */
    return wh__pg_run(c, "event",
                      "WITH x AS MATERIALIZED (SELECT u.*, nextval('events_seq_seq') AS seq"
                      " FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::integer[],"
                      " $6::text[]) WITH ORDINALITY AS u(id, type, body, created, sendable, run_id, ord)),"
                      " e AS (INSERT INTO events(seq, id, event_type, body, created_ms, sendable)"
                      " SELECT seq, id, type, body, created, sendable FROM x),"
                      " d AS (INSERT INTO deliveries(event_seq, endpoint_id, event_id, state, attempts,"
                      " next_ms, skip_only, updated_ms, claimed_by, run_id)"
                      " SELECT x.seq, t.ep, x.id, 0, 0, x.created, t.skip, x.created, $10, x.run_id"
                      " FROM unnest($7::bigint[], $8::text[], $9::boolean[]) AS t(ord, ep, skip)"
                      " JOIN x ON x.ord = t.ord)"
                      " SELECT seq FROM x ORDER BY ord",
                      batch_seq_row, a, "tttttttttt", a->col[0], a->col[1], a->col[2], a->col[3],
                      a->col[4], a->col[5], a->col[6], a->col[7], a->col[8], a->s->engine_id);
}

/* ev[0..n-1] in one commit; *unknown: it failed with its COMMIT's answer lost. */
static int events_write(wh__pg_store *s, wh__event_add *ev, size_t n, bool *unknown_out)
{
    events_args a = {.s = s, .ev = ev, .n = n};
    wh__pg_arr col[9] = {0};
    bool dedup = false;
    for (size_t i = 0; i < n; i++)
        dedup |= ev[i].row.dedup_id != NULL;
    int rc = WH_OK;
    if (dedup && !(a.one = calloc(n, sizeof *a.one)))
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    for (size_t i = 0; i < n && rc == WH_OK; i++) {
        wh__event_row *r = &ev[i].row;
        r->seq = 0;
        r->duplicate = false;
        if (dedup) {
            rc = event_args_init(&a.one[i], s, r, ev[i].targets, ev[i].n_targets);
            continue;
        }
        wh__pg_arr_text(&col[0], r->id);
        wh__pg_arr_text(&col[1], r->type);
        wh__pg_arr_textn(&col[2], r->body, r->body_len);
        wh__pg_arr_int(&col[3], r->created_ms);
        wh__pg_arr_int(&col[4], r->sendable);
        wh__pg_arr_text(&col[5], r->run_id);
        for (size_t k = 0; k < ev[i].n_targets; k++) {
            wh__pg_arr_int(&col[6], (int64_t)i + 1);
            wh__pg_arr_text(&col[7], ev[i].targets[k].endpoint_id);
            wh__pg_arr_bool(&col[8], ev[i].targets[k].skip_only);
        }
    }
    for (int k = 0; k < 9 && rc == WH_OK && !dedup; k++)
        if (!(a.col[k] = wh__pg_arr_end(&col[k])))
            rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    bool unknown = false;
    if (rc == WH_OK)
        rc = wh__pg_write_piped(&s->conn, add_events, &a, &unknown);
    if (rc == WH_OK && !dedup && a.answered != n)
        rc = wh__fail(NULL, 0, WH_ERR_STORE, "store: events: not written");
    for (size_t i = 0; rc == WH_OK && dedup && i < n; i++)
        if (!a.one[i].answered) {
            /* written by an engine that emitted the same id at once, committed since */
            rc = wh__pg_read(&s->conn, find_seq, &a.one[i]);
            if (rc == WH_OK && !a.one[i].answered)
                rc = wh__fail(NULL, 0, WH_ERR_STORE, "store: event %.63s: not written", ev[i].row.id);
        }
    if (rc != WH_OK && unknown)
        /* committed or not, none is acknowledged: if they were, whichever engine looks
         * next delivers them */
        for (size_t i = 0; i < n; i++)
            wh__pg_fix_add(s, ev[i].row.id, NULL);
    for (size_t i = 0; a.one && i < n; i++)
        event_args_free(&a.one[i]);
    free(a.one);
    for (int k = 0; k < 9; k++)
        wh__pg_arr_free(&col[k]);
    *unknown_out = rc != WH_OK && unknown;
    return rc;
}


int wh__pg_event_add(wh__store *st, wh__event_row *ev, const wh__target *t, size_t n)
{
    return event_add_alone(S(st), ev, t, n);
}

/* wh_emit_batch's events in one statement; a batch of one is an emit like any other. */
int wh__pg_events_add(wh__store *st, wh__event_add *ev, size_t n)
{
    bool unknown;
    return n == 1 ? wh__pg_event_add(st, &ev[0].row, ev[0].targets, ev[0].n_targets)
                  : events_write(S(st), ev, n, &unknown);
}

