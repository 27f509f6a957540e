/* Small helpers shared by the pieces: clocks, ids, durations, text checks. */
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>

#include "util.h"
#include "error.h"

int64_t wh__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wh__mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

char *wh__strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* Ids take random bytes on every emit; OpenSSL checks for a fork (a getpid call) on each
 * RAND_bytes, so each thread draws a block at a time. A fork empties every block, so parent
 * and child never hand out the same bytes. */
#define RANDOM_BLOCK 512
static unsigned fork_generation;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void after_fork_in_child(void) { __atomic_add_fetch(&fork_generation, 1, __ATOMIC_RELAXED); }
static void install_atfork(void) { pthread_atfork(NULL, NULL, after_fork_in_child); }

unsigned wh__fork_generation(void)
{
    pthread_once(&atfork_once, install_atfork);
    return __atomic_load_n(&fork_generation, __ATOMIC_RELAXED);
}

int wh__random_bytes(void *buf, size_t n)
{
    static _Thread_local unsigned char block[RANDOM_BLOCK];
    static _Thread_local size_t left;
    static _Thread_local unsigned generation;
    pthread_once(&atfork_once, install_atfork);
    unsigned now_generation = __atomic_load_n(&fork_generation, __ATOMIC_RELAXED);
    if (n > RANDOM_BLOCK / 4)
        return RAND_bytes(buf, (int)n) == 1 ? WH_OK : WH_ERR_IO;
    if (left < n || generation != now_generation) {
        if (RAND_bytes(block, RANDOM_BLOCK) != 1)
            return WH_ERR_IO;
        left = RANDOM_BLOCK;
        generation = now_generation;
    }
    unsigned char *from = block + RANDOM_BLOCK - left;
    memcpy(buf, from, n);
    OPENSSL_cleanse(from, n); /* bytes handed out once are not kept */
    left -= n;
    return WH_OK;
}

int wh__new_id(const char *prefix, char out[WH_ID_MAX])
{
    static const char alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz"; /* Crockford base32, in ASCII order */
    unsigned char rnd[13];
    if (wh__random_bytes(rnd, sizeof rnd) != WH_OK)
        return WH_ERR_IO;
    size_t p = strlen(prefix);
    memcpy(out, prefix, p);
    /* 10 digits of the time in ms first, so that ids sort by creation and a store's
     * indexes on them grow at one end; then 100 random bits */
    uint64_t ms = (uint64_t)wh__wall_ms();
    for (int k = 9; k >= 0; k--, ms >>= 5)
        out[p + (size_t)k] = alphabet[ms & 31];
    p += 10;
    unsigned bitbuf = 0, bits = 0;
    size_t i = 0;
    for (int k = 0; k < 20; k++) {
        if (bits < 5) {
            bitbuf = (bitbuf << 8) | rnd[i++];
            bits += 8;
        }
        out[p++] = alphabet[(bitbuf >> (bits - 5)) & 31];
        bits -= 5;
    }
    out[p] = '\0';
    return WH_OK;
}

/* The one number syntax of the configuration: ASCII digits, then optionally '.' and more
 * digits. No sign, space, hex, exponent, "inf" or "nan", and the decimal point is '.' whatever
 * the locale (strtod would follow the host's setlocale). Returns the end, or NULL. */
static const char *scan_decimal(const char *s, double *out)
{
    const char *p = s;
    double v = 0;
    while (*p >= '0' && *p <= '9')
        v = v * 10 + (*p++ - '0');
    if (p == s)
        return NULL;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        for (double scale = 0.1; *p >= '0' && *p <= '9'; scale /= 10)
            v += (*p++ - '0') * scale;
    }
    *out = v;
    return p;
}

int wh__parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    uint64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return WH_ERR_INVALID;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (p == s || *p || v > (uint64_t)INT64_MAX || (int64_t)v < lo || (int64_t)v > hi)
        return WH_ERR_INVALID;
    *out = (int64_t)v;
    return WH_OK;
}

int wh__parse_decimal(const char *s, double lo, double hi, double *out)
{
    double v;
    const char *end = scan_decimal(s, &v);
    if (!end || *end || !(v >= lo && v <= hi))
        return WH_ERR_INVALID;
    *out = v;
    return WH_OK;
}

int wh__parse_duration_ms(const char *s, int64_t *out_ms)
{
    double v;
    const char *unit = scan_decimal(s, &v);
    if (!unit)
        return WH_ERR_INVALID;
    static const struct {
        const char *name;
        double ms;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60e3}, {"h", 3600e3}, {"d", 86400e3}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(unit, units[i].name) == 0) {
            double ms = v * units[i].ms;
            if (!(ms <= 1e15))
                return WH_ERR_INVALID;
            *out_ms = (int64_t)ms;
            return WH_OK;
        }
    return WH_ERR_INVALID;
}

int wh__parse_list(const char *key, const char *list,
                   int (*each)(void *ud, const char *item, size_t len), void *ud, char *errstr,
                   size_t errlen)
{
    if (!*list)
        return WH_OK;
    /* the shape first, so that each() never sees part of a list that is then refused */
    for (const char *p = list;; p++) {
        bool ends_item = *p == ',' || !*p;
        if (ends_item && (p == list || p[-1] == ','))
            return wh__fail(errstr, errlen, WH_ERR_INVALID,
                            "%s: invalid value \"%.64s\" (empty item: a leading, trailing or doubled comma)",
                            key, list);
        if (!*p)
            break;
    }
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        int rc = each(ud, p, len);
        if (rc != WH_OK)
            return rc;
        p += len + (p[len] == ',');
    }
    return WH_OK;
}

const char *wh__text_problem(const char *s, size_t max_len)
{
    size_t n = strlen(s);
    if (n == 0)
        return "is empty";
    if (n > max_len)
        return "is too long";
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        size_t len;
        unsigned cp;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return "contains a control character";
            p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07;
        } else {
            return "is not valid UTF-8";
        }
        for (size_t k = 1; k < len; k++) {
            if ((p[k] & 0xc0) != 0x80)
                return "is not valid UTF-8";
            cp = (cp << 6) | (p[k] & 0x3f);
        }
        static const unsigned min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_for_len[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return "is not valid UTF-8";
        if (cp >= 0x80 && cp <= 0x9f)
            return "contains a control character";
        p += len;
    }
    return NULL;
}

const char *const wh__builtin_types[WH__N_BUILTIN_TYPES + 1] = {
    "workflow_run.started", "workflow_run.completed", "workflow_run.failed",
    "task_run.started",     "task_run.completed",     "task_run.cancelled",
    "webhook.endpoint_disabled", "webhook.endpoint_enabled", "webhook.delivery_failed", NULL,
};

bool wh__is_op_type(const char *t)
{
    return strncmp(t, WH__OP_TYPE_PREFIX, sizeof WH__OP_TYPE_PREFIX - 1) == 0;
}

bool wh__event_type_syntax_ok(const char *t)
{
    /* ^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$ */
    const char *p = t;
    for (int part = 0; part < 2; part++) {
        if (!(*p >= 'a' && *p <= 'z'))
            return false;
        p++;
        while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')
            p++;
        if (part == 0) {
            if (*p != '.')
                return false;
            p++;
        }
    }
    return *p == '\0' && (size_t)(p - t) < WH_ID_MAX;
}

const char *wh__event_id_problem(const char *id)
{
    size_t n = strnlen(id, WH_ID_MAX);
    if (n == 0)
        return "is empty";
    if (n >= WH_ID_MAX)
        return "is longer than 63 bytes";
    /* it goes out as the webhook-id header and is signed as "id.timestamp.body" */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == ',')
            return "may hold printable ASCII only, without spaces or commas";
    return NULL;
}

int wh__reserved_check(void *const *slots, const char *struct_name)
{
    for (size_t i = 0; i < WH_RESERVED_SLOTS; i++)
        if (slots[i])
            return wh__fail(NULL, 0, WH_ERR_INVALID,
                            "%s: reserved fields must be zero (initialise it with = {0} or"
                            " designated initialisers)", struct_name);
    return WH_OK;
}

const char *wh_version(void) { return WH_VERSION_STRING; }
