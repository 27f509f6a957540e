/* Private to libwebhook: Clocks, ids, random bytes, the one parser of configuration values, text checks. */
#ifndef WH_UTIL_H
#define WH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "webhook/webhook.h"

int64_t wh__wall_ms(void);
int64_t wh__mono_us(void);
char *wh__strdup(const char *s);
int wh__random_bytes(void *buf, size_t n);
/* How many fork()s this process is from the one that first asked: a value kept from before
 * a fork differs in the child. */
unsigned wh__fork_generation(void);
/* prefix + 10 base32 digits of the time in ms + 20 of 100 random bits, e.g. "evt_..." */
int wh__new_id(const char *prefix, char out[WH_ID_MAX]);
/* One syntax for every number of the configuration (see util.c): digits, for decimals and
 * durations an optional ".digits"; no sign, space, hex or exponent. WH_ERR_INVALID or WH_OK. */
int wh__parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);
int wh__parse_decimal(const char *s, double lo, double hi, double *out);
/* "250ms", "5s", "5m", "1.5h", "5d"; a bare number is seconds. */
int wh__parse_duration_ms(const char *s, int64_t *out_ms);
/* Calls each() on every item of the comma-separated list that is key's value ("" has no
 * items). An empty item (",a", "a,,b", "a,") fails with WH_ERR_INVALID and a message naming
 * key before any call; else returns each()'s first failure, which writes its own message. */
int wh__parse_list(const char *key, const char *list,
                   int (*each)(void *ud, const char *item, size_t len), void *ud, char *errstr,
                   size_t errlen);
/* The event types every context knows, NULL-terminated; event_types.extra adds at most
 * WH__MAX_EXTRA_TYPES more. */
#define WH__N_BUILTIN_TYPES 9
#define WH__MAX_EXTRA_TYPES 256
extern const char *const wh__builtin_types[WH__N_BUILTIN_TYPES + 1];
/* The operational types (`webhook.*`): emitted by the library only, and left out of `*` so
 * that an endpoint subscribed to everything is not sent them unasked. */
#define WH__OP_TYPE_PREFIX "webhook."
bool wh__is_op_type(const char *t);
/* NULL when s is printable UTF-8 with no control characters, else why not. */
const char *wh__text_problem(const char *s, size_t max_len);
bool wh__event_type_syntax_ok(const char *t);
/* NULL when id is a caller's event id that can be a webhook-id (1..63 printable ASCII, no
 * space or comma), else why not. */
const char *wh__event_id_problem(const char *id);

/* A public struct the caller allocated, refused unless its reserved slots are zero (see
 * "ABI: how structs grow" in libwebhook(7)): WH_OK or WH_ERR_INVALID naming the struct. */
int wh__reserved_check(void *const *slots, const char *struct_name);
#define WH__RESERVED_CHECK(p, name) wh__reserved_check((void *const *)(p)->reserved, name)

#endif
