/* The SSRF guard: private, loopback and similar addresses are refused after DNS,
 * in every spelling, unless the conf allows them; a refusal is SKIPPED, not retried. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "support.h"

static bool allowed(const wh__netguard *g, const char *addr, char *why)
{
    struct sockaddr_storage ss = {0};
    if (strchr(addr, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        ck_assert_int_eq(inet_pton(AF_INET6, addr, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        ck_assert_int_eq(inet_pton(AF_INET, addr, &in->sin_addr), 1);
    }
    return wh__netguard_allows(g, (struct sockaddr *)&ss, why, 160);
}

static const char *const refused[] = {
    "127.0.0.1", "127.0.0.2", "10.0.0.5", "10.255.255.255", "172.16.0.1", "172.31.255.254",
    "192.168.1.1", "100.64.0.1", "100.127.255.255", "169.254.169.254", "0.0.0.0", "224.0.0.1",
    "255.255.255.255", "::1", "::", "fc00::1", "fd12:3456::1", "fe80::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1", "::10.0.0.1",
    "64:ff9b::a00:1", "64:ff9b:1::1", "::ffff:0:7f00:1", "2002:7f00:1::1", "2002:a00:1::",
    "2001:0:4136:e378::1", "100::1",
};
static const char *const public_ones[] = {
    "93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "11.0.0.1", "2606:4700::1111",
    "::ffff:8.8.8.8", "192.169.0.1", "2002:808:808::1",
};

START_TEST(private_ranges_are_refused_and_public_allowed)
{
    char err[256], why[160];
    wh__netguard *g = wh__netguard_new(false, "", err, sizeof err);
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        ck_assert_msg(!allowed(g, refused[i], why), "%s should be refused", refused[i]);
        ck_assert_ptr_nonnull(strstr(why, "security.allow_cidrs"));
    }
    ck_assert(!allowed(g, "10.0.0.5", why));
    ck_assert_str_eq(why, "blocked: 10.0.0.5 is a private address; see security.allow_cidrs");
    for (size_t i = 0; i < sizeof public_ones / sizeof public_ones[0]; i++)
        ck_assert_msg(allowed(g, public_ones[i], why), "%s should be allowed", public_ones[i]);
    wh__netguard_free(g);
}
END_TEST

START_TEST(allow_cidrs_opens_only_the_listed_ranges)
{
    char err[256], why[160];
    wh__netguard *g = wh__netguard_new(false, "127.0.0.1/32,10.1.0.0/16,fd00::/8", err, sizeof err);
    ck_assert_ptr_nonnull(g);
    ck_assert(allowed(g, "127.0.0.1", why));
    ck_assert(allowed(g, "::ffff:127.0.0.1", why)); /* the same address, mapped */
    ck_assert(!allowed(g, "127.0.0.2", why));
    ck_assert(allowed(g, "10.1.200.3", why));
    ck_assert(!allowed(g, "10.2.0.1", why));
    ck_assert(allowed(g, "fd12::1", why));
    ck_assert(!allowed(g, "fc12::1", why));
    ck_assert(!allowed(g, "169.254.169.254", why));
    wh__netguard_free(g);
    g = wh__netguard_new(true, "", err, sizeof err);
    ck_assert(allowed(g, "169.254.169.254", why));
    wh__netguard_free(g);
}
END_TEST

START_TEST(bad_cidr_lists_are_refused_by_conf)
{
    wh_conf *c = wh_conf_new();
    char err[256];
    const char *bad[] = {"127.0.0.1/33", "10.0.0.0/", "nonsense", "::1/129", "1.2.3.4,,", "10.0.0.0/-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", bad[i], err, sizeof err), WH_ERR_INVALID);
        ck_assert_ptr_nonnull(strstr(err, "security.allow_cidrs"));
    }
    ck_assert_str_eq(wh_conf_get(c, "security.allow_cidrs"), "");
    ck_assert_int_eq(wh_conf_set(c, "security.allow_private", "yes", err, sizeof err), WH_ERR_INVALID);
    ck_assert_int_eq(wh_conf_set(c, "security.allow_private", "true", err, sizeof err), WH_OK);
    wh_conf_destroy(c);
}
END_TEST

typedef struct {
    int outcome, http_status, attempt;
    char error[256];
    int n;
} last_attempt;

static void keep_first(void *ud, const wh_attempt *a)
{
    last_attempt *l = ud;
    if (l->n++)
        return; /* later ones are wh_destroy's report of what was still pending */
    l->outcome = a->outcome;
    l->http_status = a->http_status;
    l->attempt = a->attempt;
    snprintf(l->error, sizeof l->error, "%s", a->error ? a->error : "");
}

/* Delivers one event to url (the receiver's port spliced in) with the given guard settings. */
static void deliver(const char *url_fmt, int port, const char *key, const char *value, last_attempt *out)
{
    wh_conf *c = wh_conf_new();
    char err[256], url[160];
    if (key)
        ck_assert_int_eq(wh_conf_set(c, key, value, err, sizeof err), WH_OK);
    wh_conf_set(c, "http.connect_timeout_ms", "2000", err, sizeof err);
    memset(out, 0, sizeof *out);
    wh_conf_add_log_sink(c, &(wh_log_sink){.write = keep_first, .ud = out});
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_ptr_nonnull(ctx);
    snprintf(url, sizeof url, url_fmt, port);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url}, NULL), WH_OK);
    ck_assert_int_eq(wh_emit(ctx, &(wh_event){.event_type = "workflow_run.started", .run_id = "r", .status = "started"}, NULL), 1);
    ck_assert_int_eq(wh_flush(ctx, 5000), WH_OK);
    wh_stats_info st;
    wh_stats(ctx, &st);
    ck_assert_uint_eq(st.pending, 0 + (out->outcome == WH_OUTCOME_RETRYING));
    wh_destroy(ctx);
}

static const char *const loopback_spellings[] = {
    "http://localhost:%d/x", "http://127.0.0.1:%d/x", "http://0x7f.1:%d/x",
    "http://2130706433:%d/x", "http://[::ffff:127.0.0.1]:%d/x", "http://0177.0.0.1:%d/x",
};

START_TEST(loopback_in_any_spelling_is_skipped_by_default_and_delivered_when_allowed)
{
    rcv *r = rcv_start();
    const char *fmt = loopback_spellings[_i];
    last_attempt a;
    deliver(fmt, rcv_port(r), NULL, NULL, &a);
    ck_assert_int_eq(a.n, 1); /* one attempt, nothing left pending: not retried in a loop */
    ck_assert_int_eq(a.outcome, WH_OUTCOME_SKIPPED);
    ck_assert_msg(strstr(a.error, "blocked: ") && strstr(a.error, "loopback address; see security.allow_cidrs"), "%s", a.error);
    ck_assert_uint_eq(rcv_count(r, NULL), 0);
    deliver(fmt, rcv_port(r), "security.allow_cidrs", "127.0.0.1/32", &a);
    ck_assert_msg(a.outcome == WH_OUTCOME_DELIVERED, "%s: %s", fmt, a.error);
    deliver(fmt, rcv_port(r), "security.allow_private", "true", &a);
    ck_assert_int_eq(a.outcome, WH_OUTCOME_DELIVERED);
    ck_assert_uint_eq(rcv_count(r, NULL), 2);
    rcv_stop(r);
}
END_TEST

START_TEST(other_loopback_addresses_pass_the_guard_only_when_allowed)
{
    /* nothing listens there: allowed, the attempt reaches the network and is refused by it */
    int port = closed_port();
    const char *urls[] = {"http://127.0.0.2:%d/x", "http://[::1]:%d/x"};
    for (size_t i = 0; i < 2; i++) {
        last_attempt a;
        deliver(urls[i], port, NULL, NULL, &a);
        ck_assert_int_eq(a.outcome, WH_OUTCOME_SKIPPED);
        ck_assert_ptr_nonnull(strstr(a.error, "blocked: "));
        deliver(urls[i], port, "security.allow_private", "true", &a);
        ck_assert_msg(a.outcome == WH_OUTCOME_RETRYING, "%s: %d %s", urls[i], a.outcome, a.error);
        ck_assert_ptr_null(strstr(a.error, "blocked"));
    }
}
END_TEST

/* A name with one refused and one allowed address: the allowed one was tried and refused the
 * connection, so the attempt failed on the network, not on the guard; it is retried. */
START_TEST(a_name_with_an_allowed_address_is_retried_not_skipped)
{
    int port = closed_port();
    last_attempt a;
    deliver("http://localhost:%d/x", port, "security.allow_cidrs", "127.0.0.1/32", &a);
    ck_assert_msg(a.outcome == WH_OUTCOME_RETRYING, "%d %s", a.outcome, a.error);
    ck_assert_msg(!strstr(a.error, "blocked"), "%s", a.error);
    /* the same name with every address refused is still skipped */
    deliver("http://localhost:%d/x", port, NULL, NULL, &a);
    ck_assert_int_eq(a.outcome, WH_OUTCOME_SKIPPED);
    ck_assert_ptr_nonnull(strstr(a.error, "blocked: "));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("netguard");
    TCase *tc = tcase_create("netguard");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, private_ranges_are_refused_and_public_allowed);
    tcase_add_test(tc, allow_cidrs_opens_only_the_listed_ranges);
    tcase_add_test(tc, bad_cidr_lists_are_refused_by_conf);
    tcase_add_loop_test(tc, loopback_in_any_spelling_is_skipped_by_default_and_delivered_when_allowed, 0,
                        sizeof loopback_spellings / sizeof loopback_spellings[0]);
    tcase_add_test(tc, other_loopback_addresses_pass_the_guard_only_when_allowed);
    tcase_add_test(tc, a_name_with_an_allowed_address_is_retried_not_skipped);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
