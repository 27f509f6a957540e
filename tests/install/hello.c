/* The smallest program a user builds against an installed libwebhook: a context with the
 * SQLite store (so libcurl, libcrypto, cJSON and SQLite are all linked and used), one
 * endpoint, one emit, and a signature checked with wh_verify. Exits 0 when all of it works. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <webhook/webhook.h>

int main(int argc, char **argv)
{
    char err[256], sig[WH_SIGNATURE_MAX], store[512];
    if (argc != 2)
        return 2;
    snprintf(store, sizeof store, "sqlite:%s", argv[1]);
    wh_conf *conf = wh_conf_new();
    if (!conf || wh_conf_set(conf, "store", store, err, sizeof err) != WH_OK) {
        fprintf(stderr, "conf: %s\n", err);
        return 1;
    }
    wh_ctx *wh = wh_new(conf, err, sizeof err);
    if (!wh) {
        fprintf(stderr, "wh_new: %s\n", err);
        return 1;
    }
    if (wh_endpoint_add(wh, &(wh_endpoint_spec){.url = "https://hooks.example.com/in"}, NULL) != WH_OK ||
        wh_emit(wh, &(wh_event){.event_type = "workflow_run.started", .run_id = "run_1",
                                .status = "started"}, NULL) != 1) {
        fprintf(stderr, "endpoint/emit: %s\n", wh_last_error());
        return 1;
    }
    wh_destroy(wh); /* the delivery stays in the store */
    const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    if (wh_sign(secret, "evt_1", 1795719600, "{}", 2, sig, sizeof sig) != WH_OK ||
        wh_verify(secret, "evt_1", "1795719600", sig, "{}", 2, 1795719600, 300) != WH_OK) {
        fprintf(stderr, "sign/verify failed\n");
        return 1;
    }
    if (strcmp(wh_version(), WH_VERSION_STRING) != 0) {
        fprintf(stderr, "header %s, library %s\n", WH_VERSION_STRING, wh_version());
        return 1;
    }
    printf("libwebhook %s works\n", wh_version());
    return 0;
}
