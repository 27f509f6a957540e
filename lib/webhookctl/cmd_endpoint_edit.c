/* endpoint add, enable, disable, rm, rotate-secret, set and unset: the same checks and
 * column-level changes an engine makes, so that running engines take them up within a
 * second. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook/webhook.h"
#include "cmd_endpoint_show.h"
#include "commands.h"
#include "endpoint_settings.h"
#include "output.h"
#include "registry.h"
#include "registry_rows.h"
#include "sign.h"
#include "util.h"

int ctl_known_types(wh__store *s, char **joined, const char ***types)
{
    int rc = wh__store_get_meta(s, "event_types", joined);
    if (rc != WH_OK)
        return ctl_store_fail(rc, "store");
    if (!*joined || !**joined) {
        *types = NULL;
        return EXIT_OK;
    }
    size_t n = 1;
    for (const char *p = *joined; *p; p++)
        n += *p == ',';
    *types = calloc(n + 1, sizeof **types);
    if (!*types)
        return ctl_fail("out of memory");
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

int cmd_endpoint_add(wh__store *s, const cmdline *c, const char *const *args)
{
    char *joined = NULL, *events = NULL;
    const char **types = NULL;
    const char *subs[130];
    wh__registry *reg = NULL;
    wh__endpoint *ep = NULL;
    int rc = ctl_known_types(s, &joined, &types);
    if (rc != EXIT_OK)
        goto out;
    if (c->set[O_EVENTS]) {
        if (!(events = wh__strdup(c->val[O_EVENTS]))) {
            rc = ctl_fail("out of memory");
            goto out;
        }
        size_t n = split_list(events, subs, 128);
        if (n == 0) {
            rc = ctl_fail("events: is empty (leave --events out to subscribe to every type)");
            goto out;
        }
        if (n > 128) {
            rc = ctl_fail("events: too many entries");
            goto out;
        }
    }
    if (!(reg = wh__registry_new(types ? types : wh__builtin_types))) {
        rc = ctl_fail("out of memory");
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
        rc = ctl_fail("%s", err);
        goto out;
    }
    wh__endpoint_row row;
    char *block = wh__endpoint_row_snapshot(ep, &row);
    if (!block) {
        rc = ctl_fail("out of memory");
        goto out;
    }
    int src = s->ops->endpoint_insert(s, &row);
    free(block);
    if (src != WH_OK) {
        rc = ctl_store_fail(src, "store");
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


/* The column-level change an engine makes, by id; WH_ERR_NOTFOUND for an id too long to be
 * one. */
static int change_row(wh__store *s, const char *id, wh__endpoint_change *ch)
{
    snprintf(ch->endpoint_id, sizeof ch->endpoint_id, "%s", id);
    return strlen(id) >= WH_ID_MAX ? WH_ERR_NOTFOUND : s->ops->endpoint_change(s, ch, NULL, NULL);
}

static int set_enabled(wh__store *s, const char *id, bool enabled)
{
    wh__endpoint_change ch = {.kind = enabled ? WH__EP_ENABLE : WH__EP_DISABLE};
    int rc = change_row(s, id, &ch);
    if (rc == WH_ERR_NOTFOUND)
        return ctl_fail("no endpoint \"%s\"", id);
    if (rc != WH_OK)
        return ctl_store_fail(rc, "store");
    printf("%s %s\n", enabled ? "enabled" : "disabled", id);
    return EXIT_OK;
}

int cmd_endpoint_enable(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)c;
    return set_enabled(s, args[0], true);
}

int cmd_endpoint_disable(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)c;
    return set_enabled(s, args[0], false);
}

int cmd_endpoint_rm(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)c;
    ep_find f;
    int rc = ctl_find_endpoint(s, args[0], &f);
    ctl_ep_copy_free(&f.e);
    if (rc != EXIT_OK)
        return rc;
    int src = s->ops->endpoint_delete(s, args[0]);
    if (src != WH_OK)
        return ctl_store_fail(src, "store");
    printf("removed %s\n", args[0]);
    return EXIT_OK;
}

int cmd_endpoint_rotate(wh__store *s, const cmdline *c, const char *const *args)
{
    /* the meaning of wh_endpoint_rotate_secret's grace_s: 0 is the default 24 h, -1 none */
    int64_t grace_ms = 86400000;
    int rc;
    if (c->set[O_GRACE]) {
        const char *g = c->val[O_GRACE];
        if (strcmp(g, "-1") == 0 || strcmp(g, "none") == 0)
            grace_ms = 0;
        else if ((rc = ctl_parse_duration(O_GRACE, g, &grace_ms)) != EXIT_OK)
            return rc;
        else if (grace_ms == 0)
            grace_ms = 86400000;
    }
    char generated[128];
    const char *secret = c->val[O_SECRET];
    if (!secret) {
        if (wh__secret_generate(generated, sizeof generated) != WH_OK)
            return ctl_fail("secret: could not generate one");
        secret = generated;
    }
    unsigned char key[WH__SECRET_KEY_MAX];
    size_t key_len;
    const char *problem = wh__secret_decode(secret, key, &key_len);
    explicit_bzero(key, sizeof key);
    if (problem)
        return ctl_fail("secret: %s", problem);
    int64_t now = wh__wall_ms(), until = grace_ms > 0 ? now + grace_ms : 0;
    wh__endpoint_change ch = {.kind = WH__EP_ROTATE, .secret = secret, .old_until_ms = until,
                              .now_ms = now};
    int src = change_row(s, args[0], &ch);
    if (src == WH_ERR_NOTFOUND)
        rc = ctl_fail("no endpoint \"%s\"", args[0]);
    else if (src != WH_OK)
        rc = ctl_store_fail(src, "store");
    else {
        char when[32];
        ctl_format_time(until, when);
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
        return ctl_fail("%s", wh_last_error());
    wh__endpoint_change ch = {.kind = WH__EP_SETTING, .setting_key = key, .setting_value = value};
    int rc = change_row(s, id, &ch);
    if (rc == WH_ERR_NOTFOUND)
        return ctl_fail("no endpoint \"%s\"", id);
    if (rc == WH_ERR_INVALID) /* what depends on the stored settings (how many headers) */
        return ctl_fail("%s", wh_last_error());
    if (rc != WH_OK)
        return ctl_store_fail(rc, "store");
    if (!value)
        printf("%s of %s: the default again\n", key, id);
    else if (wh__ep_setting_is_header(key))
        printf("%s of %s: set\n", key, id);
    else
        printf("%s of %s: %s\n", key, id, value);
    return EXIT_OK;
}

int cmd_endpoint_set(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)c;
    return change_setting(s, args[0], args[1], args[2]);
}

int cmd_endpoint_unset(wh__store *s, const cmdline *c, const char *const *args)
{
    (void)c;
    return change_setting(s, args[0], args[1], NULL);
}

