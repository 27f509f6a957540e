/* One endpoint: built from a spec once its fields check out, and changed in place (secrets,
 * enabled, settings). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "endpoint.h"
#include "error.h"
#include "registry.h"
#include "sign.h"
#include "util.h"

#define URL_MAX 2048
#define DESCRIPTION_MAX 1024

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
    size_t nsubs = 0;
    for (; subs[nsubs]; nsubs++) {
        if (nsubs == WH__MAX_SUBSCRIPTIONS) {
            wh__fail(errstr, errlen, WH_ERR_INVALID, "event_types: more than %d entries",
                     WH__MAX_SUBSCRIPTIONS);
            return NULL;
        }
        if ((problem = wh__registry_subscription_problem(r, subs[nsubs]))) {
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

void wh__endpoint_set_old_keys(wh__endpoint *ep, const wh__old_secret *v, size_t n)
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

size_t wh__endpoint_old_secrets(const wh__endpoint *ep, wh__old_secret v[WH__MAX_OLD_KEYS])
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
    size_t n = wh__endpoint_old_secrets(ep, old);
    n = wh__old_secrets_rotate(old, n, ep->secret, old_until_ms, new_secret, now_ms);
    wh__endpoint_set_old_keys(ep, old, n);
    OPENSSL_cleanse(old, sizeof old);
    wh__endpoint_take_secret(ep, copy, key, key_len);
    OPENSSL_cleanse(key, sizeof key);
    return WH_OK;
}

void wh__endpoint_take_secret(wh__endpoint *ep, char *copy, const unsigned char *key,
                              size_t key_len)
{
    free(ep->secret);
    ep->secret = copy;
    memcpy(ep->key, key, sizeof ep->key);
    ep->key_len = key_len;
}

void wh__endpoint_set_disabled(wh__endpoint *ep, const char *reason)
{
    ep->enabled = false;
    free(ep->disabled_reason);
    ep->disabled_reason = wh__strdup(reason);
}

void wh__endpoint_set_enabled(wh__endpoint *ep)
{
    ep->enabled = true;
    free(ep->disabled_reason);
    ep->disabled_reason = NULL;
    ep->failing_since_ms = 0;
}

/* "{}" is what a store keeps once the last setting is unset */
static bool no_settings(const char *stored)
{
    return !stored || !*stored || strcmp(stored, "{}") == 0;
}

int wh__endpoint_set_settings(wh__endpoint *ep, const char *stored)
{
    if (no_settings(stored))
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
    if (no_settings(stored))
        return !ep->settings;
    return ep->settings && strcmp(ep->settings, stored) == 0;
}

void wh__endpoint_fields_free(wh__endpoint_fields *f)
{
    free(f->url);
    free(f->description);
    free(f->key);
    for (char **t = f->types; t && *t; t++)
        free(*t);
    free(f->types);
}

int wh__endpoint_fields_make(const wh__registry *r, const char *url, const char *const *subs,
                             const char *description, const char *key, wh__endpoint_fields *f,
                             char *errstr, size_t errlen)
{
    memset(f, 0, sizeof *f);
    const char *problem = url_problem(url);
    if (problem)
        return wh__fail(errstr, errlen, WH_ERR_INVALID, "url: %s", problem);
    size_t n = 0;
    for (; subs[n]; n++)
        if (n == WH__MAX_SUBSCRIPTIONS || (problem = wh__registry_subscription_problem(r, subs[n])))
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
        wh__endpoint_fields_free(f);
        return wh__fail(errstr, errlen, WH_ERR_NOMEM, "endpoint: out of memory");
    }
    return WH_OK;
}
