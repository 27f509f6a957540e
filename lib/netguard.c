/* The SSRF guard: is an address, as actually connected to after DNS, one a
 * webhook may reach? Private, loopback, link-local and similar ranges are
 * refused unless security.allow_private or security.allow_cidrs says otherwise. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netguard.h"
#include "error.h"
#include "util.h"

typedef struct {
    unsigned char net[16]; /* IPv4 as IPv4-mapped IPv6 */
    int bits;              /* prefix length over the 16 bytes */
} cidr;

struct wh__netguard {
    bool allow_private;
    cidr *allowed;
    size_t n;
};

static void map_v4(const unsigned char v4[4], unsigned char out[16])
{
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, v4, 4);
}

static bool in_prefix(const unsigned char a[16], const unsigned char net[16], int bits)
{
    int full = bits / 8, rest = bits % 8;
    if (memcmp(a, net, (size_t)full) != 0)
        return false;
    if (!rest)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

/* Parses "a.b.c.d/n" or "x:y::/n" (a bare address is a host route). */
static const char *parse_cidr(const char *text, cidr *out)
{
    char buf[64];
    size_t len = strlen(text);
    if (len == 0 || len >= sizeof buf)
        return "is not an address range";
    memcpy(buf, text, len + 1);
    char *slash = strchr(buf, '/');
    int64_t bits = -1;
    if (slash) {
        *slash = '\0';
        if (wh__parse_int(slash + 1, 0, INT32_MAX, &bits) != WH_OK)
            return "has a bad prefix length";
    }
    unsigned char v4[4];
    if (inet_pton(AF_INET, buf, v4) == 1) {
        if (bits > 32)
            return "has a prefix length over 32";
        map_v4(v4, out->net);
        out->bits = 96 + (int)(bits < 0 ? 32 : bits);
    } else if (inet_pton(AF_INET6, buf, out->net) == 1) {
        if (bits > 128)
            return "has a prefix length over 128";
        out->bits = (int)(bits < 0 ? 128 : bits);
    } else {
        return "is not an IPv4 or IPv6 address range";
    }
    return NULL;
}

int wh__netguard_parse_cidrs(const char *list, char *errstr, size_t errlen)
{
    wh__clear_error();
    wh__netguard *g = wh__netguard_new(false, list, errstr, errlen);
    if (!g)
        return wh__last_error_code() == WH_ERR_NOMEM ? WH_ERR_NOMEM : WH_ERR_INVALID;
    wh__netguard_free(g);
    return WH_OK;
}

typedef struct {
    wh__netguard *g;
    char *errstr;
    size_t errlen;
} cidr_list;

static int cidr_item(void *ud, const char *item, size_t len)
{
    cidr_list *l = ud;
    char text[64];
    const char *problem = len < sizeof text ? NULL : "is too long";
    if (!problem) {
        memcpy(text, item, len);
        text[len] = '\0';
        problem = parse_cidr(text, &l->g->allowed[l->g->n]);
    }
    if (problem)
        return wh__fail(l->errstr, l->errlen, WH_ERR_INVALID, "security.allow_cidrs: \"%.*s\" %s",
                        (int)(len > 60 ? 60 : len), item, problem);
    l->g->n++;
    return WH_OK;
}

wh__netguard *wh__netguard_new(bool allow_private, const char *cidrs, char *errstr, size_t errlen)
{
    wh__netguard *g = calloc(1, sizeof *g);
    if (!g) {
        wh__fail(errstr, errlen, WH_ERR_NOMEM, "security.allow_cidrs: out of memory");
        return NULL;
    }
    g->allow_private = allow_private;
    size_t cap = 1;
    for (const char *p = cidrs ? cidrs : ""; *p; p++)
        cap += *p == ',';
    g->allowed = calloc(cap, sizeof *g->allowed);
    cidr_list l = {g, errstr, errlen};
    if (!g->allowed)
        wh__fail(errstr, errlen, WH_ERR_NOMEM, "security.allow_cidrs: out of memory");
    if (!g->allowed ||
        wh__parse_list("security.allow_cidrs", cidrs ? cidrs : "", cidr_item, &l, errstr, errlen) != WH_OK) {
        wh__netguard_free(g);
        return NULL;
    }
    return g;
}

void wh__netguard_free(wh__netguard *g)
{
    if (g) {
        free(g->allowed);
        free(g);
    }
}

/* Why an address (as 16 bytes, IPv4 mapped) is not public, or NULL. */
static const char *private_kind(const unsigned char a[16])
{
    static const struct {
        const char *net;
        int bits;
        const char *kind;
    } v4[] = {
        {"0.0.0.0", 8, "an unspecified (this-network)"},
        {"10.0.0.0", 8, "a private"},
        {"100.64.0.0", 10, "a carrier-grade NAT"},
        {"127.0.0.0", 8, "a loopback"},
        {"169.254.0.0", 16, "a link-local"},
        {"172.16.0.0", 12, "a private"},
        {"192.0.0.0", 24, "a reserved (IETF protocol)"},
        {"192.168.0.0", 16, "a private"},
        {"198.18.0.0", 15, "a reserved (benchmarking)"},
        {"224.0.0.0", 4, "a multicast"},
        {"240.0.0.0", 4, "a reserved or broadcast"},
    };
    static const struct {
        const char *net;
        int bits;
        const char *kind;
    } v6[] = {
        {"::", 128, "an unspecified"},      {"::1", 128, "a loopback"},
        {"fc00::", 7, "a unique-local"},    {"fe80::", 10, "a link-local"},
        {"fec0::", 10, "a site-local"},     {"ff00::", 8, "a multicast"},
        {"100::", 64, "a discard-only"},    {"64:ff9b:1::", 48, "a local-use NAT64"},
        {"2001::", 32, "a Teredo tunnel"},
    };
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char zero12[12] = {0};
    static const unsigned char translated[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
    unsigned char v4addr[16];
    const unsigned char *check = a;
    bool is_v4 = memcmp(a, mapped, 12) == 0;
    /* 6to4 (2002:a.b.c.d::/48) and IPv4-translated (::ffff:0:a.b.c.d) carry one too */
    if (!is_v4 && a[0] == 0x20 && a[1] == 0x02) {
        map_v4(a + 2, v4addr);
        check = v4addr;
        is_v4 = true;
    } else if (!is_v4 && memcmp(a, translated, 12) == 0) {
        map_v4(a + 12, v4addr);
        check = v4addr;
        is_v4 = true;
    }
    /* IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) forms carry an IPv4 address */
    if (!is_v4 && (memcmp(a, nat64, 12) == 0 ||
                   (memcmp(a, zero12, 12) == 0 && (a[12] | a[13] | a[14] | (a[15] > 1))))) {
        map_v4(a + 12, v4addr);
        check = v4addr;
        is_v4 = true;
    }
    if (is_v4) {
        for (size_t i = 0; i < sizeof v4 / sizeof v4[0]; i++) {
            unsigned char b4[4], net[16];
            inet_pton(AF_INET, v4[i].net, b4);
            map_v4(b4, net);
            if (in_prefix(check, net, 96 + v4[i].bits))
                return v4[i].kind;
        }
        return NULL;
    }
    for (size_t i = 0; i < sizeof v6 / sizeof v6[0]; i++) {
        unsigned char net[16];
        inet_pton(AF_INET6, v6[i].net, net);
        if (in_prefix(a, net, v6[i].bits))
            return v6[i].kind;
    }
    return NULL;
}

bool wh__netguard_allows(const wh__netguard *g, const struct sockaddr *sa, char *why, size_t why_len)
{
    unsigned char a[16];
    char text[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        map_v4((const unsigned char *)&in->sin_addr, a);
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(a, &in6->sin6_addr, 16);
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    } else {
        snprintf(why, why_len, "blocked: address family %d is not IP", sa->sa_family);
        return false;
    }
    if (!g || g->allow_private)
        return true;
    const char *kind = private_kind(a);
    if (!kind)
        return true;
    for (size_t i = 0; i < g->n; i++)
        if (in_prefix(a, g->allowed[i].net, g->allowed[i].bits))
            return true;
    snprintf(why, why_len, "blocked: %s is %s address; see security.allow_cidrs", text, kind);
    return false;
}
