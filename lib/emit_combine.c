/* See emit_combine.h. */
#include "emit_combine.h"

#include <stdio.h>
#include <stdlib.h>

#include "error.h"

struct wh__combine_slot {
    wh__event_add *item;
    int rc;
    bool done;
    char err[256]; /* the leader's message for this slot, when rc fails */
    wh__combine_slot *next;
};

void wh__combiner_init(wh__combiner *c)
{
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->busy = false;
    c->head = c->tail = NULL;
}

void wh__combiner_destroy(wh__combiner *c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static void settle(wh__combine_slot *s, int rc)
{
    s->rc = rc;
    if (rc != WH_OK)
        snprintf(s->err, sizeof s->err, "%s", wh_last_error());
}

/* The leader: every slot taken is written, together or one by one. */
static void lead(wh__combine_slot *taken, size_t n, wh__combine_many many, wh__combine_one one,
                 void *ud)
{
    wh__event_add local[16], *items = n <= 16 ? local : malloc(n * sizeof *items);
    size_t k = 0;
    if (items && n > 1) {
        for (wh__combine_slot *s = taken; s; s = s->next)
            items[k++] = *s->item;
        bool maybe = false;
        int rc = many(ud, items, n, &maybe);
        if (rc == WH_OK || maybe) {
            k = 0;
            for (wh__combine_slot *s = taken; s; s = s->next, k++) {
                s->item->row = items[k].row;
                settle(s, rc);
            }
            if (items != local)
                free(items);
            return;
        }
    }
    if (items != local)
        free(items);
    for (wh__combine_slot *s = taken; s; s = s->next)
        settle(s, one(ud, s->item));
}

int wh__combine(wh__combiner *c, wh__event_add *item, wh__combine_many many,
                wh__combine_one one, void *ud)
{
    wh__combine_slot me = {.item = item};
    pthread_mutex_lock(&c->mu);
    if (c->tail)
        c->tail->next = &me;
    else
        c->head = &me;
    c->tail = &me;
    while (!me.done && c->busy)
        pthread_cond_wait(&c->cv, &c->mu);
    if (!me.done) {
        /* lead: everything waiting now goes in this batch, this thread's own included */
        c->busy = true;
        wh__combine_slot *taken = c->head;
        size_t n = 0;
        for (wh__combine_slot *s = taken; s; s = s->next)
            n++;
        c->head = c->tail = NULL;
        pthread_mutex_unlock(&c->mu);
        lead(taken, n, many, one, ud);
        pthread_mutex_lock(&c->mu);
        for (wh__combine_slot *s = taken, *next; s; s = next) {
            next = s->next; /* a follower's slot may go as soon as it is done */
            s->done = true;
        }
        c->busy = false;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    if (me.rc != WH_OK)
        return wh__fail(NULL, 0, me.rc, "%s", me.err);
    return WH_OK;
}
