/* Attempt records and the JSON-lines file sink. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "logsink.h"
#include "error.h"
#include "payload.h"
#include "registry.h"
#include "util.h"

wh__record *wh__record_new(const wh__delivery *d, wh_outcome o, int http_status,
                           const char *error, int64_t started_ms, int64_t duration_us,
                           int64_t next_ms, const char *body, size_t body_len)
{
    wh__record *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    snprintf(r->event_id, sizeof r->event_id, "%s", d->ev->id);
    snprintf(r->event_type, sizeof r->event_type, "%s", d->ev->type);
    snprintf(r->endpoint_id, sizeof r->endpoint_id, "%s", d->ep->id);
    r->url = wh__strdup(d->ep->url);
    r->error = error ? wh__strdup(error) : NULL;
    wh__record_set_ids(r, d->ev->run_id, d->ev->task_id);
    if (body && body_len) {
        r->body = malloc(body_len + 1);
        if (r->body) {
            memcpy(r->body, body, body_len);
            r->body[body_len] = '\0';
        }
    }
    r->a = (wh_attempt){
        .event_id = r->event_id,
        .event_type = r->event_type,
        .endpoint_id = r->endpoint_id,
        .url = r->url,
        .attempt = d->attempts,
        .outcome = o,
        .http_status = http_status,
        .error = r->error,
        .started_ms = started_ms,
        .duration_us = duration_us,
        .next_attempt_ms = next_ms,
        .response_body = r->body,
        .response_len = r->body ? body_len : 0,
        .redelivery = d->redelivery,
        .run_id = r->run_id,
        .task_id = r->task_id,
    };
    return r;
}

bool wh__record_set_ids(wh__record *r, const char *run_id, const char *task_id)
{
    free(r->run_id);
    free(r->task_id);
    r->run_id = run_id ? wh__strdup(run_id) : NULL;
    r->task_id = task_id ? wh__strdup(task_id) : NULL;
    r->a.run_id = r->run_id;
    r->a.task_id = r->task_id;
    return (!run_id || r->run_id) && (!task_id || r->task_id);
}

void wh__record_free(wh__record *r)
{
    if (!r)
        return;
    free(r->url);
    free(r->error);
    free(r->body);
    free(r->run_id);
    free(r->task_id);
    free(r);
}

bool wh__record_list_add(wh__record_list *l, const wh_attempt *a)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        wh__record **v = realloc(l->rows, cap * sizeof *v);
        if (!v) {
            l->oom = true;
            return false;
        }
        l->rows = v, l->cap = cap;
    }
    wh__record *r = calloc(1, sizeof *r);
    if (!r) {
        l->oom = true;
        return false;
    }
    snprintf(r->event_id, sizeof r->event_id, "%s", a->event_id ? a->event_id : "");
    snprintf(r->event_type, sizeof r->event_type, "%s", a->event_type ? a->event_type : "");
    snprintf(r->endpoint_id, sizeof r->endpoint_id, "%s", a->endpoint_id ? a->endpoint_id : "");
    r->url = wh__strdup(a->url ? a->url : "");
    r->error = wh__strdup(a->error);
    if (a->response_body && (r->body = malloc(a->response_len + 1))) {
        memcpy(r->body, a->response_body, a->response_len);
        r->body[a->response_len] = '\0';
    }
    bool ids = wh__record_set_ids(r, a->run_id, a->task_id);
    if (!r->url || (a->error && !r->error) || (a->response_body && !r->body) || !ids) {
        wh__record_free(r);
        l->oom = true;
        return false;
    }
    r->a = *a;
    r->a.event_id = r->event_id;
    r->a.event_type = r->event_type;
    r->a.endpoint_id = r->endpoint_id;
    r->a.url = r->url;
    r->a.error = r->error;
    r->a.response_body = r->body;
    r->a.response_len = r->body ? a->response_len : 0;
    r->a.run_id = r->run_id;
    r->a.task_id = r->task_id;
    l->rows[l->n++] = r;
    return true;
}

int wh__record_list_hand_over(wh__record_list *l, int rc,
                              void (*cb)(void *ud, const wh_attempt *a), void *ud)
{
    for (size_t i = 0; i < l->n; i++) {
        if (rc == WH_OK && cb)
            cb(ud, &l->rows[i]->a);
        wh__record_free(l->rows[i]);
    }
    free(l->rows);
    int n = (int)l->n;
    *l = (wh__record_list){0};
    return rc == WH_OK ? n : rc;
}

const char *wh_outcome_name(wh_outcome o)
{
    switch (o) {
    case WH_OUTCOME_DELIVERED: return "delivered";
    case WH_OUTCOME_RETRYING: return "retrying";
    case WH_OUTCOME_FAILED: return "failed";
    case WH_OUTCOME_SKIPPED: return "skipped";
    }
    return "unknown";
}

char *wh__attempt_json(const wh_attempt *a)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    char when[32];
    wh__format_rfc3339_ms(a->started_ms, when);
    cJSON_AddStringToObject(o, "time", when);
    cJSON_AddStringToObject(o, "event_id", a->event_id);
    cJSON_AddStringToObject(o, "event_type", a->event_type);
    cJSON_AddStringToObject(o, "endpoint_id", a->endpoint_id);
    if (a->run_id)
        cJSON_AddStringToObject(o, "run_id", a->run_id);
    else
        cJSON_AddNullToObject(o, "run_id");
    if (a->task_id)
        cJSON_AddStringToObject(o, "task_id", a->task_id);
    else
        cJSON_AddNullToObject(o, "task_id");
    cJSON_AddStringToObject(o, "url", a->url);
    cJSON_AddNumberToObject(o, "attempt", a->attempt);
    cJSON_AddStringToObject(o, "outcome", wh_outcome_name(a->outcome));
    cJSON_AddNumberToObject(o, "http_status", a->http_status);
    if (a->error)
        cJSON_AddStringToObject(o, "error", a->error);
    else
        cJSON_AddNullToObject(o, "error");
    cJSON_AddNumberToObject(o, "started_ms", (double)a->started_ms);
    cJSON_AddNumberToObject(o, "duration_us", (double)a->duration_us);
    cJSON_AddNumberToObject(o, "next_attempt_ms", (double)a->next_attempt_ms);
    cJSON_AddBoolToObject(o, "redelivery", a->redelivery != 0);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void file_sink_write(void *ud, const wh_attempt *a)
{
    int fd = (int)(intptr_t)ud;
    char *line = wh__attempt_json(a);
    if (!line)
        return;
    size_t n = strlen(line);
    line[n] = '\n'; /* replaces the terminator: one write per line keeps lines whole */
    ssize_t w = write(fd, line, n + 1);
    (void)w;
    cJSON_free(line);
}

static void file_sink_close(void *ud) { close((int)(intptr_t)ud); }

int wh__file_sink_open(const char *path, wh_log_sink *out, char *errstr, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return wh__fail(errstr, errlen, WH_ERR_IO, "log.file: cannot open \"%.200s\": %m", path);
    *out = (wh_log_sink){.write = file_sink_write, .close = file_sink_close, .ud = (void *)(intptr_t)fd};
    return WH_OK;
}
