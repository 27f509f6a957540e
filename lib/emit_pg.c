/* wh_emit_pg: an event written on the host's own connection, inside the host's open
 * transaction, so that it exists if and only if that transaction commits. Its deliveries
 * carry nobody's claim; the NOTIFY that wakes the engines is transactional too, so they look
 * only once the event is there to be claimed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "error.h"
#include "payload.h"
#include "pg_array.h"
#include "registry.h"
#include "store_pg.h"
#include "util.h"
#include "webhook/webhook_pg.h" /* its WH_API: exported from the shared library */

/* The targets of an event as two array literals: endpoint ids, and whether each is only
 * logged SKIPPED (the endpoint is disabled). Under the context lock. */
static int targets(wh_ctx *ctx, const char *type, char **ids, char **skips, int *sendable,
                   size_t *n_out)
{
    size_t n;
    wh__endpoint *const *eps = wh__registry_match(ctx->reg, wh__registry_type_index(ctx->reg, type), &n);
    wh__pg_arr id_arr = {0}, skip_arr = {0};
    for (size_t i = 0; i < n; i++) {
        wh__pg_arr_text(&id_arr, eps[i]->id);
        wh__pg_arr_bool(&skip_arr, !eps[i]->enabled);
        *sendable += eps[i]->enabled;
    }
    const char *ie = wh__pg_arr_end(&id_arr), *se = wh__pg_arr_end(&skip_arr);
    if (!ie || !se) {
        wh__pg_arr_free(&id_arr);
        wh__pg_arr_free(&skip_arr);
        return WH_ERR_NOMEM;
    }
    /* the caller's to free; "{}" when nobody subscribes */
    *ids = id_arr.buf;
    *skips = skip_arr.buf;
    *n_out = n;
    return WH_OK;
}

static int exec_simple(PGconn *conn, const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? WH_OK : WH_ERR_STORE;
}

/* One statement of the emit, in the host's transaction; *rows (may be NULL): rows returned,
 * the last one's duplicate flag and sendable read into *duplicate and *sendable. */
static int run_step(PGconn *conn, const char *schema, wh__pg_emit_step step, int n,
                    const char *const *values, int *rows, bool *duplicate, int *sendable)
{
    char *sql = wh__pg_emit_sql(schema, step);
    if (!sql)
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
    PGresult *r = PQexecParams(conn, sql, n, NULL, values, NULL, NULL, 0);
    free(sql);
    int st = PQresultStatus(r), rc = WH_OK;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        const char *why = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        rc = wh__fail(NULL, 0, WH_ERR_STORE, "store: event: %s", why ? why : PQerrorMessage(conn));
    } else if (rows) {
        *rows = PQntuples(r);
        if (*rows > 0) {
            *duplicate = PQgetvalue(r, 0, 1)[0] == 't';
            *sendable = atoi(PQgetvalue(r, 0, 2));
        }
    }
    PQclear(r);
    return rc;
}

int wh_emit_pg(wh_ctx *ctx, PGconn *conn, const wh_event *ev, char event_id_out[WH_ID_MAX])
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    if (!conn || PQstatus(conn) != CONNECTION_OK)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "conn: NULL or not connected");
    const char *schema, *channel;
    if (!wh__pg_store_names(ctx->store, &schema, &channel))
        return wh__fail(NULL, 0, WH_ERR_STATE, "wh_emit_pg: the context's store is not PostgreSQL");
    if (PQtransactionStatus(conn) != PQTRANS_INTRANS)
        return wh__fail(NULL, 0, WH_ERR_STATE,
                        "wh_emit_pg: conn has no open transaction (BEGIN first, or use wh_emit)");
    int64_t now = wh__now_ms(ctx);
    char id[WH_ID_MAX];
    char *body = NULL;
    size_t body_len = 0;
    int rc = WH_OK;
    if (ev && ev->id)
        snprintf(id, sizeof id, "%s", ev->id); /* one too long is refused by the build */
    else
        rc = wh__new_id("evt_", id);
    if (rc == WH_OK)
        rc = wh__payload_build(ctx->reg, ev, id, now, &body, &body_len, NULL, 0);
    if (rc != WH_OK)
        return rc;
    bool dedup = ev->id && ctx->conf->dedup_window_ms > 0;
    char *ids = NULL, *skips = NULL;
    int sendable = 0;
    size_t n = 0;
    pthread_mutex_lock(&ctx->lock);
    rc = targets(ctx, ev->event_type, &ids, &skips, &sendable, &n);
    pthread_mutex_unlock(&ctx->lock);
    if (rc != WH_OK) {
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
    } else if (n || dedup) {
        /* a failure must not abort the host's transaction: the statements run in a savepoint */
        char created[24], after[24], count[16];
        snprintf(created, sizeof created, "%lld", (long long)now);
        snprintf(after, sizeof after, "%lld", (long long)(now - ctx->conf->dedup_window_ms));
        snprintf(count, sizeof count, "%d", sendable);
        const char *values[10] = {id, ev->event_type, body, created, ids, skips, channel,
                                  dedup ? id : NULL, count, ev->run_id};
        const char *expire[2] = {id, after}, *find[1] = {id};
        int rows = 0;
        bool duplicate = false;
        if (exec_simple(conn, "SAVEPOINT wh_emit_pg") != WH_OK) {
            rc = wh__fail(NULL, 0, WH_ERR_STORE, "wh_emit_pg: %s", PQerrorMessage(conn));
        } else {
            if (dedup)
                rc = run_step(conn, schema, WH__PG_EMIT_EXPIRE, 2, expire, NULL, NULL, NULL);
            if (rc == WH_OK)
                rc = run_step(conn, schema, WH__PG_EMIT_INSERT, 10, values, &rows, &duplicate,
                              &sendable);
            /* another transaction wrote the id and committed while this one waited for it:
             * a statement of its own sees that */
            if (rc == WH_OK && !rows && dedup)
                rc = run_step(conn, schema, WH__PG_EMIT_FIND, 1, find, &rows, &duplicate,
                              &sendable);
            if (rc == WH_OK && rows != 1)
                rc = wh__fail(NULL, 0, WH_ERR_STORE, "store: event: no row written");
            if (rc != WH_OK)
                exec_simple(conn, "ROLLBACK TO SAVEPOINT wh_emit_pg");
            exec_simple(conn, "RELEASE SAVEPOINT wh_emit_pg");
        }
    }
    free(body);
    free(ids);
    free(skips);
    if (rc != WH_OK)
        return rc;
    if (event_id_out)
        memcpy(event_id_out, id, WH_ID_MAX);
    return sendable;
}
