/* The runtime's one JSON module (strict reader, writer) and its one atomic
 * file writer: what summary.json and sweep --resume rely on. */
#include "atomic_file.h"
#include "json.h"
#include "scratch.h"
#include "tap.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const nr_json_syntax full = { "file", 0, 16 };

static nr_json_value *parse(const char *text, nr_error *err)
{
    return nr_json_parse((const unsigned char *)text, strlen(text), 0, "t.json", &full, err);
}

static void test_values(void)
{
    nr_error err = { { 0 } };
    nr_json_value *v = parse(" {\"a\": [1, -2.5e1, 0.125, true, false, null], \"s\": \"\\u00e9\\n\", \"big\": "
                             "12345678901234567890} ",
                             &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    const nr_json_value *a = nr_json_member(v, "a");
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL_FATAL(a->nkids, 6);
    CU_ASSERT_EQUAL(a->kids[0]->kind, NR_JSON_INT);
    CU_ASSERT_EQUAL(a->kids[0]->i, 1);
    CU_ASSERT_EQUAL(a->kids[1]->kind, NR_JSON_REAL);
    CU_ASSERT_DOUBLE_EQUAL(a->kids[1]->num, -25, 0);
    CU_ASSERT_DOUBLE_EQUAL(a->kids[2]->num, 0.125, 0);
    CU_ASSERT_EQUAL(a->kids[3]->kind, NR_JSON_TRUE);
    CU_ASSERT_EQUAL(a->kids[4]->kind, NR_JSON_FALSE);
    CU_ASSERT_EQUAL(a->kids[5]->kind, NR_JSON_NULL);
    CU_ASSERT_STRING_EQUAL(nr_json_member(v, "s")->s, "\xc3\xa9\n");
    CU_ASSERT_DOUBLE_EQUAL(nr_json_number(v, "big"), 12345678901234567890.0, 1e5);
    CU_ASSERT(isnan(nr_json_number(v, "s")));        /* not a number */
    CU_ASSERT(isnan(nr_json_number(v, "missing")));
    nr_json_value_free(v);
}

static void test_errors(void)
{
    static const struct {
        const char *text, *needle;
    } bad[] = {
        { "{\"a\": tru}", "t.json: offset 6: unexpected 't'" },
        { "{\"a\": 1.}", "offset 8: expected a digit after '.'" },
        { "{\"a\": 1e}", "offset 8: expected a digit in the exponent" },
        { "{\"a\": .5}", "offset 6: unexpected '.'" },
        { "{\"a\": 1} x", "offset 9: unexpected text after the file object" },
        { "[1]", "the file must be a JSON object" },
        { "{\"a\": 1, \"a\": 2}", "duplicate key" },
        { "{\"a\": \"x", "unterminated string" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        nr_error err = { { 0 } };
        nr_json_value *v = parse(bad[i].text, &err);
        CU_ASSERT_PTR_NULL(v);
        nr_json_value_free(v);
        if (!strstr(err.msg, bad[i].needle)) printf("# %s -> %s (wanted %s)\n", bad[i].text, err.msg, bad[i].needle);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, bad[i].needle));
    }
}

static void write_sample(FILE *f, void *arg)
{
    nr_json j;
    if (arg) nr_json_begin_compact(&j, f);
    else nr_json_begin(&j, f);
    nr_json_open(&j, '{');
    nr_json_key(&j, "name \"q\""), nr_json_str(&j, "tab\there");
    nr_json_key(&j, "n"), nr_json_num(&j, 0.25);
    nr_json_key(&j, "nan"), nr_json_num(&j, NAN);
    nr_json_key(&j, "list");
    nr_json_open(&j, '[');
    nr_json_int(&j, -3), nr_json_bool(&j, 1), nr_json_null(&j);
    nr_json_close(&j, '[');
    nr_json_key(&j, "empty");
    nr_json_open(&j, '{');
    nr_json_close(&j, '{');
    nr_json_close(&j, '{');
}

/* What the writer writes, the reader reads back; compact has no whitespace. */
static void test_round_trip(void)
{
    for (int compact = 0; compact < 2; compact++) {
        const char *path = scratch(compact ? "compact.json" : "indented.json");
        nr_error err = { { 0 } };
        CU_ASSERT_EQUAL_FATAL(nr_write_atomic(path, write_sample, compact ? (void *)1 : NULL, &err), 0);
        nr_json_value *v = nr_json_read_file(path, 4096, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(v);
        CU_ASSERT_STRING_EQUAL(nr_json_member(v, "name \"q\"")->s, "tab\there");
        CU_ASSERT_DOUBLE_EQUAL(nr_json_number(v, "n"), 0.25, 0);
        CU_ASSERT_EQUAL(nr_json_member(v, "nan")->kind, NR_JSON_NULL);
        CU_ASSERT_EQUAL(nr_json_member(v, "list")->nkids, 3);
        CU_ASSERT_EQUAL(nr_json_member(v, "empty")->nkids, 0);
        nr_json_value_free(v);
        FILE *f = fopen(path, "r");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        char text[512];
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = '\0';
        if (compact) {
            CU_ASSERT_STRING_EQUAL(text, "{\"name \\\"q\\\"\":\"tab\\there\",\"n\":0.25,\"nan\":null,"
                                         "\"list\":[-3,true,null],\"empty\":{}}");
        } else {
            CU_ASSERT_PTR_NOT_NULL(strstr(text, "\n  \"n\": 0.25,\n"));
        }
    }
    nr_error err = { { 0 } };
    CU_ASSERT_PTR_NULL(nr_json_read_file(scratch("indented.json"), 16, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "more than 16 bytes"));
}

static void test_atomic_failures(void)
{
    nr_error err = { { 0 } };
    /* the directory is missing: the error names the path */
    const char *missing = scratch("no/such/file.json");
    CU_ASSERT_EQUAL(nr_write_atomic(missing, write_sample, NULL, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, missing));
    /* the rename fails (a directory is in the way): nothing temporary is left */
    CU_ASSERT_EQUAL_FATAL(scratch_remove_tree(scratch_root), 0);
    CU_ASSERT_EQUAL_FATAL(scratch_init("json"), 0);
    const char *dir = scratch("taken");
    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0755), 0);
    CU_ASSERT_EQUAL(nr_write_atomic(dir, write_sample, NULL, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "cannot rename"));
    CU_ASSERT_EQUAL(scratch_count_entries(scratch_root), 1);
    /* the caller's failure (ok = 0) leaves no file at all */
    nr_atomic_file af;
    const char *path = scratch("abandoned.json");
    CU_ASSERT_PTR_NOT_NULL_FATAL(nr_atomic_open(&af, path, &err));
    fputs("{}", af.f);
    CU_ASSERT_EQUAL(nr_atomic_commit(&af, 0, &err), -1);
    CU_ASSERT_EQUAL(scratch_count_entries(scratch_root), 1);
}

int main(void)
{
    if (scratch_init("json") != 0) {
        perror("mkdtemp");
        return 1;
    }
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    static CU_TestInfo reader[] = {
        { "objects, arrays, strings, numbers, literals", test_values },
        { "malformed text is an error with the offset", test_errors },
        CU_TEST_INFO_NULL,
    };
    static CU_TestInfo writer[] = {
        { "indented and compact text reads back", test_round_trip },
        { "atomic writes: errors name the path, nothing is left behind", test_atomic_failures },
        CU_TEST_INFO_NULL,
    };
    if (tap_add_suite("json reader", reader) || tap_add_suite("json writer", writer)) return 1;
    int failed = tap_run_all();
    if (scratch_remove_tree(scratch_root) != 0) fprintf(stderr, "# could not remove %s\n", scratch_root);
    return failed;
}
