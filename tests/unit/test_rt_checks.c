/* The checks a run makes before it spends time or memory (run_checks.c):
 * the layer table as text and what differs between two, the memory
 * estimate and the refusal with figures, the batch cap and the run
 * directory's write test. */
#include "run_checks.h"
#include "optim.h"
#include "scratch.h"
#include "tap.h"
#include <stdlib.h>
#include <string.h>

/* 784 -> dense(10) -> log_softmax: 7,850 parameters. */
static const nr_layer mlp_layers[] = {
    { .name = "fc", .kind = NR_DENSE, .in_rank = 1, .in_c = 784, .in_h = 1, .in_w = 1, .out_rank = 1, .out_c = 10,
      .out_h = 1, .out_w = 1, .bias = 1, .init = NR_INIT_PYTORCH },
    { .name = "out", .kind = NR_LOG_SOFTMAX, .in_rank = 1, .in_c = 10, .in_h = 1, .in_w = 1, .out_rank = 1,
      .out_c = 10, .out_h = 1, .out_w = 1 },
};

static nr_program mlp(void)
{
    nr_program p;
    memset(&p, 0, sizeof p);
    p.abi = NR_ABI_VERSION;
    p.model = "mlp";
    p.in_rank = 1;
    p.in_c = 784;
    p.in_h = p.in_w = 1;
    p.classes = 10;
    p.layers = mlp_layers;
    p.nlayers = 2;
    return p;
}

static void test_layer_text(void)
{
    nr_program p = mlp();
    char *t = nr_layers_describe(&p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_STRING_EQUAL(t, "fc dense in=784 out=10 bias=1 init=pytorch; out log_softmax in=10 out=10");
    free(t);
}

static void test_layer_differences(void)
{
    char what[512];
    const char *a = "fc dense in=784 out=10 bias=1 init=pytorch; out log_softmax in=10 out=10";
    CU_ASSERT_EQUAL(nr_layers_compare(a, a, what, sizeof what), 0);
    CU_ASSERT_EQUAL(nr_layers_compare(a, "fc dense in=784 out=10 bias=0 init=pytorch; out log_softmax in=10 out=10",
                                      what, sizeof what), -1);
    CU_ASSERT_STRING_EQUAL(what, "layer 1 (fc): bias is 1 in the checkpoint, 0 in this model");
    CU_ASSERT_EQUAL(nr_layers_compare(a, "fc dense in=784 out=10 bias=1 init=pytorch", what, sizeof what), -1);
    CU_ASSERT_STRING_EQUAL(what, "layer 2 (out log_softmax) of the checkpoint is not in this model (1 layers, not 2)");
    CU_ASSERT_EQUAL(nr_layers_compare(a, "fc dense in=784 out=10 bias=1 init=pytorch; out softmax in=10 out=10", what,
                                      sizeof what), -1);
    CU_ASSERT_STRING_EQUAL(what, "layer 2 is out (log_softmax) in the checkpoint, out (softmax) in this model");
    CU_ASSERT_EQUAL(nr_layers_compare("d dropout in=4 out=4", "d dropout in=4 out=4 p=0.5", what, sizeof what), -1);
    CU_ASSERT_STRING_EQUAL(what, "layer 1 (d): option p=0.5 is only in this model");
}

static void test_memory_estimate(void)
{
    nr_program p = mlp();
    nr_optim adam = { .kind = NR_ADAM, .lr = 1e-3f };
    nr_mem_estimate e1, e2;
    nr_estimate_memory(&p, &adam, 100, 1000, &e1);
    nr_estimate_memory(&p, &adam, 200, 1000, &e2);
    CU_ASSERT_EQUAL(e1.parameters, 2 * 7850 * sizeof(float));  /* weights and gradients */
    CU_ASSERT_EQUAL(e1.optimizer, nr_optim_state_count(&adam, 7850) * sizeof(float));
    CU_ASSERT_EQUAL(e1.data, 1000);
    /* at least the input and output of every sample, and linear in the batch */
    CU_ASSERT(e1.activations >= 100 * (784 + 10 + 10) * sizeof(float));
    CU_ASSERT(e2.activations > e1.activations + 100 * (784 + 10 + 10) * sizeof(float));
    CU_ASSERT(e2.activations <= 2 * e1.activations);
    CU_ASSERT_EQUAL(e1.total, e1.activations + e1.parameters + e1.optimizer + e1.data);
}

static void test_memory_refusal(void)
{
    nr_program p = mlp();
    nr_optim sgd = { .kind = NR_SGD, .lr = 0.1f };
    nr_mem_estimate e;
    nr_estimate_memory(&p, &sgd, 1 << 20, (size_t)1 << 30, &e);
    nr_error err = { { 0 } };
    size_t needed = e.total - e.data;
    CU_ASSERT_EQUAL(nr_check_memory(&e, 1 << 20, needed, "test", &err), 0);  /* the data is loaded already */
    CU_ASSERT_EQUAL(nr_check_memory(&e, 1 << 20, 0, "nothing", &err), 0);   /* unknown: not refused */
    CU_ASSERT_EQUAL(nr_check_memory(&e, 1 << 20, needed / 2, "MemAvailable in /proc/meminfo", &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "MemAvailable in /proc/meminfo"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "activations for batch 1048576"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "the data, 1024 MiB, is loaded already"));
    const char *source = NULL;
    size_t avail = nr_available_memory(&source);
    CU_ASSERT_PTR_NOT_NULL(source);
    CU_ASSERT(avail > 0);
}

static void test_batch_cap(void)
{
    CU_ASSERT_EQUAL(nr_cap_batch(1000000, 600, "images", NULL), 600);
    CU_ASSERT_EQUAL(nr_cap_batch(50, 600, "images", NULL), 50);
    CU_ASSERT_EQUAL(nr_cap_batch(600, 600, "images", NULL), 600);
}

static void test_writable_dir(void)
{
    nr_error err = { { 0 } };
    CU_ASSERT_EQUAL(nr_check_writable_dir(scratch_root, &err), 0);
    CU_ASSERT_EQUAL(scratch_count_entries(scratch_root), 0);  /* the test file is gone */
    const char *missing = scratch("no/such/dir");
    CU_ASSERT_EQUAL(nr_check_writable_dir(missing, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, missing));
}

int main(void)
{
    if (scratch_init("checks") != 0) {
        perror("mkdtemp");
        return 1;
    }
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    static CU_TestInfo layers[] = {
        { "the layer table as canonical text", test_layer_text },
        { "what differs between two layer tables", test_layer_differences },
        CU_TEST_INFO_NULL,
    };
    static CU_TestInfo resources[] = {
        { "the memory estimate counts activations, parameters, optimizer and data", test_memory_estimate },
        { "a run that does not fit is refused with the figures", test_memory_refusal },
        { "the batch is capped at the images there are", test_batch_cap },
        { "the run directory's write test", test_writable_dir },
        CU_TEST_INFO_NULL,
    };
    if (tap_add_suite("layer table", layers) || tap_add_suite("resources", resources)) return 1;
    int failed = tap_run_all();
    if (scratch_remove_tree(scratch_root) != 0) fprintf(stderr, "# could not remove %s\n", scratch_root);
    return failed;
}
