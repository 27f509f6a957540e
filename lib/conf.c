/* Settings as string key/value pairs, each validated when it is set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "error.h"
#include "netguard.h"
#include "store.h"
#include "util.h"

typedef int (*apply_fn)(wh_conf *c, const char *key, const char *v, char *errstr, size_t errlen);

typedef struct {
    const char *key;
    const char *default_value;
    apply_fn apply;
} conf_key;

static int bad(char *errstr, size_t errlen, const char *key, const char *v, const char *want)
{
    return wh__fail(errstr, errlen, WH_ERR_INVALID, "%s: invalid value \"%.64s\" (%s)", key, v,
                    want);
}

static int apply_store(wh_conf *c, const char *key, const char *v, char *errstr, size_t errlen)
{
    if (wh__store_is_pg(v)) {
        int rc = wh__store_pg_check(v, errstr, errlen);
        if (rc != WH_OK)
            return rc;
    } else if (strcmp(v, "memory") != 0 && !(strncmp(v, "sqlite:", 7) == 0 && v[7])) {
        return bad(errstr, errlen, key, v,
                   "expected \"memory\", \"sqlite:PATH\" or a PostgreSQL connection string");
    }
    char *s = wh__strdup(v);
    if (!s)
        return WH_ERR_NOMEM;
    free(c->store);
    c->store = s;
    return WH_OK;
}

static int apply_schema(wh_conf *c, const char *key, const char *v, char *errstr, size_t errlen)
{
    (void)c;
    (void)key;
    return wh__store_schema_check(v, errstr, errlen);
}

static int apply_sync(wh_conf *c, const char *key, const char *v, char *errstr, size_t errlen)
{
    if (strcmp(v, "normal") && strcmp(v, "full"))
        return bad(errstr, errlen, key, v, "expected \"normal\" or \"full\"");
    c->store_sync_full = strcmp(v, "full") == 0;
    return WH_OK;
}

/* What a list item's parser needs to name the key and value in its message. */
typedef struct {
    const char *key, *value;
    char *errstr;
    size_t errlen;
} list_ctx;

typedef struct {
    list_ctx lc;
    int64_t ms[64];
    size_t n;
} schedule;

static int schedule_item(void *ud, const char *item, size_t len)
{
    schedule *sc = ud;
    const list_ctx *lc = &sc->lc;
    char text[32];
    if (sc->n == 64)
        return bad(lc->errstr, lc->errlen, lc->key, lc->value, "expected up to 64 comma-separated durations");
    if (len >= sizeof text)
        return bad(lc->errstr, lc->errlen, lc->key, lc->value, "each delay is a duration such as 5s, 5m, 2h, 1d");
    memcpy(text, item, len);
    text[len] = '\0';
    if (wh__parse_duration_ms(text, &sc->ms[sc->n]) != WH_OK)
        return bad(lc->errstr, lc->errlen, lc->key, lc->value, "each delay is a duration such as 5s, 5m, 2h, 1d");
    sc->n++;
    return WH_OK;
}

static int apply_schedule(wh_conf *c, const char *key, const char *v, char *errstr, size_t errlen)
{
    schedule sc = {.lc = {key, v, errstr, errlen}, .n = 0};
    int rc = wh__parse_list(key, v, schedule_item, &sc, errstr, errlen);
    if (rc != WH_OK)
        return rc;
    if (sc.n == 0)
        return bad(errstr, errlen, key, v, "needs at least one delay");
    int64_t *copy = malloc(sc.n * sizeof *copy);
    if (!copy)
        return WH_ERR_NOMEM;
    memcpy(copy, sc.ms, sc.n * sizeof *copy);
    free(c->retry_schedule_ms);
    c->retry_schedule_ms = copy;
    c->retry_schedule_len = sc.n;
    return WH_OK;
}

static int apply_jitter(wh_conf *c, const char *key, const char *v, char *errstr, size_t errlen)
{
    double d;
    if (wh__parse_decimal(v, 0, 1, &d) != WH_OK)
        return bad(errstr, errlen, key, v, "expected a fraction from 0 to 1");
    c->retry_jitter = d;
    return WH_OK;
}

#define DURATION_APPLIER(name, field)                                                          \
    static int name(wh_conf *c, const char *key, const char *v, char *errstr, size_t errlen)   \
    {                                                                                          \
        int64_t ms;                                                                            \
        if (wh__parse_duration_ms(v, &ms) != WH_OK)                                            \
            return bad(errstr, errlen, key, v, "expected a duration such as 30s, 24h, 5d");    \
        c->field = ms;                                                                         \
        return WH_OK;                                                                          \
    }
DURATION_APPLIER(apply_max_delay, retry_max_delay_ms)
DURATION_APPLIER(apply_disable_after, disable_after_ms)
DURATION_APPLIER(apply_retention, log_retention_ms)
DURATION_APPLIER(apply_dedup_window, dedup_window_ms)

static int apply_lease(wh_conf *c, const char *key, const char *v, char *errstr, size_t errlen)
{
    int64_t ms;
    /* renewed every third of it, with a commit each time: shorter would be mostly heartbeats */
    if (wh__parse_duration_ms(v, &ms) != WH_OK || ms < 1000 || ms > 86400000)
        return bad(errstr, errlen, key, v, "expected a duration from 1s to 24h");
    c->store_lease_ms = ms;
    return WH_OK;
}

#define INT_APPLIER(name, field, lo, hi)                                                       \
    static int name(wh_conf *c, const char *key, const char *v, char *errstr, size_t errlen)   \
    {                                                                                          \
        int64_t n;                                                                             \
        if (wh__parse_int(v, lo, hi, &n) != WH_OK)                                             \
            return bad(errstr, errlen, key, v, "expected an integer from " #lo " to " #hi);    \
        c->field = n;                                                                          \
        return WH_OK;                                                                          \
    }
INT_APPLIER(apply_timeout, http_timeout_ms, 1, 3600000)
INT_APPLIER(apply_connect_timeout, http_connect_timeout_ms, 1, 3600000)
INT_APPLIER(apply_max_in_flight, max_in_flight, 1, 100000)
INT_APPLIER(apply_max_connections, max_connections, 1, 100000)
INT_APPLIER(apply_max_pending, max_pending, 1, 1000000000)
INT_APPLIER(apply_response_max, response_max, 0, 16777216)
INT_APPLIER(apply_ring, log_ring, 0, 10000000)

#define PATH_APPLIER(name, field)                                                              \
    static int name(wh_conf *c, const char *key, const char *v, char *errstr, size_t errlen)   \
    {                                                                                          \
        (void)key, (void)errstr, (void)errlen;                                                 \
        char *s = *v ? wh__strdup(v) : NULL;                                                   \
        if (*v && !s)                                                                          \
            return WH_ERR_NOMEM;                                                               \
        free(c->field);                                                                        \
        c->field = s;                                                                          \
        return WH_OK;                                                                          \
    }
PATH_APPLIER(apply_log_file, log_file)
PATH_APPLIER(apply_ca_file, tls_ca_file)

static int apply_allow_private(wh_conf *c, const char *key, const char *v, char *errstr,
                               size_t errlen)
{
    if (strcmp(v, "true") && strcmp(v, "false"))
        return bad(errstr, errlen, key, v, "expected \"true\" or \"false\"");
    c->allow_private = strcmp(v, "true") == 0;
    return WH_OK;
}

static int apply_allow_cidrs(wh_conf *c, const char *key, const char *v, char *errstr,
                             size_t errlen)
{
    (void)key;
    int rc = wh__netguard_parse_cidrs(v, errstr, errlen);
    if (rc != WH_OK)
        return rc;
    char *s = wh__strdup(v);
    if (!s)
        return WH_ERR_NOMEM;
    free(c->allow_cidrs);
    c->allow_cidrs = s;
    return WH_OK;
}

static void free_strv(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

typedef struct {
    list_ctx lc;
    char **types; /* WH__MAX_EXTRA_TYPES + 1 slots */
    size_t n;
} extra_types;

static int extra_type_item(void *ud, const char *item, size_t len)
{
    extra_types *x = ud;
    const list_ctx *lc = &x->lc;
    if (x->n == WH__MAX_EXTRA_TYPES)
        return bad(lc->errstr, lc->errlen, lc->key, lc->value, "at most 256 event types");
    char *t = malloc(len + 1);
    if (!t)
        return wh__fail(lc->errstr, lc->errlen, WH_ERR_NOMEM, "%s: out of memory", lc->key);
    memcpy(t, item, len);
    t[len] = '\0';
    x->types[x->n++] = t;
    const char *problem = NULL;
    if (!wh__event_type_syntax_ok(t))
        problem = "must match ^[a-z][a-z0-9_]*\\.[a-z][a-z0-9_]*$";
    for (size_t i = 0; !problem && wh__builtin_types[i]; i++)
        if (strcmp(wh__builtin_types[i], t) == 0)
            problem = "is a built-in event type";
    if (!problem && wh__is_op_type(t))
        problem = "is in the webhook.* namespace, kept for the library's operational events";
    for (size_t i = 0; !problem && i + 1 < x->n; i++)
        if (strcmp(x->types[i], t) == 0)
            problem = "is listed twice";
    if (problem)
        return wh__fail(lc->errstr, lc->errlen, WH_ERR_INVALID, "%s: \"%.64s\" %s", lc->key, t, problem);
    return WH_OK;
}

static int apply_extra_types(wh_conf *c, const char *key, const char *v, char *errstr,
                             size_t errlen)
{
    extra_types x = {.lc = {key, v, errstr, errlen}, .n = 0};
    x.types = calloc(WH__MAX_EXTRA_TYPES + 1, sizeof *x.types);
    if (!x.types)
        return wh__fail(errstr, errlen, WH_ERR_NOMEM, "%s: out of memory", key);
    int rc = wh__parse_list(key, v, extra_type_item, &x, errstr, errlen);
    if (rc != WH_OK) {
        free_strv(x.types);
        return rc;
    }
    free_strv(c->extra_types);
    c->extra_types = x.types;
    return WH_OK;
}

static const conf_key keys[] = {
    {"store", "memory", apply_store},
    {"store.sync", "normal", apply_sync},
    {"store.lease", "30s", apply_lease},
    {"store.schema", "webhook", apply_schema},
    {"retry.schedule", "5s,5m,30m,2h,5h,10h,14h,20h,24h", apply_schedule},
    {"retry.jitter", "0.2", apply_jitter},
    {"retry.max_delay", "24h", apply_max_delay},
    {"endpoint.disable_after", "5d", apply_disable_after},
    {"endpoint.max_in_flight", "16", apply_max_in_flight},
    {"http.timeout_ms", "15000", apply_timeout},
    {"http.connect_timeout_ms", "5000", apply_connect_timeout},
    {"http.max_connections", "256", apply_max_connections},
    {"queue.max_pending", "1000000", apply_max_pending},
    {"log.response_max", "4096", apply_response_max},
    {"log.file", "", apply_log_file},
    {"log.ring_size", "1000", apply_ring},
    {"log.retention", "30d", apply_retention},
    {"emit.dedup_window", "24h", apply_dedup_window},
    {"tls.ca_file", "", apply_ca_file},
    {"security.allow_private", "false", apply_allow_private},
    {"security.allow_cidrs", "", apply_allow_cidrs},
    {"event_types.extra", "", apply_extra_types},
};
#define N_KEYS (sizeof keys / sizeof keys[0])
_Static_assert(N_KEYS <= sizeof ((wh_conf *)0)->values / sizeof(char *), "values[] too small");

static int key_index(const char *key)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].key, key) == 0)
            return (int)i;
    return -1;
}

wh_conf *wh_conf_new(void)
{
    wh_conf *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    for (size_t i = 0; i < N_KEYS; i++) {
        char err[160];
        if (keys[i].apply(c, keys[i].key, keys[i].default_value, err, sizeof err) != WH_OK ||
            !(c->values[i] = wh__strdup(keys[i].default_value))) {
            wh_conf_destroy(c);
            return NULL;
        }
    }
    return c;
}

int wh_conf_set(wh_conf *c, const char *key, const char *value, char *errstr, size_t errlen)
{
    if (!c)
        return wh__fail(errstr, errlen, WH_ERR_INVALID, "conf: is NULL");
    if (!key)
        return wh__fail(errstr, errlen, WH_ERR_INVALID, "key: is NULL");
    int i = key_index(key);
    if (i < 0)
        return wh__fail(errstr, errlen, WH_ERR_INVALID, "%.64s: unknown configuration key", key);
    if (!value)
        return wh__fail(errstr, errlen, WH_ERR_INVALID, "%s: value is NULL", key);
    char *copy = wh__strdup(value);
    if (!copy)
        return wh__fail(errstr, errlen, WH_ERR_NOMEM, "%s: out of memory", key);
    /* each applier parses fully before it replaces anything */
    int rc = keys[i].apply(c, key, value, errstr, errlen);
    if (rc != WH_OK) {
        free(copy);
        /* the appliers' copies say nothing of their own when they fail */
        return rc == WH_ERR_NOMEM ? wh__fail(errstr, errlen, rc, "%s: out of memory", key) : rc;
    }
    free(c->values[i]);
    c->values[i] = copy;
    return WH_OK;
}

int wh__conf_parse_as(wh_conf *into, const char *conf_key, const char *shown, const char *value,
                      char *errstr, size_t errlen)
{
    int i = key_index(conf_key);
    if (i < 0)
        return wh__fail(errstr, errlen, WH_ERR_INVALID, "%s: unknown configuration key", conf_key);
    int rc = keys[i].apply(into, shown, value, errstr, errlen);
    return rc == WH_ERR_NOMEM ? wh__fail(errstr, errlen, rc, "%s: out of memory", shown) : rc;
}

const char *wh_conf_get(const wh_conf *c, const char *key)
{
    int i = (c && key) ? key_index(key) : -1;
    return i < 0 ? NULL : c->values[i];
}

int wh_conf_add_log_sink(wh_conf *c, const wh_log_sink *sink)
{
    if (!c || !sink || !sink->write)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "sink: NULL or without a write function");
    int rc = WH__RESERVED_CHECK(sink, "wh_log_sink");
    if (rc != WH_OK)
        return rc;
    if (c->n_sinks == WH__MAX_SINKS)
        return wh__fail(NULL, 0, WH_ERR_FULL, "sink: at most %d log sinks", WH__MAX_SINKS);
    c->sinks[c->n_sinks++] = *sink;
    return WH_OK;
}

int wh_conf_set_transport(wh_conf *c, const wh_transport *t)
{
    if (!c || !t || !t->submit || !t->perform)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "transport: NULL or without submit/perform");
    int rc = WH__RESERVED_CHECK(t, "wh_transport");
    if (rc != WH_OK)
        return rc;
    if (c->has_transport && c->transport.destroy && c->transport.ud != t->ud)
        c->transport.destroy(c->transport.ud); /* the one it replaces is the conf's */
    c->transport = *t;
    c->has_transport = true;
    return WH_OK;
}

int wh_conf_set_clock(wh_conf *c, int64_t (*now_ms)(void *ud), void *ud)
{
    if (!c)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "conf: is NULL");
    c->clock = now_ms;
    c->clock_ud = ud;
    return WH_OK;
}

int wh_conf_set_notify(wh_conf *c, void (*fn)(void *ud, const wh_notice *n), void *ud)
{
    if (!c)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "conf: is NULL");
    c->notify = fn;
    c->notify_ud = fn ? ud : NULL;
    return WH_OK;
}

void wh_conf_destroy(wh_conf *c)
{
    if (!c)
        return;
    /* the conf owns what was handed to it until wh_new takes it over */
    for (size_t i = 0; i < c->n_sinks; i++)
        if (c->sinks[i].close)
            c->sinks[i].close(c->sinks[i].ud);
    if (c->has_transport && c->transport.destroy)
        c->transport.destroy(c->transport.ud);
    for (size_t i = 0; i < N_KEYS; i++)
        free(c->values[i]);
    free(c->store);
    free(c->retry_schedule_ms);
    free(c->log_file);
    free(c->tls_ca_file);
    free(c->allow_cidrs);
    free_strv(c->extra_types);
    free(c);
}
