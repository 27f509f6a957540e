/* Private to libwebhook: Endpoints: their settings, subscriptions and signing keys; the index by event type; to and from their stored rows. */
#ifndef WH_REGISTRY_H
#define WH_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "webhook/webhook.h"
#include "endpoint_settings.h"
#include "metrics.h"
#include "old_secrets.h"
#include "sign.h"
#include "store.h"

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
/* The endpoint with the caller's key, or NULL. */
wh__endpoint *wh__registry_find_key(const wh__registry *r, const char *key);
/* Unlinks (marks removed, drops the registry's reference). */
int wh__registry_remove(wh__registry *r, const char *id);
/* Endpoints subscribed to type index ti, enabled or not. */
wh__endpoint *const *wh__registry_match(const wh__registry *r, int ti, size_t *n);
size_t wh__registry_count(const wh__registry *r);
wh__endpoint *wh__registry_at(const wh__registry *r, size_t i);
void wh__endpoint_info_fill(const wh__endpoint *ep, wh_endpoint_info *info);
/* The current secret stays old until old_until_ms (0: it stops at once); old secrets whose
 * grace ended by now_ms go. */
int wh__endpoint_set_secret(wh__endpoint *ep, const char *new_secret, int64_t old_until_ms,
                            int64_t now_ms, char *errstr, size_t errlen);
void wh__endpoint_set_disabled(wh__endpoint *ep, const char *reason);
/* Takes the stored settings text (NULL or "": none) and its parse; WH_ERR_NOMEM changes
 * nothing. */
int wh__endpoint_set_settings(wh__endpoint *ep, const char *stored);
/* Whether ep's settings are the stored text's (a parse that ran out of memory left them). */
bool wh__endpoint_settings_are(const wh__endpoint *ep, const char *stored);

/* registry.c: endpoints to and from their stored rows */
wh__endpoint *wh__endpoint_from_row(const wh__registry *r, const wh__endpoint_row *row,
                                    char *errstr, size_t errlen);
/* Takes over what another process may change (enabled, reason, secrets, failing clock,
 * settings)
 * when the row's version is not the one applied last; the row's old secrets replace the
 * ones in memory. */
void wh__endpoint_apply_row(wh__endpoint *ep, const wh__endpoint_row *row);
/* wh__endpoint_apply_row, and also what a key's update changes (url, event_types,
 * description, key), moving the endpoint in the index by event type. WH_ERR_INVALID (with
 * errstr) and nothing changed when this engine cannot use the row's url or types. */
int wh__registry_apply_row(wh__registry *r, wh__endpoint *ep, const wh__endpoint_row *row,
                           char *errstr, size_t errlen);
/* An update of ep from a spec given for its key (memory store: the registry is the only
 * copy); the secret only when the spec has one. Nothing changed on failure. */
int wh__registry_update_from_spec(wh__registry *r, wh__endpoint *ep,
                                  const wh_endpoint_spec *spec);
/* ep as a row; the returned block holds its strings (free it). */
char *wh__endpoint_row_snapshot(const wh__endpoint *ep, wh__endpoint_row *row);

#endif
