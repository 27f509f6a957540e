/* Standard Webhooks v1 signatures: secrets, HMAC-SHA256 signing and verification. */
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

#include "sign.h"
#include "error.h"
#include "util.h"

#define SECRET_PREFIX "whsec_"
#define SECRET_PREFIX_LEN (sizeof SECRET_PREFIX - 1)
#define SECRET_MIN_BYTES 24
#define SECRET_MAX_BYTES WH__SECRET_KEY_MAX
/* base64 text of SECRET_MAX_BYTES, padded: anything longer cannot be a valid secret */
#define SECRET_B64_MAX (((SECRET_MAX_BYTES + 2) / 3) * 4)
_Static_assert(SECRET_PREFIX_LEN + SECRET_B64_MAX < WH__SECRET_TEXT_MAX, "a secret's text fits");
#define SIG_VERSION "v1,"
#define SIG_VERSION_LEN (sizeof SIG_VERSION - 1)
#define HMAC_LEN 32
#define HMAC_B64_LEN 44 /* base64 of 32 bytes, with one '=' */
#define DEFAULT_TOLERANCE_S 300

static bool is_b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

/* Decodes standard, padded base64 (length a multiple of 4, '=' only at the end, at most two)
 * into out, which must hold in_len / 4 * 3 bytes. Returns the number of bytes decoded (the
 * padding not counted), or -1 when the text is not valid base64. */
static long b64_decode(const char *in, size_t in_len, unsigned char *out)
{
    if (in_len == 0 || in_len % 4 != 0 || in_len > INT_MAX)
        return -1;
    size_t pad = 0;
    if (in[in_len - 1] == '=') {
        pad++;
        if (in[in_len - 2] == '=')
            pad++;
    }
    for (size_t i = 0; i < in_len - pad; i++)
        if (!is_b64_char((unsigned char)in[i]))
            return -1;
    /* EVP_DecodeBlock counts each '=' as a zero byte: the real length is raw - pad. */
    size_t raw = in_len / 4 * 3;
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)in_len);
    if (n < 0 || (size_t)n != raw)
        return -1;
    return (long)(raw - pad);
}

const char *wh__secret_decode(const char *secret, unsigned char key[WH__SECRET_KEY_MAX],
                              size_t *key_len)
{
    if (key_len)
        *key_len = 0;
    if (!secret || strncmp(secret, SECRET_PREFIX, SECRET_PREFIX_LEN) != 0)
        return "must start with whsec_";
    const char *b64 = secret + SECRET_PREFIX_LEN;
    /* strnlen: never walk a huge string further than a valid secret could be */
    size_t n = strnlen(b64, SECRET_B64_MAX + 1);
    if (n == 0)
        return "must decode to 24..64 bytes";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)b64[i];
        if (!is_b64_char(c) && !(c == '=' && n <= SECRET_B64_MAX && i + 2 >= n))
            return "is not valid base64";
    }
    if (n > SECRET_B64_MAX) /* looks like base64 so far, but is longer than 64 bytes need */
        return "must decode to 24..64 bytes";
    if (n % 4 != 0)
        return "is not valid base64";
    unsigned char tmp[SECRET_B64_MAX / 4 * 3];
    long got = b64_decode(b64, n, tmp);
    if (got < 0) {
        OPENSSL_cleanse(tmp, sizeof tmp);
        /* a correctly formed text that is merely too long was caught above */
        return "is not valid base64";
    }
    if (got < SECRET_MIN_BYTES || got > SECRET_MAX_BYTES) {
        OPENSSL_cleanse(tmp, sizeof tmp);
        return "must decode to 24..64 bytes";
    }
    if (key)
        memcpy(key, tmp, (size_t)got);
    if (key_len)
        *key_len = (size_t)got;
    OPENSSL_cleanse(tmp, sizeof tmp);
    return NULL;
}

int wh__secret_generate(char *out, size_t out_len)
{
    unsigned char raw[32];
    char b64[((sizeof raw + 2) / 3) * 4 + 1];
    if (!out || out_len < SECRET_PREFIX_LEN + sizeof b64)
        return WH_ERR_INVALID;
    if (wh__random_bytes(raw, sizeof raw) != WH_OK)
        return WH_ERR_IO;
    EVP_EncodeBlock((unsigned char *)b64, raw, (int)sizeof raw);
    OPENSSL_cleanse(raw, sizeof raw);
    memcpy(out, SECRET_PREFIX, SECRET_PREFIX_LEN);
    memcpy(out + SECRET_PREFIX_LEN, b64, sizeof b64); /* includes the NUL */
    return WH_OK;
}

/* Fetching the algorithm takes a lock and a lookup: done once per process, not per signature. */
static EVP_MAC *hmac_alg;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;
/* Each thread keeps its HMAC context keyed with the last key it signed with: a new context,
 * the digest's fetch by name and the key schedule cost more than hashing a 1 kB body, and a
 * driver signs with the same endpoint key over and over. */
typedef struct {
    EVP_MAC_CTX *h; /* NULL until the first use, or after a failure */
    size_t key_len;
    unsigned char key[WH__SECRET_KEY_MAX];
} hmac_cache;
static pthread_key_t cache_key;
static bool cache_key_ok;

static void cache_free(void *p)
{
    hmac_cache *c = p;
    EVP_MAC_CTX_free(c->h);
    OPENSSL_cleanse(c, sizeof *c);
    free(c);
}

static void fetch_hmac(void)
{
    hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    cache_key_ok = pthread_key_create(&cache_key, cache_free) == 0;
}

/* This thread's cache, NULL when it cannot have one (then each signature starts afresh). */
static hmac_cache *thread_cache(void)
{
    if (!cache_key_ok)
        return NULL;
    hmac_cache *c = pthread_getspecific(cache_key);
    if (!c && (c = calloc(1, sizeof *c)) && pthread_setspecific(cache_key, c) != 0) {
        free(c);
        c = NULL;
    }
    return c;
}

/* The raw HMAC-SHA256 over "msg_id.timestamp.body". */
static int hmac_raw(const unsigned char *key, size_t key_len, const char *msg_id,
                    int64_t timestamp, const void *body, size_t body_len,
                    unsigned char mac[HMAC_LEN])
{
    char ts[32];
    int tl = snprintf(ts, sizeof ts, "%" PRId64, timestamp);
    if (tl < 0 || (size_t)tl >= sizeof ts)
        return WH_ERR_INVALID;
    pthread_once(&hmac_once, fetch_hmac);
    if (!hmac_alg)
        return WH_ERR_NOMEM;
    hmac_cache *c = key_len <= WH__SECRET_KEY_MAX ? thread_cache() : NULL;
    EVP_MAC_CTX *h = c ? c->h : NULL;
    bool rekey = true;
    if (h)
        rekey = c->key_len != key_len || CRYPTO_memcmp(c->key, key, key_len) != 0;
    else if (!(h = EVP_MAC_CTX_new(hmac_alg)))
        return WH_ERR_NOMEM;
    if (c && !c->h) {
        c->h = h;
        c->key_len = 0;
    }
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t mac_len = 0;
    /* the same key again: NULL restarts the context with the key it holds */
    int ok = (rekey ? EVP_MAC_init(h, key, key_len, params) : EVP_MAC_init(h, NULL, 0, NULL)) == 1 &&
             EVP_MAC_update(h, (const unsigned char *)msg_id, strlen(msg_id)) == 1 &&
             EVP_MAC_update(h, (const unsigned char *)".", 1) == 1 &&
             EVP_MAC_update(h, (const unsigned char *)ts, (size_t)tl) == 1 &&
             EVP_MAC_update(h, (const unsigned char *)".", 1) == 1 &&
             (body_len == 0 || EVP_MAC_update(h, body, body_len) == 1) &&
             EVP_MAC_final(h, mac, &mac_len, HMAC_LEN) == 1 && mac_len == HMAC_LEN;
    if (!c || !ok) {
        /* a context that failed half way is not trusted again */
        EVP_MAC_CTX_free(h);
        if (c) {
            c->h = NULL;
            OPENSSL_cleanse(c->key, sizeof c->key);
            c->key_len = 0;
        }
    } else if (rekey) {
        memcpy(c->key, key, key_len);
        c->key_len = key_len;
    }
    return ok ? WH_OK : WH_ERR_IO;
}

int wh__sign_key(const unsigned char *key, size_t key_len, const char *msg_id, int64_t timestamp,
                 const void *body, size_t body_len, char *out, size_t out_len)
{
    if (!key || !msg_id || (!body && body_len > 0) || !out ||
        out_len < SIG_VERSION_LEN + HMAC_B64_LEN + 1)
        return WH_ERR_INVALID;
    unsigned char mac[HMAC_LEN];
    int rc = hmac_raw(key, key_len, msg_id, timestamp, body, body_len, mac);
    if (rc != WH_OK)
        return rc;
    memcpy(out, SIG_VERSION, SIG_VERSION_LEN);
    EVP_EncodeBlock((unsigned char *)out + SIG_VERSION_LEN, mac, HMAC_LEN); /* NUL-terminates */
    OPENSSL_cleanse(mac, sizeof mac);
    return WH_OK;
}

/* NULL when msg_id is usable in a signature (non-empty, no control characters). */
static const char *msg_id_problem(const char *msg_id)
{
    if (!msg_id)
        return "is NULL";
    if (!*msg_id)
        return "is empty";
    for (const unsigned char *p = (const unsigned char *)msg_id; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return "contains a control character";
    return NULL;
}

/* The secret a caller passed, decoded; WH_ERR_INVALID with a message naming it. */
static int secret_argument(const char *secret, unsigned char key[WH__SECRET_KEY_MAX], size_t *key_len)
{
    if (!secret || !*secret)
        return wh__fail(NULL, 0, WH_ERR_INVALID, "secret: %s", secret ? "is empty" : "is NULL");
    const char *why = wh__secret_decode(secret, key, key_len);
    return why ? wh__fail(NULL, 0, WH_ERR_INVALID, "secret: %s", why) : WH_OK;
}

int wh_sign(const char *secret, const char *msg_id, int64_t timestamp, const void *body,
            size_t body_len, char *out, size_t out_len)
{
    wh__clear_error();
    unsigned char key[WH__SECRET_KEY_MAX];
    size_t key_len;
    if (secret_argument(secret, key, &key_len) != WH_OK)
        return WH_ERR_INVALID;
    const char *why;
    int rc;
    if ((why = msg_id_problem(msg_id)))
        rc = wh__fail(NULL, 0, WH_ERR_INVALID, "msg_id: %s", why);
    else if (!body && body_len > 0)
        rc = wh__fail(NULL, 0, WH_ERR_INVALID, "body: is NULL but body_len is %zu", body_len);
    else if (!out)
        rc = wh__fail(NULL, 0, WH_ERR_INVALID, "out: is NULL");
    else if (out_len < SIG_VERSION_LEN + HMAC_B64_LEN + 1)
        rc = wh__fail(NULL, 0, WH_ERR_INVALID, "out: too small (%zu bytes, need %zu)", out_len,
                      SIG_VERSION_LEN + HMAC_B64_LEN + 1);
    else {
        rc = wh__sign_key(key, key_len, msg_id, timestamp, body, body_len, out, out_len);
        if (rc != WH_OK)
            wh__fail(NULL, 0, rc, "signing failed: %s", wh_strerror(rc));
    }
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

/* A plain decimal integer with an optional leading '-', no spaces, that fits in int64_t. */
static bool parse_timestamp(const char *s, int64_t *out)
{
    const char *p = s;
    bool neg = *p == '-';
    if (neg)
        p++;
    if (!*p)
        return false;
    uint64_t v = 0;
    const uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else
        *out = (int64_t)v;
    return true;
}

int wh_verify(const char *secret, const char *msg_id, const char *timestamp,
              const char *signature_header, const void *body, size_t body_len, int64_t now,
              int tolerance_s)
{
    wh__clear_error();
    unsigned char key[WH__SECRET_KEY_MAX];
    size_t key_len;
    if (secret_argument(secret, key, &key_len) != WH_OK)
        return WH_ERR_INVALID;
    const char *why;

    int rc;
    int64_t ts = 0;
    if ((why = msg_id_problem(msg_id))) {
        rc = wh__fail(NULL, 0, WH_ERR_INVALID, "msg_id: %s", why);
        goto out;
    }
    if (!timestamp) {
        rc = wh__fail(NULL, 0, WH_ERR_INVALID, "timestamp: is NULL");
        goto out;
    }
    if (!signature_header) {
        rc = wh__fail(NULL, 0, WH_ERR_INVALID, "signature_header: is NULL");
        goto out;
    }
    if (!body && body_len > 0) {
        rc = wh__fail(NULL, 0, WH_ERR_INVALID, "body: is NULL but body_len is %zu", body_len);
        goto out;
    }
    if (tolerance_s < 0) {
        rc = wh__fail(NULL, 0, WH_ERR_INVALID, "tolerance_s: is negative (%d)", tolerance_s);
        goto out;
    }

    /* The timestamp first, as Standard Webhooks does. */
    if (!parse_timestamp(timestamp, &ts)) {
        rc = wh__fail(NULL, 0, WH_ERR_TIMESTAMP, "timestamp: is not a decimal integer");
        goto out;
    }
    if (now == 0)
        now = (int64_t)time(NULL);
    if (tolerance_s == 0)
        tolerance_s = DEFAULT_TOLERANCE_S;
    /* |now - ts| > tolerance, computed without overflow */
    bool too_old = ts < now && (uint64_t)now - (uint64_t)ts > (uint64_t)tolerance_s;
    bool too_new = ts > now && (uint64_t)ts - (uint64_t)now > (uint64_t)tolerance_s;
    if (too_old || too_new) {
        rc = wh__fail(NULL, 0, WH_ERR_TIMESTAMP, "timestamp: %s than %d s %s",
                      too_old ? "older" : "further ahead", tolerance_s,
                      too_old ? "ago" : "from now");
        goto out;
    }

    /* The expected signature as text; each v1 entry is compared with it in constant time
     * (text rather than decoded bytes, so that no other spelling of the same bytes passes). */
    char expected[SIG_VERSION_LEN + HMAC_B64_LEN + 1];
    unsigned char mac[HMAC_LEN];
    rc = hmac_raw(key, key_len, msg_id, ts, body, body_len, mac);
    if (rc != WH_OK) {
        wh__fail(NULL, 0, rc, "signing failed: %s", wh_strerror(rc));
        goto out;
    }
    EVP_EncodeBlock((unsigned char *)expected, mac, HMAC_LEN);
    OPENSSL_cleanse(mac, sizeof mac);

    /* Space-separated "version,signature" entries; only v1 counts, malformed or foreign
     * ones are skipped. */
    bool matched = false;
    const char *p = signature_header;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *start = p;
        while (*p && *p != ' ')
            p++;
        size_t len = (size_t)(p - start);
        if (len != SIG_VERSION_LEN + HMAC_B64_LEN ||
            memcmp(start, SIG_VERSION, SIG_VERSION_LEN) != 0)
            continue;
        if (CRYPTO_memcmp(start + SIG_VERSION_LEN, expected, HMAC_B64_LEN) == 0)
            matched = true; /* keep going: the time taken does not depend on which entry */
    }
    OPENSSL_cleanse(expected, sizeof expected);
    if (matched)
        rc = WH_OK;
    else
        rc = wh__fail(NULL, 0, WH_ERR_SIGNATURE, "signature: no v1 signature matches");

out:
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}
