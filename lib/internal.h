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
#define WH__SECRET_KEY_MAX 64

/* ---- error.c: error text, per thread, plus the caller's errstr -------- */
int wh__fail(char *errstr, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void wh__clear_error(void);

/* ---- util.c ------------------------------------------------------------ */
int64_t wh__wall_ms(void);
int64_t wh__mono_us(void);
char *wh__strdup(const char *s);
int wh__random_bytes(void *buf, size_t n);
/* prefix + 26 base32 chars of 128 random bits, e.g. "evt_..." */
int wh__new_id(const char *prefix, char out[WH_ID_MAX]);
/* "250ms", "5s", "5m", "2h", "5d"; a bare number is seconds. */
int wh__parse_duration_ms(const char *s, int64_t *out_ms);
/* NULL when s is printable UTF-8 with no control characters, else why not. */
const char *wh__text_problem(const char *s, size_t max_len);
bool wh__event_type_syntax_ok(const char *t);

/* ---- conf.c ------------------------------------------------------------ */
struct wh_conf {
    char *values[32]; /* text of each key, indexed like the key table in conf.c */
    /* parsed forms, kept in step with values */
    char *store;
    bool store_sync_full;
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

/* ---- registry.c -------------------------------------------------------- */
typedef struct wh__delivery wh__delivery;

typedef struct wh__endpoint {
    char id[WH_ID_MAX];
    char *url;
    char **event_types; /* NULL-terminated, as given */
    char *description;
    char *secret;
    unsigned char key[WH__SECRET_KEY_MAX];
    size_t key_len;
    char *old_secret; /* still signs until old_until_ms */
    unsigned char old_key[WH__SECRET_KEY_MAX];
    size_t old_key_len;
    int64_t old_until_ms;
    bool enabled;
    char *disabled_reason;
    int64_t created_ms;
    bool removed;
    int refs;
    /* delivery state, owned by the scheduler */
    int in_flight;
    wh__delivery *parked_head, *parked_tail;
    int64_t failing_since_ms; /* 0 while the last attempt succeeded */
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

#endif
