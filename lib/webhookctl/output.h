/* Private to webhookctl: tables for people and awk (single-word headers, "-" for an empty
 * cell, free text only in the last column) and JSON lines, each addition checked. */
#ifndef WEBHOOKCTL_OUTPUT_H
#define WEBHOOKCTL_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

typedef struct table {
    size_t ncols, nrows, cap;
    char **cells; /* nrows * ncols, row-major */
    bool oom;
} table;

/* A copy of s fit for one table cell: control characters become '?'. */
char *ctl_clean_copy(const char *s);
void ctl_table_add(table *t, const char *const *row);
/* Prints aligned columns (the last one unpadded) and frees the table. */
int ctl_table_print(table *t);
/* RFC 3339 in UTC, or "-" for none (ms <= 0). */
void ctl_format_time(int64_t ms, char out[32]);

/* JSON objects are built with every addition checked: an object missing a member for want
 * of memory is never printed as if it were whole. A time is null when there is none. */
bool ctl_json_time(cJSON *o, const char *name, int64_t ms);
/* A string, or null when there is none (NULL or empty). */
bool ctl_json_text(cJSON *o, const char *name, const char *s);
bool ctl_json_number(cJSON *o, const char *name, double v);
bool ctl_json_bool(cJSON *o, const char *name, bool v);
/* Deletes o and returns NULL unless ok. */
cJSON *ctl_json_done(cJSON *o, bool ok);
/* Prints o on one line and deletes it; false when out of memory (o NULL included). */
bool ctl_json_print(cJSON *o);

#endif
