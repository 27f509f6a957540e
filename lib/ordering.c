/* Chains of deliveries per (endpoint, run): a hash table of chains, each a list in event
 * order whose head alone is in the scheduler. */
#include <stdlib.h>
#include <string.h>

#include "ordering.h"

static uint64_t chain_hash(const wh__endpoint *ep, const char *run_id)
{
    uint64_t h = 1469598103934665603ull ^ ((uint64_t)(uintptr_t)ep * 0x9e3779b97f4a7c15ull);
    for (const unsigned char *p = (const unsigned char *)run_id; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

static wh__chain *find(const wh__order *o, const wh__endpoint *ep, const char *run_id,
                       uint64_t h)
{
    if (!o->n_buckets)
        return NULL;
    for (wh__chain *c = o->buckets[h & (o->n_buckets - 1)]; c; c = c->next)
        if (c->hash == h && c->ep == ep && strcmp(c->run_id, run_id) == 0)
            return c;
    return NULL;
}

static bool grow(wh__order *o)
{
    size_t nb = o->n_buckets ? o->n_buckets * 2 : 64;
    wh__chain **b = calloc(nb, sizeof *b);
    if (!b)
        return false;
    for (size_t i = 0; i < o->n_buckets; i++) {
        wh__chain *c = o->buckets[i];
        while (c) {
            wh__chain *next = c->next;
            c->next = b[c->hash & (nb - 1)];
            b[c->hash & (nb - 1)] = c;
            c = next;
        }
    }
    free(o->buckets);
    o->buckets = b;
    o->n_buckets = nb;
    return true;
}

static wh__chain *chain_new(wh__order *o, wh__endpoint *ep, const char *run_id, uint64_t h)
{
    if (o->n >= o->n_buckets && !grow(o) && !o->n_buckets)
        return NULL;
    size_t len = strlen(run_id);
    wh__chain *c = calloc(1, sizeof *c + len + 1);
    if (!c)
        return NULL;
    memcpy(c->run_id, run_id, len + 1);
    c->ep = ep;
    c->hash = h;
    wh__chain **b = &o->buckets[h & (o->n_buckets - 1)];
    c->next = *b;
    *b = c;
    o->n++;
    return c;
}

static void chain_drop(wh__order *o, wh__chain *c)
{
    for (wh__chain **p = &o->buckets[c->hash & (o->n_buckets - 1)]; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    o->n--;
    free(c);
}

/* Once its turn has been asked for or taken, a head stays the head. */
static bool begun(const wh__delivery *d)
{
    return d->attempts > 0 || d->order_clear || d->order_checking;
}

/* d is its chain's head now: into the scheduler. */
static int go(wh__sched *s, wh__delivery *d, bool check)
{
    d->order_held = false;
    d->order_check = check && d->attempts == 0 && !d->order_clear;
    return wh__sched_push(s, d);
}

int wh__order_admit(wh__order *o, wh__sched *s, wh__delivery *d, bool check)
{
    const char *run = d->ev->run_id;
    /* no chain to look for: the common case costs no hashing */
    if (!run || d->redelivery || (!d->ep->ordering_run && !o->n))
        return wh__sched_push(s, d);
    uint64_t h = chain_hash(d->ep, run);
    wh__chain *c = find(o, d->ep, run, h);
    if (!c && (!d->ep->ordering_run || !(c = chain_new(o, d->ep, run, h))))
        return wh__sched_push(s, d); /* not ordered (or no memory to order it) */
    d->chain = c;
    /* in event order, never before a head that has begun; usually at the end */
    wh__delivery *prev = c->tail;
    if (prev && prev->ev->seq > d->ev->seq && !begun(prev)) {
        prev = NULL;
        for (wh__delivery *p = c->head; p && (begun(p) || p->ev->seq < d->ev->seq); p = p->chain_next)
            prev = p;
    }
    if (prev) {
        d->chain_next = prev->chain_next;
        prev->chain_next = d;
        if (c->tail == prev)
            c->tail = d;
        d->order_held = true;
        return WH_OK;
    }
    wh__delivery *old = c->head;
    d->chain_next = old;
    c->head = d;
    if (!c->tail)
        c->tail = d;
    if (old && !old->order_held) {
        /* an earlier event of the run came after it (taken over from another engine) */
        wh__sched_remove(s, old);
        old->order_held = true;
        old->order_check = false;
    }
    return go(s, d, check);
}

void wh__order_leave(wh__order *o, wh__sched *s, wh__delivery *d, bool check, bool release_next)
{
    wh__chain *c = d->chain;
    if (!c)
        return;
    d->chain = NULL;
    if (c->head == d) {
        c->head = d->chain_next;
        if (c->tail == d)
            c->tail = NULL;
        wh__delivery *next = c->head;
        if (next && next->order_held && release_next)
            go(s, next, check); /* room for every live delivery is kept: cannot fail */
    } else {
        wh__delivery *p = c->head;
        while (p && p->chain_next != d)
            p = p->chain_next;
        if (p) {
            p->chain_next = d->chain_next;
            if (c->tail == d)
                c->tail = p;
        }
    }
    d->chain_next = NULL;
    if (!c->head)
        chain_drop(o, c);
}

void wh__order_endpoint_changed(wh__order *o, wh__sched *s, wh__endpoint *ep)
{
    if (ep->ordering_run)
        return;
    for (wh__delivery *d = ep->live_head; d; d = d->ep_next) {
        wh__chain *c = d->chain;
        if (!c)
            continue;
        for (wh__delivery *p = c->head, *next; p; p = next) {
            next = p->chain_next;
            p->chain = NULL;
            p->chain_next = NULL;
            if (!p->order_checking)
                p->order_check = false;
            if (p->order_held) {
                p->order_held = false;
                wh__sched_push(s, p);
            }
        }
        chain_drop(o, c);
    }
}

void wh__order_free(wh__order *o)
{
    for (size_t i = 0; i < o->n_buckets; i++) {
        wh__chain *c = o->buckets[i];
        while (c) {
            wh__chain *next = c->next;
            free(c);
            c = next;
        }
    }
    free(o->buckets);
    memset(o, 0, sizeof *o);
}
