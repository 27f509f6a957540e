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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "internal.h"

enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_USAGE = 2 };

#define STDIN_MAX ((size_t)64 << 20) /* verify reads at most this much body */
#define LIMIT_MAX 1000000
#define HIDDEN_SECRET "whsec_\u2026(hidden)"

static const char *const *const builtin_types = wh__builtin_types;

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

/* ---- messages ----------------------------------------------------------------- */

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("webhookctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_ERR;
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("webhookctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nTry 'webhookctl --help'.\n", stderr);
    va_end(ap);
    return EXIT_USAGE;
}

/* A failed store call: the store's own message when it left one. */
static int store_fail(int rc, const char *what)
{
    const char *why = wh_last_error();
    if (!*why)
        return fail("%s: %s", what, wh_strerror(rc));
    /* the store's own messages start with "store: " already */
    return strncmp(why, "store: ", 7) == 0 ? fail("%s", why) : fail("%s: %s", what, why);
}

/* ---- the command line ------------------------------------------------------------ */

enum {
    O_STORE, O_SCHEMA, O_HELP, O_VERSION, O_EVENTS, O_SECRET, O_DISABLED, O_DESCRIPTION, O_REVEAL,
    O_GRACE, O_ENDPOINT, O_EVENT, O_TYPE, O_FAILED, O_SINCE, O_LIMIT, O_JSON, O_ID,
    O_TIMESTAMP, O_SIGNATURE, O_TOLERANCE, O_OUTCOME, O_COUNT
};

static const struct {
    const char *name;
    char short_name;
    bool takes_value;
} options[O_COUNT] = {
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

#define BIT(o) (1u << (o))
#define GLOBAL_OPTIONS (BIT(O_STORE) | BIT(O_SCHEMA) | BIT(O_HELP) | BIT(O_VERSION))
#define MAX_ARGS 8

typedef struct cmdline {
    const char *val[O_COUNT];
    bool set[O_COUNT];
    const char *args[MAX_ARGS]; /* the words that are not options, command words first */
    int nargs;
} cmdline;

static int parse_cmdline(int argc, char **argv, cmdline *c)
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
                if (strlen(options[k].name) == len && strncmp(options[k].name, name, len) == 0)
                    o = k;
            if (o < 0)
                return usage_error("unknown option --%.*s", (int)len, name);
            if (eq && !options[o].takes_value)
                return usage_error("--%s takes no value", options[o].name);
            value = eq ? eq + 1 : NULL;
        } else if (!options_done && a[0] == '-' && a[1] != '\0') {
            for (int k = 0; k < O_COUNT; k++)
                if (options[k].short_name && options[k].short_name == a[1])
                    o = k;
            if (o < 0 || (a[2] && !options[o].takes_value))
                return usage_error("unknown option %s", a);
            value = a[2] ? a + 2 : NULL;
        } else {
            if (c->nargs == MAX_ARGS)
                return usage_error("too many arguments (at \"%s\")", a);
            c->args[c->nargs++] = a;
            continue;
        }
        if (options[o].takes_value && !value) {
            if (i + 1 >= argc)
                return usage_error("--%s needs a value", options[o].name);
            value = argv[++i];
        }
        c->set[o] = true;
        c->val[o] = value;
    }
    return EXIT_OK;
}

/* "1h" etc. into ms; a usage error names the option. */
static int parse_duration(int opt, const char *s, int64_t *ms)
{
    if (wh__parse_duration_ms(s, ms) != WH_OK)
        return usage_error("--%s: \"%s\" is not a duration (like 30s, 30m, 1h, 24h, 7d)",
                           options[opt].name, s);
    return EXIT_OK;
}

/* ---- output ------------------------------------------------------------------------ */

/* A copy of s fit for one table cell: control characters become '?'. */
static char *clean_copy(const char *s)
{
    char *c = wh__strdup(s ? s : "");
    for (char *p = c; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return c;
}

static size_t display_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        w += (*p & 0xc0) != 0x80; /* count UTF-8 lead bytes */
    return w;
}

typedef struct table {
    size_t ncols, nrows, cap;
    char **cells; /* nrows * ncols, row-major */
    bool oom;
} table;

static void table_add(table *t, const char *const *row)
{
    if (t->oom)
        return;
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        char **v = realloc(t->cells, cap * t->ncols * sizeof *v);
        if (!v) {
            t->oom = true;
            return;
        }
        t->cells = v, t->cap = cap;
    }
    char **dst = &t->cells[t->nrows * t->ncols];
    for (size_t i = 0; i < t->ncols; i++)
        if (!(dst[i] = clean_copy(row[i] && *row[i] ? row[i] : "-")))
            t->oom = true;
    t->nrows++;
}

/* Prints aligned columns (the last one unpadded) and frees the table. */
static int table_print(table *t)
{
    size_t width[16] = {0};
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t i = 0; i < t->ncols; i++) {
            const char *cell = t->cells[r * t->ncols + i];
            size_t w = cell ? display_width(cell) : 0;
            if (w > width[i])
                width[i] = w;
        }
    for (size_t r = 0; !t->oom && r < t->nrows; r++) {
        for (size_t i = 0; i < t->ncols; i++) {
            const char *cell = t->cells[r * t->ncols + i];
            bool last = i + 1 == t->ncols;
            fputs(cell, stdout);
            if (!last)
                printf("%*s", (int)(width[i] - display_width(cell) + 2), "");
        }
        putchar('\n');
    }
    for (size_t k = 0; k < t->nrows * t->ncols; k++)
        free(t->cells[k]);
    free(t->cells);
    return t->oom ? fail("out of memory") : EXIT_OK;
}

static void format_time(int64_t ms, char out[32])
{
    if (ms <= 0)
        snprintf(out, 32, "-");
    else
        wh__format_rfc3339_ms(ms, out);
}

/* JSON objects are built with every addition checked: an object missing a member for want
 * of memory is never printed as if it were whole. */
static bool json_time(cJSON *o, const char *name, int64_t ms)
{
    char when[32];
    if (ms <= 0)
        return cJSON_AddNullToObject(o, name) != NULL;
    wh__format_rfc3339_ms(ms, when);
    return cJSON_AddStringToObject(o, name, when) != NULL;
}

/* A string, or null when there is none (NULL or empty). */
static bool json_text(cJSON *o, const char *name, const char *s)
{
    if (s && *s)
        return cJSON_AddStringToObject(o, name, s) != NULL;
    return cJSON_AddNullToObject(o, name) != NULL;
}

static bool json_number(cJSON *o, const char *name, double v)
{
    return cJSON_AddNumberToObject(o, name, v) != NULL;
}

static bool json_bool(cJSON *o, const char *name, bool v)
{
    return cJSON_AddBoolToObject(o, name, v) != NULL;
}

/* Deletes o and returns NULL unless ok. */
static cJSON *json_done(cJSON *o, bool ok)
{
    if (ok)
        return o;
    cJSON_Delete(o);
    return NULL;
}

/* Prints o on one line and deletes it; false when out of memory (o NULL included). */
static bool json_print(cJSON *o)
{
    char *line = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!line)
        return false;
    puts(line);
    cJSON_free(line);
    return true;
}

/* ---- endpoints ------------------------------------------------------------------------ */

/* The event types a running engine knows (it writes them to meta), else the built-in six. */
static int known_types(wh__store *s, char **joined, const char ***types)
{
    int rc = wh__store_get_meta(s, "event_types", joined);
    if (rc != WH_OK)
        return store_fail(rc, "store");
    if (!*joined || !**joined) {
        *types = NULL;
        return EXIT_OK;
    }
    size_t n = 1;
    for (const char *p = *joined; *p; p++)
        n += *p == ',';
    *types = calloc(n + 1, sizeof **types);
    if (!*types)
        return fail("out of memory");
    size_t k = 0;
    for (char *save = NULL, *t = strtok_r(*joined, ",", &save); t; t = strtok_r(NULL, ",", &save))
        (*types)[k++] = t;
    return EXIT_OK;
}

/* Splits "a, b,c" into a NULL-terminated list (pointers into s); the count. */
static size_t split_list(char *s, const char **out, size_t max)
{
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        char *end = t + strlen(t);
        while (end > t && end[-1] == ' ')
            *--end = '\0';
        if (!*t)
            continue;
        if (n == max)
            return max + 1;
        out[n++] = t;
    }
    out[n] = NULL;
    return n;
}

static int cmd_endpoint_add(wh__store *s, const cmdline *c, const char *const *args)
{
    char *joined = NULL, *events = NULL;
    const char **types = NULL;
    const char *subs[130];
    wh__registry *reg = NULL;
    wh__endpoint *ep = NULL;
    int rc = known_types(s, &joined, &types);
    if (rc != EXIT_OK)
        goto out;
    if (c->set[O_EVENTS]) {
        if (!(events = wh__strdup(c->val[O_EVENTS]))) {
            rc = fail("out of memory");
            goto out;
        }
        size_t n = split_list(events, subs, 128);
        if (n == 0) {
            rc = fail("events: is empty (leave --events out to subscribe to every type)");
            goto out;
        }
        if (n > 128) {
            rc = fail("events: too many entries");
            goto out;
        }
    }
    if (!(reg = wh__registry_new(types ? types : builtin_types))) {
        rc = fail("out of memory");
        goto out;
    }
    wh_endpoint_spec spec = {
        .url = args[0],
        .event_types = c->set[O_EVENTS] ? subs : NULL,
        .secret = c->val[O_SECRET],
        .disabled = c->set[O_DISABLED],
        .description = c->val[O_DESCRIPTION],
    };
    char err[512];
    /* the library's own checks, against the event types the engine knows */
    if (!(ep = wh__endpoint_build(reg, &spec, NULL, err, sizeof err))) {
        rc = fail("%s", err);
        goto out;
    }
    wh__endpoint_row row;
    char *block = wh__endpoint_row_snapshot(ep, &row);
    if (!block) {
        rc = fail("out of memory");
        goto out;
    }
    int src = s->ops->endpoint_insert(s, &row);
    free(block);
    if (src != WH_OK) {
        rc = store_fail(src, "store");
        goto out;
    }
    printf("%s\n", ep->id);
    rc = EXIT_OK;
out:
    wh__endpoint_unref(ep);
    wh__registry_free(reg);
    free(events);
    free(types);
    free(joined);
    return rc;
}

/* One endpoint row, copied out of the store's callback. */
typedef struct ep_copy {
    char *id, *url, *event_types, *secret, *disabled_reason, *description, *key;
    char *settings; /* as stored: may hold header values */
    wh__old_secret old[WH__MAX_OLD_KEYS]; /* newest first */
    size_t n_old;
    int64_t created_ms, failing_since_ms;
    bool enabled, found, oom;
} ep_copy;

static void ep_copy_free(ep_copy *e)
{
    free(e->id), free(e->url), free(e->event_types), free(e->disabled_reason), free(e->description);
    free(e->key);
    if (e->secret)
        explicit_bzero(e->secret, strlen(e->secret));
    free(e->secret);
    if (e->settings)
        explicit_bzero(e->settings, strlen(e->settings));
    free(e->settings);
    explicit_bzero(e->old, sizeof e->old);
}

typedef struct {
    const char *id;
    ep_copy e;
} ep_find;

static char *dup_or_null(const char *s, bool *oom)
{
    char *d = s ? wh__strdup(s) : NULL;
    if (s && !d)
        *oom = true;
    return d;
}

static void find_one(void *ud, const wh__endpoint_row *r)
{
    ep_find *f = ud;
    if (f->e.found || strcmp(r->id, f->id) != 0)
        return;
    ep_copy *e = &f->e;
    e->found = true;
    e->id = dup_or_null(r->id, &e->oom);
    e->url = dup_or_null(r->url, &e->oom);
    e->event_types = dup_or_null(r->event_types, &e->oom);
    e->secret = dup_or_null(r->secret, &e->oom);
    e->n_old = wh__old_secrets_read(r->old_secrets, r->old_secret, r->old_until_ms, e->old);
    e->disabled_reason = dup_or_null(r->disabled_reason, &e->oom);
    e->description = dup_or_null(r->description, &e->oom);
    e->settings = dup_or_null(r->settings, &e->oom);
    e->key = dup_or_null(r->key, &e->oom);
    e->created_ms = r->created_ms;
    e->failing_since_ms = r->failing_since_ms;
    e->enabled = r->enabled;
}

/* EXIT_OK with f->e filled, or an error printed. */
static int find_endpoint(wh__store *s, const char *id, ep_find *f)
{
    memset(f, 0, sizeof *f);
    f->id = id;
    int rc = s->ops->endpoints_load(s, find_one, f);
    if (rc != WH_OK)
        return store_fail(rc, "store");
    if (f->e.oom)
        return fail("out of memory");
    if (!f->e.found)
        return fail("no endpoint \"%s\"", id);
    return EXIT_OK;
}

/* The old secrets that still sign, each with the end of its grace (and, revealed, itself). */
static bool json_old_secrets(cJSON *o, const wh__old_secret *old, size_t n, bool reveal)
{
    cJSON *list = cJSON_AddArrayToObject(o, "old_secrets");
    bool ok = list != NULL;
    int64_t now = wh__wall_ms();
    for (size_t i = 0; ok && i < n; i++) {
        if (old[i].until_ms <= now)
            continue;
        cJSON *item = cJSON_CreateObject();
        ok = item && cJSON_AddItemToArray(list, item);
        if (item && !ok)
            cJSON_Delete(item);
        ok = ok && json_time(item, "until", old[i].until_ms) &&
             (!reveal || json_text(item, "secret", old[i].secret));
    }
    return ok;
}

/* The endpoint's own settings as "key=value" (header values hidden unless revealed); NULL
 * when out of memory. */
static char **settings_list(const char *stored, bool reveal)
{
    return wh__ep_settings_list(stored, reveal);
}

static void settings_list_free(char **list)
{
    for (char **p = list; p && *p; p++)
        explicit_bzero(*p, strlen(*p)); /* revealed header values */
    free(list);
}

/* "settings": {key: value, ...} in the order they were first set. */
static bool json_settings(cJSON *o, const char *stored, bool reveal)
{
    cJSON *obj = cJSON_AddObjectToObject(o, "settings");
    char **list = obj ? settings_list(stored, reveal) : NULL;
    bool ok = list != NULL;
    for (char **p = list; ok && p && *p; p++) {
        char *eq = strchr(*p, '='); /* no key holds one */
        *eq = '\0';
        ok = cJSON_AddStringToObject(obj, *p, eq + 1) != NULL;
        *eq = '=';
    }
    settings_list_free(list);
    return ok;
}

/* One endpoint as JSON: the same object for list and show; secrets only when revealed. */
static cJSON *endpoint_json(const wh__endpoint_row *r, const wh__old_secret *old, size_t n_old,
                            bool reveal)
{
    cJSON *o = cJSON_CreateObject(), *types = NULL;
    bool ok = o && cJSON_AddStringToObject(o, "id", r->id) &&
              cJSON_AddStringToObject(o, "url", r->url) && json_bool(o, "enabled", r->enabled) &&
              (types = cJSON_AddArrayToObject(o, "event_types"));
    /* an endpoint stored with no types subscribes to every one */
    const char *t = r->event_types && *r->event_types ? r->event_types : "*";
    for (const char *end; ok && *t; t = *end ? end + 1 : end) {
        end = t + strcspn(t, ",");
        char *one = strndup(t, (size_t)(end - t));
        cJSON *item = one ? cJSON_CreateString(one) : NULL;
        free(one);
        ok = item && cJSON_AddItemToArray(types, item);
        if (item && !ok)
            cJSON_Delete(item);
    }
    ok = ok && json_text(o, "key", r->key) &&
         json_text(o, "disabled_reason", r->enabled ? NULL : r->disabled_reason) &&
         cJSON_AddStringToObject(o, "description", r->description ? r->description : "") &&
         json_time(o, "created", r->created_ms) &&
         json_time(o, "failing_since", r->enabled ? r->failing_since_ms : 0) &&
         (!reveal || json_text(o, "secret", r->secret)) &&
         json_old_secrets(o, old, n_old, reveal) && json_settings(o, r->settings, reveal);
    return json_done(o, ok);
}

typedef struct {
    table t;
    bool json, oom;
} list_out;

static void list_one(void *ud, const wh__endpoint_row *r)
{
    list_out *l = ud;
    if (l->json) {
        wh__old_secret old[WH__MAX_OLD_KEYS];
        size_t n = wh__old_secrets_read(r->old_secrets, r->old_secret, r->old_until_ms, old);
        if (!l->oom && !json_print(endpoint_json(r, old, n, false)))
            l->oom = true;
        explicit_bzero(old, sizeof old);
        return;
    }
    table_add(&l->t, (const char *[]){r->id, r->enabled ? "yes" : "no", r->url,
                                      r->event_types && *r->event_types ? r->event_types : "*",
                                      r->key, r->description});
}

static int cmd_endpoint_list(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)args;
    list_out l = {.t = {.ncols = 6}, .json = c->set[O_JSON]};
    if (!l.json)
        table_add(&l.t, (const char *[]){"ID", "ENABLED", "URL", "EVENTS", "KEY", "DESCRIPTION"});
    int rc = s->ops->endpoints_load(s, list_one, &l);
    int prc = l.json ? (l.oom ? fail("out of memory") : EXIT_OK) : table_print(&l.t);
    return rc != WH_OK ? store_fail(rc, "store") : prc;
}

static int cmd_endpoint_show(wh__store *s, const cmdline *c, const char *const *args)
{
    ep_find f;
    int rc = find_endpoint(s, args[0], &f);
    if (rc == EXIT_OK && c->set[O_JSON]) {
        const ep_copy *e = &f.e;
        wh__endpoint_row row = {
            .id = e->id, .url = e->url, .event_types = e->event_types, .secret = e->secret,
            .disabled_reason = e->disabled_reason, .description = e->description,
            .settings = e->settings, .key = e->key, .created_ms = e->created_ms,
            .failing_since_ms = e->failing_since_ms, .enabled = e->enabled,
        };
        if (!json_print(endpoint_json(&row, e->old, e->n_old, c->set[O_REVEAL])))
            rc = fail("out of memory");
    } else if (rc == EXIT_OK) {
        const ep_copy *e = &f.e;
        bool reveal = c->set[O_REVEAL];
        char created[32], failing[32];
        format_time(e->created_ms, created);
        format_time(e->failing_since_ms, failing);
        char *url = clean_copy(e->url), *desc = clean_copy(e->description),
             *reason = clean_copy(e->disabled_reason), *key = clean_copy(e->key);
        printf("id:            %s\n", e->id);
        if (e->key)
            printf("key:           %s\n", key ? key : "");
        printf("url:           %s\n", url ? url : "");
        if (e->enabled)
            printf("enabled:       yes\n");
        else if (e->disabled_reason && *e->disabled_reason)
            printf("enabled:       no (%s)\n", reason ? reason : "");
        else
            printf("enabled:       no (disabled by hand)\n");
        printf("events:        %s\n", e->event_types && *e->event_types ? e->event_types : "*");
        printf("description:   %s\n", desc ? desc : "");
        printf("created:       %s\n", created);
        printf("secret:        %s\n", reveal ? e->secret : HIDDEN_SECRET);
        /* every old secret still in its grace, newest first */
        int64_t now = wh__wall_ms();
        for (size_t i = 0; i < e->n_old; i++) {
            char until[32];
            format_time(e->old[i].until_ms, until);
            if (e->old[i].until_ms > now)
                printf("old secret:    %s, signs until %s\n",
                       reveal ? e->old[i].secret : HIDDEN_SECRET, until);
        }
        if (e->enabled && e->failing_since_ms > 0)
            printf("failing since: %s\n", failing);
        /* the endpoint's own settings, in the order they were first set */
        char **list = settings_list(e->settings, reveal);
        if (!list)
            rc = fail("out of memory");
        for (char **p = list; p && *p; p++) {
            char *shown = clean_copy(*p);
            printf("setting:       %s\n", shown ? shown : "");
            if (shown)
                explicit_bzero(shown, strlen(shown));
            free(shown);
        }
        settings_list_free(list);
        free(url), free(desc), free(reason), free(key);
    }
    ep_copy_free(&f.e);
    return rc;
}

static int set_enabled(wh__store *s, const char *id, bool enabled)
{
    wh__endpoint_change ch = {.kind = enabled ? WH__EP_ENABLE : WH__EP_DISABLE};
    snprintf(ch.endpoint_id, sizeof ch.endpoint_id, "%s", id);
    int rc = strlen(id) >= WH_ID_MAX ? WH_ERR_NOTFOUND : s->ops->endpoint_change(s, &ch, NULL, NULL);
    if (rc == WH_ERR_NOTFOUND)
        return fail("no endpoint \"%s\"", id);
    if (rc != WH_OK)
        return store_fail(rc, "store");
    printf("%s %s\n", enabled ? "enabled" : "disabled", id);
    return EXIT_OK;
}

static int cmd_endpoint_enable(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)c;
    return set_enabled(s, args[0], true);
}

static int cmd_endpoint_disable(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)c;
    return set_enabled(s, args[0], false);
}

static int cmd_endpoint_rm(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)c;
    ep_find f;
    int rc = find_endpoint(s, args[0], &f);
    ep_copy_free(&f.e);
    if (rc != EXIT_OK)
        return rc;
    int src = s->ops->endpoint_delete(s, args[0]);
    if (src != WH_OK)
        return store_fail(src, "store");
    printf("removed %s\n", args[0]);
    return EXIT_OK;
}

static int cmd_endpoint_rotate(wh__store *s, const cmdline *c, const char *const *args)
{
    /* the meaning of wh_endpoint_rotate_secret's grace_s: 0 is the default 24 h, -1 none */
    int64_t grace_ms = 86400000;
    int rc;
    if (c->set[O_GRACE]) {
        const char *g = c->val[O_GRACE];
        if (strcmp(g, "-1") == 0 || strcmp(g, "none") == 0)
            grace_ms = 0;
        else if ((rc = parse_duration(O_GRACE, g, &grace_ms)) != EXIT_OK)
            return rc;
        else if (grace_ms == 0)
            grace_ms = 86400000;
    }
    char generated[128];
    const char *secret = c->val[O_SECRET];
    if (!secret) {
        if (wh__secret_generate(generated, sizeof generated) != WH_OK)
            return fail("secret: could not generate one");
        secret = generated;
    }
    unsigned char key[WH__SECRET_KEY_MAX];
    size_t key_len;
    const char *problem = wh__secret_decode(secret, key, &key_len);
    explicit_bzero(key, sizeof key);
    if (problem)
        return fail("secret: %s", problem);
    int64_t now = wh__wall_ms(), until = grace_ms > 0 ? now + grace_ms : 0;
    wh__endpoint_change ch = {.kind = WH__EP_ROTATE, .secret = secret, .old_until_ms = until,
                              .now_ms = now};
    snprintf(ch.endpoint_id, sizeof ch.endpoint_id, "%s", args[0]);
    int src = strlen(args[0]) >= WH_ID_MAX ? WH_ERR_NOTFOUND : s->ops->endpoint_change(s, &ch, NULL, NULL);
    if (src == WH_ERR_NOTFOUND)
        rc = fail("no endpoint \"%s\"", args[0]);
    else if (src != WH_OK)
        rc = store_fail(src, "store");
    else {
        char when[32];
        format_time(until, when);
        if (until)
            printf("rotated the secret of %s; the old one keeps signing until %s\n", args[0], when);
        else
            printf("rotated the secret of %s; the old one no longer signs\n", args[0]);
        if (c->set[O_REVEAL])
            printf("secret: %s\n", secret);
        rc = EXIT_OK;
    }
    explicit_bzero(generated, sizeof generated);
    return rc;
}

/* KEY to VALUE (NULL: the default again) with the same column-level change an engine makes,
 * so that running engines take it up within a second. */
static int change_setting(wh__store *s, const char *id, const char *key, const char *value)
{
    /* a header's value is never printed, not even in an error */
    if (wh__ep_setting_check(key, value, NULL, 0) != WH_OK)
        return fail("%s", wh_last_error());
    wh__endpoint_change ch = {.kind = WH__EP_SETTING, .setting_key = key, .setting_value = value};
    snprintf(ch.endpoint_id, sizeof ch.endpoint_id, "%s", id);
    int rc = strlen(id) >= WH_ID_MAX ? WH_ERR_NOTFOUND : s->ops->endpoint_change(s, &ch, NULL, NULL);
    if (rc == WH_ERR_NOTFOUND)
        return fail("no endpoint \"%s\"", id);
    if (rc == WH_ERR_INVALID) /* what depends on the stored settings (how many headers) */
        return fail("%s", wh_last_error());
    if (rc != WH_OK)
        return store_fail(rc, "store");
    if (!value)
        printf("%s of %s: the default again\n", key, id);
    else if (wh__ep_setting_is_header(key))
        printf("%s of %s: set\n", key, id);
    else
        printf("%s of %s: %s\n", key, id, value);
    return EXIT_OK;
}

static int cmd_endpoint_set(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)c;
    return change_setting(s, args[0], args[1], args[2]);
}

static int cmd_endpoint_unset(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)c;
    return change_setting(s, args[0], args[1], NULL);
}

/* ---- the attempt log ---------------------------------------------------------------------- */

static void log_row_table(void *ud, const wh_attempt *a)
{
    char when[32], attempt[16], status[16], latency[32];
    format_time(a->started_ms, when);
    snprintf(attempt, sizeof attempt, "%d", a->attempt);
    if (a->http_status)
        snprintf(status, sizeof status, "%d", a->http_status);
    else
        snprintf(status, sizeof status, "-");
    if (a->duration_us > 0)
        snprintf(latency, sizeof latency, "%.1fms", (double)a->duration_us / 1000.0);
    else
        snprintf(latency, sizeof latency, "-");
    table_add(ud, (const char *[]){when, a->event_type, a->event_id, a->endpoint_id, attempt,
                                   a->redelivery ? "yes" : "no", wh_outcome_name(a->outcome),
                                   status, latency, a->run_id, a->task_id, a->error});
}

static void log_row_json(void *ud, const wh_attempt *a)
{
    char *line = wh__attempt_json(a);
    if (!line) {
        *(bool *)ud = true;
        return;
    }
    puts(line);
    cJSON_free(line);
}

/* --outcome delivered,failed: the set of outcomes, or a usage error. */
static int parse_outcomes(const char *list, unsigned *out)
{
    *out = 0;
    for (const char *p = list, *end; *p; p = *end ? end + 1 : end) {
        end = p + strcspn(p, ",");
        size_t len = (size_t)(end - p);
        int found = -1;
        for (int o = WH_OUTCOME_DELIVERED; o <= WH_OUTCOME_SKIPPED; o++)
            if (strlen(wh_outcome_name((wh_outcome)o)) == len &&
                strncmp(wh_outcome_name((wh_outcome)o), p, len) == 0)
                found = o;
        if (found < 0)
            return usage_error("--outcome: \"%.*s\" is not an outcome (delivered, retrying,"
                               " failed, skipped)", (int)len, p);
        *out |= WH_OUTCOME_BIT(found);
    }
    if (!*out)
        return usage_error("--outcome: name at least one of delivered, retrying, failed, skipped");
    return EXIT_OK;
}

/* --type must name an event type the store knows: a typo is an error, not an empty log. */
static int check_type(wh__store *s, const char *type)
{
    char *joined = NULL;
    const char **types = NULL;
    int rc = known_types(s, &joined, &types);
    if (rc != EXIT_OK)
        return rc;
    const char *const *known = types ? types : builtin_types;
    bool found = false;
    size_t len = 0;
    for (const char *const *t = known; *t; t++) {
        found |= strcmp(*t, type) == 0;
        len += strlen(*t) + 2;
    }
    if (!found) {
        char *list = calloc(1, len + 1);
        for (const char *const *t = known; list && *t; t++)
            strcat(strcat(list, t == known ? "" : ", "), *t);
        char *shown = clean_copy(type);
        rc = fail("--type: \"%s\" is not an event type of this store (known: %s)",
                  shown ? shown : "?", list ? list : "?");
        free(shown);
        free(list);
    }
    free(types);
    free(joined);
    return rc;
}

static int cmd_log(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)args;
    wh_log_filter f = {
        .endpoint_id = c->val[O_ENDPOINT],
        .event_id = c->val[O_EVENT],
        .event_type = c->val[O_TYPE],
        /* given up only: a retrying attempt may still be delivered */
        .outcomes = c->set[O_FAILED] ? WH_OUTCOME_BIT(WH_OUTCOME_FAILED) : 0,
        .limit = 100,
    };
    int rc;
    if (c->set[O_FAILED] && c->set[O_OUTCOME])
        return usage_error("log: --failed is --outcome failed; give one of them");
    if (c->set[O_OUTCOME] && (rc = parse_outcomes(c->val[O_OUTCOME], &f.outcomes)) != EXIT_OK)
        return rc;
    if (c->set[O_SINCE]) {
        int64_t ago;
        if ((rc = parse_duration(O_SINCE, c->val[O_SINCE], &ago)) != EXIT_OK)
            return rc;
        f.since_ms = wh__wall_ms() - ago;
        if (f.since_ms <= 0)
            f.since_ms = 1;
    }
    if (c->set[O_LIMIT]) {
        char *end;
        errno = 0;
        long n = strtol(c->val[O_LIMIT], &end, 10);
        if (errno || end == c->val[O_LIMIT] || *end || n < 1 || n > LIMIT_MAX)
            return usage_error("--limit: \"%s\" is not a number from 1 to %d", c->val[O_LIMIT],
                               LIMIT_MAX);
        f.limit = (int)n;
    }
    if (c->set[O_TYPE] && (rc = check_type(s, c->val[O_TYPE])) != EXIT_OK)
        return rc;
    if (c->set[O_JSON]) {
        bool oom = false;
        int n = s->ops->log_query(s, &f, log_row_json, &oom);
        if (n < 0)
            return store_fail(n, "log");
        return oom ? fail("out of memory") : EXIT_OK;
    }
    /* the columns of older versions keep their places; the free-form error stays last */
    table t = {.ncols = 12};
    table_add(&t, (const char *[]){"TIME", "EVENT_TYPE", "EVENT_ID", "ENDPOINT", "ATTEMPT",
                                   "REDELIVERY", "OUTCOME", "HTTP", "LATENCY", "RUN", "TASK",
                                   "ERROR"});
    int n = s->ops->log_query(s, &f, log_row_table, &t);
    rc = table_print(&t);
    return n < 0 ? store_fail(n, "log") : rc;
}

/* ---- redelivery, recovery, statistics ---------------------------------------------------------- */

static int cmd_redeliver(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)c;
    const char *event = args[0], *endpoint = args[1];
    int n = wh__store_queue_redelivery(s, event, endpoint, wh__wall_ms());
    if (n < 0)
        return store_fail(n, "redeliver");
    if (n == 0 && endpoint)
        printf("queued nothing: %s is still on its way to %s\n", event, endpoint);
    else if (n == 0)
        printf("queued nothing: %s is still on its way to every endpoint it went to that"
               " still exists\n", event);
    else
        printf("queued %d %s of %s\n", n, n == 1 ? "delivery" : "deliveries", event);
    return EXIT_OK;
}

static int cmd_recover(wh__store *s, const cmdline *c, const char *const *args)
{
    if (!c->set[O_SINCE])
        return usage_error("recover: --since is required (e.g. --since 24h)");
    int64_t ago;
    int rc = parse_duration(O_SINCE, c->val[O_SINCE], &ago);
    if (rc != EXIT_OK)
        return rc;
    int64_t now = wh__wall_ms();
    int n = wh__store_queue_recovery(s, args[0], now - ago > 0 ? now - ago : 0, now);
    if (n < 0)
        return store_fail(n, "recover");
    printf("queued %d %s to %s\n", n, n == 1 ? "delivery" : "deliveries", args[0]);
    return EXIT_OK;
}

typedef struct {
    table t;
    bool json, oom;
} stats_out;

static cJSON *stats_json(const wh__endpoint_stats *st)
{
    cJSON *o = cJSON_CreateObject();
    int64_t finished = st->delivered + st->failed;
    bool ok = o && cJSON_AddStringToObject(o, "endpoint_id", st->id) &&
              json_text(o, "url", st->exists ? st->url : NULL) &&
              json_bool(o, "removed", !st->exists) &&
              (st->exists ? json_bool(o, "enabled", st->enabled)
                          : cJSON_AddNullToObject(o, "enabled") != NULL) &&
              json_number(o, "delivered", (double)st->delivered) &&
              json_number(o, "failed", (double)st->failed) &&
              json_number(o, "skipped", (double)st->skipped) &&
              json_number(o, "pending", (double)st->pending) &&
              json_time(o, "last_success", st->last_success_ms) &&
              (finished > 0 ? json_number(o, "success_rate",
                                          (double)st->delivered / (double)finished)
                            : cJSON_AddNullToObject(o, "success_rate") != NULL);
    return json_done(o, ok);
}

static void stats_row(void *ud, const wh__endpoint_stats *st)
{
    stats_out *out = ud;
    if (out->json) {
        if (!out->oom && !json_print(stats_json(st)))
            out->oom = true;
        return;
    }
    char num[4][24], last[32], rate[16];
    int64_t v[4] = {st->delivered, st->failed, st->skipped, st->pending};
    for (int i = 0; i < 4; i++)
        snprintf(num[i], sizeof num[i], "%lld", (long long)v[i]);
    format_time(st->last_success_ms, last);
    /* of the deliveries that finished after being sent: skipped ones were never tried */
    int64_t finished = st->delivered + st->failed;
    if (finished > 0)
        snprintf(rate, sizeof rate, "%.1f%%", 100.0 * (double)st->delivered / (double)finished);
    else
        snprintf(rate, sizeof rate, "-");
    const char *url = st->exists ? st->url : "(removed)";
    table_add(&out->t, (const char *[]){st->id, st->exists ? (st->enabled ? "yes" : "no") : "-",
                                        num[0], num[1], num[2], num[3], last, rate, url});
}

static int cmd_stats(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)args;
    stats_out out = {.t = {.ncols = 9}, .json = c->set[O_JSON]};
    if (!out.json)
        table_add(&out.t, (const char *[]){"ENDPOINT", "ENABLED", "DELIVERED", "FAILED", "SKIPPED",
                                           "PENDING", "LAST_SUCCESS", "SUCCESS_RATE", "URL"});
    int rc = wh__store_endpoint_stats(s, stats_row, &out);
    int prc = out.json ? (out.oom ? fail("out of memory") : EXIT_OK) : table_print(&out.t);
    return rc != WH_OK ? store_fail(rc, "stats") : prc;
}

static int cmd_metrics(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)c, (void)args;
    wh__metrics_entry *e;
    size_t n;
    wh__metrics_totals t = {0};
    int rc = wh__store_endpoint_metrics(s, &e, &n, &t.emitted);
    if (rc != WH_OK)
        return store_fail(rc, "metrics");
    rc = wh__metrics_prometheus(stdout, e, n, &t);
    wh__metrics_entries_free(e, n);
    return rc == WH_OK ? EXIT_OK : fail("writing the output: %s", strerror(errno));
}

/* ---- verify ------------------------------------------------------------------------------ */

static int cmd_verify(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)s, (void)args;
    static const int required[] = {O_SECRET, O_ID, O_TIMESTAMP, O_SIGNATURE};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!c->set[required[i]])
            return usage_error("verify: --%s is required", options[required[i]].name);
    int tolerance_s = 0; /* the library's default, 5 minutes */
    if (c->set[O_TOLERANCE]) {
        int64_t ms;
        int rc = parse_duration(O_TOLERANCE, c->val[O_TOLERANCE], &ms);
        if (rc != EXIT_OK)
            return rc;
        if (ms < 1000 || ms / 1000 > 100LL * 365 * 86400)
            return usage_error("--tolerance: must be from 1s to 100 years");
        tolerance_s = (int)(ms / 1000);
    }
    size_t len = 0, cap = 65536;
    char *body = malloc(cap);
    if (!body)
        return fail("out of memory");
    for (;;) {
        if (len == cap) {
            if (cap >= STDIN_MAX) {
                free(body);
                return fail("verify: the body on stdin is larger than %zu MiB", STDIN_MAX >> 20);
            }
            char *b = realloc(body, cap * 2);
            if (!b) {
                free(body);
                return fail("out of memory");
            }
            body = b, cap *= 2;
        }
        size_t got = fread(body + len, 1, cap - len, stdin);
        len += got;
        if (got == 0) {
            if (ferror(stdin)) {
                free(body);
                return fail("verify: reading the body from stdin: %s", strerror(errno));
            }
            break;
        }
    }
    int rc = wh_verify(c->val[O_SECRET], c->val[O_ID], c->val[O_TIMESTAMP], c->val[O_SIGNATURE],
                       body, len, 0, tolerance_s);
    free(body);
    if (rc != WH_OK)
        return fail("invalid: %s", *wh_last_error() ? wh_last_error() : wh_strerror(rc));
    puts("valid");
    return EXIT_OK;
}

/* ---- dispatch -------------------------------------------------------------------------------- */

typedef struct command {
    const char *group, *name; /* "endpoint", "add"; or NULL, "log" */
    int min_args, max_args;
    unsigned allowed; /* options besides the global ones */
    int store;        /* 0: none; 1: read only; 2: written; 3: written, created if missing */
    int (*run)(wh__store *s, const cmdline *c, const char *const *args);
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
        *rc = usage_error("endpoint: which one? add, list, show, enable, disable, rm,"
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
    *rc = group ? usage_error("endpoint: unknown command \"%s\"", c->args[1])
                : usage_error("unknown command \"%s\"", first);
    return NULL;
}

static const char *store_path(const cmdline *c)
{
    const char *path = c->set[O_STORE] ? c->val[O_STORE] : getenv("WEBHOOK_STORE");
    if (path && strncmp(path, "sqlite:", 7) == 0)
        path += 7;
    return path;
}

/* A SQLite file, unless the store names a PostgreSQL database. */
static bool store_is_file(const cmdline *c)
{
    const char *raw = c->set[O_STORE] ? c->val[O_STORE] : getenv("WEBHOOK_STORE");
    return raw && (strncmp(raw, "sqlite:", 7) == 0 || !wh__store_is_pg(raw));
}

/* Commands that only look open the store read-only: they work with read permission alone,
 * never create, migrate or change the file, and never block an engine's writes. */
static int open_store(const cmdline *c, int mode, wh__store **out)
{
    const char *path = store_path(c);
    if (!path || !*path)
        return usage_error("no store: give -s PATH or set WEBHOOK_STORE");
    char err[512];
    if (!store_is_file(c)) {
        const char *schema = c->set[O_SCHEMA] ? c->val[O_SCHEMA] : getenv("WEBHOOK_SCHEMA");
        wh__pg_options o = {.conninfo = path, .schema = schema && *schema ? schema : "webhook",
                            .read_only = mode == 1, .create = mode == 3, .lease_ms = 30000};
        if (wh__store_pg_check(path, err, sizeof err) != WH_OK ||
            wh__store_pg_open(&o, out, err, sizeof err) != WH_OK)
            return fail("%s", err);
        return EXIT_OK;
    }
    wh__sqlite_options o = {.path = path, .read_only = mode == 1, .create = mode == 3,
                            .lease_ms = 30000};
    if (wh__store_sqlite_open(&o, out, err, sizeof err) != WH_OK)
        return fail("%s", err);
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
    int rc = parse_cmdline(argc, argv, &c);
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
            return usage_error("%s: no option --%s\nusage: webhookctl %s", name, options[o].name,
                               cmd->synopsis);
    int nargs = c.nargs - words;
    if (nargs < cmd->min_args)
        return usage_error("%s: missing argument\nusage: webhookctl %s", name, cmd->synopsis);
    if (nargs > cmd->max_args)
        return usage_error("%s: unexpected argument \"%s\"\nusage: webhookctl %s", name,
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
        rc = fail("writing the output: %s", strerror(errno));
    return rc;
}
