/* verify: a signature checked by hand, the body read from stdin. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook/webhook.h"
#include "commands.h"

#define STDIN_MAX ((size_t)64 << 20) /* verify reads at most this much body */

int cmd_verify(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)s, (void)args;
    static const int required[] = {O_SECRET, O_ID, O_TIMESTAMP, O_SIGNATURE};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!c->set[required[i]])
            return ctl_usage_error("verify: --%s is required", ctl_options[required[i]].name);
    int tolerance_s = 0; /* the library's default, 5 minutes */
    if (c->set[O_TOLERANCE]) {
        int64_t ms;
        int rc = ctl_parse_duration(O_TOLERANCE, c->val[O_TOLERANCE], &ms);
        if (rc != EXIT_OK)
            return rc;
        if (ms < 1000 || ms / 1000 > 100LL * 365 * 86400)
            return ctl_usage_error("--tolerance: must be from 1s to 100 years");
        tolerance_s = (int)(ms / 1000);
    }
    size_t len = 0, cap = 65536;
    char *body = malloc(cap);
    if (!body)
        return ctl_fail("out of memory");
    for (;;) {
        if (len == cap) {
            if (cap >= STDIN_MAX) {
                free(body);
                return ctl_fail("verify: the body on stdin is larger than %zu MiB", STDIN_MAX >> 20);
            }
            char *b = realloc(body, cap * 2);
            if (!b) {
                free(body);
                return ctl_fail("out of memory");
            }
            body = b, cap *= 2;
        }
        size_t got = fread(body + len, 1, cap - len, stdin);
        len += got;
        if (got == 0) {
            if (ferror(stdin)) {
                free(body);
                return ctl_fail("verify: reading the body from stdin: %s", strerror(errno));
            }
            break;
        }
    }
    int rc = wh_verify(c->val[O_SECRET], c->val[O_ID], c->val[O_TIMESTAMP], c->val[O_SIGNATURE],
                       body, len, 0, tolerance_s);
    free(body);
    if (rc != WH_OK)
        return ctl_fail("invalid: %s", *wh_last_error() ? wh_last_error() : wh_strerror(rc));
    puts("valid");
    return EXIT_OK;
}

