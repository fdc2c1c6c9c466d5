/* Runs every registered CUnit test and reports each as a TAP line, so the
 * automake harness counts tests rather than programs. */
#ifndef NETC_TEST_TAP_H
#define NETC_TEST_TAP_H
#include <CUnit/CUnit.h>

/* Returns the number of failed tests (0 when all passed); the value main
 * returns, since CU_get_error() alone lets failures pass. */
int tap_run_all(void);

/* Shorthand to register a suite of tests: NULL-terminated CU_TestInfo. */
int tap_add_suite(const char *name, CU_TestInfo *tests);
#endif
