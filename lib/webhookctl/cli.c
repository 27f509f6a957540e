/* webhookctl's command line, and its messages on stderr. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook/webhook.h"
#include "cli.h"
#include "util.h"

const ctl_option ctl_options[O_COUNT] = {
    [O_STORE] = {"store", 's', true},
    [O_SCHEMA] = {"schema", 0, true},
    [O_HELP] = {"help", 'h', false},
    [O_VERSION] = {"version", 'V', false},
    [O_EVENTS] = {"events", 0, true},
    [O_SECRET] = {"secret", 0, true},
    [O_DISABLED] = {"disabled", 0, false},
    [O_DESCRIPTION] = {"description", 0, true},
    [O_REVEAL] = {"reveal-secret", 0, false},
    [O_GRACE] = {"grace", 0, true},
    [O_ENDPOINT] = {"endpoint", 0, true},
    [O_EVENT] = {"event", 0, true},
    [O_TYPE] = {"type", 0, true},
    [O_FAILED] = {"failed", 0, false},
    [O_SINCE] = {"since", 0, true},
    [O_LIMIT] = {"limit", 0, true},
    [O_JSON] = {"json", 0, false},
    [O_ID] = {"id", 0, true},
    [O_TIMESTAMP] = {"timestamp", 0, true},
    [O_SIGNATURE] = {"signature", 0, true},
    [O_TOLERANCE] = {"tolerance", 0, true},
    [O_OUTCOME] = {"outcome", 0, true},
};

/* "webhookctl: <message>" and then `ending`, on stderr. */
__attribute__((format(printf, 2, 0))) static void print_error(const char *ending, const char *fmt, va_list ap)
{
    fputs("webhookctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(ending, stderr);
}

int ctl_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_error("\n", fmt, ap);
    va_end(ap);
    return EXIT_ERR;
}

int ctl_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_error("\nTry 'webhookctl --help'.\n", fmt, ap);
    va_end(ap);
    return EXIT_USAGE;
}

int ctl_store_fail(int rc, const char *what)
{
    const char *why = wh_last_error();
    if (!*why)
        return ctl_fail("%s: %s", what, wh_strerror(rc));
    /* the store's own messages start with "store: " already */
    return strncmp(why, "store: ", 7) == 0 ? ctl_fail("%s", why) : ctl_fail("%s: %s", what, why);
}

int ctl_parse_cmdline(int argc, char **argv, cmdline *c)
{
    memset(c, 0, sizeof *c);
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int o = -1;
        const char *value = NULL;
        if (!options_done && strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (!options_done && strncmp(a, "--", 2) == 0) {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            for (int k = 0; k < O_COUNT; k++)
                if (strlen(ctl_options[k].name) == len && strncmp(ctl_options[k].name, name, len) == 0)
                    o = k;
            if (o < 0)
                return ctl_usage_error("unknown option --%.*s", (int)len, name);
            if (eq && !ctl_options[o].takes_value)
                return ctl_usage_error("--%s takes no value", ctl_options[o].name);
            value = eq ? eq + 1 : NULL;
        } else if (!options_done && a[0] == '-' && a[1] != '\0') {
            for (int k = 0; k < O_COUNT; k++)
                if (ctl_options[k].short_name && ctl_options[k].short_name == a[1])
                    o = k;
            if (o < 0 || (a[2] && !ctl_options[o].takes_value))
                return ctl_usage_error("unknown option %s", a);
            value = a[2] ? a + 2 : NULL;
        } else {
            if (c->nargs == MAX_ARGS)
                return ctl_usage_error("too many arguments (at \"%s\")", a);
            c->args[c->nargs++] = a;
            continue;
        }
        if (ctl_options[o].takes_value && !value) {
            if (i + 1 >= argc)
                return ctl_usage_error("--%s needs a value", ctl_options[o].name);
            value = argv[++i];
        }
        c->set[o] = true;
        c->val[o] = value;
    }
    return EXIT_OK;
}

int ctl_parse_duration(int opt, const char *s, int64_t *ms)
{
    if (wh__parse_duration_ms(s, ms) != WH_OK)
        return ctl_usage_error("--%s: \"%s\" is not a duration (like 30s, 30m, 1h, 24h, 7d)",
                           ctl_options[opt].name, s);
    return EXIT_OK;
}

