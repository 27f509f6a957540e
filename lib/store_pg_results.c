/* The PostgreSQL store's outcomes: a batch of them is two statements whatever its size, the
 * deliveries' new states in one UPDATE and the attempts in one INSERT, each row set given
 * as arrays (one per column) that unnest turns back into rows. A statement costs the server
 * far more than a row of it, and outcomes come in batches of up to WH__RESULTS_BATCH. */
#include <stdlib.h>

#include "error.h"
#include "pg_array.h"
#include "store_pg.h"
#include "util.h"

#define S(st) ((wh__pg_store *)(st))

typedef struct {
    wh__pg_store *s;
    const wh__result *r;
    size_t n;
    wh__endpoint_change *c;
    size_t nc;
} results_args;

enum { D_SEQ, D_ENDPOINT, D_STATE, D_ATTEMPTS, D_NEXT, D_SKIP, D_UPDATED, D_COLUMNS };
enum {
    A_EVENT, A_TYPE, A_ENDPOINT, A_URL, A_ATTEMPT, A_OUTCOME, A_STATUS, A_ERROR, A_STARTED,
    A_DURATION, A_NEXT, A_BODY, A_REDELIVERY, A_RUN, A_TASK, A_COLUMNS
};

static void free_columns(wh__pg_arr *col, size_t n)
{
    for (size_t i = 0; i < n; i++)
        wh__pg_arr_free(&col[i]);
}

/* Written only while this engine holds the claim: an engine judged dead whose work was
 * taken over must not overwrite what the new holder does. A delivery with two outcomes in
 * the batch (a quick retry) takes the later one. */
static int update_deliveries(wh__pg *c, const results_args *ra)
{
    wh__pg_arr col[D_COLUMNS] = {0};
    size_t rows = 0;
    for (size_t i = 0; i < ra->n; i++) {
        const wh__result *r = &ra->r[i];
        if (!r->event_seq)
            continue;
        rows++;
        wh__pg_arr_int(&col[D_SEQ], r->event_seq);
        wh__pg_arr_text(&col[D_ENDPOINT], r->endpoint_id);
        wh__pg_arr_int(&col[D_STATE], r->state);
        wh__pg_arr_int(&col[D_ATTEMPTS], r->attempts);
        wh__pg_arr_int(&col[D_NEXT], r->next_ms);
        wh__pg_arr_bool(&col[D_SKIP], r->skip_only);
        wh__pg_arr_int(&col[D_UPDATED], r->attempt ? r->attempt->started_ms : wh__wall_ms());
    }
    const char *v[D_COLUMNS];
    int rc = WH_OK;
    for (int k = 0; k < D_COLUMNS && rc == WH_OK; k++)
        if (!(v[k] = wh__pg_arr_end(&col[k])))
            rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    if (rc == WH_OK && rows)
        rc = wh__pg_run_fresh(c, "delivery",
                        "UPDATE deliveries d SET state = r.state, attempts = r.attempts,"
                        " next_ms = r.next_ms, skip_only = r.skip, updated_ms = r.updated,"
                        " claimed_by = CASE WHEN r.state = 0 THEN $8 END"
                        " FROM (SELECT DISTINCT ON (seq, ep) * FROM unnest($1::bigint[], $2::text[],"
                        " $3::smallint[], $4::integer[], $5::bigint[], $6::boolean[], $7::bigint[])"
                        " WITH ORDINALITY AS u(seq, ep, state, attempts, next_ms, skip, updated, ord)"
                        " ORDER BY seq, ep, ord DESC) r"
                        " WHERE d.event_seq = r.seq AND d.endpoint_id = r.ep AND d.claimed_by = $8",
                        NULL, NULL, "tttttttt", v[D_SEQ], v[D_ENDPOINT], v[D_STATE],
                        v[D_ATTEMPTS], v[D_NEXT], v[D_SKIP], v[D_UPDATED], ra->s->engine_id);
    free_columns(col, D_COLUMNS);
    return rc;
}

/* In the order they were made: the log's ids follow it. */
static int insert_attempts(wh__pg *c, const results_args *ra)
{
    wh__pg_arr col[A_COLUMNS] = {0};
    size_t rows = 0;
    for (size_t i = 0; i < ra->n; i++) {
        const wh_attempt *a = ra->r[i].attempt;
        if (!a)
            continue;
        rows++;
        wh__pg_arr_text(&col[A_EVENT], a->event_id);
        wh__pg_arr_text(&col[A_TYPE], a->event_type);
        wh__pg_arr_text(&col[A_ENDPOINT], a->endpoint_id);
        wh__pg_arr_text(&col[A_URL], a->url ? a->url : "");
        wh__pg_arr_int(&col[A_ATTEMPT], a->attempt);
        wh__pg_arr_int(&col[A_OUTCOME], (int)a->outcome);
        wh__pg_arr_int(&col[A_STATUS], a->http_status);
        wh__pg_arr_text(&col[A_ERROR], a->error);
        wh__pg_arr_int(&col[A_STARTED], a->started_ms);
        wh__pg_arr_int(&col[A_DURATION], a->duration_us);
        wh__pg_arr_int(&col[A_NEXT], a->next_attempt_ms);
        wh__pg_arr_bytea(&col[A_BODY], a->response_body, a->response_len);
        wh__pg_arr_bool(&col[A_REDELIVERY], a->redelivery != 0);
        wh__pg_arr_text(&col[A_RUN], a->run_id);
        wh__pg_arr_text(&col[A_TASK], a->task_id);
    }
    const char *v[A_COLUMNS];
    int rc = WH_OK;
    for (int k = 0; k < A_COLUMNS && rc == WH_OK; k++)
        if (!(v[k] = wh__pg_arr_end(&col[k])))
            rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    if (rc == WH_OK && rows)
        rc = wh__pg_run(c, "attempt",
                        "INSERT INTO attempts(event_id, event_type, endpoint_id, url, attempt,"
                        " outcome, http_status, error, started_ms, duration_us, next_attempt_ms,"
                        " response_body, redelivery, run_id, task_id)"
                        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
                        " $5::integer[], $6::smallint[], $7::integer[], $8::text[], $9::bigint[],"
                        " $10::bigint[], $11::bigint[], $12::bytea[], $13::boolean[], $14::text[],"
                        " $15::text[])",
                        NULL, NULL, "ttttttttttttttt", v[A_EVENT], v[A_TYPE], v[A_ENDPOINT],
                        v[A_URL], v[A_ATTEMPT], v[A_OUTCOME], v[A_STATUS], v[A_ERROR],
                        v[A_STARTED], v[A_DURATION], v[A_NEXT], v[A_BODY], v[A_REDELIVERY],
                        v[A_RUN], v[A_TASK]);
    free_columns(col, A_COLUMNS);
    return rc;
}

static int version_row(void *ud, const PGresult *r, int i)
{
    *(int64_t *)ud = wh__pg_int(r, i, 0);
    return 1;
}

static int write_results(wh__pg *c, void *arg)
{
    results_args *ra = arg;
    int rc = update_deliveries(c, ra);
    if (rc == WH_OK)
        rc = insert_attempts(c, ra);
    if (rc != WH_OK)
        return rc;
    bool changed = false;
    for (size_t i = 0; i < ra->nc; i++) {
        if ((rc = wh__pg_apply_change(c, &ra->c[i])) != WH_OK)
            return rc;
        changed |= wh__pg_changes(c) > 0;
        ra->c[i].version = 0;
        if (ra->c[i].kind == WH__EP_DISABLE &&
            (rc = wh__pg_run(c, "endpoint", "SELECT version FROM endpoints WHERE id = $1 AND NOT enabled",
                             version_row, &ra->c[i].version, "t", ra->c[i].endpoint_id)) != WH_OK)
            return rc;
    }
    return changed ? wh__pg_notify(c, ra->s->channel, "e") : WH_OK;
}

int wh__pg_results(wh__store *st, const wh__result *r, size_t n, wh__endpoint_change *c,
                   size_t nc)
{
    results_args a = {S(st), r, n, c, nc};
    if (!n && !nc)
        return WH_OK;
    /* outcomes alone look at no answer before the commit: the batch goes in one round trip;
     * endpoint changes look at what each UPDATE changed */
    return nc ? wh__pg_write(&S(st)->conn, write_results, &a, NULL)
              : wh__pg_write_piped(&S(st)->conn, write_results, &a, NULL);
}
