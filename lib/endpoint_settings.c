/* Per-endpoint settings: the keys, their checks, the stored text and its parse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "endpoint_settings.h"
#include "conf.h"
#include "error.h"
#include "util.h"

#define HEADER_PREFIX "header."
#define HEADER_PREFIX_LEN 7
#define RATE_MAX_PER_S 1000000.0
#define KEYS_HELP "rate_limit, max_in_flight, http.timeout_ms, retry.schedule, ordering, header.<Name>"

bool wh__ep_setting_is_header(const char *key)
{
    return strncmp(key, HEADER_PREFIX, HEADER_PREFIX_LEN) == 0;
}

/* ---- headers ----------------------------------------------------------------------- */

/* Names the library sets itself, or that would change how the request is framed. */
static const char *const reserved[] = {"content-type", "content-length", "host",
                                       "user-agent",   "transfer-encoding", "connection",
                                       "expect",       NULL};

static bool tchar(unsigned char c)
{
    /* RFC 7230 section 3.2.6 */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *header_name_problem(const char *name)
{
    if (!*name)
        return "names no header (header.<Name>, e.g. header.Authorization)";
    if (strlen(name) > WH__EP_HEADER_NAME_MAX)
        return "the header name is longer than 128 bytes";
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (!tchar(*p))
            return "the header name is not an HTTP token (letters, digits and !#$%&'*+-.^_`|~)";
    if (strncasecmp(name, "webhook-", 8) == 0)
        return "is reserved: webhook-* headers carry the signature";
    for (size_t i = 0; reserved[i]; i++)
        if (strcasecmp(name, reserved[i]) == 0)
            return "is reserved: libwebhook sets it";
    return NULL;
}

/* Never quotes the value: it may be a credential. */
static const char *header_value_problem(const char *v)
{
    if (!*v)
        return "the value is empty (NULL removes the header)";
    if (strpbrk(v, "\r\n"))
        return "the value contains CR or LF (never allowed)";
    const char *text = wh__text_problem(v, WH__EP_HEADER_VALUE_MAX);
    if (text && strcmp(text, "is too long") == 0)
        return "the value is longer than 4096 bytes";
    if (text && strcmp(text, "contains a control character") == 0)
        return "the value contains a control character";
    if (text)
        return "the value is not valid UTF-8";
    return NULL;
}

/* ---- the other keys ------------------------------------------------------------------ */

static int rate_parse(const char *v, double *per_s)
{
    char num[32];
    size_t n = strcspn(v, "/");
    if (n >= sizeof num)
        return WH_ERR_INVALID;
    memcpy(num, v, n);
    num[n] = '\0';
    double seconds = 1;
    if (v[n]) {
        const char *unit = v + n + 1;
        if (strcmp(unit, "s") == 0)
            seconds = 1;
        else if (strcmp(unit, "m") == 0)
            seconds = 60;
        else if (strcmp(unit, "h") == 0)
            seconds = 3600;
        else
            return WH_ERR_INVALID;
    }
    double count;
    if (wh__parse_decimal(num, 0, RATE_MAX_PER_S * seconds, &count) != WH_OK)
        return WH_ERR_INVALID;
    *per_s = count / seconds;
    return WH_OK;
}

/* The keys whose values parse as the conf's keys of those names. */
static const struct {
    const char *key, *conf_key;
} conf_keys[] = {
    {"max_in_flight", "endpoint.max_in_flight"},
    {"http.timeout_ms", "http.timeout_ms"},
    {"retry.schedule", "retry.schedule"},
};

static const char *conf_key_of(const char *key)
{
    for (size_t i = 0; i < sizeof conf_keys / sizeof conf_keys[0]; i++)
        if (strcmp(key, conf_keys[i].key) == 0)
            return conf_keys[i].conf_key;
    return NULL;
}

/* Parses one key's value into s (which may own a schedule after it). */
static int parse_one(const char *key, const char *v, wh__ep_settings *s, char *errstr,
                     size_t errlen)
{
    if (strcmp(key, "rate_limit") == 0) {
        if (rate_parse(v, &s->rate_limit_per_s) != WH_OK)
            return wh__fail(errstr, errlen, WH_ERR_INVALID,
                            "rate_limit: invalid value \"%.64s\" (expected N, N/s, N/m or N/h,"
                            " e.g. 50/s or 600/m; 0 = none)", v);
        return WH_OK;
    }
    if (strcmp(key, "ordering") == 0) {
        if (strcmp(v, "none") && strcmp(v, "run"))
            return wh__fail(errstr, errlen, WH_ERR_INVALID,
                            "ordering: invalid value \"%.64s\" (expected \"none\" or \"run\")", v);
        s->ordering_run = strcmp(v, "run") == 0;
        return WH_OK;
    }
    const char *conf_key = conf_key_of(key);
    if (conf_key) {
        wh_conf scratch;
        memset(&scratch, 0, sizeof scratch);
        int rc = wh__conf_parse_as(&scratch, conf_key, key, v, errstr, errlen);
        if (rc != WH_OK)
            return rc;
        if (strcmp(key, "max_in_flight") == 0) {
            s->max_in_flight = scratch.max_in_flight;
        } else if (strcmp(key, "http.timeout_ms") == 0) {
            s->timeout_ms = scratch.http_timeout_ms;
        } else {
            free(s->retry_schedule_ms);
            s->retry_schedule_ms = scratch.retry_schedule_ms;
            s->retry_schedule_len = scratch.retry_schedule_len;
        }
        return WH_OK;
    }
    return wh__fail(errstr, errlen, WH_ERR_INVALID, "%.64s: unknown endpoint setting (one of "
                    KEYS_HELP ")", key);
}

int wh__ep_setting_check(const char *key, const char *value, char *errstr, size_t errlen)
{
    if (!key)
        return wh__fail(errstr, errlen, WH_ERR_INVALID, "key: is NULL");
    if (wh__ep_setting_is_header(key)) {
        const char *name = key + HEADER_PREFIX_LEN;
        const char *problem = header_name_problem(name);
        if (problem && !wh__text_problem(name, WH__EP_HEADER_NAME_MAX))
            return wh__fail(errstr, errlen, WH_ERR_INVALID, "%.140s: %s", key, problem);
        if (problem)
            return wh__fail(errstr, errlen, WH_ERR_INVALID, "header.<Name>: %s", problem);
        if (value && (problem = header_value_problem(value)))
            return wh__fail(errstr, errlen, WH_ERR_INVALID, "%s: %s", key, problem);
        return WH_OK;
    }
    if (!value) {
        /* a reset needs only a known key */
        if (strcmp(key, "rate_limit") && strcmp(key, "ordering") && !conf_key_of(key))
            return wh__fail(errstr, errlen, WH_ERR_INVALID,
                            "%.64s: unknown endpoint setting (one of " KEYS_HELP ")", key);
        return WH_OK;
    }
    wh__ep_settings s;
    memset(&s, 0, sizeof s);
    int rc = parse_one(key, value, &s, errstr, errlen);
    wh__ep_settings_clear(&s);
    return rc;
}

/* ---- the stored text ----------------------------------------------------------------- */

static cJSON *parse_stored(const char *stored)
{
    cJSON *o = stored && *stored ? cJSON_Parse(stored) : NULL;
    if (o && cJSON_IsObject(o))
        return o;
    cJSON_Delete(o);
    return cJSON_CreateObject();
}

static bool same_key(const char *stored_key, const char *key)
{
    if (wh__ep_setting_is_header(key) && wh__ep_setting_is_header(stored_key))
        return strcasecmp(stored_key + HEADER_PREFIX_LEN, key + HEADER_PREFIX_LEN) == 0;
    return strcmp(stored_key, key) == 0;
}

int wh__ep_settings_update(const char *stored, const char *key, const char *value, char **out,
                           char *errstr, size_t errlen)
{
    *out = NULL;
    int rc = wh__ep_setting_check(key, value, errstr, errlen);
    if (rc != WH_OK)
        return rc;
    cJSON *o = parse_stored(stored);
    if (!o)
        return wh__fail(errstr, errlen, WH_ERR_NOMEM, "%.64s: out of memory", key);
    for (cJSON *c = o->child, *next; c; c = next) {
        next = c->next;
        if (c->string && same_key(c->string, key))
            cJSON_Delete(cJSON_DetachItemViaPointer(o, c));
    }
    size_t headers = 0;
    for (cJSON *c = o->child; c; c = c->next)
        headers += c->string && wh__ep_setting_is_header(c->string);
    if (value && wh__ep_setting_is_header(key) && headers >= WH__EP_HEADERS_MAX) {
        cJSON_Delete(o);
        return wh__fail(errstr, errlen, WH_ERR_INVALID,
                        "%.140s: the endpoint has %d headers already (the most it may have)", key,
                        WH__EP_HEADERS_MAX);
    }
    char *text = NULL;
    if (!value || cJSON_AddStringToObject(o, key, value))
        text = cJSON_PrintUnformatted(o);
    bool none = !o->child; /* stored as none, whatever the text was before */
    cJSON_Delete(o);
    if (text)
        *out = wh__strdup(none ? "" : text);
    if (text)
        OPENSSL_cleanse(text, strlen(text)); /* header values may be credentials */
    cJSON_free(text);
    if (!*out)
        return wh__fail(errstr, errlen, WH_ERR_NOMEM, "%.64s: out of memory", key);
    return WH_OK;
}

void wh__ep_headers_ref(wh__ep_headers *h)
{
    if (h)
        __atomic_add_fetch(&h->refs, 1, __ATOMIC_RELAXED);
}

void wh__ep_headers_unref(wh__ep_headers *h)
{
    if (h && __atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        /* the values may be credentials */
        for (size_t i = 0; i < h->n; i++)
            memset(h->lines[i], 0, strlen(h->lines[i]));
        free(h);
    }
}

/* "Name: value" lines of every header in o that this library takes. */
static int build_headers(const cJSON *o, wh__ep_headers **out)
{
    size_t n = 0, bytes = 0;
    for (const cJSON *c = o->child; c; c = c->next)
        if (c->string && cJSON_IsString(c) && wh__ep_setting_is_header(c->string) &&
            !header_name_problem(c->string + HEADER_PREFIX_LEN) &&
            !header_value_problem(c->valuestring) && n < WH__EP_HEADERS_MAX) {
            n++;
            bytes += strlen(c->string) - HEADER_PREFIX_LEN + 2 + strlen(c->valuestring) + 1;
        }
    *out = NULL;
    if (!n)
        return WH_OK;
    wh__ep_headers *h = malloc(sizeof *h + n * sizeof h->lines[0] + bytes);
    if (!h)
        return WH_ERR_NOMEM;
    h->refs = 1;
    h->n = 0;
    char *p = (char *)&h->lines[n];
    for (const cJSON *c = o->child; c && h->n < n; c = c->next)
        if (c->string && cJSON_IsString(c) && wh__ep_setting_is_header(c->string) &&
            !header_name_problem(c->string + HEADER_PREFIX_LEN) &&
            !header_value_problem(c->valuestring)) {
            h->lines[h->n++] = p;
            p += sprintf(p, "%s: %s", c->string + HEADER_PREFIX_LEN, c->valuestring) + 1;
        }
    *out = h;
    return WH_OK;
}

int wh__ep_settings_parse(const char *stored, wh__ep_settings *out)
{
    memset(out, 0, sizeof *out);
    cJSON *o = parse_stored(stored);
    if (!o)
        return WH_ERR_NOMEM;
    for (const cJSON *c = o->child; c; c = c->next) {
        if (!c->string || !cJSON_IsString(c) || wh__ep_setting_is_header(c->string))
            continue;
        /* checked when it was set; one refused now was written by another library */
        wh__ep_settings one = *out;
        if (parse_one(c->string, c->valuestring, &one, NULL, 0) == WH_OK)
            *out = one;
    }
    int rc = build_headers(o, &out->headers);
    cJSON_Delete(o);
    if (rc != WH_OK)
        wh__ep_settings_clear(out);
    return rc;
}

void wh__ep_settings_clear(wh__ep_settings *s)
{
    free(s->retry_schedule_ms);
    wh__ep_headers_unref(s->headers);
    memset(s, 0, sizeof *s);
}

char **wh__ep_settings_list(const char *stored, bool reveal)
{
    cJSON *o = parse_stored(stored);
    if (!o)
        return NULL;
    size_t n = 0, bytes = 0;
    for (const cJSON *c = o->child; c; c = c->next)
        if (c->string && cJSON_IsString(c)) {
            bool hide = !reveal && wh__ep_setting_is_header(c->string);
            n++;
            bytes += strlen(c->string) + 2 +
                     strlen(hide ? WH__EP_HIDDEN_VALUE : c->valuestring);
        }
    char **v = malloc((n + 1) * sizeof *v + bytes);
    if (v) {
        char *p = (char *)&v[n + 1];
        size_t i = 0;
        for (const cJSON *c = o->child; c; c = c->next)
            if (c->string && cJSON_IsString(c)) {
                bool hide = !reveal && wh__ep_setting_is_header(c->string);
                v[i++] = p;
                p += sprintf(p, "%s=%s", c->string, hide ? WH__EP_HIDDEN_VALUE : c->valuestring) + 1;
            }
        v[i] = NULL;
    }
    cJSON_Delete(o);
    return v;
}

int wh__ep_settings_change(char *stored, const char *key, const char *value, char **changed)
{
    char *updated = NULL;
    int rc = wh__ep_settings_update(stored, key, value, &updated, NULL, 0);
    if (rc == WH_OK && strcmp(updated, stored) == 0) {
        wh__ep_settings_free(updated);
        updated = NULL;
    }
    wh__ep_settings_free(stored);
    *changed = rc == WH_OK ? updated : NULL;
    return rc;
}

void wh__ep_settings_free(char *text)
{
    if (text)
        OPENSSL_cleanse(text, strlen(text));
    free(text);
}
