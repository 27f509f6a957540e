/* Private to libwebhook: an endpoint's old secrets as a store keeps them, each with the end of
 * its own grace: "until_ms:secret" entries, newest first, comma-separated (a secret is
 * "whsec_" and base64, so it holds neither ':' nor ','). A store computes a rotation's list
 * from the row it holds, inside the write, so that two processes rotating one endpoint never
 * drop each other's old secret. */
#ifndef WH_OLD_SECRETS_H
#define WH_OLD_SECRETS_H

#include <stddef.h>
#include <stdint.h>

#include "sign.h"

/* Old secrets signing at once while rotations overlap; beyond it, the one whose grace ends
 * first is dropped. */
#define WH__MAX_OLD_KEYS 8
/* A stored list at its longest (each entry: up to 20 digits, ':', a secret, ','). */
#define WH__OLD_SECRETS_TEXT_MAX (WH__MAX_OLD_KEYS * (20 + 1 + WH__SECRET_TEXT_MAX))

typedef struct wh__old_secret {
    int64_t until_ms;
    char secret[WH__SECRET_TEXT_MAX];
} wh__old_secret;

/* The old secrets of a stored row into out; returns how many. Entries that are not
 * "until_ms:secret" are skipped. `newest` (may be NULL) is the single old secret column an
 * older library writes on its own: while its grace lasts (newest_until_ms > 0) and the list
 * lacks it, it is the newest entry. */
size_t wh__old_secrets_read(const char *list, const char *newest, int64_t newest_until_ms,
                            wh__old_secret out[WH__MAX_OLD_KEYS]);
/* v[0..n) as a stored list ("" when n is 0). */
void wh__old_secrets_write(const wh__old_secret *v, size_t n, char out[WH__OLD_SECRETS_TEXT_MAX]);
/* The list after `current` is replaced by `next`: entries whose grace ended by now_ms go
 * (now_ms 0: none), and so does `next` (it signs as the current one); `current` becomes the
 * newest entry until until_ms (when that is after now_ms), and when the list is full, the
 * entry whose grace ends first makes room. Returns the new count. */
size_t wh__old_secrets_rotate(wh__old_secret v[WH__MAX_OLD_KEYS], size_t n, const char *current,
                              int64_t until_ms, const char *next, int64_t now_ms);

#endif
