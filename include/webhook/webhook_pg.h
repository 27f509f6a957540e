/* libwebhook with a PostgreSQL store: an event written inside the host's own transaction.
 * The only libwebhook header that includes libpq's. */
#ifndef WEBHOOK_WEBHOOK_PG_H
#define WEBHOOK_WEBHOOK_PG_H

#include <libpq-fe.h>

#include "webhook/webhook.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Like wh_emit, but the event and its deliveries are written on `conn`, inside the
 * transaction the host has open on it: they exist if and only if that transaction commits
 * (and nothing is sent before). ctx must use a PostgreSQL store in the same database; the
 * engines pick the event up after the commit. Returns how many endpoints will be sent it,
 * or a negative WH_ERR_*; on failure the host's transaction is left as it was. */
WH_API int wh_emit_pg(wh_ctx *ctx, PGconn *conn, const wh_event *ev, char event_id_out[WH_ID_MAX]);

#ifdef __cplusplus
}
#endif

#endif
