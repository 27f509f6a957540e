/* wh_conf_set values: durations, schedules, CIDR lists, event type lists and the rest.
 * Input: one byte choosing the key, then the value. */
#include "fuzz.h"
#include "internal.h"

static const char *const keys[] = {
    "retry.schedule",  "retry.max_delay",        "security.allow_cidrs", "event_types.extra",
    "log.retention",   "endpoint.disable_after", "retry.jitter",         "http.timeout_ms",
    "log.response_max", "store",                 "security.allow_private", "queue.max_pending",
};
#define N_KEYS (sizeof keys / sizeof keys[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *key = keys[data[0] % N_KEYS];
    char *value = fuzz_cstr(data + 1, size - 1);
    wh_conf *c = wh_conf_new();
    FUZZ_ASSERT(c);
    char *before = strdup(wh_conf_get(c, key));
    char err[256] = "";
    int rc = wh_conf_set(c, key, value, err, sizeof err);
    if (rc == WH_OK) {
        FUZZ_ASSERT(strcmp(wh_conf_get(c, key), value) == 0);
        FUZZ_ASSERT(c->retry_schedule_len >= 1 || strcmp(key, "retry.schedule") == 0);
        FUZZ_ASSERT(c->retry_schedule_len <= 64);
        for (size_t i = 0; i < c->retry_schedule_len; i++)
            FUZZ_ASSERT(c->retry_schedule_ms[i] >= 0);
        FUZZ_ASSERT(c->retry_max_delay_ms >= 0 && c->log_retention_ms >= 0 && c->disable_after_ms >= 0);
        FUZZ_ASSERT(c->retry_jitter >= 0 && c->retry_jitter <= 1);
        if (strcmp(key, "security.allow_cidrs") == 0) {
            char e2[256];
            wh__netguard *g = wh__netguard_new(false, c->allow_cidrs, e2, sizeof e2);
            FUZZ_ASSERT(g);
            wh__netguard_free(g);
        }
        for (char **t = c->extra_types; t && *t; t++)
            FUZZ_ASSERT(wh__event_type_syntax_ok(*t));
        /* setting the same text again is accepted and changes nothing */
        FUZZ_ASSERT(wh_conf_set(c, key, value, err, sizeof err) == WH_OK);
    } else {
        FUZZ_ASSERT(rc == WH_ERR_INVALID);
        /* refused: the message names the key, the old value stays */
        FUZZ_ASSERT(strncmp(err, key, strlen(key)) == 0);
        FUZZ_ASSERT(fuzz_no_controls(err));
        FUZZ_ASSERT(strcmp(wh_conf_get(c, key), before) == 0);
    }
    free(before);
    free(value);
    wh_conf_destroy(c);
    return 0;
}
