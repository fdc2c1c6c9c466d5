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

/* True under CI (the environment variable CI set, and not to "false" or "0"). */
int tap_in_ci(void);

/* For a test whose precondition (installed data, a tool) is missing: outside
 * CI the running test is reported as "ok N - ... # SKIP reason", not as a
 * pass; under CI it fails with the reason, since a CI run must check it.
 * The caller returns right after. */
#define TAP_SKIP_UNLESS_CI(reason) tap_skip_unless_ci((reason), __FILE__, __LINE__)
void tap_skip_unless_ci(const char *reason, const char *file, unsigned line);
#endif
