/* Events: one allocation each, built once and shared by every delivery and attempt. */
#include <stdlib.h>
#include <string.h>

#include "event.h"

wh__event *wh__event_new(const char *id, const char *type, const char *body, size_t body_len)
{
    return wh__event_new_run(id, type, NULL, body, body_len);
}

wh__event *wh__event_new_run(const char *id, const char *type, const char *run_id,
                             const char *body, size_t body_len)
{
    size_t id_len = strlen(id), type_len = strlen(type), run_len = run_id ? strlen(run_id) + 1 : 0;
    if (id_len >= WH_ID_MAX || type_len >= WH_ID_MAX)
        return NULL;
    wh__event *ev = malloc(sizeof *ev + id_len + type_len + run_len + body_len + 3);
    if (!ev)
        return NULL;
    char *p = ev->data;
    ev->id = memcpy(p, id, id_len + 1);
    p += id_len + 1;
    ev->type = memcpy(p, type, type_len + 1);
    p += type_len + 1;
    ev->run_id = run_id ? memcpy(p, run_id, run_len) : NULL;
    p += run_len;
    memcpy(p, body, body_len);
    p[body_len] = '\0';
    ev->body = p;
    ev->body_len = body_len;
    ev->refs = 1;
    ev->seq = 0;
    return ev;
}

void wh__event_unref(wh__event *ev)
{
    /* emitting threads drop their reference without the context lock */
    if (ev && __atomic_sub_fetch(&ev->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(ev);
}
