/* The host side of the CUDA backend: checks, device, memory, launches and
 * cuBLAS (NVRTC and its cache are in nvrtc.c). */
#include "gpu.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- checks --------------------------------------------------------------- */

int nr_cu_fail(nr_error *e, CUresult r, const char *call, const char *file, int line)
{
    const char *name = NULL, *text = NULL;
    if (cuGetErrorName(r, &name) != CUDA_SUCCESS) name = NULL;
    if (cuGetErrorString(r, &text) != CUDA_SUCCESS) text = NULL;
    return nr_fail(e, "%s:%d: %s failed: %s (%s)", file, line, call, name ? name : "unknown CUresult",
                   text ? text : "no description");
}

int nr_cublas_fail(nr_error *e, cublasStatus_t r, const char *call, const char *file, int line)
{
    return nr_fail(e, "%s:%d: %s failed: %s (%s)", file, line, call, cublasGetStatusName(r),
                   cublasGetStatusString(r));
}

/* ---- availability ------------------------------------------------------------ */

int nr_gpu_available(char *why, size_t cap)
{
    const char *name = NULL;
    CUresult r = cuInit(0);
    if (r != CUDA_SUCCESS) {
        if (cuGetErrorName(r, &name) != CUDA_SUCCESS) name = "unknown error";
        if (why) snprintf(why, cap, "no usable CUDA driver or GPU: cuInit failed: %s", name);
        return 0;
    }
    int count = 0;
    r = cuDeviceGetCount(&count);
    if (r != CUDA_SUCCESS) {
        if (cuGetErrorName(r, &name) != CUDA_SUCCESS) name = "unknown error";
        if (why) snprintf(why, cap, "cuDeviceGetCount failed: %s", name);
        return 0;
    }
    if (count < 1) {
        if (why) snprintf(why, cap, "the CUDA driver reports no GPU");
        return 0;
    }
    if (why && cap) why[0] = '\0';
    return 1;
}

/* ---- the device ------------------------------------------------------------------------ */

int nr_gpu_open(nr_gpu *g, int ordinal, int tf32, nr_error *e)
{
    memset(g, 0, sizeof *g);
    NR_CU(e, cuInit(0));
    NR_CU(e, cuDeviceGet(&g->device, ordinal));
    NR_CU(e, cuDeviceGetName(g->name, (int)sizeof g->name, g->device));
    NR_CU(e, cuDeviceGetAttribute(&g->major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, g->device));
    NR_CU(e, cuDeviceGetAttribute(&g->minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, g->device));
    NR_CU(e, cuDeviceGetAttribute(&g->sm_count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, g->device));
    NR_CU(e, cuDeviceTotalMem(&g->total_memory, g->device));
    NR_CU(e, cuDevicePrimaryCtxRetain(&g->context, g->device));
    g->opened = 1; /* from here nr_gpu_close releases what was made */
    NR_CU(e, cuCtxSetCurrent(g->context));
    NR_CU(e, cuStreamCreate(&g->stream, CU_STREAM_NON_BLOCKING));
    NR_CUBLAS(e, cublasCreate(&g->blas));
    NR_CUBLAS(e, cublasSetStream(g->blas, (cudaStream_t)g->stream));
    g->tf32 = tf32 != 0;
    NR_CUBLAS(e, cublasSetMathMode(g->blas, g->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    return 0;
}

int nr_gpu_load_kernels(nr_gpu *g, nr_error *e)
{
    nr_nvrtc_output out;
    if (nr_nvrtc_compile_cached(nr_cuda_kernel_source(), "netc_kernels.cu", g->major, g->minor, &out, g->cache_note,
                                sizeof g->cache_note, e) != 0) {
        nr_nvrtc_output_free(&out);
        return -1;
    }
    g->from_cache = out.from_cache;
    g->compile_seconds = out.seconds;
    CUresult r = cuModuleLoadData(&g->module, out.image);
    nr_nvrtc_output_free(&out);
    if (r != CUDA_SUCCESS) return nr_cu_fail(e, r, "cuModuleLoadData(&g->module, out.image)", __FILE__, __LINE__);
    for (int k = 0; k < NR_K_COUNT; k++) {
        r = cuModuleGetFunction(&g->kernels[k], g->module, nr_cuda_kernel_names[k]);
        if (r != CUDA_SUCCESS) {
            nr_cu_fail(e, r, "cuModuleGetFunction", __FILE__, __LINE__);
            size_t len = strlen(e ? e->msg : "");
            if (e) snprintf(e->msg + len, sizeof e->msg - len, " for kernel %s", nr_cuda_kernel_names[k]);
            return -1;
        }
    }
    return 0;
}

void nr_gpu_close(nr_gpu *g)
{
    if (!g->opened) return;
    if (g->blas) cublasDestroy(g->blas);
    if (g->module) cuModuleUnload(g->module);
    if (g->stream) cuStreamDestroy(g->stream);
    cuDevicePrimaryCtxRelease(g->device);
    memset(g, 0, sizeof *g);
}

/* ---- memory ------------------------------------------------------------------------------ */

int nr_gpu_alloc(nr_gpu *g, CUdeviceptr *p, size_t bytes, nr_error *e)
{
    (void)g;
    *p = 0;
    CUresult r = cuMemAlloc(p, bytes ? bytes : 4);
    if (r == CUDA_ERROR_OUT_OF_MEMORY) {
        size_t free_bytes = 0, total = 0;
        if (cuMemGetInfo(&free_bytes, &total) != CUDA_SUCCESS) free_bytes = total = 0;
        return nr_fail(e, "GPU out of memory: asked for %.1f MiB, %.1f MiB free of %.1f MiB",
                       (double)bytes / 1048576.0, (double)free_bytes / 1048576.0, (double)total / 1048576.0);
    }
    if (r != CUDA_SUCCESS) return nr_cu_fail(e, r, "cuMemAlloc(p, bytes)", __FILE__, __LINE__);
    return 0;
}

void nr_gpu_free(CUdeviceptr p)
{
    if (p) cuMemFree(p);
}

int nr_gpu_upload(nr_gpu *g, CUdeviceptr dst, const void *src, size_t bytes, nr_error *e)
{
    if (bytes == 0) return 0;
    NR_CU(e, cuStreamSynchronize(g->stream)); /* src may be reused by the caller at once */
    NR_CU(e, cuMemcpyHtoD(dst, src, bytes));
    return 0;
}

int nr_gpu_download(nr_gpu *g, void *dst, CUdeviceptr src, size_t bytes, nr_error *e)
{
    NR_CU(e, cuStreamSynchronize(g->stream));
    if (bytes) NR_CU(e, cuMemcpyDtoH(dst, src, bytes));
    return 0;
}

int nr_gpu_fill32(nr_gpu *g, CUdeviceptr p, uint32_t bits, size_t count, nr_error *e)
{
    if (count) NR_CU(e, cuMemsetD32Async(p, bits, count, g->stream));
    return 0;
}

int nr_gpu_copy(nr_gpu *g, CUdeviceptr dst, CUdeviceptr src, size_t bytes, nr_error *e)
{
    if (bytes && dst != src) NR_CU(e, cuMemcpyDtoDAsync(dst, src, bytes, g->stream));
    return 0;
}

int nr_gpu_sync(nr_gpu *g, nr_error *e)
{
    NR_CU(e, cuStreamSynchronize(g->stream));
    return 0;
}

/* ---- launches ------------------------------------------------------------------------------- */

int nr_gpu_launch_blocks(nr_gpu *g, nr_kernel_id k, unsigned blocks, void **args, nr_error *e)
{
    if (k < 0 || k >= NR_K_COUNT || !g->kernels[k]) return nr_fail(e, "kernel %d is not loaded", (int)k);
    CUresult r = cuLaunchKernel(g->kernels[k], blocks ? blocks : 1, 1, 1, NR_CUDA_BLOCK, 1, 1, 0, g->stream, args, NULL);
    if (r != CUDA_SUCCESS) {
        nr_cu_fail(e, r, "cuLaunchKernel", __FILE__, __LINE__);
        size_t len = strlen(e ? e->msg : "");
        if (e) snprintf(e->msg + len, sizeof e->msg - len, " for kernel %s", nr_cuda_kernel_names[k]);
        return -1;
    }
    return 0;
}

int nr_gpu_launch(nr_gpu *g, nr_kernel_id k, long long work, void **args, nr_error *e)
{
    /* Enough blocks to fill the device many times over; beyond that the
     * grid-stride loops take over. */
    long long cap = (long long)(g->sm_count > 0 ? g->sm_count : 1) * 64;
    long long blocks = (work + NR_CUDA_BLOCK - 1) / NR_CUDA_BLOCK;
    if (blocks > cap) blocks = cap;
    if (blocks < 1) blocks = 1;
    return nr_gpu_launch_blocks(g, k, (unsigned)blocks, args, e);
}

/* ---- cuBLAS ----------------------------------------------------------------------------------- */

int nr_gpu_sgemm(nr_gpu *g, int trans_a, int trans_b, int M, int N, int K, float alpha, CUdeviceptr A, int lda,
                 CUdeviceptr B, int ldb, float beta, CUdeviceptr C, int ldc, nr_error *e)
{
    if (M <= 0 || N <= 0) return 0;
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    NR_CUBLAS(e, cublasSgemm(g->blas, op_b, op_a, N, M, K, &alpha, (const float *)B, ldb, (const float *)A, lda,
                             &beta, (float *)C, ldc));
    return 0;
}
