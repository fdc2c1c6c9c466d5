/* The CUDA backend layer by layer: the GPU counterparts of nr_cpu_forward,
 * nr_cpu_backward, nr_loss_forward_backward, nr_optim_step and SAM, with
 * the same conventions (runtime/cpu/ops.h) and the same memory layouts:
 * parameters, buffers and `saved` (nr_layer_saved_count floats) hold what
 * the CPU backend's do, so either backend can read the other's. Pointers
 * are device memory; every launch goes to g->stream in order, so nothing
 * here waits for the GPU.
 *
 * Phase 1: one layer at a time, a kernel or two per layer, GEMMs through
 * cuBLAS (conv as im2col + GEMM). */
#ifndef NR_CUDA_LAYERS_H
#define NR_CUDA_LAYERS_H
#include "../cpu/ops.h"
#include "../netrt.h"
#include "../rng.h"
#include "gpu.h"
#include "batch_desc.h"
#include "step_vars.h"

/* Temporary floats a layer needs on the GPU for a batch of n (conv: the
 * im2col columns and the GEMM output; batchnorm backward: 2 per channel). */
size_t nr_gpu_layer_scratch_count(const nr_layer *L, int n);

/* Where a training pass's dropout masks come from: the stream (seed,
 * NR_RNG_DROPOUT, layer, 2 * vars->step + pass), vars being the step's
 * nr_step_vars in device memory (pass 1: SAM's second pass). */
typedef struct nr_gpu_draws {
    uint64_t seed;
    uint32_t layer, pass;
    nr_dptr vars;
} nr_gpu_draws;

int nr_gpu_forward(nr_gpu *g, const nr_layer *L, int n, nr_dptr x, nr_dptr y, nr_dptr params,
                   nr_dptr buffers, nr_dptr saved, nr_dptr scratch, int flags, const nr_gpu_draws *dropout,
                   nr_error *e);
/* dx may be 0 (no input gradient). */
int nr_gpu_backward(nr_gpu *g, const nr_layer *L, int n, nr_dptr x, nr_dptr y, nr_dptr dy,
                    nr_dptr dx, nr_dptr params, nr_dptr dparams, nr_dptr saved, nr_dptr scratch,
                    nr_error *e);

/* ---- batches: the sets on the device as uint8 (gather.cuh) ---------------- */

/* The program's data, augmentation and noise test for the batch kernels;
 * seed: the run's (augmentation streams). Fails on more augmentation ops
 * than NR_GPU_MAX_AUG_OPS. */
int nr_gpu_batch_desc_of(const nr_program *p, uint64_t seed, nr_gpu_batch_desc *d, nr_error *e);
/* A training batch into x and labels (runtime/backend.h's nr_batch, its
 * arrays in device memory); scratch: 2 * d->scratch floats per image. */
int nr_gpu_gather_train(nr_gpu *g, const nr_gpu_batch_desc *d, nr_dptr pixels, nr_dptr set_labels, nr_dptr image,
                        nr_dptr stream_a, nr_dptr augment, int n, nr_dptr scratch, nr_dptr x, nr_dptr labels,
                        nr_error *e);
/* Evaluation images idx[first..first+n) (idx 0: first..first+n), clean
 * (level < 0) or at noise-test level `level`. */
int nr_gpu_gather_eval(nr_gpu *g, const nr_gpu_batch_desc *d, nr_dptr pixels, nr_dptr set_labels, nr_dptr idx,
                       long long first, int n, int level, float noise_std, nr_dptr x, nr_dptr labels, nr_error *e);

/* The step's values for nr_optim_step(o, lr, step, ...) (step counts from
 * 1), its loss going to result slot `slot`. */
void nr_gpu_step_vars(const nr_optim *o, float lr, long step, long slot, nr_step_vars *v);

/* Loss, gradient (dlogits may be 0) and correct count in one kernel.
 * labels: n ints. results: NR_LOSS_RESULT_BYTES of device memory per slot;
 * the slot is vars->slot (vars: an nr_step_vars in device memory). A slot
 * holds the mean loss (a double) and then the count (an int); read it with
 * nr_gpu_loss_result. */
int nr_gpu_loss(nr_gpu *g, const nr_loss *loss, int n, int classes, nr_dptr logits, nr_dptr labels,
                nr_dptr dlogits, nr_dptr results, nr_dptr vars, nr_error *e);
int nr_gpu_loss_result(nr_gpu *g, nr_dptr results, long slot, double *loss, int *correct, nr_error *e);

/* nr_optim_step on the GPU with the step's values in vars (device memory,
 * from nr_gpu_step_vars): state is nr_optim_state_count floats, laid out
 * as optim.c lays it out. */
int nr_gpu_optim_step(nr_gpu *g, const nr_optim *o, nr_dptr vars, nr_dptr w, nr_dptr grad, nr_dptr state,
                      size_t n, nr_error *e);

/* SAM: scratch is NR_GPU_SAM_SCRATCH_BYTES of device memory: the partial
 * sums, then the norm (a double at NR_GPU_SAM_NORM_OFFSET) and the scale.
 * saved receives the weights before the ascent, as nr_sam_perturb's e. */
#define NR_GPU_SAM_PARTS 256
#define NR_GPU_SAM_NORM_OFFSET (NR_GPU_SAM_PARTS * 8)
#define NR_GPU_SAM_SCRATCH_BYTES (NR_GPU_SAM_NORM_OFFSET + 16)
int nr_gpu_sam_perturb(nr_gpu *g, const nr_optim *o, nr_dptr w, nr_dptr grad, nr_dptr saved,
                       nr_dptr scratch, size_t n, nr_error *e);
int nr_gpu_sam_restore(nr_gpu *g, nr_dptr w, nr_dptr saved, size_t n, nr_error *e);
#endif
