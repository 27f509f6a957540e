/* PostgreSQL array literals: every element is quoted (so that no value can be read as NULL,
 * a brace or a separator) except NULL itself; a quote or backslash inside is escaped. */
#include "pg_array.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(wh__pg_arr *a, size_t more)
{
    if (a->oom)
        return false;
    /* room for the element, a separator, the closing brace and the terminator */
    size_t need = a->len + more + 3;
    if (need <= a->cap)
        return true;
    size_t cap = a->cap ? a->cap : 256;
    while (cap < need)
        cap *= 2;
    char *b = realloc(a->buf, cap);
    if (!b) {
        a->oom = true;
        return false;
    }
    a->buf = b, a->cap = cap;
    return true;
}

static void separate(wh__pg_arr *a)
{
    a->buf[a->len++] = a->n++ ? ',' : '{';
}

static void put_raw(wh__pg_arr *a, const char *s, size_t len)
{
    if (!reserve(a, len))
        return;
    separate(a);
    memcpy(a->buf + a->len, s, len);
    a->len += len;
}

void wh__pg_arr_text(wh__pg_arr *a, const char *s)
{
    if (!s)
        put_raw(a, "NULL", 4);
    else
        wh__pg_arr_textn(a, s, strlen(s));
}

void wh__pg_arr_textn(wh__pg_arr *a, const char *s, size_t len)
{
    if (!reserve(a, 2 * len + 2))
        return;
    separate(a);
    char *o = a->buf + a->len;
    *o++ = '"';
    for (const char *end = s + len; s < end; s++) {
        if (*s == '"' || *s == '\\')
            *o++ = '\\';
        *o++ = *s;
    }
    *o++ = '"';
    a->len = (size_t)(o - a->buf);
}

void wh__pg_arr_int(wh__pg_arr *a, int64_t v)
{
    char num[24];
    int len = snprintf(num, sizeof num, "%" PRId64, v);
    put_raw(a, num, (size_t)len);
}

void wh__pg_arr_bool(wh__pg_arr *a, bool v) { put_raw(a, v ? "t" : "f", 1); }

void wh__pg_arr_bytea(wh__pg_arr *a, const void *p, size_t len)
{
    if (!p) {
        put_raw(a, "NULL", 4);
        return;
    }
    static const char hex[] = "0123456789abcdef";
    if (!reserve(a, 2 * len + 5))
        return;
    separate(a);
    char *o = a->buf + a->len;
    /* bytea's hex input form, its backslash escaped for the array */
    memcpy(o, "\"\\\\x", 4);
    o += 4;
    for (const unsigned char *b = p, *end = b + len; b < end; b++) {
        *o++ = hex[*b >> 4];
        *o++ = hex[*b & 15];
    }
    *o++ = '"';
    a->len = (size_t)(o - a->buf);
}

const char *wh__pg_arr_end(wh__pg_arr *a)
{
    if (!reserve(a, 1))
        return NULL;
    if (!a->n)
        a->buf[a->len++] = '{';
    a->buf[a->len] = '}';
    a->buf[a->len + 1] = '\0';
    return a->buf;
}

void wh__pg_arr_free(wh__pg_arr *a)
{
    free(a->buf);
    *a = (wh__pg_arr){0};
}
