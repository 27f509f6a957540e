/* stats and metrics: per-endpoint counts from the store, as a table, JSON lines or the
 * Prometheus text format. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "webhook/webhook.h"
#include "commands.h"
#include "metrics.h"
#include "output.h"

typedef struct {
    table t;
    bool json, oom;
} stats_out;

static cJSON *stats_json(const wh__endpoint_stats *st)
{
    cJSON *o = cJSON_CreateObject();
    int64_t finished = st->delivered + st->failed;
    bool ok = o && cJSON_AddStringToObject(o, "endpoint_id", st->id) &&
              ctl_json_text(o, "url", st->exists ? st->url : NULL) &&
              ctl_json_bool(o, "removed", !st->exists) &&
              (st->exists ? ctl_json_bool(o, "enabled", st->enabled)
                          : cJSON_AddNullToObject(o, "enabled") != NULL) &&
              ctl_json_number(o, "delivered", (double)st->delivered) &&
              ctl_json_number(o, "failed", (double)st->failed) &&
              ctl_json_number(o, "skipped", (double)st->skipped) &&
              ctl_json_number(o, "pending", (double)st->pending) &&
              ctl_json_time(o, "last_success", st->last_success_ms) &&
              (finished > 0 ? ctl_json_number(o, "success_rate",
                                          (double)st->delivered / (double)finished)
                            : cJSON_AddNullToObject(o, "success_rate") != NULL);
    return ctl_json_done(o, ok);
}

static void stats_row(void *ud, const wh__endpoint_stats *st)
{
    stats_out *out = ud;
    if (out->json) {
        if (!out->oom && !ctl_json_print(stats_json(st)))
            out->oom = true;
        return;
    }
    char num[4][24], last[32], rate[16];
    int64_t v[4] = {st->delivered, st->failed, st->skipped, st->pending};
    for (int i = 0; i < 4; i++)
        snprintf(num[i], sizeof num[i], "%lld", (long long)v[i]);
    ctl_format_time(st->last_success_ms, last);
    /* of the deliveries that finished after being sent: skipped ones were never tried */
    int64_t finished = st->delivered + st->failed;
    if (finished > 0)
        snprintf(rate, sizeof rate, "%.1f%%", 100.0 * (double)st->delivered / (double)finished);
    else
        snprintf(rate, sizeof rate, "-");
    const char *url = st->exists ? st->url : "(removed)";
    ctl_table_add(&out->t, (const char *[]){st->id, st->exists ? (st->enabled ? "yes" : "no") : "-",
                                        num[0], num[1], num[2], num[3], last, rate, url});
}

int cmd_stats(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)args;
    stats_out out = {.t = {.ncols = 9}, .json = c->set[O_JSON]};
    if (!out.json)
        ctl_table_add(&out.t, (const char *[]){"ENDPOINT", "ENABLED", "DELIVERED", "FAILED", "SKIPPED",
                                           "PENDING", "LAST_SUCCESS", "SUCCESS_RATE", "URL"});
    int rc = wh__store_endpoint_stats(s, stats_row, &out);
    int prc = out.json ? (out.oom ? ctl_fail("out of memory") : EXIT_OK) : ctl_table_print(&out.t);
    return rc != WH_OK ? ctl_store_fail(rc, "stats") : prc;
}

int cmd_metrics(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)c, (void)args;
    wh__metrics_entry *e;
    size_t n;
    wh__metrics_totals t = {0};
    int rc = wh__store_endpoint_metrics(s, &e, &n, &t.emitted);
    if (rc != WH_OK)
        return ctl_store_fail(rc, "metrics");
    rc = wh__metrics_prometheus(stdout, e, n, &t);
    wh__metrics_entries_free(e, n);
    return rc == WH_OK ? EXIT_OK : ctl_fail("writing the output: %s", strerror(errno));
}

