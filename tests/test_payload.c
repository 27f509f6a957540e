/* The event body: exact fields, escaping, timestamps, and refused input. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "internal.h"
#include "support.h"

static const char *const known[] = {"workflow_run.started", "workflow_run.failed",
                                    "task_run.completed", "task_run.cancelled", NULL};

static cJSON *build(const wh_event *ev, int expect_rc)
{
    wh__registry *r = wh__registry_new(known);
    char *body = NULL;
    size_t len = 0;
    char err[256] = "";
    int rc = wh__payload_build(r, ev, "evt_test", 1764183600123LL, &body, &len, err, sizeof err);
    wh__registry_free(r);
    ck_assert_msg(rc == expect_rc, "rc %d (%s)", rc, err);
    if (rc != WH_OK)
        return NULL;
    ck_assert_uint_eq(len, strlen(body));
    cJSON *o = cJSON_Parse(body);
    ck_assert_ptr_nonnull(o);
    free(body);
    return o;
}

static const char *str(cJSON *o, const char *k)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(cJSON_IsString(v), "%s is not a string", k);
    return v->valuestring;
}

START_TEST(task_event_has_exactly_the_six_fields)
{
    cJSON *o = build(&(wh_event){.event_type = "task_run.completed", .run_id = "run_42",
                                 .task_id = "task_7", .status = "completed"},
                     WH_OK);
    ck_assert_int_eq(cJSON_GetArraySize(o), 6);
    ck_assert_str_eq(str(o, "id"), "evt_test");
    ck_assert_str_eq(str(o, "event_type"), "task_run.completed");
    ck_assert_str_eq(str(o, "run_id"), "run_42");
    ck_assert_str_eq(str(o, "task_id"), "task_7");
    ck_assert_str_eq(str(o, "status"), "completed");
    ck_assert_str_eq(str(o, "timestamp"), "2025-11-26T19:00:00.123Z");
    cJSON_Delete(o);
}
END_TEST

START_TEST(workflow_event_has_null_task_id_and_given_time)
{
    cJSON *o = build(&(wh_event){.event_type = "workflow_run.failed", .run_id = "r",
                                 .status = "failed", .timestamp_ms = 1795719600007LL},
                     WH_OK);
    ck_assert_int_eq(cJSON_GetArraySize(o), 6);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "task_id")));
    ck_assert_str_eq(str(o, "timestamp"), "2026-11-26T19:00:00.007Z");
    cJSON_Delete(o);
}
END_TEST

START_TEST(special_characters_round_trip)
{
    const char *run = "run \"quoted\" \\ back\\slash";
    const char *task = "t\xc3\xa2" "che-\xe6\x97\xa5\xe6\x9c\xac-\xf0\x9f\x9a\x80"; /* tâche-日本-🚀 */
    cJSON *o = build(&(wh_event){.event_type = "task_run.cancelled", .run_id = run,
                                 .task_id = task, .status = "cancelled"},
                     WH_OK);
    ck_assert_str_eq(str(o, "run_id"), run);
    ck_assert_str_eq(str(o, "task_id"), task);
    cJSON_Delete(o);
}
END_TEST

static void expect_refused(const wh_event *ev, const char *field)
{
    wh__registry *r = wh__registry_new(known);
    char *body = NULL;
    size_t len = 0;
    char err[256] = "";
    ck_assert_int_eq(wh__payload_build(r, ev, "evt_x", 1, &body, &len, err, sizeof err), WH_ERR_INVALID);
    ck_assert_msg(strncmp(err, field, strlen(field)) == 0, "error \"%s\" should name %s", err, field);
    ck_assert_ptr_null(body);
    wh__registry_free(r);
}

START_TEST(bad_input_is_refused_naming_the_field)
{
    char long_id[300];
    memset(long_id, 'a', 256);
    long_id[256] = '\0';
    expect_refused(NULL, "event");
    expect_refused(&(wh_event){.run_id = "r", .status = "s"}, "event_type");
    expect_refused(&(wh_event){.event_type = "task_run.exploded", .run_id = "r", .task_id = "t", .status = "s"}, "event_type");
    expect_refused(&(wh_event){.event_type = "task_run.completed", .task_id = "t", .status = "s"}, "run_id");
    expect_refused(&(wh_event){.event_type = "task_run.completed", .run_id = "", .task_id = "t", .status = "s"}, "run_id");
    expect_refused(&(wh_event){.event_type = "task_run.completed", .run_id = "r", .status = "s"}, "task_id");
    expect_refused(&(wh_event){.event_type = "task_run.completed", .run_id = "r", .task_id = "t"}, "status");
    expect_refused(&(wh_event){.event_type = "workflow_run.started", .run_id = "r", .task_id = "t", .status = "s"}, "task_id");
    expect_refused(&(wh_event){.event_type = "workflow_run.started", .run_id = long_id, .status = "s"}, "run_id");
    expect_refused(&(wh_event){.event_type = "workflow_run.started", .run_id = "a\r\nb", .status = "s"}, "run_id");
    expect_refused(&(wh_event){.event_type = "workflow_run.started", .run_id = "r", .status = "x\x01"}, "status");
    expect_refused(&(wh_event){.event_type = "workflow_run.started", .run_id = "\xff\xfe", .status = "s"}, "run_id");
    expect_refused(&(wh_event){.event_type = "workflow_run.started", .run_id = "\xc0\xaf", .status = "s"}, "run_id");
    expect_refused(&(wh_event){.event_type = "workflow_run.started", .run_id = "r", .status = "s", .timestamp_ms = -5}, "timestamp_ms");
    long_id[255] = '\0'; /* 255 bytes is the most allowed */
    cJSON_Delete(build(&(wh_event){.event_type = "workflow_run.started", .run_id = long_id, .status = "s"}, WH_OK));
}
END_TEST

START_TEST(emit_ids_are_unique_and_long_enough)
{
    char err[256];
    wh_ctx *ctx = wh_new(NULL, err, sizeof err);
    ck_assert_ptr_nonnull(ctx);
    regex_t re;
    ck_assert_int_eq(regcomp(&re, "^evt_[0-9a-z]{30}$", REG_EXTENDED | REG_NOSUB), 0);
    enum { N = 2000 };
    char (*ids)[WH_ID_MAX] = calloc(N, WH_ID_MAX);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(wh_emit(ctx, &(wh_event){.event_type = "workflow_run.started", .run_id = "r", .status = "started"}, ids[i]), 0);
        ck_assert_int_eq(regexec(&re, ids[i], 0, NULL, 0), 0);
    }
    /* ids sort by creation time (to the millisecond): the last is after the first */
    usleep(2000);
    char later[WH_ID_MAX];
    wh_emit(ctx, &(wh_event){.event_type = "workflow_run.started", .run_id = "r", .status = "started"}, later);
    ck_assert_int_lt(strcmp(ids[0], later), 0);
    qsort(ids, N, WH_ID_MAX, (int (*)(const void *, const void *))strcmp);
    for (int i = 1; i < N; i++)
        ck_assert_str_ne(ids[i - 1], ids[i]);
    /* a refused emit names the field through wh_last_error */
    ck_assert_int_eq(wh_emit(ctx, &(wh_event){.event_type = "task_run.completed", .run_id = "r", .status = "s"}, NULL), WH_ERR_INVALID);
    ck_assert_int_eq(strncmp(wh_last_error(), "task_id", 7), 0);
    regfree(&re);
    free(ids);
    wh_destroy(ctx);
}
END_TEST

START_TEST(ids_differ_between_parent_and_forked_child)
{
    char first[WH_ID_MAX], parent[WH_ID_MAX], child[WH_ID_MAX] = "";
    ck_assert_int_eq(wh__new_id("evt_", first), WH_OK); /* fills this thread's random block */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        char id[WH_ID_MAX];
        wh__new_id("evt_", id);
        _exit(write(p[1], id, WH_ID_MAX) == WH_ID_MAX ? 0 : 1);
    }
    ck_assert_int_eq(wh__new_id("evt_", parent), WH_OK);
    ck_assert_int_eq(read(p[0], child, WH_ID_MAX), WH_ID_MAX);
    waitpid(pid, NULL, 0);
    /* the random part (after the 10 time digits) must differ */
    ck_assert_str_ne(parent + 14, child + 14);
    close(p[0]);
    close(p[1]);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("payload");
    TCase *tc = tcase_create("payload");
    tcase_add_test(tc, task_event_has_exactly_the_six_fields);
    tcase_add_test(tc, workflow_event_has_null_task_id_and_given_time);
    tcase_add_test(tc, special_characters_round_trip);
    tcase_add_test(tc, bad_input_is_refused_naming_the_field);
    tcase_add_test(tc, emit_ids_are_unique_and_long_enough);
    tcase_add_test(tc, ids_differ_between_parent_and_forked_child);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
