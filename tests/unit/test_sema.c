/* Semantic checks: names, options, types, ranges, parameters, overrides,
 * conditions, sweeps and block settings. */
#include "helpers.h"
#include "tap.h"
#include "emit_c.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASSERT_ERROR(fe, msg) do { \
        int found_ = fe_count(fe, DIAG_ERROR, msg); \
        if (!found_) fe_show(fe); \
        CU_ASSERT(found_ > 0); \
    } while (0)

static frontend *model(const char *input, const char *layers, const char *const *defs)
{
    char *text = wrap_model(input, layers);
    frontend *fe = fe_run(text, defs);
    free(text);
    return fe;
}

static void test_unknown_layer_did_you_mean(void)
{
    frontend *fe = model("[1, 28, 28]", "  c: conv(6, kernel=5)\n  flatten\n  fc: dense(10)\n  relux\n", NULL);
    ASSERT_ERROR(fe, "unknown layer kind 'relux'");
    CU_ASSERT(fe_hint(fe, "did you mean 'relu'?"));
    CU_ASSERT_EQUAL(fe_line(fe, "unknown layer kind"), 7);
    fe_done(fe);
}

static void test_unknown_option_and_types(void)
{
    frontend *fe = model("[1, 28, 28]",
                         "  c: conv(6, kernal=5)\n"
                         "  d: conv(6, kernel=2.5)\n"
                         "  e: conv(6, kernel=3, bias=1)\n"
                         "  f: conv(6, kernel=3, padding_mode=mirror)\n"
                         "  g: dropout(1.5)\n"
                         "  h: conv(0, kernel=3)\n", NULL);
    ASSERT_ERROR(fe, "has no option 'kernal'");
    CU_ASSERT(fe_hint(fe, "did you mean 'kernel'?"));
    ASSERT_ERROR(fe, "'kernel' must be an integer, not a number");
    ASSERT_ERROR(fe, "'bias' must be true or false");
    ASSERT_ERROR(fe, "unknown value 'mirror' for 'padding_mode'");
    ASSERT_ERROR(fe, "'p' must be at least 0 and less than 1, got 1.5");
    ASSERT_ERROR(fe, "'out' must be at least 1, got 0");
    fe_done(fe);
}

static void test_missing_and_repeated_options(void)
{
    frontend *fe = model("[1, 28, 28]", "  c: conv(6)\n  d: conv(6, 3, kernel=3)\n  e: relu(1)\n", NULL);
    ASSERT_ERROR(fe, "layer kind 'conv' needs option 'kernel'");
    ASSERT_ERROR(fe, "option 'kernel' of 'conv' is given twice");
    ASSERT_ERROR(fe, "too many positional arguments to 'relu'");
    fe_done(fe);
}

static void test_duplicate_layer_names(void)
{
    frontend *fe = model("[1, 28, 28]", "  a: flatten\n  a: dense(10)\n", NULL);
    ASSERT_ERROR(fe, "layer name 'a' is used twice");
    CU_ASSERT(fe_hint(fe, "on line 4"));
    fe_done(fe);
}

static void test_auto_names(void)
{
    frontend *fe = model("[1, 28, 28]", "  flatten\n  dense(20)\n  relu\n  dense(10)\n", NULL);
    CU_ASSERT_EQUAL(fe->dl.errors, 0);
    CU_ASSERT_PTR_NOT_NULL(fe_node(fe, "dense_2"));
    CU_ASSERT_PTR_NOT_NULL(fe_node(fe, "relu_1"));
    fe_done(fe);
}

static const char *param_file =
    "param act = tanh\n"
    "param width = 20\n"
    "param bn = false\n"
    "model m {\n"
    "    input = [1, 8, 8]\n"
    "    classes = 10\n"
    "    flatten\n"
    "    fc1: dense($width)\n"
    "    norm: batchnorm if $bn\n"
    "    a: $act\n"
    "    fc2: dense(10)\n"
    "}\n";

static void test_params_and_overrides(void)
{
    frontend *fe = fe_run(param_file, NULL);
    CU_ASSERT_EQUAL(fe->dl.errors, 0);
    CU_ASSERT_PTR_NULL(fe_node(fe, "norm"));
    const ir_node *a = fe_node(fe, "a");
    CU_ASSERT(a && layer_kind_of(a->op) == L_TANH);
    const ir_node *fc1 = fe_node(fe, "fc1");
    CU_ASSERT(fc1 && fc1->out.d[0] == 20);
    fe_done(fe);

    const char *defs[] = { "act=relu", "width=32", "bn=true", NULL };
    fe = fe_run(param_file, defs);
    CU_ASSERT_EQUAL(fe->dl.errors, 0);
    CU_ASSERT_PTR_NOT_NULL(fe_node(fe, "norm"));
    a = fe_node(fe, "a");
    CU_ASSERT(a && layer_kind_of(a->op) == L_RELU);
    fc1 = fe_node(fe, "fc1");
    CU_ASSERT(fc1 && fc1->out.d[0] == 32);
    CU_ASSERT(fe->prog && fe->prog->total_params == 64 * 32 + 32 + 64 + 32 * 10 + 10);
    fe_done(fe);
}

/* A layer disabled by its condition is still checked: its kind and options. */
static void test_disabled_layers_checked(void)
{
    frontend *fe = fe_run("param bn = false\nparam on = true\nmodel m {\n input = [4]\n classes = 2\n fc: dense(2)\n"
                          " n: batchnorn if $bn\n d: dropout(p=1.5) if $bn\n e: dense(2, kernel=3) if not $on\n"
                          " f: relu if $bn\n}\n", NULL);
    ASSERT_ERROR(fe, "unknown layer kind 'batchnorn'");
    ASSERT_ERROR(fe, "'p' must be at least 0 and less than 1, got 1.5");
    ASSERT_ERROR(fe, "has no option 'kernel'");
    CU_ASSERT_EQUAL(fe->dl.errors, 3);
    fe_done(fe);
    /* a valid disabled layer adds no node and no diagnostic */
    fe = fe_run(param_file, NULL);
    CU_ASSERT_EQUAL(fe->dl.count, 0);
    CU_ASSERT_PTR_NULL(fe_node(fe, "norm"));
    fe_done(fe);
}

/* Two items: [28, 28] is an image size to a reader, [batch, features] by
 * the rule; only [N, F] is accepted. A written batch is checked. */
static void test_input_shapes(void)
{
    frontend *fe = model("[28, 28]", "  flatten\n  dense(10)\n", NULL);
    ASSERT_ERROR(fe, "input [28, 28] is ambiguous");
    CU_ASSERT(fe_hint(fe, "write [1, 28, 28] for images of one channel, or [N, 28] for 28 features"));
    CU_ASSERT_EQUAL(fe->dl.errors, 1);
    fe_done(fe);
    fe = model("[N, 784]", "  dense(10)\n", NULL);
    CU_ASSERT_EQUAL(fe->dl.count, 0);
    CU_ASSERT(fe->prog->model.input.rank == 1 && fe->prog->model.input.d[0] == 784);
    fe_done(fe);
    fe = model("[64, 1, 28, 28]", "  flatten\n  dense(10)\n", NULL);
    CU_ASSERT_EQUAL(fe->dl.errors, 0);
    CU_ASSERT_EQUAL(fe_count(fe, DIAG_WARNING, "input's batch dimension is 64, but train.batch is 32"), 1);
    fe_done(fe);
    fe = fe_run("model m {\n input = [64, 1, 28, 28]\n classes = 10\n flatten\n dense(10)\n}\n"
                "train { batch = 64 }\n", NULL);
    CU_ASSERT_EQUAL(fe->dl.count, 0);
    fe_done(fe);
    fe = model("[0, 1, 28, 28]", "  flatten\n  dense(10)\n", NULL);
    ASSERT_ERROR(fe, "the batch dimension must be N or a positive number");
    fe_done(fe);
}

static void test_bad_overrides(void)
{
    const char *unknown[] = { "widht=3", NULL };
    frontend *fe = fe_run(param_file, unknown);
    ASSERT_ERROR(fe, "the file declares no parameter 'widht'");
    CU_ASSERT(fe_hint(fe, "did you mean 'width'?"));
    fe_done(fe);
    const char *badtype[] = { "bn=3", NULL };
    fe = fe_run(param_file, badtype);
    ASSERT_ERROR(fe, "a condition must be true or false");
    fe_done(fe);
    const char *malformed[] = { "noequals", NULL };
    fe = fe_run(param_file, malformed);
    ASSERT_ERROR(fe, "expected NAME=VALUE");
    fe_done(fe);
}

static void test_unknown_and_cyclic_params(void)
{
    frontend *fe = fe_run("param a = $b\nparam b = $a\nmodel m {\n input = [4]\n classes = 2\n"
                          " fc: dense($a)\n x: dense($widht)\n}\n", NULL);
    ASSERT_ERROR(fe, "refers to itself");
    ASSERT_ERROR(fe, "unknown parameter '$widht'");
    fe_done(fe);
}

static void test_sweeps_checked_point_by_point(void)
{
    const char *text =
        "param w = 6\n"
        "sweep w = [6, 16, 0]\n"
        "sweep nope = [1]\n"
        "model m {\n"
        "    input = [1, 8, 8]\n"
        "    classes = 10\n"
        "    c: conv($w, kernel=3) expect [N, $w, 6, 6]\n"
        "    flatten\n"
        "    fc: dense(10)\n"
        "}\n";
    frontend *fe = fe_run(text, NULL);
    ASSERT_ERROR(fe, "sweep over 'nope', which is not a parameter");
    fe_done(fe);
    const char *ok_sweeps = "param w = 6\nsweep w = [6, 16, 0]\nmodel m {\n input = [1, 8, 8]\n classes = 10\n"
                            " c: conv($w, kernel=3) expect [N, $w, 6, 6]\n flatten\n fc: dense(10)\n}\n";
    fe = fe_run(ok_sweeps, NULL);
    ASSERT_ERROR(fe, "does not compile with this sweep value 0");
    ASSERT_ERROR(fe, "'out' must be at least 1, got 0");
    CU_ASSERT_EQUAL(fe_count(fe, DIAG_ERROR, "sweep value 16"), 0);
    fe_done(fe);
}

/* Warnings at sweep points: reported under a note naming the point, unless
 * the base model gives the same one; -Werror holds there too. */
static void test_sweep_point_warnings(void)
{
    const char *text = "param act = relu\nsweep act = [relu, softmax, tanh]\n"
                       "model m {\n input = [4]\n classes = 10\n fc: dense(10)\n b: batchnorm\n out: $act\n}\n";
    frontend *fe = fe_run(text, NULL);
    CU_ASSERT_EQUAL(fe->dl.errors, 0);
    /* the base model's bias warning is not repeated at each of the 3 points */
    CU_ASSERT_EQUAL(fe_count(fe, DIAG_WARNING, "the bias of 'fc' is redundant"), 1);
    CU_ASSERT_EQUAL(fe_count(fe, DIAG_WARNING, "applies softmax before cross_entropy"), 1);
    CU_ASSERT_EQUAL(fe_count(fe, DIAG_NOTE, "with this sweep value softmax"), 1);
    CU_ASSERT_EQUAL(fe_count(fe, DIAG_NOTE, "sweep value"), 1);
    fe_done(fe);
    fe = xmalloc(sizeof *fe);
    frontend_init(fe);
    fe->dl.warnings_are_errors = 1;
    const char *clean_base = "param act = relu\nsweep act = [relu, softmax]\n"
                             "model m {\n input = [4]\n classes = 10\n fc: dense(10)\n out: $act\n}\n";
    CU_ASSERT_NOT_EQUAL(frontend_run(fe, "t.net", clean_base, strlen(clean_base)), 0);
    ASSERT_ERROR(fe, "does not compile with this sweep value softmax");
    ASSERT_ERROR(fe, "applies softmax before cross_entropy");
    fe_done(fe);
}

/* A large sweep is checked point by point in linear time: a point's IR
 * holds that point only (no copy of every sweep), and the one bad point of
 * 20,000 is reported once. */
static void test_large_sweep(void)
{
    enum { POINTS = 20000, BAD = 12345 };
    strbuf sb;
    sb_init(&sb);
    sb_puts(&sb, "param w = 10\nsweep w = [");
    for (int i = 0; i < POINTS; i++) sb_printf(&sb, "%s%d", i ? ", " : "", i == BAD ? 0 : 10 + i % 50);
    sb_puts(&sb, "]\nmodel m {\n input = [4]\n classes = 10\n fc: dense($w)\n fc2: dense(10)\n}\n");
    frontend *fe = fe_run(sb.data, NULL);
    sb_free(&sb);
    CU_ASSERT_EQUAL(fe->dl.errors, 2);
    CU_ASSERT_EQUAL(fe_count(fe, DIAG_ERROR, "does not compile with this sweep value 0"), 1);
    CU_ASSERT_EQUAL_FATAL(fe->prog->nsweeps, 1);
    CU_ASSERT_EQUAL(fe->prog->sweeps[0].values->nitems, POINTS);
    ir_program *p = frontend_sweep_point(fe, 0, POINTS - 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(p->nsweeps, 0);
    CU_ASSERT_EQUAL(p->model.nodes[0].out.d[0], 10 + (POINTS - 1) % 50);
    ir_program_free(p);
    CU_ASSERT_PTR_NULL(frontend_sweep_point(fe, 0, BAD));
    fe_done(fe);
}

/* Ranges and milestones out of order, and schedule settings that count the
 * wrong thing. */
static void test_ordered_lists_and_schedules(void)
{
    const char *base = "model m {\n input = [4]\n classes = 2\n fc: dense(2)\n}\n";
    char text[512];
    snprintf(text, sizeof text, "%snoise_test { std = [0.1]; clamp = [1, 0] }\n", base);
    frontend *fe = fe_run(text, NULL);
    ASSERT_ERROR(fe, "'clamp' is [low, high], but 1 is not below 0");
    fe_done(fe);
    snprintf(text, sizeof text, "%saugment { noise(0.1, clamp=[0.5, 0.5]) }\n", base);
    fe = fe_run(text, NULL);
    ASSERT_ERROR(fe, "'clamp' is [low, high], but 0.5 is not below 0.5");
    fe_done(fe);
    snprintf(text, sizeof text, "%strain { epochs = 40; schedule = multistep([30, 10]) }\n", base);
    fe = fe_run(text, NULL);
    ASSERT_ERROR(fe, "'milestones' must increase, but 10 comes after 30");
    fe_done(fe);
    snprintf(text, sizeof text, "%strain { schedule = multistep(fractions=[0.5, 0.5]) }\n", base);
    fe = fe_run(text, NULL);
    ASSERT_ERROR(fe, "'fractions' holds 0.5 twice");
    fe_done(fe);
    snprintf(text, sizeof text, "%strain { epochs = 30; schedule = multistep([10, 30]) }\n", base);
    fe = fe_run(text, NULL);
    CU_ASSERT_EQUAL(fe_count(fe, DIAG_WARNING, "milestone 30 is never reached: training runs 30 epochs"), 1);
    fe_done(fe);
    snprintf(text, sizeof text, "%strain { epochs = 30; schedule = cosine(30, per=iteration) }\n", base);
    fe = fe_run(text, NULL);
    CU_ASSERT_EQUAL(fe_count(fe, DIAG_WARNING, "t_max = 30 counts iterations"), 1);
    fe_done(fe);
    snprintf(text, sizeof text, "%strain { epochs = 30; schedule = cosine(per=iteration) }\n", base);
    fe = fe_run(text, NULL);
    CU_ASSERT_EQUAL(fe->dl.count, 0);
    fe_done(fe);
}

/* The noise test's own normalize (W1's script), optional with 'if'. */
static void test_noise_test_normalize(void)
{
    const char *text = "param w1 = true\nmodel m {\n input = [1, 4, 4]\n classes = 2\n flatten\n fc: dense(2)\n}\n"
                       "noise_test {\n std = [0.4]\n normalize(0.1307, 0.3081) if $w1\n}\n";
    frontend *fe = fe_run(text, NULL);
    CU_ASSERT_EQUAL(fe->dl.count, 0);
    const resolved *n = fe->prog->noise_normalize;
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    CU_ASSERT_DOUBLE_EQUAL(n->v[NORM_MEAN].list[0], 0.1307, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(n->v[NORM_STD].list[0], 0.3081, 1e-12);
    fe_done(fe);
    const char *off[] = { "w1=false", NULL };
    fe = fe_run(text, off);
    CU_ASSERT_EQUAL(fe->dl.count, 0);
    CU_ASSERT_PTR_NULL(fe->prog->noise_normalize);
    fe_done(fe);
    fe = fe_run("model m {\n input = [3, 4, 4]\n classes = 2\n flatten\n fc: dense(2)\n}\n"
                "noise_test {\n std = [0.4]\n normalize([0.5, 0.5], 0.2)\n normalize(0, 1)\n"
                " normalize(0, -1) if false\n}\n", NULL);
    ASSERT_ERROR(fe, "a second normalize in the noise_test block");
    ASSERT_ERROR(fe, "normalize needs 1 or 3 values for mean and std, got 2 and 1");
    ASSERT_ERROR(fe, "'std' must be greater than 0");
    CU_ASSERT_EQUAL(fe->dl.errors, 3);
    fe_done(fe);
}

/* The emitted program's normalize: one mean for every channel with a std
 * per channel must reach the runtime as per-channel lists of one count (it
 * used every std but the first as if there were one). */
static void test_emitted_normalize_counts(void)
{
    frontend *fe = fe_run("model m {\n flatten\n fc: dense(10)\n}\n"
                          "data {\n dataset = cifar10\n normalize(mean=0.5, std=[0.1, 0.2, 0.3])\n}\n"
                          "noise_test {\n std = [0.1]\n normalize([0.4, 0.5, 0.6], 0.25)\n}\n", NULL);
    CU_ASSERT_EQUAL_FATAL(fe->dl.count, 0);
    strbuf sb;
    sb_init(&sb);
    emit_info info = { "t.net", "test", NULL };
    emit_c(fe->prog, &info, NULL, 0, &sb);
    CU_ASSERT_PTR_NOT_NULL(strstr(sb.data, ".nnorm = 3, .mean = { 0.5, 0.5, 0.5 }, .std = { 0.1, 0.2, 0.3 }"));
    CU_ASSERT_PTR_NOT_NULL(strstr(sb.data, ".nnorm = 3, .norm_mean = { 0.4, 0.5, 0.6 }, .norm_std = { 0.25, 0.25, 0.25 }"));
    sb_free(&sb);
    fe_done(fe);
}

static void test_block_settings(void)
{
    frontend *fe = fe_run("model m {\n input = [4]\n classes = 2\n fc: dense(2)\n}\n"
                          "train {\n epoch = 3\n optimizer = adamm(lr=0.1)\n loss = cross_entropy(label_smoothing=1.5)\n"
                          " schedule = multistep(gamma=0.5)\n}\n"
                          "data { dataset = mnits }\n"
                          "trian { }\n", NULL);
    ASSERT_ERROR(fe, "unknown setting 'epoch' in train block");
    CU_ASSERT(fe_hint(fe, "did you mean 'epochs'?"));
    ASSERT_ERROR(fe, "unknown optimizer 'adamm'");
    CU_ASSERT(fe_hint(fe, "did you mean 'adam'?"));
    ASSERT_ERROR(fe, "'label_smoothing' must be at least 0 and less than 1");
    CU_ASSERT_EQUAL(fe_count(fe, DIAG_ERROR, "needs 'dataset'"), 0);
    ASSERT_ERROR(fe, "unknown value 'mnits' for 'dataset'");
    ASSERT_ERROR(fe, "unknown block 'trian'");
    CU_ASSERT(fe_hint(fe, "did you mean 'train'?"));
    fe_done(fe);
}

static void test_sam_and_schedules_resolve(void)
{
    frontend *fe = fe_run("model m {\n input = [4]\n classes = 2\n fc: dense(2)\n}\n"
                          "train {\n optimizer = sam(sgd(lr=0.1, momentum=0.9, weight_decay=5e-4), rho=2.0, adaptive=true)\n"
                          " schedule = multistep(fractions=[0.3, 0.6, 0.8], gamma=0.2)\n}\n", NULL);
    CU_ASSERT_EQUAL_FATAL(fe->dl.errors, 0);
    const resolved *opt = fe->prog->train->v[TRAIN_OPTIMIZER].call;
    CU_ASSERT_EQUAL(opt->index, O_SAM);
    CU_ASSERT_DOUBLE_EQUAL(ropt_num(opt, SAM_RHO), 2.0, 0);
    const resolved *base = opt->v[SAM_BASE].call;
    CU_ASSERT_EQUAL(base->index, O_SGD);
    CU_ASSERT_DOUBLE_EQUAL(ropt_num(base, SGD_WEIGHT_DECAY), 5e-4, 1e-18);
    const resolved *sch = fe->prog->train->v[TRAIN_SCHEDULE].call;
    CU_ASSERT_EQUAL(sch->v[MS_FRACTIONS].nlist, 3);
    fe_done(fe);
}

static void test_defaults(void)
{
    frontend *fe = fe_run("model m {\n input = [4]\n classes = 2\n fc: dense(2)\n}\n", NULL);
    CU_ASSERT_EQUAL_FATAL(fe->dl.errors, 0);
    const resolved *t = fe->prog->train;
    CU_ASSERT_EQUAL(ropt_int(t, TRAIN_BATCH), 32);
    CU_ASSERT_EQUAL(t->v[TRAIN_OPTIMIZER].call->index, O_ADAM);
    CU_ASSERT_DOUBLE_EQUAL(ropt_num(t->v[TRAIN_OPTIMIZER].call, ADAM_LR), 1e-3, 0);
    CU_ASSERT_EQUAL(t->v[TRAIN_LOSS].call->index, LOSS_CROSS_ENTROPY);
    CU_ASSERT_EQUAL(t->v[TRAIN_SCHEDULE].call->index, S_CONSTANT);
    const ir_node *fc = fe_node(fe, "fc");
    CU_ASSERT(fc && ropt_num(fc->op, DENSE_BIAS) == 1);
    fe_done(fe);
}

static void test_layer_written_as_setting(void)
{
    frontend *fe = model("[4]", "  fc = dense(10)\n", NULL);
    ASSERT_ERROR(fe, "'fc = ...' is a setting; layers are written 'name: kind(...)'");
    fe_done(fe);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_TestInfo tests[] = {
        { "unknown layer kind: did you mean", test_unknown_layer_did_you_mean },
        { "unknown options, types, choices, ranges", test_unknown_option_and_types },
        { "missing, repeated and extra options", test_missing_and_repeated_options },
        { "duplicate layer names", test_duplicate_layer_names },
        { "unnamed layers get kind_k names", test_auto_names },
        { "params, conditions and -D overrides", test_params_and_overrides },
        { "layers disabled by 'if' are checked", test_disabled_layers_checked },
        { "input: two items, and a written batch", test_input_shapes },
        { "bad -D overrides", test_bad_overrides },
        { "unknown and cyclic parameters", test_unknown_and_cyclic_params },
        { "sweeps are checked point by point", test_sweeps_checked_point_by_point },
        { "warnings and -Werror at sweep points", test_sweep_point_warnings },
        { "a sweep of 20,000 points", test_large_sweep },
        { "ordered lists, schedules counting the wrong thing", test_ordered_lists_and_schedules },
        { "the noise test's own normalize", test_noise_test_normalize },
        { "emitted normalize lists have one count", test_emitted_normalize_counts },
        { "block settings, optimizers, losses, datasets", test_block_settings },
        { "SAM and multistep resolve", test_sam_and_schedules_resolve },
        { "defaults", test_defaults },
        { "layer written as a setting", test_layer_written_as_setting },
        CU_TEST_INFO_NULL,
    };
    if (tap_add_suite("sema", tests)) return 1;
    return tap_run_all();
}
