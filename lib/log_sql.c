/* A log query names a column only for the filters it was given. A catch-all term such as
 * `(?2 IS NULL OR event_id = ?2)` is planned once for every value, so neither SQLite nor
 * PostgreSQL can take attempts_by_event or attempts_by_endpoint for it: looking up one event
 * read the whole log newest first. With `event_id = ?2` as a term of its own, the planner
 * takes the index. The filters left out still name their parameter (as a term that is always
 * true) so that every statement binds the same seven, and PostgreSQL can type each one. */
#include "log_sql.h"

#include <pthread.h>
#include <stdio.h>

#define WHERE_MAX 400

int wh__log_shape(const wh_log_filter *f)
{
    return f ? (f->endpoint_id ? 1 : 0) | (f->event_id ? 2 : 0) | (f->event_type ? 4 : 0) : 0;
}

static void make_where(char *out, size_t out_len, int shape, bool pg)
{
    const char m = pg ? '$' : '?';
    const char *text = pg ? "::text" : "", *num = pg ? "::bigint" : "";
    static const char *const column[3] = {"endpoint_id", "event_id", "event_type"};
    size_t used = 0;
    for (int i = 0; i < 3 && used < out_len; i++) {
        /* with the event given, SQLite is told (by a unary +) not to search by endpoint:
         * an event's attempts are few, an endpoint's many */
        const char *hint = !pg && i == 0 && (shape & 2) ? "+" : "";
        int w = shape & (1 << i)
                    ? snprintf(out + used, out_len - used, "%s%s = %c%d AND ", hint, column[i], m, i + 1)
                    : snprintf(out + used, out_len - used, "%c%d%s IS NULL AND ", m, i + 1, text);
        used += w > 0 ? (size_t)w : 0;
    }
    if (used < out_len)
        snprintf(out + used, out_len - used,
                 "(%c4%s = 0 OR ((%c4%s >> outcome) & 1) = 1) AND (%c5%s = 0 OR started_ms >= %c5)"
                 " AND (%c6%s = 0 OR started_ms <= %c6)",
                 m, num, m, num, m, num, m, m, num, m);
}

static char statements[2][WH__LOG_SHAPES][WHERE_MAX + 300];
static pthread_once_t made = PTHREAD_ONCE_INIT;

static void make_statements(void)
{
    for (int pg = 0; pg < 2; pg++)
        for (int shape = 0; shape < WH__LOG_SHAPES; shape++) {
            char where[WHERE_MAX];
            make_where(where, sizeof where, shape, pg);
            snprintf(statements[pg][shape], sizeof statements[pg][shape],
                     "SELECT event_id, event_type, endpoint_id, url, attempt, outcome, http_status,"
                     " error, started_ms, duration_us, next_attempt_ms, response_body, redelivery,"
                     " run_id, task_id FROM attempts WHERE %s ORDER BY started_ms DESC, id DESC"
                     " LIMIT %c7",
                     where, pg ? '$' : '?');
        }
}

const char *wh__log_sql(int shape, bool pg)
{
    pthread_once(&made, make_statements);
    return statements[pg][shape];
}
