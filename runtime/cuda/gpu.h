/* The host side of the CUDA backend: the driver API, NVRTC and cuBLAS.
 *
 * Every CUDA and cuBLAS call (and every NVRTC call, in nvrtc.h) goes through a check macro that turns a
 * failure into an nr_error naming the file and line, the call and the
 * error's name, and returns -1: library code never exits or prints.
 *
 * The kernels are compiled at run time by NVRTC (nvrtc.h) for the device's
 * own architecture, through its binary cache. */
#ifndef NR_CUDA_GPU_H
#define NR_CUDA_GPU_H
#include "../nr_error.h"
#include "kernels.h"
#include "nvrtc.h"
#include <cublas_v2.h>
#include <cuda.h>
#include <stddef.h>
#include <stdint.h>

/* ---- checks ------------------------------------------------------------- */

int nr_cu_fail(nr_error *e, CUresult r, const char *call, const char *file, int line);
int nr_cublas_fail(nr_error *e, cublasStatus_t r, const char *call, const char *file, int line);

#define NR_CU(e, call)                                                                   \
    do {                                                                                 \
        CUresult nr_r_ = (call);                                                         \
        if (nr_r_ != CUDA_SUCCESS) return nr_cu_fail((e), nr_r_, #call, __FILE__, __LINE__); \
    } while (0)
#define NR_CUBLAS(e, call)                                                                            \
    do {                                                                                              \
        cublasStatus_t nr_r_ = (call);                                                                \
        if (nr_r_ != CUBLAS_STATUS_SUCCESS) return nr_cublas_fail((e), nr_r_, #call, __FILE__, __LINE__); \
    } while (0)

/* ---- availability --------------------------------------------------------- */

/* 1 when cuInit succeeds and at least one device is present; else 0 and a
 * one-line reason in why (cap bytes). */
int nr_gpu_available(char *why, size_t cap);

/* ---- the device ---------------------------------------------------------------- */

typedef struct nr_gpu {
    CUdevice device;
    CUcontext context;          /* the device's primary context */
    CUstream stream;            /* every launch and copy goes here, in order */
    CUmodule module;
    cublasHandle_t blas;
    CUfunction kernels[NR_K_COUNT];
    int major, minor;           /* compute capability */
    int sm_count;
    char name[256];
    size_t total_memory;
    int tf32;                   /* cuBLAS may use TF32 tensor cores */
    int from_cache;             /* the module's binary came from the cache */
    double compile_seconds;
    char cache_note[256];       /* why the cache was not used, or "" */
    int opened;
} nr_gpu;

/* Device `ordinal`: context, stream, cuBLAS (fp32, or TF32 when tf32). */
int nr_gpu_open(nr_gpu *g, int ordinal, int tf32, nr_error *e);
/* Compiles (or reads from the cache) nr_cuda_kernel_source(), loads it and
 * looks every kernel up. */
int nr_gpu_load_kernels(nr_gpu *g, nr_error *e);
void nr_gpu_close(nr_gpu *g);

/* ---- memory ------------------------------------------------------------------------- */

/* Out of memory says how much was asked and what is free. */
int nr_gpu_alloc(nr_gpu *g, CUdeviceptr *p, size_t bytes, nr_error *e);
void nr_gpu_free(CUdeviceptr p);
int nr_gpu_upload(nr_gpu *g, CUdeviceptr dst, const void *src, size_t bytes, nr_error *e);
/* Waits for the stream, then copies. */
int nr_gpu_download(nr_gpu *g, void *dst, CUdeviceptr src, size_t bytes, nr_error *e);
/* count 32-bit words set to `bits` (a NaN pattern poisons float buffers). */
int nr_gpu_fill32(nr_gpu *g, CUdeviceptr p, uint32_t bits, size_t count, nr_error *e);
int nr_gpu_copy(nr_gpu *g, CUdeviceptr dst, CUdeviceptr src, size_t bytes, nr_error *e);
/* Waits for the stream; an error of an earlier launch surfaces here. */
int nr_gpu_sync(nr_gpu *g, nr_error *e);

/* ---- launches -------------------------------------------------------------------------- */

/* Kernel k over `work` independent items, NR_CUDA_BLOCK threads a block
 * (the kernels' grid-stride loops cover whatever the grid does not). */
int nr_gpu_launch(nr_gpu *g, nr_kernel_id k, long long work, void **args, nr_error *e);
/* Kernel k on exactly `blocks` blocks of NR_CUDA_BLOCK threads. */
int nr_gpu_launch_blocks(nr_gpu *g, nr_kernel_id k, unsigned blocks, void **args, nr_error *e);

/* ---- cuBLAS ------------------------------------------------------------------------------ */

/* Row-major C [M, N] = alpha op(A) op(B) + beta C, op(A) [M, K], op(B) [K, N];
 * lda, ldb, ldc are row strides. cuBLAS is column-major, so this computes
 * C^T = op(B)^T op(A)^T with the operands swapped. */
int nr_gpu_sgemm(nr_gpu *g, int trans_a, int trans_b, int M, int N, int K, float alpha, CUdeviceptr A, int lda,
                 CUdeviceptr B, int ldb, float beta, CUdeviceptr C, int ldc, nr_error *e);
#endif
