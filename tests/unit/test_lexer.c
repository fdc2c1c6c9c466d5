/* The scanner, seen through the AST it feeds: numbers, strings, names,
 * comments, separators and the errors of malformed tokens. */
#include "helpers.h"
#include "tap.h"
#include "util.h"
#include <math.h>
#include <string.h>

static ast_file *parse(const char *text, diag_list *dl, source **src)
{
    *src = source_new("t.net", text, strlen(text));
    ast_file *f = NULL;
    parse_source(*src, dl, &f);
    return f;
}

/* Value of `param p = ...` in a one-line file. */
static const ast_value *param_value(const ast_file *f)
{
    return f->nitems == 1 && f->items[0]->kind == T_PARAM ? f->items[0]->value : NULL;
}

static void test_numbers(void)
{
    const char *cases[] = { "param p = 42", "param p = 1e-3", "param p = .5", "param p = 2.", "param p = -7",
                            "param p = -0.25" };
    double want[] = { 42, 1e-3, 0.5, 2.0, -7, -0.25 };
    value_kind kinds[] = { V_INT, V_FLOAT, V_FLOAT, V_FLOAT, V_INT, V_FLOAT };
    for (int i = 0; i < 6; i++) {
        diag_list dl;
        diag_init(&dl);
        source *src;
        ast_file *f = parse(cases[i], &dl, &src);
        const ast_value *v = param_value(f);
        CU_ASSERT_EQUAL(dl.errors, 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(v);
        CU_ASSERT_EQUAL(v->kind, kinds[i]);
        double got = v->kind == V_INT ? (double)v->i : v->f;
        CU_ASSERT_DOUBLE_EQUAL(got, want[i], 1e-15);
        ast_file_free(f);
        source_free(src);
        diag_free(&dl);
    }
}

static void test_strings_and_escapes(void)
{
    diag_list dl;
    diag_init(&dl);
    source *src;
    ast_file *f = parse("param p = \"a\\\"b\\\\c\\nd\"\n", &dl, &src);
    const ast_value *v = param_value(f);
    CU_ASSERT_EQUAL(dl.errors, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL(v->kind, V_STRING);
    CU_ASSERT_STRING_EQUAL(v->s, "a\"b\\c\nd");
    ast_file_free(f);
    source_free(src);
    diag_free(&dl);
}

static void test_bad_tokens(void)
{
    struct { const char *text, *msg; int col; } cases[] = {
        { "param p = 5x\n", "invalid number '5x'", 11 },
        { "param p = \"open\n", "unterminated string", 11 },
        { "param p = 99999999999999999999999\n", "too large", 11 },
        { "param p = \"\\q\"\n", "unknown escape", 12 },
        { "param p = 1 @\n", "unexpected character '@'", 13 },
        { "param p = $\n", "'$' must be followed", 11 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        diag_list dl;
        diag_init(&dl);
        source *src;
        ast_file *f = parse(cases[i].text, &dl, &src);
        CU_ASSERT(dl.errors >= 1);
        CU_ASSERT(dl.count >= 1 && strstr(dl.items[0].message, cases[i].msg) != NULL);
        CU_ASSERT(dl.count >= 1 && dl.items[0].where.line == 1 && dl.items[0].where.col == cases[i].col);
        ast_file_free(f);
        source_free(src);
        diag_free(&dl);
    }
}

static void test_comments_semicolons_and_eof(void)
{
    diag_list dl;
    diag_init(&dl);
    source *src;
    /* No newline at the end, a comment after code, two statements on one line. */
    ast_file *f = parse("# header\nparam a = 1 # trailing\nparam b = 2; param c = 3", &dl, &src);
    CU_ASSERT_EQUAL(dl.errors, 0);
    CU_ASSERT_EQUAL(f->nitems, 3);
    CU_ASSERT(f->nitems == 3 && strcmp(f->items[2]->name, "c") == 0);
    CU_ASSERT(f->nitems == 3 && f->items[1]->where.line == 3);
    ast_file_free(f);
    source_free(src);
    diag_free(&dl);
}

static void test_param_reference_and_keywords(void)
{
    diag_list dl;
    diag_init(&dl);
    source *src;
    ast_file *f = parse("param a = $b_2\n", &dl, &src);
    const ast_value *v = param_value(f);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL(v->kind, V_PARAM);
    CU_ASSERT_STRING_EQUAL(v->s, "b_2");
    ast_file_free(f);
    source_free(src);
    diag_free(&dl);
    /* A keyword cannot be a parameter name. */
    diag_init(&dl);
    f = parse("param if = 1\n", &dl, &src);
    CU_ASSERT(dl.errors >= 1);
    ast_file_free(f);
    source_free(src);
    diag_free(&dl);
}

static void test_empty_and_binary_input(void)
{
    diag_list dl;
    diag_init(&dl);
    source *src = source_new("t.net", "", 0);
    ast_file *f = NULL;
    CU_ASSERT_EQUAL(parse_source(src, &dl, &f), 0);
    CU_ASSERT_EQUAL(f->nitems, 0);
    ast_file_free(f);
    source_free(src);
    diag_free(&dl);
    diag_init(&dl);
    const char bin[] = { 'p', 'a', 0, (char)0xff, '\n', 0x01 };
    src = source_new("t.net", bin, sizeof bin);
    f = NULL;
    CU_ASSERT_NOT_EQUAL(parse_source(src, &dl, &f), 0);
    CU_ASSERT(dl.errors >= 1);
    ast_file_free(f);
    source_free(src);
    diag_free(&dl);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_TestInfo tests[] = {
        { "numbers", test_numbers },
        { "strings and escapes", test_strings_and_escapes },
        { "malformed tokens are located errors", test_bad_tokens },
        { "comments, semicolons, no final newline", test_comments_semicolons_and_eof },
        { "parameter references and keywords", test_param_reference_and_keywords },
        { "empty and binary input", test_empty_and_binary_input },
        CU_TEST_INFO_NULL,
    };
    if (tap_add_suite("lexer", tests)) return 1;
    return tap_run_all();
}
