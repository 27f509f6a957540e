/* An endpoint's old secrets as stored: parsing, writing, and a rotation's new list. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "old_secrets.h"

/* Whether s[0..len) may be a stored secret (the registry decodes it later). */
static bool secret_text(const char *s, size_t len)
{
    return len > 0 && len < WH__SECRET_TEXT_MAX && !memchr(s, ':', len) && !memchr(s, ',', len);
}

static size_t find(const wh__old_secret *v, size_t n, const char *secret)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].secret, secret) == 0)
            return i;
    return n;
}

/* The entry whose grace ends first, from index `from` on (the oldest of equals). */
static size_t ending_first(const wh__old_secret *v, size_t n, size_t from)
{
    size_t at = from;
    for (size_t i = from + 1; i < n; i++)
        if (v[i].until_ms <= v[at].until_ms)
            at = i;
    return at;
}

static void drop(wh__old_secret *v, size_t *n, size_t at)
{
    memmove(&v[at], &v[at + 1], (*n - at - 1) * sizeof *v);
    (*n)--;
    memset(&v[*n], 0, sizeof *v);
}

/* Makes room at the front (dropping, when full, the entry from `from` on whose grace ends
 * first) and puts secret there. */
static void push_front(wh__old_secret *v, size_t *n, size_t from, const char *secret,
                       int64_t until_ms)
{
    if (*n == WH__MAX_OLD_KEYS)
        drop(v, n, ending_first(v, *n, from));
    memmove(&v[1], &v[0], *n * sizeof *v);
    (*n)++;
    v[0].until_ms = until_ms;
    snprintf(v[0].secret, sizeof v[0].secret, "%s", secret);
}

size_t wh__old_secrets_read(const char *list, const char *newest, int64_t newest_until_ms,
                            wh__old_secret out[WH__MAX_OLD_KEYS])
{
    memset(out, 0, WH__MAX_OLD_KEYS * sizeof *out);
    size_t n = 0;
    for (const char *p = list ? list : ""; *p && n < WH__MAX_OLD_KEYS;) {
        size_t len = strcspn(p, ",");
        const char *colon = memchr(p, ':', len);
        char *end = NULL;
        long long until = colon && p[0] >= '0' && p[0] <= '9' ? strtoll(p, &end, 10) : -1;
        if (until >= 0 && end == colon) {
            const char *secret = colon + 1;
            size_t slen = len - (size_t)(secret - p);
            if (secret_text(secret, slen)) {
                memcpy(out[n].secret, secret, slen);
                out[n].secret[slen] = '\0';
                out[n].until_ms = until;
                if (find(out, n, out[n].secret) == n) /* the same secret twice: the first */
                    n++;
                else
                    memset(&out[n], 0, sizeof out[n]);
            }
        }
        p += len + (p[len] == ',');
    }
    if (newest && newest_until_ms > 0 && secret_text(newest, strlen(newest)) &&
        find(out, n, newest) == n)
        push_front(out, &n, 0, newest, newest_until_ms);
    return n;
}

void wh__old_secrets_write(const wh__old_secret *v, size_t n, char out[WH__OLD_SECRETS_TEXT_MAX])
{
    char *p = out;
    *p = '\0';
    for (size_t i = 0; i < n && i < WH__MAX_OLD_KEYS; i++)
        p += sprintf(p, "%s%" PRId64 ":%s", i ? "," : "", v[i].until_ms, v[i].secret);
}

size_t wh__old_secrets_rotate(wh__old_secret v[WH__MAX_OLD_KEYS], size_t n, const char *current,
                              int64_t until_ms, const char *next, int64_t now_ms)
{
    for (size_t i = n; i-- > 0;)
        if ((now_ms > 0 && v[i].until_ms <= now_ms) || strcmp(v[i].secret, next) == 0 ||
            (current && strcmp(v[i].secret, current) == 0))
            drop(v, &n, i);
    /* the secret just replaced is the one receivers most likely still hold: it always gets a
     * slot */
    if (current && until_ms > 0 && until_ms > now_ms && strcmp(current, next) != 0 &&
        secret_text(current, strlen(current)))
        push_front(v, &n, 0, current, until_ms);
    return n;
}
