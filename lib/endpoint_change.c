/* wh_endpoint_set_enabled, wh_endpoint_rotate_secret and wh_endpoint_set: one column-level
 * change each, in the store first, then in memory, so that a failed call changes nothing. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ctx.h"
#include "endpoint_settings.h"
#include "error.h"
#include "notice.h"
#include "registry.h"
#include "registry_rows.h"
#include "scheduler.h"
#include "sign.h"
#include "store.h"
#include "stored_row.h"
#include "util.h"

static int change_endpoint(wh_ctx *ctx, const char *id, wh__endpoint_change *ch)
{
    pthread_mutex_lock(&ctx->ep_lock); /* keeps the endpoint registered until the end */
    pthread_mutex_lock(&ctx->lock);
    wh__endpoint *ep = NULL;
    int rc = wh__registry_lookup(ctx->reg, id, &ep);
    pthread_mutex_unlock(&ctx->lock);
    /* changes the driver's verdicts made go in first: stored after this one, they would
     * undo it */
    if (rc == WH_OK)
        rc = wh__commit_results_locked(ctx);
    wh__stored_row got = {0};
    if (rc == WH_OK) {
        snprintf(ch->endpoint_id, sizeof ch->endpoint_id, "%s", id);
        rc = ctx->store->ops->endpoint_change(ctx->store, ch, wh__stored_row_copy, &got);
    }
    /* stored, but memory could not take it (out of memory): the change was made, and memory
     * reads the row again below, or at the next sync */
    bool stale = rc == WH_OK && got.oom;
    pthread_mutex_lock(&ctx->lock);
    int max_in_flight = ep ? ep->max_in_flight : 0;
    double rate = ep ? ep->rate_limit_per_s : 0;
    bool ordering = ep && ep->ordering_run;
    bool was_enabled = ep && ep->enabled;
    if (rc == WH_OK && got.block && !got.oom) {
        /* the row may carry another process's update of the key's fields: taken as far as
         * this engine can use them (else read again, below or at the next sync) */
        if (wh__registry_apply_row(ctx->reg, ep, &got.row, NULL, 0) != WH_OK)
            stale = true;
        else
            stale = !wh__endpoint_settings_are(ep, got.row.settings);
        wh__clear_error();
    } else if (rc == WH_OK && !stale) {
        /* the memory store has no rows: memory takes the change as made here */
        switch (ch->kind) {
        case WH__EP_ENABLE:
            wh__endpoint_set_enabled(ep);
            break;
        case WH__EP_DISABLE:
            if (ep->enabled)
                wh__endpoint_set_disabled(ep, ch->reason);
            break;
        case WH__EP_ROTATE:
            rc = wh__endpoint_set_secret(ep, ch->secret, ch->old_until_ms, ch->now_ms, NULL, 0);
            break;
        case WH__EP_FAILING:
            ep->failing_since_ms = ch->failing_since_ms;
            break;
        case WH__EP_SETTING: {
            char *text = NULL;
            rc = wh__ep_settings_update(ep->settings, ch->setting_key, ch->setting_value, &text,
                                        NULL, 0);
            if (rc == WH_OK && wh__endpoint_set_settings(ep, text) != WH_OK)
                rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "%s: out of memory", ch->setting_key);
            if (text)
                OPENSSL_cleanse(text, strlen(text));
            free(text);
            break;
        }
        }
    }
    /* deliveries parked behind the old limit move again under the new one */
    if (ep && ep->max_in_flight != max_in_flight)
        wh__sched_unpark(&ctx->sched, ep);
    /* so do those waiting for a rate limit's token or held in a run's order */
    if (ep && (ep->rate_limit_per_s != rate || ep->ordering_run != ordering))
        wh__endpoint_flow_changed(ctx, ep);
    if (rc == WH_OK && ep && was_enabled != ep->enabled) {
        /* the row read back may also carry another process's change */
        bool ours = ch->kind == (ep->enabled ? WH__EP_ENABLE : WH__EP_DISABLE);
        wh__queue_notice(ctx, &(wh__notice_spec){
                                  .kind = ep->enabled ? WH_NOTICE_ENDPOINT_ENABLED
                                                      : WH_NOTICE_ENDPOINT_DISABLED,
                                  .endpoint_id = ep->id,
                                  .reason = !ours ? wh__notice_reason_seen(ep)
                                            : ep->enabled ? "enabled with wh_endpoint_set_enabled"
                                                          : "disabled with wh_endpoint_set_enabled",
                                  .version = got.block ? got.row.version : 0});
    }
    pthread_mutex_unlock(&ctx->lock);
    if (stale && (wh__commit_results_locked(ctx) != WH_OK || wh__sync_endpoints(ctx) != WH_OK)) {
        pthread_mutex_lock(&ctx->lock);
        ctx->resync = true;
        pthread_mutex_unlock(&ctx->lock);
    }
    pthread_mutex_unlock(&ctx->ep_lock);
    wh__stored_row_free(&got);
    return rc;
}

int wh_endpoint_set_enabled(wh_ctx *ctx, const char *id, int enabled)
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    wh__endpoint_change ch = {.kind = enabled ? WH__EP_ENABLE : WH__EP_DISABLE};
    int rc = change_endpoint(ctx, id, &ch);
    if (rc == WH_OK && enabled)
        wh__wake(ctx); /* waiting work may move now */
    return rc;
}

int wh_endpoint_rotate_secret(wh_ctx *ctx, const char *id, const char *new_secret, int grace_s)
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    if (grace_s < -1)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "grace_s: must be -1 (none), 0 (86400) or more");
    int64_t grace_ms = grace_s == 0 ? 86400000LL : grace_s < 0 ? 0 : (int64_t)grace_s * 1000;
    char generated[128];
    if (!new_secret) {
        if (wh__secret_generate(generated, sizeof generated) != WH_OK)
            return wh__fail(NULL, 0, WH_ERR_IO, "new_secret: could not generate one");
        new_secret = generated;
    }
    unsigned char key[WH__SECRET_KEY_MAX];
    size_t key_len;
    const char *problem = wh__secret_decode(new_secret, key, &key_len);
    OPENSSL_cleanse(key, sizeof key);
    if (problem)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "new_secret: %s", problem);
    int64_t now = wh__now_ms(ctx), until = grace_ms ? now + grace_ms : 0;
    wh__endpoint_change ch = {.kind = WH__EP_ROTATE, .secret = new_secret, .old_until_ms = until,
                              .now_ms = now};
    int rc = change_endpoint(ctx, id, &ch);
    OPENSSL_cleanse(generated, sizeof generated);
    return rc;
}

int wh_endpoint_set(wh_ctx *ctx, const char *id, const char *key, const char *value)
{
    wh__clear_error();
    if (!ctx)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "ctx: is NULL");
    /* checked before anything is looked up or written */
    int rc = wh__ep_setting_check(key, value, NULL, 0);
    if (rc != WH_OK)
        return rc;
    wh__endpoint_change ch = {.kind = WH__EP_SETTING, .setting_key = key, .setting_value = value};
    rc = change_endpoint(ctx, id, &ch);
    if (rc == WH_OK)
        wh__wake(ctx); /* a new limit or schedule may let waiting work move */
    return rc;
}
