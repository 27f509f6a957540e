/* Private to webhookctl: one endpoint's row, found by id and copied out of the store. */
#ifndef WEBHOOKCTL_CMD_ENDPOINT_SHOW_H
#define WEBHOOKCTL_CMD_ENDPOINT_SHOW_H

#include <stdbool.h>
#include <stdint.h>

#include "old_secrets.h"
#include "store.h"

/* One endpoint row, copied out of the store's callback. */
typedef struct ep_copy {
    char *id, *url, *event_types, *secret, *disabled_reason, *description, *key;
    char *settings; /* as stored: may hold header values */
    wh__old_secret old[WH__MAX_OLD_KEYS]; /* newest first */
    size_t n_old;
    int64_t created_ms, failing_since_ms;
    bool enabled, found, oom;
} ep_copy;

void ctl_ep_copy_free(ep_copy *e);

typedef struct {
    const char *id;
    ep_copy e;
} ep_find;

/* EXIT_OK with f->e filled, or an error printed. */
int ctl_find_endpoint(wh__store *s, const char *id, ep_find *f);

#endif
