/* Private to libwebhook: Per-endpoint settings (wh_endpoint_set): each key checked, the
 * stored text updated, and that text parsed into what the driver uses. The stored text is
 * a JSON object of key -> value as given, e.g. {"rate_limit":"600/m","header.X-Team":"ops"}. */
#ifndef WH_ENDPOINT_SETTINGS_H
#define WH_ENDPOINT_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WH__EP_HEADERS_MAX 32          /* header.<Name> keys per endpoint */
#define WH__EP_HEADER_NAME_MAX 128
#define WH__EP_HEADER_VALUE_MAX 4096
#define WH__EP_HIDDEN_VALUE "(hidden)" /* a header value, wherever it is shown unasked */

/* Extra request headers as "Name: value" lines. Never changed once built: the driver holds
 * a reference while it sends them with no lock held. */
typedef struct wh__ep_headers {
    int refs; /* atomic */
    size_t n;
    char *lines[]; /* n of them, then the text, in the same allocation */
} wh__ep_headers;

void wh__ep_headers_ref(wh__ep_headers *h);
void wh__ep_headers_unref(wh__ep_headers *h);

typedef struct wh__ep_settings {
    double rate_limit_per_s;     /* 0: none */
    bool ordering_run;
    int max_in_flight;           /* 0: the conf's endpoint.max_in_flight */
    long timeout_ms;             /* 0: the conf's http.timeout_ms */
    int64_t *retry_schedule_ms;  /* NULL: the conf's retry.schedule */
    size_t retry_schedule_len;
    wh__ep_headers *headers;     /* NULL: none */
} wh__ep_settings;

/* Checks one key and its value (NULL: back to the default). WH_ERR_INVALID with a message
 * naming the key and what is wrong; a header's value is never in it. */
int wh__ep_setting_check(const char *key, const char *value, char *errstr, size_t errlen);
/* The stored text with key set to value (NULL: removed; a header name matches whatever its
 * case); *out is malloc'd. stored NULL or "": no settings. Checks the key and value, and
 * what depends on the others (how many headers). */
int wh__ep_settings_update(const char *stored, const char *key, const char *value, char **out,
                           char *errstr, size_t errlen);
/* Inside a store's write: `stored` (taken: wiped and freed here) with key set to value;
 * *changed is the new text to store, or NULL when it is the same. Release it with
 * wh__ep_settings_free: both may hold credentials. */
int wh__ep_settings_change(char *stored, const char *key, const char *value, char **changed);
/* Wipes (header values may be credentials) and frees a settings text; NULL is fine. */
void wh__ep_settings_free(char *text);
/* Parses the stored text; a key or value this library does not take (a newer library
 * wrote it) is left out. WH_ERR_NOMEM, or WH_OK with *out set (free with _clear). */
int wh__ep_settings_parse(const char *stored, wh__ep_settings *out);
void wh__ep_settings_clear(wh__ep_settings *s);
/* The settings as "key=value" strings, NULL-terminated, in one malloc'd block; header values
 * are WH__EP_HIDDEN_VALUE unless reveal. NULL when out of memory. */
char **wh__ep_settings_list(const char *stored, bool reveal);
/* Whether key names a header (a "header." prefix). */
bool wh__ep_setting_is_header(const char *key);

#endif
