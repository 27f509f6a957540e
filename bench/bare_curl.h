/* The bare libcurl loop: what the throughput run's HTTP library can do by itself. */
#ifndef BENCH_BARE_CURL_H
#define BENCH_BARE_CURL_H

#include <stddef.h>

typedef struct {
    /* the JSON body of request i with webhook-id id (malloc'd; the loop frees it) */
    char *(*body)(long i, const char *id);
    /* a fresh webhook-id, at most 63 characters */
    void (*new_id)(char *out);
    const unsigned char *key; /* the HMAC key: the secret's decoded bytes */
    size_t key_len;
    const char *url;
    const char *user_agent;
    int connections; /* easy handles kept alive, all in flight at once */
    long requests;
} bare_curl_spec;

typedef struct {
    double rps;    /* requests answered 2xx per second */
    double cpu_us; /* this process's CPU per request */
} bare_curl_result;

/* Sends spec->requests signed POSTs through one curl multi handle. 0, or -1 with why. */
int bare_curl_run(const bare_curl_spec *spec, bare_curl_result *out, char *why, size_t why_len);

#endif
