/* Shape inference, parameter and multiply-add counts (against PyTorch's
 * numbers from WORKLOADS.md), expect checks, data checks and lints. */
#include "helpers.h"
#include "tap.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASSERT_DIAG(fe, sev, msg) do { \
        int found_ = fe_count(fe, sev, msg); \
        if (!found_) fe_show(fe); \
        CU_ASSERT(found_ > 0); \
    } while (0)

static frontend *model(const char *input, const char *layers)
{
    char *text = wrap_model(input, layers);
    frontend *fe = fe_run(text, NULL);
    free(text);
    return fe;
}

static const char *lenet5 =
    "  conv1: conv(6, kernel=5, padding=2)\n  tanh\n  avgpool(2)\n"
    "  conv2: conv(16, kernel=5)\n  tanh\n  avgpool(2)\n"
    "  conv3: conv(120, kernel=5)\n  tanh\n  flatten\n"
    "  fc1: dense(84)\n  tanh\n  fc2: dense(10)\n  log_softmax\n";

static void test_lenet5_counts(void)
{
    frontend *fe = model("[1, 28, 28]", lenet5);
    CU_ASSERT_EQUAL_FATAL(fe->dl.errors, 0);
    CU_ASSERT_EQUAL(fe->prog->total_params, 61706);
    long long want[] = { 156, 2416, 48120, 10164, 850 };
    const char *names[] = { "conv1", "conv2", "conv3", "fc1", "fc2" };
    for (int i = 0; i < 5; i++) {
        const ir_node *n = fe_node(fe, names[i]);
        CU_ASSERT(n && n->params == want[i]);
    }
    const ir_node *c2 = fe_node(fe, "conv2");
    CU_ASSERT(c2 && c2->out.rank == 3 && c2->out.d[0] == 16 && c2->out.d[1] == 10 && c2->out.d[2] == 10);
    /* conv1 28*28*6*25 + conv2 10*10*16*150 + conv3 120*400 + 120*84 + 84*10 */
    CU_ASSERT_EQUAL(fe->prog->total_macs, 117600 + 240000 + 48000 + 10080 + 840);
    fe_done(fe);
}

static void test_mlp_counts(void)
{
    frontend *fe = model("[1, 28, 28]",
                         "  flatten\n  dense(64)\n  relu\n  dense(64)\n  relu\n  dense(64)\n  relu\n"
                         "  dense(32)\n  relu\n  dense(16)\n  relu\n  dense(16)\n  relu\n  dense(10)\n  relu\n"
                         "  dense(10)\n");
    CU_ASSERT_EQUAL_FATAL(fe->dl.errors, 0);
    CU_ASSERT_EQUAL(fe->prog->total_params, 61720);
    fe_done(fe);
}

static void test_regularized_lenet5_counts(void)
{
    frontend *fe = model("[1, 28, 28]",
                         "  conv(6, kernel=5, padding=2, bias=true)\n  batchnorm2d\n  tanh\n  avgpool(2)\n"
                         "  conv(16, kernel=5, bias=true)\n  batchnorm2d\n  tanh\n  avgpool(2)\n"
                         "  conv(120, kernel=5)\n  tanh\n  flatten\n"
                         "  dense(120, in=120)\n  batchnorm1d(120)\n  tanh\n  dropout(0.5)\n"
                         "  dense(84, bias=true)\n  batchnorm1d\n  tanh\n  dense(10)\n");
    CU_ASSERT_EQUAL_FATAL(fe->dl.errors, 0);
    /* 61,706 + 14,520 for the extra 120->120 dense here + BN 12 + 32 + 240 + 168 */
    CU_ASSERT_EQUAL(fe->prog->total_params, 156 + 12 + 2416 + 32 + 48120 + 14520 + 240 + 10164 + 168 + 850);
    fe_done(fe);
    /* The W4 form: BN after conv1, conv2 and the 120- and 84-wide dense outputs. */
    fe = model("[1, 28, 28]",
               "  conv(6, kernel=5, padding=2, bias=true)\n  batchnorm2d\n  tanh\n  avgpool(2)\n"
               "  conv(16, kernel=5, bias=true)\n  batchnorm2d\n  tanh\n  avgpool(2)\n"
               "  conv(120, kernel=5)\n  flatten\n  batchnorm1d\n  tanh\n  dropout\n"
               "  dense(84, bias=true)\n  batchnorm1d\n  tanh\n  dense(10)\n");
    CU_ASSERT_EQUAL_FATAL(fe->dl.errors, 0);
    CU_ASSERT_EQUAL(fe->prog->total_params, 62158);
    fe_done(fe);
}

static void test_fc_counts(void)
{
    frontend *fe = model("[1, 28, 28]", "  flatten\n  dense(512, init=xavier_uniform)\n  relu\n  dense(10)\n");
    CU_ASSERT_EQUAL_FATAL(fe->dl.errors, 0);
    CU_ASSERT_EQUAL(fe->prog->total_params, 407050);
    const ir_node *n = fe_node(fe, "dense_1");
    CU_ASSERT(n && ropt_int(n->op, DENSE_INIT) == INIT_XAVIER_UNIFORM);
    fe_done(fe);
}

static void test_cifar_hw02_shapes(void)
{
    frontend *fe = model("[3, 32, 32]",
                         "  c1: conv(6, kernel=5, padding=2, padding_mode=reflect, bias=false) expect [128, 6, 32, 32]\n"
                         "  batchnorm\n  relu\n  p1: maxpool(2) expect [N, 6, 16, 16]\n"
                         "  conv(16, kernel=3, padding=1, bias=false)\n  batchnorm\n  relu\n  p2: maxpool(2) expect [N, 16, 8, 8]\n"
                         "  conv(32, kernel=3, padding=1, bias=false)\n  batchnorm\n  relu\n  p3: maxpool(2) expect [N, 32, 4, 4]\n"
                         "  flatten expect [N, 512]\n  dense(120)\n  relu\n  dense(84)\n  relu\n  dense(10)\n");
    CU_ASSERT_EQUAL(fe->dl.errors, 0);
    /* the batch written as 128 differs from the default batch 32: a warning */
    ASSERT_DIAG(fe, DIAG_WARNING, "batch dimension is 128");
    fe_done(fe);
}

static void test_expect_mismatch(void)
{
    frontend *fe = model("[3, 32, 32]", "  layer1: conv(6, kernel=5, padding=2) expect [128, 16, 16, 16]\n"
                                        "  flatten expect [N, 6144, 1]\n  dense(10)\n");
    ASSERT_DIAG(fe, DIAG_ERROR, "'layer1' outputs [N, 6, 32, 32], but its expect says [128, 16, 16, 16]");
    ASSERT_DIAG(fe, DIAG_ERROR, "'flatten_1' outputs [N, 6144], but its expect says [N, 6144, 1]");
    CU_ASSERT(fe_hint(fe, "expect has 2 dimensions after the batch, the output has 1"));
    fe_done(fe);
}

static void test_impossible_shapes(void)
{
    frontend *fe = model("[1, 4, 4]", "  conv(6, kernel=5)\n  flatten\n  dense(10)\n");
    ASSERT_DIAG(fe, DIAG_ERROR, "kernel 5 is larger than its input [N, 1, 4, 4]");
    fe_done(fe);
    fe = model("[1, 28, 28]", "  conv(6, kernel=5)\n  fc: dense(10)\n");
    ASSERT_DIAG(fe, DIAG_ERROR, "dense 'fc' needs a flat input [N, F], but its input is [N, 6, 24, 24]");
    CU_ASSERT(fe_hint(fe, "insert 'flatten' before this layer (3456 features)"));
    fe_done(fe);
    fe = model("[1, 28, 28]", "  flatten\n  c: conv(6, kernel=3)\n  dense(10)\n");
    ASSERT_DIAG(fe, DIAG_ERROR, "conv 'c' needs an image input");
    fe_done(fe);
    fe = model("[3, 32, 32]", "  c: conv(6, kernel=3, in=1)\n  flatten\n  dense(10)\n");
    ASSERT_DIAG(fe, DIAG_ERROR, "conv 'c' says in=1 channels, but its input has 3");
    fe_done(fe);
    fe = model("[3, 32, 32]", "  flatten\n  dense(80)\n  d: dense(10, in=84)\n");
    ASSERT_DIAG(fe, DIAG_ERROR, "dense 'd' says in=84 features, but its input has 80");
    fe_done(fe);
    fe = model("[3, 32, 32]", "  b: batchnorm1d\n  flatten\n  dense(10)\n");
    ASSERT_DIAG(fe, DIAG_ERROR, "batchnorm1d 'b' needs a flat [N, F] input");
    fe_done(fe);
    fe = model("[3, 4, 4]", "  c: conv(2, kernel=3, padding=4, padding_mode=reflect)\n  flatten\n  dense(10)\n");
    ASSERT_DIAG(fe, DIAG_ERROR, "reflect padding 4 must be smaller than the input");
    fe_done(fe);
}

static void test_auto_flatten_and_pool_defaults(void)
{
    char *text = strdup("model m {\n input = [2, 9, 9]\n classes = 10\n auto_flatten = true\n"
                        " p: maxpool(3)\n q: avgpool(3, 1)\n fc: dense(10)\n}\n");
    frontend *fe = fe_run(text, NULL);
    free(text);
    CU_ASSERT_EQUAL_FATAL(fe->dl.errors, 0);
    const ir_node *p = fe_node(fe, "p"), *q = fe_node(fe, "q"), *fc = fe_node(fe, "fc");
    CU_ASSERT(p && p->out.d[1] == 3 && p->out.d[2] == 3);
    CU_ASSERT(q && q->out.d[1] == 1);
    CU_ASSERT(fc && fc->params == 2 * 10 + 10);
    fe_done(fe);
}

static void test_output_must_match_classes(void)
{
    frontend *fe = model("[4]", "  fc: dense(84)\n");
    ASSERT_DIAG(fe, DIAG_ERROR, "the model outputs [N, 84], but it has 10 classes");
    fe_done(fe);
}

static void test_model_against_data(void)
{
    frontend *fe = fe_run("model m {\n input = [128, 6, 32, 32]\n flatten\n dense(10)\n}\n"
                          "data { dataset = cifar10 }\n", NULL);
    ASSERT_DIAG(fe, DIAG_ERROR, "input [N, 6, 32, 32] has 6 channels, but cifar10 images have 3");
    fe_done(fe);
    fe = fe_run("model m {\n flatten\n dense(100)\n}\n"
                "data {\n dataset = cifar100\n resize(16)\n normalize(mean=[0.5, 0.5], std=0.5)\n}\n", NULL);
    ASSERT_DIAG(fe, DIAG_ERROR, "normalize needs 1 or 3 values for mean and std, got 2 and 1");
    CU_ASSERT(fe->prog && fe->prog->model.input.d[1] == 16 && fe->prog->model.classes == 100);
    fe_done(fe);
    fe = fe_run("model m {\n classes = 100\n flatten\n dense(100)\n}\ndata { dataset = mnist }\n", NULL);
    ASSERT_DIAG(fe, DIAG_ERROR, "has classes = 100, but mnist has 10 classes");
    fe_done(fe);
}

static void test_lints(void)
{
    frontend *fe = fe_run("model m {\n input = [4]\n classes = 2\n fc: dense(2)\n sm: softmax\n}\n", NULL);
    CU_ASSERT_EQUAL(fe->dl.errors, 0);
    ASSERT_DIAG(fe, DIAG_WARNING, "'sm' applies softmax before cross_entropy");
    fe_done(fe);
    fe = fe_run("model m {\n input = [4]\n classes = 2\n fc: dense(2)\n}\ntrain { loss = nll }\n", NULL);
    ASSERT_DIAG(fe, DIAG_WARNING, "nll expects log-probabilities");
    fe_done(fe);
    fe = model("[1, 8, 8]", "  c: conv(4, kernel=3)\n  batchnorm\n  flatten\n  dense(10)\n");
    ASSERT_DIAG(fe, DIAG_WARNING, "the bias of 'c' is redundant");
    fe_done(fe);
    fe = model("[1, 8, 8]", "  c: conv(4, kernel=3, bias=true)\n  batchnorm\n  flatten\n  dense(10)\n");
    CU_ASSERT_EQUAL(fe->dl.warnings, 0);
    fe_done(fe);
}

/* One run reports everything: a shape error does not hide the checks of the
 * layers after it, nor the lints of those before it. */
static void test_errors_do_not_hide_later_checks(void)
{
    frontend *fe = model("[1, 28, 28]",
                         "  c1: conv(6, kernel=5)\n  batchnorm\n  c2: conv(16, kernel=5)\n  batchnorm\n"
                         "  flatten\n  d1: dense(80)\n  batchnorm\n  d3: dense(10, in=84)\n"
                         "  d4: dense(10) expect [N, 12]\n  sm: softmax\n");
    ASSERT_DIAG(fe, DIAG_ERROR, "dense 'd3' says in=84 features, but its input has 80");
    /* d3's output is still known, so d4's expect is checked against it */
    ASSERT_DIAG(fe, DIAG_ERROR, "'d4' outputs [N, 10], but its expect says [N, 12]");
    ASSERT_DIAG(fe, DIAG_WARNING, "'sm' applies softmax before cross_entropy");
    CU_ASSERT_EQUAL(fe_count(fe, DIAG_WARNING, "is redundant"), 3);
    CU_ASSERT(fe_hint(fe, "write bias=false to save 16 parameters"));
    fe_done(fe);
    /* no shape follows a kernel larger than its input: the shapes stop
     * there, the other checks still run */
    fe = model("[1, 4, 4]", "  c: conv(6, kernel=5)\n  batchnorm\n  flatten\n  dense(10)\n  sm: softmax\n");
    ASSERT_DIAG(fe, DIAG_ERROR, "kernel 5 is larger than its input");
    ASSERT_DIAG(fe, DIAG_WARNING, "the bias of 'c' is redundant");
    ASSERT_DIAG(fe, DIAG_WARNING, "'sm' applies softmax before cross_entropy");
    CU_ASSERT_EQUAL(fe->dl.errors, 1);
    fe_done(fe);
    /* a layer that does not resolve stops the shapes there, not before,
     * and the lints of the layers on either side still run */
    fe = model("[1, 28, 28]", "  c1: conv(6, kernel=5) expect [N, 6, 20, 20]\n  x: relux\n"
                              "  c2: conv(16, kernel=5)\n  batchnorm\n  flatten\n  d: dense(10, kernal=3)\n"
                              "  sm: softmax\n");
    ASSERT_DIAG(fe, DIAG_ERROR, "'c1' outputs [N, 6, 24, 24], but its expect says [N, 6, 20, 20]");
    ASSERT_DIAG(fe, DIAG_ERROR, "unknown layer kind 'relux'");
    ASSERT_DIAG(fe, DIAG_ERROR, "has no option 'kernal'");
    ASSERT_DIAG(fe, DIAG_WARNING, "the bias of 'c2' is redundant");
    ASSERT_DIAG(fe, DIAG_WARNING, "'sm' applies softmax before cross_entropy");
    CU_ASSERT_EQUAL(fe->dl.errors, 3);
    fe_done(fe);
    /* a mistake in the train block does not stop the shape checks */
    fe = fe_run("model m {\n input = [4]\n classes = 2\n fc: dense(3)\n}\ntrain { epoch = 3 }\n", NULL);
    ASSERT_DIAG(fe, DIAG_ERROR, "unknown setting 'epoch'");
    ASSERT_DIAG(fe, DIAG_ERROR, "the model outputs [N, 3], but it has 2 classes");
    fe_done(fe);
    /* conv, pooling and batchnorm mistakes keep their output too */
    fe = model("[3, 8, 8]", "  c: conv(4, kernel=3, in=1)\n  p: maxpool(2, padding=2) expect [N, 4, 5, 5]\n"
                            "  b: batchnorm(3) expect [N, 4, 5, 5]\n  flatten expect [N, 99]\n  dense(10)\n");
    CU_ASSERT_EQUAL(fe->dl.errors, 4);
    ASSERT_DIAG(fe, DIAG_ERROR, "'flatten_1' outputs [N, 100], but its expect says [N, 99]");
    fe_done(fe);
}

/* --emit-ir shows derived defaults as the values they resolve to, and the
 * first layer's input as the model input. */
static void test_emit_ir_resolved_defaults(void)
{
    frontend *fe = model("[3, 8, 8]", "  c: conv(4, kernel=3)\n  p: maxpool(2)\n  b: batchnorm\n  flatten\n"
                                      "  fc: dense(10)\n");
    CU_ASSERT_EQUAL_FATAL(fe->dl.errors, 0);
    FILE *f = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    ir_dump(fe->prog, f);
    long n = ftell(f);
    char *text = xcalloc((size_t)n + 1, 1);
    rewind(f);
    CU_ASSERT_EQUAL(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "in=3, init=pytorch)(input) -> [N, 4, 6, 6]"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "maxpool(kernel=2, stride=2, padding=0)(%0)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "batchnorm(features=4,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "dense(out=10, bias=true, in=36, init=pytorch)"));
    CU_ASSERT_PTR_NULL(strstr(text, "%-1"));
    CU_ASSERT_PTR_NULL(strstr(text, "stride=0"));
    CU_ASSERT_PTR_NULL(strstr(text, "in=0"));
    free(text);
    fe_done(fe);
}

/* ---- netc's shape rules against PyTorch -------------------------------- */

/* Parses "[3, 7, 7]" or "[84]" into dims; returns the rank, 0 for "error". */
static int parse_dims(const char *text, long long *dims)
{
    if (strcmp(text, "error") == 0) return 0;
    int rank = 0;
    const char *p = text + 1;
    while (rank < 3 && *p && *p != ']') {
        char *end;
        dims[rank++] = strtoll(p, &end, 10);
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    return rank;
}

/* Checks one fixture row; returns 0 when netc agrees with PyTorch, else
 * writes what netc said to why. */
static int check_shape_row(const char *kind, const char *options, const char *input, const char *output,
                           char *why, size_t whylen)
{
    char text[512];
    snprintf(text, sizeof text, "model m {\n input = %s\n classes = 10\n l: %s%s%s%s\n flatten\n dense(10)\n}\n",
             input, kind, *options ? "(" : "", options, *options ? ")" : "");
    frontend *fe = fe_run(text, NULL);
    long long want[3];
    int want_rank = parse_dims(output, want);
    int layer_errors = 0;
    for (int i = 0; i < fe->dl.count; i++)
        layer_errors += fe->dl.items[i].severity == DIAG_ERROR && fe->dl.items[i].where.line == 4;
    const ir_node *l = fe_node(fe, "l");
    int ok;
    if (want_rank == 0) {
        ok = layer_errors > 0;
    } else {
        ok = fe->dl.errors == 0 && l && l->out.rank == want_rank;
        for (int i = 0; ok && i < want_rank; i++) ok = l->out.d[i] == want[i];
    }
    if (!ok) {
        char got[64];
        if (l && l->out.rank) shape_format(&l->out, got, sizeof got);
        else snprintf(got, sizeof got, "no shape");
        snprintf(why, whylen, "%s(%s) on %s: PyTorch %s, netc %s with %d error%s (first: %s)", kind, options, input,
                 output, got, fe->dl.errors, fe->dl.errors == 1 ? "" : "s",
                 fe->dl.count ? fe->dl.items[0].message : "none");
    }
    fe_done(fe);
    return ok ? 0 : -1;
}

/* Every row of tests/fixtures/shapes.tsv (made by gen_shape_fixtures.py
 * with PyTorch): netc's rule gives PyTorch's output shape, or an error on
 * the layer where PyTorch raises. */
static void test_shapes_match_pytorch(void)
{
    const char *srcdir = getenv("srcdir");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/shapes.tsv", srcdir ? srcdir : ".");
    FILE *f = fopen(path, "r");
    if (!f) printf("# cannot open %s\n", path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char line[512];
    int rows = 0, wrong = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        line[strcspn(line, "\n")] = '\0';
        char *fields[4];
        char *p = line;
        int n = 0;
        for (; n < 4 && p; n++) {
            fields[n] = p;
            p = strchr(p, '\t');
            if (p) *p++ = '\0';
        }
        CU_ASSERT_EQUAL(n, 4);
        if (n != 4) continue;
        rows++;
        char why[512];
        if (check_shape_row(fields[0], fields[1], fields[2], fields[3], why, sizeof why)) {
            if (++wrong <= 20) printf("# %s\n", why);
        }
    }
    fclose(f);
    if (wrong) printf("# %d of %d rows disagree with PyTorch\n", wrong, rows);
    CU_ASSERT(rows > 1000);
    CU_ASSERT_EQUAL(wrong, 0);
}

static void test_werror(void)
{
    frontend *fe = xmalloc(sizeof *fe);
    frontend_init(fe);
    fe->dl.warnings_are_errors = 1;
    const char *text = "model m {\n input = [4]\n classes = 2\n fc: dense(2)\n sm: softmax\n}\n";
    CU_ASSERT_NOT_EQUAL(frontend_run(fe, "t.net", text, strlen(text)), 0);
    CU_ASSERT_EQUAL(fe->dl.errors, 1);
    fe_done(fe);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_TestInfo tests[] = {
        { "LeNet-5: 61,706 parameters, per layer and multiply-adds", test_lenet5_counts },
        { "W4 MLP: 61,720 parameters", test_mlp_counts },
        { "W4 regularized LeNet-5: 62,158 parameters", test_regularized_lenet5_counts },
        { "W5 FC net: 407,050 parameters", test_fc_counts },
        { "W6 HW02 shapes", test_cifar_hw02_shapes },
        { "expect mismatches show both shapes", test_expect_mismatch },
        { "impossible shapes and channel mismatches", test_impossible_shapes },
        { "auto_flatten and pooling stride defaults", test_auto_flatten_and_pool_defaults },
        { "output must match classes", test_output_must_match_classes },
        { "model against its data", test_model_against_data },
        { "lints: softmax before CE, nll, bias before BN", test_lints },
        { "an error does not hide the other checks", test_errors_do_not_hide_later_checks },
        { "--emit-ir shows derived defaults resolved", test_emit_ir_resolved_defaults },
        { "shape rules agree with PyTorch (tests/fixtures/shapes.tsv)", test_shapes_match_pytorch },
        { "-Werror", test_werror },
        CU_TEST_INFO_NULL,
    };
    if (tap_add_suite("shapes", tests)) return 1;
    return tap_run_all();
}
