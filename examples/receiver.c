/* An example webhook receiver: checks each delivery's signature with libwebhook's
 * wh_verify and prints one line per event.
 *
 *   receiver --port P --secret S
 *
 * Listens on 127.0.0.1:P (P = 0 picks a free port). Line 1 on stdout is "listening on PORT";
 * then, for each POST:
 *
 *   <time> <path> <webhook-id> <event_type> <run_id> <task_id> <status> signature=ok|BAD
 *
 * ("-" for a missing field). Answers: /fail-twice -> 500 for the first two requests with a
 * given webhook-id, then 204; /gone -> 410; any other path -> 204; a method other than
 * POST -> 405. Stops on SIGINT or SIGTERM.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "webhook/webhook.h"

#define BODY_MAX (1024 * 1024) /* larger bodies get 413 */
#define SEEN_MAX 4096          /* webhook-ids remembered for /fail-twice */

static const char *g_secret;

/* webhook-id -> requests seen on /fail-twice; the oldest entry is reused when full.
 * MHD runs one internal thread here, so no locking is needed. */
static struct {
    char id[128];
    int count;
} g_seen[SEEN_MAX];
static size_t g_seen_len, g_seen_next;

static int seen_bump(const char *id)
{
    for (size_t i = 0; i < g_seen_len; i++)
        if (strcmp(g_seen[i].id, id) == 0)
            return ++g_seen[i].count;
    size_t slot;
    if (g_seen_len < SEEN_MAX) {
        slot = g_seen_len++;
    } else {
        slot = g_seen_next;
        g_seen_next = (g_seen_next + 1) % SEEN_MAX;
    }
    snprintf(g_seen[slot].id, sizeof g_seen[slot].id, "%s", id);
    g_seen[slot].count = 1;
    return 1;
}

typedef struct request {
    char *body;
    size_t len;
    bool too_big;
} request;

static const char *header(struct MHD_Connection *c, const char *name)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    return v ? v : "";
}

/* Prints s as one token: "-" when empty, blanks and control characters as '?'. */
static void put_token(const char *s)
{
    if (!s || !*s) {
        fputs("-", stdout);
        return;
    }
    for (; *s; s++)
        putchar((unsigned char)*s <= ' ' || *s == 0x7f ? '?' : *s);
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) {
        /* some payloads nest the event under "data" */
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");
        v = cJSON_IsObject(data) ? cJSON_GetObjectItemCaseSensitive(data, key) : NULL;
    }
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void print_event(const char *path, const char *id, const request *q, bool sig_ok)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    printf("%s.%03ldZ ", when, ts.tv_nsec / 1000000);

    cJSON *o = cJSON_ParseWithLength(q->body ? q->body : "", q->len);
    const char *fields[] = {"event_type", "run_id", "task_id", "status"};
    put_token(path);
    putchar(' ');
    put_token(id);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        putchar(' ');
        put_token(o ? json_str(o, fields[i]) : NULL);
    }
    printf(" signature=%s\n", sig_ok ? "ok" : "BAD");
    fflush(stdout);
    cJSON_Delete(o);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)cls;
    (void)version;
    request *q = *con_cls;
    if (!q) { /* headers are in; the body (if any) follows */
        q = calloc(1, sizeof *q);
        if (!q)
            return MHD_NO;
        *con_cls = q;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (q->too_big || n > BODY_MAX - q->len) {
            q->too_big = true;
            return MHD_YES;
        }
        char *nb = realloc(q->body, q->len + n + 1);
        if (!nb)
            return MHD_NO;
        memcpy(nb + q->len, upload_data, n);
        q->body = nb;
        q->len += n;
        q->body[q->len] = '\0';
        return MHD_YES;
    }

    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED);
    if (q->too_big)
        return reply(c, 413);

    const char *id = header(c, "webhook-id");
    int rc = wh_verify(g_secret, id, header(c, "webhook-timestamp"),
                       header(c, "webhook-signature"), q->body ? q->body : "", q->len, 0, 0);
    print_event(url, id, q, rc == WH_OK);

    if (strcmp(url, "/fail-twice") == 0)
        return reply(c, seen_bump(id) <= 2 ? MHD_HTTP_INTERNAL_SERVER_ERROR
                                           : MHD_HTTP_NO_CONTENT);
    if (strcmp(url, "/gone") == 0)
        return reply(c, MHD_HTTP_GONE);
    return reply(c, MHD_HTTP_NO_CONTENT);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    request *q = *con_cls;
    if (q) {
        free(q->body);
        free(q);
        *con_cls = NULL;
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: receiver --port PORT --secret whsec_...\n");
    return 2;
}

int main(int argc, char **argv)
{
    long port = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end;
            port = strtol(argv[++i], &end, 10);
            if (*end || port < 0 || port > 65535)
                return usage();
        } else if (strcmp(argv[i], "--secret") == 0 && i + 1 < argc) {
            g_secret = argv[++i];
        } else {
            return usage();
        }
    }
    if (port < 0 || !g_secret)
        return usage();

    /* Block the stop signals before MHD starts its thread, then wait for them here. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL, on_request, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT, 60u,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "receiver: cannot listen on 127.0.0.1:%ld\n", port);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("listening on %u\n", info ? (unsigned)info->port : (unsigned)port);
    fflush(stdout);

    int sig = 0;
    sigwait(&stop, &sig);
    MHD_stop_daemon(d);
    fprintf(stderr, "receiver: stopped by signal %d\n", sig);
    return 0;
}
