/* wh_endpoint_add and wh_endpoint_remove: the store is written first and memory changed only
 * once that worked, so that a failed call changes nothing and the driver never acts on a
 * state that is then taken back. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "error.h"
#include "notice.h"
#include "registry.h"
#include "registry_rows.h"
#include "store.h"
#include "stored_row.h"
#include "util.h"

/* The store took the new row but memory could not: it is taken out of the store again, and
 * the registry's reason is the one reported. */
static int undo_insert(wh_ctx *ctx, const char *id, int rc)
{
    char why[512];
    snprintf(why, sizeof why, "%s", wh_last_error());
    ctx->store->ops->endpoint_delete(ctx->store, id);
    return wh__fail(NULL, 0, rc, "%s", why);
}

/* An endpoint added with the caller's key: the key's endpoint updated in place, or ep added
 * when the key is new. The store decides, in one transaction, so that engines adding the
 * same key at once end with one endpoint; memory follows the row it stored. */
static int add_keyed(wh_ctx *ctx, const wh_endpoint_spec *spec, wh__endpoint *ep,
                     char id[WH_ID_MAX])
{
    ep->version = 1; /* the version the store gives a new row */
    wh__endpoint_row row;
    char *block = wh__endpoint_row_snapshot(ep, &row); /* not shared yet: no lock needed */
    pthread_mutex_lock(&ctx->ep_lock);
    int rc = block ? WH_OK : wh__fail(NULL, 0, WH_ERR_NOMEM, "endpoint: out of memory");
    /* changes the driver's verdicts made go in first: stored after this one, they would
     * undo it */
    if (rc == WH_OK)
        rc = wh__commit_results_locked(ctx);
    wh__stored_row got = {0};
    if (rc == WH_OK)
        rc = ctx->store->ops->endpoint_upsert(ctx->store, &row, spec->secret != NULL,
                                              wh__stored_row_copy, &got);
    if (rc == WH_OK && got.oom)
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "endpoint: out of memory");
    bool inserted = false, wake = false, was_enabled = false;
    pthread_mutex_lock(&ctx->lock);
    wh__endpoint *cur = NULL;
    if (rc == WH_OK && got.block) {
        snprintf(id, WH_ID_MAX, "%s", got.row.id);
        cur = wh__registry_find(ctx->reg, got.row.id);
        was_enabled = cur && cur->enabled;
        inserted = strcmp(got.row.id, ep->id) == 0;
        if (!cur && inserted) {
            ep->version = got.row.version;
            if ((rc = wh__registry_add(ctx->reg, ep)) == WH_OK)
                ep = NULL; /* the registry's now */
        } else if (!cur) {
            /* made by another engine, not synced here yet */
            wh__endpoint *made = wh__endpoint_from_row(ctx->reg, &got.row, NULL, 0);
            if (!made || wh__registry_add(ctx->reg, made) != WH_OK) {
                wh__endpoint_unref(made);
                ctx->resync = true; /* stored as asked; memory catches up with the next sync */
            }
            wh__clear_error();
        } else if (wh__registry_apply_row(ctx->reg, cur, &got.row, NULL, 0) != WH_OK) {
            ctx->resync = true;
            wh__clear_error();
        }
    } else if (rc == WH_OK) {
        /* the memory store keeps no rows: the registry is the only copy */
        if ((cur = wh__registry_find_key(ctx->reg, spec->key))) {
            was_enabled = cur->enabled;
            rc = wh__registry_update_from_spec(ctx->reg, cur, spec);
            snprintf(id, WH_ID_MAX, "%s", cur->id);
            wake = !was_enabled && cur->enabled;
        } else if ((rc = wh__registry_add(ctx->reg, ep)) == WH_OK) {
            snprintf(id, WH_ID_MAX, "%s", ep->id);
            ep = NULL;
        }
    }
    if (rc == WH_OK && got.block && cur && !inserted)
        wake = got.row.enabled;
    /* the key's endpoint updated in place, `disabled` included: a change like any other */
    if (rc == WH_OK && cur && !inserted && was_enabled != cur->enabled)
        wh__queue_notice(ctx, &(wh__notice_spec){
                                  .kind = cur->enabled ? WH_NOTICE_ENDPOINT_ENABLED
                                                       : WH_NOTICE_ENDPOINT_DISABLED,
                                  .endpoint_id = cur->id,
                                  .reason = cur->enabled ? "enabled by wh_endpoint_add (its key)"
                                                         : "disabled by wh_endpoint_add (its key)",
                                  .version = got.block ? got.row.version : 0});
    pthread_mutex_unlock(&ctx->lock);
    if (rc != WH_OK && inserted && ep)
        rc = undo_insert(ctx, got.row.id, rc);
    pthread_mutex_unlock(&ctx->ep_lock);
    wh__stored_row_free(&got);
    free(block);
    wh__endpoint_unref(ep);
    if (wake)
        wh__wake(ctx); /* waiting work may move now */
    return rc;
}

int wh_endpoint_add(wh_ctx *ctx, const wh_endpoint_spec *spec, char id_out[WH_ID_MAX])
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    if (spec) {
        int rc = WH__RESERVED_CHECK(spec, "wh_endpoint_spec");
        if (rc != WH_OK)
            return rc;
    }
    wh__endpoint *ep = wh__endpoint_build(ctx->reg, spec, NULL, NULL, 0);
    if (!ep)
        return wh__last_error_code() ? wh__last_error_code() : WH_ERR_INVALID;
    if (spec->key) {
        char id[WH_ID_MAX];
        int rc = add_keyed(ctx, spec, ep, id);
        if (rc == WH_OK && id_out)
            snprintf(id_out, WH_ID_MAX, "%s", id);
        return rc;
    }
    int rc = WH_OK;
    ep->version = 1; /* the version the store gives a new row */
    wh__endpoint_row row;
    char *block = wh__endpoint_row_snapshot(ep, &row); /* not shared yet: no lock needed */
    pthread_mutex_lock(&ctx->ep_lock);
    if (!block)
        rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "endpoint: out of memory");
    if (rc == WH_OK)
        rc = ctx->store->ops->endpoint_insert(ctx->store, &row);
    if (rc == WH_OK) {
        pthread_mutex_lock(&ctx->lock);
        rc = wh__registry_add(ctx->reg, ep);
        pthread_mutex_unlock(&ctx->lock);
        if (rc != WH_OK)
            rc = undo_insert(ctx, row.id, rc);
    }
    pthread_mutex_unlock(&ctx->ep_lock);
    if (rc == WH_OK && id_out)
        snprintf(id_out, WH_ID_MAX, "%s", row.id);
    free(block);
    if (rc != WH_OK)
        wh__endpoint_unref(ep);
    return rc;
}

int wh_endpoint_remove(wh_ctx *ctx, const char *id)
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    pthread_mutex_lock(&ctx->ep_lock);
    pthread_mutex_lock(&ctx->lock);
    wh__endpoint *ep;
    int rc = wh__registry_lookup(ctx->reg, id, &ep);
    pthread_mutex_unlock(&ctx->lock);
    if (rc == WH_OK) {
        rc = ctx->store->ops->endpoint_delete(ctx->store, id);
        if (rc == WH_ERR_NOTFOUND) /* removed by another process already: so be it */
            rc = WH_OK;
    }
    if (rc == WH_OK) {
        pthread_mutex_lock(&ctx->lock);
        wh__registry_remove(ctx->reg, id);
        pthread_mutex_unlock(&ctx->lock);
    }
    pthread_mutex_unlock(&ctx->ep_lock);
    return rc;
}
