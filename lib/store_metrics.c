/* A durable store's metrics, for webhookctl: the same families the engine counts, computed
 * from the rows the store keeps (deliveries by state, the attempt log), so they cover
 * log.retention and not a process's lifetime. Nothing on the wire is known here. The store
 * adds up the rows (endpoint_stats, attempt_stats); this file puts them together. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "metrics.h"
#include "store.h"
#include "util.h"

typedef struct {
    wh__metrics_entry *v;
    size_t n, cap;
    bool oom;
} metrics_list;

static void endpoint_row(void *ud, const wh__endpoint_stats *st)
{
    metrics_list *l = ud;
    if (!st->exists || l->oom)
        return; /* a removed endpoint's series end with it, as in the engine */
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        wh__metrics_entry *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->oom = true;
            return;
        }
        l->v = v, l->cap = cap;
    }
    wh__metrics_entry *e = &l->v[l->n];
    memset(e, 0, sizeof *e);
    snprintf(e->id, sizeof e->id, "%s", st->id);
    if (st->url && !(e->url = wh__strdup(st->url))) {
        l->oom = true;
        return;
    }
    l->n++;
    e->enabled = st->enabled;
    e->delivered = (uint64_t)st->delivered;
    e->failed = (uint64_t)st->failed;
    e->skipped = (uint64_t)st->skipped;
    e->pending = (uint64_t)st->pending;
    e->last_success_ms = st->last_success_ms;
}

static void attempts_row(void *ud, const wh__attempt_stats *a)
{
    metrics_list *l = ud;
    for (size_t i = 0; a->endpoint_id && i < l->n; i++) {
        wh__metrics_entry *e = &l->v[i];
        if (strcmp(e->id, a->endpoint_id) != 0)
            continue;
        e->attempts = a->attempts;
        e->retrying = a->retrying;
        memcpy(e->by_class, a->by_class, sizeof e->by_class);
        e->latency_sum_us = a->latency_sum_us;
        memcpy(e->cum, a->cum, sizeof e->cum);
        break;
    }
}

int wh__store_endpoint_metrics(wh__store *s, wh__metrics_entry **out, size_t *n_out,
                               uint64_t *events)
{
    if (!s->ops->attempt_stats)
        return wh__fail(NULL, 0, WH_ERR_STATE, "metrics: a %s store keeps no attempt log to read",
                        s->ops->name);
    metrics_list l = {0};
    int rc = wh__store_endpoint_stats(s, endpoint_row, &l);
    if (rc == WH_OK && l.oom)
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "metrics: out of memory");
    if (rc == WH_OK)
        rc = s->ops->attempt_stats(s, attempts_row, &l, events);
    if (rc != WH_OK) {
        wh__metrics_entries_free(l.v, l.n);
        return rc;
    }
    for (size_t i = 0; i < l.n; i++)
        wh__metrics_publish(&l.v[i]);
    *out = l.v;
    *n_out = l.n;
    return WH_OK;
}
