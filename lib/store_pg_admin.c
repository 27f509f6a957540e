/* What the tools do to a PostgreSQL store besides the engine's operations: meta values,
 * queueing redeliveries and recoveries for whichever engine claims them (and waking the
 * engines to do so), statistics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "store.h"
#include "store_pg.h"
#include "util.h"

#define S(st) ((wh__pg_store *)(st))

typedef struct {
    const char *key;
    char *value;
    bool oom;
} meta_args;

static int meta_row(void *ud, const PGresult *r, int i)
{
    meta_args *m = ud;
    free(m->value);
    m->oom = !(m->value = wh__strdup(PQgetvalue(r, i, 0)));
    return 1;
}

static int get_meta(wh__pg *c, void *arg)
{
    meta_args *m = arg;
    int rc = wh__pg_run(c, "meta", "SELECT value FROM meta WHERE key = $1", meta_row, m, "t", m->key);
    return rc == WH_OK && m->oom ? wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory") : rc;
}

int wh__pg_get_meta(wh__store *s, const char *key, char **value_out)
{
    meta_args m = {.key = key};
    int rc = wh__pg_read(&S(s)->conn, get_meta, &m);
    *value_out = rc == WH_OK ? m.value : NULL;
    if (rc != WH_OK)
        free(m.value);
    return rc;
}

typedef struct {
    wh__pg_store *s;
    const char *event_id, *endpoint_id;
    int64_t since_ms, now_ms;
    int64_t queued;
} requeue_args;

static int found_row(void *ud, const PGresult *r, int i)
{
    *(int64_t *)ud = wh__pg_int(r, i, 0);
    return 1;
}

/* Finished deliveries become pending ones that no engine holds yet: the first engine to
 * look (woken by the notification) claims them. A first attempt not made yet, or a retry,
 * is on its way already. A redelivery keeps no order: its run is dropped. */
#define REQUEUE_SET                                                                       \
    "UPDATE deliveries SET state = 0, attempts = 0, next_ms = $3, skip_only = false,"     \
    " updated_ms = $3, claimed_by = NULL, redelivery = true, run_id = NULL"

static int queue_redelivery(wh__pg *c, void *arg)
{
    requeue_args *q = arg;
    int64_t seq = 0, found = 0;
    int rc = wh__pg_run(c, "event", "SELECT seq FROM events WHERE id = $1 ORDER BY seq DESC LIMIT 1", found_row, &seq, "t",
                        q->event_id);
    if (rc == WH_OK && !seq)
        return wh__fail(NULL, 0, WH_ERR_NOTFOUND, "no event \"%.63s\" in the store", q->event_id);
    if (rc == WH_OK && q->endpoint_id) {
        rc = wh__pg_run(c, "endpoint", "SELECT 1 FROM endpoints WHERE id = $1", found_row, &found,
                        "t", q->endpoint_id);
        if (rc == WH_OK && !found)
            return wh__fail(NULL, 0, WH_ERR_NOTFOUND, "no endpoint \"%.63s\"", q->endpoint_id);
        found = 0;
        if (rc == WH_OK)
            rc = wh__pg_run(c, "event",
                            "SELECT 1 FROM deliveries WHERE event_seq = $1 AND endpoint_id = $2",
                            found_row, &found, "it", seq, q->endpoint_id);
        if (rc == WH_OK && !found)
            return wh__fail(NULL, 0, WH_ERR_NOTFOUND, "event %.63s never went to endpoint \"%.63s\"",
                            q->event_id, q->endpoint_id);
    }
    if (rc == WH_OK)
        rc = wh__pg_run(c, "deliveries",
                        REQUEUE_SET " WHERE event_seq = $1 AND state <> 0"
                        " AND ($2::text IS NULL OR endpoint_id = $2)"
                        " AND endpoint_id IN (SELECT id FROM endpoints)",
                        NULL, NULL, "iti", seq, q->endpoint_id, q->now_ms);
    q->queued = wh__pg_changes(c);
    return rc == WH_OK && q->queued ? wh__pg_notify(c, q->s->channel, "w") : rc;
}

int wh__pg_queue_redelivery(wh__store *s, const char *event_id, const char *endpoint_id,
                            int64_t now_ms)
{
    requeue_args q = {.s = S(s), .event_id = event_id, .endpoint_id = endpoint_id, .now_ms = now_ms};
    int rc = wh__pg_write(&S(s)->conn, queue_redelivery, &q, NULL);
    return rc == WH_OK ? (int)q.queued : rc;
}

static int queue_recovery(wh__pg *c, void *arg)
{
    requeue_args *q = arg;
    int64_t found = 0;
    int rc = wh__pg_run(c, "endpoint", "SELECT 1 FROM endpoints WHERE id = $1", found_row, &found,
                        "t", q->endpoint_id);
    if (rc == WH_OK && !found)
        return wh__fail(NULL, 0, WH_ERR_NOTFOUND, "no endpoint \"%.63s\"", q->endpoint_id);
    /* a delivery is one row per (event, endpoint): one delivered since is not FAILED any
     * more, and one queued already is pending */
    if (rc == WH_OK)
        rc = wh__pg_run(c, "deliveries",
                        REQUEUE_SET " WHERE endpoint_id = $1 AND state IN (2, 3) AND updated_ms >= $2"
                        " AND EXISTS(SELECT 1 FROM events e WHERE e.seq = event_seq)",
                        NULL, NULL, "tii", q->endpoint_id, q->since_ms, q->now_ms);
    q->queued = wh__pg_changes(c);
    return rc == WH_OK && q->queued ? wh__pg_notify(c, q->s->channel, "w") : rc;
}

int wh__pg_queue_recovery(wh__store *s, const char *endpoint_id, int64_t since_ms, int64_t now_ms)
{
    requeue_args q = {.s = S(s), .endpoint_id = endpoint_id, .since_ms = since_ms, .now_ms = now_ms};
    int rc = wh__pg_write(&S(s)->conn, queue_recovery, &q, NULL);
    return rc == WH_OK ? (int)q.queued : rc;
}

/* ---- statistics ------------------------------------------------------------------------- */

typedef struct {
    wh__endpoint_stats st;
    char *id, *url;
} stats_entry;

typedef struct {
    stats_entry *v;
    size_t n, cap;
    bool oom;
} stats_list;

static void stats_clear(stats_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].id);
        free(l->v[i].url);
    }
    l->n = 0;
}

static int stats_row(void *ud, const PGresult *r, int i)
{
    stats_list *l = ud;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        stats_entry *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->oom = true;
            return 1;
        }
        l->v = v, l->cap = cap;
    }
    stats_entry *e = &l->v[l->n];
    memset(e, 0, sizeof *e);
    const char *url = wh__pg_text(r, i, 1);
    if (!(e->id = wh__strdup(PQgetvalue(r, i, 0))) || (url && !(e->url = wh__strdup(url)))) {
        free(e->id);
        l->oom = true;
        return 1;
    }
    l->n++;
    e->st = (wh__endpoint_stats){
        .enabled = !PQgetisnull(r, i, 2) && wh__pg_bool(r, i, 2),
        .exists = wh__pg_bool(r, i, 3),
        .delivered = wh__pg_int(r, i, 4),
        .failed = wh__pg_int(r, i, 5),
        .skipped = wh__pg_int(r, i, 6),
        .pending = wh__pg_int(r, i, 7),
        .last_success_ms = wh__pg_int(r, i, 8),
    };
    return 0;
}

static int endpoint_stats(wh__pg *c, void *arg)
{
    stats_list *l = arg;
    stats_clear(l);
    /* the endpoints, then removed ones that still have deliveries; by state */
    int rc = wh__pg_run(
        c, "stats",
        "SELECT i.id, ep.url, ep.enabled, ep.id IS NOT NULL,"
        " count(d.state) FILTER (WHERE d.state = 1), count(d.state) FILTER (WHERE d.state = 2),"
        " count(d.state) FILTER (WHERE d.state = 3), count(d.state) FILTER (WHERE d.state = 0),"
        " coalesce(max(d.updated_ms) FILTER (WHERE d.state = 1), 0)"
        " FROM (SELECT id FROM endpoints UNION SELECT DISTINCT endpoint_id FROM deliveries) i"
        " LEFT JOIN endpoints ep ON ep.id = i.id LEFT JOIN deliveries d ON d.endpoint_id = i.id"
        " GROUP BY i.id, ep.id ORDER BY ep.id IS NULL, ep.created_ms, ep.ord, i.id",
        stats_row, l, NULL);
    return rc == WH_OK && l->oom ? wh__fail(NULL, 0, WH_ERR_NOMEM, "stats: out of memory") : rc;
}

int wh__pg_endpoint_stats(wh__store *s, void (*cb)(void *ud, const wh__endpoint_stats *st),
                          void *ud)
{
    stats_list l = {0};
    int rc = wh__pg_read(&S(s)->conn, endpoint_stats, &l);
    /* rows are handed over outside the transaction */
    for (size_t i = 0; rc == WH_OK && i < l.n; i++) {
        l.v[i].st.id = l.v[i].id;
        l.v[i].st.url = l.v[i].url;
        cb(ud, &l.v[i].st);
    }
    stats_clear(&l);
    free(l.v);
    return rc;
}
