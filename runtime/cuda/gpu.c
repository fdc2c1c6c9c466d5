/* nr_gpu over the device layer (see gpu.h). */
#include "gpu.h"
#include <stdio.h>
#include <string.h>

int nr_gpu_open(nr_gpu *g, const nr_dev_ops *ops, int ordinal, int tf32, nr_error *e)
{
    memset(g, 0, sizeof *g);
    if (!ops) return nr_fail(e, "no device layer");
    if (ops->abi != NR_DEV_ABI)
        return nr_fail(e, "the %s device layer speaks interface %d, this libnetrt %d", ops->name, ops->abi, NR_DEV_ABI);
    if (ops->open(&g->ctx, ordinal, tf32, &g->info, e)) return -1;
    g->ops = ops;
    return 0;
}

int nr_gpu_load_kernels(nr_gpu *g, nr_error *e)
{
    return g->ops->load_module(g->ctx, nr_cuda_kernel_source(), "netc_kernels.cu", nr_cuda_kernel_names, NR_K_COUNT,
                               &g->module, g->kernels, g->module_note, sizeof g->module_note, e);
}

void nr_gpu_close(nr_gpu *g)
{
    if (!g->ops) return;
    if (g->module) g->ops->unload_module(g->ctx, g->module);
    g->ops->close(g->ctx);
    memset(g, 0, sizeof *g);
}

int nr_gpu_alloc(nr_gpu *g, nr_dptr *p, size_t bytes, nr_error *e)
{
    *p = 0;
    return g->ops->alloc(g->ctx, p, bytes, e);
}

void nr_gpu_free(nr_gpu *g, nr_dptr p)
{
    if (p) g->ops->free(g->ctx, p);
}

int nr_gpu_upload(nr_gpu *g, nr_dptr dst, const void *src, size_t bytes, nr_error *e)
{
    return bytes ? g->ops->upload(g->ctx, dst, src, bytes, e) : 0;
}

int nr_gpu_download(nr_gpu *g, void *dst, nr_dptr src, size_t bytes, nr_error *e)
{
    return g->ops->download(g->ctx, dst, src, bytes, e);
}

int nr_gpu_fill32(nr_gpu *g, nr_dptr p, uint32_t bits, size_t count, nr_error *e)
{
    return count ? g->ops->fill32(g->ctx, p, bits, count, e) : 0;
}

int nr_gpu_copy(nr_gpu *g, nr_dptr dst, nr_dptr src, size_t bytes, nr_error *e)
{
    return bytes && dst != src ? g->ops->copy(g->ctx, dst, src, bytes, e) : 0;
}

int nr_gpu_sync(nr_gpu *g, nr_error *e)
{
    return g->ops->sync(g->ctx, e);
}

int nr_gpu_launch_blocks(nr_gpu *g, nr_kernel_id k, unsigned blocks, void **args, nr_error *e)
{
    if (k < 0 || k >= NR_K_COUNT || !g->kernels[k]) return nr_fail(e, "kernel %d is not loaded", (int)k);
    if (g->ops->launch(g->ctx, g->kernels[k], blocks ? blocks : 1, NR_CUDA_BLOCK, args, e) == 0) return 0;
    size_t len = strlen(e ? e->msg : "");
    if (e) snprintf(e->msg + len, sizeof e->msg - len, " (kernel %s)", nr_cuda_kernel_names[k]);
    return -1;
}

int nr_gpu_launch(nr_gpu *g, nr_kernel_id k, long long work, void **args, nr_error *e)
{
    /* Enough blocks to fill the device many times over; beyond that the
     * grid-stride loops take over. */
    long long cap = (long long)(g->info.sm_count > 0 ? g->info.sm_count : 1) * 64;
    long long blocks = (work + NR_CUDA_BLOCK - 1) / NR_CUDA_BLOCK;
    if (blocks > cap) blocks = cap;
    if (blocks < 1) blocks = 1;
    return nr_gpu_launch_blocks(g, k, (unsigned)blocks, args, e);
}

int nr_gpu_sgemm(nr_gpu *g, int trans_a, int trans_b, int M, int N, int K, float alpha, nr_dptr A, int lda,
                 nr_dptr B, int ldb, float beta, nr_dptr C, int ldc, nr_error *e)
{
    if (M <= 0 || N <= 0) return 0;
    return g->ops->sgemm(g->ctx, trans_b, trans_a, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc, e);
}
