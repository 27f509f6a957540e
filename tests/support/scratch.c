#include <stdio.h>
#include <stdlib.h>

#include "scratch.h"
#include "support.h"

void scratch_dir_make(char *dir, size_t len, const char *name)
{
    /* a name too long for dir loses its XXXXXX, which mkdtemp refuses */
    snprintf(dir, len, "/tmp/%s-XXXXXX", name);
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

void scratch_dir_remove(const char *dir)
{
    char cmd[256];
    /* a cut command would remove another path */
    ck_assert_msg(snprintf(cmd, sizeof cmd, "rm -rf %s", dir) < (int)sizeof cmd, "path too long: %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
