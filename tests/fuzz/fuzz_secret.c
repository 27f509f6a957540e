/* Secret parsing: wh__secret_decode ("whsec_" + base64 of 24..64 bytes), and the public
 * calls that take a secret. Input: the secret text. */
#include <openssl/evp.h>

#include "fuzz.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *secret = fuzz_cstr(data, size);
    unsigned char key[WH__SECRET_KEY_MAX];
    size_t key_len = 99;
    const char *problem = wh__secret_decode(secret, key, &key_len);
    char sig[WH_SIGNATURE_MAX];
    int rc = wh_sign(secret, "msg_1", 1700000000, "{}", 2, sig, sizeof sig);
    if (problem) {
        FUZZ_ASSERT(key_len == 0);
        FUZZ_ASSERT(fuzz_no_controls(problem));
        FUZZ_ASSERT(rc == WH_ERR_INVALID);
        /* the refusal names the field and the reason, never the secret's text */
        char want[160];
        snprintf(want, sizeof want, "secret: %s", *secret ? problem : "is empty");
        FUZZ_ASSERT(strcmp(wh_last_error(), want) == 0);
        FUZZ_ASSERT(wh_verify(secret, "msg_1", "1700000000", "v1,xx", "{}", 2, 1700000000, 0) ==
                    WH_ERR_INVALID);
    } else {
        FUZZ_ASSERT(strncmp(secret, "whsec_", 6) == 0);
        FUZZ_ASSERT(key_len >= 24 && key_len <= WH__SECRET_KEY_MAX);
        FUZZ_ASSERT(rc == WH_OK);
        FUZZ_ASSERT(wh_verify(secret, "msg_1", "1700000000", sig, "{}", 2, 1700000000, 0) == WH_OK);
        /* the canonical spelling of the same key decodes to the same key and signs alike */
        char canon[6 + 4 * ((WH__SECRET_KEY_MAX + 2) / 3) + 1] = "whsec_";
        EVP_EncodeBlock((unsigned char *)canon + 6, key, (int)key_len);
        unsigned char key2[WH__SECRET_KEY_MAX];
        size_t key2_len = 0;
        FUZZ_ASSERT(wh__secret_decode(canon, key2, &key2_len) == NULL);
        FUZZ_ASSERT(key2_len == key_len && memcmp(key, key2, key_len) == 0);
        FUZZ_ASSERT(wh_verify(canon, "msg_1", "1700000000", sig, "{}", 2, 1700000000, 0) == WH_OK);
        /* NULL outputs are allowed */
        FUZZ_ASSERT(wh__secret_decode(secret, NULL, NULL) == NULL);
    }
    free(secret);
    return 0;
}
