/* What the GPU's batch kernels (gather.cuh) need to know of a program's data
 * and augmentation: runtime/netrt.h's nr_data_spec, nr_augment and
 * nr_noise_test, copied field by field into plain ints and floats (device
 * code cannot include netrt.h). Passed by value to the kernels; the host
 * fills it once (nr_gpu_batch_desc in layers.c). Plain C, for host and
 * device code alike. */
#ifndef NR_CUDA_BATCH_DESC_H
#define NR_CUDA_BATCH_DESC_H

/* Augmentation ops: netrt.h's nr_aug_kind, in its order. */
enum { NR_GPU_AUG_ROTATE, NR_GPU_AUG_HFLIP, NR_GPU_AUG_CROP, NR_GPU_AUG_NOISE };
#define NR_GPU_MAX_AUG_OPS 8

typedef struct nr_gpu_aug_op {
    int kind;
    float degrees;                /* rotate */
    int bilinear;
    float fill;
    float p;                      /* hflip */
    int size, padding;            /* crop */
    float std;                    /* noise */
    int clamp;
    float lo, hi;
    int after_normalize;
} nr_gpu_aug_op;

typedef struct nr_gpu_batch_desc {
    int c, h, w;                  /* a stored image (uint8, CHW) */
    int nnorm;                    /* 0: no normalize; 1: one mean and std for every channel */
    float mean[4], std[4];
    int nops;
    nr_gpu_aug_op ops[NR_GPU_MAX_AUG_OPS];
    int scratch;                  /* floats of one of an image's two scratch buffers */
    unsigned int augment_purpose, noise_purpose;  /* NR_RNG_AUGMENT, NR_RNG_NOISE_TEST */
    unsigned long long seed;      /* the run's: augmentation streams */
    /* the noise test */
    unsigned long long noise_seed;
    int noise_before_normalize, noise_clamp, noise_same;
    float noise_lo, noise_hi;
    int noise_nnorm;              /* the noise test's own normalize (W1's), after the data's */
    float noise_mean[4], noise_std[4];
} nr_gpu_batch_desc;
#endif
