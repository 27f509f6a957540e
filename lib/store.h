/* Private to libwebhook: the durable store behind one table of operations.
 *
 * A store speaks plain rows and changes only: it never sees the engine's live endpoints,
 * deliveries or scheduler, and the engine never asks which store it has. The memory store,
 * the SQLite store and the PostgreSQL store implement it; a table grows the way SQLite's sqlite3_io_methods does
 * (new operations go at the end and raise `version`).
 *
 * Several engines may share one durable store. Each registers itself and renews a lease;
 * a pending delivery is attempted only by the engine whose claim it carries, and the claims
 * of an engine whose lease ran out (or whose process is gone) are taken by another. */
#ifndef WH_STORE_H
#define WH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "webhook/webhook.h"

typedef struct wh__store wh__store;

/* Every bit wh_log_filter.outcomes may carry. */
#define WH__OUTCOMES_ALL                                                                   \
    (WH_OUTCOME_BIT(WH_OUTCOME_DELIVERED) | WH_OUTCOME_BIT(WH_OUTCOME_RETRYING) |            \
     WH_OUTCOME_BIT(WH_OUTCOME_FAILED) | WH_OUTCOME_BIT(WH_OUTCOME_SKIPPED))

enum { WH__DSTATE_PENDING = 0, WH__DSTATE_DELIVERED = 1, WH__DSTATE_FAILED = 2, WH__DSTATE_SKIPPED = 3 };

/* An endpoint as stored; strings borrowed for the duration of a callback. */
typedef struct wh__endpoint_row {
    const char *id, *url, *event_types /* comma-separated */, *secret;
    /* every old secret with the end of its grace, newest first (see old_secrets.h) */
    const char *old_secrets;
    /* the newest of them, written too for an engine of an older library that still has the
     * store open (it knows only this one); read as the newest when the list lacks it, since
     * such an engine rotated */
    const char *old_secret;
    int64_t old_until_ms;
    const char *disabled_reason, *description;
    const char *settings; /* wh_endpoint_set's, a JSON object (endpoint_settings.h); NULL or "": none */
    const char *key; /* the caller's name for it, unique in the store; NULL: none */
    int64_t created_ms, failing_since_ms;
    int64_t version; /* raised by every change: a row seen before is not applied again */
    bool enabled;
} wh__endpoint_row;

/* One column-level change to an endpoint: two writers never undo each other's work. */
typedef enum {
    WH__EP_ENABLE = 1,   /* enabled, clears the reason and the failing clock */
    WH__EP_DISABLE,      /* an enabled endpoint, with `reason` (NULL by hand); one already
                            disabled keeps its own */
    WH__EP_ROTATE,       /* `secret` becomes current; the stored one stays old until
                            old_until_ms (0: not at all), the stored old ones each until their
                            own grace ends; computed from the row as stored, in the write */
    WH__EP_FAILING,      /* failing_since_ms > 0 starts the clock (if stopped), 0 stops it */
    WH__EP_SETTING,      /* setting_key becomes setting_value (NULL: its default) in the
                            settings as stored, in the write (wh__ep_settings_update) */
} wh__endpoint_change_kind;

typedef struct wh__endpoint_change {
    wh__endpoint_change_kind kind;
    char endpoint_id[WH_ID_MAX];
    const char *reason, *secret;
    const char *setting_key, *setting_value;
    int64_t old_until_ms, failing_since_ms;
    int64_t now_ms; /* ROTATE: the caller's clock; old secrets whose grace ended by then go */
    /* out, DISABLE through results(): the row's version once it is disabled (by this change
     * or one before it); 0 when the row is gone. The engines name the change by it. */
    int64_t version;
} wh__endpoint_change;

/* Where an event goes, fixed at emit. */
typedef struct wh__target {
    const char *endpoint_id;
    bool skip_only; /* the endpoint was disabled at emit: logged SKIPPED, never sent */
} wh__target;

typedef struct wh__event_row {
    int64_t seq; /* set by the store */
    const char *id, *type, *body;
    const char *run_id; /* kept for ordering per run (NULL: none, or no target orders by run) */
    size_t body_len;
    int64_t created_ms;
    int sendable; /* what the emit returns, kept with the event */
    /* the caller's id: while an event of this dedup_id created at or after dedup_after_ms is
     * stored, nothing is written and `duplicate` is set, with seq and sendable that event's
     * (in one transaction with the check: engines sharing the store emit it once). NULL:
     * no check, and an event without targets need not be stored. */
    const char *dedup_id;
    int64_t dedup_after_ms;
    bool duplicate; /* out */
} wh__event_row;

/* An event to add with where it goes: events_add takes several in one commit. */
typedef struct wh__event_add {
    wh__event_row row;
    const wh__target *targets;
    size_t n_targets;
} wh__event_add;

/* A pending delivery (again) from the API: redelivery; the store marks it as one, and so
 * every attempt it logs for it. */
typedef struct wh__delivery_row {
    int64_t event_seq;
    const char *event_id, *endpoint_id;
    int64_t next_ms;
    bool accepted; /* out: false when it is pending already (here or in another engine) */
} wh__delivery_row;

/* A pending delivery this engine now holds the claim of, with its event. */
typedef struct wh__claimed_row {
    int64_t event_seq;
    const char *event_id, *event_type, *endpoint_id;
    const char *body;
    size_t body_len;
    int attempts;
    int64_t next_ms;
    bool skip_only;
    bool endpoint_stored; /* the endpoint's row exists (else it was removed) */
    bool redelivery; /* queued again after it finished (by an engine or a tool) */
    const char *run_id; /* its event's run, for ordering; NULL for a redelivery */
} wh__claimed_row;

/* The first attempt of an ordered delivery, asked about before it is made. */
typedef struct wh__order_query {
    int64_t event_seq;
    const char *endpoint_id, *run_id;
    bool blocked; /* out: an earlier delivery of the same endpoint and run is pending,
                     held by another engine or by none */
} wh__order_query;

/* Tokens asked of an endpoint's bucket in the store (burst: wh__rate_burst of the rate). */
typedef struct wh__rate_ask {
    const char *endpoint_id;
    double rate_per_s;
    int want;
    int granted;     /* out */
    int64_t wait_ms; /* out: until its next whole token */
} wh__rate_ask;

/* The outcome of one attempt (or of a delivery settled without one). */
typedef struct wh__result {
    int64_t event_seq; /* a delivery is (event_seq, endpoint_id) */
    char event_id[WH_ID_MAX], endpoint_id[WH_ID_MAX];
    bool skip_only;
    int state; /* WH__DSTATE_* */
    int attempts;
    int64_t next_ms;
    const wh_attempt *attempt; /* what to log; NULL: nothing (borrowed) */
    const char *event_body;    /* for a store that keeps events only in its log */
    size_t event_body_len;
} wh__result;

typedef struct wh__endpoint_stats {
    const char *id, *url; /* url NULL once the endpoint is removed */
    bool exists, enabled;
    int64_t delivered, failed, skipped, pending; /* deliveries by state */
    int64_t last_success_ms;                     /* 0: never */
} wh__endpoint_stats;

/* What an endpoint's logged attempts add up to (a skip is not an attempt), for the tools'
 * metrics: as wh__metrics_count would have counted them. */
typedef struct wh__attempt_stats {
    const char *endpoint_id;
    uint64_t attempts, retrying, by_class[WH_STATUS_CLASSES];
    int64_t latency_sum_us;
    uint64_t cum[WH__LATENCY_BUCKETS]; /* cumulative, over wh__latency_le_us */
} wh__attempt_stats;

typedef void (*wh__endpoint_row_cb)(void *ud, const wh__endpoint_row *row);
/* Called inside the store's transaction: it decides (true: this engine takes the delivery)
 * and copies what it needs, and acts only once claim() has returned WH_OK. */
typedef bool (*wh__claim_cb)(void *ud, const wh__claimed_row *row);
typedef void (*wh__attempt_cb)(void *ud, const wh_attempt *a);

typedef struct wh__store_ops {
    int version; /* 7 */
    const char *name;
    bool durable; /* pending work outlives the process */
    void (*close)(wh__store *s);

    /* -- engines sharing the store -- */
    /* Renews this engine's lease; *lost: it had run out and another engine took the claims. */
    int (*heartbeat)(wh__store *s, int64_t now_ms, bool *lost);
    /* Clean shutdown: the claims go to the other engines at once. */
    int (*release)(wh__store *s);
    /* Claims pending work that no live engine holds (everything claimable when `all`, else
     * what queued or released deliveries and dead engines left) that cb takes; what cb does
     * not take is left to other engines. now_ms: wall-clock time, as every lease. */
    int (*claim)(wh__store *s, int64_t now_ms, bool all, wh__claim_cb cb, void *ud);
    /* True once another process has committed since the last call. */
    int (*changed)(wh__store *s, bool *changed);

    /* -- endpoints -- */
    int (*endpoint_insert)(wh__store *s, const wh__endpoint_row *row);
    int (*endpoint_delete)(wh__store *s, const char *id);
    /* NOTFOUND when there is no such endpoint; cb (if any) gets the row as now stored. */
    int (*endpoint_change)(wh__store *s, const wh__endpoint_change *c, wh__endpoint_row_cb cb,
                           void *ud);
    int (*endpoints_load)(wh__store *s, wh__endpoint_row_cb cb, void *ud);

    /* -- events, deliveries, outcomes -- */
    /* Durable (sets ev->seq) and claimed by this engine before it returns. */
    int (*event_add)(wh__store *s, wh__event_row *ev, const wh__target *targets, size_t n);
    int (*deliveries_add)(wh__store *s, wh__delivery_row *d, size_t n, int64_t now_ms);
    /* Outcomes and the endpoint changes they caused, in one commit. */
    int (*results)(wh__store *s, const wh__result *r, size_t n, wh__endpoint_change *c,
                   size_t nc);

    /* -- the log -- */
    int (*log_query)(wh__store *s, const wh_log_filter *f, wh__attempt_cb cb, void *ud);
    /* The stored event and the endpoints it went to (cb once per endpoint id); returns how
     * many, 0 when there is no such event. */
    int (*find_event)(wh__store *s, const char *event_id,
                      void (*cb)(void *ud, int64_t seq, const char *type, const char *body,
                                 size_t len, const char *endpoint_id),
                      void *ud);
    /* Event ids with a FAILED or SKIPPED delivery to endpoint_id since since_ms. */
    int (*find_failed)(wh__store *s, const char *endpoint_id, int64_t since_ms,
                       void (*cb)(void *ud, const char *event_id), void *ud);
    /* Housekeeping, bounded in time: retention, checkpoints. */
    int (*upkeep)(wh__store *s, int64_t now_ms, int64_t retention_ms);

    /* -- version 2 -- */
    /* How often the driver looks at the store for other processes' changes and work
     * (0: WH__STORE_WATCH_MS). */
    int watch_ms;
    /* What the tools do besides the operations above (NULL in a store without tools); see
     * the wh__store_* functions below. */
    int (*get_meta)(wh__store *s, const char *key, char **value_out);
    int (*queue_redelivery)(wh__store *s, const char *event_id, const char *endpoint_id,
                            int64_t now_ms);
    int (*queue_recovery)(wh__store *s, const char *endpoint_id, int64_t since_ms,
                          int64_t now_ms);
    int (*endpoint_stats)(wh__store *s, void (*cb)(void *ud, const wh__endpoint_stats *st),
                          void *ud);

    /* -- version 3 -- */
    /* Per endpoint with logged attempts, and how many events the store keeps (NULL: a store
     * the tools cannot take metrics from). */
    int (*attempt_stats)(wh__store *s, void (*cb)(void *ud, const wh__attempt_stats *a),
                         void *ud, uint64_t *events);

    /* -- version 4: what holds across the engines sharing a store (NULL: one engine) -- */
    /* Ordering per run: of each query, whether an earlier delivery of its endpoint and run
     * (by event) is pending in the store and not held by this engine. */
    int (*order_blocked)(wh__store *s, wh__order_query *q, size_t n);
    /* Rate limits: takes tokens from the endpoints' shared buckets, one round trip for all. */
    int (*rate_take)(wh__store *s, wh__rate_ask *a, size_t n);

    /* -- version 5 -- */
    /* row->key set: inserts row, or, when an endpoint with that key is stored, updates it in
     * place (url, event_types, description, enabled; the secret only when secret_given),
     * raising its version when that changed something; in one transaction, so that engines
     * adding the same key at once end with one endpoint. cb gets the row as now stored. A
     * store without endpoint rows (memory) returns WH_OK without calling cb. */
    int (*endpoint_upsert)(wh__store *s, const wh__endpoint_row *row, bool secret_given,
                           wh__endpoint_row_cb cb, void *ud);

    /* -- version 6 -- */
    /* event_add for each of ev[0..n-1], in order, in one commit: all of them or none (an
     * event_add before it in the batch counts for a later one's dedup_id). */
    int (*events_add)(wh__store *s, wh__event_add *ev, size_t n);
    /* -- version 7: a log of emits (event_log.h; NULL: none) -- */
    /* Writes the events to the store's log, as safe as a commit on return, and in the order
     * of the calls; dedup_id and run_id must be NULL. WH_ERR_STATE: it keeps no log now
     * (store.sync=full, a tool's connection): events_add them. */
    int (*events_log)(wh__store *s, const wh__event_add *ev, size_t n);
    /* Stores the oldest n logged events not yet stored, which ev[] are in log order, in one
     * commit; sets each seq. The log forgets them once they are stored: WH_OK when it is
     * empty now, 1 when events logged meanwhile kept it from being emptied. */
    int (*events_fold)(wh__store *s, wh__event_add *ev, size_t n);
} wh__store_ops;


struct wh__store {
    const wh__store_ops *ops; /* every implementation starts with this */
};

/* events_add, or event_add one by one for a store without it. */
static inline int wh__store_events_add(wh__store *s, wh__event_add *ev, size_t n)
{
    if (s->ops->version >= 6 && s->ops->events_add)
        return s->ops->events_add(s, ev, n);
    int rc = WH_OK;
    for (size_t i = 0; i < n && rc == WH_OK; i++)
        rc = s->ops->event_add(s, &ev[i].row, ev[i].targets, ev[i].n_targets);
    return rc;
}

/* store_memory.c: the default; the attempt log is a ring of `ring_size` records. */
int wh__store_memory_open(size_t ring_size, wh__store **out, char *errstr, size_t errlen);

/* store_sqlite_open.c: opens (and for an engine, registers in) a SQLite store.
 * engine_id NULL: a tool's connection, which never claims work. read_only: opened without
 * write access, created or migrated never. */
typedef struct wh__sqlite_options {
    const char *path;
    bool sync_full, read_only, create;
    const char *engine_id;
    int64_t lease_ms, now_ms;
    const char *const *event_types; /* written to meta for the tools; NULL: left alone */
    int64_t dedup_window_ms; /* retention keeps an event with a dedup_id at least this long */
} wh__sqlite_options;
int wh__store_sqlite_open(const wh__sqlite_options *o, wh__store **out, char *errstr, size_t errlen);

/* store_pg_open.c: opens (and for an engine, registers in) a PostgreSQL store. `conninfo`
 * is a postgresql:// or postgres:// URI or libpq's key=value form; the tables live in
 * `schema`. engine_id NULL: a tool's connection. read_only: migrated never, written never. */
typedef struct wh__pg_options {
    const char *conninfo, *schema;
    bool read_only, create;
    const char *engine_id;
    int64_t lease_ms, now_ms;
    const char *const *event_types; /* written to meta for the tools; NULL: left alone */
    int64_t dedup_window_ms; /* retention keeps an event with a dedup_id at least this long */
} wh__pg_options;
int wh__store_pg_open(const wh__pg_options *o, wh__store **out, char *errstr, size_t errlen);
/* Whether a `store` value names a PostgreSQL database (a URI, or key=value). */
bool wh__store_is_pg(const char *store);
/* Checks a PostgreSQL `store` value without connecting. */
int wh__store_pg_check(const char *store, char *errstr, size_t errlen);
/* Checks a store.schema value: a plain lower-case SQL name. */
int wh__store_schema_check(const char *schema, char *errstr, size_t errlen);

/* Where a process id can be checked: the same boot and the same pid namespace. */
void wh__store_host_key(char *out, size_t len);

/* What webhookctl does to a durable store besides the operations above.
 * A meta value (malloc'd; NULL: absent). */
static inline int wh__store_get_meta(wh__store *s, const char *key, char **value_out)
{
    *value_out = NULL;
    return s->ops->get_meta ? s->ops->get_meta(s, key, value_out) : WH_OK;
}
/* Queues event_id again for every existing endpoint it went to, or only endpoint_id, for
 * whichever engine claims it first; returns rows queued, NOTFOUND (with wh_last_error) for
 * an unknown event or endpoint or one the event never went to. */
static inline int wh__store_queue_redelivery(wh__store *s, const char *event_id,
                                             const char *endpoint_id, int64_t now_ms)
{
    return s->ops->queue_redelivery(s, event_id, endpoint_id, now_ms);
}
/* Queues again each event with a FAILED or SKIPPED delivery to endpoint_id updated since
 * since_ms; returns rows queued, NOTFOUND for an unknown endpoint. */
static inline int wh__store_queue_recovery(wh__store *s, const char *endpoint_id,
                                           int64_t since_ms, int64_t now_ms)
{
    return s->ops->queue_recovery(s, endpoint_id, since_ms, now_ms);
}
/* Per endpoint (those in the endpoints table, then removed ones that still have deliveries). */
static inline int wh__store_endpoint_stats(wh__store *s,
                                           void (*cb)(void *ud, const wh__endpoint_stats *st),
                                           void *ud)
{
    return s->ops->endpoint_stats(s, cb, ud);
}
/* store_metrics.c: every existing endpoint's metrics as far as a durable store knows them
 * (in_flight 0), and how many events it keeps; *out is freed with wh__metrics_entries_free.
 * WH_ERR_STATE for a store without attempt_stats. */
struct wh__metrics_entry;
int wh__store_endpoint_metrics(wh__store *s, struct wh__metrics_entry **out, size_t *n_out,
                               uint64_t *events);

#endif
