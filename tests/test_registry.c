/* Endpoint registry: validation, read-back, matching by type, the type index. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "support.h"

static wh_ctx *new_ctx(void)
{
    char err[256];
    wh_ctx *ctx = wh_new(NULL, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

static void count_cb(void *ud, const wh_endpoint_info *ep)
{
    (void)ep;
    (*(int *)ud)++;
}

typedef struct {
    char url[256], secret[128], types[512], reason[128];
    int enabled, has_reason;
} info_copy;

static void copy_cb(void *ud, const wh_endpoint_info *ep)
{
    info_copy *c = ud;
    snprintf(c->url, sizeof c->url, "%s", ep->url);
    snprintf(c->secret, sizeof c->secret, "%s", ep->secret);
    c->types[0] = '\0';
    for (const char *const *t = ep->event_types; *t; t++) {
        strcat(c->types, *t);
        strcat(c->types, ";");
    }
    c->enabled = ep->enabled;
    c->has_reason = ep->disabled_reason != NULL;
}

START_TEST(add_reads_back)
{
    wh_ctx *ctx = new_ctx();
    const char *types[] = {"workflow_run.*", "task_run.completed", NULL};
    char id[WH_ID_MAX];
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "https://ops.example.com/hooks",
                                                               .event_types = types,
                                                               .secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                                               .description = "ops"},
                                     id),
                     WH_OK);
    ck_assert_int_eq(strncmp(id, "ep_", 3), 0);
    info_copy c = {0};
    ck_assert_int_eq(wh_endpoint_get(ctx, id, copy_cb, &c), WH_OK);
    ck_assert_str_eq(c.url, "https://ops.example.com/hooks");
    ck_assert_str_eq(c.secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    ck_assert_str_eq(c.types, "workflow_run.*;task_run.completed;");
    ck_assert_int_eq(c.enabled, 1);
    wh_destroy(ctx);
}
END_TEST

START_TEST(defaults_generate_secret_and_subscribe_all)
{
    wh_ctx *ctx = new_ctx();
    char a[WH_ID_MAX], b[WH_ID_MAX];
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "http://h/a"}, a), WH_OK);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "http://h/b", .disabled = 1}, b), WH_OK);
    ck_assert_str_ne(a, b);
    info_copy ca = {0}, cb = {0};
    wh_endpoint_get(ctx, a, copy_cb, &ca);
    wh_endpoint_get(ctx, b, copy_cb, &cb);
    ck_assert_int_eq(strncmp(ca.secret, "whsec_", 6), 0);
    ck_assert_str_ne(ca.secret, cb.secret);
    ck_assert_str_eq(ca.types, "*;");
    ck_assert_int_eq(cb.enabled, 0);
    int n = 0;
    ck_assert_int_eq(wh_endpoint_list(ctx, count_cb, &n), 2);
    ck_assert_int_eq(n, 2);
    wh_destroy(ctx);
}
END_TEST

static const struct {
    const char *url, *field;
} bad_urls[] = {
    {"", "url"},
    {"ftp://example.com/x", "url"},
    {"file:///etc/passwd", "url"},
    {"http://user:pw@example.com/", "url"},
    {"http://example.com/#frag", "url"},
    {"http://example.com/a\r\nX-Evil: 1", "url"},
    {"http://example.com/a b", "url"},
    {"http://", "url"},
    {"example.com/hook", "url"},
    {"https:///path", "url"},
};

START_TEST(bad_url_is_refused_and_nothing_added)
{
    wh_ctx *ctx = new_ctx();
    char id[WH_ID_MAX] = "untouched";
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = bad_urls[_i].url}, id), WH_ERR_INVALID);
    ck_assert_msg(strncmp(wh_last_error(), "url:", 4) == 0, "message: %s", wh_last_error());
    ck_assert_str_eq(id, "untouched");
    ck_assert_int_eq(wh_endpoint_list(ctx, NULL, NULL), 0);
    wh_destroy(ctx);
}
END_TEST

START_TEST(bad_fields_are_named)
{
    wh_ctx *ctx = new_ctx();
    char id[WH_ID_MAX];
    ck_assert_int_eq(wh_endpoint_add(ctx, NULL, id), WH_ERR_INVALID);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = NULL}, id), WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "url"));
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "http://h/", .secret = "nope"}, id), WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "secret"));
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "http://h/", .secret = "whsec_AAAA"}, id), WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "secret"));
    const char *unknown[] = {"task_run.exploded", NULL};
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "http://h/", .event_types = unknown}, id), WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "task_run.exploded"));
    const char *noprefix[] = {"billing.*", NULL};
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "http://h/", .event_types = noprefix}, id), WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "billing.*"));
    const char *empty[] = {NULL};
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "http://h/", .event_types = empty}, id), WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "event_types"));
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "http://h/", .description = "a\nb"}, id), WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "description"));
    ck_assert_int_eq(wh_endpoint_list(ctx, NULL, NULL), 0);
    wh_destroy(ctx);
}
END_TEST

START_TEST(remove_enable_rotate)
{
    wh_ctx *ctx = new_ctx();
    char id[WH_ID_MAX];
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = "http://h/"}, id), WH_OK);
    info_copy before = {0}, after = {0};
    wh_endpoint_get(ctx, id, copy_cb, &before);
    ck_assert_int_eq(wh_endpoint_rotate_secret(ctx, id, NULL, 60), WH_OK);
    wh_endpoint_get(ctx, id, copy_cb, &after);
    ck_assert_str_ne(before.secret, after.secret);
    ck_assert_int_eq(wh_endpoint_rotate_secret(ctx, id, "bad", 60), WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "secret"));
    info_copy still = {0};
    wh_endpoint_get(ctx, id, copy_cb, &still);
    ck_assert_str_eq(still.secret, after.secret);

    ck_assert_int_eq(wh_endpoint_set_enabled(ctx, id, 0), WH_OK);
    wh_endpoint_get(ctx, id, copy_cb, &still);
    ck_assert_int_eq(still.enabled, 0);
    ck_assert_int_eq(wh_endpoint_set_enabled(ctx, id, 1), WH_OK);
    wh_endpoint_get(ctx, id, copy_cb, &still);
    ck_assert_int_eq(still.enabled, 1);

    ck_assert_int_eq(wh_endpoint_remove(ctx, id), WH_OK);
    ck_assert_int_eq(wh_endpoint_remove(ctx, id), WH_ERR_NOTFOUND);
    ck_assert_int_eq(wh_endpoint_get(ctx, id, copy_cb, &still), WH_ERR_NOTFOUND);
    ck_assert_int_eq(wh_endpoint_set_enabled(ctx, id, 1), WH_ERR_NOTFOUND);
    ck_assert_int_eq(wh_endpoint_set_enabled(ctx, NULL, 1), WH_ERR_INVALID);
    char overlong[100];
    memset(overlong, 'x', sizeof overlong - 1);
    overlong[sizeof overlong - 1] = '\0';
    ck_assert_int_eq(wh_endpoint_get(ctx, overlong, copy_cb, &still), WH_ERR_INVALID);
    ck_assert_int_eq(strncmp(wh_last_error(), "id:", 3), 0);
    ck_assert_int_eq(wh_endpoint_remove(ctx, overlong), WH_ERR_INVALID);
    ck_assert_int_eq(wh_endpoint_remove(ctx, ""), WH_ERR_INVALID);
    ck_assert_int_eq(wh_endpoint_list(ctx, NULL, NULL), 0);
    wh_destroy(ctx);
}
END_TEST

static const char *const known[] = {"workflow_run.started", "workflow_run.completed",
                                    "task_run.started", "task_run.completed", "task_run.cancelled",
                                    NULL};

static wh__endpoint *add_internal(wh__registry *r, const char *url, const char *const *types)
{
    char err[256];
    wh__endpoint *ep = wh__endpoint_build(r, &(wh_endpoint_spec){.url = url, .event_types = types}, NULL, err, sizeof err);
    ck_assert_msg(ep != NULL, "%s", err);
    ck_assert_int_eq(wh__registry_add(r, ep), WH_OK);
    return ep;
}

START_TEST(matching_exact_prefix_and_star)
{
    wh__registry *r = wh__registry_new(known);
    const char *exact[] = {"task_run.completed", NULL};
    const char *prefix[] = {"workflow_run.*", NULL};
    const char *star[] = {"*", NULL};
    const char *both[] = {"task_run.*", "task_run.completed", NULL}; /* overlapping: once */
    wh__endpoint *e1 = add_internal(r, "http://h/1", exact);
    wh__endpoint *e2 = add_internal(r, "http://h/2", prefix);
    wh__endpoint *e3 = add_internal(r, "http://h/3", star);
    wh__endpoint *e4 = add_internal(r, "http://h/4", both);
    size_t n;
    wh__endpoint *const *m = wh__registry_match(r, wh__registry_type_index(r, "task_run.completed"), &n);
    ck_assert_uint_eq(n, 3);
    bool seen1 = false, seen3 = false, seen4 = false;
    for (size_t i = 0; i < n; i++) {
        ck_assert_ptr_ne(m[i], e2);
        seen1 |= m[i] == e1, seen3 |= m[i] == e3, seen4 |= m[i] == e4;
    }
    ck_assert(seen1 && seen3 && seen4);
    m = wh__registry_match(r, wh__registry_type_index(r, "workflow_run.started"), &n);
    ck_assert_uint_eq(n, 2);
    m = wh__registry_match(r, wh__registry_type_index(r, "task_run.cancelled"), &n);
    ck_assert_uint_eq(n, 2); /* star and task_run.* */
    ck_assert_int_eq(wh__registry_remove(r, e3->id), WH_OK);
    m = wh__registry_match(r, wh__registry_type_index(r, "task_run.cancelled"), &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_ptr_eq(m[0], e4);
    wh__registry_free(r);
}
END_TEST

START_TEST(index_holds_only_subscribers)
{
    /* 10,000 endpoints on one type: a type nobody wants has an empty list, not a scan */
    wh__registry *r = wh__registry_new(known);
    const char *exact[] = {"task_run.completed", NULL};
    for (int i = 0; i < 10000; i++) {
        char url[64];
        snprintf(url, sizeof url, "http://h/%d", i);
        add_internal(r, url, exact);
    }
    size_t n;
    wh__registry_match(r, wh__registry_type_index(r, "workflow_run.started"), &n);
    ck_assert_uint_eq(n, 0);
    wh__registry_match(r, wh__registry_type_index(r, "task_run.completed"), &n);
    ck_assert_uint_eq(n, 10000);
    ck_assert_uint_eq(wh__registry_count(r), 10000);
    /* ids are unique and every one is found through the hash */
    for (size_t i = 0; i < wh__registry_count(r); i++)
        ck_assert_ptr_eq(wh__registry_find(r, wh__registry_at(r, i)->id), wh__registry_at(r, i));
    wh__registry_free(r);
}
END_TEST

/* The stored list of old secrets: read as far as it is well formed, written back as read,
 * and the rules of a rotation. */
START_TEST(stored_old_secrets_read_write_and_rotate)
{
    const char *a = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", *b = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
               *c = "whsec_dGhpcyBpcyBhIHRoaXJkIHRlc3Qgc2VjcmV0IQ==";
    char text[1024], list[WH__OLD_SECRETS_TEXT_MAX], want[512];
    wh__old_secret v[WH__MAX_OLD_KEYS];
    /* an entry without a time, with a bad time, with a ':' in the secret, or twice: skipped */
    snprintf(text, sizeof text, "200:%s,junk,:%s,x1:%s,300:%s,,400:%s,150:whsec_a:b", b, c, c, a, b);
    size_t n = wh__old_secrets_read(text, NULL, 0, v);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(v[0].secret, b);
    ck_assert_int_eq(v[0].until_ms, 200);
    ck_assert_str_eq(v[1].secret, a);
    ck_assert_int_eq(v[1].until_ms, 300);
    wh__old_secrets_write(v, n, list);
    snprintf(want, sizeof want, "200:%s,300:%s", b, a);
    ck_assert_str_eq(list, want);
    wh__old_secrets_write(v, 0, text);
    ck_assert_str_eq(text, "");

    /* the one column an older library writes: the newest entry unless listed or ended */
    ck_assert_uint_eq(wh__old_secrets_read(list, c, 500, v), 3);
    ck_assert_str_eq(v[0].secret, c);
    ck_assert_int_eq(v[0].until_ms, 500);
    ck_assert_uint_eq(wh__old_secrets_read(list, b, 999, v), 2);
    ck_assert_int_eq(v[0].until_ms, 200);
    ck_assert_uint_eq(wh__old_secrets_read(list, c, 0, v), 2);

    /* at 250, replacing c with a: b's grace has ended, a signs as the current one */
    n = wh__old_secrets_rotate(v, wh__old_secrets_read(list, NULL, 0, v), c, 1000, a, 250);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(v[0].secret, c);
    ck_assert_int_eq(v[0].until_ms, 1000);
    /* no grace: the replaced secret stops, the earlier ones keep their own graces */
    n = wh__old_secrets_rotate(v, wh__old_secrets_read(list, NULL, 0, v), c, 0, "whsec_dGhpcyBzZWNyZXQgaXMgbmV3IGFuZCB1bnVzZWQ=", 100);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(v[0].secret, b);

    /* full: the entry whose grace ends first makes room; the replaced secret always gets one */
    char secrets[WH__MAX_OLD_KEYS + 1][128];
    n = 0;
    for (int i = 0; i < WH__MAX_OLD_KEYS + 1; i++)
        ck_assert_int_eq(wh__secret_generate(secrets[i], sizeof secrets[i]), WH_OK);
    for (int i = 0; i < WH__MAX_OLD_KEYS; i++)
        n = wh__old_secrets_rotate(v, n, secrets[i], 5000 - i, secrets[i + 1], 1);
    ck_assert_uint_eq(n, WH__MAX_OLD_KEYS);
    n = wh__old_secrets_rotate(v, n, secrets[WH__MAX_OLD_KEYS], 10, c, 1);
    ck_assert_uint_eq(n, WH__MAX_OLD_KEYS);
    ck_assert_str_eq(v[0].secret, secrets[WH__MAX_OLD_KEYS]);
    for (size_t i = 1; i < n; i++) /* secrets[7] ended first (at 4993) and went */
        ck_assert_str_eq(v[i].secret, secrets[WH__MAX_OLD_KEYS - 1 - i]);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("registry");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, add_reads_back);
    tcase_add_test(tc, defaults_generate_secret_and_subscribe_all);
    tcase_add_loop_test(tc, bad_url_is_refused_and_nothing_added, 0, sizeof bad_urls / sizeof bad_urls[0]);
    tcase_add_test(tc, bad_fields_are_named);
    tcase_add_test(tc, remove_enable_rotate);
    tcase_add_test(tc, matching_exact_prefix_and_star);
    tcase_add_test(tc, index_holds_only_subscribers);
    tcase_add_test(tc, stored_old_secrets_read_write_and_rotate);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
