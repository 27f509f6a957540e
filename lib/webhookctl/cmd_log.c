/* log, redeliver and recover: the attempt log read, and deliveries queued again. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "webhook/webhook.h"
#include "commands.h"
#include "event.h"
#include "logsink.h"
#include "output.h"
#include "util.h"

#define LIMIT_MAX 1000000

static void log_row_table(void *ud, const wh_attempt *a)
{
    char when[32], attempt[16], status[16], latency[32];
    ctl_format_time(a->started_ms, when);
    snprintf(attempt, sizeof attempt, "%d", a->attempt);
    if (a->http_status)
        snprintf(status, sizeof status, "%d", a->http_status);
    else
        snprintf(status, sizeof status, "-");
    if (a->duration_us > 0)
        snprintf(latency, sizeof latency, "%.1fms", (double)a->duration_us / 1000.0);
    else
        snprintf(latency, sizeof latency, "-");
    ctl_table_add(ud, (const char *[]){when, a->event_type, a->event_id, a->endpoint_id, attempt,
                                   a->redelivery ? "yes" : "no", wh_outcome_name(a->outcome),
                                   status, latency, a->run_id, a->task_id, a->error});
}

static void log_row_json(void *ud, const wh_attempt *a)
{
    char *line = wh__attempt_json(a);
    if (!line) {
        *(bool *)ud = true;
        return;
    }
    puts(line);
    cJSON_free(line);
}

/* --outcome delivered,failed: the set of outcomes, or a usage error. */
static int parse_outcomes(const char *list, unsigned *out)
{
    *out = 0;
    for (const char *p = list, *end; *p; p = *end ? end + 1 : end) {
        end = p + strcspn(p, ",");
        size_t len = (size_t)(end - p);
        int found = -1;
        for (int o = WH_OUTCOME_DELIVERED; o <= WH_OUTCOME_SKIPPED; o++)
            if (strlen(wh_outcome_name((wh_outcome)o)) == len &&
                strncmp(wh_outcome_name((wh_outcome)o), p, len) == 0)
                found = o;
        if (found < 0)
            return ctl_usage_error("--outcome: \"%.*s\" is not an outcome (delivered, retrying,"
                               " failed, skipped)", (int)len, p);
        *out |= WH_OUTCOME_BIT(found);
    }
    if (!*out)
        return ctl_usage_error("--outcome: name at least one of delivered, retrying, failed, skipped");
    return EXIT_OK;
}

/* --type must name an event type the store knows: a typo is an error, not an empty log. */
static int check_type(wh__store *s, const char *type)
{
    char *joined = NULL;
    const char **types = NULL;
    int rc = ctl_known_types(s, &joined, &types);
    if (rc != EXIT_OK)
        return rc;
    const char *const *known = types ? types : wh__builtin_types;
    bool found = false;
    size_t len = 0;
    for (const char *const *t = known; *t; t++) {
        found |= strcmp(*t, type) == 0;
        len += strlen(*t) + 2;
    }
    if (!found) {
        char *list = calloc(1, len + 1);
        for (const char *const *t = known; list && *t; t++)
            strcat(strcat(list, t == known ? "" : ", "), *t);
        char *shown = ctl_clean_copy(type);
        rc = ctl_fail("--type: \"%s\" is not an event type of this store (known: %s)",
                  shown ? shown : "?", list ? list : "?");
        free(shown);
        free(list);
    }
    free(types);
    free(joined);
    return rc;
}

int cmd_log(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)args;
    wh_log_filter f = {
        .endpoint_id = c->val[O_ENDPOINT],
        .event_id = c->val[O_EVENT],
        .event_type = c->val[O_TYPE],
        /* given up only: a retrying attempt may still be delivered */
        .outcomes = c->set[O_FAILED] ? WH_OUTCOME_BIT(WH_OUTCOME_FAILED) : 0,
        .limit = 100,
    };
    int rc;
    if (c->set[O_FAILED] && c->set[O_OUTCOME])
        return ctl_usage_error("log: --failed is --outcome failed; give one of them");
    if (c->set[O_OUTCOME] && (rc = parse_outcomes(c->val[O_OUTCOME], &f.outcomes)) != EXIT_OK)
        return rc;
    if (c->set[O_SINCE]) {
        int64_t ago;
        if ((rc = ctl_parse_duration(O_SINCE, c->val[O_SINCE], &ago)) != EXIT_OK)
            return rc;
        f.since_ms = wh__wall_ms() - ago;
        if (f.since_ms <= 0)
            f.since_ms = 1;
    }
    if (c->set[O_LIMIT]) {
        char *end;
        errno = 0;
        long n = strtol(c->val[O_LIMIT], &end, 10);
        if (errno || end == c->val[O_LIMIT] || *end || n < 1 || n > LIMIT_MAX)
            return ctl_usage_error("--limit: \"%s\" is not a number from 1 to %d", c->val[O_LIMIT],
                               LIMIT_MAX);
        f.limit = (int)n;
    }
    if (c->set[O_TYPE] && (rc = check_type(s, c->val[O_TYPE])) != EXIT_OK)
        return rc;
    if (c->set[O_JSON]) {
        bool oom = false;
        int n = s->ops->log_query(s, &f, log_row_json, &oom);
        if (n < 0)
            return ctl_store_fail(n, "log");
        return oom ? ctl_fail("out of memory") : EXIT_OK;
    }
    /* the columns of older versions keep their places; the free-form error stays last */
    table t = {.ncols = 12};
    ctl_table_add(&t, (const char *[]){"TIME", "EVENT_TYPE", "EVENT_ID", "ENDPOINT", "ATTEMPT",
                                   "REDELIVERY", "OUTCOME", "HTTP", "LATENCY", "RUN", "TASK",
                                   "ERROR"});
    int n = s->ops->log_query(s, &f, log_row_table, &t);
    rc = ctl_table_print(&t);
    return n < 0 ? ctl_store_fail(n, "log") : rc;
}

/* ---- redelivery, recovery, statistics ---------------------------------------------------------- */

int cmd_redeliver(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)c;
    const char *event = args[0], *endpoint = args[1];
    int n = wh__store_queue_redelivery(s, event, endpoint, wh__wall_ms());
    if (n < 0)
        return ctl_store_fail(n, "redeliver");
    if (n == 0 && endpoint)
        printf("queued nothing: %s is still on its way to %s\n", event, endpoint);
    else if (n == 0)
        printf("queued nothing: %s is still on its way to every endpoint it went to that"
               " still exists\n", event);
    else
        printf("queued %d %s of %s\n", n, n == 1 ? "delivery" : "deliveries", event);
    return EXIT_OK;
}

int cmd_recover(wh__store *s, const cmdline *c, const char *const *args)
{
    if (!c->set[O_SINCE])
        return ctl_usage_error("recover: --since is required (e.g. --since 24h)");
    int64_t ago;
    int rc = ctl_parse_duration(O_SINCE, c->val[O_SINCE], &ago);
    if (rc != EXIT_OK)
        return rc;
    int64_t now = wh__wall_ms();
    int n = wh__store_queue_recovery(s, args[0], now - ago > 0 ? now - ago : 0, now);
    if (n < 0)
        return ctl_store_fail(n, "recover");
    printf("queued %d %s to %s\n", n, n == 1 ? "delivery" : "deliveries", args[0]);
    return EXIT_OK;
}

