/* An endpoint's row copied out of the store's transaction, for the endpoint calls. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "stored_row.h"

void wh__stored_row_copy(void *ud, const wh__endpoint_row *row)
{
    wh__stored_row *c = ud;
    const char *src[] = {row->id, row->url, row->event_types, row->secret, row->old_secret,
                         row->disabled_reason, row->description, row->old_secrets, row->settings,
                         row->key};
    enum { N = sizeof src / sizeof src[0] };
    size_t bytes = 0;
    for (size_t i = 0; i < N; i++)
        bytes += src[i] ? strlen(src[i]) + 1 : 0;
    free(c->block);
    char *p = c->block = malloc(bytes ? bytes : 1);
    c->size = bytes;
    if (!p) {
        c->oom = true;
        return;
    }
    const char *dst[N];
    for (size_t i = 0; i < N; i++) {
        dst[i] = src[i] ? p : NULL;
        if (src[i])
            p = stpcpy(p, src[i]) + 1;
    }
    c->row = *row;
    c->row.id = dst[0], c->row.url = dst[1], c->row.event_types = dst[2];
    c->row.secret = dst[3], c->row.old_secret = dst[4], c->row.disabled_reason = dst[5];
    c->row.description = dst[6], c->row.old_secrets = dst[7], c->row.settings = dst[8];
    c->row.key = dst[9];
}

void wh__stored_row_free(wh__stored_row *c)
{
    if (c->block) {
        OPENSSL_cleanse(c->block, c->size);
        free(c->block);
    }
    c->block = NULL;
}
