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
    size_t cap = 3;
    for (size_t i = 0; i < n; i++)
        cap += 2 * strlen(eps[i]->id) + 3;
    *ids = malloc(cap);
    *skips = malloc(2 * n + 3);
    if (!*ids || !*skips)
        return WH_ERR_NOMEM;
    size_t len = 0;
    char *p = *skips;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        wh__pg_array_add(*ids, cap, &len, eps[i]->id);
        *p++ = eps[i]->enabled ? 'f' : 't';
        *p++ = i + 1 < n ? ',' : '}';
        *sendable += eps[i]->enabled;
    }
    if (!n)
        *p++ = '}';
    *p = '\0';
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
    int rc = wh__new_id("evt_", id);
    if (rc == WH_OK)
        rc = wh__payload_build(ctx->reg, ev, id, now, &body, &body_len, NULL, 0);
    if (rc != WH_OK)
        return rc;
    char *ids = NULL, *skips = NULL, *sql = NULL;
    int sendable = 0;
    size_t n = 0;
    pthread_mutex_lock(&ctx->lock);
    rc = targets(ctx, ev->event_type, &ids, &skips, &sendable, &n);
    pthread_mutex_unlock(&ctx->lock);
    if (rc == WH_OK && n && !(sql = wh__pg_emit_sql(schema)))
        rc = WH_ERR_NOMEM;
    if (rc != WH_OK) {
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
    } else if (n) {
        /* a failure must not abort the host's transaction: the statement runs in a savepoint */
        char created[24];
        snprintf(created, sizeof created, "%lld", (long long)now);
        const char *values[8] = {id, ev->event_type, body, created, ids, skips, channel, ev->run_id};
        if (exec_simple(conn, "SAVEPOINT wh_emit_pg") != WH_OK) {
            rc = wh__fail(NULL, 0, WH_ERR_STORE, "wh_emit_pg: %s", PQerrorMessage(conn));
        } else {
            PGresult *r = PQexecParams(conn, sql, 8, NULL, values, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
                const char *why = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
                rc = wh__fail(NULL, 0, WH_ERR_STORE, "store: event: %s",
                              why ? why : "no row written");
                exec_simple(conn, "ROLLBACK TO SAVEPOINT wh_emit_pg");
            }
            PQclear(r);
            exec_simple(conn, "RELEASE SAVEPOINT wh_emit_pg");
        }
    }
    free(body);
    free(ids);
    free(skips);
    free(sql);
    if (rc != WH_OK)
        return rc;
    if (event_id_out)
        memcpy(event_id_out, id, WH_ID_MAX);
    return sendable;
}
