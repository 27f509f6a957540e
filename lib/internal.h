/* Private to libwebhook: shared by the pieces under lib/, never installed. */
#ifndef WH_INTERNAL_H
#define WH_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "webhook/webhook.h"

#define WH__MAX_SINKS 16
#define WH__TEXT_MAX 255   /* ids and status in an event */
#define WH__BODY_MAX 4096  /* > the longest body: 3 fields of 255 bytes, each escaped at most 2x */
#define WH__SECRET_KEY_MAX 64

/* ---- error.c: error text, per thread, plus the caller's errstr -------- */
int wh__fail(char *errstr, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void wh__clear_error(void);
/* Hands this thread's message for `code` to the caller's errstr (or names the code when the
 * failure left no message of its own); returns code. */
int wh__pass_error(char *errstr, size_t errlen, int code);
/* The code of this thread's last wh__fail (WH_OK after wh__clear_error). */
int wh__last_error_code(void);

/* ---- util.c ------------------------------------------------------------ */
int64_t wh__wall_ms(void);
int64_t wh__mono_us(void);
char *wh__strdup(const char *s);
int wh__random_bytes(void *buf, size_t n);
/* prefix + 10 base32 digits of the time in ms + 20 of 100 random bits, e.g. "evt_..." */
int wh__new_id(const char *prefix, char out[WH_ID_MAX]);
/* One syntax for every number of the configuration (see util.c): digits, for decimals and
 * durations an optional ".digits"; no sign, space, hex or exponent. WH_ERR_INVALID or WH_OK. */
int wh__parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);
int wh__parse_decimal(const char *s, double lo, double hi, double *out);
/* "250ms", "5s", "5m", "1.5h", "5d"; a bare number is seconds. */
int wh__parse_duration_ms(const char *s, int64_t *out_ms);
/* Calls each() on every item of the comma-separated list that is key's value ("" has no
 * items). An empty item (",a", "a,,b", "a,") fails with WH_ERR_INVALID and a message naming
 * key before any call; else returns each()'s first failure, which writes its own message. */
int wh__parse_list(const char *key, const char *list,
                   int (*each)(void *ud, const char *item, size_t len), void *ud, char *errstr,
                   size_t errlen);
/* The event types every context knows, NULL-terminated; event_types.extra adds at most
 * WH__MAX_EXTRA_TYPES more. */
#define WH__N_BUILTIN_TYPES 6
#define WH__MAX_EXTRA_TYPES 256
extern const char *const wh__builtin_types[WH__N_BUILTIN_TYPES + 1];
/* NULL when s is printable UTF-8 with no control characters, else why not. */
const char *wh__text_problem(const char *s, size_t max_len);
bool wh__event_type_syntax_ok(const char *t);

/* ---- conf.c ------------------------------------------------------------ */
struct wh_conf {
    char *values[32]; /* text of each key, indexed like the key table in conf.c */
    /* parsed forms, kept in step with values */
    char *store;
    bool store_sync_full;
    int64_t store_lease_ms;
    int64_t *retry_schedule_ms;
    size_t retry_schedule_len;
    double retry_jitter;
    int64_t retry_max_delay_ms;
    int64_t disable_after_ms;
    long http_timeout_ms, http_connect_timeout_ms;
    int max_in_flight, max_connections;
    uint64_t max_pending;
    size_t response_max;
    char *log_file;
    size_t log_ring;
    int64_t log_retention_ms;
    char *tls_ca_file;
    bool allow_private;
    char *allow_cidrs;
    char **extra_types; /* NULL-terminated */
    wh_log_sink sinks[WH__MAX_SINKS];
    size_t n_sinks;
    wh_transport transport;
    bool has_transport;
    int64_t (*clock)(void *ud);
    void *clock_ud;
};

/* ---- sign.c ------------------------------------------------------------ */
/* Decodes "whsec_<base64>" (24..64 bytes) into key; NULL problem on success. */
const char *wh__secret_decode(const char *secret, unsigned char key[WH__SECRET_KEY_MAX],
                              size_t *key_len);
int wh__secret_generate(char *out, size_t out_len);
/* "v1,<base64>" of HMAC-SHA256(key, id.ts.body) */
int wh__sign_key(const unsigned char *key, size_t key_len, const char *msg_id, int64_t timestamp,
                 const void *body, size_t body_len, char *out, size_t out_len);

/* ---- netguard.c: which addresses a webhook may connect to --------------- */
struct sockaddr;
typedef struct wh__netguard wh__netguard;
wh__netguard *wh__netguard_new(bool allow_private, const char *cidrs, char *errstr, size_t errlen);
void wh__netguard_free(wh__netguard *g);
/* Checks "a.b/n,..." without keeping it. */
int wh__netguard_parse_cidrs(const char *list, char *errstr, size_t errlen);
/* False (and why, for a person) when the address is refused. */
bool wh__netguard_allows(const wh__netguard *g, const struct sockaddr *sa, char *why, size_t why_len);

/* ---- registry.c -------------------------------------------------------- */
typedef struct wh__delivery wh__delivery;

/* Old secrets signing at once while rotations overlap; beyond it, the one whose grace ends
 * first is dropped. */
#define WH__MAX_OLD_KEYS 8

typedef struct wh__endpoint {
    char id[WH_ID_MAX];
    char *url;
    char **event_types; /* NULL-terminated, as given */
    char *description;
    char *secret;
    unsigned char key[WH__SECRET_KEY_MAX];
    size_t key_len;
    char *old_secret; /* the newest old secret, as stored; signs until old_until_ms */
    int64_t old_until_ms;
    /* every old secret that may still sign, newest first, each until its own grace ends */
    struct wh__old_key {
        unsigned char key[WH__SECRET_KEY_MAX];
        size_t len;
        int64_t until_ms;
    } old_keys[WH__MAX_OLD_KEYS];
    size_t n_old_keys;
    bool enabled;
    char *disabled_reason;
    int64_t created_ms;
    bool removed;
    int refs;
    /* delivery state, owned by the scheduler */
    int in_flight;
    wh__delivery *parked_head, *parked_tail;
    int64_t failing_since_ms; /* 0 while the last attempt succeeded */
    int64_t version; /* of the stored row applied last; 0: never stored */
} wh__endpoint;

typedef struct wh__registry wh__registry;

wh__registry *wh__registry_new(const char *const *known_types);
void wh__registry_free(wh__registry *r);
/* The index of a known event type, or -1. */
int wh__registry_type_index(const wh__registry *r, const char *type);
const char *const *wh__registry_types(const wh__registry *r);
/* Validates and builds an endpoint (not yet added); id NULL: generate. */
wh__endpoint *wh__endpoint_build(const wh__registry *r, const wh_endpoint_spec *spec,
                                 const char *id, char *errstr, size_t errlen);
void wh__endpoint_unref(wh__endpoint *ep);
int wh__registry_add(wh__registry *r, wh__endpoint *ep);
wh__endpoint *wh__registry_find(const wh__registry *r, const char *id);
/* Unlinks (marks removed, drops the registry's reference). */
int wh__registry_remove(wh__registry *r, const char *id);
/* Endpoints subscribed to type index ti, enabled or not. */
wh__endpoint *const *wh__registry_match(const wh__registry *r, int ti, size_t *n);
size_t wh__registry_count(const wh__registry *r);
wh__endpoint *wh__registry_at(const wh__registry *r, size_t i);
void wh__endpoint_info_fill(const wh__endpoint *ep, wh_endpoint_info *info);
int wh__endpoint_set_secret(wh__endpoint *ep, const char *new_secret, int64_t old_until_ms,
                            char *errstr, size_t errlen);
void wh__endpoint_set_disabled(wh__endpoint *ep, const char *reason);

/* ---- payload.c --------------------------------------------------------- */
/* Checks ev (task_id rule, text limits) against type index ti; builds the body. */
int wh__payload_build(const wh__registry *r, const wh_event *ev, const char *event_id,
                      int64_t now_ms, char **body_out, size_t *len_out, char *errstr,
                      size_t errlen);
/* RFC 3339 UTC with milliseconds. */
void wh__format_rfc3339_ms(int64_t ms, char out[32]);

/* ---- events and deliveries ---------------------------------------------- */
/* One allocation holds the event and its strings: a million pending deliveries of
 * small events must fit in well under 512 bytes each. */
typedef struct wh__event {
    int refs;
    size_t body_len;
    int64_t seq;      /* the store's number for it */
    const char *id;   /* the strings below point into data[] */
    const char *type;
    const char *body; /* built once, shared by every delivery and attempt */
    char data[];
} wh__event;

struct wh__delivery {
    wh__event *ev;
    wh__endpoint *ep;
    int64_t next_ms;   /* when the next attempt is due */
    int64_t started_ms; /* of the attempt in flight */
    int attempts;      /* finished or in flight */
    bool skip_only;    /* endpoint was disabled at emit: log SKIPPED, never send */
    size_t heap_idx;   /* position in the scheduler heap, or WH__NOT_IN_HEAP */
    wh__delivery *next; /* ready or parked list link */
    wh__delivery *all_prev, *all_next; /* every live delivery of the context */
};
#define WH__NOT_IN_HEAP SIZE_MAX

/* refs = 1; NULL when out of memory or a string does not fit WH_ID_MAX. */
wh__event *wh__event_new(const char *id, const char *type, const char *body, size_t body_len);
void wh__event_unref(wh__event *ev);
static inline void wh__event_ref(wh__event *ev) { __atomic_add_fetch(&ev->refs, 1, __ATOMIC_RELAXED); }

/* ---- scheduler.c: what goes out when; pure logic, driven with a clock ---- */
typedef struct wh__sched {
    wh__delivery **heap; /* min-heap by next_ms */
    size_t n, cap;
    wh__delivery *ready_head, *ready_tail; /* due, waiting for a connection slot */
    size_t ready_n, parked_n;
    size_t in_flight, max_in_flight_total;
    int max_per_endpoint;
    const int64_t *schedule_ms;
    size_t schedule_len;
    double jitter;
    int64_t max_delay_ms, disable_after_ms;
    uint64_t rng;
} wh__sched;

typedef struct wh__verdict {
    wh_outcome outcome;
    int64_t next_ms;          /* when RETRYING */
    int64_t failing_since_ms; /* the endpoint's failing clock after this attempt (0: stopped) */
    bool disable_endpoint;
    char error[256];          /* "" on success */
} wh__verdict;

void wh__sched_init(wh__sched *s, const wh_conf *c);
void wh__sched_free(wh__sched *s);
int wh__sched_push(wh__sched *s, wh__delivery *d);
/* Makes room so that the next `extra` pushes cannot fail. */
int wh__sched_reserve(wh__sched *s, size_t extra);
/* False when the delivery will be logged SKIPPED instead of sent. */
bool wh__delivery_sendable(const wh__delivery *d);
/* Next delivery to send now, honouring the per-endpoint and total limits; NULL if none. */
wh__delivery *wh__sched_take(wh__sched *s, int64_t now_ms);
/* Milliseconds until wh__sched_take may return something; -1 when nothing waits. */
int64_t wh__sched_wait_ms(const wh__sched *s, int64_t now_ms);
/* A request for d ended: frees its slot and lets a parked one of its endpoint go. */
void wh__sched_finished(wh__sched *s, wh__delivery *d);
/* What to do after an attempt: outcome, next time, the endpoint's failing clock, whether to
 * disable the endpoint. Changes nothing but the jitter's random state: the driver applies
 * the verdict. */
void wh__sched_judge(wh__sched *s, const wh__delivery *d, const wh_response *r,
                     int64_t now_ms, wh__verdict *v);
/* Parses Retry-After (delta seconds or an HTTP date) into ms from now; -1 if unusable. */
int64_t wh__parse_retry_after(const char *v, int64_t now_ms);

/* ---- transport_curl.c --------------------------------------------------- */
int wh__transport_curl_new(const wh_conf *c, wh_transport *out, char *errstr, size_t errlen);

/* ---- logsink.c: attempt records and the JSON-lines file -------------------- */
typedef struct wh__record {
    wh_attempt a; /* strings below are owned by the record */
    char event_id[WH_ID_MAX], event_type[WH_ID_MAX], endpoint_id[WH_ID_MAX];
    char *url, *error, *body;
} wh__record;

wh__record *wh__record_new(const wh__delivery *d, wh_outcome o, int http_status,
                           const char *error, int64_t started_ms, int64_t duration_us,
                           int64_t next_ms, const char *body, size_t body_len);
void wh__record_free(wh__record *r);
/* A JSON-lines file sink; NULL and errstr on failure. */
int wh__file_sink_open(const char *path, wh_log_sink *out, char *errstr, size_t errlen);
/* One attempt as a JSON object on one line (no newline); malloc'd. */
char *wh__attempt_json(const wh_attempt *a);

/* ---- store.h: the durable store's interface -------------------------------- */
#include "store.h"

/* registry.c: endpoints to and from their stored rows */
wh__endpoint *wh__endpoint_from_row(const wh__registry *r, const wh__endpoint_row *row,
                                    char *errstr, size_t errlen);
/* Takes over what another process may change (enabled, reason, secrets, failing clock)
 * when the row's version is not the one applied last. */
void wh__endpoint_apply_row(wh__endpoint *ep, const wh__endpoint_row *row);
/* ep as a row; the returned block holds its strings (free it). */
char *wh__endpoint_row_snapshot(const wh__endpoint *ep, wh__endpoint_row *row);

/* ---- ctx.c / drive.c / store_sync.c: the context that wires the pieces ----- */
#define WH__STORE_WATCH_MS 250 /* other processes' changes and work show within a second */
/* Attempt outcomes are committed in batches: this many, or this old, whichever first. */
#define WH__RESULTS_BATCH 512
#define WH__RESULTS_DELAY_MS 10

/* An outcome waiting for its commit, with the record that logs it. */
typedef struct wh__pending_result {
    wh__result r;
    wh__record *rec; /* also in the outbox until the commit; may be NULL */
    wh__event *ev;   /* a reference: the body outlives the delivery until the commit */
} wh__pending_result;

struct wh_ctx {
    wh_conf *conf;
    pthread_mutex_t lock; /* registry, scheduler, counters; never held across a callback */
    wh__registry *reg;
    wh__sched sched;
    wh_transport tr;
    int epfd;  /* the wh_fd: eventfd + timerfd + transport fd */
    int evfd;  /* emit and stop wake the driver */
    int tfd;   /* next due retry or transport timer */
    int wake_pending; /* atomic: an eventfd write is already on its way */
    wh_log_sink sinks[WH__MAX_SINKS + 1];
    size_t n_sinks;
    wh_stats_info stats;  /* pending and in_flight derived on read */
    uint64_t live_deliveries; /* created and not yet final */
    /* records made under the lock, handed to sinks after it is released */
    wh__record **outbox;
    size_t outbox_n, outbox_cap;
    /* drive state */
    pthread_t thread;
    bool thread_running;
    bool fd_mode; /* the host waits on wh_fd: keep its timer armed */
    int stop_requested; /* atomic */
    int driving; /* atomic: a thread is inside wh_poll, wh_flush or the delivery thread */
    wh__delivery *all_head; /* every live delivery, for shutdown */
    /* the store, and this engine's place in it */
    wh__store *store;
    char engine_id[WH_ID_MAX];
    pthread_mutex_t ep_lock; /* orders endpoint changes between the store and the registry */
    wh__pending_result *results; /* outcomes waiting to be committed by the driver */
    size_t results_n, results_cap;
    wh__endpoint_change *changes; /* endpoint changes verdicts made, committed with them */
    size_t changes_n, changes_cap;
    int64_t results_since_us; /* when the oldest uncommitted result came */
    bool commit_failing;      /* the last commit failed: no new attempts until one works */
    int64_t commit_retry_us;
    int64_t last_change_check_us, last_heartbeat_ms;
    char (*unloadable)[WH_ID_MAX]; /* endpoints whose rows could not be loaded, reported once */
    size_t n_unloadable;
    bool owns_transport_and_sinks;
    size_t n_conf_sinks; /* sinks[0..n_conf_sinks) came from the conf */
};

int64_t wh__now_ms(const wh_ctx *ctx);
void wh__wake(wh_ctx *ctx);
/* Under the lock: a delivery reached a final outcome; unrefs and frees it. */
void wh__delivery_free(wh_ctx *ctx, wh__delivery *d);
/* Under the lock: queue a record for the sinks; false (record freed) when out of memory. */
bool wh__emit_record(wh_ctx *ctx, wh__record *r);
/* Under the lock: remember an outcome (and the record logging it) for the next commit. */
void wh__queue_result(wh_ctx *ctx, const wh__delivery *d, int state, int64_t next_ms,
                      wh__record *rec);
/* Under the lock: an endpoint change a verdict made, committed with the outcomes. */
void wh__queue_change(wh_ctx *ctx, const wh__endpoint_change *c);
/* Without the lock, on the driving thread: hand queued records to the sinks. */
void wh__flush_records(wh_ctx *ctx);
void wh__drive_shutdown(wh_ctx *ctx);
/* Under the lock: a new pending delivery of ev to ep, linked into the context (not scheduled). */
wh__delivery *wh__delivery_new(wh_ctx *ctx, wh__event *ev, wh__endpoint *ep, int64_t next_ms);
/* Without the lock: stores and schedules deliveries made by wh__delivery_new, for a new
 * event (ev) or again (redelivery: ev NULL; those pending elsewhere already are dropped and
 * counted in *already). */
int wh__deliveries_commit(wh_ctx *ctx, wh__event *ev_or_null, wh__delivery **ds, size_t *n,
                          int64_t now_ms, int *already);
/* Commits waiting outcomes and changes; WH_OK when nothing waits. */
int wh__commit_results(wh_ctx *ctx);

/* store_sync.c: the engine's side of the store */
/* wh_new: open the store named by the conf, load the endpoints and claim pending work. */
int wh__store_attach(wh_ctx *ctx, char *errstr, size_t errlen);
/* Driver: lease, other processes' changes, work to claim, housekeeping. */
void wh__store_upkeep(wh_ctx *ctx);
/* Under ep_lock: applies the store's rows to the registry. */
int wh__sync_endpoints(wh_ctx *ctx);

#endif
