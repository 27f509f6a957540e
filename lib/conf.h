/* Private to libwebhook: The settings of a context, as parsed from their text. */
#ifndef WH_CONF_H
#define WH_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "webhook/webhook.h"

#define WH__MAX_SINKS 16

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
    int64_t dedup_window_ms; /* emit.dedup_window; 0: off */
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
    void (*notify)(void *ud, const wh_notice *n);
    void *notify_ud;
};

/* Parses value as wh_conf_set parses conf_key, into `into` (zeroed by the caller, which frees
 * what the parse allocated); messages name `shown`. For the keys an endpoint overrides. */
int wh__conf_parse_as(wh_conf *into, const char *conf_key, const char *shown, const char *value,
                      char *errstr, size_t errlen);

#endif
