/* The grammar: what the AST holds for each construct, and error recovery. */
#include "helpers.h"
#include "tap.h"
#include "util.h"
#include <string.h>

typedef struct parsed {
    diag_list dl;
    source *src;
    ast_file *f;
    int rc;
} parsed;

static void parse(parsed *p, const char *text)
{
    diag_init(&p->dl);
    p->src = source_new("t.net", text, strlen(text));
    p->f = NULL;
    p->rc = parse_source(p->src, &p->dl, &p->f);
}

static void done(parsed *p)
{
    ast_file_free(p->f);
    source_free(p->src);
    diag_free(&p->dl);
}

/* A brace on the line after the block's name (Allman style) opens the block. */
static void test_brace_on_next_line(void)
{
    parsed p;
    parse(&p, "model m\n{\n  input = [4]\n  fc: dense(2)\n}\ntrain\n\n{\n  epochs = 2\n}\n");
    CU_ASSERT_EQUAL(p.rc, 0);
    CU_ASSERT_EQUAL(p.dl.count, 0);
    CU_ASSERT_EQUAL_FATAL(p.f->nitems, 2);
    CU_ASSERT_STRING_EQUAL(p.f->items[0]->name, "m");
    CU_ASSERT_EQUAL(p.f->items[0]->nstmts, 2);
    CU_ASSERT_EQUAL(p.f->items[0]->where.line, 1);
    CU_ASSERT_EQUAL(p.f->items[0]->where.end_line, 5);
    CU_ASSERT_STRING_EQUAL(p.f->items[1]->kw, "train");
    CU_ASSERT_EQUAL(p.f->items[1]->nstmts, 1);
    done(&p);
    /* a name with no block after it is one error, not one per line */
    parse(&p, "model m\ninput = [4]\n");
    CU_ASSERT_EQUAL(p.dl.errors, 1);
    done(&p);
}

static void test_model_block(void)
{
    parsed p;
    parse(&p, "model lenet {\n"
              "  input = [1, 28, 28]\n"
              "  conv1: conv(6, kernel=5, padding=2) expect [N, 6, 28, 28]\n"
              "  tanh\n"
              "  bn: batchnorm if not $nobn\n"
              "}\n");
    CU_ASSERT_EQUAL(p.rc, 0);
    CU_ASSERT_EQUAL_FATAL(p.f->nitems, 1);
    const ast_item *b = p.f->items[0];
    CU_ASSERT_EQUAL(b->kind, T_BLOCK);
    CU_ASSERT_STRING_EQUAL(b->kw, "model");
    CU_ASSERT_STRING_EQUAL(b->name, "lenet");
    CU_ASSERT_EQUAL_FATAL(b->nstmts, 4);
    CU_ASSERT_EQUAL(b->stmts[0]->kind, S_SETTING);
    CU_ASSERT_EQUAL(b->stmts[0]->value->kind, V_LIST);
    CU_ASSERT_EQUAL(b->stmts[0]->value->nitems, 3);
    const ast_stmt *conv = b->stmts[1];
    CU_ASSERT_EQUAL(conv->kind, S_LAYER);
    CU_ASSERT_STRING_EQUAL(conv->name, "conv1");
    CU_ASSERT_EQUAL(conv->value->kind, V_CALL);
    CU_ASSERT_EQUAL(conv->value->nargs, 3);
    CU_ASSERT_PTR_NULL(conv->value->args[0].name);
    CU_ASSERT_STRING_EQUAL(conv->value->args[1].name, "kernel");
    CU_ASSERT_PTR_NOT_NULL_FATAL(conv->expect);
    CU_ASSERT_EQUAL(conv->expect->nitems, 4);
    CU_ASSERT_PTR_NULL(b->stmts[2]->name);
    CU_ASSERT_EQUAL(b->stmts[2]->value->kind, V_IDENT);
    CU_ASSERT_PTR_NOT_NULL(b->stmts[3]->cond);
    CU_ASSERT_EQUAL(b->stmts[3]->cond_negated, 1);
    done(&p);
}

static void test_params_sweeps_nested_calls(void)
{
    parsed p;
    parse(&p, "param lr = 0.1\n"
              "sweep c1, c2 = [[6, 16], [32, 64]]\n"
              "train {\n"
              "  optimizer = sam(sgd(lr=$lr, momentum=0.9), rho=2.0, adaptive=true)\n"
              "}\n");
    CU_ASSERT_EQUAL(p.rc, 0);
    CU_ASSERT_EQUAL_FATAL(p.f->nitems, 3);
    CU_ASSERT_EQUAL(p.f->items[0]->kind, T_PARAM);
    const ast_item *sw = p.f->items[1];
    CU_ASSERT_EQUAL(sw->kind, T_SWEEP);
    CU_ASSERT_EQUAL(sw->nnames, 2);
    CU_ASSERT_STRING_EQUAL(sw->names[1], "c2");
    CU_ASSERT_EQUAL(sw->value->nitems, 2);
    const ast_value *opt = p.f->items[2]->stmts[0]->value;
    CU_ASSERT_EQUAL(opt->kind, V_CALL);
    CU_ASSERT_EQUAL(opt->args[0].value->kind, V_CALL);
    CU_ASSERT_EQUAL(opt->args[0].value->args[0].value->kind, V_PARAM);
    done(&p);
}

static void test_newlines_inside_brackets(void)
{
    parsed p;
    parse(&p, "data {\n"
              "  normalize(\n"
              "    mean=[0.5,\n"
              "          0.5, 0.5,],\n"
              "    std=[0.5, 0.5, 0.5],\n"
              "  )\n"
              "}\n");
    CU_ASSERT_EQUAL(p.rc, 0);
    CU_ASSERT_EQUAL_FATAL(p.f->nitems, 1);
    CU_ASSERT_EQUAL_FATAL(p.f->items[0]->nstmts, 1);
    const ast_value *call = p.f->items[0]->stmts[0]->value;
    CU_ASSERT_EQUAL(call->nargs, 2);
    CU_ASSERT_EQUAL(call->args[0].value->nitems, 3);
    done(&p);
}

static void test_one_line_block(void)
{
    parsed p;
    parse(&p, "train { epochs = 3; batch = 8 }");
    CU_ASSERT_EQUAL(p.rc, 0);
    CU_ASSERT_EQUAL_FATAL(p.f->nitems, 1);
    CU_ASSERT_EQUAL(p.f->items[0]->nstmts, 2);
    done(&p);
}

static void test_recovery_reports_every_error(void)
{
    parsed p;
    parse(&p, "model m {\n"
              "  conv1: conv(6 kernel=5)\n"      /* missing comma */
              "  fc: dense(10)\n"
              "  = 3\n"                          /* statement without a key */
              "}\n"
              "train { epochs 3 }\n");           /* missing '=' */
    CU_ASSERT_NOT_EQUAL(p.rc, 0);
    int lines[3] = { 0 }, n = 0;
    for (int i = 0; i < p.dl.count && n < 3; i++)
        if (strstr(p.dl.items[i].message, "syntax error")) lines[n++] = p.dl.items[i].where.line;
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(lines[0], 2);
    CU_ASSERT_EQUAL(lines[1], 4);
    CU_ASSERT_EQUAL(lines[2], 6);
    /* Statements after an error are still parsed. */
    CU_ASSERT(p.f->nitems >= 1 && p.f->items[0]->nstmts == 1);
    done(&p);
}

static void test_syntax_error_has_hint(void)
{
    parsed p;
    parse(&p, "modle m {\n}\nconv(3)\n");
    CU_ASSERT_NOT_EQUAL(p.rc, 0);
    int hinted = 0;
    for (int i = 0; i < p.dl.count; i++)
        if (p.dl.items[i].hint && strstr(p.dl.items[i].hint, "at the top level")) hinted = 1;
    CU_ASSERT(hinted);
    done(&p);
}

static void test_unclosed_brace(void)
{
    parsed p;
    parse(&p, "model m {\n  fc: dense(10)\n");
    CU_ASSERT_NOT_EQUAL(p.rc, 0);
    CU_ASSERT(p.dl.count >= 1 && strstr(p.dl.items[0].message, "end of file") != NULL);
    done(&p);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_TestInfo tests[] = {
        { "model block, layers, expect, conditions", test_model_block },
        { "params, tuple sweeps, nested calls", test_params_sweeps_nested_calls },
        { "newlines and trailing commas inside brackets", test_newlines_inside_brackets },
        { "a block on one line", test_one_line_block },
        { "a brace on the next line", test_brace_on_next_line },
        { "recovery reports every syntax error", test_recovery_reports_every_error },
        { "top-level syntax error has a hint", test_syntax_error_has_hint },
        { "unclosed brace", test_unclosed_brace },
        CU_TEST_INFO_NULL,
    };
    if (tap_add_suite("parser", tests)) return 1;
    return tap_run_all();
}
