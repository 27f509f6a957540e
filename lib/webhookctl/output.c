/* webhookctl's output: aligned tables and JSON lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "output.h"
#include "payload.h"
#include "util.h"

char *ctl_clean_copy(const char *s)
{
    char *c = wh__strdup(s ? s : "");
    for (char *p = c; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return c;
}

static size_t display_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        w += (*p & 0xc0) != 0x80; /* count UTF-8 lead bytes */
    return w;
}

void ctl_table_add(table *t, const char *const *row)
{
    if (t->oom)
        return;
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        char **v = realloc(t->cells, cap * t->ncols * sizeof *v);
        if (!v) {
            t->oom = true;
            return;
        }
        t->cells = v, t->cap = cap;
    }
    char **dst = &t->cells[t->nrows * t->ncols];
    for (size_t i = 0; i < t->ncols; i++)
        if (!(dst[i] = ctl_clean_copy(row[i] && *row[i] ? row[i] : "-")))
            t->oom = true;
    t->nrows++;
}

int ctl_table_print(table *t)
{
    size_t width[16] = {0};
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t i = 0; i < t->ncols; i++) {
            const char *cell = t->cells[r * t->ncols + i];
            size_t w = cell ? display_width(cell) : 0;
            if (w > width[i])
                width[i] = w;
        }
    for (size_t r = 0; !t->oom && r < t->nrows; r++) {
        for (size_t i = 0; i < t->ncols; i++) {
            const char *cell = t->cells[r * t->ncols + i];
            bool last = i + 1 == t->ncols;
            fputs(cell, stdout);
            if (!last)
                printf("%*s", (int)(width[i] - display_width(cell) + 2), "");
        }
        putchar('\n');
    }
    for (size_t k = 0; k < t->nrows * t->ncols; k++)
        free(t->cells[k]);
    free(t->cells);
    return t->oom ? ctl_fail("out of memory") : EXIT_OK;
}

void ctl_format_time(int64_t ms, char out[32])
{
    if (ms <= 0)
        snprintf(out, 32, "-");
    else
        wh__format_rfc3339_ms(ms, out);
}

bool ctl_json_time(cJSON *o, const char *name, int64_t ms)
{
    char when[32];
    if (ms <= 0)
        return cJSON_AddNullToObject(o, name) != NULL;
    wh__format_rfc3339_ms(ms, when);
    return cJSON_AddStringToObject(o, name, when) != NULL;
}

bool ctl_json_text(cJSON *o, const char *name, const char *s)
{
    if (s && *s)
        return cJSON_AddStringToObject(o, name, s) != NULL;
    return cJSON_AddNullToObject(o, name) != NULL;
}

bool ctl_json_number(cJSON *o, const char *name, double v)
{
    return cJSON_AddNumberToObject(o, name, v) != NULL;
}

bool ctl_json_bool(cJSON *o, const char *name, bool v)
{
    return cJSON_AddBoolToObject(o, name, v) != NULL;
}

cJSON *ctl_json_done(cJSON *o, bool ok)
{
    if (ok)
        return o;
    cJSON_Delete(o);
    return NULL;
}

bool ctl_json_print(cJSON *o)
{
    char *line = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!line)
        return false;
    puts(line);
    cJSON_free(line);
    return true;
}

