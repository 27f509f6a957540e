/* Certificates for TLS tests and the bench: a CA of their own and server certificates it
 * signs, made with OpenSSL in memory (nothing from the system's trust store). */
#ifndef WH_TEST_PKI_H
#define WH_TEST_PKI_H
#include <openssl/evp.h>
#include <openssl/x509.h>

typedef struct pki_cred {
    EVP_PKEY *key;
    X509 *cert;
} pki_cred;

/* A P-256 key and a certificate for cn, valid from an hour ago for a day. issuer NULL: a
 * self-signed CA; else a server certificate it signs, with san ("DNS:a,IP:1.2.3.4") or NULL.
 * 0, or -1 on failure (out is then empty). */
int pki_make(pki_cred *out, const char *cn, const pki_cred *issuer, const char *san);
void pki_free(pki_cred *c);
/* PEM text, malloc'd; NULL on failure. */
char *pki_cert_pem(const pki_cred *c);
char *pki_key_pem(const pki_cred *c);
/* Writes text to path with mode 0600: 0, or -1. */
int pki_write_file(const char *path, const char *text);

#endif
