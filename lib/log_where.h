/* Private to libwebhook: the WHERE clause of a durable store's log query. */
#ifndef WH_LOG_WHERE_H
#define WH_LOG_WHERE_H

#include <stdbool.h>
#include <stddef.h>

#include "webhook/webhook.h"

/* Which of the text filters a query was given: a bit each for the endpoint id, the event id
 * and the event type. A store prepares one statement per shape. */
#define WH__LOG_SHAPES 8
int wh__log_shape(const wh_log_filter *f);

/* The clause for a shape. Parameters 1..6 are, in order: endpoint id, event id, event type
 * (text or NULL), outcome bits, since_ms and until_ms (0: open). `pg`: PostgreSQL's $N with
 * casts, else SQLite's ?N. `out` needs WH__LOG_WHERE_MAX bytes. */
#define WH__LOG_WHERE_MAX 400
void wh__log_where(char *out, size_t out_len, int shape, bool pg);

#endif
