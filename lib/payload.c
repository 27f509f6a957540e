/* The one JSON body of an event: metadata only, never end-user data. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "payload.h"
#include "error.h"
#include "registry.h"
#include "util.h"

void wh__format_rfc3339_ms(int64_t ms, char out[32])
{
    time_t secs = (time_t)(ms / 1000);
    int frac = (int)(ms % 1000);
    if (frac < 0) {
        frac += 1000;
        secs -= 1;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", frac);
}

static int check_field(const char *name, const char *v, char *errstr, size_t errlen)
{
    if (!v)
        return wh__fail(errstr, errlen, WH_ERR_INVALID, "%s: is required", name);
    const char *problem = wh__text_problem(v, WH__TEXT_MAX);
    if (problem)
        return wh__fail(errstr, errlen, WH_ERR_INVALID, "%s: %s (printable UTF-8, 1..%d bytes)",
                        name, problem, WH__TEXT_MAX);
    return WH_OK;
}

int wh__payload_build(const wh__registry *r, const wh_event *ev, const char *event_id,
                      int64_t now_ms, char **body_out, size_t *len_out, char *errstr,
                      size_t errlen)
{
    if (!ev)
        return wh__fail(errstr, errlen, WH_ERR_INVALID, "event: is NULL");
    int rc = WH__RESERVED_CHECK(ev, "wh_event");
    if (rc != WH_OK)
        return wh__pass_error(errstr, errlen, rc);
    const char *problem = ev->id ? wh__event_id_problem(ev->id) : NULL;
    if (problem)
        return wh__fail(errstr, errlen, WH_ERR_INVALID, "id: %s", problem);
    if (!ev->event_type)
        return wh__fail(errstr, errlen, WH_ERR_INVALID, "event_type: is required");
    if (wh__registry_type_index(r, ev->event_type) < 0)
        return wh__fail(errstr, errlen, WH_ERR_INVALID,
                        "event_type: \"%.64s\" is not a known event type (see event_types.extra)",
                        ev->event_type);
    if (wh__is_op_type(ev->event_type))
        return wh__fail(errstr, errlen, WH_ERR_INVALID,
                        "event_type: \"%.64s\" is an operational event, emitted by the library only",
                        ev->event_type);
    if ((rc = check_field("run_id", ev->run_id, errstr, errlen)) ||
        (rc = check_field("status", ev->status, errstr, errlen)))
        return rc;
    bool is_task = strncmp(ev->event_type, "task_run.", 9) == 0;
    bool is_workflow = strncmp(ev->event_type, "workflow_run.", 13) == 0;
    if (is_task && (rc = check_field("task_id", ev->task_id, errstr, errlen)))
        return rc;
    if (is_workflow && ev->task_id)
        return wh__fail(errstr, errlen, WH_ERR_INVALID,
                        "task_id: must be NULL for %s events", ev->event_type);
    if (!is_task && !is_workflow && ev->task_id &&
        (rc = check_field("task_id", ev->task_id, errstr, errlen)))
        return rc;
    if (ev->timestamp_ms < 0 || ev->timestamp_ms > 253402300799999LL)
        return wh__fail(errstr, errlen, WH_ERR_INVALID,
                        "timestamp_ms: must be 0 (now) or a time between 1970 and 9999");

    char when[32];
    wh__format_rfc3339_ms(ev->timestamp_ms ? ev->timestamp_ms : now_ms, when);
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "id", event_id) ||
        !cJSON_AddStringToObject(o, "event_type", ev->event_type) ||
        !cJSON_AddStringToObject(o, "run_id", ev->run_id) ||
        !(ev->task_id ? cJSON_AddStringToObject(o, "task_id", ev->task_id)
                      : cJSON_AddNullToObject(o, "task_id")) ||
        !cJSON_AddStringToObject(o, "status", ev->status) ||
        !cJSON_AddStringToObject(o, "timestamp", when)) {
        cJSON_Delete(o);
        return wh__fail(errstr, errlen, WH_ERR_NOMEM, "event: out of memory");
    }
    /* printed into a stack buffer (every field is bounded, so it always fits), then copied
     * once at its exact size: emits then allocate the same sizes again and again */
    char buf[WH__BODY_MAX];
    int printed = cJSON_PrintPreallocated(o, buf, (int)sizeof buf, 0);
    cJSON_Delete(o);
    size_t len = printed ? strlen(buf) : 0;
    char *body = printed ? malloc(len + 1) : NULL;
    if (!body)
        return wh__fail(errstr, errlen, WH_ERR_NOMEM, "event: out of memory");
    memcpy(body, buf, len + 1);
    *body_out = body;
    *len_out = len;
    return WH_OK;
}

int wh__payload_build_op(const char *event_id, const char *type, const char *status,
                         const char *endpoint_id, const char *about_event_id, const char *reason,
                         size_t reason_max, int64_t time_ms, char **body_out, size_t *len_out)
{
    char cut[WH__TEXT_MAX + 1];
    if (reason_max > WH__TEXT_MAX)
        reason_max = WH__TEXT_MAX;
    size_t len = strlen(reason);
    if (len > reason_max) {
        len = reason_max;
        while (len && ((unsigned char)reason[len] & 0xc0) == 0x80)
            len--; /* not inside a UTF-8 sequence */
    }
    memcpy(cut, reason, len);
    cut[len] = '\0';
    char when[32];
    wh__format_rfc3339_ms(time_ms, when);
    cJSON *o = cJSON_CreateObject(), *data = cJSON_CreateObject();
    bool ok = o && data && cJSON_AddStringToObject(o, "id", event_id) &&
              cJSON_AddStringToObject(o, "event_type", type) && cJSON_AddNullToObject(o, "run_id") &&
              cJSON_AddNullToObject(o, "task_id") && cJSON_AddStringToObject(o, "status", status) &&
              cJSON_AddStringToObject(o, "timestamp", when) &&
              cJSON_AddStringToObject(data, "endpoint_id", endpoint_id) &&
              (about_event_id ? cJSON_AddStringToObject(data, "event_id", about_event_id)
                              : cJSON_AddNullToObject(data, "event_id")) &&
              cJSON_AddStringToObject(data, "reason", cut);
    if (ok && cJSON_AddItemToObject(o, "data", data))
        data = NULL;
    else
        ok = false;
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    cJSON_Delete(data);
    if (!text)
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
    /* the library frees with free(); cJSON may use hooks of its own */
    size_t n = strlen(text);
    char *body = malloc(n + 1);
    if (body)
        memcpy(body, text, n + 1);
    cJSON_free(text);
    if (!body)
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "event: out of memory");
    *body_out = body;
    *len_out = n;
    return WH_OK;
}
