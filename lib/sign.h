/* Private to libwebhook: Standard Webhooks signatures: secrets, keys, HMAC. */
#ifndef WH_SIGN_H
#define WH_SIGN_H

#include <stddef.h>
#include <stdint.h>

#define WH__SECRET_KEY_MAX 64
/* A valid secret's text: "whsec_", the padded base64 of at most 64 bytes, and the NUL. */
#define WH__SECRET_TEXT_MAX 96

/* Decodes "whsec_<base64>" (24..64 bytes) into key; NULL problem on success. */
const char *wh__secret_decode(const char *secret, unsigned char key[WH__SECRET_KEY_MAX],
                              size_t *key_len);
int wh__secret_generate(char *out, size_t out_len);
/* "v1,<base64>" of HMAC-SHA256(key, id.ts.body) */
int wh__sign_key(const unsigned char *key, size_t key_len, const char *msg_id, int64_t timestamp,
                 const void *body, size_t body_len, char *out, size_t out_len);

#endif
