#include "pki.h"

#include <fcntl.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    int ok = ext && X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

int pki_make(pki_cred *out, const char *cn, const pki_cred *issuer, const char *san)
{
    static long serial = 1;
    pki_cred c = {.key = EVP_EC_gen("P-256"), .cert = X509_new()};
    X509 *x = c.cert;
    int bad = !c.key || !x;
    if (!bad) {
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), __atomic_fetch_add(&serial, 1, __ATOMIC_SEQ_CST));
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), 86400);
        X509_set_pubkey(x, c.key);
        X509_NAME *name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
        X509 *issuer_cert = issuer ? issuer->cert : x;
        X509_set_issuer_name(x, X509_get_subject_name(issuer_cert));
        bad |= add_ext(x, issuer_cert, NID_subject_key_identifier, "hash");
        bad |= add_ext(x, issuer_cert, NID_authority_key_identifier, "keyid:always");
        if (!issuer) {
            bad |= add_ext(x, issuer_cert, NID_basic_constraints, "critical,CA:TRUE");
            bad |= add_ext(x, issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
        } else {
            bad |= add_ext(x, issuer_cert, NID_basic_constraints, "critical,CA:FALSE");
            bad |= add_ext(x, issuer_cert, NID_key_usage, "critical,digitalSignature");
            bad |= add_ext(x, issuer_cert, NID_ext_key_usage, "serverAuth");
            if (san)
                bad |= add_ext(x, issuer_cert, NID_subject_alt_name, san);
        }
        bad |= X509_sign(x, issuer ? issuer->key : c.key, EVP_sha256()) <= 0;
    }
    if (bad) {
        pki_free(&c);
        memset(out, 0, sizeof *out);
        return -1;
    }
    *out = c;
    return 0;
}

void pki_free(pki_cred *c)
{
    EVP_PKEY_free(c->key);
    X509_free(c->cert);
    c->key = NULL;
    c->cert = NULL;
}

static char *bio_text(BIO *b, int ok)
{
    char *data, *s = NULL;
    long n = ok ? BIO_get_mem_data(b, &data) : -1;
    if (n >= 0 && (s = malloc((size_t)n + 1))) {
        memcpy(s, data, (size_t)n);
        s[n] = '\0';
    }
    BIO_free(b);
    return s;
}

char *pki_cert_pem(const pki_cred *c)
{
    BIO *b = BIO_new(BIO_s_mem());
    return b ? bio_text(b, PEM_write_bio_X509(b, c->cert) == 1) : NULL;
}

char *pki_key_pem(const pki_cred *c)
{
    BIO *b = BIO_new(BIO_s_mem());
    return b ? bio_text(b, PEM_write_bio_PrivateKey(b, c->key, NULL, NULL, 0, NULL, NULL) == 1) : NULL;
}

int pki_write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    return close(fd);
}
