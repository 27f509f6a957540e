/* The test HTTP receiver: see receiver.h. */
#include "receiver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "webhook/webhook.h"

#define RCV_BODY_MAX (64u * 1024 * 1024) /* larger bodies are answered 413 */
#define RCV_CONN_TIMEOUT_S 120u
#define RCV_HEADER_MAX 256 /* retry_after / location values kept for one answer */

typedef struct script {
    struct script *next;
    char *path;
    rcv_rule *rules; /* strings owned */
    size_t n, used;
    rcv_rule after; /* strings owned */
} script;

typedef struct secret_entry {
    struct secret_entry *next;
    char *path, *secret;
} secret_entry;

typedef struct first_entry {
    struct first_entry *next;
    char *path;
    int status;
} first_entry;

struct rcv {
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast on each new request and on stop */
    bool stopping;
    script *scripts;
    secret_entry *secrets;
    first_entry *firsts; /* rcv_fail_first */
    rcv_request *reqs;
    size_t nreq, cap;
    size_t bad_signatures;
};

/* Per-request state while MHD receives one request. */
typedef struct upload {
    rcv_request q;
    size_t cap;
    bool too_big;
} upload;

static int64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void copy_header(struct MHD_Connection *c, const char *name, char *dst, size_t len)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    snprintf(dst, len, "%s", v ? v : "");
}

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    char *all = cls;
    size_t len = strlen(all);
    snprintf(all + len, sizeof ((rcv_request *)0)->headers - len, "%s: %s\n", key,
             value ? value : "");
    return MHD_YES;
}

static void free_rule_strings(rcv_rule *rule)
{
    free((char *)rule->retry_after);
    free((char *)rule->location);
    rule->retry_after = rule->location = NULL;
}

static bool copy_rule(rcv_rule *dst, const rcv_rule *src)
{
    *dst = *src;
    dst->retry_after = dup_or_null(src->retry_after);
    dst->location = dup_or_null(src->location);
    if ((src->retry_after && !dst->retry_after) || (src->location && !dst->location)) {
        free_rule_strings(dst);
        return false;
    }
    return true;
}

static void free_script(script *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free_rule_strings(&s->rules[i]);
    free_rule_strings(&s->after);
    free(s->rules);
    free(s->path);
    free(s);
}

/* Called with r->mu held. */
static script *find_script(rcv *r, const char *path)
{
    for (script *s = r->scripts; s; s = s->next)
        if (strcmp(s->path, path) == 0)
            return s;
    return NULL;
}

/* Called with r->mu held. */
static secret_entry *find_secret(rcv *r, const char *path)
{
    for (secret_entry *e = r->secrets; e; e = e->next)
        if (strcmp(e->path, path) == 0)
            return e;
    return NULL;
}

/* Sleeps up to ms, cut short by rcv_stop. */
static void interruptible_sleep(rcv *r, int ms)
{
    if (ms <= 0)
        return;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&r->mu);
}

static bool append_body(upload *u, const char *data, size_t len)
{
    if (u->too_big || len > RCV_BODY_MAX - u->q.body_len) {
        u->too_big = true;
        return true; /* keep reading, discard */
    }
    size_t need = u->q.body_len + len + 1;
    if (need > u->cap) {
        size_t cap = u->cap ? u->cap : 4096;
        while (cap < need)
            cap *= 2;
        char *nb = realloc(u->q.body, cap);
        if (!nb)
            return false;
        u->q.body = nb;
        u->cap = cap;
    }
    memcpy(u->q.body + u->q.body_len, data, len);
    u->q.body_len += len;
    u->q.body[u->q.body_len] = '\0';
    return true;
}

static enum MHD_Result answer(rcv *r, struct MHD_Connection *c, upload *u)
{
    if (!u->q.body) {
        u->q.body = malloc(1);
        if (!u->q.body)
            return MHD_NO;
        u->q.body[0] = '\0';
    }

    /* Check the signature outside the lock (wh_verify does real work). */
    char *secret = NULL;
    pthread_mutex_lock(&r->mu);
    secret_entry *se = find_secret(r, u->q.path);
    if (se)
        secret = strdup(se->secret);
    pthread_mutex_unlock(&r->mu);
    u->q.signature_ok = -1;
    if (secret) {
        int rc = wh_verify(secret, u->q.webhook_id, u->q.webhook_timestamp,
                           u->q.webhook_signature, u->q.body, u->q.body_len, 0, 0);
        u->q.signature_ok = rc == WH_OK;
        free(secret);
    }

    /* Choose the answer and record the request in one step, so arrival order and script
     * order agree. */
    rcv_rule rule = {.status = 204};
    char retry_after[RCV_HEADER_MAX] = "", location[RCV_HEADER_MAX] = "";
    pthread_mutex_lock(&r->mu);
    script *s = find_script(r, u->q.path);
    if (s) {
        const rcv_rule *src = s->used < s->n ? &s->rules[s->used++] : &s->after;
        rule = *src;
        if (src->retry_after)
            snprintf(retry_after, sizeof retry_after, "%s", src->retry_after);
        if (src->location)
            snprintf(location, sizeof location, "%s", src->location);
    }
    for (first_entry *f = r->firsts; f; f = f->next) {
        if (strcmp(f->path, u->q.path) != 0)
            continue;
        bool seen = false;
        for (size_t i = 0; i < r->nreq && !seen; i++)
            seen = strcmp(r->reqs[i].path, u->q.path) == 0 &&
                   strcmp(r->reqs[i].webhook_id, u->q.webhook_id) == 0;
        if (!seen)
            rule.status = f->status;
    }
    if (u->too_big)
        rule.status = 413; /* Content Too Large */
    u->q.status_sent = rule.status;
    u->q.received_ms = realtime_ms();
    if (u->q.signature_ok == 0)
        r->bad_signatures++;
    if (r->nreq == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        rcv_request *nr = realloc(r->reqs, cap * sizeof *nr);
        if (nr) {
            r->reqs = nr;
            r->cap = cap;
        }
    }
    if (r->nreq < r->cap) {
        r->reqs[r->nreq++] = u->q; /* the stored copy owns the body now */
        u->q.body = NULL;
        u->q.body_len = 0;
        u->cap = 0;
    } else {
        fprintf(stderr, "receiver: out of memory, request to %s not recorded\n", u->q.path);
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);

    interruptible_sleep(r, rule.delay_ms);

    char text[64] = "";
    if (rule.status != MHD_HTTP_NO_CONTENT && rule.status != MHD_HTTP_NOT_MODIFIED &&
        rule.status >= 200)
        snprintf(text, sizeof text, "status %d\n", rule.status);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    if (text[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
    if (retry_after[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry_after);
    if (location[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)rule.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)method;
    (void)version;
    rcv *r = cls;
    upload *u = *con_cls;
    if (!u) {
        u = calloc(1, sizeof *u);
        if (!u)
            return MHD_NO;
        snprintf(u->q.path, sizeof u->q.path, "%s", url ? url : "/");
        copy_header(c, "webhook-id", u->q.webhook_id, sizeof u->q.webhook_id);
        copy_header(c, "webhook-timestamp", u->q.webhook_timestamp,
                    sizeof u->q.webhook_timestamp);
        copy_header(c, "webhook-signature", u->q.webhook_signature,
                    sizeof u->q.webhook_signature);
        copy_header(c, MHD_HTTP_HEADER_CONTENT_TYPE, u->q.content_type,
                    sizeof u->q.content_type);
        copy_header(c, MHD_HTTP_HEADER_USER_AGENT, u->q.user_agent, sizeof u->q.user_agent);
        MHD_get_connection_values(c, MHD_HEADER_KIND, add_header, u->q.headers);
        *con_cls = u;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!append_body(u, upload_data, *upload_data_size))
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    return answer(r, c, u);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    upload *u = *con_cls;
    if (u) {
        free(u->q.body);
        free(u);
        *con_cls = NULL;
    }
}

rcv *rcv_start(void)
{
    rcv *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = 0;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                MHD_USE_POLL,
                            0, NULL, NULL, on_request, r,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_CONNECTION_TIMEOUT, RCV_CONN_TIMEOUT_S,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, r,
                            MHD_OPTION_END);
    if (!r->d) {
        rcv_stop(r);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(r->d, MHD_DAEMON_INFO_BIND_PORT);
    r->port = info ? (int)info->port : 0;
    if (r->port <= 0) {
        rcv_stop(r);
        return NULL;
    }
    return r;
}

int rcv_port(const rcv *r)
{
    return r ? r->port : -1;
}

const char *rcv_url(const rcv *r, const char *path, char *buf, size_t len)
{
    if (!path)
        path = "/";
    snprintf(buf, len, "http://127.0.0.1:%d%s%s", rcv_port(r), path[0] == '/' ? "" : "/",
             path);
    return buf;
}

void rcv_script(rcv *r, const char *path, const rcv_rule *rules, size_t n, rcv_rule after)
{
    script *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path ? path : "/")))
        goto fail;
    if (n) {
        s->rules = calloc(n, sizeof *s->rules);
        if (!s->rules)
            goto fail;
        for (; s->n < n; s->n++)
            if (!copy_rule(&s->rules[s->n], &rules[s->n]))
                goto fail;
    }
    if (!copy_rule(&s->after, &after))
        goto fail;

    pthread_mutex_lock(&r->mu);
    script **pp = &r->scripts;
    while (*pp && strcmp((*pp)->path, s->path) != 0)
        pp = &(*pp)->next;
    script *old = *pp;
    if (old) {
        s->next = old->next;
        *pp = s;
    } else {
        s->next = r->scripts;
        r->scripts = s;
    }
    pthread_mutex_unlock(&r->mu);
    free_script(old);
    return;
fail:
    fprintf(stderr, "receiver: out of memory scripting %s\n", path ? path : "/");
    free_script(s);
}

void rcv_fail_first(rcv *r, const char *path, int status)
{
    first_entry *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path ? path : "/"))) {
        fprintf(stderr, "receiver: out of memory scripting %s\n", path ? path : "/");
        free(f);
        return;
    }
    f->status = status;
    pthread_mutex_lock(&r->mu);
    f->next = r->firsts;
    r->firsts = f;
    pthread_mutex_unlock(&r->mu);
}

/* Called with r->mu held. */
static size_t count_locked(rcv *r, const char *path)
{
    if (!path)
        return r->nreq;
    size_t n = 0;
    for (size_t i = 0; i < r->nreq; i++)
        if (strcmp(r->reqs[i].path, path) == 0)
            n++;
    return n;
}

size_t rcv_count(rcv *r, const char *path)
{
    pthread_mutex_lock(&r->mu);
    size_t n = count_locked(r, path);
    pthread_mutex_unlock(&r->mu);
    return n;
}

int rcv_get(rcv *r, size_t i, rcv_request *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&r->mu);
    if (i >= r->nreq) {
        pthread_mutex_unlock(&r->mu);
        return -1;
    }
    *out = r->reqs[i];
    out->body = malloc(out->body_len + 1);
    if (out->body) {
        memcpy(out->body, r->reqs[i].body, out->body_len);
        out->body[out->body_len] = '\0';
    }
    pthread_mutex_unlock(&r->mu);
    if (!out->body) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    return 0;
}

void rcv_request_free(rcv_request *q)
{
    if (!q)
        return;
    free(q->body);
    q->body = NULL;
    q->body_len = 0;
}

bool rcv_wait(rcv *r, const char *path, size_t n, int timeout_ms)
{
    if (timeout_ms < 0)
        timeout_ms = 0;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->mu);
    bool ok;
    while (!(ok = count_locked(r, path) >= n) && !r->stopping) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT) {
            ok = count_locked(r, path) >= n;
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

void rcv_set_secret(rcv *r, const char *path, const char *secret)
{
    if (!path)
        path = "/";
    pthread_mutex_lock(&r->mu);
    secret_entry **pp = &r->secrets;
    while (*pp && strcmp((*pp)->path, path) != 0)
        pp = &(*pp)->next;
    secret_entry *e = *pp;
    if (!secret) { /* unset */
        if (e) {
            *pp = e->next;
            free(e->path);
            free(e->secret);
            free(e);
        }
    } else if (e) {
        char *s = strdup(secret);
        if (s) {
            free(e->secret);
            e->secret = s;
        }
    } else if ((e = calloc(1, sizeof *e))) {
        e->path = strdup(path);
        e->secret = strdup(secret);
        if (e->path && e->secret) {
            e->next = r->secrets;
            r->secrets = e;
        } else {
            free(e->path);
            free(e->secret);
            free(e);
        }
    }
    pthread_mutex_unlock(&r->mu);
}

size_t rcv_bad_signatures(rcv *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->bad_signatures;
    pthread_mutex_unlock(&r->mu);
    return n;
}

void rcv_stop(rcv *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true; /* cuts short delays and waits */
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (r->d)
        MHD_stop_daemon(r->d);
    while (r->firsts) {
        first_entry *f = r->firsts;
        r->firsts = f->next;
        free(f->path);
        free(f);
    }
    while (r->scripts) {
        script *s = r->scripts;
        r->scripts = s->next;
        free_script(s);
    }
    while (r->secrets) {
        secret_entry *e = r->secrets;
        r->secrets = e->next;
        free(e->path);
        free(e->secret);
        free(e);
    }
    for (size_t i = 0; i < r->nreq; i++)
        free(r->reqs[i].body);
    free(r->reqs);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* ---- dead and closed endpoints ------------------------------------------ */

static int bound_socket(int port, int *port_out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        close(fd);
        return -1;
    }
    *port_out = ntohs(sa.sin_port);
    return fd;
}

int blackhole_start(int *port)
{
    int p;
    int fd = bound_socket(0, &p);
    if (fd < 0)
        return -1;
    /* The kernel completes handshakes into the backlog; nobody ever accepts them. */
    if (listen(fd, 128) != 0) {
        close(fd);
        return -1;
    }
    if (port)
        *port = p;
    return fd;
}

void blackhole_stop(int fd)
{
    if (fd >= 0)
        close(fd);
}

int closed_port(void)
{
    /* Prefer a port below the ephemeral range, so that a client's own source port can never
     * be it (which on Linux could turn a connect into a self-connection). */
    int lo = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        int a, b;
        if (fscanf(f, "%d %d", &a, &b) == 2 && a > 0)
            lo = a;
        fclose(f);
    }
    if (lo > 11000) {
        unsigned seed = (unsigned)getpid() ^ (unsigned)realtime_ms();
        for (int i = 0; i < 64; i++) {
            int want = 10000 + (int)(rand_r(&seed) % (unsigned)(lo - 10000));
            int got;
            int fd = bound_socket(want, &got);
            if (fd >= 0) {
                close(fd); /* bound, never listened: nothing in TIME_WAIT */
                return got;
            }
        }
    }
    int got;
    int fd = bound_socket(0, &got);
    if (fd < 0)
        return -1;
    close(fd);
    return got;
}
