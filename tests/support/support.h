/* Helpers shared by the test programs. */
#ifndef WH_TEST_SUPPORT_H
#define WH_TEST_SUPPORT_H
#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Runs one Check suite and returns the process exit status. */
int support_run_suite(Suite *s);

#include "receiver.h"

#endif
