/* Private to libwebhook: One endpoint: its settings, subscriptions and signing keys, checked
 * when it is built and changed in place; the registry (registry.h) indexes endpoints. */
#ifndef WH_ENDPOINT_H
#define WH_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "webhook/webhook.h"
#include "endpoint_settings.h"
#include "metrics.h"
#include "old_secrets.h"
#include "sign.h"

#define WH__MAX_SUBSCRIPTIONS 64

typedef struct wh__registry wh__registry;
typedef struct wh__delivery wh__delivery;

typedef struct wh__endpoint {
    char id[WH_ID_MAX];
    char *url;
    char **event_types; /* NULL-terminated, as given */
    char *description;
    char *user_key; /* the caller's name for it (wh_endpoint_spec.key); NULL: none */
    /* urls replaced while a request may still be built from them without the lock: kept
     * until the endpoint goes (a url changes only when its key is added again) */
    char **retired_urls;
    size_t n_retired_urls;
    char *secret;
    unsigned char key[WH__SECRET_KEY_MAX];
    size_t key_len;
    /* every old secret that may still sign, newest first, each until its own grace ends */
    struct wh__old_key {
        unsigned char key[WH__SECRET_KEY_MAX];
        size_t len;
        int64_t until_ms;
        char secret[WH__SECRET_TEXT_MAX]; /* as stored */
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
    /* rate limit: due deliveries waiting for a token, and when tokens are asked for next */
    wh__delivery *rate_head, *rate_tail;
    size_t rate_n;
    int64_t rate_wake_ms;
    size_t rate_idx;   /* in the scheduler's heap of waiting endpoints, while rate_waiting */
    bool rate_waiting;
    /* the bucket itself when the store shares none (one engine): tokens as of bucket_ms */
    double bucket_tokens;
    int64_t bucket_ms;
    wh__delivery *live_head; /* every live delivery to it, for look-ups by endpoint */
    int64_t failing_since_ms; /* 0 while the last attempt succeeded */
    wh__ep_metrics metrics;   /* counted by the driver, under the context's lock */
    int64_t version; /* of the stored row applied last; 0: never stored */
    /* its own settings (wh_endpoint_set), over the conf's; parsed from `settings`, the
     * stored text (endpoint_settings.h), which is NULL while there are none */
    char *settings;
    double rate_limit_per_s;    /* 0: none */
    bool ordering_run;          /* ordering "run" */
    int max_in_flight;          /* 0: endpoint.max_in_flight */
    long timeout_ms;            /* 0: http.timeout_ms */
    int64_t *retry_schedule_ms; /* NULL: retry.schedule */
    size_t retry_schedule_len;
    wh__ep_headers *headers;    /* extra request headers; NULL: none */
} wh__endpoint;

/* Validates and builds an endpoint (not yet added); id NULL: generate. The registry names
 * the event types it may subscribe to. */
wh__endpoint *wh__endpoint_build(const wh__registry *r, const wh_endpoint_spec *spec,
                                 const char *id, char *errstr, size_t errlen);
void wh__endpoint_unref(wh__endpoint *ep);
void wh__endpoint_info_fill(const wh__endpoint *ep, wh_endpoint_info *info);
/* The current secret stays old until old_until_ms (0: it stops at once); old secrets whose
 * grace ended by now_ms go. */
int wh__endpoint_set_secret(wh__endpoint *ep, const char *new_secret, int64_t old_until_ms,
                            int64_t now_ms, char *errstr, size_t errlen);
/* Takes `copy` (allocated) as the current secret, with its decoded key. */
void wh__endpoint_take_secret(wh__endpoint *ep, char *copy, const unsigned char *key,
                              size_t key_len);
/* The old secrets (as stored) become the old keys; one that does not decode is left out. */
void wh__endpoint_set_old_keys(wh__endpoint *ep, const wh__old_secret *v, size_t n);
/* The old keys as stored secrets, newest first; returns how many. */
size_t wh__endpoint_old_secrets(const wh__endpoint *ep, wh__old_secret v[WH__MAX_OLD_KEYS]);
void wh__endpoint_set_disabled(wh__endpoint *ep, const char *reason);
/* Enabled again: no reason, and the failing clock stopped. */
void wh__endpoint_set_enabled(wh__endpoint *ep);
/* Takes the stored settings text (NULL or "": none) and its parse; WH_ERR_NOMEM changes
 * nothing. */
int wh__endpoint_set_settings(wh__endpoint *ep, const char *stored);
/* Whether ep's settings are the stored text's (a parse that ran out of memory left them). */
bool wh__endpoint_settings_are(const wh__endpoint *ep, const char *stored);

/* What a key's update changes, checked and copied before anything is replaced. */
typedef struct wh__endpoint_fields {
    char *url, *description, *key;
    char **types;
} wh__endpoint_fields;

/* Checks and copies the fields (subs: NULL-terminated); on failure nothing is left to free. */
int wh__endpoint_fields_make(const wh__registry *r, const char *url, const char *const *subs,
                             const char *description, const char *key, wh__endpoint_fields *f,
                             char *errstr, size_t errlen);
void wh__endpoint_fields_free(wh__endpoint_fields *f);

#endif
