/* A throwaway PostgreSQL server for the tests: initdb into a temporary folder (as the
 * `postgres` user, or `nobody`, when the tests run as root), started on a free 127.0.0.1
 * port with its unix socket in that folder, stopped and removed at the end. Debian's
 * binaries live under /usr/lib/postgresql/<version>/bin. */
#ifndef WH_TEST_PG_H
#define WH_TEST_PG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pg_cluster {
    char dir[64];    /* the temporary folder: data/, the socket, the server's log */
    char bin[128];   /* where initdb and pg_ctl are */
    char run_as[32]; /* "" when the tests are not root */
    int port;
    char conninfo[256]; /* key=value, through the unix socket */
    char uri[256];      /* postgresql://postgres@127.0.0.1:PORT/postgres, over TCP */
    bool running;
} pg_cluster;

/* 0 on success; on failure, why (and the server's log) is printed to stderr. */
int pg_cluster_start(pg_cluster *c);
/* Stops the server at once and removes the folder; safe to call twice. */
void pg_cluster_stop(pg_cluster *c);
/* pg_ctl restart -m fast: every connection is cut. 0 on success. */
int pg_cluster_restart(pg_cluster *c);
/* Runs sql (one statement) on a connection of its own; the first value of the first row into
 * out (if any). 0 on success, -1 with the error on stderr. */
int pg_sql(const pg_cluster *c, const char *sql, char *out, size_t outlen);
/* The first value of sql as a number (-1 on error). */
int64_t pg_sql_int(const pg_cluster *c, const char *sql);

#endif
