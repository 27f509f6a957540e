/* The SQLite store's lookups read through their indexes, on a real file made by the library:
 * a log query by event or by endpoint, and the search wh_recover makes, never read the whole
 * table. Told by SQLite's own EXPLAIN QUERY PLAN for the statements the store runs. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log_sql.h"
#include "scratch.h"
#include "store_sqlite.h"
#include "support.h"
#include "webhook/webhook.h"

static char dir[64], db_path[128];
static sqlite3 *db;

/* A store file with the library's current schema, open for EXPLAIN. */
static void setup(void)
{
    scratch_dir_make(dir, sizeof dir, "wh-plan");
    snprintf(db_path, sizeof db_path, "%s/webhooks.db", dir);
    wh_conf *c = wh_conf_new();
    char err[256], store[160];
    snprintf(store, sizeof store, "sqlite:%s", db_path);
    ck_assert_int_eq(wh_conf_set(c, "store", store, err, sizeof err), WH_OK);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    wh_destroy(ctx);
    ck_assert_int_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
}

static void teardown(void)
{
    sqlite3_close(db);
    scratch_dir_remove(dir);
}

/* EXPLAIN QUERY PLAN's steps, joined by " | ". */
static void plan_of(const char *sql, char *out, size_t len)
{
    char explain[1024];
    snprintf(explain, sizeof explain, "EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *st;
    ck_assert_msg(sqlite3_prepare_v2(db, explain, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql,
                  sqlite3_errmsg(db));
    out[0] = '\0';
    while (sqlite3_step(st) == SQLITE_ROW) {
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%s%s", used ? " | " : "",
                 (const char *)sqlite3_column_text(st, 3));
    }
    sqlite3_finalize(st);
}

START_TEST(log_query_by_event_or_endpoint_searches_its_index)
{
    static const struct {
        wh_log_filter f;
        const char *index;
    } cases[] = {
        {{.event_id = "evt_1"}, "SEARCH attempts USING INDEX attempts_by_event"},
        {{.event_id = "evt_1", .endpoint_id = "ep_1"}, "SEARCH attempts USING INDEX attempts_by_event"},
        {{.event_id = "evt_1", .event_type = "a.b"}, "SEARCH attempts USING INDEX attempts_by_event"},
        {{.endpoint_id = "ep_1"}, "SEARCH attempts USING INDEX attempts_by_endpoint"},
        {{.endpoint_id = "ep_1", .event_type = "a.b"}, "SEARCH attempts USING INDEX attempts_by_endpoint"},
        /* newest first with no text filter: the time index, read from its end */
        {{.since_ms = 1}, "SCAN attempts USING INDEX attempts_by_time"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char plan[512];
        plan_of(wh__log_sql(wh__log_shape(&cases[i].f), false), plan, sizeof plan);
        ck_assert_msg(strstr(plan, cases[i].index) != NULL, "case %zu: %s", i, plan);
    }
}
END_TEST

START_TEST(finished_deliveries_are_found_by_endpoint)
{
    char plan[512];
    plan_of(wh__sqlite_finished_sql, plan, sizeof plan);
    ck_assert_msg(strstr(plan, "USING INDEX deliveries_finished") != NULL, "%s", plan);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("store_plan");
    TCase *tc = tcase_create("store_plan");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, log_query_by_event_or_endpoint_searches_its_index);
    tcase_add_test(tc, finished_deliveries_are_found_by_endpoint);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }
