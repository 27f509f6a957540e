/* The endpoints an engine knows, by id (an open-addressing hash), by the caller's key, and by
 * event type (one list per known type, oldest first). */
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "error.h"
#include "util.h"

typedef struct {
    wh__endpoint **v;
    size_t n, cap;
} ep_list;

struct wh__registry {
    char **types; /* known event types, NULL-terminated */
    size_t ntypes;
    ep_list all;      /* insertion order */
    ep_list *by_type; /* ntypes lists */
    wh__endpoint **slots; /* id hash, open addressing; TOMBSTONE marks a removed slot */
    size_t nslots, used;
};

static wh__endpoint tombstone_;
#define TOMBSTONE (&tombstone_)

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

/* Room for one more. */
static int list_reserve(ep_list *l)
{
    if (l->n < l->cap)
        return WH_OK;
    size_t cap = l->cap ? l->cap * 2 : 4;
    wh__endpoint **v = realloc(l->v, cap * sizeof *v);
    if (!v)
        return WH_ERR_NOMEM;
    l->v = v, l->cap = cap;
    return WH_OK;
}

static int list_push(ep_list *l, wh__endpoint *ep)
{
    if (list_reserve(l) != WH_OK)
        return WH_ERR_NOMEM;
    l->v[l->n++] = ep;
    return WH_OK;
}

static void list_remove(ep_list *l, const wh__endpoint *ep)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i] == ep) {
            memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof *l->v);
            l->n--;
            return;
        }
}

wh__registry *wh__registry_new(const char *const *known_types)
{
    wh__registry *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    size_t n = 0;
    while (known_types[n])
        n++;
    r->types = calloc(n + 1, sizeof *r->types);
    r->by_type = calloc(n ? n : 1, sizeof *r->by_type);
    r->nslots = 64;
    r->slots = calloc(r->nslots, sizeof *r->slots);
    if (!r->types || !r->by_type || !r->slots)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (!(r->types[r->ntypes++] = wh__strdup(known_types[i])))
            goto fail;
    return r;
fail:
    wh__registry_free(r);
    return NULL;
}

void wh__registry_free(wh__registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->all.n; i++)
        wh__endpoint_unref(r->all.v[i]);
    free(r->all.v);
    for (size_t i = 0; r->by_type && i < r->ntypes; i++)
        free(r->by_type[i].v);
    free(r->by_type);
    for (size_t i = 0; r->types && r->types[i]; i++)
        free(r->types[i]);
    free(r->types);
    free(r->slots);
    free(r);
}

int wh__registry_type_index(const wh__registry *r, const char *type)
{
    /* the known types are a handful (built-in plus host extras), never per endpoint */
    for (size_t i = 0; i < r->ntypes; i++)
        if (strcmp(r->types[i], type) == 0)
            return (int)i;
    return -1;
}

const char *const *wh__registry_types(const wh__registry *r) { return (const char *const *)r->types; }

/* The known types a subscription covers are found by subscribed() (below) */
const char *wh__registry_subscription_problem(const wh__registry *r, const char *sub)
{
    if (strcmp(sub, "*") == 0)
        return NULL;
    size_t len = strlen(sub);
    if (len >= 3 && strcmp(sub + len - 2, ".*") == 0) {
        for (size_t i = 0; i < r->ntypes; i++)
            if (strncmp(r->types[i], sub, len - 1) == 0)
                return NULL;
        return "is a prefix that matches no known event type";
    }
    if (wh__registry_type_index(r, sub) < 0)
        return "is not a known event type (add it with event_types.extra)";
    return NULL;
}

static wh__endpoint **find_slot(const wh__registry *r, const char *id, bool for_insert)
{
    size_t mask = r->nslots - 1;
    wh__endpoint **first_free = NULL;
    for (size_t i = hash_str(id) & mask;; i = (i + 1) & mask) {
        wh__endpoint **s = &r->slots[i];
        if (!*s)
            return for_insert && first_free ? first_free : s;
        if (*s == TOMBSTONE) {
            if (!first_free)
                first_free = s;
        } else if (strcmp((*s)->id, id) == 0) {
            return s;
        }
    }
}

static int grow_slots(wh__registry *r)
{
    size_t n = r->nslots * 2;
    while (r->all.n * 2 >= n)
        n *= 2;
    wh__endpoint **slots = calloc(n, sizeof *slots);
    if (!slots)
        return WH_ERR_NOMEM;
    free(r->slots);
    r->slots = slots, r->nslots = n, r->used = r->all.n;
    for (size_t i = 0; i < r->all.n; i++)
        *find_slot(r, r->all.v[i]->id, true) = r->all.v[i];
    return WH_OK;
}

static bool subscribed(const wh__registry *r, const wh__endpoint *ep, size_t ti)
{
    for (char **s = ep->event_types; *s; s++) {
        size_t len = strlen(*s);
        if ((strcmp(*s, "*") == 0 && !wh__is_op_type(r->types[ti])) ||
            strcmp(*s, r->types[ti]) == 0 ||
            (len >= 2 && (*s)[len - 1] == '*' && strncmp(*s, r->types[ti], len - 1) == 0))
            return true;
    }
    return false;
}

int wh__registry_add(wh__registry *r, wh__endpoint *ep)
{
    if (wh__registry_find(r, ep->id))
        return wh__fail(NULL, 0, WH_ERR_INVALID, "id: endpoint %s already exists", ep->id);
    if ((r->used + 1) * 2 > r->nslots && grow_slots(r) != WH_OK)
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "endpoint: out of memory");
    /* reserve every list first so that a failure leaves the index untouched */
    size_t ti;
    for (ti = 0; ti < r->ntypes; ti++)
        if (subscribed(r, ep, ti) && list_push(&r->by_type[ti], ep) != WH_OK)
            goto undo;
    if (list_push(&r->all, ep) != WH_OK)
        goto undo;
    wh__endpoint **s = find_slot(r, ep->id, true);
    if (!*s)
        r->used++;
    *s = ep;
    return WH_OK;
undo:
    while (ti-- > 0)
        list_remove(&r->by_type[ti], ep);
    return wh__fail(NULL, 0, WH_ERR_NOMEM, "endpoint: out of memory");
}

wh__endpoint *wh__registry_find(const wh__registry *r, const char *id)
{
    wh__endpoint **s = find_slot(r, id, false);
    return *s ? *s : NULL;
}

int wh__registry_lookup(const wh__registry *r, const char *id, wh__endpoint **out)
{
    if (!id)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "id: is NULL");
    if (!*id || strnlen(id, WH_ID_MAX) >= WH_ID_MAX)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "id: empty or longer than %d bytes", WH_ID_MAX - 1);
    *out = wh__registry_find(r, id);
    if (!*out)
        return wh__fail(NULL, 0, WH_ERR_NOTFOUND, "id: no endpoint \"%.63s\"", id);
    return WH_OK;
}

int wh__registry_remove(wh__registry *r, const char *id)
{
    wh__endpoint **s = find_slot(r, id, false);
    if (!*s)
        return WH_ERR_NOTFOUND;
    wh__endpoint *ep = *s;
    *s = TOMBSTONE;
    for (size_t ti = 0; ti < r->ntypes; ti++)
        list_remove(&r->by_type[ti], ep);
    list_remove(&r->all, ep);
    ep->removed = true;
    wh__endpoint_unref(ep);
    return WH_OK;
}

wh__endpoint *const *wh__registry_match(const wh__registry *r, int ti, size_t *n)
{
    if (ti < 0 || (size_t)ti >= r->ntypes) {
        *n = 0;
        return NULL;
    }
    *n = r->by_type[ti].n;
    return r->by_type[ti].v;
}

size_t wh__registry_count(const wh__registry *r) { return r->all.n; }

wh__endpoint *wh__registry_at(const wh__registry *r, size_t i) { return r->all.v[i]; }

wh__endpoint *wh__registry_find_key(const wh__registry *r, const char *key)
{
    /* keys are looked up when an endpoint is added, never on the delivery path */
    for (size_t i = 0; i < r->all.n; i++)
        if (r->all.v[i]->user_key && strcmp(r->all.v[i]->user_key, key) == 0)
            return r->all.v[i];
    return NULL;
}

static bool types_subscribe(const wh__registry *r, char *const *types, size_t ti)
{
    wh__endpoint probe = {.event_types = (char **)types};
    return subscribed(r, &probe, ti);
}

int wh__registry_swap_fields(wh__registry *r, wh__endpoint *ep, wh__endpoint_fields *f)
{
    bool changed_url = strcmp(ep->url, f->url) != 0;
    if (changed_url) {
        char **v = realloc(ep->retired_urls, (ep->n_retired_urls + 1) * sizeof *v);
        if (!v)
            return WH_ERR_NOMEM;
        ep->retired_urls = v;
    }
    for (size_t ti = 0; ti < r->ntypes; ti++) {
        if (types_subscribe(r, f->types, ti) && !subscribed(r, ep, ti) &&
            list_reserve(&r->by_type[ti]) != WH_OK)
            return WH_ERR_NOMEM;
    }
    /* from here nothing can fail */
    bool *moved = calloc(r->ntypes + 1, sizeof *moved);
    for (size_t ti = 0; ti < r->ntypes; ti++) {
        bool was = subscribed(r, ep, ti), is = types_subscribe(r, f->types, ti);
        if (moved)
            moved[ti] = was != is;
        else if (was)
            list_remove(&r->by_type[ti], ep);
    }
    if (changed_url) {
        ep->retired_urls[ep->n_retired_urls++] = ep->url;
        ep->url = f->url;
        f->url = NULL;
    }
    char **types = ep->event_types, *description = ep->description, *key = ep->user_key;
    ep->event_types = f->types, ep->description = f->description, ep->user_key = f->key;
    f->types = types, f->description = description, f->key = key;
    /* the lists keep the registry's order (oldest first): those that changed are rebuilt */
    for (size_t ti = 0; ti < r->ntypes; ti++) {
        if (moved && !moved[ti])
            continue;
        ep_list *l = &r->by_type[ti];
        if (!moved) {
            if (subscribed(r, ep, ti))
                l->v[l->n++] = ep; /* out of memory for the plan: at the end, still right */
            continue;
        }
        l->n = 0;
        for (size_t i = 0; i < r->all.n; i++)
            if (subscribed(r, r->all.v[i], ti))
                l->v[l->n++] = r->all.v[i];
    }
    free(moved);
    return WH_OK;
}
