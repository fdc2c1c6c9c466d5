/* A model in memory: every layer's parameters, gradients and buffers in
 * three flat arrays (so an optimizer step and a checkpoint are one loop),
 * and the activations of one batch, kept for the backward pass.
 *
 * A batch runs data-parallel: it is cut into micro-batches of a fixed size
 * (a function of the largest batch alone, never of the thread count); each
 * thread runs whole micro-batches through every layer with BLAS and the
 * kernels single-threaded, so the numbers a micro-batch produces do not
 * depend on which thread ran it. Each micro-batch writes its own parameter
 * gradients and loss; they are summed once per pass in micro-batch order.
 * BatchNorm in training mode needs whole-batch statistics: its sums are
 * taken per micro-batch and combined in the same fixed order, at a barrier.
 * So the weights a run ends with are the same for any --threads, and the
 * threads meet once per step (plus, per BatchNorm layer in training, twice
 * in forward and once in backward) instead of once per layer. */
#ifndef NR_MODEL_H
#define NR_MODEL_H
#include "netrt.h"
#include "nr_error.h"
#include "rng.h"
#include <stddef.h>

typedef struct nr_model {
    const nr_layer *layers;
    int nlayers;
    int max_batch;
    int micro;                        /* images per micro-batch */
    int nthreads;                     /* threads a pass may use */
    size_t nparams, nbuffers;
    size_t *param_off, *buffer_off;   /* per layer, into params/grads and buffers */
    float *params, *grads, *buffers;
    float *part_grads;                /* per micro-batch, nparams each */
    float **act;                      /* act[0]: input batch; act[i + 1]: output of layer i */
    float **saved;                    /* per layer, what forward keeps for backward: one block per micro-batch */
    size_t *saved_each;               /* per layer, floats of one micro-batch's block */
    float *scratch;                   /* per thread, scratch_each floats */
    size_t scratch_each;
    float *dx[2];                     /* gradient of activations, ping-pong */
    size_t widest;                    /* floats of the widest activation of one sample */
    double **bn_part;                 /* per BatchNorm layer: per micro-batch sums, 4 * channels each */
    double *loss_part;                /* per micro-batch */
    int *correct_part;
} nr_model;

/* Fills the input act[0] (and whatever else the caller keeps per sample,
 * such as labels) for samples [first, first + count) of the batch. Called
 * from the pass's threads, each on its own range. */
typedef void nr_prepare_fn(void *ctx, int first, int count);

/* One pass over a batch of n samples. flags: NR_TRAINING, NR_UPDATE_STATS;
 * dropout masks come from (seed, layer, draw). With loss set, the pass
 * also computes the loss of labels and every parameter's gradient. */
typedef struct nr_pass {
    int n, flags;
    uint64_t seed;
    uint32_t draw;
    nr_prepare_fn *prepare;
    void *ctx;
    const nr_loss *loss;              /* NULL: forward only */
    int classes;
    const int *labels;
    float *dlogits;                   /* [n, classes] */
} nr_pass;

/* Lays out the model and allocates memory for batches of up to max_batch,
 * for as many threads as OpenMP will give (nr_cpu_set_threads first). */
int nr_model_init(nr_model *m, const nr_program *p, int max_batch, nr_error *err);
void nr_model_free(nr_model *m);
/* Initial weights and buffers from the seed. */
void nr_model_init_weights(nr_model *m, uint64_t seed);
/* Runs the pass; returns the last activation ([n, classes]). With a loss,
 * *loss_mean receives the batch's mean loss, *correct how many samples the
 * model got right, and grads the gradients. */
const float *nr_model_pass(nr_model *m, const nr_pass *ps, double *loss_mean, int *correct);
/* Elements of one sample at layer i's output (i = -1: the input). */
size_t nr_model_sample_size(const nr_model *m, int i);
#endif
