#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mock.h"

static void header_value(const char *line, const char *name, char *out, size_t len)
{
    size_t n = strlen(name);
    if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
        const char *v = line + n + 1;
        while (*v == ' ')
            v++;
        snprintf(out, len, "%s", v);
    }
}

static int mock_submit(void *ud, const wh_request *req, void *token)
{
    mock *m = ud;
    if (m->n == sizeof m->reqs / sizeof m->reqs[0])
        return WH_ERR_FULL;
    mock_req *q = &m->reqs[m->n++];
    memset(q, 0, sizeof *q);
    snprintf(q->url, sizeof q->url, "%s", req->url);
    for (const char *const *h = req->headers; *h; h++) {
        header_value(*h, "webhook-id", q->id, sizeof q->id);
        header_value(*h, "webhook-timestamp", q->timestamp, sizeof q->timestamp);
        header_value(*h, "webhook-signature", q->signature, sizeof q->signature);
    }
    q->body = malloc(req->body_len + 1);
    memcpy(q->body, req->body, req->body_len);
    q->body[req->body_len] = '\0';
    q->body_len = req->body_len;
    q->token = token;
    return WH_OK;
}

static int mock_perform(void *ud, wh_transport_done_fn done, void *done_ud)
{
    mock *m = ud;
    size_t n = m->ndone;
    m->ndone = 0;
    for (size_t i = 0; i < n; i++) {
        wh_response r = {
            .http_status = m->done[i].status,
            .error = m->done[i].error[0] ? m->done[i].error : NULL,
            .retry_after = m->done[i].retry_after[0] ? m->done[i].retry_after : NULL,
            .body = "ok",
            .body_len = 2,
            .duration_us = 1000,
        };
        done(done_ud, m->reqs[m->done[i].req].token, &r);
    }
    return (int)n;
}

static void mock_destroy(void *ud) { ((mock *)ud)->destroyed = 1; }

wh_transport mock_transport(mock *m)
{
    return (wh_transport){.ud = m, .submit = mock_submit, .perform = mock_perform, .destroy = mock_destroy};
}

void mock_answer(mock *m, size_t i, int status, const char *retry_after, const char *error)
{
    m->reqs[i].answered = 1;
    m->done[m->ndone].req = i;
    m->done[m->ndone].status = status;
    snprintf(m->done[m->ndone].retry_after, sizeof m->done[0].retry_after, "%s", retry_after ? retry_after : "");
    snprintf(m->done[m->ndone].error, sizeof m->done[0].error, "%s", error ? error : "");
    m->ndone++;
}

size_t mock_in_flight(const mock *m)
{
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++)
        k += !m->reqs[i].answered;
    return k;
}

void mock_free(mock *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->reqs[i].body);
}

int64_t fake_clock_now(void *ud) { return ((fake_clock *)ud)->now_ms; }
