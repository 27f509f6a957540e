/* wh_endpoint_get and wh_endpoint_list: copies of endpoints taken under the lock, handed to
 * the caller's callback without it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "endpoint_settings.h"
#include "error.h"
#include "registry.h"
#include "util.h"

/* A copy of an endpoint that callbacks can read with no lock held. */
typedef struct {
    wh_endpoint_info info;
    char id[WH_ID_MAX];
    char *strings; /* one block holding every string below */
    const char **types;
    char **settings; /* one block (endpoint_settings.h) */
} ep_snapshot;

static void snapshot_free(ep_snapshot *s)
{
    free(s->strings);
    free(s->types);
    free(s->settings);
}

static int snapshot_take(const wh__endpoint *ep, ep_snapshot *s)
{
    memset(s, 0, sizeof *s);
    wh_endpoint_info src;
    wh__endpoint_info_fill(ep, &src);
    size_t ntypes = 0, bytes = 0;
    for (; src.event_types[ntypes]; ntypes++)
        bytes += strlen(src.event_types[ntypes]) + 1;
    const char *fields[] = {src.url, src.secret, src.description,
                            src.disabled_reason ? src.disabled_reason : "", src.key ? src.key : ""};
    enum { N = sizeof fields / sizeof fields[0] };
    for (size_t i = 0; i < N; i++)
        bytes += strlen(fields[i]) + 1;
    s->strings = malloc(bytes);
    s->types = calloc(ntypes + 1, sizeof *s->types);
    s->settings = wh__ep_settings_list(ep->settings, false);
    if (!s->strings || !s->types || !s->settings) {
        snapshot_free(s);
        return WH_ERR_NOMEM;
    }
    char *p = s->strings;
    const char *copied[N];
    for (size_t i = 0; i < N; i++) {
        copied[i] = p;
        p = stpcpy(p, fields[i]) + 1;
    }
    for (size_t i = 0; i < ntypes; i++) {
        s->types[i] = p;
        p = stpcpy(p, src.event_types[i]) + 1;
    }
    snprintf(s->id, sizeof s->id, "%s", ep->id);
    s->info = src;
    s->info.id = s->id;
    s->info.url = copied[0];
    s->info.secret = copied[1];
    s->info.description = copied[2];
    s->info.disabled_reason = src.disabled_reason ? copied[3] : NULL;
    s->info.key = src.key ? copied[4] : NULL;
    s->info.event_types = s->types;
    s->info.settings = (const char *const *)s->settings;
    return WH_OK;
}

int wh_endpoint_get(wh_ctx *ctx, const char *id, wh_endpoint_cb cb, void *ud)
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    if (!cb)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "cb: is NULL");
    ep_snapshot snap;
    pthread_mutex_lock(&ctx->lock);
    wh__endpoint *ep;
    int rc = wh__registry_lookup(ctx->reg, id, &ep);
    if (rc == WH_OK)
        rc = snapshot_take(ep, &snap);
    pthread_mutex_unlock(&ctx->lock);
    if (rc != WH_OK)
        return rc;
    cb(ud, &snap.info);
    snapshot_free(&snap);
    return WH_OK;
}

int wh_endpoint_list(wh_ctx *ctx, wh_endpoint_cb cb, void *ud)
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    pthread_mutex_lock(&ctx->lock);
    size_t n = wh__registry_count(ctx->reg);
    ep_snapshot *snaps = calloc(n ? n : 1, sizeof *snaps);
    size_t taken = 0;
    int rc = snaps ? WH_OK : WH_ERR_NOMEM;
    for (; rc == WH_OK && taken < n; taken++)
        if ((rc = snapshot_take(wh__registry_at(ctx->reg, taken), &snaps[taken])) != WH_OK)
            break;
    pthread_mutex_unlock(&ctx->lock);
    for (size_t i = 0; i < taken; i++) {
        if (rc == WH_OK && cb)
            cb(ud, &snaps[i].info);
        snapshot_free(&snaps[i]);
    }
    free(snaps);
    return rc == WH_OK ? (int)n : rc;
}
