/* Private to the SQLite store's files: its state and the helpers they share. */
#ifndef WH_STORE_SQLITE_H
#define WH_STORE_SQLITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event_log.h"
#include "sqlite_conn.h"
#include "store.h"

typedef struct wh__sqlite_store {
    wh__store base;
    wh__sq conn;
    char engine_id[WH_ID_MAX]; /* "" for a tool's connection */
    char host[128];            /* boot id and pid namespace: where `pid` means something */
    int64_t lease_ms;
    int64_t dedup_window_ms;
    int64_t data_version;
    int64_t last_prune_ms, last_checkpoint_us;
    bool read_only;
    char *path;
    /* the engine's log of emits (event_log.h), and the last of its records stored; NULL
     * with store.sync=full and for a tool */
    struct wh__event_log *log;
    int64_t log_folded;
    /* logs of engines taken over while their writers lived, as they were then: read again
     * only once they changed or their writer is gone (claims run one at a time) */
    struct {
        char engine_id[WH_ID_MAX];
        wh__log_mark mark;
    } live_logs[8];
    int n_live_logs;
} wh__sqlite_store;

/* store_sqlite.c: the engine's operations */
extern const wh__store_ops wh__sqlite_ops;
/* a row callback of wh__sq_run: the first column into the int64_t at ud */
int wh__sqlite_int64_row(void *ud, sqlite3_stmt *st);
/* wh_recover's search: deliveries to an endpoint that finished undelivered since a time */
extern const char wh__sqlite_finished_sql[];

/* store_sqlite_claims.c: heartbeat, release and claim (see wh__store_ops) */
int wh__sqlite_heartbeat(wh__store *st, int64_t now_ms, bool *lost);
int wh__sqlite_release(wh__store *st);
int wh__sqlite_claim(wh__store *st, int64_t now_ms, bool all, wh__claim_cb cb, void *ud);

/* store_sqlite_endpoints.c: the endpoint rows' operations (see wh__store_ops) */
int wh__sqlite_endpoint_insert(wh__store *st, const wh__endpoint_row *row);
int wh__sqlite_endpoint_delete(wh__store *st, const char *id);
int wh__sqlite_endpoint_change(wh__store *st, const wh__endpoint_change *c,
                               wh__endpoint_row_cb cb, void *ud);
int wh__sqlite_endpoints_load(wh__store *st, wh__endpoint_row_cb cb, void *ud);
int wh__sqlite_endpoint_upsert(wh__store *st, const wh__endpoint_row *row, bool secret_given,
                               wh__endpoint_row_cb cb, void *ud);
/* One column-level UPDATE of an endpoint, inside a write; its version rises only when
 * something changed. */
int wh__sqlite_apply_change(wh__sq *c, const wh__endpoint_change *ch);

/* store_sqlite_events.c: event_add, events_add and events_fold (see wh__store_ops) */
int wh__sqlite_event_add(wh__store *st, wh__event_row *ev, const wh__target *t, size_t n);
int wh__sqlite_events_add(wh__store *st, wh__event_add *ev, size_t n);
int wh__sqlite_events_fold(wh__store *st, wh__event_add *ev, size_t n);
/* an event's targets in the events table's form, into `local` when it fits, else
 * allocated (NULL: out of memory) */
char *wh__sqlite_join_targets(const wh__target *t, size_t n, char *local, size_t local_len);

/* store_sqlite_log.c: the log of emits */
int wh__sqlite_log_open(wh__sqlite_store *s, char *errstr, size_t errlen);
void wh__sqlite_log_close(wh__sqlite_store *s);
int wh__sqlite_events_log(wh__store *st, const wh__event_add *ev, size_t n);
/* In the write that takes over a dead engine: stores the events its log holds after its
 * row's mark, claimed by it still (the take-over moves them on), and raises the mark.
 * *held: the log, to close once the write is committed, and to remove then if it holds the
 * lock (NULL: it had none). *done: nothing more can come from its log (there is none, or
 * its writer is gone), so its row may go. */
int wh__sqlite_fold_dead_log(wh__sq *c, wh__sqlite_store *s, const char *engine_id,
                             struct wh__event_log **held, bool *done);
/* Once the write that read it is committed: a log read while its writer lived is
 * remembered as it was then (nothing, when its writer is gone). */
void wh__sqlite_log_read_live(wh__sqlite_store *s, const char *engine_id,
                              const struct wh__event_log *l);
/* Whether an engine taken for dead has nothing new for a take-over: its log was read while
 * its writer lived, and has neither changed nor lost its writer since. */
bool wh__sqlite_log_unchanged(wh__sqlite_store *s, const char *engine_id);

/* store_sqlite_admin.c: the tools' operations (see wh__store_ops) */
int wh__sqlite_get_meta(wh__store *s, const char *key, char **value_out);
int wh__sqlite_queue_redelivery(wh__store *s, const char *event_id, const char *endpoint_id,
                                int64_t now_ms);
int wh__sqlite_queue_recovery(wh__store *s, const char *endpoint_id, int64_t since_ms,
                              int64_t now_ms);
int wh__sqlite_endpoint_stats(wh__store *s, void (*cb)(void *ud, const wh__endpoint_stats *st),
                              void *ud);
/* store_sqlite_metrics.c */
int wh__sqlite_attempt_stats(wh__store *s, void (*cb)(void *ud, const wh__attempt_stats *a),
                             void *ud, uint64_t *events);

/* Walks an event's targets: endpoint ids, comma-separated, '!' before a skipped one
 * (also a plain list such as group_concat gives). */
typedef struct wh__target_iter {
    const char *next;
    const char *id; /* not NUL-terminated: len bytes */
    size_t len;
    bool skipped;
} wh__target_iter;
bool wh__target_next(wh__target_iter *it);
bool wh__target_in(const char *list, const char *id, size_t len);

/* SQL shared by the files: an event's targets not attempted yet (no deliveries row). An
 * event stored only to remember its caller's id has none. */
#define WH__SQL_TARGET_COUNT                                                               \
    "(CASE WHEN e.targets = '' THEN 0"                                                      \
    " ELSE length(e.targets) - length(replace(e.targets, ',', '')) + 1 END)"
#define WH__SQL_ROWS_OF_EVENT "(SELECT count(*) FROM deliveries d WHERE d.event_seq = e.seq)"

#endif
