#include "pg_fixture.h"
#include "support.h"

pg_cluster cluster;

void pg_fixture_up(void)
{
    ck_assert_msg(pg_cluster_start(&cluster) == 0, "could not start a PostgreSQL server");
}

void pg_fixture_down(void) { pg_cluster_stop(&cluster); }
