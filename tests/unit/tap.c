#include "tap.h"
#include <CUnit/TestRun.h>
#include <stdio.h>

static unsigned tap_count;
static unsigned tap_failed;

static void on_test_complete(const CU_pTest test, const CU_pSuite suite, const CU_pFailureRecord failure)
{
    tap_count++;
    if (!failure) {
        printf("ok %u - %s: %s\n", tap_count, suite->pName, test->pName);
        return;
    }
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
