/* libwebhook: signed, retried, logged webhook delivery for workflow engines. */
#ifndef WEBHOOK_WEBHOOK_H
#define WEBHOOK_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define WH_API __attribute__((visibility("default")))
#else
#define WH_API
#endif

/* The one place the version is written; the Makefile reads it from here. */
#define WH_VERSION_MAJOR 0
#define WH_VERSION_MINOR 2
#define WH_VERSION_PATCH 0
#define WH_VERSION_STRING "0.2.0"
/* The binary interface: the shared library is libwebhook.so.WH_ABI_VERSION (the Makefile
 * reads it from here). Raised whenever a public struct or function changes in a way that an
 * older binary would misread; see "ABI: how structs grow" in libwebhook(7). */
#define WH_ABI_VERSION 1

/* How public structs grow without breaking binaries built against an older header.
 *
 * Structs the caller allocates and the library reads (wh_event, wh_endpoint_spec,
 * wh_log_filter, wh_log_sink, wh_transport, wh_response) or fills (wh_stats_info) end with
 * reserved room: a later field takes a reserved slot, so their size never changes. Zero them
 * whole (designated initialisers, or "= {0}"): the library refuses one whose reserved slots
 * are not zero (WH_ERR_INVALID, "wh_event: reserved fields must be zero"), so that a field
 * added later reads as its zero default in an older program.
 *
 * Structs the library allocates and hands to callbacks (wh_attempt, wh_endpoint_info,
 * wh_endpoint_metrics, wh_request, wh_notice) grow only at the end: read them through the pointer you
 * are given; never allocate or copy one yourself. */
#define WH_RESERVED_SLOTS 8

#define WH_ID_MAX 64 /* ids are NUL-terminated strings of at most 63 chars */
#define WH_SIGNATURE_MAX 256

enum {
    WH_OK = 0,
    WH_ERR_INVALID = -1,   /* a bad argument; errstr names the field */
    WH_ERR_NOMEM = -2,
    WH_ERR_NOTFOUND = -3,  /* no endpoint / event with that id */
    WH_ERR_SIGNATURE = -4, /* no signature in the header matches */
    WH_ERR_TIMESTAMP = -5, /* timestamp outside the tolerance */
    WH_ERR_STATE = -6,     /* not allowed now (e.g. wh_poll while wh_start runs) */
    WH_ERR_TIMEOUT = -7,
    WH_ERR_FULL = -8,      /* queue.max_pending reached; nothing queued */
    WH_ERR_STORE = -9,     /* the durable store failed */
    WH_ERR_IO = -10,       /* an operating-system call failed */
    WH_ERR_TRANSPORT = -11 /* the HTTP transport could not start */
};

WH_API const char *wh_strerror(int err);
WH_API const char *wh_version(void);

/* ---- configuration ---------------------------------------------------- */

typedef struct wh_conf wh_conf;
typedef struct wh_ctx wh_ctx;

WH_API wh_conf *wh_conf_new(void);
WH_API int wh_conf_set(wh_conf *c, const char *key, const char *value, char *errstr, size_t errlen);
/* The current value of a key as text (defaults included); NULL for an unknown key. */
WH_API const char *wh_conf_get(const wh_conf *c, const char *key);
WH_API void wh_conf_destroy(wh_conf *c);

/* ---- context ------------------------------------------------------------ */

/* Takes ownership of c on success (NULL = all defaults); on failure c is still the caller's. */
WH_API wh_ctx *wh_new(wh_conf *c, char *errstr, size_t errlen);
WH_API void wh_destroy(wh_ctx *ctx);

/* ---- endpoints ---------------------------------------------------------- */

typedef struct wh_endpoint_spec {
    const char *url;                /* http:// or https:// only */
    const char *const *event_types; /* NULL-terminated; NULL means {"*"} */
    const char *secret;             /* "whsec_<base64 of 24..64 bytes>"; NULL: generate one */
    int disabled;                   /* 0: enabled at once */
    const char *description;        /* optional */
    /* optional, the caller's name for the endpoint (unique in the store): adding a key that
     * exists updates that endpoint in place (url, event_types, description, disabled; the
     * secret only when given) and returns its id; NULL: always a new endpoint */
    const char *key;
    void *reserved[WH_RESERVED_SLOTS]; /* zero */
} wh_endpoint_spec;

typedef struct wh_endpoint_info {
    const char *id;
    const char *url;
    const char *const *event_types; /* NULL-terminated */
    const char *secret;             /* the current signing secret */
    int enabled;
    const char *description;        /* "" when none */
    const char *disabled_reason;    /* NULL while enabled or disabled by hand */
    int64_t created_ms;
    /* its own settings (wh_endpoint_set) as "key=value", NULL-terminated, in the order they
     * were first set; header values read "(hidden)" */
    const char *const *settings;
    const char *key;                /* NULL when none */
    /* the library may add fields here: never allocate or copy one yourself */
} wh_endpoint_info;

typedef void (*wh_endpoint_cb)(void *ud, const wh_endpoint_info *ep);

WH_API int wh_endpoint_add(wh_ctx *ctx, const wh_endpoint_spec *spec, char id_out[WH_ID_MAX]);
WH_API int wh_endpoint_remove(wh_ctx *ctx, const char *id);
WH_API int wh_endpoint_set_enabled(wh_ctx *ctx, const char *id, int enabled);
WH_API int wh_endpoint_rotate_secret(wh_ctx *ctx, const char *id, const char *new_secret, int grace_s);
/* Per-endpoint settings: string keys like wh_conf_set, checked at once, stored with the
 * endpoint, overriding the conf's for that endpoint; value NULL restores the default.
 * Keys: "rate_limit" ("50", "50/s", "600/m", "3600/h"; "0" = none), "max_in_flight",
 * "http.timeout_ms", "retry.schedule" (as the conf keys), "ordering" ("none" or "run"),
 * "header.<Name>" (an extra request header). */
WH_API int wh_endpoint_set(wh_ctx *ctx, const char *id, const char *key, const char *value);
/* Calls cb once with the endpoint (pointers valid during the call only). */
WH_API int wh_endpoint_get(wh_ctx *ctx, const char *id, wh_endpoint_cb cb, void *ud);
/* Calls cb for every endpoint, oldest first; returns how many. */
WH_API int wh_endpoint_list(wh_ctx *ctx, wh_endpoint_cb cb, void *ud);
/* The reason the last failing call on this thread gave, for a person (naming the field). */
WH_API const char *wh_last_error(void);

/* ---- events ------------------------------------------------------------- */

typedef struct wh_event {
    const char *event_type; /* e.g. "task_run.completed" */
    const char *run_id;     /* required */
    const char *task_id;    /* required for task_run.*, must be NULL for workflow_run.* */
    const char *status;     /* required, e.g. "completed" */
    int64_t timestamp_ms;   /* 0: now */
    /* optional, the event id (the webhook-id): 1..63 printable ASCII, no space or comma.
     * An id emitted already within emit.dedup_window queues nothing and returns what its
     * first emit returned. NULL: a new id is generated. */
    const char *id;
    void *reserved[WH_RESERVED_SLOTS]; /* zero */
} wh_event;

/* Any thread. >= 0: deliveries that will be sent (0 = no enabled endpoint subscribed; an
 * emit to a disabled endpoint is logged SKIPPED, not counted); < 0: error, nothing queued.
 * With a durable store (sqlite:, postgresql:), the event and its deliveries are committed
 * before this returns.
 * event_id_out (may be NULL): the event's id. */
WH_API int wh_emit(wh_ctx *ctx, const wh_event *ev, char event_id_out[WH_ID_MAX]);

/* The most events one wh_emit_batch takes. */
#define WH_EMIT_BATCH_MAX 1024

/* Any thread. Emits events[0..n-1] (1 <= n <= WH_EMIT_BATCH_MAX) together: with a durable
 * store in one commit, all of them or none, at about the cost of one wh_emit; each is
 * checked, delivered and deduplicated as wh_emit would (an id repeated within the batch is
 * a duplicate of its first). >= 0: deliveries that will be sent, all events together;
 * < 0: error (naming the event, "events[i]: ..."), nothing queued.
 * sendable_out (may be NULL): n ints, what wh_emit would have returned for each.
 * event_ids_out (may be NULL): n ids. */
WH_API int wh_emit_batch(wh_ctx *ctx, const wh_event *events, size_t n, int *sendable_out,
                         char (*event_ids_out)[WH_ID_MAX]);

/* ---- signing (Standard Webhooks v1) ------------------------------------- */

WH_API int wh_sign(const char *secret, const char *msg_id, int64_t timestamp, const void *body,
                   size_t body_len, char *out, size_t out_len);
WH_API int wh_verify(const char *secret, const char *msg_id, const char *timestamp,
                     const char *signature_header, const void *body, size_t body_len, int64_t now,
                     int tolerance_s);

/* ---- driving delivery --------------------------------------------------- */

WH_API int wh_poll(wh_ctx *ctx, int timeout_ms);
/* Drives until nothing is in flight and nothing is due now (retries scheduled later stay
 * pending); WH_OK or WH_ERR_TIMEOUT. */
WH_API int wh_flush(wh_ctx *ctx, int timeout_ms);
WH_API int wh_fd(wh_ctx *ctx);
WH_API int wh_timeout_ms(wh_ctx *ctx);
WH_API int wh_start(wh_ctx *ctx);
WH_API int wh_stop(wh_ctx *ctx, int flush_timeout_ms);
/* Any thread: a wh_poll waiting now (or the wait of wh_start's thread) returns at once; with
 * none waiting, the next wh_poll returns without waiting. wh_fd becomes readable. */
WH_API int wh_wakeup(wh_ctx *ctx);

/* ---- notices ------------------------------------------------------------ */

enum { WH_NOTICE_ENDPOINT_DISABLED = 1, WH_NOTICE_ENDPOINT_ENABLED, WH_NOTICE_DELIVERY_FAILED };

/* One change worth telling the host: an endpoint disabled or enabled again (by a verdict, by
 * hand or by another process), a delivery given up. Handed to the notify callback and owned
 * by the library, which may add fields at the end: never allocate or copy one yourself. */
typedef struct wh_notice {
    int kind;                /* WH_NOTICE_* */
    const char *endpoint_id;
    const char *event_id;    /* DELIVERY_FAILED: the event given up; NULL otherwise */
    const char *reason;      /* for a person; never NULL */
    int64_t time_ms;         /* when the engine saw the change (the context's clock) */
} wh_notice;

/* fn runs on the driving thread with no internal lock held, once per change (pointers valid
 * during the call only); NULL: no notices. */
WH_API int wh_conf_set_notify(wh_conf *c, void (*fn)(void *ud, const wh_notice *n), void *ud);

/* ---- attempt log -------------------------------------------------------- */

typedef enum {
    WH_OUTCOME_DELIVERED,
    WH_OUTCOME_RETRYING,
    WH_OUTCOME_FAILED, /* gave up */
    WH_OUTCOME_SKIPPED /* endpoint disabled or blocked */
} wh_outcome;

typedef struct wh_attempt {
    const char *event_id, *event_type, *endpoint_id, *url;
    int attempt; /* 1 for the first try */
    wh_outcome outcome;
    int http_status;   /* 0 when no response */
    const char *error; /* NULL on success; else why, for a person */
    int64_t started_ms, duration_us, next_attempt_ms /* 0 = none */;
    const char *response_body;
    size_t response_len; /* first log.response_max bytes */
    int redelivery;      /* 1: the delivery was queued again (wh_redeliver, wh_recover,
                            webhookctl redeliver or recover) */
    const char *run_id;  /* the event's; NULL when none */
    const char *task_id; /* the event's; NULL when none (workflow_run.*) */
    /* the library may add fields here: never allocate or copy one yourself */
} wh_attempt;

WH_API const char *wh_outcome_name(wh_outcome o);

typedef struct wh_log_sink {
    void (*write)(void *ud, const wh_attempt *a);
    void (*close)(void *ud); /* may be NULL; called once by wh_destroy */
    void *ud;
    void *reserved[WH_RESERVED_SLOTS]; /* zero */
} wh_log_sink;

WH_API int wh_conf_add_log_sink(wh_conf *c, const wh_log_sink *sink);

/* The bit of one outcome in wh_log_filter.outcomes. */
#define WH_OUTCOME_BIT(o) (1u << (unsigned)(o))

typedef struct wh_log_filter {
    const char *endpoint_id, *event_id, *event_type; /* NULL = any */
    unsigned outcomes;          /* WH_OUTCOME_BIT(o) | ...; 0 = every outcome */
    int64_t since_ms, until_ms; /* 0 = open */
    int limit;                  /* 0 = 100; newest first */
    void *reserved[WH_RESERVED_SLOTS]; /* zero */
} wh_log_filter;

/* Calls row for each matching attempt, newest first; returns how many. */
WH_API int wh_log_query(wh_ctx *ctx, const wh_log_filter *f,
                        void (*row)(void *ud, const wh_attempt *a), void *ud);

/* Sends event_id again (same id and body, fresh signature) to every endpoint it went to, or
 * only to endpoint_id. Returns deliveries queued, or < 0. The memory store remembers events
 * for as long as their attempts are in the log.ring_size ring; the SQLite store until
 * log.retention prunes them. */
WH_API int wh_redeliver(wh_ctx *ctx, const char *event_id, const char *endpoint_id);
/* Queues again every FAILED or SKIPPED delivery to endpoint_id since since_ms. Returns how many. */
WH_API int wh_recover(wh_ctx *ctx, const char *endpoint_id, int64_t since_ms);

/* ---- transport (replaceable, e.g. by a mock in tests) ------------------- */

typedef struct wh_request {
    const char *url;
    const char *const *headers; /* NULL-terminated "Name: value" lines */
    const void *body;
    size_t body_len;
    long timeout_ms, connect_timeout_ms;
    size_t response_max; /* keep at most this many body bytes */
    /* the library may add fields here: never allocate or copy one yourself */
} wh_request;

typedef struct wh_response {
    int http_status;        /* 0 when no response */
    const char *error;      /* NULL when a response arrived */
    const char *body;
    size_t body_len;
    const char *retry_after; /* the Retry-After header, or NULL */
    int64_t duration_us;
    int blocked; /* refused by the address guard (security.*): logged SKIPPED, not retried */
    void *reserved[WH_RESERVED_SLOTS]; /* zero: else the attempt fails, "wh_response: ..." */
} wh_response;

/* Reports one finished request; the response is valid during the call only. */
typedef void (*wh_transport_done_fn)(void *done_ud, void *token, const wh_response *r);

typedef struct wh_transport {
    void *ud;
    /* Start a request; token comes back in done. WH_OK or < 0 (then done is never called). */
    int (*submit)(void *ud, const wh_request *req, void *token);
    /* Do pending I/O without blocking and report each finished request; returns how many. */
    int (*perform)(void *ud, wh_transport_done_fn done, void *done_ud);
    /* A pollable fd that becomes readable when perform has work, or -1. */
    int (*fd)(void *ud);
    /* Longest wait before perform must run again; -1 = none. */
    int (*timeout_ms)(void *ud);
    void (*destroy)(void *ud);
    void *reserved[WH_RESERVED_SLOTS]; /* zero */
} wh_transport;

/* The library takes the vtable by value; destroy is called by wh_destroy. */
WH_API int wh_conf_set_transport(wh_conf *c, const wh_transport *t);
/* now_ms must be cheap and must not call into the library: it may run under internal locks. */
WH_API int wh_conf_set_clock(wh_conf *c, int64_t (*now_ms)(void *ud), void *ud);

/* ---- statistics --------------------------------------------------------- */

typedef struct wh_stats_info {
    uint64_t emitted;            /* events accepted by wh_emit */
    uint64_t delivered;          /* deliveries that succeeded */
    uint64_t failed;             /* deliveries given up */
    uint64_t skipped;            /* deliveries skipped (endpoint disabled or blocked) */
    uint64_t attempts;           /* HTTP attempts finished */
    uint64_t pending;            /* deliveries waiting (due or scheduled) */
    uint64_t in_flight;          /* requests on the wire */
    uint64_t endpoints;          /* registered */
    uint64_t endpoints_disabled;
    void *reserved[WH_RESERVED_SLOTS]; /* zeroed by wh_stats with the rest */
} wh_stats_info;

WH_API int wh_stats(wh_ctx *ctx, wh_stats_info *out);

/* ---- metrics ------------------------------------------------------------ */

/* Attempts by HTTP status class: [0] no response (refused, timed out, TLS, ...), [1]..[5]
 * 1xx..5xx, [6] any other status. */
#define WH_STATUS_CLASSES 7

/* One endpoint's counters (from wh_new on) and gauges (now). Handed to a callback and owned
 * by the library, which may add fields at the end: never allocate or copy one yourself. */
typedef struct wh_endpoint_metrics {
    const char *endpoint_id;
    const char *url;
    int enabled;
    uint64_t delivered;          /* deliveries that succeeded */
    uint64_t failed;             /* deliveries given up */
    uint64_t skipped;            /* deliveries skipped (endpoint disabled, removed or blocked) */
    uint64_t retrying;           /* attempts that failed and were scheduled again */
    uint64_t attempts;           /* attempts finished (a skip is not an attempt) */
    uint64_t attempts_by_class[WH_STATUS_CLASSES];
    /* how long attempts took: latency_count[i] attempts took at most latency_le_us[i]
     * (cumulative, as in a Prometheus histogram); attempts is the total */
    size_t latency_buckets;
    const int64_t *latency_le_us; /* upper bounds, ascending */
    const uint64_t *latency_count;
    int64_t latency_sum_us;       /* every attempt's duration, added up */
    uint64_t pending;             /* deliveries waiting (due or scheduled) */
    uint64_t in_flight;           /* requests on the wire */
    int64_t last_success_ms;      /* when a delivery last succeeded; 0: never */
} wh_endpoint_metrics;

/* Calls cb for every endpoint, oldest first, with one consistent snapshot (pointers valid
 * during the call only); returns how many. */
WH_API int wh_metrics_list(wh_ctx *ctx, void (*cb)(void *ud, const wh_endpoint_metrics *m),
                           void *ud);
/* Writes every metric in the Prometheus text exposition format (names webhook_*, one
 * `endpoint` label). WH_OK, or WH_ERR_IO when out reports a write error. */
WH_API int wh_metrics_write(wh_ctx *ctx, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
