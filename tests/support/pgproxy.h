/* A TCP proxy between libpq and the tests' PostgreSQL server (127.0.0.1 only) that can lose a
 * COMMIT's answer: armed, it cuts the connection that sends the commit it waits for, right
 * after that commit went to the server (or instead of sending it), so that the client never
 * hears how it ended. It reads the frontend/backend protocol's message boundaries (a type byte
 * and a 4-byte length) in both directions, the simple query ('Q') and the extended one (Parse
 * names a statement, Bind runs it), and never touches TLS: the address it gives asks for none. */
#ifndef WH_TEST_PGPROXY_H
#define WH_TEST_PGPROXY_H
#include <stdbool.h>
#include <stddef.h>

typedef struct pgproxy pgproxy;

/* Listens on a free 127.0.0.1 port in front of 127.0.0.1:upstream_port; NULL on failure. */
pgproxy *pgproxy_start(int upstream_port);
/* "postgresql://postgres@127.0.0.1:PORT/postgres?sslmode=disable...", into buf; returns buf. */
const char *pgproxy_uri(const pgproxy *p, char *buf, size_t len);
/* Arms the cut for one commit: the (skip+1)-th COMMIT, from now on, of a write transaction
 * (not BEGIN READ ONLY) that ran a statement whose SQL contains `match` (NULL: any). With
 * `forward`, the COMMIT reaches the server and runs, and its answer is dropped; without, it
 * never reaches the server, which rolls the transaction back when the connection ends. */
void pgproxy_arm(pgproxy *p, const char *match, int skip, bool forward);
/* How many commits were cut so far; *matches (may be NULL): how many rows the matching
 * statements of the last one's transaction wrote (one per statement, or as many as the
 * elements of its first parameter when that is an array literal: a batch's rows). */
int pgproxy_cuts(pgproxy *p, int *matches);
/* Cuts every connection, stops, frees. NULL is fine. */
void pgproxy_stop(pgproxy *p);

#endif
