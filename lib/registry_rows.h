/* Private to libwebhook: Endpoints to and from their stored rows, and a key's update applied
 * to the endpoint in memory. */
#ifndef WH_REGISTRY_ROWS_H
#define WH_REGISTRY_ROWS_H

#include <stddef.h>

#include "webhook/webhook.h"
#include "registry.h"
#include "store.h"

wh__endpoint *wh__endpoint_from_row(const wh__registry *r, const wh__endpoint_row *row,
                                    char *errstr, size_t errlen);
/* Takes over what another process may change (enabled, reason, secrets, failing clock,
 * settings) when the row's version is not the one applied last; the row's old secrets
 * replace the ones in memory. */
void wh__endpoint_apply_row(wh__endpoint *ep, const wh__endpoint_row *row);
/* wh__endpoint_apply_row, and also what a key's update changes (url, event_types,
 * description, key), moving the endpoint in the index by event type. WH_ERR_INVALID (with
 * errstr) and nothing changed when this engine cannot use the row's url or types. */
int wh__registry_apply_row(wh__registry *r, wh__endpoint *ep, const wh__endpoint_row *row,
                           char *errstr, size_t errlen);
/* An update of ep from a spec given for its key (memory store: the registry is the only
 * copy); the secret only when the spec has one. Nothing changed on failure. */
int wh__registry_update_from_spec(wh__registry *r, wh__endpoint *ep,
                                  const wh_endpoint_spec *spec);
/* ep as a row; the returned block holds its strings (free it). */
char *wh__endpoint_row_snapshot(const wh__endpoint *ep, wh__endpoint_row *row);

#endif
