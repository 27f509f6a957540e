/* Private to libwebhook: a durable store's outcomes committed on a thread of the context's
 * own, so that the thread driving delivery goes on sending while a batch of outcomes is
 * stored (the store's cost of a batch then overlaps the HTTP work instead of adding to it).
 * The driver asks; the committer runs wh__commit_results, then wakes the driver, which tells
 * the sinks and the notices of what was stored. Off (conf store.commit_thread false), or on
 * the memory store, the driver commits itself. */
#ifndef WH_COMMITTER_H
#define WH_COMMITTER_H

#include <pthread.h>
#include <stdbool.h>

typedef struct wh__committer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool running, asked, stop;
} wh__committer;

struct wh_ctx;

/* Starts the thread; WH_OK or WH_ERR_NOMEM (no thread could be made). */
int wh__committer_start(struct wh_ctx *ctx);
/* Whether the thread commits (else the caller does, at once). */
bool wh__committer_running(const struct wh_ctx *ctx);
/* Asks for a commit of whatever is queued when it runs; returns at once. */
void wh__committer_ask(struct wh_ctx *ctx);
/* Joins the thread (a commit under way ends first); what is still queued is left to the
 * caller. Safe when it never started. */
void wh__committer_stop(struct wh_ctx *ctx);

#endif
