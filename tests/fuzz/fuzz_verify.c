/* wh_verify: the webhook-timestamp and webhook-signature parsing of a receiver.
 * Input: msg_id \n timestamp \n signature header \n body (the body may hold anything). */
#include <errno.h>
#include <inttypes.h>

#include "fuzz.h"
#include "internal.h"

static const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
#define NOW 1700000000LL
#define TOLERANCE 300

/* True when header holds sig as one whole space-separated entry. */
static int has_entry(const char *header, const char *sig)
{
    size_t n = strlen(sig);
    for (const char *p = header; (p = strstr(p, sig)); p++)
        if ((p == header || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *part[4] = {0};
    size_t n = fuzz_split(data, size, '\n', part, 4);
    const char *msg_id = part[0];
    const char *ts = n > 1 ? part[1] : "";
    const char *header = n > 2 ? part[2] : "";
    /* the body as bytes: from after the third newline to the end, NULs included */
    size_t body_len = 0;
    const uint8_t *body_bytes = data;
    if (n > 3) {
        size_t seen = 0, off = 0;
        for (; off < size && seen < 3; off++)
            seen += data[off] == '\n';
        body_bytes = data + off;
        body_len = size - off;
    }

    int rc = wh_verify(secret, msg_id, ts, header, body_bytes, body_len, NOW, TOLERANCE);
    FUZZ_ASSERT(rc == WH_OK || rc == WH_ERR_INVALID || rc == WH_ERR_SIGNATURE ||
                rc == WH_ERR_TIMESTAMP);
    FUZZ_ASSERT(rc == WH_OK || (*wh_last_error() && fuzz_no_controls(wh_last_error())));
    if (rc == WH_OK) {
        /* accepted: the timestamp is a plain decimal within the tolerance, and the header
         * carries exactly the signature we would have made */
        char *end;
        errno = 0;
        long long t = strtoll(ts, &end, 10);
        FUZZ_ASSERT(*ts && !*end && !errno && ts[0] != ' ' && ts[0] != '+');
        FUZZ_ASSERT(t >= NOW - TOLERANCE && t <= NOW + TOLERANCE);
        char sig[WH_SIGNATURE_MAX];
        FUZZ_ASSERT(wh_sign(secret, msg_id, t, body_bytes, body_len, sig, sizeof sig) == WH_OK);
        FUZZ_ASSERT(has_entry(header, sig));
    }

    /* round trip: whatever else the header holds, adding our own signature makes it pass */
    char sig[WH_SIGNATURE_MAX];
    if (wh_sign(secret, msg_id, NOW, body_bytes, body_len, sig, sizeof sig) == WH_OK) {
        size_t hl = strlen(header);
        char *h2 = malloc(hl + 1 + strlen(sig) + 1);
        FUZZ_ASSERT(h2);
        memcpy(h2, header, hl);
        h2[hl] = ' ';
        strcpy(h2 + hl + 1, sig);
        FUZZ_ASSERT(wh_verify(secret, msg_id, "1700000000", h2, body_bytes, body_len, NOW, TOLERANCE) == WH_OK);
        /* and the same signature over a different body never passes */
        uint8_t *other = malloc(body_len + 1);
        FUZZ_ASSERT(other);
        memcpy(other, body_bytes, body_len);
        if (body_len)
            other[0] ^= 0x01;
        else
            other[0] = 'x';
        size_t other_len = body_len ? body_len : 1;
        FUZZ_ASSERT(wh_verify(secret, msg_id, "1700000000", sig, other, other_len, NOW, TOLERANCE) ==
                    WH_ERR_SIGNATURE);
        free(other);
        free(h2);
    }
    for (size_t i = 0; i < n; i++)
        free(part[i]);
    return 0;
}
