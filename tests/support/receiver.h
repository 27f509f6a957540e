/* A real HTTP receiver for the delivery tests (libmicrohttpd on 127.0.0.1, an
 * ephemeral port, one thread per connection), plus a dead endpoint and a
 * refused port. Every function is safe to call while requests arrive. */
#ifndef WH_TEST_RECEIVER_H
#define WH_TEST_RECEIVER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rcv rcv;

typedef struct rcv_rule {
    int status;              /* HTTP status to answer */
    int delay_ms;            /* sleep this long before answering (to exceed a client timeout) */
    const char *retry_after; /* Retry-After header value, or NULL */
    const char *location;    /* Location header (for 302 tests), or NULL */
} rcv_rule;

typedef struct rcv_request {
    char path[256]; /* the URL path, without the query string */
    char webhook_id[128], webhook_timestamp[32], webhook_signature[1024];
    char content_type[128], user_agent[128]; /* "" when the header is absent */
    char *body;                              /* malloc'd copy, NUL-terminated; freed by rcv_request_free */
    size_t body_len;
    int status_sent;     /* the status chosen for this request */
    int64_t received_ms; /* CLOCK_REALTIME ms, when the whole request had arrived */
    int signature_ok;    /* -1: no secret set for the path; 1: wh_verify accepted it; 0: rejected */
    char headers[4096];  /* every request header as "Name: value\n", in arrival order */
} rcv_request;

/* NULL on failure. */
rcv *rcv_start(void);
int rcv_port(const rcv *r);
/* The URL for a path on this receiver, "http://127.0.0.1:PORT/path", into buf; returns buf. */
const char *rcv_url(const rcv *r, const char *path, char *buf, size_t len);
/* For requests to `path`: answer with rules[0], rules[1], ... in order, then `after` forever.
 * Paths not scripted answer 204. The rules (and their strings) are copied. Scripting a path
 * again replaces its script and starts it from rules[0]. */
void rcv_script(rcv *r, const char *path, const rcv_rule *rules, size_t n, rcv_rule after);
/* For requests to `path`: the first request of each webhook-id is answered `status` (before
 * any script), later ones as scripted. */
void rcv_fail_first(rcv *r, const char *path, int status);
/* How many requests have been received for path (NULL = all paths). */
size_t rcv_count(rcv *r, const char *path);
/* A copy of the i-th request received (in arrival order, across all paths): 0, or -1 if none. */
int rcv_get(rcv *r, size_t i, rcv_request *out);
void rcv_request_free(rcv_request *q);
/* Block until at least n requests (for path, NULL = all) have been received, or timeout_ms
 * passed; true if reached. */
bool rcv_wait(rcv *r, const char *path, size_t n, int timeout_ms);
/* If a secret is set for a path, every request to it is checked with wh_verify (now = 0,
 * tolerance = 0, i.e. the library's defaults); failures are counted. NULL secret: unset. */
void rcv_set_secret(rcv *r, const char *path, const char *secret);
size_t rcv_bad_signatures(rcv *r);
/* Stops MHD (cutting short any delay being slept) and frees everything. NULL is fine. */
void rcv_stop(rcv *r);

/* A TCP listener on 127.0.0.1 that never accepts or answers (a dead endpoint).
 * Returns the listening fd (-1 on failure); *port set. */
int blackhole_start(int *port);
void blackhole_stop(int fd);
/* A 127.0.0.1 port with nothing listening (connection refused); -1 on failure. */
int closed_port(void);

#endif
