/* ---- batches: the data sets stay on the GPU as uint8, and a batch is
 * gathered from them with runtime/preprocess.c's arithmetic and Philox
 * draws: ToTensor, the augmentation ops in order (rotate, hflip, crop,
 * noise before normalize), Normalize, noise after normalize; for the noise
 * test, nr_preprocess_noisy's noise before or after Normalize. Both backends
 * therefore train on the same images. */
#ifndef NR_CUDA_GATHER_CUH
#define NR_CUDA_GATHER_CUH
#include "common.cuh"
#include "batch_desc.h"
#include "data.cuh"

/* Normalize of channel ch, with nnorm means and stds (0: none). */
__device__ __forceinline__ float normalized_by(int nnorm, const float *mean, const float *std, int ch, float v)
{
    if (nnorm <= 0) return v;
    int k = nr_norm_index(nnorm, ch);
    return nr_normalized(v, mean[k], std[k]);
}

__device__ __forceinline__ float gather_normalized(const nr_gpu_batch_desc &d, int ch, float v)
{
    return normalized_by(d.nnorm, d.mean, d.std, ch, v);
}

/* The data's normalize, then the noise test's own. */
__device__ __forceinline__ float noise_test_normalized(const nr_gpu_batch_desc &d, int ch, float v)
{
    return normalized_by(d.noise_nnorm, d.noise_mean, d.noise_std, ch, gather_normalized(d, ch, v));
}

/* x += std * N(0, 1) from draws first + k, then clamped when asked; the block's threads share x. */
__device__ void gather_noise(float *x, int n, float std, int clamp, float lo, float hi, nr_stream s, u64 first)
{
    for (int k = threadIdx.x; k < n; k += blockDim.x)
        x[k] = nr_noisy(x[k], nr_stream_normal(s, first + (u64)k), std, clamp, lo, hi);
}

/* Op j of the list on *cur (C x *H x *W), into *spare when it needs a buffer
 * of its own (then the two swap). Every thread of the block takes part. */
__device__ void gather_op(const nr_gpu_aug_op &op, int j, float **cur, float **spare, int C, int *H, int *W,
                          const nr_stream &st)
{
    int h = *H, w = *W;
    if (op.kind == NR_GPU_AUG_NOISE) {
        gather_noise(*cur, C * h * w, op.std, op.clamp, op.lo, op.hi, st, op_draw(j, 1));
        return;
    }
    if (op.kind == NR_GPU_AUG_HFLIP) {
        if (nr_stream_uniform(st, op_draw(j, 0)) < op.p)
            for (int k = threadIdx.x; k < C * h * (w / 2); k += blockDim.x) {
                int row = k / (w / 2), i = k % (w / 2);
                float *r = *cur + (i64)row * w;
                float t = r[i];
                r[i] = r[w - 1 - i];
                r[w - 1 - i] = t;
            }
        return;
    }
    if (op.kind == NR_GPU_AUG_ROTATE) {
        float u = nr_stream_uniform(st, op_draw(j, 0));
        rotate_image(*cur, *spare, C, h, w, -op.degrees + 2.0f * op.degrees * u, op.bilinear != 0, op.fill);
    } else { /* crop */
        int size = op.size > 0 ? op.size : h;
        int top = nr_window_start(h + 2 * op.padding, size, st, op_draw(j, 0));
        int left = nr_window_start(w + 2 * op.padding, size, st, op_draw(j, 1));
        for (int k = threadIdx.x; k < C * size * size; k += blockDim.x) {
            int x = k % size, y = k / size % size, ch = k / (size * size);
            int sy = top + y - op.padding, sx = left + x - op.padding;
            bool inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
            (*spare)[k] = inside ? (*cur)[((i64)ch * h + sy) * w + sx] : 0.0f;
        }
        *H = *W = size;
    }
    float *t = *cur;
    *cur = *spare;
    *spare = t;
}

/* One image through nr_preprocess, by one block: scratch holds two buffers of d.scratch floats. */
__device__ void gather_augmented(const nr_gpu_batch_desc &d, const unsigned char *px, bool augment,
                                 const nr_stream &st, float *scratch, float *out)
{
    int C = d.c, H = d.h, W = d.w;
    float *cur = scratch, *spare = scratch + d.scratch;
    for (int k = threadIdx.x; k < C * H * W; k += blockDim.x) cur[k] = (float)px[k] / 255.0f;
    __syncthreads();
    int nops = augment ? d.nops : 0;
    for (int j = 0; j < nops; j++) {
        if (d.ops[j].kind == NR_GPU_AUG_NOISE && d.ops[j].after_normalize) continue;
        gather_op(d.ops[j], j, &cur, &spare, C, &H, &W, st);
        __syncthreads();
    }
    for (int k = threadIdx.x; k < C * H * W; k += blockDim.x) cur[k] = gather_normalized(d, k / (H * W), cur[k]);
    __syncthreads();
    for (int j = 0; j < nops; j++) {
        if (!(d.ops[j].kind == NR_GPU_AUG_NOISE && d.ops[j].after_normalize)) continue;
        gather_op(d.ops[j], j, &cur, &spare, C, &H, &W, st);
        __syncthreads();
    }
    for (int k = threadIdx.x; k < C * H * W; k += blockDim.x) out[k] = cur[k];
    __syncthreads(); /* the block's scratch is the next image's */
}

/* A training batch: sample j is image[j] of the set, augmented (when
 * augment[j]) with the stream (seed, augment_purpose, stream_a[j], image[j]).
 * Block b takes samples b, b + gridDim.x, ...; scratch: 2 * d.scratch floats per block. */
extern "C" __global__ void nr_gather_train(nr_gpu_batch_desc d, const unsigned char *pixels, const int *set_labels,
                                           const u32 *image, const u32 *stream_a, const unsigned char *augment,
                                           int n, float *scratch, float *x, int *labels)
{
    i64 size = (i64)d.c * d.h * d.w;
    float *mine = scratch + (i64)blockIdx.x * 2 * d.scratch;
    for (int j = blockIdx.x; j < n; j += gridDim.x) {
        u32 img = image[j];
        nr_stream st = nr_stream_of(d.seed, d.augment_purpose, stream_a[j], img);
        gather_augmented(d, pixels + (i64)img * size, augment[j] != 0, st, mine, x + (i64)j * size);
        if (threadIdx.x == 0) labels[j] = set_labels[img];
    }
}

/* An evaluation batch: images idx[first + j] (idx NULL: first + j), clean
 * (level < 0) or with noise-test level `level` of std noise_std. */
extern "C" __global__ void nr_gather_eval(nr_gpu_batch_desc d, const unsigned char *pixels, const int *set_labels,
                                          const u32 *idx, i64 first, int n, int level, float noise_std, float *x,
                                          int *labels)
{
    i64 size = (i64)d.c * d.h * d.w, plane = (i64)d.h * d.w;
    GRID_STRIDE(i, (i64)n * size) {
        i64 j = i / size, k = i % size;
        u32 img = idx ? idx[first + j] : (u32)(first + j);
        float v = (float)pixels[(i64)img * size + k] / 255.0f;
        int ch = (int)(k / plane);
        if (level < 0) {
            v = gather_normalized(d, ch, v);
        } else {
            nr_stream s = nr_stream_of(d.noise_seed, d.noise_purpose, d.noise_same ? 0u : (u32)level,
                                       d.noise_same ? 0u : img + 1u);
            if (!d.noise_before_normalize) v = noise_test_normalized(d, ch, v);
            v = nr_noisy(v, nr_stream_normal(s, (u64)k), noise_std, d.noise_clamp, d.noise_lo, d.noise_hi);
            if (d.noise_before_normalize) v = noise_test_normalized(d, ch, v);
        }
        x[i] = v;
        if (k == 0) labels[j] = set_labels[img];
    }
}
#endif
