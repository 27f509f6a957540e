/* Private to libwebhook: The endpoints an engine knows, by id and by caller's key, and the
 * index from event type to the endpoints subscribed to it. */
#ifndef WH_REGISTRY_H
#define WH_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "endpoint.h"

wh__registry *wh__registry_new(const char *const *known_types);
void wh__registry_free(wh__registry *r);
/* The index of a known event type, or -1. */
int wh__registry_type_index(const wh__registry *r, const char *type);
const char *const *wh__registry_types(const wh__registry *r);
/* Why one subscription ("*", "prefix.*" or a type) names no known event type; NULL: it
 * does. */
const char *wh__registry_subscription_problem(const wh__registry *r, const char *sub);
int wh__registry_add(wh__registry *r, wh__endpoint *ep);
wh__endpoint *wh__registry_find(const wh__registry *r, const char *id);
/* The endpoint with that id; WH_ERR_INVALID or WH_ERR_NOTFOUND (the error set) when the id
 * is no good or names none. */
int wh__registry_lookup(const wh__registry *r, const char *id, wh__endpoint **out);
/* The endpoint with the caller's key, or NULL. */
wh__endpoint *wh__registry_find_key(const wh__registry *r, const char *key);
/* Unlinks (marks removed, drops the registry's reference). */
int wh__registry_remove(wh__registry *r, const char *id);
/* Endpoints subscribed to type index ti, enabled or not. */
wh__endpoint *const *wh__registry_match(const wh__registry *r, int ti, size_t *n);
size_t wh__registry_count(const wh__registry *r);
wh__endpoint *wh__registry_at(const wh__registry *r, size_t i);
/* Puts the fields in ep (what they replace goes into f, to be freed), and moves ep in the
 * index where its subscriptions changed; WH_ERR_NOMEM and nothing changed when a list cannot
 * grow. */
int wh__registry_swap_fields(wh__registry *r, wh__endpoint *ep, wh__endpoint_fields *f);

#endif
