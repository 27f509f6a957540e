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
/* Records read by a log query: gathered in the store's transaction, handed over after it. */
typedef struct wh__record_list {
    wh__record **rows;
    size_t n, cap;
    bool oom; /* a row could not be kept whole: the query fails */
} wh__record_list;
/* Keeps a copy of the attempt as a store's row gave it (every string copied; its body too
 * when response_body is not NULL); false, and oom set, when out of memory: a record with a
 * part missing is never kept. */
bool wh__record_list_add(wh__record_list *l, const wh_attempt *a);
/* Hands each record to cb when rc is WH_OK, then frees them all; the count, or rc. */
int wh__record_list_hand_over(wh__record_list *l, int rc,
                              void (*cb)(void *ud, const wh_attempt *a), void *ud);
/* A JSON-lines file sink; NULL and errstr on failure. */
int wh__file_sink_open(const char *path, wh_log_sink *out, char *errstr, size_t errlen);
/* One attempt as a JSON object on one line (no newline); malloc'd. */
char *wh__attempt_json(const wh_attempt *a);

#endif
