/* Private to libwebhook: the statement of a durable store's log query. */
#ifndef WH_LOG_SQL_H
#define WH_LOG_SQL_H

#include <stdbool.h>

#include "webhook/webhook.h"

/* Which of the text filters a query was given: a bit each for the endpoint id, the event id
 * and the event type. There is one statement per shape. */
#define WH__LOG_SHAPES 8
int wh__log_shape(const wh_log_filter *f);

/* The statement for a shape, made once, so that a store's statement cache (which knows a
 * statement by the address of its text) prepares it once. Parameters 1..7 are, in order:
 * endpoint id, event id, event type (text or NULL), outcome bits, since_ms and until_ms
 * (0: open), and the limit. `pg`: PostgreSQL's $N with casts, else SQLite's ?N. */
const char *wh__log_sql(int shape, bool pg);

#endif
