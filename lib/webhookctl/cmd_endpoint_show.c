/* endpoint list and endpoint show: as a table, as text, or as JSON; secrets and header values
 * only with --reveal-secret. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "webhook/webhook.h"
#include "cmd_endpoint_show.h"
#include "commands.h"
#include "endpoint_settings.h"
#include "output.h"
#include "util.h"

#define HIDDEN_SECRET "whsec_\u2026(hidden)"


void ctl_ep_copy_free(ep_copy *e)
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

int ctl_find_endpoint(wh__store *s, const char *id, ep_find *f)
{
    memset(f, 0, sizeof *f);
    f->id = id;
    int rc = s->ops->endpoints_load(s, find_one, f);
    if (rc != WH_OK)
        return ctl_store_fail(rc, "store");
    if (f->e.oom)
        return ctl_fail("out of memory");
    if (!f->e.found)
        return ctl_fail("no endpoint \"%s\"", id);
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
        ok = ok && ctl_json_time(item, "until", old[i].until_ms) &&
             (!reveal || ctl_json_text(item, "secret", old[i].secret));
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
              cJSON_AddStringToObject(o, "url", r->url) && ctl_json_bool(o, "enabled", r->enabled) &&
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
    ok = ok && ctl_json_text(o, "key", r->key) &&
         ctl_json_text(o, "disabled_reason", r->enabled ? NULL : r->disabled_reason) &&
         cJSON_AddStringToObject(o, "description", r->description ? r->description : "") &&
         ctl_json_time(o, "created", r->created_ms) &&
         ctl_json_time(o, "failing_since", r->enabled ? r->failing_since_ms : 0) &&
         (!reveal || ctl_json_text(o, "secret", r->secret)) &&
         json_old_secrets(o, old, n_old, reveal) && json_settings(o, r->settings, reveal);
    return ctl_json_done(o, ok);
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
        if (!l->oom && !ctl_json_print(endpoint_json(r, old, n, false)))
            l->oom = true;
        explicit_bzero(old, sizeof old);
        return;
    }
    ctl_table_add(&l->t, (const char *[]){r->id, r->enabled ? "yes" : "no", r->url,
                                      r->event_types && *r->event_types ? r->event_types : "*",
                                      r->key, r->description});
}

int cmd_endpoint_list(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)args;
    list_out l = {.t = {.ncols = 6}, .json = c->set[O_JSON]};
    if (!l.json)
        ctl_table_add(&l.t, (const char *[]){"ID", "ENABLED", "URL", "EVENTS", "KEY", "DESCRIPTION"});
    int rc = s->ops->endpoints_load(s, list_one, &l);
    int prc = l.json ? (l.oom ? ctl_fail("out of memory") : EXIT_OK) : ctl_table_print(&l.t);
    return rc != WH_OK ? ctl_store_fail(rc, "store") : prc;
}

int cmd_endpoint_show(wh__store *s, const cmdline *c, const char *const *args)
{
    ep_find f;
    int rc = ctl_find_endpoint(s, args[0], &f);
    if (rc == EXIT_OK && c->set[O_JSON]) {
        const ep_copy *e = &f.e;
        wh__endpoint_row row = {
            .id = e->id, .url = e->url, .event_types = e->event_types, .secret = e->secret,
            .disabled_reason = e->disabled_reason, .description = e->description,
            .settings = e->settings, .key = e->key, .created_ms = e->created_ms,
            .failing_since_ms = e->failing_since_ms, .enabled = e->enabled,
        };
        if (!ctl_json_print(endpoint_json(&row, e->old, e->n_old, c->set[O_REVEAL])))
            rc = ctl_fail("out of memory");
    } else if (rc == EXIT_OK) {
        const ep_copy *e = &f.e;
        bool reveal = c->set[O_REVEAL];
        char created[32], failing[32];
        ctl_format_time(e->created_ms, created);
        ctl_format_time(e->failing_since_ms, failing);
        char *url = ctl_clean_copy(e->url), *desc = ctl_clean_copy(e->description),
             *reason = ctl_clean_copy(e->disabled_reason), *key = ctl_clean_copy(e->key);
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
            ctl_format_time(e->old[i].until_ms, until);
            if (e->old[i].until_ms > now)
                printf("old secret:    %s, signs until %s\n",
                       reveal ? e->old[i].secret : HIDDEN_SECRET, until);
        }
        if (e->enabled && e->failing_since_ms > 0)
            printf("failing since: %s\n", failing);
        /* the endpoint's own settings, in the order they were first set */
        char **list = settings_list(e->settings, reveal);
        if (!list)
            rc = ctl_fail("out of memory");
        for (char **p = list; p && *p; p++) {
            char *shown = ctl_clean_copy(*p);
            printf("setting:       %s\n", shown ? shown : "");
            if (shown)
                explicit_bzero(shown, strlen(shown));
            free(shown);
        }
        settings_list_free(list);
        free(url), free(desc), free(reason), free(key);
    }
    ctl_ep_copy_free(&f.e);
    return rc;
}

