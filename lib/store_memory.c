/* The memory store: nothing survives the process. Events live as long as their deliveries
 * (the engine holds them); the attempt log is a ring of the latest records, which is also
 * what redelivery and recovery find events in. There is one engine, so no claims. The ids
 * callers chose for their events are remembered (id -> what the emit returned) until their
 * dedup window has passed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "logsink.h"
#include "store.h"

typedef struct entry {
    wh_attempt a; /* its strings are the entry's own, in the arrays below and in data */
    int64_t event_seq;
    const char *event_body; /* in data; NULL when none */
    size_t event_body_len;
    size_t cap; /* bytes of data */
    char event_id[WH_ID_MAX], event_type[WH_ID_MAX], endpoint_id[WH_ID_MAX];
    char data[]; /* url, error, response, event body, run id, task id */
} entry;

/* A caller's event id and what its emit returned. */
typedef struct seen_id {
    struct seen_id *next;
    int64_t created_ms, seq;
    int sendable;
    char id[WH_ID_MAX];
} seen_id;

typedef struct {
    wh__store base;
    pthread_mutex_t mu;
    entry **slots;
    size_t cap, next, n;
    int64_t seq;
    pthread_mutex_t seen_mu;
    seen_id **seen; /* hash chains */
    size_t n_buckets, n_seen, prune_at;
} memory_store;

#define M(st) ((memory_store *)(st))

static void entry_free(entry *e) { free(e); }

static size_t text_size(const char *p) { return p ? strlen(p) + 1 : 0; }

/* Copies n bytes and a NUL to *at, advancing it; NULL for NULL. */
static char *put(char **at, const char *p, size_t n)
{
    if (!p)
        return NULL;
    char *c = memcpy(*at, p, n);
    c[n] = '\0';
    *at += n + 1;
    return c;
}

/* An entry holding a copy of the attempt (and of the event's body, when given): into reuse
 * when its room fits, the ring's oldest entry going out (so that the ring allocates nothing
 * once it is full); else reuse is freed and a new one made. NULL when out of memory. */
static entry *entry_build(entry *reuse, const wh_attempt *a, int64_t seq, const char *body,
                          size_t body_len)
{
    size_t need = text_size(a->url) + text_size(a->error) + text_size(a->run_id) +
                  text_size(a->task_id) + (a->response_body ? a->response_len + 1 : 0) +
                  (body ? body_len + 1 : 0);
    entry *e = reuse;
    /* far bigger than needed (a long answer once): given back rather than kept */
    if (e && (e->cap < need || e->cap > 2 * need + 1024)) {
        free(e);
        e = NULL;
    }
    if (!e) {
        if (!(e = malloc(sizeof *e + need)))
            return NULL;
        e->cap = need;
    }
    snprintf(e->event_id, sizeof e->event_id, "%s", a->event_id);
    snprintf(e->event_type, sizeof e->event_type, "%s", a->event_type);
    snprintf(e->endpoint_id, sizeof e->endpoint_id, "%s", a->endpoint_id);
    e->a = *a;
    e->a.event_id = e->event_id;
    e->a.event_type = e->event_type;
    e->a.endpoint_id = e->endpoint_id;
    char *at = e->data;
    e->a.url = put(&at, a->url, a->url ? strlen(a->url) : 0);
    e->a.error = put(&at, a->error, a->error ? strlen(a->error) : 0);
    e->a.response_body = put(&at, a->response_body, a->response_len);
    e->a.run_id = put(&at, a->run_id, a->run_id ? strlen(a->run_id) : 0);
    e->a.task_id = put(&at, a->task_id, a->task_id ? strlen(a->task_id) : 0);
    e->event_body = put(&at, body, body_len);
    e->event_body_len = body ? body_len : 0;
    e->event_seq = seq;
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
    for (size_t b = 0; b < m->n_buckets; b++)
        for (seen_id *s = m->seen[b], *next; s; s = next) {
            next = s->next;
            free(s);
        }
    free(m->seen);
    pthread_mutex_destroy(&m->seen_mu);
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

static int endpoint_upsert(wh__store *st, const wh__endpoint_row *row, bool secret_given,
                           wh__endpoint_row_cb cb, void *ud)
{
    (void)st, (void)row, (void)secret_given, (void)cb, (void)ud;
    return WH_OK; /* the registry is the only copy: the engine finds the key there */
}

static int endpoints_load(wh__store *st, wh__endpoint_row_cb cb, void *ud)
{
    (void)st, (void)cb, (void)ud;
    return WH_OK;
}

static size_t bucket_of(const char *id, size_t n_buckets)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    while (*id)
        h = (h ^ (unsigned char)*id++) * 1099511628211ull;
    return (size_t)h & (n_buckets - 1);
}

/* Under seen_mu: forgets the ids whose window has passed, and grows the table to the ids
 * left; the next sweep when their number has doubled, so each insert pays a constant. */
static int sweep_seen(memory_store *m, int64_t after_ms)
{
    for (size_t b = 0; b < m->n_buckets; b++)
        for (seen_id **p = &m->seen[b]; *p;) {
            if ((*p)->created_ms < after_ms) {
                seen_id *gone = *p;
                *p = gone->next;
                free(gone);
                m->n_seen--;
            } else {
                p = &(*p)->next;
            }
        }
    m->prune_at = m->n_seen * 2 > 64 ? m->n_seen * 2 : 64;
    if (m->n_buckets >= m->prune_at)
        return WH_OK;
    size_t nb = m->n_buckets ? m->n_buckets : 64;
    while (nb < m->prune_at)
        nb *= 2;
    seen_id **v = calloc(nb, sizeof *v);
    if (!v)
        return m->n_buckets ? WH_OK : WH_ERR_NOMEM; /* longer chains, still right */
    for (size_t b = 0; b < m->n_buckets; b++)
        for (seen_id *s = m->seen[b], *next; s; s = next) {
            next = s->next;
            size_t k = bucket_of(s->id, nb);
            s->next = v[k];
            v[k] = s;
        }
    free(m->seen);
    m->seen = v;
    m->n_buckets = nb;
    return WH_OK;
}

static int event_add(wh__store *st, wh__event_row *ev, const wh__target *t, size_t n)
{
    (void)t, (void)n;
    memory_store *m = M(st);
    ev->duplicate = false;
    if (!ev->dedup_id) {
        ev->seq = __atomic_add_fetch(&m->seq, 1, __ATOMIC_RELAXED);
        return WH_OK;
    }
    /* the check and the insert under one lock: threads emitting one id at once emit it once */
    pthread_mutex_lock(&m->seen_mu);
    int rc = m->n_seen >= m->prune_at ? sweep_seen(m, ev->dedup_after_ms) : WH_OK;
    seen_id *s = NULL;
    if (rc == WH_OK) {
        size_t b = bucket_of(ev->dedup_id, m->n_buckets);
        for (s = m->seen[b]; s && strcmp(s->id, ev->dedup_id) != 0; s = s->next) {
        }
        if (s && s->created_ms >= ev->dedup_after_ms) {
            ev->duplicate = true;
            ev->seq = s->seq;
            ev->sendable = s->sendable;
        } else if (!s && !(s = calloc(1, sizeof *s))) {
            rc = WH_ERR_NOMEM;
        } else if (!s->id[0]) {
            snprintf(s->id, sizeof s->id, "%s", ev->dedup_id);
            s->next = m->seen[b];
            m->seen[b] = s;
            m->n_seen++;
        }
        if (rc == WH_OK && !ev->duplicate) {
            /* new, or its window passed: the id is this event's from now on */
            ev->seq = __atomic_add_fetch(&m->seq, 1, __ATOMIC_RELAXED);
            s->seq = ev->seq;
            s->created_ms = ev->created_ms;
            s->sendable = ev->sendable;
        }
    }
    pthread_mutex_unlock(&m->seen_mu);
    return rc == WH_OK ? WH_OK : wh__fail(NULL, 0, rc, "event: out of memory");
}

/* A failed batch leaves no id behind: each one it took no longer counts as emitted. */
static void unsee(memory_store *m, const char *id)
{
    pthread_mutex_lock(&m->seen_mu);
    for (seen_id *s = m->seen[bucket_of(id, m->n_buckets)]; s; s = s->next)
        if (strcmp(s->id, id) == 0)
            s->created_ms = INT64_MIN;
    pthread_mutex_unlock(&m->seen_mu);
}

static int events_add(wh__store *st, wh__event_add *ev, size_t n)
{
    int rc = WH_OK;
    size_t i = 0;
    for (; i < n && rc == WH_OK; i++)
        rc = event_add(st, &ev[i].row, ev[i].targets, ev[i].n_targets);
    if (rc != WH_OK)
        for (size_t j = 0; j + 1 < i; j++)
            if (ev[j].row.dedup_id && !ev[j].row.duplicate)
                unsee(M(st), ev[j].row.dedup_id);
    return rc;
}

static int deliveries_add(wh__store *st, wh__delivery_row *d, size_t n, int64_t now_ms)
{
    (void)st, (void)now_ms;
    for (size_t i = 0; i < n; i++)
        d[i].accepted = true; /* the engine itself knows what is pending */
    return WH_OK;
}

static int results(wh__store *st, const wh__result *r, size_t n, wh__endpoint_change *c,
                   size_t nc)
{
    (void)c, (void)nc;
    memory_store *m = M(st);
    if (!m->cap)
        return WH_OK;
    for (size_t i = 0; i < n; i++) {
        if (!r[i].attempt)
            continue;
        pthread_mutex_lock(&m->mu);
        entry *e = entry_build(m->slots[m->next], r[i].attempt, r[i].event_seq,
                               r[i].event_body, r[i].event_body_len);
        m->slots[m->next] = e;
        /* out of memory: the oldest entry is gone, the new one not kept (the log is best
         * effort here: the ring forgets anyway); readers skip the empty slot */
        if (e) {
            m->next = (m->next + 1) % m->cap;
            if (m->n < m->cap)
                m->n++;
        }
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
    wh__record_list list = {0};
    pthread_mutex_lock(&m->mu);
    /* copied: the caller's callback runs with no lock held, on data that stays put */
    for (size_t k = 0; k < m->n && list.n < limit; k++) {
        const entry *e = newest(m, k);
        if (e && filter_match(f, &e->a) && !wh__record_list_add(&list, &e->a))
            break;
    }
    pthread_mutex_unlock(&m->mu);
    int rc = list.oom ? wh__fail(NULL, 0, WH_ERR_NOMEM, "log query: out of memory") : WH_OK;
    return wh__record_list_hand_over(&list, rc, cb, ud);
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
    .version = 6,
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
    .endpoint_upsert = endpoint_upsert,
    .events_add = events_add,
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
    pthread_mutex_init(&m->seen_mu, NULL);
    *out = &m->base;
    return WH_OK;
}
