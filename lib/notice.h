/* Private to libwebhook: Notices to the host and the operational events (webhook.*) that
 * carry the same news to the endpoints subscribed to them. */
#ifndef WH_NOTICE_H
#define WH_NOTICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "webhook/webhook.h"
#include "store.h"

struct wh__endpoint;

typedef struct wh__notice_item {
    wh_notice n; /* its strings point into the item */
    char endpoint_id[WH_ID_MAX], event_id[WH_ID_MAX];
    char event_type[WH_ID_MAX]; /* DELIVERY_FAILED: the type of the event given up */
    char *reason;
    uint64_t after_seq; /* told once the outcomes and changes queued up to this are stored */
    int64_t version;    /* the endpoint row's version after the change; 0: none known */
    bool from_verdict;  /* a change this engine's verdict made: its commit gives the version */
} wh__notice_item;

/* What to tell; strings are copied. */
typedef struct wh__notice_spec {
    int kind;
    const char *endpoint_id, *event_id, *event_type, *reason;
    int64_t version;
    bool after_commit; /* wait for the outcomes and changes queued so far to be stored */
} wh__notice_spec;

/* The reason of a change read from the store (another process made it). */
const char *wh__notice_reason_seen(const struct wh__endpoint *ep);
/* Under the lock: queues a notice (dropped when nobody would hear of it, or out of memory). */
void wh__queue_notice(wh_ctx *ctx, const wh__notice_spec *s);
/* Under the lock, after a commit stored everything queued up to `upto`: the notices waiting
 * for it are due, those of DISABLE changes with the rows' versions. */
void wh__notices_stored(wh_ctx *ctx, uint64_t upto, const wh__endpoint_change *c, size_t nc);
/* Without the lock, on the driving thread: tells the due notices in order, and emits their
 * operational events. */
void wh__flush_notices(wh_ctx *ctx);
/* wh_destroy: frees what was never told. */
void wh__notices_free(wh_ctx *ctx);

#endif
