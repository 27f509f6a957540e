/* Private to libwebhook: Which addresses a webhook may connect to. */
#ifndef WH_NETGUARD_H
#define WH_NETGUARD_H

#include <stdbool.h>
#include <stddef.h>

struct sockaddr;
typedef struct wh__netguard wh__netguard;
wh__netguard *wh__netguard_new(bool allow_private, const char *cidrs, char *errstr, size_t errlen);
void wh__netguard_free(wh__netguard *g);
/* Checks "a.b/n,..." without keeping it. */
int wh__netguard_parse_cidrs(const char *list, char *errstr, size_t errlen);
/* False (and why, for a person) when the address is refused. */
bool wh__netguard_allows(const wh__netguard *g, const struct sockaddr *sa, char *why, size_t why_len);

#endif
