/* Backends: where a program's training steps and evaluations run (the CPU,
 * runtime/cpu/backend.c; a CUDA GPU or its emulator, runtime/cuda/backend.c).
 *
 * The interface is at the granularity of a training step and of an
 * evaluation pass, not of an operation, so a backend is free to fuse,
 * batch its launches or replay a captured graph. The training driver
 * (train.c), `test` and the sweep call only these functions and never ask
 * which device they drive.
 *
 * What both backends share, so that they compute the same numbers:
 * - the weights are initialized on the host (nr_layer_init) and handed over
 *   with set_state; checkpoints read them back with get_state, in the
 *   layouts of runtime/cpu/ops.h (parameters, buffers) and runtime/optim.h
 *   (optimizer state);
 * - a batch is described by the images it takes and the Philox stream of
 *   each one's augmentation, chosen by the driver; the backend gathers,
 *   preprocesses and augments them as runtime/preprocess.c does;
 * - dropout masks come from the stream (seed, NR_RNG_DROPOUT, layer, draw)
 *   with draw 2 * step (and 2 * step + 1 for SAM's second pass).
 *
 * Per-step losses are kept by the backend and read back lazily
 * (read_steps), so a GPU never waits for the host between steps. */
#ifndef NR_BACKEND_H
#define NR_BACKEND_H
#include "data.h"
#include "netrt.h"
#include "nr_error.h"
#include "rng.h"
#include <stddef.h>
#include <stdint.h>

typedef enum { NR_DEVICE_AUTO, NR_DEVICE_CPU, NR_DEVICE_CUDA } nr_device_choice;

/* The data sets a backend holds (uploaded once). */
enum { NR_SET_TRAIN, NR_SET_TEST, NR_SET_COUNT };

typedef struct nr_backend_config {
    const nr_program *p;
    int batch;                    /* largest batch a step or an evaluation takes */
    uint64_t seed;                /* the run's seed: dropout streams */
    const nr_optim *optim;        /* with the command line's lr */
    const nr_loss *loss;
    int tf32;
    long max_steps;               /* steps an epoch can take (per-step results kept) */
} nr_backend_config;

/* One training step: sample j of the batch is image image[j] of the
 * training set, augmented (when augment[j]) with the stream
 * nr_stream_make(seed, NR_RNG_AUGMENT, stream_a[j], image[j]). */
typedef struct nr_batch {
    int n;
    const uint32_t *image;
    const uint32_t *stream_a;
    const uint8_t *augment;
    long step;                    /* optimizer steps taken before this one */
    long slot;                    /* where its loss is kept: 0, 1, ... within the epoch */
    float lr;
} nr_batch;

/* What read_steps returns for one step. */
typedef struct nr_step_result {
    double loss;                  /* mean over the batch; NaN/inf: training must stop */
    int correct;
} nr_step_result;

/* An evaluation: the model in inference mode over `count` images of a set. */
typedef struct nr_eval {
    int set;                      /* NR_SET_TRAIN or NR_SET_TEST */
    const uint32_t *idx;          /* the images, or NULL for 0..count-1 */
    int count;
    int noise_level;              /* index into p->noise.std, or -1: clean */
} nr_eval;

/* Host copies of the model's state, in the CPU backend's layouts. */
typedef struct nr_host_state {
    float *params, *buffers, *optim;
    size_t nparams, nbuffers, noptim;
} nr_host_state;

typedef struct nr_backend nr_backend;

typedef struct nr_backend_ops {
    /* The sets used later, once (the pixels as uint8, the labels). */
    int (*upload)(nr_backend *b, int set, const nr_dataset *ds, nr_error *e);
    int (*train_step)(nr_backend *b, const nr_batch *batch, nr_error *e);
    /* Results of the steps kept in slots [first, first + count); waits for them. */
    int (*read_steps)(nr_backend *b, long first, long count, nr_step_result *out, nr_error *e);
    /* Sum of the per-image losses and the number correct; pred (count
     * entries, when not NULL) receives each image's predicted class. */
    int (*evaluate)(nr_backend *b, const nr_eval *ev, double *loss_sum, long *correct, int32_t *pred, nr_error *e);
    int (*get_state)(nr_backend *b, nr_host_state *s, nr_error *e);
    int (*set_state)(nr_backend *b, const nr_host_state *s, nr_error *e);
    void (*destroy)(nr_backend *b);
} nr_backend_ops;

struct nr_backend {
    const nr_backend_ops *ops;
    char device[160];             /* "cpu (2 threads)", "NVIDIA H200 (sm_90, ...)" */
    char why[512];                /* how it was chosen, for the run's first lines */
};

/* Sizes of the host state of a program (nr_host_state's counts). */
void nr_state_counts(const nr_program *p, const nr_optim *o, size_t *nparams, size_t *nbuffers, size_t *noptim);
/* -1 (with e) unless s has exactly these counts: a backend's get/set_state check. */
int nr_state_check(const nr_host_state *s, size_t nparams, size_t nbuffers, size_t noptim, nr_error *e);

/* Opens the backend `choice` asks for: auto takes a usable GPU, else the CPU
 * (saying why in b->why). NETC_CUDA=emu makes `cuda` (and auto) the emulator. */
nr_backend *nr_backend_open(nr_device_choice choice, const nr_backend_config *c, nr_error *e);
nr_backend *nr_cpu_backend_open(const nr_backend_config *c, nr_error *e);
/* NULL with e filled when there is no usable GPU (or no CUDA support built). */
nr_backend *nr_cuda_backend_open(const nr_backend_config *c, nr_error *e);
void nr_backend_close(nr_backend *b);

/* The stream of noise-test level `level` for image `img`: per image and
 * level, or one pattern for all when the test asks for same_noise. */
nr_stream nr_noise_stream(const nr_noise_test *t, int level, uint32_t img);
#endif
