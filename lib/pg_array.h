/* Private to libwebhook: PostgreSQL array literals ("{...}" in text form) built in a growing
 * buffer, so that a batch of rows travels as one parameter per column and one statement
 * (unnest) writes them all: the server's cost per statement is paid once per batch. */
#ifndef WH_PG_ARRAY_H
#define WH_PG_ARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wh__pg_arr {
    char *buf;
    size_t len, cap;
    size_t n;  /* elements added */
    bool oom;  /* an append failed: wh__pg_arr_end returns NULL */
} wh__pg_arr;

/* Each appends one element; NULL (text, bytea) adds SQL NULL. */
void wh__pg_arr_text(wh__pg_arr *a, const char *s);
void wh__pg_arr_textn(wh__pg_arr *a, const char *s, size_t len);
void wh__pg_arr_int(wh__pg_arr *a, int64_t v);
void wh__pg_arr_bool(wh__pg_arr *a, bool v);
void wh__pg_arr_bytea(wh__pg_arr *a, const void *p, size_t len);
/* The literal, owned by the builder; NULL when memory ran out. */
const char *wh__pg_arr_end(wh__pg_arr *a);
void wh__pg_arr_free(wh__pg_arr *a);

#endif
