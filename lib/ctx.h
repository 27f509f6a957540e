/* Private to libwebhook: The context that wires the pieces: emit, drive, the engine's side of its store. */
#ifndef WH_CTX_H
#define WH_CTX_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "event.h"
#include "logsink.h"
#include "ordering.h"
#include "registry.h"
#include "scheduler.h"
#include "store.h"

#define WH__STORE_WATCH_MS 250 /* other processes' changes and work show within a second */
/* Attempt outcomes are committed in batches: this many, or this old, whichever first. */
#define WH__RESULTS_BATCH 512
#define WH__RESULTS_DELAY_MS 10

struct wh__notice_item;

/* An outcome waiting for its commit, with the record that logs it. */
typedef struct wh__pending_result {
    wh__result r;
    wh__record *rec; /* also in the outbox until the commit; may be NULL */
    wh__event *ev;   /* a reference: the body outlives the delivery until the commit */
} wh__pending_result;

struct wh_ctx {
    wh_conf *conf;
    pthread_mutex_t lock; /* registry, scheduler, counters; never held across a callback */
    wh__registry *reg;
    wh__sched sched;
    wh__pool *pool; /* events and deliveries (pool.c) */
    wh__order order; /* chains of deliveries per (endpoint, run) held in emit order */
    bool closing;    /* wh_destroy frees what is left: nothing is scheduled any more */
    wh_transport tr;
    int epfd;  /* the wh_fd: eventfd + timerfd + transport fd */
    int evfd;  /* emit and stop wake the driver */
    int tfd;   /* next due retry or transport timer */
    int wake_pending; /* atomic: an eventfd write is already on its way */
    wh_log_sink sinks[WH__MAX_SINKS + 1];
    size_t n_sinks;
    wh_stats_info stats;  /* pending and in_flight derived on read */
    uint64_t live_deliveries; /* created and not yet final */
    /* records made under the lock, handed to sinks after it is released */
    wh__record **outbox;
    size_t outbox_n, outbox_cap;
    /* drive state */
    pthread_t thread;
    bool thread_running;
    bool fd_mode; /* the host waits on wh_fd: keep its timer armed */
    int stop_requested; /* atomic */
    int driving; /* atomic: a thread is inside wh_poll, wh_flush or the delivery thread */
    wh__delivery *all_head; /* every live delivery, for shutdown */
    /* the store, and this engine's place in it */
    wh__store *store;
    char engine_id[WH_ID_MAX];
    pthread_mutex_t ep_lock; /* orders endpoint changes between the store and the registry */
    wh__pending_result *results; /* outcomes waiting to be committed by the driver */
    size_t results_n, results_cap;
    int committing; /* commits that took results and have not finished: their records are read */
    wh__endpoint_change *changes; /* endpoint changes verdicts made, committed with them */
    size_t changes_n, changes_cap;
    int64_t results_since_us; /* when the oldest uncommitted result came */
    bool commit_failing;      /* the last commit failed: no new attempts until one works */
    int64_t commit_retry_us;
    int64_t last_change_check_us, last_heartbeat_ms;
    char (*unloadable)[WH_ID_MAX]; /* endpoints whose rows the last sync could not load */
    size_t n_unloadable;
    char unloadable_why[512];
    bool resync; /* a claim met an endpoint the registry does not know yet */
    bool owns_transport_and_sinks;
    size_t n_conf_sinks; /* sinks[0..n_conf_sinks) came from the conf */
    /* notices made under the lock, told on the driving thread once what they report is
     * stored: outcomes and changes are numbered as queued, and the commits say how far
     * they have stored */
    struct wh__notice_item **notices;
    size_t notices_n, notices_cap;
    uint64_t queued_seq, stored_seq;
    int wakeup_requested; /* atomic: wh_wakeup was called; the next wait ends at once */
    /* emits in the store's log not yet folded into its tables, in log order (unfolded.h) */
    pthread_mutex_t unfolded_lock; /* the list, and the order of the log's appends */
    pthread_mutex_t fold_lock;     /* one fold at a time */
    struct wh__unfolded *unfolded;
    size_t unfolded_n, unfolded_cap; /* unfolded_n also read atomically without the lock */
    int64_t unfolded_since_us;       /* when the oldest of them was logged; 0: none */
    unsigned folds_unemptied;        /* folds in a row that left the log unemptied (fold_lock) */
};

int64_t wh__now_ms(const wh_ctx *ctx);
/* Whether the store is asked before the first attempt of an ordered delivery (engines may
 * share it); the memory store has one engine and is never asked. */
static inline bool wh__order_asks_store(const wh_ctx *ctx)
{
    return ctx->store && ctx->store->ops->version >= 4 && ctx->store->ops->order_blocked;
}
void wh__wake(wh_ctx *ctx);
/* Under the lock: a delivery reached a final outcome; unrefs and frees it. */
void wh__delivery_free(wh_ctx *ctx, wh__delivery *d);
/* Under the lock: queue a record for the sinks; false (record freed) when out of memory. */
bool wh__emit_record(wh_ctx *ctx, wh__record *r);
/* Under the lock: remember an outcome (and the record logging it) for the next commit. */
void wh__queue_result(wh_ctx *ctx, const wh__delivery *d, int state, int64_t next_ms,
                      wh__record *rec);
/* Under the lock: an endpoint change a verdict made, committed with the outcomes. */
void wh__queue_change(wh_ctx *ctx, const wh__endpoint_change *c);
/* Without the lock, on the driving thread: hand queued records to the sinks. */
void wh__flush_records(wh_ctx *ctx);
void wh__drive_shutdown(wh_ctx *ctx);
/* Under the lock: a new pending delivery of ev to ep, linked into the context (not scheduled). */
wh__delivery *wh__delivery_new(wh_ctx *ctx, wh__event *ev, wh__endpoint *ep, int64_t next_ms);
/* Without the lock: stores and schedules deliveries made by wh__delivery_new for events
 * sent again (redelivery); those pending elsewhere already are dropped and counted in
 * *already. (wh_emit stores a new event with its deliveries itself.) */
int wh__deliveries_commit(wh_ctx *ctx, wh__delivery **ds, size_t *n, int64_t now_ms,
                          int *already);
/* Without the lock: stores e with a delivery to each endpoint subscribed to its type, but
 * `exclude` (NULL: none), and schedules them; with `dedup` (and emit.dedup_window), an event
 * stored under e's id within the window queues nothing. Returns how many will be sent (the
 * first emit's for a duplicate), or < 0 with nothing queued. */
int wh__emit_event(wh_ctx *ctx, wh__event *e, const char *exclude, bool dedup, int64_t now);
/* Emits es[0..n-1] in one commit, all or none (dedup[i]: es[i]'s id is the caller's); returns
 * the deliveries that will be sent, and each event's in sendable_out (may be NULL). */
int wh__emit_events(wh_ctx *ctx, wh__event *const *es, size_t n, const char *exclude,
                    const bool *dedup, int64_t now, int *sendable_out);
/* Commits waiting outcomes and changes; WH_OK when nothing waits. */
int wh__commit_results(wh_ctx *ctx);
/* The same, with ep_lock held: before an endpoint change or a sync reads rows back. */
int wh__commit_results_locked(wh_ctx *ctx);

/* flow.c: an endpoint's rate limit and ordering */
/* Under the lock: ep's rate_limit_per_s or ordering_run changed; the work already queued
 * follows the new values. */
void wh__endpoint_flow_changed(wh_ctx *ctx, wh__endpoint *ep);

/* store_sync.c: the engine's side of the store */
/* wh_new: open the store named by the conf, load the endpoints and claim pending work. */
int wh__store_attach(wh_ctx *ctx, char *errstr, size_t errlen);
/* Driver: lease, other processes' changes, work to claim, housekeeping. */
void wh__store_upkeep(wh_ctx *ctx);
/* Under ep_lock: applies the store's rows to the registry. */
int wh__sync_endpoints(wh_ctx *ctx);

#endif
