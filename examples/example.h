/* What the drive-mode examples share, so that each of them shows only how it drives delivery:
 * the command line, a context with one endpoint, a log sink that prints every attempt, and the
 * final tally.
 *
 *   <example> --url http://127.0.0.1:PORT/PATH --secret whsec_... [--events N]
 *
 * Every example emits N events (default 10) for the one endpoint at URL, drives delivery until
 * each has been delivered or given up (at most GIVE_UP_MS), and exits 0 only if all were
 * delivered. Run examples/receiver next to it to see the signatures checked
 * (examples/run_examples.sh does both). */
#ifndef WH_EXAMPLE_H
#define WH_EXAMPLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "webhook/webhook.h"

#define GIVE_UP_MS 20000

typedef struct example {
    const char *name, *url, *secret;
    int events;
    wh_ctx *ctx;
    /* written by the log sink on the driving thread, read by the thread that waits */
    atomic_int finished, delivered;
    /* called once, from the log sink, when the last event has finished (may be NULL) */
    void (*on_done)(struct example *ex);
    void *host; /* the example's own state, for on_done */
} example;

static inline long long example_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void example_attempt(void *ud, const wh_attempt *a)
{
    example *ex = ud;
    printf("%s: %s attempt %d -> %s (HTTP %d)%s%s\n", ex->name, a->event_id, a->attempt,
           wh_outcome_name(a->outcome), a->http_status, a->error ? ": " : "", a->error ? a->error : "");
    fflush(stdout);
    if (a->outcome == WH_OUTCOME_RETRYING)
        return;
    if (a->outcome == WH_OUTCOME_DELIVERED)
        atomic_fetch_add(&ex->delivered, 1);
    if (atomic_fetch_add(&ex->finished, 1) + 1 == ex->events && ex->on_done)
        ex->on_done(ex);
}

/* Reads the command line and makes the context and its endpoint; exits 2 on a usage error,
 * 1 on any other. */
static inline void example_init(example *ex, int argc, char **argv)
{
    ex->name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    ex->events = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--url") == 0)
            ex->url = argv[i + 1];
        else if (strcmp(argv[i], "--secret") == 0)
            ex->secret = argv[i + 1];
        else if (strcmp(argv[i], "--events") == 0)
            ex->events = atoi(argv[i + 1]);
    }
    if (!ex->url || !ex->secret || ex->events < 1 || argc % 2 == 0) {
        fprintf(stderr, "usage: %s --url URL --secret whsec_... [--events N]\n", ex->name);
        exit(2);
    }
    char err[256];
    wh_conf *conf = wh_conf_new();
    /* the receiver is on loopback, which the library refuses unless allowed; retries come
     * quickly so that a failing receiver shows within the example's time */
    if (wh_conf_set(conf, "security.allow_cidrs", "127.0.0.1/32,::1/128", err, sizeof err) != WH_OK ||
        wh_conf_set(conf, "retry.schedule", "200ms,500ms,1s", err, sizeof err) != WH_OK ||
        wh_conf_add_log_sink(conf, &(wh_log_sink){.write = example_attempt, .ud = ex}) != WH_OK) {
        fprintf(stderr, "%s: configuration: %s\n", ex->name, err);
        exit(1);
    }
    ex->ctx = wh_new(conf, err, sizeof err);
    if (!ex->ctx) {
        fprintf(stderr, "%s: wh_new: %s\n", ex->name, err);
        exit(1);
    }
    char ep[WH_ID_MAX];
    int rc = wh_endpoint_add(ex->ctx, &(wh_endpoint_spec){.url = ex->url, .secret = ex->secret}, ep);
    if (rc != WH_OK) {
        fprintf(stderr, "%s: wh_endpoint_add: %s\n", ex->name, wh_last_error());
        exit(1);
    }
}

/* Emits the i-th event (0-based): a run started, its tasks completed, the run completed. */
static inline int example_emit(example *ex, int i)
{
    char run[32], task[32];
    snprintf(run, sizeof run, "run_%d", i / 5);
    snprintf(task, sizeof task, "task_%d", i);
    bool first = i % 5 == 0, last = i % 5 == 4 || i == ex->events - 1;
    wh_event ev = {.run_id = run, .status = "ok"};
    if (first && !last) {
        ev.event_type = "workflow_run.started";
        ev.status = "running";
    } else if (last) {
        ev.event_type = "workflow_run.completed";
        ev.status = "completed";
    } else {
        ev.event_type = "task_run.completed";
        ev.task_id = task;
        ev.status = "completed";
    }
    int rc = wh_emit(ex->ctx, &ev, NULL);
    if (rc < 0)
        fprintf(stderr, "%s: wh_emit: %s\n", ex->name, wh_last_error());
    return rc;
}

static inline bool example_done(example *ex)
{
    return atomic_load(&ex->finished) >= ex->events;
}

/* Prints the tally, ends the context, and returns the exit status. */
static inline int example_finish(example *ex)
{
    int delivered = atomic_load(&ex->delivered);
    printf("%s: %d of %d events delivered\n", ex->name, delivered, ex->events);
    wh_destroy(ex->ctx);
    return delivered == ex->events ? 0 : 1;
}

#endif
