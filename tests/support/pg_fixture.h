/* The throwaway PostgreSQL server (pg.h) as a Check fixture shared by a test program's
 * PostgreSQL tests: tcase_add_unchecked_fixture(tc, pg_fixture_up, pg_fixture_down) starts
 * one server for the test case in the runner's process, so that it is stopped and removed
 * however the tests end. Apart from pg.c because the benchmark links pg.c without Check. */
#ifndef WH_TEST_PG_FIXTURE_H
#define WH_TEST_PG_FIXTURE_H
#include "pg.h"

/* The server, once pg_fixture_up has run. */
extern pg_cluster cluster;

/* Fails the test case when the server cannot start. */
void pg_fixture_up(void);
void pg_fixture_down(void);

#endif
