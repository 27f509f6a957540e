/* Standard Webhooks v1 signing and verification: the published vectors, the timestamp
 * window, decoys in the header, bad arguments and secret decoding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "internal.h"
#include "support.h"

typedef struct vector {
    const char *secret, *id;
    int64_t ts;
    const char *body, *sig;
} vector;

static const vector VECTORS[] = {
    {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
     "{\"test\": 2432232314}", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
    {"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553,
     "{\"email\":\"test@example.com\",\"username\":\"test_user\"}",
     "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="},
};
#define N_VECTORS (sizeof VECTORS / sizeof VECTORS[0])

static const vector *V0 = &VECTORS[0];

static int verify_at(const vector *v, const char *header, int64_t now)
{
    char ts[32];
    snprintf(ts, sizeof ts, "%lld", (long long)v->ts);
    return wh_verify(v->secret, v->id, ts, header, v->body, strlen(v->body), now, 0);
}

/* "whsec_" + base64 of n bytes (all 0x5a), into out. */
static void secret_of_len(size_t n, char *out, size_t out_len)
{
    unsigned char raw[128];
    ck_assert_uint_le(n, sizeof raw);
    memset(raw, 0x5a, n);
    ck_assert_uint_ge(out_len, 6 + (n + 2) / 3 * 4 + 1);
    memcpy(out, "whsec_", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, raw, (int)n);
}

/* ---- signing ------------------------------------------------------------ */

START_TEST(test_vectors_sign)
{
    for (size_t i = 0; i < N_VECTORS; i++) {
        const vector *v = &VECTORS[i];
        char out[WH_SIGNATURE_MAX];
        memset(out, 'x', sizeof out);
        ck_assert_int_eq(wh_sign(v->secret, v->id, v->ts, v->body, strlen(v->body), out,
                                 sizeof out),
                         WH_OK);
        ck_assert_str_eq(out, v->sig);
    }
}
END_TEST

START_TEST(test_sign_key_matches_sign)
{
    unsigned char key[WH__SECRET_KEY_MAX];
    size_t key_len = 0;
    ck_assert_ptr_null(wh__secret_decode(V0->secret, key, &key_len));
    ck_assert_uint_eq(key_len, 24);
    char out[WH_SIGNATURE_MAX];
    ck_assert_int_eq(wh__sign_key(key, key_len, V0->id, V0->ts, V0->body, strlen(V0->body),
                                  out, sizeof out),
                     WH_OK);
    ck_assert_str_eq(out, V0->sig);
    /* "v1," + 44 base64 characters + NUL is the exact size needed */
    ck_assert_int_eq(wh__sign_key(key, key_len, V0->id, V0->ts, V0->body, strlen(V0->body),
                                  out, 48),
                     WH_OK);
    ck_assert_str_eq(out, V0->sig);
    ck_assert_int_eq(wh__sign_key(key, key_len, V0->id, V0->ts, V0->body, strlen(V0->body),
                                  out, 47),
                     WH_ERR_INVALID);
}
END_TEST

/* "v1," and the base64 HMAC-SHA256 of "id.ts.body", computed here apart from the library. */
static void reference_sig(const vector *v, const char *id, char out[64])
{
    unsigned char key[WH__SECRET_KEY_MAX];
    size_t key_len = 0;
    ck_assert_ptr_null(wh__secret_decode(v->secret, key, &key_len));
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s.%lld.%s", id, (long long)v->ts, v->body);
    unsigned char mac[32];
    unsigned int mac_len = 0;
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key, (int)key_len, (unsigned char *)msg, (size_t)n,
                               mac, &mac_len));
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)mac_len);
}

/* One thread signs with one key many times and with several keys in turn: each signature is
 * that of its own key and message (the context kept between signatures is keyed right). */
START_TEST(test_sign_same_key_again_and_keys_in_turn)
{
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < N_VECTORS; i++) {
            const vector *v = &VECTORS[i];
            char out[WH_SIGNATURE_MAX], want[64];
            ck_assert_int_eq(wh_sign(v->secret, v->id, v->ts, v->body, strlen(v->body), out,
                                     sizeof out),
                             WH_OK);
            ck_assert_str_eq(out, v->sig);
            char other_id[64];
            snprintf(other_id, sizeof other_id, "%s_%d", v->id, round);
            reference_sig(v, other_id, want);
            ck_assert_int_eq(wh_sign(v->secret, other_id, v->ts, v->body, strlen(v->body), out,
                                     sizeof out),
                             WH_OK);
            ck_assert_str_eq(out, want);
            ck_assert_int_eq(verify_at(v, v->sig, v->ts), WH_OK);
        }
}
END_TEST

START_TEST(test_sign_out_too_small)
{
    char out[47];
    ck_assert_int_eq(wh_sign(V0->secret, V0->id, V0->ts, V0->body, strlen(V0->body), out,
                             sizeof out),
                     WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "out"));
    ck_assert_int_eq(wh_sign(V0->secret, V0->id, V0->ts, V0->body, strlen(V0->body), out, 0),
                     WH_ERR_INVALID);
    ck_assert_int_eq(wh_sign(V0->secret, V0->id, V0->ts, V0->body, strlen(V0->body), NULL,
                             WH_SIGNATURE_MAX),
                     WH_ERR_INVALID);
    char exact[48];
    ck_assert_int_eq(wh_sign(V0->secret, V0->id, V0->ts, V0->body, strlen(V0->body), exact,
                             sizeof exact),
                     WH_OK);
    ck_assert_str_eq(exact, V0->sig);
}
END_TEST

START_TEST(test_sign_bad_arguments)
{
    char out[WH_SIGNATURE_MAX];
    const size_t bl = strlen(V0->body);

    ck_assert_int_eq(wh_sign(NULL, V0->id, V0->ts, V0->body, bl, out, sizeof out),
                     WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "secret"));
    ck_assert_int_eq(wh_sign("", V0->id, V0->ts, V0->body, bl, out, sizeof out),
                     WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "secret"));
    ck_assert_int_eq(wh_sign("whsec_!!!!", V0->id, V0->ts, V0->body, bl, out, sizeof out),
                     WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "secret"));

    ck_assert_int_eq(wh_sign(V0->secret, NULL, V0->ts, V0->body, bl, out, sizeof out),
                     WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "msg_id"));
    ck_assert_int_eq(wh_sign(V0->secret, "", V0->ts, V0->body, bl, out, sizeof out),
                     WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "msg_id"));
    ck_assert_int_eq(wh_sign(V0->secret, "msg_a\r\nX-Evil: 1", V0->ts, V0->body, bl, out,
                             sizeof out),
                     WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "msg_id"));
    ck_assert_int_eq(wh_sign(V0->secret, "msg\t1", V0->ts, V0->body, bl, out, sizeof out),
                     WH_ERR_INVALID);
    /* dots are allowed in ids */
    ck_assert_int_eq(wh_sign(V0->secret, "msg.1", V0->ts, V0->body, bl, out, sizeof out),
                     WH_OK);

    ck_assert_int_eq(wh_sign(V0->secret, V0->id, V0->ts, NULL, 5, out, sizeof out),
                     WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "body"));

    /* an empty body may be NULL */
    ck_assert_int_eq(wh_sign(V0->secret, V0->id, V0->ts, NULL, 0, out, sizeof out), WH_OK);
    char again[WH_SIGNATURE_MAX];
    ck_assert_int_eq(wh_sign(V0->secret, V0->id, V0->ts, "", 0, again, sizeof again), WH_OK);
    ck_assert_str_eq(out, again);
    ck_assert_str_eq(wh_last_error(), "");
}
END_TEST

START_TEST(test_sign_binary_body)
{
    /* The body is bytes: an embedded NUL is signed, not a terminator. */
    const char body[] = {'a', '\0', 'b'};
    char s3[WH_SIGNATURE_MAX], s1[WH_SIGNATURE_MAX];
    ck_assert_int_eq(wh_sign(V0->secret, V0->id, V0->ts, body, 3, s3, sizeof s3), WH_OK);
    ck_assert_int_eq(wh_sign(V0->secret, V0->id, V0->ts, body, 1, s1, sizeof s1), WH_OK);
    ck_assert_str_ne(s3, s1);
    char ts[32];
    snprintf(ts, sizeof ts, "%lld", (long long)V0->ts);
    ck_assert_int_eq(wh_verify(V0->secret, V0->id, ts, s3, body, 3, V0->ts, 0), WH_OK);
    ck_assert_int_eq(wh_verify(V0->secret, V0->id, ts, s3, body, 1, V0->ts, 0),
                     WH_ERR_SIGNATURE);
}
END_TEST

/* ---- verification --------------------------------------------------------- */

START_TEST(test_vectors_verify)
{
    for (size_t i = 0; i < N_VECTORS; i++)
        ck_assert_int_eq(verify_at(&VECTORS[i], VECTORS[i].sig, VECTORS[i].ts), WH_OK);
}
END_TEST

START_TEST(test_verify_now_zero_is_current_time)
{
    int64_t now = (int64_t)time(NULL);
    char sig[WH_SIGNATURE_MAX], ts[32];
    ck_assert_int_eq(wh_sign(V0->secret, V0->id, now, V0->body, strlen(V0->body), sig,
                             sizeof sig),
                     WH_OK);
    snprintf(ts, sizeof ts, "%lld", (long long)now);
    ck_assert_int_eq(wh_verify(V0->secret, V0->id, ts, sig, V0->body, strlen(V0->body), 0, 0),
                     WH_OK);
    /* the published vectors are years old: against the clock they are stale */
    ck_assert_int_eq(verify_at(V0, V0->sig, 0), WH_ERR_TIMESTAMP);
}
END_TEST

START_TEST(test_verify_tampered)
{
    const vector *v = V0;
    char ts[32];
    snprintf(ts, sizeof ts, "%lld", (long long)v->ts);
    size_t bl = strlen(v->body);

    /* body changed by one character */
    char *body = strdup(v->body);
    ck_assert_ptr_nonnull(body);
    body[bl - 2] ^= 1;
    ck_assert_int_eq(wh_verify(v->secret, v->id, ts, v->sig, body, bl, v->ts, 0),
                     WH_ERR_SIGNATURE);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "signature"));
    free(body);
    /* body one byte shorter or longer */
    ck_assert_int_eq(wh_verify(v->secret, v->id, ts, v->sig, v->body, bl - 1, v->ts, 0),
                     WH_ERR_SIGNATURE);
    char longer[64];
    snprintf(longer, sizeof longer, "%s ", v->body);
    ck_assert_int_eq(wh_verify(v->secret, v->id, ts, v->sig, longer, bl + 1, v->ts, 0),
                     WH_ERR_SIGNATURE);

    /* another secret (the second vector's) */
    ck_assert_int_eq(wh_verify(VECTORS[1].secret, v->id, ts, v->sig, v->body, bl, v->ts, 0),
                     WH_ERR_SIGNATURE);
    /* another id */
    ck_assert_int_eq(wh_verify(v->secret, "msg_p5jXN8AQM9LWM0D4loKWxJeK", ts, v->sig, v->body,
                               bl, v->ts, 0),
                     WH_ERR_SIGNATURE);
    /* another timestamp (within tolerance) */
    char ts2[32];
    snprintf(ts2, sizeof ts2, "%lld", (long long)v->ts + 1);
    ck_assert_int_eq(wh_verify(v->secret, v->id, ts2, v->sig, v->body, bl, v->ts, 0),
                     WH_ERR_SIGNATURE);

    /* truncated signature, at several lengths */
    char sig[WH_SIGNATURE_MAX];
    for (size_t cut = 1; cut < strlen(v->sig); cut++) {
        snprintf(sig, sizeof sig, "%.*s", (int)(strlen(v->sig) - cut), v->sig);
        ck_assert_int_eq(wh_verify(v->secret, v->id, ts, sig, v->body, bl, v->ts, 0),
                         WH_ERR_SIGNATURE);
    }
    /* one bit changed in the signature text */
    snprintf(sig, sizeof sig, "%s", v->sig);
    sig[10] ^= 1;
    ck_assert_int_eq(wh_verify(v->secret, v->id, ts, sig, v->body, bl, v->ts, 0),
                     WH_ERR_SIGNATURE);
    /* the right signature under another version label */
    snprintf(sig, sizeof sig, "v2%s", v->sig + 2);
    ck_assert_int_eq(wh_verify(v->secret, v->id, ts, sig, v->body, bl, v->ts, 0),
                     WH_ERR_SIGNATURE);
    /* an empty header */
    ck_assert_int_eq(wh_verify(v->secret, v->id, ts, "", v->body, bl, v->ts, 0),
                     WH_ERR_SIGNATURE);
    ck_assert_int_eq(wh_verify(v->secret, v->id, ts, "   ", v->body, bl, v->ts, 0),
                     WH_ERR_SIGNATURE);
}
END_TEST

START_TEST(test_verify_decoys_only)
{
    static const char *const headers[] = {
        "v1,AAAA v2,xyz v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "v1,AAAA",
        "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "v1 g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=x",
        "xv1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "v1,,,, ,,, v1, ,v1",
        "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++)
        ck_assert_msg(verify_at(V0, headers[i], V0->ts) == WH_ERR_SIGNATURE, "header %s",
                      headers[i]);
}
END_TEST

START_TEST(test_verify_hidden_among_decoys)
{
    char h[1024];
    snprintf(h, sizeof h, "%s v1,AAAA v2,xyz v1a,bbbb", V0->sig);
    ck_assert_int_eq(verify_at(V0, h, V0->ts), WH_OK);
    snprintf(h, sizeof h, "v1,AAAA v2,xyz v1a,bbbb %s", V0->sig);
    ck_assert_int_eq(verify_at(V0, h, V0->ts), WH_OK);
    snprintf(h, sizeof h, "v1,AAAA  %s  v2,xyz", V0->sig);
    ck_assert_int_eq(verify_at(V0, h, V0->ts), WH_OK);
    /* another v1 signature (an old secret's, say) next to the right one */
    snprintf(h, sizeof h, "%s %s", VECTORS[1].sig, V0->sig);
    ck_assert_int_eq(verify_at(V0, h, V0->ts), WH_OK);
    snprintf(h, sizeof h, "%s %s", V0->sig, VECTORS[1].sig);
    ck_assert_int_eq(verify_at(V0, h, V0->ts), WH_OK);
}
END_TEST

START_TEST(test_verify_timestamp_window)
{
    /* The signature is right for the vector's timestamp; only the clock moves. */
    ck_assert_int_eq(verify_at(V0, V0->sig, V0->ts + 301), WH_ERR_TIMESTAMP);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "timestamp"));
    ck_assert_int_eq(verify_at(V0, V0->sig, V0->ts - 301), WH_ERR_TIMESTAMP);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "timestamp"));
    ck_assert_int_eq(verify_at(V0, V0->sig, V0->ts + 300), WH_OK);
    ck_assert_int_eq(verify_at(V0, V0->sig, V0->ts - 300), WH_OK);
    ck_assert_int_eq(verify_at(V0, V0->sig, V0->ts + 1000000), WH_ERR_TIMESTAMP);

    /* The timestamp is checked before the signature. */
    ck_assert_int_eq(verify_at(V0, "v1,AAAA", V0->ts + 301), WH_ERR_TIMESTAMP);

    /* An explicit tolerance. */
    char ts[32];
    snprintf(ts, sizeof ts, "%lld", (long long)V0->ts);
    size_t bl = strlen(V0->body);
    ck_assert_int_eq(wh_verify(V0->secret, V0->id, ts, V0->sig, V0->body, bl, V0->ts + 10, 10),
                     WH_OK);
    ck_assert_int_eq(wh_verify(V0->secret, V0->id, ts, V0->sig, V0->body, bl, V0->ts - 11, 10),
                     WH_ERR_TIMESTAMP);
    ck_assert_int_eq(
        wh_verify(V0->secret, V0->id, ts, V0->sig, V0->body, bl, V0->ts + 3600, 3600), WH_OK);
}
END_TEST

START_TEST(test_verify_unparseable_timestamp)
{
    static const char *const bad[] = {
        "", " 1614265330", "1614265330 ", "+1614265330", "1614265330.0", "0x603832F2",
        "1614265330a", "abc", "-", "99999999999999999999999", "1e9",
    };
    size_t bl = strlen(V0->body);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(wh_verify(V0->secret, V0->id, bad[i], V0->sig, V0->body, bl, V0->ts, 0) ==
                          WH_ERR_TIMESTAMP,
                      "timestamp \"%s\"", bad[i]);
        ck_assert_ptr_nonnull(strstr(wh_last_error(), "timestamp"));
    }
    /* extreme but well-formed values are simply out of the window */
    ck_assert_int_eq(wh_verify(V0->secret, V0->id, "9223372036854775807", V0->sig, V0->body,
                               bl, V0->ts, 0),
                     WH_ERR_TIMESTAMP);
    ck_assert_int_eq(wh_verify(V0->secret, V0->id, "-9223372036854775808", V0->sig, V0->body,
                               bl, V0->ts, 0),
                     WH_ERR_TIMESTAMP);
    ck_assert_int_eq(wh_verify(V0->secret, V0->id, "9223372036854775808", V0->sig, V0->body,
                               bl, V0->ts, 0),
                     WH_ERR_TIMESTAMP);
}
END_TEST

START_TEST(test_verify_invalid_arguments)
{
    char ts[32];
    snprintf(ts, sizeof ts, "%lld", (long long)V0->ts);
    size_t bl = strlen(V0->body);

    ck_assert_int_eq(wh_verify(NULL, V0->id, ts, V0->sig, V0->body, bl, V0->ts, 0),
                     WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "secret"));
    ck_assert_int_eq(wh_verify("", V0->id, ts, V0->sig, V0->body, bl, V0->ts, 0),
                     WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "secret"));
    ck_assert_int_eq(wh_verify("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", V0->id, ts, V0->sig,
                               V0->body, bl, V0->ts, 0),
                     WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "secret"));
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "whsec_"));
    ck_assert_int_eq(wh_verify("whsec_not base64!", V0->id, ts, V0->sig, V0->body, bl, V0->ts,
                               0),
                     WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "secret"));

    ck_assert_int_eq(wh_verify(V0->secret, V0->id, ts, NULL, V0->body, bl, V0->ts, 0),
                     WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "signature_header"));
    ck_assert_int_eq(wh_verify(V0->secret, NULL, ts, V0->sig, V0->body, bl, V0->ts, 0),
                     WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "msg_id"));
    ck_assert_int_eq(wh_verify(V0->secret, V0->id, NULL, V0->sig, V0->body, bl, V0->ts, 0),
                     WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "timestamp"));
    ck_assert_int_eq(wh_verify(V0->secret, V0->id, ts, V0->sig, NULL, bl, V0->ts, 0),
                     WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "body"));
    ck_assert_int_eq(wh_verify(V0->secret, V0->id, ts, V0->sig, V0->body, bl, V0->ts, -1),
                     WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "tolerance"));

    /* a success clears the message */
    ck_assert_int_eq(wh_verify(V0->secret, V0->id, ts, V0->sig, V0->body, bl, V0->ts, 0),
                     WH_OK);
    ck_assert_str_eq(wh_last_error(), "");
}
END_TEST

START_TEST(test_verify_huge_header)
{
    /* A long header of decoys with the signature at the very end. */
    size_t n = 1 << 20;
    char *h = malloc(n + 64);
    ck_assert_ptr_nonnull(h);
    size_t len = 0;
    while (len + 8 < n) {
        memcpy(h + len, "v1,AAAA ", 8);
        len += 8;
    }
    snprintf(h + len, 64, "%s", V0->sig);
    ck_assert_int_eq(verify_at(V0, h, V0->ts), WH_OK);
    h[len] = '\0';
    ck_assert_int_eq(verify_at(V0, h, V0->ts), WH_ERR_SIGNATURE);
    free(h);
}
END_TEST

/* ---- secrets ------------------------------------------------------------- */

START_TEST(test_secret_generate)
{
    char a[128], b[128];
    ck_assert_int_eq(wh__secret_generate(a, sizeof a), WH_OK);
    ck_assert_int_eq(wh__secret_generate(b, sizeof b), WH_OK);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(strncmp(a, "whsec_", 6), 0);
    ck_assert_uint_eq(strlen(a), 6 + 44);
    unsigned char ka[WH__SECRET_KEY_MAX], kb[WH__SECRET_KEY_MAX];
    size_t la = 0, lb = 0;
    ck_assert_ptr_null(wh__secret_decode(a, ka, &la));
    ck_assert_ptr_null(wh__secret_decode(b, kb, &lb));
    ck_assert_uint_eq(la, 32);
    ck_assert_uint_eq(lb, 32);
    ck_assert_int_ne(memcmp(ka, kb, 32), 0);
    /* a generated secret signs and verifies */
    char sig[WH_SIGNATURE_MAX];
    ck_assert_int_eq(wh_sign(a, "msg_1", 1700000000, "{}", 2, sig, sizeof sig), WH_OK);
    ck_assert_int_eq(wh_verify(a, "msg_1", "1700000000", sig, "{}", 2, 1700000000, 0), WH_OK);
    ck_assert_int_eq(wh_verify(b, "msg_1", "1700000000", sig, "{}", 2, 1700000000, 0),
                     WH_ERR_SIGNATURE);
    /* the buffer must hold "whsec_" + 44 + NUL */
    ck_assert_int_eq(wh__secret_generate(a, 51), WH_OK);
    ck_assert_int_eq(wh__secret_generate(a, 50), WH_ERR_INVALID);
    ck_assert_int_eq(wh__secret_generate(NULL, 128), WH_ERR_INVALID);
}
END_TEST

START_TEST(test_secret_lengths)
{
    char s[256];
    unsigned char key[WH__SECRET_KEY_MAX];
    size_t kl;
    for (size_t n = 1; n <= 100; n++) {
        secret_of_len(n, s, sizeof s);
        kl = 999;
        const char *why = wh__secret_decode(s, key, &kl);
        if (n >= 24 && n <= 64) {
            ck_assert_msg(why == NULL, "%zu bytes refused: %s", n, why);
            ck_assert_uint_eq(kl, n);
            for (size_t i = 0; i < n; i++)
                ck_assert_uint_eq(key[i], 0x5a);
        } else {
            ck_assert_msg(why != NULL, "%zu bytes accepted", n);
            ck_assert_str_eq(why, "must decode to 24..64 bytes");
            ck_assert_uint_eq(kl, 0);
        }
    }
    secret_of_len(23, s, sizeof s);
    ck_assert_ptr_nonnull(wh__secret_decode(s, key, &kl));
    char sig[WH_SIGNATURE_MAX];
    ck_assert_int_eq(wh_sign(s, "msg_1", 1, "", 0, sig, sizeof sig), WH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "secret"));
    ck_assert_ptr_nonnull(strstr(wh_last_error(), "24..64"));
    secret_of_len(65, s, sizeof s);
    ck_assert_ptr_nonnull(wh__secret_decode(s, key, &kl));
    ck_assert_int_eq(wh_sign(s, "msg_1", 1, "", 0, sig, sizeof sig), WH_ERR_INVALID);
    secret_of_len(64, s, sizeof s);
    ck_assert_int_eq(wh_sign(s, "msg_1", 1, "", 0, sig, sizeof sig), WH_OK);
    secret_of_len(24, s, sizeof s);
    ck_assert_int_eq(wh_sign(s, "msg_1", 1, "", 0, sig, sizeof sig), WH_OK);
}
END_TEST

START_TEST(test_secret_refused)
{
    unsigned char key[WH__SECRET_KEY_MAX];
    size_t kl;
    /* without the prefix, even when the rest is a fine key */
    ck_assert_str_eq(wh__secret_decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key, &kl),
                     "must start with whsec_");
    ck_assert_str_eq(wh__secret_decode("WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key, &kl),
                     "must start with whsec_");
    ck_assert_str_eq(wh__secret_decode("whsec", key, &kl), "must start with whsec_");
    ck_assert_str_eq(wh__secret_decode("", key, &kl), "must start with whsec_");
    ck_assert_ptr_nonnull(wh__secret_decode(NULL, key, &kl));

    static const char *const garbage[] = {
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!",   /* bad character */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",    /* length not a multiple of 4 */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa=w",   /* '=' in the middle */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw=",  /* stray padding */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS===", /* three '=' */
        "whsec_MfKQ9r8GKYqrTwjU PD8ILPZIo2LaLaSw",  /* a space */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", /* a newline */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La-_Sw",   /* URL-safe alphabet */
        "whsec_====",
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        kl = 999;
        const char *why = wh__secret_decode(garbage[i], key, &kl);
        ck_assert_msg(why && strcmp(why, "is not valid base64") == 0, "%s: %s", garbage[i],
                      why ? why : "accepted");
        ck_assert_uint_eq(kl, 0);
    }
    ck_assert_str_eq(wh__secret_decode("whsec_", key, &kl), "must decode to 24..64 bytes");
    /* NULL outputs are allowed (just a check) */
    ck_assert_ptr_null(wh__secret_decode(V0->secret, NULL, NULL));
}
END_TEST

START_TEST(test_secret_huge)
{
    size_t n = 16u << 20;
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    memcpy(s, "whsec_", 6);
    memset(s + 6, 'A', n - 6);
    s[n] = '\0';
    unsigned char key[WH__SECRET_KEY_MAX];
    size_t kl;
    ck_assert_str_eq(wh__secret_decode(s, key, &kl), "must decode to 24..64 bytes");
    s[50] = '!';
    ck_assert_str_eq(wh__secret_decode(s, key, &kl), "is not valid base64");
    char sig[WH_SIGNATURE_MAX];
    ck_assert_int_eq(wh_sign(s, "msg_1", 1, "", 0, sig, sizeof sig), WH_ERR_INVALID);
    ck_assert_int_eq(wh_verify(s, "msg_1", "1", "v1,AAAA", "", 0, 1, 0), WH_ERR_INVALID);
    free(s);
}
END_TEST

static Suite *sign_suite(void)
{
    Suite *s = suite_create("sign");
    TCase *t = tcase_create("sign");
    tcase_add_test(t, test_vectors_sign);
    tcase_add_test(t, test_sign_key_matches_sign);
    tcase_add_test(t, test_sign_same_key_again_and_keys_in_turn);
    tcase_add_test(t, test_sign_out_too_small);
    tcase_add_test(t, test_sign_bad_arguments);
    tcase_add_test(t, test_sign_binary_body);
    suite_add_tcase(s, t);

    t = tcase_create("verify");
    tcase_add_test(t, test_vectors_verify);
    tcase_add_test(t, test_verify_now_zero_is_current_time);
    tcase_add_test(t, test_verify_tampered);
    tcase_add_test(t, test_verify_decoys_only);
    tcase_add_test(t, test_verify_hidden_among_decoys);
    tcase_add_test(t, test_verify_timestamp_window);
    tcase_add_test(t, test_verify_unparseable_timestamp);
    tcase_add_test(t, test_verify_invalid_arguments);
    tcase_add_test(t, test_verify_huge_header);
    suite_add_tcase(s, t);

    t = tcase_create("secret");
    tcase_add_test(t, test_secret_generate);
    tcase_add_test(t, test_secret_lengths);
    tcase_add_test(t, test_secret_refused);
    tcase_add_test(t, test_secret_huge);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return support_run_suite(sign_suite());
}
