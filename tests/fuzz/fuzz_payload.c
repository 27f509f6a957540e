/* The payload builder's input checks (wh__payload_build, and wh_emit in front of it).
 * Input: one flag byte, then event_type NUL run_id NUL task_id NUL status. */
#include <cjson/cJSON.h>

#include "fuzz.h"
#include "internal.h"

static const char *const types[] = {
    "workflow_run.started", "workflow_run.completed", "workflow_run.failed", "task_run.started",
    "task_run.completed", "task_run.cancelled", "deploy.done", NULL,
};
static const int64_t stamps[] = {0, 1, -1, 1700000000123LL, 253402300799999LL, 253402300800000LL,
                                 INT64_MAX, INT64_MIN};

static wh__registry *reg;
static wh_ctx *ctx;

static void once(void)
{
    if (reg)
        return;
    reg = wh__registry_new(types);
    wh_conf *c = wh_conf_new();
    char err[256];
    FUZZ_ASSERT(wh_conf_set(c, "event_types.extra", "deploy.done", err, sizeof err) == WH_OK);
    ctx = wh_new(c, err, sizeof err); /* no endpoints: an emit builds and drops the event */
    FUZZ_ASSERT(reg && ctx);
}

static void field_equals(cJSON *o, const char *name, const char *want)
{
    cJSON *v = cJSON_GetObjectItem(o, name);
    if (!want)
        FUZZ_ASSERT(cJSON_IsNull(v));
    else
        FUZZ_ASSERT(cJSON_IsString(v) && strcmp(v->valuestring, want) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    once();
    uint8_t flags = data[0];
    char *part[4] = {0};
    size_t n = fuzz_split(data + 1, size - 1, '\0', part, 4);
    wh_event ev = {
        .event_type = part[0],
        .run_id = n > 1 && !(flags & 1) ? part[1] : NULL,
        .task_id = n > 2 && !(flags & 2) ? part[2] : NULL,
        .status = n > 3 && !(flags & 4) ? part[3] : NULL,
        .timestamp_ms = stamps[(flags >> 3) & 7],
    };
    char *body = NULL;
    size_t len = 0;
    char err[256] = "";
    int rc = wh__payload_build(reg, &ev, "evt_fuzz", 1700000000000LL, &body, &len, err, sizeof err);
    char id[WH_ID_MAX];
    int emitted = wh_emit(ctx, &ev, id);
    FUZZ_ASSERT((rc == WH_OK) == (emitted >= 0));
    if (rc == WH_OK) {
        FUZZ_ASSERT(emitted == 0);
        FUZZ_ASSERT(len == strlen(body));
        /* nothing accepted carries a control character, and the body has none raw */
        FUZZ_ASSERT(fuzz_no_controls(ev.run_id) && fuzz_no_controls(ev.status));
        FUZZ_ASSERT(!ev.task_id || fuzz_no_controls(ev.task_id));
        for (size_t i = 0; i < len; i++)
            FUZZ_ASSERT((unsigned char)body[i] >= 0x20);
        cJSON *o = cJSON_Parse(body);
        FUZZ_ASSERT(o);
        field_equals(o, "id", "evt_fuzz");
        field_equals(o, "event_type", ev.event_type);
        field_equals(o, "run_id", ev.run_id);
        field_equals(o, "task_id", ev.task_id);
        field_equals(o, "status", ev.status);
        FUZZ_ASSERT(cJSON_GetArraySize(o) == 6);
        cJSON_Delete(o);
        cJSON_free(body);
    } else {
        FUZZ_ASSERT(rc == WH_ERR_INVALID && *err && fuzz_no_controls(err));
        FUZZ_ASSERT(emitted == WH_ERR_INVALID);
    }
    for (size_t i = 0; i < n; i++)
        free(part[i]);
    return 0;
}
