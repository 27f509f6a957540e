/* Private to libwebhook: Attempt records and the JSON-lines file sink. */
#ifndef WH_LOGSINK_H
#define WH_LOGSINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

typedef struct wh__record {
    wh_attempt a; /* strings below are owned by the record */
    char event_id[WH_ID_MAX], event_type[WH_ID_MAX], endpoint_id[WH_ID_MAX];
    char *url, *error, *body, *run_id, *task_id;
} wh__record;

wh__record *wh__record_new(const wh__delivery *d, wh_outcome o, int http_status,
                           const char *error, int64_t started_ms, int64_t duration_us,
                           int64_t next_ms, const char *body, size_t body_len);
void wh__record_free(wh__record *r);
/* Sets the record's run and task ids (copies, NULL for none); false when out of memory. */
bool wh__record_set_ids(wh__record *r, const char *run_id, const char *task_id);
/* A JSON-lines file sink; NULL and errstr on failure. */
int wh__file_sink_open(const char *path, wh_log_sink *out, char *errstr, size_t errlen);
/* One attempt as a JSON object on one line (no newline); malloc'd. */
char *wh__attempt_json(const wh_attempt *a);

#endif
