/* The COMMIT-losing proxy: two threads per connection (one each way, so that neither side's
 * full buffers can stall the other), one accepting. Connections are few (an engine's, its
 * reconnects) and bounded; they are all cut and joined when the proxy stops. */
#include "pgproxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_CONNS 64
#define MAX_STMTS 128
#define MAX_MESSAGE (64 << 20)

enum { FORWARD, FORWARD_THEN_CUT, DROP_AND_CUT };

typedef struct conn {
    pgproxy *p;
    int cfd, sfd;
    pthread_t up, down;
    bool cut;          /* the server's answers are dropped from here on */
    bool drain;        /* ...read until its ReadyForQuery, so that the COMMIT runs to its end */
    bool cut_at_sync;  /* the pipeline's COMMIT went: cut once its Sync has gone too */
    bool txn_write, txn_match;
    int txn_matches; /* statements of this transaction that matched */
    struct {
        char *name, *sql;
    } stmts[MAX_STMTS];
    int n_stmts;
} conn;

struct pgproxy {
    int lfd, port, upstream;
    pthread_t acceptor;
    pthread_mutex_t mu;
    bool stop;
    conn *conns[MAX_CONNS];
    int n_conns;
    char *match;
    int skip, cuts, cut_matches;
    bool armed, forward;
};

static int read_full(int fd, void *buf, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
    for (size_t put = 0; put < n;) {
        ssize_t w = send(fd, (const char *)buf + put, n - put, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        put += (size_t)w;
    }
    return 0;
}

/* One message, whole (its header included in *msg); typed: a type byte first (every message
 * but the startup packet). The body is NUL-terminated one past its end. */
static int read_message(int fd, bool typed, char **msg, size_t *len, size_t *head)
{
    unsigned char h[5];
    *head = typed ? 5 : 4;
    if (read_full(fd, h, *head) != 0)
        return -1;
    const unsigned char *l = h + (typed ? 1 : 0);
    uint32_t n = (uint32_t)l[0] << 24 | (uint32_t)l[1] << 16 | (uint32_t)l[2] << 8 | l[3];
    if (n < 4 || n > MAX_MESSAGE)
        return -1;
    *len = *head + n - 4;
    if (!(*msg = malloc(*len + 1)))
        return -1;
    memcpy(*msg, h, *head);
    if (read_full(fd, *msg + *head, *len - *head) != 0) {
        free(*msg);
        return -1;
    }
    (*msg)[*len] = '\0';
    return 0;
}

static bool starts_with(const char *sql, const char *word)
{
    while (*sql == ' ' || *sql == '\n' || *sql == '\t')
        sql++;
    size_t n = strlen(word);
    return strncasecmp(sql, word, n) == 0 && (sql[n] == '\0' || sql[n] == ';' || sql[n] == ' ');
}

/* A statement runs in the current transaction, for `rows` rows. */
static void ran(conn *c, const char *sql, int rows)
{
    pthread_mutex_lock(&c->p->mu);
    if (c->p->match && strstr(sql, c->p->match)) {
        c->txn_match = true;
        c->txn_matches += rows;
    }
    pthread_mutex_unlock(&c->p->mu);
}

static unsigned be16(const char *p)
{
    return (unsigned)(unsigned char)p[0] << 8 | (unsigned char)p[1];
}

/* The rows a bound statement writes: a batch passes its rows as arrays, one per column, so
 * a first parameter that is an array literal counts its elements; any other counts one. */
static int bound_rows(const char *b, size_t n, size_t at)
{
    if (at + 2 > n)
        return 1;
    at += 2 + 2 * (size_t)be16(b + at); /* the parameters' format codes */
    if (at + 2 > n || be16(b + at) == 0)
        return 1;
    at += 2;
    if (at + 4 > n)
        return 1;
    uint32_t len = (uint32_t)be16(b + at) << 16 | be16(b + at + 2);
    at += 4;
    if (len == 0xffffffffu || len < 2 || at + len > n || b[at] != '{')
        return 1;
    int rows = 1, depth = 0;
    bool quoted = false;
    for (size_t i = at; i < at + len; i++) {
        char ch = b[i];
        if (quoted) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                quoted = false;
        } else if (ch == '"') {
            quoted = true;
        } else if (ch == '{') {
            depth++;
        } else if (ch == '}') {
            depth--;
        } else if (ch == ',' && depth == 1) {
            rows++;
        }
    }
    return b[at + 1] == '}' ? 0 : rows;
}

/* A COMMIT goes: the action for it (and for a pipeline's, what waits for its Sync). */
static int commit_point(conn *c, bool pipelined)
{
    pgproxy *p = c->p;
    int action = FORWARD;
    pthread_mutex_lock(&p->mu);
    if (p->armed && c->txn_write && (!p->match || c->txn_match)) {
        if (p->skip > 0) {
            p->skip--;
        } else {
            p->armed = false;
            p->cuts++;
            p->cut_matches = c->txn_matches;
            c->cut = true; /* before the COMMIT goes: its answer cannot slip through */
            c->drain = p->forward;
            action = !p->forward ? DROP_AND_CUT : pipelined ? FORWARD : FORWARD_THEN_CUT;
            c->cut_at_sync = p->forward && pipelined;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return action;
}

/* What a statement's text means for the transaction, or the action for a COMMIT. */
static int statement(conn *c, const char *sql, bool pipelined)
{
    if (starts_with(sql, "BEGIN") || starts_with(sql, "START")) {
        c->txn_write = !strcasestr(sql, "READ ONLY");
        c->txn_match = false;
        c->txn_matches = 0;
        return FORWARD;
    }
    if (starts_with(sql, "COMMIT") || starts_with(sql, "END"))
        return commit_point(c, pipelined);
    ran(c, sql, 1);
    return FORWARD;
}

static const char *named(const conn *c, const char *name)
{
    for (int i = 0; i < c->n_stmts; i++)
        if (strcmp(c->stmts[i].name, name) == 0)
            return c->stmts[i].sql;
    return NULL;
}

static void remember(conn *c, const char *name, const char *sql)
{
    for (int i = 0; i < c->n_stmts; i++)
        if (strcmp(c->stmts[i].name, name) == 0) {
            free(c->stmts[i].sql);
            c->stmts[i].sql = strdup(sql);
            return;
        }
    if (c->n_stmts < MAX_STMTS) {
        c->stmts[c->n_stmts].name = strdup(name);
        c->stmts[c->n_stmts].sql = strdup(sql);
        c->n_stmts++;
    }
}

/* The action for one client message (body: after the type and length). */
static int client_message(conn *c, char type, const char *body, size_t n)
{
    switch (type) {
    case 'Q':
        return statement(c, body, false);
    case 'P': { /* Parse: name, query */
        const char *name = body, *sql = body + strnlen(body, n) + 1;
        if ((size_t)(sql - body) >= n)
            return FORWARD;
        if (*name) {
            remember(c, name, sql); /* runs later, when a Bind names it */
            return FORWARD;
        }
        return statement(c, sql, true);
    }
    case 'B': { /* Bind: portal, statement, formats, parameters */
        const char *stmt = body + strnlen(body, n) + 1;
        const char *sql = (size_t)(stmt - body) < n && *stmt ? named(c, stmt) : NULL;
        if (sql) {
            size_t at = (size_t)(stmt - body) + strnlen(stmt, n - (size_t)(stmt - body)) + 1;
            ran(c, sql, bound_rows(body, n, at));
        }
        return FORWARD;
    }
    case 'S':
        return c->cut_at_sync ? FORWARD_THEN_CUT : FORWARD;
    default:
        return FORWARD;
    }
}

static void *client_to_server(void *arg)
{
    conn *c = arg;
    bool startup = true;
    for (;;) {
        char *msg;
        size_t len, head;
        if (read_message(c->cfd, !startup, &msg, &len, &head) != 0)
            break;
        int action = FORWARD;
        if (startup) {
            uint32_t code = len >= 8 ? (uint32_t)(unsigned char)msg[4] << 24 |
                                           (uint32_t)(unsigned char)msg[5] << 16 |
                                           (uint32_t)(unsigned char)msg[6] << 8 |
                                           (unsigned char)msg[7]
                                     : 0;
            /* a protocol version (3.0) ends the untyped start; TLS is never asked for */
            startup = code >> 16 != 3;
        } else {
            action = client_message(c, msg[0], msg + head, len - head);
        }
        int w = action == DROP_AND_CUT ? 0 : write_full(c->sfd, msg, len);
        free(msg);
        if (w != 0)
            break;
        if (action == DROP_AND_CUT) {
            shutdown(c->sfd, SHUT_RDWR); /* the server rolls the transaction back */
            break;
        }
        if (action == FORWARD_THEN_CUT) {
            /* the server answers into the void: the other thread drops it, up to its end */
            struct timeval tv = {.tv_sec = 5};
            setsockopt(c->sfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            break;
        }
    }
    shutdown(c->cfd, SHUT_RDWR);
    pthread_mutex_lock(&c->p->mu);
    bool drain = c->drain;
    pthread_mutex_unlock(&c->p->mu);
    if (!drain)
        shutdown(c->sfd, SHUT_RDWR);
    return NULL;
}

static void *server_to_client(void *arg)
{
    conn *c = arg;
    for (;;) {
        char *msg;
        size_t len, head;
        if (read_message(c->sfd, true, &msg, &len, &head) != 0)
            break;
        pthread_mutex_lock(&c->p->mu);
        bool cut = c->cut, drain = c->drain;
        pthread_mutex_unlock(&c->p->mu);
        int w = cut ? 0 : write_full(c->cfd, msg, len);
        char type = msg[0];
        free(msg);
        if (w != 0 || (cut && (!drain || type == 'Z')))
            break;
    }
    shutdown(c->sfd, SHUT_RDWR);
    shutdown(c->cfd, SHUT_RDWR);
    return NULL;
}

static int connect_upstream(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void *acceptor(void *arg)
{
    pgproxy *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        bool stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        struct pollfd pfd = {.fd = p->lfd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int cfd = accept(p->lfd, NULL, NULL);
        if (cfd < 0)
            continue;
        int sfd = connect_upstream(p->upstream);
        conn *c = sfd >= 0 && p->n_conns < MAX_CONNS ? calloc(1, sizeof *c) : NULL;
        if (!c) {
            close(cfd);
            if (sfd >= 0)
                close(sfd);
            continue;
        }
        *c = (conn){.p = p, .cfd = cfd, .sfd = sfd};
        pthread_create(&c->up, NULL, client_to_server, c);
        pthread_create(&c->down, NULL, server_to_client, c);
        pthread_mutex_lock(&p->mu);
        p->conns[p->n_conns++] = c;
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

pgproxy *pgproxy_start(int upstream_port)
{
    pgproxy *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->upstream = upstream_port;
    pthread_mutex_init(&p->mu, NULL);
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(p->lfd, 16) != 0 ||
        getsockname(p->lfd, (struct sockaddr *)&a, &al) != 0 ||
        pthread_create(&p->acceptor, NULL, acceptor, p) != 0) {
        if (p->lfd >= 0)
            close(p->lfd);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    p->port = ntohs(a.sin_port);
    return p;
}

const char *pgproxy_uri(const pgproxy *p, char *buf, size_t len)
{
    snprintf(buf, len,
             "postgresql://postgres@127.0.0.1:%d/postgres?sslmode=disable&gssencmode=disable",
             p->port);
    return buf;
}

void pgproxy_arm(pgproxy *p, const char *match, int skip, bool forward)
{
    pthread_mutex_lock(&p->mu);
    free(p->match);
    p->match = match ? strdup(match) : NULL;
    p->skip = skip;
    p->forward = forward;
    p->armed = true;
    pthread_mutex_unlock(&p->mu);
}

int pgproxy_cuts(pgproxy *p, int *matches)
{
    pthread_mutex_lock(&p->mu);
    int n = p->cuts;
    if (matches)
        *matches = p->cut_matches;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void pgproxy_stop(pgproxy *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->acceptor, NULL);
    for (int i = 0; i < p->n_conns; i++) {
        conn *c = p->conns[i];
        shutdown(c->cfd, SHUT_RDWR);
        shutdown(c->sfd, SHUT_RDWR);
        pthread_join(c->up, NULL);
        pthread_join(c->down, NULL);
        close(c->cfd);
        close(c->sfd);
        for (int k = 0; k < c->n_stmts; k++) {
            free(c->stmts[k].name);
            free(c->stmts[k].sql);
        }
        free(c);
    }
    close(p->lfd);
    free(p->match);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
