/* Endpoints and the index from event type to the endpoints subscribed to it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "registry.h"
#include "error.h"
#include "sign.h"
#include "store.h"
#include "util.h"

#define MAX_SUBSCRIPTIONS 64
#define URL_MAX 2048
#define DESCRIPTION_MAX 1024

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

static int list_push(ep_list *l, wh__endpoint *ep)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        wh__endpoint **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return WH_ERR_NOMEM;
        l->v = v, l->cap = cap;
    }
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

static void free_endpoint(wh__endpoint *ep)
{
    free(ep->url);
    for (char **p = ep->event_types; p && *p; p++)
        free(*p);
    free(ep->event_types);
    free(ep->description);
    free(ep->user_key);
    for (size_t i = 0; i < ep->n_retired_urls; i++)
        free(ep->retired_urls[i]);
    free(ep->retired_urls);
    free(ep->secret);
    free(ep->disabled_reason);
    if (ep->settings) /* header values may be credentials */
        OPENSSL_cleanse(ep->settings, strlen(ep->settings));
    free(ep->settings);
    free(ep->retry_schedule_ms);
    wh__ep_headers_unref(ep->headers);
    OPENSSL_cleanse(ep->key, sizeof ep->key);
    OPENSSL_cleanse(ep->old_keys, sizeof ep->old_keys);
    free(ep);
}

void wh__endpoint_unref(wh__endpoint *ep)
{
    if (ep && --ep->refs == 0)
        free_endpoint(ep);
}

static const char *url_problem(const char *url)
{
    size_t n = strlen(url);
    if (n == 0)
        return "is empty";
    if (n > URL_MAX)
        return "is longer than 2048 bytes";
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return "contains a space or control character (CR, LF and NUL are never allowed)";
    /* the URL goes into JSON log lines like every other text: the same UTF-8 rule */
    const char *text = wh__text_problem(url, URL_MAX);
    if (text)
        return text;
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
        return "must start with http:// or https://";
    if (strchr(url, '#'))
        return "must not contain a fragment (#...)";
    if (strstr(url, "://")[3] == '/')
        return "has no host";
    CURLU *u = curl_url();
    if (!u)
        return "could not be parsed (out of memory)";
    const char *problem = NULL;
    char *part = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        problem = "is not a valid URL";
    else if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK ||
             curl_url_get(u, CURLUPART_PASSWORD, &part, 0) == CURLUE_OK)
        problem = "must not contain user:password@ credentials";
    else if (curl_url_get(u, CURLUPART_HOST, &part, 0) != CURLUE_OK || !part || !*part)
        problem = "has no host";
    curl_free(part);
    curl_url_cleanup(u);
    return problem;
}

static bool quotable(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p >= 0x80)
            return !wh__text_problem(s, SIZE_MAX);
    return true; /* ASCII: wh__fail masks its control characters */
}

/* Marks in `mask` the known types one subscription covers; NULL problem on success. */
static const char *subscription_problem(const wh__registry *r, const char *sub, bool *mask)
{
    if (strcmp(sub, "*") == 0) {
        for (size_t i = 0; i < r->ntypes; i++)
            mask[i] |= !wh__is_op_type(r->types[i]);
        return NULL;
    }
    size_t len = strlen(sub);
    if (len >= 3 && strcmp(sub + len - 2, ".*") == 0) {
        bool any = false;
        for (size_t i = 0; i < r->ntypes; i++)
            if (strncmp(r->types[i], sub, len - 1) == 0)
                mask[i] = any = true;
        return any ? NULL : "is a prefix that matches no known event type";
    }
    int ti = wh__registry_type_index(r, sub);
    if (ti < 0)
        return "is not a known event type (add it with event_types.extra)";
    mask[ti] = true;
    return NULL;
}

#define KEY_MAX 255

static const char *key_problem(const char *key)
{
    if (!*key)
        return "is empty (use NULL for none)";
    if (strlen(key) > KEY_MAX)
        return "is longer than 255 bytes";
    /* one word: it is a column of webhookctl's tables */
    if (strpbrk(key, " \t"))
        return "must not contain spaces";
    return wh__text_problem(key, KEY_MAX);
}

wh__endpoint *wh__endpoint_build(const wh__registry *r, const wh_endpoint_spec *spec,
                                 const char *id, char *errstr, size_t errlen)
{
    if (!spec) {
        wh__fail(errstr, errlen, WH_ERR_INVALID, "spec: is NULL");
        return NULL;
    }
    if (!spec->url) {
        wh__fail(errstr, errlen, WH_ERR_INVALID, "url: is NULL");
        return NULL;
    }
    const char *problem = url_problem(spec->url);
    if (problem && !quotable(spec->url)) {
        /* bytes that are not UTF-8 text would break the message's own readers */
        wh__fail(errstr, errlen, WH_ERR_INVALID, "url: %s", problem);
        return NULL;
    }
    if (problem) {
        wh__fail(errstr, errlen, WH_ERR_INVALID, "url: \"%.100s\" %s", spec->url, problem);
        return NULL;
    }
    static const char *const all_types[] = {"*", NULL};
    const char *const *subs = spec->event_types ? spec->event_types : all_types;
    if (!subs[0]) {
        wh__fail(errstr, errlen, WH_ERR_INVALID, "event_types: is empty (use NULL for all)");
        return NULL;
    }
    bool mask[r->ntypes + 1];
    memset(mask, 0, sizeof mask);
    size_t nsubs = 0;
    for (; subs[nsubs]; nsubs++) {
        if (nsubs == MAX_SUBSCRIPTIONS) {
            wh__fail(errstr, errlen, WH_ERR_INVALID, "event_types: more than %d entries",
                     MAX_SUBSCRIPTIONS);
            return NULL;
        }
        if ((problem = subscription_problem(r, subs[nsubs], mask))) {
            wh__fail(errstr, errlen, WH_ERR_INVALID, "event_types: \"%.64s\" %s", subs[nsubs],
                     problem);
            return NULL;
        }
    }
    if (spec->description && strlen(spec->description) &&
        (problem = wh__text_problem(spec->description, DESCRIPTION_MAX))) {
        wh__fail(errstr, errlen, WH_ERR_INVALID, "description: %s", problem);
        return NULL;
    }
    if (id && (problem = wh__text_problem(id, WH_ID_MAX - 1))) {
        wh__fail(errstr, errlen, WH_ERR_INVALID, "id: %s", problem);
        return NULL;
    }
    if (spec->key && (problem = key_problem(spec->key))) {
        wh__fail(errstr, errlen, WH_ERR_INVALID, "key: %s", problem);
        return NULL;
    }

    wh__endpoint *ep = calloc(1, sizeof *ep);
    if (!ep) {
        wh__fail(errstr, errlen, WH_ERR_NOMEM, "endpoint: out of memory");
        return NULL;
    }
    ep->refs = 1;
    ep->enabled = !spec->disabled;
    ep->created_ms = wh__wall_ms();
    char generated[128];
    const char *secret = spec->secret;
    if (!secret) {
        if (wh__secret_generate(generated, sizeof generated) != WH_OK) {
            wh__fail(errstr, errlen, WH_ERR_IO, "secret: could not generate one");
            goto fail;
        }
        secret = generated;
    }
    if ((problem = wh__secret_decode(secret, ep->key, &ep->key_len))) {
        wh__fail(errstr, errlen, WH_ERR_INVALID, "secret: %s", problem);
        goto fail;
    }
    if (id)
        snprintf(ep->id, sizeof ep->id, "%s", id);
    else if (wh__new_id("ep_", ep->id) != WH_OK) {
        wh__fail(errstr, errlen, WH_ERR_IO, "id: could not generate one");
        goto fail;
    }
    ep->url = wh__strdup(spec->url);
    ep->secret = wh__strdup(secret);
    ep->description = wh__strdup(spec->description ? spec->description : "");
    ep->user_key = spec->key ? wh__strdup(spec->key) : NULL;
    ep->event_types = calloc(nsubs + 1, sizeof *ep->event_types);
    if (!ep->url || !ep->secret || !ep->description || !ep->event_types ||
        (spec->key && !ep->user_key)) {
        wh__fail(errstr, errlen, WH_ERR_NOMEM, "endpoint: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < nsubs; i++)
        if (!(ep->event_types[i] = wh__strdup(subs[i]))) {
            wh__fail(errstr, errlen, WH_ERR_NOMEM, "endpoint: out of memory");
            goto fail;
        }
    return ep;
fail:
    free_endpoint(ep);
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

void wh__endpoint_info_fill(const wh__endpoint *ep, wh_endpoint_info *info)
{
    info->id = ep->id;
    info->url = ep->url;
    info->event_types = (const char *const *)ep->event_types;
    info->secret = ep->secret;
    info->enabled = ep->enabled;
    info->description = ep->description;
    info->disabled_reason = ep->enabled ? NULL : ep->disabled_reason;
    info->created_ms = ep->created_ms;
    info->settings = NULL; /* a list made for the caller (wh__ep_settings_list) */
    info->key = ep->user_key;
}

/* The old secrets (as stored) become the old keys; one that does not decode is left out. */
static void set_old_keys(wh__endpoint *ep, const wh__old_secret *v, size_t n)
{
    struct wh__old_key keys[WH__MAX_OLD_KEYS];
    size_t k = 0;
    for (size_t i = 0; i < n && i < WH__MAX_OLD_KEYS; i++) {
        if (wh__secret_decode(v[i].secret, keys[k].key, &keys[k].len))
            continue;
        keys[k].until_ms = v[i].until_ms;
        memcpy(keys[k].secret, v[i].secret, sizeof keys[k].secret);
        k++;
    }
    OPENSSL_cleanse(ep->old_keys, sizeof ep->old_keys);
    memcpy(ep->old_keys, keys, k * sizeof keys[0]);
    ep->n_old_keys = k;
    OPENSSL_cleanse(keys, sizeof keys);
}

static size_t get_old_secrets(const wh__endpoint *ep, wh__old_secret v[WH__MAX_OLD_KEYS])
{
    memset(v, 0, WH__MAX_OLD_KEYS * sizeof *v);
    for (size_t i = 0; i < ep->n_old_keys; i++) {
        v[i].until_ms = ep->old_keys[i].until_ms;
        memcpy(v[i].secret, ep->old_keys[i].secret, sizeof v[i].secret);
    }
    return ep->n_old_keys;
}

int wh__endpoint_set_secret(wh__endpoint *ep, const char *new_secret, int64_t old_until_ms,
                            int64_t now_ms, char *errstr, size_t errlen)
{
    char generated[128];
    if (!new_secret) {
        if (wh__secret_generate(generated, sizeof generated) != WH_OK)
            return wh__fail(errstr, errlen, WH_ERR_IO, "secret: could not generate one");
        new_secret = generated;
    }
    unsigned char key[WH__SECRET_KEY_MAX];
    size_t key_len;
    const char *problem = wh__secret_decode(new_secret, key, &key_len);
    if (problem)
        return wh__fail(errstr, errlen, WH_ERR_INVALID, "new_secret: %s", problem);
    char *copy = wh__strdup(new_secret);
    if (!copy)
        return wh__fail(errstr, errlen, WH_ERR_NOMEM, "secret: out of memory");
    /* the rule a durable store applies to the row it holds */
    wh__old_secret old[WH__MAX_OLD_KEYS];
    size_t n = get_old_secrets(ep, old);
    n = wh__old_secrets_rotate(old, n, ep->secret, old_until_ms, new_secret, now_ms);
    set_old_keys(ep, old, n);
    OPENSSL_cleanse(old, sizeof old);
    free(ep->secret);
    ep->secret = copy;
    memcpy(ep->key, key, sizeof key);
    ep->key_len = key_len;
    OPENSSL_cleanse(key, sizeof key);
    return WH_OK;
}

void wh__endpoint_set_disabled(wh__endpoint *ep, const char *reason)
{
    ep->enabled = false;
    free(ep->disabled_reason);
    ep->disabled_reason = wh__strdup(reason);
}

int wh__endpoint_set_settings(wh__endpoint *ep, const char *stored)
{
    if (!stored || !*stored || strcmp(stored, "{}") == 0)
        stored = NULL;
    if (stored && ep->settings && strcmp(stored, ep->settings) == 0)
        return WH_OK;
    wh__ep_settings s;
    char *copy = NULL;
    if ((stored && !(copy = wh__strdup(stored))) || wh__ep_settings_parse(stored, &s) != WH_OK) {
        free(copy);
        return WH_ERR_NOMEM;
    }
    if (ep->settings)
        OPENSSL_cleanse(ep->settings, strlen(ep->settings));
    free(ep->settings);
    free(ep->retry_schedule_ms);
    wh__ep_headers_unref(ep->headers);
    ep->settings = copy;
    ep->rate_limit_per_s = s.rate_limit_per_s;
    ep->ordering_run = s.ordering_run;
    ep->max_in_flight = s.max_in_flight;
    ep->timeout_ms = s.timeout_ms;
    ep->retry_schedule_ms = s.retry_schedule_ms;
    ep->retry_schedule_len = s.retry_schedule_len;
    ep->headers = s.headers; /* the parse's references are the endpoint's now */
    return WH_OK;
}

bool wh__endpoint_settings_are(const wh__endpoint *ep, const char *stored)
{
    if (!stored || !*stored || strcmp(stored, "{}") == 0)
        return !ep->settings;
    return ep->settings && strcmp(ep->settings, stored) == 0;
}

void wh__endpoint_apply_row(wh__endpoint *ep, const wh__endpoint_row *row)
{
    /* a row already applied says nothing new, and memory may be ahead of it (an outcome
     * whose commit is still to come) */
    if (row->version && row->version == ep->version)
        return;
    ep->version = row->version;
    unsigned char key[WH__SECRET_KEY_MAX];
    size_t key_len;
    if (row->secret && strcmp(row->secret, ep->secret) != 0 &&
        !wh__secret_decode(row->secret, key, &key_len)) {
        char *copy = wh__strdup(row->secret);
        if (copy) {
            free(ep->secret);
            ep->secret = copy;
            memcpy(ep->key, key, sizeof key);
            ep->key_len = key_len;
        }
    }
    OPENSSL_cleanse(key, sizeof key);
    /* the row holds every old secret that may still sign: the list in memory is the row's */
    wh__old_secret old[WH__MAX_OLD_KEYS];
    size_t n = wh__old_secrets_read(row->old_secrets, row->old_secret, row->old_until_ms, old);
    set_old_keys(ep, old, n);
    OPENSSL_cleanse(old, sizeof old);
    if (row->enabled && !ep->enabled) {
        free(ep->disabled_reason);
        ep->disabled_reason = NULL;
        ep->failing_since_ms = 0;
    }
    if (!row->enabled && ep->enabled)
        wh__endpoint_set_disabled(ep, row->disabled_reason);
    ep->enabled = row->enabled;
    /* the failing clock is shared by every engine delivering to the endpoint */
    ep->failing_since_ms = row->failing_since_ms;
    /* out of memory: the settings in memory stay, and the row is applied again at the next
     * sync */
    if (wh__endpoint_set_settings(ep, row->settings) != WH_OK)
        ep->version = 0;
}

char *wh__endpoint_row_snapshot(const wh__endpoint *ep, wh__endpoint_row *row)
{
    wh__old_secret old[WH__MAX_OLD_KEYS];
    size_t n_old = get_old_secrets(ep, old);
    char list[WH__OLD_SECRETS_TEXT_MAX];
    wh__old_secrets_write(old, n_old, list);
    const char *parts[] = {ep->id, ep->url, ep->secret, list, old[0].secret,
                           ep->disabled_reason ? ep->disabled_reason : "", ep->description,
                           ep->settings ? ep->settings : "", ep->user_key ? ep->user_key : ""};
    enum { NPARTS = sizeof parts / sizeof parts[0] };
    size_t bytes = 0;
    for (size_t i = 0; i < NPARTS; i++)
        bytes += strlen(parts[i]) + 1;
    for (char **t = ep->event_types; *t; t++)
        bytes += strlen(*t) + 1;
    char *block = malloc(bytes + 1), *p = block;
    if (block) {
        const char *copies[NPARTS];
        for (size_t i = 0; i < NPARTS; i++) {
            copies[i] = p;
            p = stpcpy(p, parts[i]) + 1;
        }
        const char *types = p;
        *p = '\0';
        for (char **t = ep->event_types; *t; t++) {
            if (t != ep->event_types)
                *p++ = ',';
            p = stpcpy(p, *t);
        }
        *row = (wh__endpoint_row){
            .id = copies[0],
            .url = copies[1],
            .event_types = types,
            .secret = copies[2],
            .old_secrets = copies[3],
            /* the newest old secret, for libraries that know only one */
            .old_secret = n_old ? copies[4] : NULL,
            .old_until_ms = n_old ? old[0].until_ms : 0,
            .disabled_reason = ep->disabled_reason ? copies[5] : NULL,
            .description = copies[6],
            .settings = copies[7],
            .key = ep->user_key ? copies[8] : NULL,
            .created_ms = ep->created_ms,
            .failing_since_ms = ep->failing_since_ms,
            .version = ep->version,
            .enabled = ep->enabled,
        };
    }
    OPENSSL_cleanse(old, sizeof old);
    OPENSSL_cleanse(list, sizeof list);
    return block;
}

wh__endpoint *wh__endpoint_from_row(const wh__registry *r, const wh__endpoint_row *row,
                                    char *errstr, size_t errlen)
{
    /* the stored subscriptions are a comma-joined list */
    char *types = wh__strdup(row->event_types ? row->event_types : "*");
    if (!types)
        return NULL;
    const char *list[MAX_SUBSCRIPTIONS + 1];
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(types, ",", &save); t && n < MAX_SUBSCRIPTIONS;
         t = strtok_r(NULL, ",", &save))
        list[n++] = t;
    list[n] = NULL;
    wh_endpoint_spec spec = {.url = row->url,
                             .event_types = n ? list : NULL,
                             .secret = row->secret,
                             .disabled = !row->enabled,
                             .description = row->description,
                             .key = row->key};
    wh__endpoint *ep = wh__endpoint_build(r, &spec, row->id, errstr, errlen);
    free(types);
    if (!ep)
        return NULL;
    ep->created_ms = row->created_ms;
    ep->enabled = !row->enabled; /* so that apply sees the change and sets the reason */
    wh__endpoint_apply_row(ep, row);
    return ep;
}

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

/* What a key's update changes, checked and copied before anything is replaced. */
typedef struct {
    char *url, *description, *key;
    char **types;
} ep_fields;

static void fields_free(ep_fields *f)
{
    free(f->url);
    free(f->description);
    free(f->key);
    for (char **t = f->types; t && *t; t++)
        free(*t);
    free(f->types);
}

static int fields_make(const wh__registry *r, const char *url, const char *const *subs,
                       const char *description, const char *key, ep_fields *f, char *errstr,
                       size_t errlen)
{
    memset(f, 0, sizeof *f);
    const char *problem = url_problem(url);
    if (problem)
        return wh__fail(errstr, errlen, WH_ERR_INVALID, "url: %s", problem);
    bool mask[r->ntypes + 1];
    memset(mask, 0, sizeof mask);
    size_t n = 0;
    for (; subs[n]; n++)
        if (n == MAX_SUBSCRIPTIONS || (problem = subscription_problem(r, subs[n], mask)))
            return wh__fail(errstr, errlen, WH_ERR_INVALID, "event_types: \"%.64s\" %s", subs[n],
                            problem ? problem : "is one too many");
    if (!n)
        return wh__fail(errstr, errlen, WH_ERR_INVALID, "event_types: is empty");
    f->url = wh__strdup(url);
    f->description = wh__strdup(description ? description : "");
    f->key = key ? wh__strdup(key) : NULL;
    f->types = calloc(n + 1, sizeof *f->types);
    bool oom = !f->url || !f->description || (key && !f->key) || !f->types;
    for (size_t i = 0; !oom && i < n; i++)
        oom = !(f->types[i] = wh__strdup(subs[i]));
    if (oom) {
        fields_free(f);
        return wh__fail(errstr, errlen, WH_ERR_NOMEM, "endpoint: out of memory");
    }
    return WH_OK;
}

/* Puts the fields in ep (what they replace goes into f, to be freed), and moves ep in the
 * index where its subscriptions changed; WH_ERR_NOMEM and nothing changed when a list cannot
 * grow. */
static int fields_swap(wh__registry *r, wh__endpoint *ep, ep_fields *f)
{
    bool changed_url = strcmp(ep->url, f->url) != 0;
    if (changed_url) {
        char **v = realloc(ep->retired_urls, (ep->n_retired_urls + 1) * sizeof *v);
        if (!v)
            return WH_ERR_NOMEM;
        ep->retired_urls = v;
    }
    for (size_t ti = 0; ti < r->ntypes; ti++) {
        ep_list *l = &r->by_type[ti];
        if (!types_subscribe(r, f->types, ti) || subscribed(r, ep, ti) || l->n < l->cap)
            continue;
        size_t cap = l->cap ? l->cap * 2 : 4;
        wh__endpoint **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return WH_ERR_NOMEM;
        l->v = v, l->cap = cap;
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

int wh__registry_apply_row(wh__registry *r, wh__endpoint *ep, const wh__endpoint_row *row,
                           char *errstr, size_t errlen)
{
    if (row->version && row->version == ep->version)
        return WH_OK; /* applied already: memory may be ahead of it */
    const char *description = row->description ? row->description : "";
    bool same = row->url && strcmp(row->url, ep->url) == 0 &&
                strcmp(description, ep->description) == 0 &&
                (row->key ? ep->user_key && strcmp(row->key, ep->user_key) == 0 : !ep->user_key);
    char *joined = NULL;
    if (same) {
        /* the stored subscriptions are the joined list */
        size_t len = 1;
        for (char **t = ep->event_types; *t; t++)
            len += strlen(*t) + 1;
        if (!(joined = malloc(len)))
            return wh__fail(errstr, errlen, WH_ERR_NOMEM, "endpoint: out of memory");
        char *p = joined;
        *p = '\0';
        for (char **t = ep->event_types; *t; t++)
            p = stpcpy(p + (t != ep->event_types ? (*p = ',', 1) : 0), *t);
        same = strcmp(joined, row->event_types ? row->event_types : "*") == 0;
        free(joined);
    }
    if (!same) {
        char *types = wh__strdup(row->event_types ? row->event_types : "*");
        if (!types)
            return wh__fail(errstr, errlen, WH_ERR_NOMEM, "endpoint: out of memory");
        const char *list[MAX_SUBSCRIPTIONS + 2];
        size_t n = 0;
        for (char *save = NULL, *t = strtok_r(types, ",", &save); t && n <= MAX_SUBSCRIPTIONS;
             t = strtok_r(NULL, ",", &save))
            list[n++] = t;
        list[n] = NULL;
        ep_fields f;
        int rc = fields_make(r, row->url ? row->url : "", list, description, row->key, &f,
                             errstr, errlen);
        free(types);
        if (rc == WH_OK && (rc = fields_swap(r, ep, &f)) != WH_OK)
            rc = wh__fail(errstr, errlen, rc, "endpoint: out of memory");
        fields_free(&f);
        if (rc != WH_OK)
            return rc;
    }
    wh__endpoint_apply_row(ep, row);
    return WH_OK;
}

int wh__registry_update_from_spec(wh__registry *r, wh__endpoint *ep,
                                  const wh_endpoint_spec *spec)
{
    static const char *const all_types[] = {"*", NULL};
    unsigned char key[WH__SECRET_KEY_MAX];
    size_t key_len = 0;
    char *secret = NULL;
    if (spec->secret) {
        const char *problem = wh__secret_decode(spec->secret, key, &key_len);
        if (problem)
            return wh__fail(NULL, 0, WH_ERR_INVALID, "secret: %s", problem);
        if (!(secret = wh__strdup(spec->secret)))
            return wh__fail(NULL, 0, WH_ERR_NOMEM, "endpoint: out of memory");
    }
    ep_fields f;
    int rc = fields_make(r, spec->url, spec->event_types ? spec->event_types : all_types,
                         spec->description, spec->key, &f, NULL, 0);
    if (rc == WH_OK && (rc = fields_swap(r, ep, &f)) != WH_OK)
        rc = wh__fail(NULL, 0, rc, "endpoint: out of memory");
    fields_free(&f);
    if (rc == WH_OK && secret) {
        free(ep->secret);
        ep->secret = secret;
        memcpy(ep->key, key, sizeof key);
        ep->key_len = key_len;
        secret = NULL;
    }
    if (rc == WH_OK && ep->enabled == !!spec->disabled) {
        /* the spec's state, as a store applies it: by hand, the failing clock stopped */
        ep->enabled = !spec->disabled;
        free(ep->disabled_reason);
        ep->disabled_reason = NULL;
        ep->failing_since_ms = 0;
    }
    OPENSSL_cleanse(key, sizeof key);
    free(secret);
    return rc;
}
