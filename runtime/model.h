/* A model in memory: every layer's parameters, gradients and buffers in
 * three flat arrays (so an optimizer step and a checkpoint are one loop),
 * and the activations of one batch, kept for the backward pass. */
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
    size_t nparams, nbuffers;
    size_t *param_off, *buffer_off;   /* per layer, into params/grads and buffers */
    float *params, *grads, *buffers;
    float **act;                      /* act[0]: input batch; act[i + 1]: output of layer i */
    float **saved;                    /* per layer, what forward keeps for backward */
    float *scratch;
    float *dx[2];                     /* gradient of activations, ping-pong */
} nr_model;

/* Lays out the model and allocates memory for batches of up to max_batch. */
int nr_model_init(nr_model *m, const nr_program *p, int max_batch, nr_error *err);
void nr_model_free(nr_model *m);
/* Initial weights and buffers from the seed. */
void nr_model_init_weights(nr_model *m, uint64_t seed);
/* Runs the layers on the n samples in act[0]; returns the last activation.
 * flags: NR_TRAINING, NR_UPDATE_STATS; dropout masks come from
 * (seed, layer, draw). */
const float *nr_model_forward(nr_model *m, int n, int flags, uint64_t seed, uint32_t draw);
/* Gradients of every parameter into grads, from d(loss)/d(output). */
void nr_model_backward(nr_model *m, int n, const float *dout);
/* Elements of one sample at layer i's output (i = -1: the input). */
size_t nr_model_sample_size(const nr_model *m, int i);
#endif
