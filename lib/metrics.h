/* Private to libwebhook: per-endpoint counters and latency histograms, and their Prometheus
 * text; the engine counts into them, webhookctl fills them from a store. */
#ifndef WH_METRICS_H
#define WH_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "webhook/webhook.h"

/* The latency buckets' upper bounds in microseconds, as an X-macro so that the SQL that
 * computes them from a store's attempts is a literal built from the same list. */
#define WH__LATENCY_BOUNDS_US(X)                                                           \
    X(5000) X(10000) X(25000) X(50000) X(100000) X(250000) X(500000) X(1000000) X(2500000) \
    X(5000000) X(10000000) X(30000000)
#define WH__LATENCY_COUNT_ONE(b) +1
enum { WH__LATENCY_BUCKETS = 0 WH__LATENCY_BOUNDS_US(WH__LATENCY_COUNT_ONE) };
extern const int64_t wh__latency_le_us[WH__LATENCY_BUCKETS];

/* One endpoint's counts, kept in the endpoint under the context's lock. */
typedef struct wh__ep_metrics {
    uint64_t delivered, failed, skipped, retrying, attempts;
    uint64_t by_class[WH_STATUS_CLASSES];
    uint64_t bucket[WH__LATENCY_BUCKETS + 1]; /* not cumulative; the last is above every bound */
    int64_t latency_sum_us;
    int64_t last_success_ms;
    uint64_t live; /* deliveries created and not yet final */
} wh__ep_metrics;

/* The index into attempts_by_class of an attempt's HTTP status (0: no response). */
int wh__status_class(int http_status);
/* An attempt's verdict (or a delivery settled without one: attempted false), O(1). */
void wh__metrics_count(wh__ep_metrics *m, wh_outcome outcome, bool attempted, int http_status,
                       int64_t duration_us, int64_t now_ms);

/* One endpoint's metrics as reported: the public view and what it points to. */
typedef struct wh__metrics_entry {
    char id[WH_ID_MAX];
    char *url; /* owned; may be NULL */
    bool enabled;
    uint64_t delivered, failed, skipped, retrying, attempts, pending, in_flight;
    uint64_t by_class[WH_STATUS_CLASSES];
    uint64_t cum[WH__LATENCY_BUCKETS]; /* cumulative */
    int64_t latency_sum_us, last_success_ms;
    wh_endpoint_metrics pub; /* set by wh__metrics_publish */
} wh__metrics_entry;

/* Fills an entry's counts from an endpoint's (the buckets made cumulative). */
void wh__metrics_entry_from(wh__metrics_entry *e, const wh__ep_metrics *m, uint64_t in_flight);
/* Points e->pub at e's fields; call once e no longer moves. */
void wh__metrics_publish(wh__metrics_entry *e);
void wh__metrics_entries_free(wh__metrics_entry *e, size_t n);

/* What a report holds besides the endpoints. */
typedef struct wh__metrics_totals {
    uint64_t emitted;
    bool has_in_flight; /* a store does not know what is on the wire */
} wh__metrics_totals;

/* The Prometheus text exposition format (version 0.0.4). WH_OK or WH_ERR_IO. */
int wh__metrics_prometheus(FILE *out, const wh__metrics_entry *e, size_t n,
                           const wh__metrics_totals *t);

#endif
