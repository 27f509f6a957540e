/* URL validation through wh_endpoint_add on a memory context. Input: url, then optionally
 * NUL and a description. */
#include <strings.h>

#include "fuzz.h"
#include "internal.h"

static int refuse(void *ud, const wh_request *req, void *token)
{
    (void)ud, (void)req, (void)token;
    return WH_ERR_TRANSPORT;
}

static int nothing(void *ud, wh_transport_done_fn done, void *done_ud)
{
    (void)ud, (void)done, (void)done_ud;
    return 0;
}

static wh_ctx *ctx;

static void ctx_once(void)
{
    if (ctx)
        return;
    wh_conf *c = wh_conf_new();
    wh_conf_set_transport(c, &(wh_transport){.submit = refuse, .perform = nothing});
    char err[256];
    ctx = wh_new(c, err, sizeof err);
    FUZZ_ASSERT(ctx);
}

typedef struct {
    const char *url, *description;
    int calls;
} expect;

static void check_info(void *ud, const wh_endpoint_info *ep)
{
    expect *e = ud;
    e->calls++;
    FUZZ_ASSERT(strcmp(ep->url, e->url) == 0);
    FUZZ_ASSERT(strcmp(ep->description, e->description ? e->description : "") == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ctx_once();
    char *part[2] = {0};
    size_t n = fuzz_split(data, size, '\0', part, 2);
    const char *url = part[0];
    const char *description = n > 1 ? part[1] : NULL;
    char id[WH_ID_MAX] = "";
    int rc = wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url, .description = description}, id);
    if (rc == WH_OK) {
        /* what is accepted can never break a request line or a header */
        FUZZ_ASSERT(strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0);
        for (const unsigned char *p = (const unsigned char *)url; *p; p++)
            FUZZ_ASSERT(*p > 0x20 && *p != 0x7f);
        FUZZ_ASSERT(!strchr(url, '#'));
        FUZZ_ASSERT(strlen(url) <= 2048);
        FUZZ_ASSERT(!description || fuzz_no_controls(description));
        expect e = {.url = url, .description = description};
        FUZZ_ASSERT(wh_endpoint_get(ctx, id, check_info, &e) == WH_OK && e.calls == 1);
        FUZZ_ASSERT(wh_endpoint_remove(ctx, id) == WH_OK);
    } else {
        FUZZ_ASSERT(rc == WH_ERR_INVALID);
        FUZZ_ASSERT(id[0] == '\0');
        const char *e = wh_last_error();
        FUZZ_ASSERT(strncmp(e, "url: ", 5) == 0 || strncmp(e, "description: ", 13) == 0);
        FUZZ_ASSERT(fuzz_no_controls(e));
    }
    wh_stats_info st;
    wh_stats(ctx, &st);
    FUZZ_ASSERT(st.endpoints == 0);
    for (size_t i = 0; i < n; i++)
        free(part[i]);
    return 0;
}
