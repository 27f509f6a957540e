/* Private to webhookctl: the command line (options and the words between them), exit
 * statuses, and error messages on stderr. */
#ifndef WEBHOOKCTL_CLI_H
#define WEBHOOKCTL_CLI_H

#include <stdbool.h>
#include <stdint.h>

enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_USAGE = 2 };

enum {
    O_STORE, O_SCHEMA, O_HELP, O_VERSION, O_EVENTS, O_SECRET, O_DISABLED, O_DESCRIPTION, O_REVEAL,
    O_GRACE, O_ENDPOINT, O_EVENT, O_TYPE, O_FAILED, O_SINCE, O_LIMIT, O_JSON, O_ID,
    O_TIMESTAMP, O_SIGNATURE, O_TOLERANCE, O_OUTCOME, O_COUNT
};

typedef struct ctl_option {
    const char *name;
    char short_name;
    bool takes_value;
} ctl_option;

extern const ctl_option ctl_options[O_COUNT];

#define BIT(o) (1u << (o))
#define GLOBAL_OPTIONS (BIT(O_STORE) | BIT(O_SCHEMA) | BIT(O_HELP) | BIT(O_VERSION))
#define MAX_ARGS 8

typedef struct cmdline {
    const char *val[O_COUNT];
    bool set[O_COUNT];
    const char *args[MAX_ARGS]; /* the words that are not options, command words first */
    int nargs;
} cmdline;

/* argv into c; EXIT_USAGE (message printed) when it is not a command line. */
int ctl_parse_cmdline(int argc, char **argv, cmdline *c);
/* "1h" etc. into ms; a usage error names the option. */
int ctl_parse_duration(int opt, const char *s, int64_t *ms);

/* "webhookctl: " and the message on stderr; EXIT_ERR. */
__attribute__((format(printf, 1, 2))) int ctl_fail(const char *fmt, ...);
/* The same, with a pointer to --help; EXIT_USAGE. */
__attribute__((format(printf, 1, 2))) int ctl_usage_error(const char *fmt, ...);
/* A failed store call: the store's own message when it left one. */
int ctl_store_fail(int rc, const char *what);

#endif
