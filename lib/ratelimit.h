/* Private to libwebhook: the token bucket of an endpoint's rate limit, as plain arithmetic:
 * the engine's own bucket (one engine) and the buckets a store shares between engines both
 * count with it. */
#ifndef WH_RATELIMIT_H
#define WH_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

/* A shared bucket hands an engine at most this long's worth of tokens at a time: the engines
 * drawing on it stay within a tenth of a second of each other. */
#define WH__RATE_GRANT_MS 100

/* One second's worth, at least one token. */
double wh__rate_burst(double rate_per_s);
/* What a bucket shared by engines holds at most: one second's worth less one grant, since a
 * granted token may be spent up to a grant's time later; so what the engines hold and what
 * the store keeps never add up to more than one second's worth. At least one token. */
double wh__rate_shared_burst(double rate_per_s);
/* Refills a bucket holding *tokens as of *at_ms (0: never used, so full) up to now_ms, never
 * above `burst` (wh__rate_burst or wh__rate_shared_burst), then
 * takes up to `want` whole tokens; returns how many. *wait_ms: how long until the next whole
 * token (0 when one is there). A clock that went back refills nothing and never moves
 * *at_ms back. */
int wh__bucket_take(double *tokens, int64_t *at_ms, double rate_per_s, double burst, int want,
                    int64_t now_ms, int64_t *wait_ms);
/* How many tokens to ask a shared bucket for when `waiting` deliveries wait. */
int wh__rate_grant_size(double rate_per_s, size_t waiting);

#endif
