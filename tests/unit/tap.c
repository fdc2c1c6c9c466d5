#include "tap.h"
#include <CUnit/TestRun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned tap_count;
static unsigned tap_failed;
/* The running test's skip reason; empty when it was not skipped. */
static char tap_skip_reason[256];

int tap_in_ci(void)
{
    const char *ci = getenv("CI");
    return ci && *ci && strcmp(ci, "false") != 0 && strcmp(ci, "0") != 0;
}

void tap_skip_unless_ci(const char *reason, const char *file, unsigned line)
{
    if (tap_in_ci()) {
        char why[320];
        snprintf(why, sizeof why, "CI is set, so this must not be skipped: %s", reason);
        CU_assertImplementation(CU_FALSE, line, why, file, "", CU_FALSE);
        return;
    }
    snprintf(tap_skip_reason, sizeof tap_skip_reason, "%s", reason);
}

static void on_test_complete(const CU_pTest test, const CU_pSuite suite, const CU_pFailureRecord failure)
{
    tap_count++;
    if (!failure) {
        if (tap_skip_reason[0])
            printf("ok %u - %s: %s # SKIP %s\n", tap_count, suite->pName, test->pName, tap_skip_reason);
        else
            printf("ok %u - %s: %s\n", tap_count, suite->pName, test->pName);
        tap_skip_reason[0] = '\0';
        return;
    }
    tap_skip_reason[0] = '\0';
    tap_failed++;
    printf("not ok %u - %s: %s\n", tap_count, suite->pName, test->pName);
    for (CU_pFailureRecord f = failure; f; f = f->pNext)
        printf("#   %s:%u: %s\n", f->strFileName ? f->strFileName : "?", f->uiLineNumber,
               f->strCondition ? f->strCondition : "");
}

int tap_add_suite(const char *name, CU_TestInfo *tests)
{
    CU_pSuite s = CU_add_suite(name, NULL, NULL);
    if (!s) return -1;
    for (CU_TestInfo *t = tests; t->pName; t++)
        if (!CU_add_test(s, t->pName, t->pTestFunc)) return -1;
    return 0;
}

int tap_run_all(void)
{
    CU_set_test_complete_handler(on_test_complete);
    if (CU_run_all_tests() != CUE_SUCCESS) {
        printf("Bail out! CUnit: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return 1;
    }
    printf("1..%u\n", tap_count);
    unsigned failed = tap_failed;
    /* Failures of the framework itself (e.g. a suite that did not start) count too. */
    failed += CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return (int)failed;
}
