/* Endpoints to and from their stored rows: a row builds an endpoint or updates one in memory
 * (another process's change), and an endpoint becomes a row to store. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "registry_rows.h"
#include "error.h"
#include "old_secrets.h"
#include "sign.h"
#include "util.h"

/* Splits the stored, comma-joined subscriptions (NULL: all) into list, at most max of them,
 * NULL-terminated; the list points into the returned copy (free it), NULL when out of memory. */
static char *split_types(const char *stored, const char **list, size_t max)
{
    char *types = wh__strdup(stored ? stored : "*");
    if (!types)
        return NULL;
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(types, ",", &save); t && n < max;
         t = strtok_r(NULL, ",", &save))
        list[n++] = t;
    list[n] = NULL;
    return types;
}

/* The subscriptions as stored: comma-joined. */
static size_t joined_types_len(char *const *types)
{
    size_t len = 1;
    for (char *const *t = types; *t; t++)
        len += strlen(*t) + 1;
    return len;
}

static char *join_types(char *const *types, char *p)
{
    *p = '\0';
    for (char *const *t = types; *t; t++) {
        if (t != types)
            *p++ = ',';
        p = stpcpy(p, *t);
    }
    return p;
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
        if (copy)
            wh__endpoint_take_secret(ep, copy, key, key_len);
    }
    OPENSSL_cleanse(key, sizeof key);
    /* the row holds every old secret that may still sign: the list in memory is the row's */
    wh__old_secret old[WH__MAX_OLD_KEYS];
    size_t n = wh__old_secrets_read(row->old_secrets, row->old_secret, row->old_until_ms, old);
    wh__endpoint_set_old_keys(ep, old, n);
    OPENSSL_cleanse(old, sizeof old);
    if (row->enabled && !ep->enabled)
        wh__endpoint_set_enabled(ep);
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
    size_t n_old = wh__endpoint_old_secrets(ep, old);
    char list[WH__OLD_SECRETS_TEXT_MAX];
    wh__old_secrets_write(old, n_old, list);
    const char *parts[] = {ep->id, ep->url, ep->secret, list, old[0].secret,
                           ep->disabled_reason ? ep->disabled_reason : "", ep->description,
                           ep->settings ? ep->settings : "", ep->user_key ? ep->user_key : ""};
    enum { NPARTS = sizeof parts / sizeof parts[0] };
    size_t bytes = 0;
    for (size_t i = 0; i < NPARTS; i++)
        bytes += strlen(parts[i]) + 1;
    bytes += joined_types_len(ep->event_types);
    char *block = malloc(bytes), *p = block;
    if (block) {
        const char *copies[NPARTS];
        for (size_t i = 0; i < NPARTS; i++) {
            copies[i] = p;
            p = stpcpy(p, parts[i]) + 1;
        }
        const char *types = p;
        join_types(ep->event_types, p);
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
    const char *list[WH__MAX_SUBSCRIPTIONS + 1];
    char *types = split_types(row->event_types, list, WH__MAX_SUBSCRIPTIONS);
    if (!types)
        return NULL;
    wh_endpoint_spec spec = {.url = row->url,
                             .event_types = list[0] ? list : NULL,
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
        if (!(joined = malloc(joined_types_len(ep->event_types))))
            return wh__fail(errstr, errlen, WH_ERR_NOMEM, "endpoint: out of memory");
        join_types(ep->event_types, joined);
        same = strcmp(joined, row->event_types ? row->event_types : "*") == 0;
        free(joined);
    }
    if (!same) {
        /* one more than may be: the check says there are too many */
        const char *list[WH__MAX_SUBSCRIPTIONS + 2];
        char *types = split_types(row->event_types, list, WH__MAX_SUBSCRIPTIONS + 1);
        if (!types)
            return wh__fail(errstr, errlen, WH_ERR_NOMEM, "endpoint: out of memory");
        wh__endpoint_fields f;
        int rc = wh__endpoint_fields_make(r, row->url ? row->url : "", list, description,
                                          row->key, &f, errstr, errlen);
        free(types);
        if (rc == WH_OK && (rc = wh__registry_swap_fields(r, ep, &f)) != WH_OK)
            rc = wh__fail(errstr, errlen, rc, "endpoint: out of memory");
        wh__endpoint_fields_free(&f);
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
    wh__endpoint_fields f;
    int rc = wh__endpoint_fields_make(r, spec->url, spec->event_types ? spec->event_types : all_types,
                                      spec->description, spec->key, &f, NULL, 0);
    if (rc == WH_OK && (rc = wh__registry_swap_fields(r, ep, &f)) != WH_OK)
        rc = wh__fail(NULL, 0, rc, "endpoint: out of memory");
    wh__endpoint_fields_free(&f);
    if (rc == WH_OK && secret) {
        wh__endpoint_take_secret(ep, secret, key, key_len);
        secret = NULL;
    }
    if (rc == WH_OK && ep->enabled == !!spec->disabled) {
        /* the spec's state, as a store applies it: by hand, the failing clock stopped */
        wh__endpoint_set_enabled(ep);
        ep->enabled = !spec->disabled;
    }
    OPENSSL_cleanse(key, sizeof key);
    free(secret);
    return rc;
}
