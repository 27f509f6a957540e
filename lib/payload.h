/* Private to libwebhook: The one JSON body of an event. */
#ifndef WH_PAYLOAD_H
#define WH_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "registry.h"

#define WH__TEXT_MAX 255   /* ids and status in an event */
#define WH__BODY_MAX 4096  /* > the longest body: 3 fields of 255 bytes, each escaped at most 2x */

/* Checks ev (task_id rule, text limits) against type index ti; builds the body. */
int wh__payload_build(const wh__registry *r, const wh_event *ev, const char *event_id,
                      int64_t now_ms, char **body_out, size_t *len_out, char *errstr,
                      size_t errlen);
/* The body of an operational event (webhook.*): the keys of every body (run_id and task_id
 * null), and `data` with the endpoint concerned, the event given up (or null) and the reason,
 * cut to reason_max bytes at a character's end. */
int wh__payload_build_op(const char *event_id, const char *type, const char *status,
                         const char *endpoint_id, const char *about_event_id, const char *reason,
                         size_t reason_max, int64_t time_ms, char **body_out, size_t *len_out);
/* RFC 3339 UTC with milliseconds. */
void wh__format_rfc3339_ms(int64_t ms, char out[32]);

#endif
