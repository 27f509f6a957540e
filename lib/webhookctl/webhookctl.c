/* webhookctl: look after a libwebhook store from the shell — endpoints, the attempt
 * log, redelivery, recovery, statistics and metrics — and check a signature by hand.
 *
 * It works on the store itself (a SQLite file or a PostgreSQL database) and is safe while
 * engines use it: endpoint changes are column-level updates that a running engine applies
 * within a second (PostgreSQL: within 100 ms, woken by a notification), and deliveries
 * queued here carry no engine's claim, so the first engine to look takes them. Commands
 * that only look open the store read-only and never create it.
 *
 * Exit status: 0 ok, 1 error, 2 usage. Errors go to stderr prefixed "webhookctl: ".
 * Secrets, and the values of an endpoint's extra headers, are printed only when asked for
 * with --reveal-secret.
 *
 * Tables are for people and awk alike: headers are single words, an empty cell is "-", and
 * only the last column (free text: a description, an error, a URL) may hold spaces. Every
 * command that prints data also prints it as JSON with --json. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "webhook/webhook.h"
#include "cli.h"
#include "commands.h"
#include "store.h"
#include "store_pg.h"
#include "store_sqlite.h"

static const char usage_text[] =
    "usage: webhookctl [-s STORE] COMMAND [ARGS] [OPTIONS]\n"
    "\n"
    "Endpoints:\n"
    "  endpoint add URL [--events a,b] [--secret S] [--disabled] [--description D]\n"
    "  endpoint list [--json]\n"
    "  endpoint show ID [--reveal-secret] [--json]\n"
    "  endpoint enable ID | endpoint disable ID | endpoint rm ID\n"
    "  endpoint rotate-secret ID [--secret S] [--grace 24h] [--reveal-secret]\n"
    "  endpoint set ID KEY VALUE | endpoint unset ID KEY\n"
    "      keys: rate_limit, max_in_flight, http.timeout_ms, retry.schedule, ordering,\n"
    "      header.<Name> (see wh_endpoint_set(3))\n"
    "Attempt log and deliveries:\n"
    "  log [--endpoint ID] [--event ID] [--type T] [--outcome O,O | --failed] [--since 1h]\n"
    "      [--limit N] [--json]\n"
    "      outcomes: delivered, retrying, failed (given up), skipped; --failed = --outcome failed\n"
    "  redeliver EVENT [ENDPOINT]\n"
    "  recover ENDPOINT --since 24h\n"
    "  stats [--json]\n"
    "  metrics            the same in the Prometheus text format\n"
    "Receivers:\n"
    "  verify --secret S --id ID --timestamp T --signature SIG [--tolerance 5m] < body\n"
    "\n"
    "Options:\n"
    "  -s, --store STORE  the store (default: $WEBHOOK_STORE): a file, \"sqlite:PATH\", or a\n"
    "                     PostgreSQL connection string (postgresql://... or key=value)\n"
    "      --schema NAME  the PostgreSQL store's schema (default: $WEBHOOK_SCHEMA or webhook)\n"
    "  -h, --help, help   this help\n"
    "  -V, --version, version   the version\n"
    "Durations: 30s, 30m, 1h, 24h, 7d. Exit status: 0 ok, 1 error, 2 usage.\n"
    "See webhookctl(1).\n";

typedef struct command {
    const char *group, *name; /* "endpoint", "add"; or NULL, "log" */
    int min_args, max_args;
    unsigned allowed; /* options besides the global ones */
    int store;        /* 0: none; 1: read only; 2: written; 3: written, created if missing */
    ctl_command_fn *run;
    const char *synopsis;
} command;

static const command commands[] = {
    {"endpoint", "add", 1, 1, BIT(O_EVENTS) | BIT(O_SECRET) | BIT(O_DISABLED) | BIT(O_DESCRIPTION),
     3, cmd_endpoint_add,
     "endpoint add URL [--events a,b] [--secret S] [--disabled] [--description D]"},
    {"endpoint", "list", 0, 0, BIT(O_JSON), 1, cmd_endpoint_list, "endpoint list [--json]"},
    {"endpoint", "show", 1, 1, BIT(O_REVEAL) | BIT(O_JSON), 1, cmd_endpoint_show,
     "endpoint show ID [--reveal-secret] [--json]"},
    {"endpoint", "enable", 1, 1, 0, 2, cmd_endpoint_enable, "endpoint enable ID"},
    {"endpoint", "disable", 1, 1, 0, 2, cmd_endpoint_disable, "endpoint disable ID"},
    {"endpoint", "rm", 1, 1, 0, 2, cmd_endpoint_rm, "endpoint rm ID"},
    {"endpoint", "rotate-secret", 1, 1, BIT(O_SECRET) | BIT(O_GRACE) | BIT(O_REVEAL), 2,
     cmd_endpoint_rotate, "endpoint rotate-secret ID [--secret S] [--grace 24h] [--reveal-secret]"},
    {"endpoint", "set", 3, 3, 0, 2, cmd_endpoint_set, "endpoint set ID KEY VALUE"},
    {"endpoint", "unset", 2, 2, 0, 2, cmd_endpoint_unset, "endpoint unset ID KEY"},
    {NULL, "log", 0, 0,
     BIT(O_ENDPOINT) | BIT(O_EVENT) | BIT(O_TYPE) | BIT(O_FAILED) | BIT(O_OUTCOME) |
         BIT(O_SINCE) | BIT(O_LIMIT) | BIT(O_JSON),
     1, cmd_log,
     "log [--endpoint ID] [--event ID] [--type T] [--outcome O,O | --failed] [--since 1h]"
     " [--limit N] [--json]"},
    {NULL, "redeliver", 1, 2, 0, 2, cmd_redeliver, "redeliver EVENT [ENDPOINT]"},
    {NULL, "recover", 1, 1, BIT(O_SINCE), 2, cmd_recover, "recover ENDPOINT --since 24h"},
    {NULL, "stats", 0, 0, BIT(O_JSON), 1, cmd_stats, "stats [--json]"},
    {NULL, "metrics", 0, 0, 0, 1, cmd_metrics, "metrics"},
    {NULL, "verify", 0, 0,
     BIT(O_SECRET) | BIT(O_ID) | BIT(O_TIMESTAMP) | BIT(O_SIGNATURE) | BIT(O_TOLERANCE), 0,
     cmd_verify, "verify --secret S --id ID --timestamp T --signature SIG [--tolerance 5m] < body"},
};

static const command *find_command(const cmdline *c, int *words, int *rc)
{
    const char *first = c->args[0];
    bool group = strcmp(first, "endpoint") == 0;
    if (group && c->nargs < 2) {
        *rc = ctl_usage_error("endpoint: which one? add, list, show, enable, disable, rm,"
                          " rotate-secret, set or unset");
        return NULL;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const command *cmd = &commands[i];
        if (group ? cmd->group && strcmp(cmd->name, c->args[1]) == 0
                  : !cmd->group && strcmp(cmd->name, first) == 0) {
            *words = group ? 2 : 1;
            return cmd;
        }
    }
    *rc = group ? ctl_usage_error("endpoint: unknown command \"%s\"", c->args[1])
                : ctl_usage_error("unknown command \"%s\"", first);
    return NULL;
}

/* -s, else $WEBHOOK_STORE, as given */
static const char *store_arg(const cmdline *c)
{
    return c->set[O_STORE] ? c->val[O_STORE] : getenv("WEBHOOK_STORE");
}

static const char *store_path(const cmdline *c)
{
    const char *path = store_arg(c);
    if (path && strncmp(path, "sqlite:", 7) == 0)
        path += 7;
    return path;
}

/* A SQLite file, unless the store names a PostgreSQL database. */
static bool store_is_file(const cmdline *c)
{
    const char *raw = store_arg(c);
    return raw && (strncmp(raw, "sqlite:", 7) == 0 || !wh__store_is_pg(raw));
}

/* Commands that only look open the store read-only: they work with read permission alone,
 * never create, migrate or change the file, and never block an engine's writes. */
static int open_store(const cmdline *c, int mode, wh__store **out)
{
    const char *path = store_path(c);
    if (!path || !*path)
        return ctl_usage_error("no store: give -s PATH or set WEBHOOK_STORE");
    char err[512];
    if (!store_is_file(c)) {
        const char *schema = c->set[O_SCHEMA] ? c->val[O_SCHEMA] : getenv("WEBHOOK_SCHEMA");
        wh__pg_options o = {.conninfo = path, .schema = schema && *schema ? schema : "webhook",
                            .read_only = mode == 1, .create = mode == 3, .lease_ms = 30000};
        if (wh__store_pg_check(path, err, sizeof err) != WH_OK ||
            wh__store_pg_open(&o, out, err, sizeof err) != WH_OK)
            return ctl_fail("%s", err);
        return EXIT_OK;
    }
    wh__sqlite_options o = {.path = path, .read_only = mode == 1, .create = mode == 3,
                            .lease_ms = 30000};
    if (wh__store_sqlite_open(&o, out, err, sizeof err) != WH_OK)
        return ctl_fail("%s", err);
    return EXIT_OK;
}

/* A command that created the store and then failed leaves nothing behind. */
static void remove_store(const char *path)
{
    char side[4200];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

int main(int argc, char **argv)
{
    cmdline c;
    int rc = ctl_parse_cmdline(argc, argv, &c);
    if (rc != EXIT_OK)
        return rc;
    if (c.set[O_HELP] || (c.nargs == 1 && strcmp(c.args[0], "help") == 0)) {
        fputs(usage_text, stdout);
        return EXIT_OK;
    }
    if (c.set[O_VERSION] || (c.nargs == 1 && strcmp(c.args[0], "version") == 0)) {
        printf("webhookctl (libwebhook) %s\n", wh_version());
        return EXIT_OK;
    }
    if (c.nargs == 0) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    int words = 0;
    const command *cmd = find_command(&c, &words, &rc);
    if (!cmd)
        return rc;
    char name[64];
    snprintf(name, sizeof name, "%s%s%s", cmd->group ? cmd->group : "", cmd->group ? " " : "",
             cmd->name);
    for (int o = 0; o < O_COUNT; o++)
        if (c.set[o] && !((cmd->allowed | GLOBAL_OPTIONS) & BIT(o)))
            return ctl_usage_error("%s: no option --%s\nusage: webhookctl %s", name, ctl_options[o].name,
                               cmd->synopsis);
    int nargs = c.nargs - words;
    if (nargs < cmd->min_args)
        return ctl_usage_error("%s: missing argument\nusage: webhookctl %s", name, cmd->synopsis);
    if (nargs > cmd->max_args)
        return ctl_usage_error("%s: unexpected argument \"%s\"\nusage: webhookctl %s", name,
                           c.args[words + cmd->max_args], cmd->synopsis);
    const char *args[MAX_ARGS + 1] = {0};
    for (int i = 0; i < nargs; i++)
        args[i] = c.args[words + i];
    wh__store *s = NULL;
    struct stat st;
    bool created = cmd->store == 3 && store_is_file(&c) && stat(store_path(&c), &st) != 0;
    if (cmd->store && (rc = open_store(&c, cmd->store, &s)) != EXIT_OK)
        return rc;
    rc = cmd->run(s, &c, args);
    if (s)
        s->ops->close(s);
    if (created && rc != EXIT_OK)
        remove_store(store_path(&c));
    if (fflush(stdout) != 0 && rc == EXIT_OK)
        rc = ctl_fail("writing the output: %s", strerror(errno));
    return rc;
}

