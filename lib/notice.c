/* Notices: queued under the lock where a change is applied, told on the driving thread with
 * no lock held once what they report is stored, in the order they were made; and the
 * operational events (webhook.*) that carry them to subscribed endpoints, named after the
 * change itself so that every engine sharing a store names it alike. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "notice.h"
#include "ctx.h"
#include "error.h"
#include "event.h"
#include "payload.h"
#include "registry.h"
#include "util.h"

#define REASON_MAX 255 /* an operational event's body stays small and bounded */

static const struct {
    const char *type, *status;
} op_of[] = {
    [WH_NOTICE_ENDPOINT_DISABLED] = {"webhook.endpoint_disabled", "disabled"},
    [WH_NOTICE_ENDPOINT_ENABLED] = {"webhook.endpoint_enabled", "enabled"},
    [WH_NOTICE_DELIVERY_FAILED] = {"webhook.delivery_failed", "failed"},
};

/* Under the lock: whether an endpoint other than the one concerned takes the kind's event. */
static bool op_wanted(wh_ctx *ctx, const wh__notice_spec *s)
{
    if (s->kind == WH_NOTICE_DELIVERY_FAILED && s->event_type && wh__is_op_type(s->event_type))
        return false; /* an operational event given up says nothing new, and must not chain */
    size_t n;
    wh__endpoint *const *eps =
        wh__registry_match(ctx->reg, wh__registry_type_index(ctx->reg, op_of[s->kind].type), &n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(eps[i]->id, s->endpoint_id) != 0)
            return true;
    return false;
}

const char *wh__notice_reason_seen(const wh__endpoint *ep)
{
    if (ep->enabled)
        return "enabled in the store by another process";
    return ep->disabled_reason && *ep->disabled_reason
               ? ep->disabled_reason
               : "disabled in the store by another process (by hand)";
}

void wh__queue_notice(wh_ctx *ctx, const wh__notice_spec *s)
{
    if (!ctx->conf->notify && !op_wanted(ctx, s))
        return;
    if (ctx->notices_n == ctx->notices_cap) {
        size_t cap = ctx->notices_cap ? ctx->notices_cap * 2 : 16;
        wh__notice_item **v = realloc(ctx->notices, cap * sizeof *v);
        if (!v)
            return;
        ctx->notices = v, ctx->notices_cap = cap;
    }
    wh__notice_item *it = calloc(1, sizeof *it);
    if (!it || !(it->reason = wh__strdup(s->reason ? s->reason : ""))) {
        free(it);
        return;
    }
    snprintf(it->endpoint_id, sizeof it->endpoint_id, "%s", s->endpoint_id);
    snprintf(it->event_id, sizeof it->event_id, "%s", s->event_id ? s->event_id : "");
    snprintf(it->event_type, sizeof it->event_type, "%s", s->event_type ? s->event_type : "");
    it->after_seq = s->after_commit ? ctx->queued_seq : 0;
    it->version = s->version;
    it->from_verdict = s->after_commit;
    it->n = (wh_notice){.kind = s->kind,
                        .endpoint_id = it->endpoint_id,
                        .event_id = s->event_id ? it->event_id : NULL,
                        .reason = it->reason,
                        .time_ms = wh__now_ms(ctx)};
    ctx->notices[ctx->notices_n++] = it;
    wh__wake(ctx); /* made outside the driver (an endpoint call): the driver tells it */
}

void wh__notices_stored(wh_ctx *ctx, uint64_t upto, const wh__endpoint_change *c, size_t nc)
{
    if (upto > ctx->stored_seq)
        ctx->stored_seq = upto;
    for (size_t i = 0; i < ctx->notices_n; i++) {
        wh__notice_item *it = ctx->notices[i];
        if (!it->from_verdict || it->after_seq > upto || it->n.kind != WH_NOTICE_ENDPOINT_DISABLED)
            continue;
        for (size_t k = 0; k < nc; k++)
            if (c[k].kind == WH__EP_DISABLE && strcmp(c[k].endpoint_id, it->endpoint_id) == 0)
                it->version = c[k].version;
    }
}

/* A name for the change, the same in every engine that sees it: hashed from what the change
 * is, in the alphabet and length of every other event id. */
static void derived_id(int kind, const char *endpoint_id, const char *key, char out[WH_ID_MAX])
{
    static const char alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
    char text[3 * WH_ID_MAX + 32];
    int len = snprintf(text, sizeof text, "libwebhook notice %d\n%s\n%s", kind, endpoint_id, key);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    if (!EVP_Digest(text, (size_t)len, md, &md_len, EVP_sha256(), NULL) || md_len < 20) {
        wh__new_id("evt_", out); /* never seen in practice; a fresh id still names it */
        return;
    }
    char *p = out + sprintf(out, "evt_");
    unsigned bitbuf = 0, bits = 0;
    size_t i = 0;
    for (int k = 0; k < 30; k++) {
        if (bits < 5) {
            bitbuf = (bitbuf << 8) | md[i++];
            bits += 8;
        }
        *p++ = alphabet[(bitbuf >> (bits - 5)) & 31];
        bits -= 5;
    }
    *p = '\0';
}

/* Without the lock: the notice as an operational event for the endpoints subscribed to it. */
static void emit_op(wh_ctx *ctx, const wh__notice_item *it)
{
    bool durable = ctx->store->ops->durable;
    char id[WH_ID_MAX], key[32];
    if (it->n.kind == WH_NOTICE_DELIVERY_FAILED) {
        if (it->event_type[0] && wh__is_op_type(it->event_type))
            return;
        derived_id(it->n.kind, it->endpoint_id, it->event_id, id);
    } else if (it->version > 0) {
        snprintf(key, sizeof key, "version %lld", (long long)it->version);
        derived_id(it->n.kind, it->endpoint_id, key, id);
    } else if (!durable) {
        /* the only engine: nobody else names this change */
        if (wh__new_id("evt_", id) != WH_OK)
            return;
    } else {
        return; /* the row is gone: the endpoint is removed, which says more */
    }
    pthread_mutex_lock(&ctx->lock);
    size_t n;
    wh__endpoint *const *eps = wh__registry_match(
        ctx->reg, wh__registry_type_index(ctx->reg, op_of[it->n.kind].type), &n);
    bool wanted = false;
    for (size_t i = 0; i < n && !wanted; i++)
        wanted = strcmp(eps[i]->id, it->endpoint_id) != 0;
    pthread_mutex_unlock(&ctx->lock);
    if (!wanted)
        return;
    char *body = NULL;
    size_t len = 0;
    if (wh__payload_build_op(id, op_of[it->n.kind].type, op_of[it->n.kind].status,
                             it->endpoint_id, it->n.event_id, it->reason, REASON_MAX,
                             it->n.time_ms, &body, &len) != WH_OK)
        return;
    wh__event *e = wh__event_new(ctx->pool, id, op_of[it->n.kind].type, NULL, NULL, body, len);
    free(body);
    if (!e)
        return;
    /* the id names the change: another engine that saw it first has queued it already (the
     * store's de-duplication, emit.dedup_window); nobody to report a failure to, and like any
     * emit it queues all or nothing */
    wh__emit_event(ctx, e, it->endpoint_id, true, wh__now_ms(ctx));
    wh__event_unref(e);
}

void wh__flush_notices(wh_ctx *ctx)
{
    for (;;) {
        pthread_mutex_lock(&ctx->lock);
        size_t due = 0;
        while (due < ctx->notices_n && ctx->notices[due]->after_seq <= ctx->stored_seq)
            due++;
        wh__notice_item *local[16], **batch = due <= 16 ? local : malloc(due * sizeof *batch);
        if (!batch)
            batch = local, due = 16;
        if (due) {
            memcpy(batch, ctx->notices, due * sizeof *batch);
            memmove(ctx->notices, ctx->notices + due, (ctx->notices_n - due) * sizeof *batch);
            ctx->notices_n -= due;
        }
        void (*notify)(void *, const wh_notice *) = ctx->conf->notify;
        void *ud = ctx->conf->notify_ud;
        pthread_mutex_unlock(&ctx->lock);
        if (!due)
            return;
        for (size_t i = 0; i < due; i++) {
            if (notify)
                notify(ud, &batch[i]->n);
            emit_op(ctx, batch[i]);
            free(batch[i]->reason);
            free(batch[i]);
        }
        if (batch != local)
            free(batch);
    }
}

void wh__notices_free(wh_ctx *ctx)
{
    for (size_t i = 0; i < ctx->notices_n; i++) {
        free(ctx->notices[i]->reason);
        free(ctx->notices[i]);
    }
    free(ctx->notices);
    ctx->notices = NULL;
    ctx->notices_n = ctx->notices_cap = 0;
}
