/* Built by tests/cmake/CMakeLists.txt against an installed libwebhook: checks that the header
 * and the shared library it links are the expected version and work (a context, a signature
 * that verifies, the libev adapter attached and detached, webhook_pg.h compiles and wh_emit_pg
 * links).
 *
 *   consumer EXPECTED_VERSION      exit 0 when all is well */
#include <ev.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <webhook/adapters/libev.h>
#include <webhook/webhook.h>
#include <webhook/webhook_pg.h> /* needs libpq-fe.h: the package names libpq's include dir */

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static int fail(const char *what)
{
    fprintf(stderr, "consumer: %s\n", what);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return fail("usage: consumer EXPECTED_VERSION");
    if (strcmp(WH_VERSION_STRING, argv[1]) != 0 || strcmp(wh_version(), argv[1]) != 0)
        return fail("the header or the library is not the expected version");

    char err[256];
    wh_ctx *wh = wh_new(NULL, err, sizeof err);
    if (!wh)
        return fail(err);

    const char *body = "{}";
    int64_t now = (int64_t)time(NULL);
    char sig[WH_SIGNATURE_MAX], ts[32];
    snprintf(ts, sizeof ts, "%lld", (long long)now);
    if (wh_sign(SECRET, "evt_1", now, body, strlen(body), sig, sizeof sig) != WH_OK ||
        wh_verify(SECRET, "evt_1", ts, sig, body, strlen(body), now, 0) != WH_OK)
        return fail("a signature made by wh_sign does not pass wh_verify");

    wh_libev *adapter;
    struct ev_loop *loop = ev_default_loop(0);
    if (wh_libev_attach(wh, loop, &adapter) != WH_OK)
        return fail("wh_libev_attach failed");
    ev_run(loop, EVRUN_NOWAIT);
    wh_libev_detach(adapter);
    if (ev_run(loop, EVRUN_NOWAIT) != 0)
        return fail("a watcher is left after wh_libev_detach");
    /* no PostgreSQL store here: the call is refused, but it compiled and linked */
    PGconn *none = NULL;
    if (wh_emit_pg(wh, none, &(wh_event){.event_type = "workflow_run.started", .run_id = "r1",
                                         .status = "started"},
                   NULL) >= 0)
        return fail("wh_emit_pg without a connection was accepted");
    wh_destroy(wh);
    printf("consumer: libwebhook %s OK\n", wh_version());
    return 0;
}
