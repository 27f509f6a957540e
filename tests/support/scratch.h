/* A folder of a test's own for its files (a SQLite store, a log, a locale): a new
 * /tmp/<name>-XXXXXX, removed again with all it holds. Each fails the test when it cannot. */
#ifndef WH_TEST_SCRATCH_H
#define WH_TEST_SCRATCH_H
#include <stddef.h>

/* Makes the folder and writes its path into dir (len bytes). */
void scratch_dir_make(char *dir, size_t len, const char *name);
void scratch_dir_remove(const char *dir);

#endif
