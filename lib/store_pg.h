/* Private to the PostgreSQL store's files: its state and the helpers they share. */
#ifndef WH_STORE_PG_H
#define WH_STORE_PG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg_conn.h"
#include "store.h"

/* A schema name is at most 63 bytes; quoted, with the channel's prefix, these fit. */
#define WH__PG_NAME_MAX 96

typedef struct wh__pg_store {
    wh__store base;
    wh__pg conn;
    char engine_id[WH_ID_MAX]; /* "" for a tool's connection */
    char host[128];            /* boot id and pid namespace: where `pid` means something */
    char schema[WH__PG_NAME_MAX];  /* as given: a plain lower-case name */
    char channel[WH__PG_NAME_MAX]; /* LISTEN/NOTIFY channel of this schema */
    int64_t lease_ms;
    int64_t dedup_window_ms;
    int64_t last_prune_ms, last_claim_check_us;
    bool read_only;
    /* deliveries whose claim may have been committed without this engine knowing (the
     * COMMIT's answer was lost): handed back to every engine once the connection is back */
    pthread_mutex_t fix_mu;
    struct wh__pg_fix {
        char event_id[WH_ID_MAX], endpoint_id[WH_ID_MAX]; /* "" endpoint: every one */
    } *fix;
    size_t n_fix, cap_fix;
} wh__pg_store;

/* store_pg.c: the engine's operations */
extern const wh__store_ops wh__pg_ops;

/* store_pg_claims.c: heartbeat, release and claim (see wh__store_ops) */
int wh__pg_heartbeat(wh__store *st, int64_t now_ms, bool *lost);
int wh__pg_release(wh__store *st);
int wh__pg_claim(wh__store *st, int64_t now_ms, bool all, wh__claim_cb cb, void *ud);
/* A delivery (every one of the event when endpoint_id is NULL) whose claim may have been
 * committed without this engine knowing: handed back to every engine once the connection
 * is back. */
void wh__pg_fix_add(wh__pg_store *s, const char *event_id, const char *endpoint_id);

/* store_pg_endpoints.c: the endpoint rows' operations (see wh__store_ops) */
int wh__pg_endpoint_insert(wh__store *st, const wh__endpoint_row *row);
int wh__pg_endpoint_delete(wh__store *st, const char *id);
int wh__pg_endpoint_change(wh__store *st, const wh__endpoint_change *c,
                           wh__endpoint_row_cb cb, void *ud);
int wh__pg_endpoints_load(wh__store *st, wh__endpoint_row_cb cb, void *ud);
int wh__pg_endpoint_upsert(wh__store *st, const wh__endpoint_row *row, bool secret_given,
                           wh__endpoint_row_cb cb, void *ud);
/* One column-level UPDATE of an endpoint; its version rises only when something changed. */
int wh__pg_apply_change(wh__pg *c, const wh__endpoint_change *ch);

/* store_pg_events.c: event_add and events_add (see wh__store_ops) */
int wh__pg_event_add(wh__store *st, wh__event_row *ev, const wh__target *t, size_t n);
int wh__pg_events_add(wh__store *st, wh__event_add *ev, size_t n);

/* store_pg_results.c: outcomes, their attempts and the endpoint changes they caused, in
 * one commit (see wh__store_ops.results) */
int wh__pg_results(wh__store *st, const wh__result *r, size_t n, wh__endpoint_change *c,
                   size_t nc);

/* store_pg_admin.c: the tools' operations (see wh__store_ops) */
int wh__pg_get_meta(wh__store *s, const char *key, char **value_out);
int wh__pg_queue_redelivery(wh__store *s, const char *event_id, const char *endpoint_id,
                            int64_t now_ms);
int wh__pg_queue_recovery(wh__store *s, const char *endpoint_id, int64_t since_ms,
                          int64_t now_ms);
int wh__pg_endpoint_stats(wh__store *s, void (*cb)(void *ud, const wh__endpoint_stats *st),
                          void *ud);
/* store_pg_metrics.c */
int wh__pg_attempt_stats(wh__store *s, void (*cb)(void *ud, const wh__attempt_stats *a),
                         void *ud, uint64_t *events);

/* Tells the other engines (after the commit): 'e' endpoints changed, 'w' work to claim. */
int wh__pg_notify(wh__pg *c, const char *channel, const char *what);

/* The SQL that wh_emit_pg runs on the host's connection, with the schema written in (the
 * host's search_path is the host's); malloc'd.
 * EXPIRE: $1 dedup id, $2 the oldest created_ms that still counts: an older event of that
 *   id no longer holds it.
 * INSERT: $1 id, $2 type, $3 body, $4 created_ms, $5 endpoint ids (text[]), $6 skip flags
 *   (boolean[]), $7 channel, $8 dedup id (NULL: none), $9 what the emit returns, $10 the run
 *   id (ordering per run). One row
 *   (notified, false, $9) when written; (NULL, true, its sendable) when $8 is stored already;
 *   none when a transaction that wrote $8 committed while this one waited for it.
 * FIND: $1 dedup id: (NULL, true, its sendable), read after such a wait. */
typedef enum { WH__PG_EMIT_EXPIRE, WH__PG_EMIT_INSERT, WH__PG_EMIT_FIND } wh__pg_emit_step;
char *wh__pg_emit_sql(const char *schema, wh__pg_emit_step step);
/* The schema and channel of a PostgreSQL store; false for any other store. */
bool wh__pg_store_names(const wh__store *s, const char **schema, const char **channel);

#endif
