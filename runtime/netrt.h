/* libnetrt: the runtime every program made by `netc FILE -o PROG` links with.
 *
 * The generated C file is nothing but tables: one nr_program describing the
 * model (layers with resolved options and shapes), the data, augmentation,
 * training and noise-test settings, and a main() that hands it to nr_main().
 * Everything that runs (data loading, the training loop, the CPU backend,
 * logs, checkpoints, reports) lives here, so the tables are the whole
 * interface between the compiler and the runtime. NR_ABI_VERSION changes
 * whenever these structs do. */
#ifndef NETRT_H
#define NETRT_H
#include <stddef.h>
#include <stdint.h>

#define NR_ABI_VERSION 3

/* The layer kinds the runtime implements, one list for the compiler and the
 * runtime: the compiler's layer table (compiler/layers.c) names each row's
 * kind from it, and the C emitter writes NR_<kind> from it. Adding a kind:
 * a row here, its row there (shape rule, options), its CPU and CUDA kernels
 * (runtime/cpu/ops.c, runtime/cuda/layers.c) and their tests. */
#define NR_LAYER_KINDS(X) \
    X(CONV) X(DENSE) X(MAXPOOL) X(AVGPOOL) X(BATCHNORM) X(DROPOUT) X(FLATTEN) \
    X(TANH) X(RELU) X(LEAKY_RELU) X(SIGMOID) X(SOFTMAX) X(LOG_SOFTMAX)
#define NR_KIND_ID(k) NR_##k,
typedef enum { NR_LAYER_KINDS(NR_KIND_ID) NR_KIND_COUNT } nr_kind;
#undef NR_KIND_ID

typedef enum {
    NR_INIT_PYTORCH, NR_INIT_XAVIER_UNIFORM, NR_INIT_XAVIER_NORMAL,
    NR_INIT_KAIMING_UNIFORM, NR_INIT_KAIMING_NORMAL
} nr_init;

/* One layer. Tensors are float32, batch-major, NCHW; a flat tensor [N, F]
 * is described as c = F, h = w = 1 with rank 1. */
typedef struct nr_layer {
    const char *name;
    nr_kind kind;
    int in_rank, in_c, in_h, in_w;
    int out_rank, out_c, out_h, out_w;
    int kernel, stride, padding;  /* conv, maxpool, avgpool (square windows) */
    int reflect;                  /* conv: reflect padding instead of zeros */
    int bias;                     /* conv, dense */
    int affine;                   /* batchnorm: learnable gamma and beta */
    float eps, momentum;          /* batchnorm (PyTorch's meaning of momentum) */
    float p;                      /* dropout: probability of zeroing */
    float slope;                  /* leaky_relu: negative slope */
    nr_init init;                 /* conv, dense */
} nr_layer;

typedef enum { NR_SGD, NR_ADAM, NR_ADAMW, NR_RMSPROP } nr_optim_kind;

typedef struct nr_optim {
    nr_optim_kind kind;
    float lr;
    float momentum, dampening;    /* sgd; rmsprop uses momentum too */
    int nesterov;                 /* sgd */
    float weight_decay;           /* coupled (added to g) except adamw: decoupled */
    float beta1, beta2, eps;      /* adam, adamw; eps also rmsprop */
    float alpha;                  /* rmsprop */
    int sam;                      /* wrap the above in SAM */
    float sam_rho;
    int sam_adaptive;
} nr_optim;

typedef enum { NR_SCHED_CONSTANT, NR_SCHED_STEP, NR_SCHED_MULTISTEP, NR_SCHED_COSINE } nr_sched_kind;

typedef struct nr_schedule {
    nr_sched_kind kind;
    int per_iteration;            /* counts iterations instead of epochs */
    int step;                     /* step */
    float gamma;                  /* step, multistep */
    const int *milestones;        /* multistep, or NULL when given as fractions */
    int nmilestones;
    const float *fractions;       /* multistep: milestones as fractions of the run */
    int nfractions;
    int t_max;                    /* cosine; 0: the whole run */
    float eta_min;                /* cosine */
} nr_schedule;

typedef enum { NR_LOSS_CROSS_ENTROPY, NR_LOSS_NLL, NR_LOSS_MSE, NR_LOSS_MULTI_MARGIN } nr_loss_kind;

typedef struct nr_loss {
    nr_loss_kind kind;
    float label_smoothing;        /* cross_entropy */
    int smoothing_other_classes;  /* 1-e on the true class, e/(C-1) elsewhere */
    int mse_softmax;              /* mse: softmax the outputs first */
    float margin;                 /* multi_margin */
    int p;                        /* multi_margin: 1 or 2 */
} nr_loss;

typedef enum { NR_DS_MNIST, NR_DS_FASHION_MNIST, NR_DS_CIFAR10, NR_DS_CIFAR100, NR_DS_FOLDER } nr_dataset_kind;

typedef struct nr_data_spec {
    nr_dataset_kind dataset;
    const char *name;             /* as written: "fashion_mnist" */
    const char *path;             /* data.path, or NULL to search */
    int validation;               /* training images held out */
    int channels, height, width;  /* what the model takes (after resize) */
    int classes;
    int resize;                   /* 0: no resize; else height and width */
    int resize_bicubic;           /* else bilinear */
    int nnorm;                    /* 0: no normalize; 1: one value for every channel */
    float mean[4], std[4];
} nr_data_spec;

typedef enum { NR_AUG_ROTATE, NR_AUG_HFLIP, NR_AUG_CROP, NR_AUG_NOISE } nr_aug_kind;

typedef struct nr_aug_op {
    nr_aug_kind kind;
    float degrees;                /* rotate */
    int bilinear;                 /* rotate: else nearest */
    float fill;                   /* rotate */
    float p;                      /* hflip */
    int size, padding;            /* crop */
    float std;                    /* noise */
    int clamp;                    /* noise: clamp to [lo, hi] */
    float lo, hi;
    int after_normalize;          /* noise */
} nr_aug_op;

typedef struct nr_augment {
    int copies;                   /* 0: augment each image afresh every epoch */
    const nr_aug_op *ops;
    int nops;
} nr_augment;

typedef struct nr_noise_test {
    const float *std;             /* nstd == 0: no noise test */
    int nstd;
    uint32_t seed;
    int before_normalize;
    int clamp;
    float lo, hi;
    int same_noise;               /* one pattern for every image */
    /* A normalize the noise test applies after the data's and training
     * does not (W1's script): 0 values for none, else 1 for every channel
     * or one per channel. The noise comes after it (or, before_normalize,
     * before both). */
    int nnorm;
    float norm_mean[4], norm_std[4];
} nr_noise_test;

typedef struct nr_train {
    int epochs, batch;
    nr_optim optim;
    nr_schedule schedule;
    nr_loss loss;
    uint32_t seed;
    int shuffle;
    int tf32;
    int threads;                  /* 0: every core */
} nr_train;

struct nr_program;

/* One point of a study: the model compiled with one value of one `sweep`
 * (every other parameter at its base value). */
typedef struct nr_sweep_point {
    const char *sweep;            /* the swept names: "lr", "c1, c2, c3" */
    const char *value;            /* the value as written: "0.0004", "[32, 64, 256]" */
    const struct nr_program *program;
    int same_as;                  /* index of an earlier point with the same program, or -1 */
} nr_sweep_point;

typedef struct nr_program {
    int abi;                      /* NR_ABI_VERSION of the compiler */
    const char *model;            /* model name */
    const char *source;           /* the .net file it was compiled from */
    const char *netc_version;
    const char *overrides;        /* "-D a=1 -D b=2" as given, or "" */
    int in_rank, in_c, in_h, in_w;
    int classes;
    const nr_layer *layers;
    int nlayers;
    long long params;             /* as the compiler counted them */
    nr_data_spec data;
    nr_augment augment;
    nr_train train;
    nr_noise_test noise;
    const nr_sweep_point *sweep;  /* the file's sweeps, point after point (NULL: none) */
    int nsweep;
} nr_program;

/* The generated program's main(): `PROG train|test|sweep|--help ...`. Returns the
 * process exit status. */
int nr_main(const nr_program *p, int argc, char **argv);
#endif
