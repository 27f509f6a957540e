/* The loop a careful engineer would write on libcurl alone, as the floor libwebhook is measured
 * against: N keep-alive easy handles on one multi handle, curl_multi_perform + curl_multi_wait,
 * and per request what libwebhook does per delivery: a fresh id, the JSON body, an HMAC-SHA256
 * signature over "id.timestamp.body" in base64 and a new header list. No store, no scheduler,
 * no log. curl_multi_wait, not curl_multi_poll: with libcurl 7.88 a handle re-added after its
 * transfer waited out curl_multi_poll's whole timeout whenever no socket was ready. */
#include "bare_curl.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct {
    CURL *easy;
    struct curl_slist *headers;
    char *body;
} slot;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* Fills the slot's easy handle with request i. */
static bool prepare(const bare_curl_spec *spec, slot *s, long i)
{
    char id[64];
    spec->new_id(id);
    s->body = spec->body(i, id);
    if (!s->body)
        return false;
    size_t body_len = strlen(s->body);
    long long ts = (long long)time(NULL);
    char prefix[128];
    int pl = snprintf(prefix, sizeof prefix, "%s.%lld.", id, ts);
    char *msg = malloc((size_t)pl + body_len);
    if (!msg)
        return false;
    memcpy(msg, prefix, (size_t)pl);
    memcpy(msg + pl, s->body, body_len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    bool ok = HMAC(EVP_sha256(), spec->key, (int)spec->key_len, (unsigned char *)msg,
                   (size_t)pl + body_len, mac, &mac_len) != NULL;
    free(msg);
    if (!ok)
        return false;
    char b64[96], h_id[96], h_ts[64], h_sig[128], h_ua[96];
    EVP_EncodeBlock((unsigned char *)b64, mac, (int)mac_len);
    snprintf(h_id, sizeof h_id, "webhook-id: %s", id);
    snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %lld", ts);
    snprintf(h_sig, sizeof h_sig, "webhook-signature: v1,%s", b64);
    snprintf(h_ua, sizeof h_ua, "User-Agent: %s", spec->user_agent);
    struct curl_slist *hs = curl_slist_append(NULL, "Content-Type: application/json");
    hs = curl_slist_append(hs, h_ua);
    hs = curl_slist_append(hs, h_id);
    hs = curl_slist_append(hs, h_ts);
    hs = curl_slist_append(hs, h_sig);
    hs = curl_slist_append(hs, "Expect:");
    if (!hs)
        return false;
    s->headers = hs;
    curl_easy_setopt(s->easy, CURLOPT_URL, spec->url);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, hs);
    return true;
}

static void release(slot *s)
{
    curl_slist_free_all(s->headers);
    s->headers = NULL;
    free(s->body);
    s->body = NULL;
}

int bare_curl_run(const bare_curl_spec *spec, bare_curl_result *out, char *why, size_t why_len)
{
    int n = spec->connections;
    CURLM *m = curl_multi_init();
    slot *slots = calloc((size_t)n, sizeof *slots);
    int rc = -1;
    long started = 0, ok = 0, failed = 0;
    if (!m || !slots) {
        snprintf(why, why_len, "bare libcurl: out of memory");
        goto out;
    }
    for (int k = 0; k < n; k++) {
        slots[k].easy = curl_easy_init();
        if (!slots[k].easy) {
            snprintf(why, why_len, "bare libcurl: curl_easy_init failed");
            goto out;
        }
        curl_easy_setopt(slots[k].easy, CURLOPT_PRIVATE, &slots[k]);
        curl_easy_setopt(slots[k].easy, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(slots[k].easy, CURLOPT_TIMEOUT_MS, 15000L);
        curl_easy_setopt(slots[k].easy, CURLOPT_NOSIGNAL, 1L);
    }
    double t0 = now_s(), c0 = cpu_s();
    for (int k = 0; k < n && started < spec->requests; k++, started++) {
        if (!prepare(spec, &slots[k], started) || curl_multi_add_handle(m, slots[k].easy) != CURLM_OK) {
            snprintf(why, why_len, "bare libcurl: could not start a request");
            goto out;
        }
    }
    /* bounded: every request ends within its 15 s timeout */
    while (ok + failed < spec->requests) {
        int running = 0;
        if (curl_multi_perform(m, &running) != CURLM_OK ||
            curl_multi_wait(m, NULL, 0, 1000, NULL) != CURLM_OK) {
            snprintf(why, why_len, "bare libcurl: the multi handle failed");
            goto out;
        }
        /* finished handles go back in only after the message queue is drained */
        CURL *done[64];
        int n_done = 0;
        CURLMsg *msg;
        int left;
        while (n_done < 64 && (msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *e = msg->easy_handle;
            long status = 0;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
            if (msg->data.result == CURLE_OK && status >= 200 && status < 300)
                ok++;
            else
                failed++;
            done[n_done++] = e;
        }
        for (int k = 0; k < n_done; k++) {
            slot *s;
            curl_easy_getinfo(done[k], CURLINFO_PRIVATE, (char **)&s);
            curl_multi_remove_handle(m, done[k]);
            release(s);
            if (started < spec->requests) {
                if (!prepare(spec, s, started) || curl_multi_add_handle(m, done[k]) != CURLM_OK) {
                    snprintf(why, why_len, "bare libcurl: could not start a request");
                    goto out;
                }
                started++;
            }
        }
    }
    double secs = now_s() - t0, cpu = cpu_s() - c0;
    if (failed) {
        snprintf(why, why_len, "bare libcurl: %ld of %ld requests failed", failed, spec->requests);
        goto out;
    }
    out->rps = (double)ok / secs;
    out->cpu_us = cpu / (double)ok * 1e6;
    rc = 0;
out:
    for (int k = 0; slots && k < n; k++) {
        if (slots[k].easy) {
            curl_multi_remove_handle(m, slots[k].easy);
            curl_easy_cleanup(slots[k].easy);
        }
        release(&slots[k]);
    }
    free(slots);
    if (m)
        curl_multi_cleanup(m);
    return rc;
}
