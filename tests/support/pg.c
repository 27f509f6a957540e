#include <glob.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "pg.h"

/* The newest installed server's binaries. */
static int find_bin(pg_cluster *c)
{
    glob_t g;
    if (glob("/usr/lib/postgresql/*/bin/pg_ctl", 0, NULL, &g) != 0 || g.gl_pathc == 0) {
        globfree(&g);
        fprintf(stderr, "pg: no /usr/lib/postgresql/*/bin/pg_ctl (make deps installs postgresql)\n");
        return -1;
    }
    int best = -1;
    long best_version = -1;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        long v = strtol(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"), NULL, 10);
        if (v > best_version)
            best_version = v, best = (int)i;
    }
    snprintf(c->bin, sizeof c->bin, "%.*s", (int)(strlen(g.gl_pathv[best]) - strlen("/pg_ctl")),
             g.gl_pathv[best]);
    globfree(&g);
    return 0;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Runs a server binary as the unprivileged user when we are root; 0 on success. */
static int run(const pg_cluster *c, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s%s%s%s/%s", c->run_as[0] ? "runuser -u " : "", c->run_as,
             c->run_as[0] ? " -- " : "", c->bin, args);
    int rc = system(cmd);
    return rc == 0 ? 0 : -1;
}

static void print_log(const pg_cluster *c)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "tail -n 20 %s/server.log >&2", c->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "pg: no server log\n");
}

static int start_server(pg_cluster *c, const char *verb)
{
    char args[900];
    /* fsync off: the tests restart the server cleanly and kill engines, never the machine */
    snprintf(args, sizeof args,
             "pg_ctl -D %s/data -l %s/server.log -w -t 60 -s -o \"-c port=%d"
             " -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off"
             " -c full_page_writes=off -c max_connections=60 -c shared_buffers=32MB\" %s",
             c->dir, c->dir, c->port, c->dir, verb);
    if (run(c, args) != 0) {
        fprintf(stderr, "pg: pg_ctl %s failed\n", verb);
        print_log(c);
        return -1;
    }
    return 0;
}

int pg_cluster_start(pg_cluster *c)
{
    memset(c, 0, sizeof *c);
    if (find_bin(c) != 0)
        return -1;
    snprintf(c->dir, sizeof c->dir, "/tmp/wh-pg-XXXXXX");
    if (!mkdtemp(c->dir)) {
        perror("pg: mkdtemp");
        return -1;
    }
    if (geteuid() == 0) {
        /* the server refuses to run as root */
        struct passwd *pw = getpwnam("postgres");
        if (!pw)
            pw = getpwnam("nobody");
        if (!pw || chown(c->dir, pw->pw_uid, pw->pw_gid) != 0) {
            fprintf(stderr, "pg: no unprivileged user to run the server as\n");
            pg_cluster_stop(c);
            return -1;
        }
        snprintf(c->run_as, sizeof c->run_as, "%s", pw->pw_name);
    }
    char args[512];
    snprintf(args, sizeof args,
             "initdb -D %s/data -U postgres -A trust -E UTF8 --locale=C --no-sync >%s/initdb.log 2>&1",
             c->dir, c->dir);
    if (run(c, args) != 0) {
        fprintf(stderr, "pg: initdb failed (see below)\n");
        char cmd[160];
        snprintf(cmd, sizeof cmd, "tail -n 20 %s/initdb.log >&2", c->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "pg: no initdb log\n");
        pg_cluster_stop(c);
        return -1;
    }
    for (int tries = 0; tries < 3; tries++) {
        if ((c->port = free_port()) < 0)
            continue;
        if (start_server(c, "start") == 0) {
            c->running = true;
            break;
        }
    }
    if (!c->running) {
        pg_cluster_stop(c);
        return -1;
    }
    snprintf(c->conninfo, sizeof c->conninfo, "host=%s port=%d dbname=postgres user=postgres",
             c->dir, c->port);
    snprintf(c->uri, sizeof c->uri, "postgresql://postgres@127.0.0.1:%d/postgres", c->port);
    return 0;
}

void pg_cluster_stop(pg_cluster *c)
{
    if (c->running) {
        char args[256];
        snprintf(args, sizeof args, "pg_ctl -D %s/data -m immediate -w -s stop", c->dir);
        if (run(c, args) != 0)
            fprintf(stderr, "pg: pg_ctl stop failed\n");
        c->running = false;
    }
    if (c->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", c->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "pg: could not remove %s\n", c->dir);
        c->dir[0] = '\0';
    }
}

int pg_cluster_restart(pg_cluster *c)
{
    char args[256];
    snprintf(args, sizeof args, "pg_ctl -D %s/data -l %s/server.log -m fast -w -t 60 -s restart",
             c->dir, c->dir);
    if (run(c, args) != 0) {
        fprintf(stderr, "pg: pg_ctl restart failed\n");
        print_log(c);
        return -1;
    }
    return 0;
}

int pg_sql(const pg_cluster *c, const char *sql, char *out, size_t outlen)
{
    PGconn *conn = PQconnectdb(c->conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "pg: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return -1;
    }
    PGresult *r = PQexec(conn, sql);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "pg: %s: %s", sql, PQresultErrorMessage(r));
        rc = -1;
    } else if (out && outlen) {
        snprintf(out, outlen, "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    }
    PQclear(r);
    PQfinish(conn);
    return rc;
}

int64_t pg_sql_int(const pg_cluster *c, const char *sql)
{
    char v[64];
    return pg_sql(c, sql, v, sizeof v) == 0 ? strtoll(v, NULL, 10) : -1;
}
