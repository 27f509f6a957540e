/* https endpoints: the certificate chain and the host name are always verified, and
 * TLS 1.2 is the minimum. The test makes its own CA and server certificates with
 * OpenSSL, serves them from a libmicrohttpd TLS receiver on 127.0.0.1, and checks
 * that delivery works only with tls.ca_file naming that CA and the right host name. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "pki.h"
#include "support.h"
#include "webhook/webhook.h"

/* ---- certificates ------------------------------------------------------------ */

typedef pki_cred cred;

static cred make_cred(const char *cn, const cred *issuer, const char *san)
{
    cred c;
    ck_assert_msg(pki_make(&c, cn, issuer, san) == 0, "certificate for %s", cn);
    return c;
}

static void cred_free(cred *c) { pki_free(c); }

static char *cert_pem(const cred *c)
{
    char *s = pki_cert_pem(c);
    ck_assert_ptr_nonnull(s);
    return s;
}

static char *key_pem(const cred *c)
{
    char *s = pki_key_pem(c);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* The test's CA, a server certificate for 127.0.0.1/localhost, one for other.example. */
static cred ca, good, other;
static char ca_file[64];

static void setup_pki(void)
{
    ca = make_cred("libwebhook test CA", NULL, NULL);
    good = make_cred("localhost", &ca, "DNS:localhost,IP:127.0.0.1");
    other = make_cred("other.example", &ca, "DNS:other.example");
    snprintf(ca_file, sizeof ca_file, "/tmp/wh-tls-ca-XXXXXX");
    int fd = mkstemp(ca_file);
    ck_assert_int_ge(fd, 0);
    char *pem = cert_pem(&ca);
    ck_assert_int_eq(write(fd, pem, strlen(pem)), (ssize_t)strlen(pem));
    close(fd);
    free(pem);
}

static void teardown_pki(void)
{
    unlink(ca_file);
    cred_free(&ca);
    cred_free(&good);
    cred_free(&other);
}

/* ---- a TLS receiver ------------------------------------------------------------ */

typedef struct {
    struct MHD_Daemon *d;
    int port;
    int requests; /* atomic */
    char *cert, *key;
} tls_rcv;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls)
{
    (void)url, (void)method, (void)version, (void)data;
    tls_rcv *r = cls;
    if (!*con_cls) { /* headers only: wait for the body */
        *con_cls = r;
        return MHD_YES;
    }
    if (*size) {
        *size = 0;
        return MHD_YES;
    }
    __atomic_add_fetch(&r->requests, 1, __ATOMIC_SEQ_CST);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(c, 204, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* priorities: a GnuTLS priority string, or NULL for the defaults. */
static tls_rcv *tls_start(const cred *server, const char *priorities)
{
    ck_assert_msg(MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES, "libmicrohttpd without TLS");
    tls_rcv *r = calloc(1, sizeof *r);
    r->cert = cert_pem(server);
    r->key = key_pem(server);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    r->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_USE_POLL, 0, NULL,
                            NULL, on_request, r, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_HTTPS_MEM_KEY, r->key, MHD_OPTION_HTTPS_MEM_CERT, r->cert,
                            MHD_OPTION_HTTPS_PRIORITIES, priorities ? priorities : "NORMAL",
                            MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    ck_assert_msg(r->d != NULL, "MHD TLS daemon did not start");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(r->d, MHD_DAEMON_INFO_BIND_PORT);
    r->port = info ? (int)info->port : 0;
    ck_assert_int_gt(r->port, 0);
    return r;
}

static int tls_requests(tls_rcv *r) { return __atomic_load_n(&r->requests, __ATOMIC_SEQ_CST); }

static void tls_stop(tls_rcv *r)
{
    MHD_stop_daemon(r->d);
    free(r->cert);
    free(r->key);
    free(r);
}

/* ---- delivering one event ------------------------------------------------------- */

typedef struct {
    int n, outcome, http_status;
    char error[512];
} first_attempt;

static void keep_first(void *ud, const wh_attempt *a)
{
    first_attempt *f = ud;
    if (f->n++)
        return; /* later: wh_destroy reporting the retry still pending */
    f->outcome = a->outcome;
    f->http_status = a->http_status;
    snprintf(f->error, sizeof f->error, "%s", a->error ? a->error : "");
}

static int64_t frozen_clock(void *ud) { return *(int64_t *)ud; }

/* Sends one event to url; ca NULL: no tls.ca_file (the system's CAs). */
static void deliver(const char *url, const char *ca_path, first_attempt *out)
{
    static int64_t now_ms;
    now_ms = (int64_t)time(NULL) * 1000; /* frozen: the retry never comes due */
    char err[256];
    wh_conf *c = wh_conf_new();
    /* the receiver is on loopback, which the address guard refuses by default */
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "http.timeout_ms", "10000", err, sizeof err), WH_OK);
    if (ca_path)
        ck_assert_msg(wh_conf_set(c, "tls.ca_file", ca_path, err, sizeof err) == WH_OK, "%s", err);
    memset(out, 0, sizeof *out);
    wh_conf_add_log_sink(c, &(wh_log_sink){.write = keep_first, .ud = out});
    wh_conf_set_clock(c, frozen_clock, &now_ms);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    ck_assert_int_eq(wh_endpoint_add(ctx, &(wh_endpoint_spec){.url = url}, NULL), WH_OK);
    ck_assert_int_eq(wh_emit(ctx, &(wh_event){.event_type = "workflow_run.started", .run_id = "run_1",
                                              .status = "started"}, NULL), 1);
    ck_assert_int_eq(wh_flush(ctx, 20000), WH_OK);
    ck_assert_int_eq(out->n, 1);
    wh_stats_info st;
    wh_stats(ctx, &st);
    /* a failed attempt is retried later, not dropped */
    ck_assert_uint_eq(st.pending, out->outcome == WH_OUTCOME_RETRYING ? 1 : 0);
    ck_assert_uint_eq(st.in_flight, 0);
    wh_destroy(ctx);
}

static void url_for(char *buf, size_t len, const char *host, int port)
{
    snprintf(buf, len, "https://%s:%d/hook", host, port);
}

START_TEST(ca_file_makes_delivery_verify)
{
    tls_rcv *r = tls_start(&good, NULL);
    char url[128];
    first_attempt a;
    const char *hosts[] = {"127.0.0.1", "localhost"};
    for (int i = 0; i < 2; i++) {
        url_for(url, sizeof url, hosts[i], r->port);
        deliver(url, ca_file, &a);
        ck_assert_msg(a.outcome == WH_OUTCOME_DELIVERED, "%s: %s", url, a.error);
        ck_assert_int_eq(a.http_status, 204);
    }
    ck_assert_int_eq(tls_requests(r), 2);
    tls_stop(r);
}
END_TEST

START_TEST(unknown_ca_is_refused_and_retried)
{
    tls_rcv *r = tls_start(&good, NULL);
    char url[128];
    url_for(url, sizeof url, "127.0.0.1", r->port);
    first_attempt a;
    deliver(url, NULL, &a);
    ck_assert_int_eq(a.outcome, WH_OUTCOME_RETRYING);
    ck_assert_int_eq(a.http_status, 0);
    ck_assert_msg(strstr(a.error, "certificate"), "%s", a.error);
    ck_assert_int_eq(tls_requests(r), 0); /* nothing was sent to an unverified peer */
    tls_stop(r);
}
END_TEST

START_TEST(wrong_host_name_is_refused_and_retried)
{
    /* signed by the trusted CA, but only for other.example */
    tls_rcv *r = tls_start(&other, NULL);
    char url[128];
    const char *hosts[] = {"localhost", "127.0.0.1"};
    for (int i = 0; i < 2; i++) {
        url_for(url, sizeof url, hosts[i], r->port);
        first_attempt a;
        deliver(url, ca_file, &a);
        ck_assert_int_eq(a.outcome, WH_OUTCOME_RETRYING);
        ck_assert_int_eq(a.http_status, 0);
        ck_assert_msg(strstr(a.error, "host name"), "%s", a.error);
    }
    ck_assert_int_eq(tls_requests(r), 0);
    tls_stop(r);
}
END_TEST

/* A client that agrees to TLS 1.1 (OpenSSL needs security level 0 for it). */
static long tls11_client_status(const char *url)
{
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, "{}");
    curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)(CURL_SSLVERSION_TLSv1_1 | CURL_SSLVERSION_MAX_TLSv1_1));
    curl_easy_setopt(e, CURLOPT_SSL_CIPHER_LIST, "DEFAULT:@SECLEVEL=0");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    return status;
}

START_TEST(tls_1_1_only_server_is_refused)
{
    tls_rcv *r = tls_start(&good, "NORMAL:-VERS-ALL:+VERS-TLS1.1");
    char url[128];
    url_for(url, sizeof url, "127.0.0.1", r->port);
    /* the server does speak TLS 1.1 to a client that allows it ... */
    ck_assert_int_eq(tls11_client_status(url), 204);
    ck_assert_int_eq(tls_requests(r), 1);
    /* ... and libwebhook, which wants 1.2 or later, refuses it */
    first_attempt a;
    deliver(url, ca_file, &a);
    ck_assert_int_eq(a.outcome, WH_OUTCOME_RETRYING);
    ck_assert_int_eq(a.http_status, 0);
    ck_assert_msg(strstr(a.error, "protocol"), "%s", a.error);
    ck_assert_int_eq(tls_requests(r), 1);
    tls_stop(r);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, setup_pki, teardown_pki);
    tcase_add_test(tc, ca_file_makes_delivery_verify);
    tcase_add_test(tc, unknown_ca_is_refused_and_retried);
    tcase_add_test(tc, wrong_host_name_is_refused_and_retried);
    tcase_add_test(tc, tls_1_1_only_server_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
