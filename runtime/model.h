/* A model in memory: every layer's parameters, gradients and buffers in
 * three flat arrays (so an optimizer step and a checkpoint are one loop),
 * and, per lane (runtime/team.h), the activations of one batch, kept for
 * the backward pass.
 *
 * A batch runs data-parallel: it is cut into micro-batches of a fixed size
 * (a function of the largest batch alone, never of the thread count); a
 * pass is a few phases, and each phase one task per micro-batch, which one
 * thread runs through the phase's layers with BLAS and the kernels
 * single-threaded, so the numbers a micro-batch produces do not depend on
 * which thread ran it. BatchNorm in training mode needs whole-batch
 * statistics: its sums are taken per micro-batch and combined in a fixed
 * order, and a phase ends there (twice in forward, once in backward, per
 * BatchNorm layer). Each micro-batch writes its own parameter gradients and
 * loss; they are summed once per pass in micro-batch order. So the weights
 * a run ends with are the same for any --threads.
 *
 * A task writes into its thread's lane and later phases read the lane that
 * finished it first: a thread that has nothing left to do redoes a task
 * another thread has held for too long (descheduled by a busy machine), so
 * no phase waits for a thread that is not running. */
#ifndef NR_MODEL_H
#define NR_MODEL_H
#include "netrt.h"
#include "nr_error.h"
#include "rng.h"
#include "team.h"
#include <stddef.h>

/* What one lane writes: everything a task produces, for the whole batch. */
typedef struct nr_lane {
    float **act;                      /* act[0]: input batch; act[i + 1]: output of layer i */
    float **saved;                    /* per layer, what forward keeps for backward: one block per micro-batch */
    double **bn_part;                 /* per BatchNorm layer: per micro-batch sums, 4 * channels each */
    float **dx_edge;                  /* per layer: its input's gradient where the next phase reads it, else NULL */
    float *dx[2];                     /* the other gradients of activations, ping-pong */
    float *part_grads;                /* per micro-batch, nparams each */
    float *dlogits;                   /* [max_batch, classes] */
    int *labels;                      /* [max_batch] */
    double *loss_part;                /* per micro-batch */
    int *correct_part;
    float *scratch;                   /* scratch_each floats */
} nr_lane;

/* The phases of a pass: forward spans ending at each BatchNorm layer that
 * needs batch statistics, the last one with the loss and the backward down
 * to the last such layer, then one backward span per such layer. */
typedef struct nr_plan {
    int syncs;                        /* layers that need batch statistics */
    int *lo, *hi;                     /* [2 * syncs + 1]: each phase's layers */
    int *fwd_phase;                   /* [nlayers + 1]: phase that writes layer i - 1's output (0: the input) */
    int *bwd_phase;                   /* [nlayers + 1]: phase that runs layer i's backward */
} nr_plan;

typedef struct nr_model {
    const nr_layer *layers;
    int nlayers;
    int max_batch;
    int micro;                        /* images per micro-batch */
    int classes;
    int nlanes;                       /* threads a pass may use */
    size_t nparams, nbuffers;
    size_t *param_off, *buffer_off;   /* per layer, into params/grads and buffers */
    float *params, *grads, *buffers;
    size_t *saved_each;               /* per layer, floats of one micro-batch's block */
    size_t scratch_each;
    size_t widest;                    /* floats of the widest activation of one sample */
    nr_lane *lane;                    /* [nlanes] */
    nr_plan plan[2];                  /* [1]: training, where BatchNorm needs batch statistics */
    float *out;                       /* [max_batch, classes]: the last pass's output */
    int *labels;                      /* [max_batch]: its labels, from prepare */
    nr_team *team;
    double loss_mean;                 /* the last finished pass's, with a loss */
    int correct;
} nr_model;

/* Fills samples [first, first + count) of the batch: their input (at
 * `input`, count samples) and labels. Called from the pass's threads, each
 * on its own range; `lane` numbers the calling thread from 0 to nlanes - 1. */
typedef void nr_prepare_fn(void *ctx, int first, int count, float *input, int *labels, int lane);

/* One pass over a batch of n samples. flags: NR_TRAINING, NR_UPDATE_STATS;
 * dropout masks come from (seed, layer, draw). With loss set, the pass
 * also computes the loss of the labels and every parameter's gradient. */
typedef struct nr_pass {
    int n, flags;
    uint64_t seed;
    uint32_t draw;
    nr_prepare_fn *prepare;
    void *ctx;
    const nr_loss *loss;              /* NULL: forward only */
    /* Run once the pass is done, on the thread that finished it, with ctx
     * and (with a loss) the batch's mean loss and number right; NULL:
     * nothing. */
    void (*after)(void *ctx, double loss_mean, int correct);
} nr_pass;

/* Lays out the model and allocates memory for batches of up to max_batch,
 * and starts its threads: as many lanes as OpenMP would give threads
 * (nr_cpu_set_threads first), at most one per micro-batch. */
int nr_model_init(nr_model *m, const nr_program *p, int max_batch, nr_error *err);
void nr_model_free(nr_model *m);
/* Initial weights and buffers from the seed. */
void nr_model_init_weights(nr_model *m, uint64_t seed);
/* Runs the pass; returns the last activation ([n, classes]; the labels
 * are in m->labels). With a loss, *loss_mean receives the batch's mean
 * loss, *correct how many samples the model got right, and grads the
 * gradients. */
const float *nr_model_pass(nr_model *m, const nr_pass *ps, double *loss_mean, int *correct);
/* Starts the pass and returns its number while it runs (after the passes
 * submitted before it); *ps and what its prepare reads must stay as they
 * are until nr_model_wait(m, number) returns, and its results are what
 * ps->after receives. Waits while NR_TEAM_QUEUE passes are unfinished. */
long nr_model_submit(nr_model *m, const nr_pass *ps);
/* Takes part in the passes until the first `passes` passes have finished. */
void nr_model_wait(nr_model *m, long passes);
/* Waits for the next pass's place in the queue (nr_team_wait_for_room);
 * returns the number of passes submitted before it. */
long nr_model_wait_for_room(nr_model *m);
/* Passes submitted so far. */
long nr_model_submitted(const nr_model *m);
/* Elements of one sample at layer i's output (i = -1: the input). */
size_t nr_model_sample_size(const nr_model *m, int i);
#endif
