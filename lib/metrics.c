/* Per-endpoint counters and latency histograms, and the Prometheus text that reports them.
 * Counting is O(1) per attempt, under the context's lock with the other counters; the text
 * is written from a snapshot, with no lock held. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "metrics.h"

#define WH__LATENCY_ELEM(b) b,
const int64_t wh__latency_le_us[WH__LATENCY_BUCKETS] = {WH__LATENCY_BOUNDS_US(WH__LATENCY_ELEM)};

static const char *const class_names[WH_STATUS_CLASSES] = {"none", "1xx", "2xx", "3xx",
                                                           "4xx",  "5xx", "other"};

int wh__status_class(int http_status)
{
    if (http_status == 0)
        return 0;
    return http_status >= 100 && http_status <= 599 ? http_status / 100 : WH_STATUS_CLASSES - 1;
}

void wh__metrics_count(wh__ep_metrics *m, wh_outcome outcome, bool attempted, int http_status,
                       int64_t duration_us, int64_t now_ms)
{
    switch (outcome) {
    case WH_OUTCOME_DELIVERED:
        m->delivered++;
        m->last_success_ms = now_ms;
        break;
    case WH_OUTCOME_RETRYING:
        m->retrying++;
        break;
    case WH_OUTCOME_FAILED:
        m->failed++;
        break;
    case WH_OUTCOME_SKIPPED:
        m->skipped++;
        break;
    }
    if (!attempted)
        return;
    m->attempts++;
    m->by_class[wh__status_class(http_status)]++;
    if (duration_us < 0)
        duration_us = 0;
    size_t b = 0;
    while (b < WH__LATENCY_BUCKETS && duration_us > wh__latency_le_us[b])
        b++;
    m->bucket[b]++;
    m->latency_sum_us += duration_us;
}

void wh__metrics_entry_from(wh__metrics_entry *e, const wh__ep_metrics *m, uint64_t in_flight)
{
    e->delivered = m->delivered;
    e->failed = m->failed;
    e->skipped = m->skipped;
    e->retrying = m->retrying;
    e->attempts = m->attempts;
    e->in_flight = in_flight;
    e->pending = m->live > in_flight ? m->live - in_flight : 0;
    memcpy(e->by_class, m->by_class, sizeof e->by_class);
    uint64_t sum = 0;
    for (size_t i = 0; i < WH__LATENCY_BUCKETS; i++)
        e->cum[i] = sum += m->bucket[i];
    e->latency_sum_us = m->latency_sum_us;
    e->last_success_ms = m->last_success_ms;
}

void wh__metrics_publish(wh__metrics_entry *e)
{
    wh_endpoint_metrics *p = &e->pub;
    *p = (wh_endpoint_metrics){
        .endpoint_id = e->id,
        .url = e->url,
        .enabled = e->enabled,
        .delivered = e->delivered,
        .failed = e->failed,
        .skipped = e->skipped,
        .retrying = e->retrying,
        .attempts = e->attempts,
        .latency_buckets = WH__LATENCY_BUCKETS,
        .latency_le_us = wh__latency_le_us,
        .latency_count = e->cum,
        .latency_sum_us = e->latency_sum_us,
        .pending = e->pending,
        .in_flight = e->in_flight,
        .last_success_ms = e->last_success_ms,
    };
    memcpy(p->attempts_by_class, e->by_class, sizeof p->attempts_by_class);
}

void wh__metrics_entries_free(wh__metrics_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(e[i].url);
    free(e);
}

/* ---- the Prometheus text exposition format ------------------------------------------- */

/* A label value: backslash, double quote and line feed escaped. */
static void put_label(FILE *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            fputc('\\', out), fputc(*v, out);
        else if (*v == '\n')
            fputs("\\n", out);
        else
            fputc(*v, out);
    }
}

static void family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{endpoint="id"[,extra]} */
static void sample_start(FILE *out, const char *name, const wh__metrics_entry *e, const char *extra)
{
    fprintf(out, "%s{endpoint=\"", name);
    put_label(out, e->id);
    fprintf(out, "\"%s%s} ", extra ? "," : "", extra ? extra : "");
}

static void sample_u64(FILE *out, const char *name, const wh__metrics_entry *e,
                       const char *extra, uint64_t v)
{
    sample_start(out, name, e, extra);
    fprintf(out, "%llu\n", (unsigned long long)v);
}

/* Microseconds (or milliseconds, with scale 1000) as seconds, exactly. */
static void put_seconds(FILE *out, int64_t v, int64_t per_second, int digits)
{
    if (v < 0)
        v = 0;
    fprintf(out, "%lld.%0*lld", (long long)(v / per_second), digits, (long long)(v % per_second));
}

int wh__metrics_prometheus(FILE *out, const wh__metrics_entry *e, size_t n,
                           const wh__metrics_totals *t)
{
    family(out, "webhook_events_emitted_total", "counter", "Events accepted by wh_emit.");
    fprintf(out, "webhook_events_emitted_total %llu\n", (unsigned long long)t->emitted);

    family(out, "webhook_endpoint_enabled", "gauge",
           "1 while the endpoint is enabled, 0 once disabled (by hand, 410 Gone or endpoint.disable_after).");
    for (size_t i = 0; i < n; i++)
        sample_u64(out, "webhook_endpoint_enabled", &e[i], NULL, e[i].enabled ? 1 : 0);

    family(out, "webhook_deliveries_total", "counter",
           "Deliveries that ended, by outcome: delivered (2xx), failed (given up), skipped (endpoint disabled, removed or address refused).");
    for (size_t i = 0; i < n; i++) {
        sample_u64(out, "webhook_deliveries_total", &e[i], "outcome=\"delivered\"", e[i].delivered);
        sample_u64(out, "webhook_deliveries_total", &e[i], "outcome=\"failed\"", e[i].failed);
        sample_u64(out, "webhook_deliveries_total", &e[i], "outcome=\"skipped\"", e[i].skipped);
    }

    family(out, "webhook_retries_total", "counter",
           "Attempts that failed and were scheduled again.");
    for (size_t i = 0; i < n; i++)
        sample_u64(out, "webhook_retries_total", &e[i], NULL, e[i].retrying);

    family(out, "webhook_attempts_total", "counter",
           "Attempts finished, by HTTP status class (none: no response, e.g. refused or timed out).");
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < WH_STATUS_CLASSES; k++) {
            char label[32];
            snprintf(label, sizeof label, "status_class=\"%s\"", class_names[k]);
            sample_u64(out, "webhook_attempts_total", &e[i], label, e[i].by_class[k]);
        }

    family(out, "webhook_attempt_duration_seconds", "histogram",
           "How long attempts took, from the start of the request to the end of the response.");
    for (size_t i = 0; i < n; i++) {
        for (size_t b = 0; b < WH__LATENCY_BUCKETS; b++) {
            char le[48];
            snprintf(le, sizeof le, "le=\"%g\"", (double)wh__latency_le_us[b] / 1e6);
            sample_u64(out, "webhook_attempt_duration_seconds_bucket", &e[i], le, e[i].cum[b]);
        }
        sample_u64(out, "webhook_attempt_duration_seconds_bucket", &e[i], "le=\"+Inf\"",
                   e[i].attempts);
        sample_start(out, "webhook_attempt_duration_seconds_sum", &e[i], NULL);
        put_seconds(out, e[i].latency_sum_us, 1000000, 6);
        fputc('\n', out);
        sample_u64(out, "webhook_attempt_duration_seconds_count", &e[i], NULL, e[i].attempts);
    }

    family(out, "webhook_pending_deliveries", "gauge",
           "Deliveries waiting for an attempt, due now or scheduled for a retry.");
    for (size_t i = 0; i < n; i++)
        sample_u64(out, "webhook_pending_deliveries", &e[i], NULL, e[i].pending);

    if (t->has_in_flight) {
        family(out, "webhook_in_flight_requests", "gauge", "Requests on the wire now.");
        for (size_t i = 0; i < n; i++)
            sample_u64(out, "webhook_in_flight_requests", &e[i], NULL, e[i].in_flight);
    }

    family(out, "webhook_last_success_timestamp_seconds", "gauge",
           "When a delivery last succeeded, in Unix seconds; 0: never.");
    for (size_t i = 0; i < n; i++) {
        sample_start(out, "webhook_last_success_timestamp_seconds", &e[i], NULL);
        put_seconds(out, e[i].last_success_ms, 1000, 3);
        fputc('\n', out);
    }
    if (fflush(out) != 0 || ferror(out))
        return wh__fail(NULL, 0, WH_ERR_IO, "metrics: could not write: %m");
    return WH_OK;
}
