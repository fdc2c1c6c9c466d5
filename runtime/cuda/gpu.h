/* The CUDA backend's view of a device: the device layer (dev.h: a real GPU
 * or the emulator) with netc's kernels loaded, and the launch and GEMM
 * helpers the per-layer code (layers.c) uses. Nothing here knows whether
 * the device is real. Errors are nr_error values; nothing exits or prints. */
#ifndef NR_CUDA_GPU_H
#define NR_CUDA_GPU_H
#include "../nr_error.h"
#include "dev.h"
#include "kernels.h"
#include <stddef.h>
#include <stdint.h>

typedef struct nr_gpu {
    const nr_dev_ops *ops;
    void *ctx;
    nr_dev_info info;
    nr_dev_module *module;
    void *kernels[NR_K_COUNT];
    char module_note[320];        /* how the kernels were obtained (compiled, cached) */
} nr_gpu;

/* The real device layer (driver.c; NULL when netc was built without the
 * CUDA toolkit) and the emulator's (NETC_CUDA=emu). */
const nr_dev_ops *nr_cuda_dev_ops(void);
/* The device layer NETC_CUDA asks for: the emulator for "emu", else the
 * driver's; NULL with e filled when it cannot be had. */
const nr_dev_ops *nr_cuda_device_layer(nr_error *e);

/* Device `ordinal` through `ops`; TF32 GEMMs when tf32. */
int nr_gpu_open(nr_gpu *g, const nr_dev_ops *ops, int ordinal, int tf32, nr_error *e);
/* Compiles (or reads from the cache) nr_cuda_kernel_source() and looks up every kernel. */
int nr_gpu_load_kernels(nr_gpu *g, nr_error *e);
void nr_gpu_close(nr_gpu *g);

int nr_gpu_alloc(nr_gpu *g, nr_dptr *p, size_t bytes, nr_error *e);
void nr_gpu_free(nr_gpu *g, nr_dptr p);
/* Queued copy: src must stay unchanged until the stream passes it (see dev.h). */
int nr_gpu_upload(nr_gpu *g, nr_dptr dst, const void *src, size_t bytes, nr_error *e);
/* Waits for the stream, then copies. */
int nr_gpu_download(nr_gpu *g, void *dst, nr_dptr src, size_t bytes, nr_error *e);
/* count 32-bit words set to `bits` (a NaN pattern poisons float buffers). */
int nr_gpu_fill32(nr_gpu *g, nr_dptr p, uint32_t bits, size_t count, nr_error *e);
int nr_gpu_copy(nr_gpu *g, nr_dptr dst, nr_dptr src, size_t bytes, nr_error *e);
int nr_gpu_sync(nr_gpu *g, nr_error *e);

/* Kernel k over `work` independent items, NR_CUDA_BLOCK threads a block
 * (the kernels' grid-stride loops cover whatever the grid does not). */
int nr_gpu_launch(nr_gpu *g, nr_kernel_id k, long long work, void **args, nr_error *e);
/* Kernel k on exactly `blocks` blocks of NR_CUDA_BLOCK threads. */
int nr_gpu_launch_blocks(nr_gpu *g, nr_kernel_id k, unsigned blocks, void **args, nr_error *e);

/* Row-major C [M, N] = alpha op(A) op(B) + beta C, op(A) [M, K], op(B) [K, N];
 * lda, ldb, ldc are row strides. The device's GEMM is column-major, so this
 * computes C^T = op(B)^T op(A)^T with the operands swapped. */
int nr_gpu_sgemm(nr_gpu *g, int trans_a, int trans_b, int M, int N, int K, float alpha, nr_dptr A, int lda,
                 nr_dptr B, int ldb, float beta, nr_dptr C, int ldc, nr_error *e);
#endif
