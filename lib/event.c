/* Events: one allocation each, built once and shared by every delivery and attempt. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "event.h"

wh__event *wh__event_new(wh__pool *pool, const char *id, const char *type, const char *run_id,
                         const char *task_id, const char *body, size_t body_len)
{
    size_t id_len = strlen(id), type_len = strlen(type);
    size_t run_len = run_id ? strlen(run_id) : 0, task_len = task_id ? strlen(task_id) : 0;
    if (id_len >= WH_ID_MAX || type_len >= WH_ID_MAX)
        return NULL;
    wh__event *ev =
        wh__pool_alloc(pool, sizeof *ev + id_len + type_len + run_len + task_len + body_len + 5);
    if (!ev)
        return NULL;
    char *p = ev->data;
    ev->id = memcpy(p, id, id_len + 1);
    p += id_len + 1;
    ev->type = memcpy(p, type, type_len + 1);
    p += type_len + 1;
    ev->run_id = run_id ? memcpy(p, run_id, run_len + 1) : NULL;
    p += run_len + 1;
    ev->task_id = task_id ? memcpy(p, task_id, task_len + 1) : NULL;
    p += task_len + 1;
    memcpy(p, body, body_len);
    p[body_len] = '\0';
    ev->body = p;
    ev->body_len = body_len;
    ev->refs = 1;
    ev->seq = 0;
    return ev;
}

wh__event *wh__event_from_body(wh__pool *pool, const char *id, const char *type, const char *body,
                               size_t body_len)
{
    /* the body is the library's own (payload.c): its run_id and task_id are those given at
     * emit; a body that does not parse still delivers, its attempts without them */
    cJSON *o = body ? cJSON_ParseWithLength(body, body_len) : NULL;
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(o, "run_id");
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(o, "task_id");
    wh__event *ev = wh__event_new(pool, id, type, cJSON_IsString(run) ? run->valuestring : NULL,
                                  cJSON_IsString(task) ? task->valuestring : NULL, body,
                                  body_len);
    cJSON_Delete(o);
    return ev;
}

void wh__event_unref(wh__event *ev)
{
    /* emitting threads drop their reference without the context lock */
    if (ev && __atomic_sub_fetch(&ev->refs, 1, __ATOMIC_ACQ_REL) == 0)
        wh__pool_free(ev);
}
