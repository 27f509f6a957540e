/* The memory store: nothing survives the process. Events live as long as their deliveries
 * (the engine holds them); the attempt log is a ring of the latest records, which is also
 * what redelivery and recovery find events in. There is one engine, so no claims. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "store.h"

typedef struct entry {
    wh_attempt a; /* strings below are owned by the entry */
    int64_t event_seq;
    char event_id[WH_ID_MAX], event_type[WH_ID_MAX], endpoint_id[WH_ID_MAX];
    char *url, *error, *response, *event_body;
    size_t event_body_len;
} entry;

typedef struct {
    wh__store base;
    pthread_mutex_t mu;
    entry **slots;
    size_t cap, next, n;
    int64_t seq;
} memory_store;

#define M(st) ((memory_store *)(st))

static void entry_free(entry *e)
{
    if (!e)
        return;
    free(e->url);
    free(e->error);
    free(e->response);
    free(e->event_body);
    free(e);
}

static char *copy_bytes(const char *p, size_t n, bool *oom)
{
    if (!p)
        return NULL;
    char *c = malloc(n + 1);
    if (!c) {
        *oom = true;
        return NULL;
    }
    memcpy(c, p, n);
    c[n] = '\0';
    return c;
}

static entry *entry_new(const wh_attempt *a, int64_t seq, const char *body, size_t body_len)
{
    entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    bool oom = false;
    snprintf(e->event_id, sizeof e->event_id, "%s", a->event_id);
    snprintf(e->event_type, sizeof e->event_type, "%s", a->event_type);
    snprintf(e->endpoint_id, sizeof e->endpoint_id, "%s", a->endpoint_id);
    e->url = copy_bytes(a->url, a->url ? strlen(a->url) : 0, &oom);
    e->error = copy_bytes(a->error, a->error ? strlen(a->error) : 0, &oom);
    e->response = copy_bytes(a->response_body, a->response_len, &oom);
    e->event_body = copy_bytes(body, body_len, &oom);
    if (oom) {
        entry_free(e);
        return NULL;
    }
    e->event_body_len = body_len;
    e->event_seq = seq;
    e->a = *a;
    e->a.event_id = e->event_id;
    e->a.event_type = e->event_type;
    e->a.endpoint_id = e->endpoint_id;
    e->a.url = e->url;
    e->a.error = e->error;
    e->a.response_body = e->response;
    return e;
}

/* Under mu: the k-th newest entry. */
static entry *newest(memory_store *m, size_t k)
{
    return m->slots[(m->next + m->cap - 1 - k) % m->cap];
}

static void close_store(wh__store *st)
{
    memory_store *m = M(st);
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++)
        entry_free(m->slots[i]);
    free(m->slots);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static int heartbeat(wh__store *st, int64_t now_ms, bool *lost)
{
    (void)st, (void)now_ms;
    *lost = false;
    return WH_OK;
}

static int release(wh__store *st)
{
    (void)st;
    return WH_OK;
}

static int claim(wh__store *st, int64_t now_ms, bool all, wh__claim_cb cb, void *ud)
{
    (void)st, (void)now_ms, (void)all, (void)cb, (void)ud;
    return WH_OK;
}

static int changed(wh__store *st, bool *out)
{
    (void)st;
    *out = false;
    return WH_OK;
}

static int endpoint_insert(wh__store *st, const wh__endpoint_row *row)
{
    (void)st, (void)row;
    return WH_OK;
}

static int endpoint_delete(wh__store *st, const char *id)
{
    (void)st, (void)id;
    return WH_OK;
}

static int endpoint_change(wh__store *st, const wh__endpoint_change *c, wh__endpoint_row_cb cb,
                           void *ud)
{
    (void)st, (void)c, (void)cb, (void)ud;
    return WH_OK;
}

static int endpoints_load(wh__store *st, wh__endpoint_row_cb cb, void *ud)
{
    (void)st, (void)cb, (void)ud;
    return WH_OK;
}

static int event_add(wh__store *st, wh__event_row *ev, const wh__target *t, size_t n)
{
    (void)t, (void)n;
    ev->seq = __atomic_add_fetch(&M(st)->seq, 1, __ATOMIC_RELAXED);
    return WH_OK;
}

static int deliveries_add(wh__store *st, wh__delivery_row *d, size_t n, int64_t now_ms)
{
    (void)st, (void)now_ms;
    for (size_t i = 0; i < n; i++)
        d[i].accepted = true; /* the engine itself knows what is pending */
    return WH_OK;
}

static int results(wh__store *st, const wh__result *r, size_t n, const wh__endpoint_change *c,
                   size_t nc)
{
    (void)c, (void)nc;
    memory_store *m = M(st);
    if (!m->cap)
        return WH_OK;
    for (size_t i = 0; i < n; i++) {
        if (!r[i].attempt)
            continue;
        entry *e = entry_new(r[i].attempt, r[i].event_seq, r[i].event_body, r[i].event_body_len);
        if (!e)
            continue; /* the log is best effort here: the ring forgets anyway */
        pthread_mutex_lock(&m->mu);
        entry_free(m->slots[m->next]);
        m->slots[m->next] = e;
        m->next = (m->next + 1) % m->cap;
        if (m->n < m->cap)
            m->n++;
        pthread_mutex_unlock(&m->mu);
    }
    return WH_OK;
}

static bool filter_match(const wh_log_filter *f, const wh_attempt *a)
{
    if (!f)
        return true;
    if (f->endpoint_id && strcmp(f->endpoint_id, a->endpoint_id) != 0)
        return false;
    if (f->event_id && strcmp(f->event_id, a->event_id) != 0)
        return false;
    if (f->event_type && strcmp(f->event_type, a->event_type) != 0)
        return false;
    if (f->outcomes && !(f->outcomes & WH_OUTCOME_BIT(a->outcome)))
        return false;
    if (f->since_ms && a->started_ms < f->since_ms)
        return false;
    if (f->until_ms && a->started_ms > f->until_ms)
        return false;
    return true;
}

static int log_query(wh__store *st, const wh_log_filter *f, wh__attempt_cb cb, void *ud)
{
    memory_store *m = M(st);
    size_t limit = f && f->limit > 0 ? (size_t)f->limit : 100;
    entry **copies = NULL;
    size_t n = 0, cap = 0;
    bool oom = false;
    pthread_mutex_lock(&m->mu);
    for (size_t k = 0; k < m->n && n < limit && !oom; k++) {
        const entry *e = newest(m, k);
        if (!e || !filter_match(f, &e->a))
            continue;
        if (n == cap) {
            size_t c = cap ? cap * 2 : 32;
            entry **v = realloc(copies, c * sizeof *v);
            if (!v) {
                oom = true;
                break;
            }
            copies = v, cap = c;
        }
        /* copied: the caller's callback runs with no lock held, on data that stays put */
        if (!(copies[n] = entry_new(&e->a, 0, NULL, 0)))
            oom = true;
        else
            n++;
    }
    pthread_mutex_unlock(&m->mu);
    for (size_t i = 0; i < n; i++) {
        if (!oom && cb)
            cb(ud, &copies[i]->a);
        entry_free(copies[i]);
    }
    free(copies);
    return oom ? wh__fail(NULL, 0, WH_ERR_NOMEM, "log query: out of memory") : (int)n;
}

static int find_event(wh__store *st, const char *event_id,
                      void (*cb)(void *ud, int64_t seq, const char *type, const char *body,
                                 size_t len, const char *endpoint_id),
                      void *ud)
{
    memory_store *m = M(st);
    int found = 0;
    /* callbacks run under the ring's lock: they only plan, they never call back in */
    pthread_mutex_lock(&m->mu);
    for (size_t k = 0; k < m->n; k++) {
        const entry *e = newest(m, k);
        if (e && e->event_body && strcmp(e->event_id, event_id) == 0) {
            cb(ud, e->event_seq, e->event_type, e->event_body, e->event_body_len, e->endpoint_id);
            found++;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return found;
}

static int find_failed(wh__store *st, const char *endpoint_id, int64_t since_ms,
                       void (*cb)(void *ud, const char *event_id), void *ud)
{
    memory_store *m = M(st);
    int found = 0;
    pthread_mutex_lock(&m->mu);
    for (size_t k = 0; k < m->n; k++) {
        const entry *e = newest(m, k);
        if (e && strcmp(e->endpoint_id, endpoint_id) == 0 && e->a.started_ms >= since_ms &&
            (e->a.outcome == WH_OUTCOME_FAILED || e->a.outcome == WH_OUTCOME_SKIPPED)) {
            cb(ud, e->event_id);
            found++;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return found;
}

static int upkeep(wh__store *st, int64_t now_ms, int64_t retention_ms)
{
    (void)st, (void)now_ms, (void)retention_ms;
    return WH_OK;
}

static const wh__store_ops memory_ops = {
    .version = 4,
    .name = "memory",
    .durable = false,
    .close = close_store,
    .heartbeat = heartbeat,
    .release = release,
    .claim = claim,
    .changed = changed,
    .endpoint_insert = endpoint_insert,
    .endpoint_delete = endpoint_delete,
    .endpoint_change = endpoint_change,
    .endpoints_load = endpoints_load,
    .event_add = event_add,
    .deliveries_add = deliveries_add,
    .results = results,
    .log_query = log_query,
    .find_event = find_event,
    .find_failed = find_failed,
    .upkeep = upkeep,
};

int wh__store_memory_open(size_t ring_size, wh__store **out, char *errstr, size_t errlen)
{
    memory_store *m = calloc(1, sizeof *m);
    if (!m || (ring_size && !(m->slots = calloc(ring_size, sizeof *m->slots)))) {
        free(m);
        return wh__fail(errstr, errlen, WH_ERR_NOMEM, "store: out of memory");
    }
    m->base.ops = &memory_ops;
    m->cap = ring_size;
    pthread_mutex_init(&m->mu, NULL);
    *out = &m->base;
    return WH_OK;
}
