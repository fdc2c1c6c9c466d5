/* The device layer (dev.h) on a real GPU: the CUDA driver API and cuBLAS,
 * loaded with dlopen when first asked for, so that libnetrt and every
 * program linked with it start on machines without a driver. NVRTC is
 * loaded the same way (nvrtc.c). The toolkit's headers give the types and
 * the versioned symbol names (cuMemAlloc is cuMemAlloc_v2); the toolkit's
 * major version picks the sonames (libcublas.so.13 for CUDA 13). */
#include "config.h"
#include "dev.h"
#include "nvrtc.h"
#include <cublas_v2.h>
#include <cuda.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)
#define SONAME(base, major) base ".so." STR(major)
#define TOOLKIT_MAJOR (CUDA_VERSION / 1000)
#define BLAS_WORKSPACE_BYTES ((size_t)32 << 20)

/* The driver entry points used, by their names in cuda.h (which maps each
 * to its current versioned symbol). */
#define CU_FUNCS(X)                                                                                           \
    X(cuInit) X(cuDriverGetVersion) X(cuDeviceGetCount) X(cuDeviceGet) X(cuDeviceGetName)                     \
    X(cuDeviceGetAttribute) X(cuDeviceTotalMem) X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease)      \
    X(cuCtxSetCurrent) X(cuStreamCreate) X(cuStreamDestroy) X(cuStreamSynchronize) X(cuModuleLoadData)        \
    X(cuModuleGetFunction) X(cuModuleUnload) X(cuMemAlloc) X(cuMemFree) X(cuMemGetInfo) X(cuMemAllocHost)     \
    X(cuMemFreeHost) X(cuMemcpyHtoDAsync) X(cuMemcpyDtoH) X(cuMemcpyDtoDAsync) X(cuMemsetD32Async)            \
    X(cuLaunchKernel) X(cuStreamBeginCapture) X(cuStreamEndCapture) X(cuGraphInstantiate) X(cuGraphLaunch)    \
    X(cuGraphExecDestroy) X(cuGraphDestroy) X(cuGetErrorName) X(cuGetErrorString)
#define BLAS_FUNCS(X)                                                                                         \
    X(cublasCreate) X(cublasDestroy) X(cublasSetStream) X(cublasSetMathMode) X(cublasSgemm) X(cublasSetWorkspace) \
    X(cublasGetStatusName) X(cublasGetStatusString)

#define FIELD(f) __typeof__(&f) f;
typedef struct cuda_api {
    CU_FUNCS(FIELD)
    BLAS_FUNCS(FIELD)
    void *libcuda, *libcublas;
} cuda_api;
#undef FIELD

/* Loaded once per process and kept (the driver cannot be unloaded safely). */
static cuda_api api;
static int api_state;             /* 0 not tried, 1 loaded, -1 failed */
static char api_error[512];

static void *open_library(const char *soname, const char *fallback, char *tried, size_t cap)
{
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (h || !fallback) return h;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", fallback, soname);
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) snprintf(tried, cap, "%s (also %s)", soname, path);
    return h;
}

static int load_symbols(void)
{
#define LOAD(lib, f)                                                                                 \
    if (!(*(void **)&api.f = dlsym(api.lib, STR(f)))) {                                              \
        snprintf(api_error, sizeof api_error, "%s lacks %s: too old a CUDA driver or toolkit library", \
                 #lib, STR(f));                                                                      \
        return -1;                                                                                   \
    }
#define LOAD_CU(f) LOAD(libcuda, f)
#define LOAD_BLAS(f) LOAD(libcublas, f)
    CU_FUNCS(LOAD_CU)
    BLAS_FUNCS(LOAD_BLAS)
#undef LOAD_CU
#undef LOAD_BLAS
#undef LOAD
    return 0;
}

static int load_api(nr_error *e)
{
    if (api_state == 0) {
        char tried[1200] = "";
        api_state = -1;
        api.libcuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
        if (!api.libcuda)
            snprintf(api_error, sizeof api_error, "no CUDA driver: libcuda.so.1 cannot be loaded (%s)", dlerror());
        else if (!(api.libcublas = open_library(SONAME("libcublas", TOOLKIT_MAJOR), NETC_CUDA_LIBDIR, tried,
                                                sizeof tried)))
            snprintf(api_error, sizeof api_error, "no cuBLAS: %.400s cannot be loaded (CUDA %d toolkit libraries)",
                     tried, TOOLKIT_MAJOR);
        else if (load_symbols() == 0)
            api_state = 1;
    }
    return api_state == 1 ? 0 : nr_fail(e, "%s", api_error);
}

/* ---- checks ----------------------------------------------------------------- */

static int cu_fail(nr_error *e, CUresult r, const char *call, const char *file, int line)
{
    const char *name = NULL, *text = NULL;
    if (api.cuGetErrorName(r, &name) != CUDA_SUCCESS) name = NULL;
    if (api.cuGetErrorString(r, &text) != CUDA_SUCCESS) text = NULL;
    return nr_fail(e, "%s:%d: %s failed: %s (%s)", file, line, call, name ? name : "unknown CUresult",
                   text ? text : "no description");
}

#define CU(e, call)                                                                          \
    do {                                                                                     \
        CUresult r_ = api.call;                                                              \
        if (r_ != CUDA_SUCCESS) return cu_fail((e), r_, #call, __FILE__, __LINE__);          \
    } while (0)
#define BLAS(e, call)                                                                                    \
    do {                                                                                                 \
        cublasStatus_t r_ = api.call;                                                                    \
        if (r_ != CUBLAS_STATUS_SUCCESS)                                                                 \
            return nr_fail((e), "%s:%d: %s failed: %s (%s)", __FILE__, __LINE__, #call,                  \
                           api.cublasGetStatusName(r_), api.cublasGetStatusString(r_));                  \
    } while (0)

/* ---- the device --------------------------------------------------------------- */

typedef struct gpu_ctx {
    CUdevice device;
    CUcontext context;
    CUstream stream;
    cublasHandle_t blas;
    CUdeviceptr blas_workspace;   /* cuBLAS's own, so that a captured graph needs no allocation */
    int major, minor;
    int retained;
} gpu_ctx;

struct nr_dev_module {
    CUmodule module;
};

struct nr_dev_graph {
    CUgraph graph;
    CUgraphExec exec;
};

static void gpu_close(void *c)
{
    gpu_ctx *g = c;
    if (!g) return;
    if (g->blas) api.cublasDestroy(g->blas);
    if (g->blas_workspace) api.cuMemFree(g->blas_workspace);
    if (g->stream) api.cuStreamDestroy(g->stream);
    if (g->retained) api.cuDevicePrimaryCtxRelease(g->device);
    free(g);
}

static int device_info(gpu_ctx *g, nr_dev_info *info, nr_error *e)
{
    memset(info, 0, sizeof *info);
    CU(e, cuDeviceGetName(info->name, (int)sizeof info->name, g->device));
    CU(e, cuDeviceGetAttribute(&g->major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, g->device));
    CU(e, cuDeviceGetAttribute(&g->minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, g->device));
    CU(e, cuDeviceGetAttribute(&info->sm_count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, g->device));
    CU(e, cuDriverGetVersion(&info->driver_version));
    info->major = g->major;
    info->minor = g->minor;
    info->nvrtc_version = nr_nvrtc_version();
    return 0;
}

static int open_device(gpu_ctx *g, int ordinal, int tf32, nr_dev_info *info, nr_error *e)
{
    int count = 0;
    CU(e, cuInit(0));
    CU(e, cuDeviceGetCount(&count));
    if (ordinal >= count)
        return nr_fail(e, count ? "no GPU %d: the driver sees %d" : "the CUDA driver sees no GPU%.0d", ordinal, count);
    CU(e, cuDeviceGet(&g->device, ordinal));
    if (device_info(g, info, e)) return -1;
    CU(e, cuDevicePrimaryCtxRetain(&g->context, g->device));
    g->retained = 1;
    CU(e, cuCtxSetCurrent(g->context));
    CU(e, cuMemGetInfo(&info->free_memory, &info->total_memory));
    CU(e, cuStreamCreate(&g->stream, CU_STREAM_NON_BLOCKING));
    BLAS(e, cublasCreate(&g->blas));
    BLAS(e, cublasSetStream(g->blas, (cudaStream_t)g->stream));
    BLAS(e, cublasSetMathMode(g->blas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    /* cuBLAS allocates its workspace on demand, which stream capture
     * forbids: hand it one (32 MiB, its recommendation for Hopper). */
    CU(e, cuMemAlloc(&g->blas_workspace, BLAS_WORKSPACE_BYTES));
    BLAS(e, cublasSetWorkspace(g->blas, (void *)(uintptr_t)g->blas_workspace, BLAS_WORKSPACE_BYTES));
    return 0;
}

static int gpu_open(void **ctx, int ordinal, int tf32, nr_dev_info *info, nr_error *e)
{
    *ctx = NULL;
    if (load_api(e)) return -1;
    gpu_ctx *g = calloc(1, sizeof *g);
    if (!g) return nr_fail(e, "out of memory");
    if (open_device(g, ordinal, tf32, info, e)) {
        gpu_close(g);
        return -1;
    }
    *ctx = g;
    return 0;
}

static int gpu_load_module(void *c, const char *source, const char *name, const char *const *names, int count,
                           nr_dev_module **mod, void **fns, char *note, size_t note_cap, nr_error *e)
{
    gpu_ctx *g = c;
    nr_nvrtc_output out;
    char cache_note[256] = "";
    *mod = NULL;
    if (nr_nvrtc_compile_cached(source, name, g->major, g->minor, &out, cache_note, sizeof cache_note, e)) {
        nr_nvrtc_output_free(&out);
        return -1;
    }
    snprintf(note, note_cap, "%s %s in %.2f s%s%s", out.ptx ? "PTX" : "cubin",
             out.from_cache ? "read from the cache" : "compiled by NVRTC", out.seconds, cache_note[0] ? "; " : "",
             cache_note);
    nr_dev_module *m = calloc(1, sizeof *m);
    if (!m) {
        nr_nvrtc_output_free(&out);
        return nr_fail(e, "out of memory");
    }
    CUresult r = api.cuModuleLoadData(&m->module, out.image);
    nr_nvrtc_output_free(&out);
    if (r != CUDA_SUCCESS) {
        free(m);
        return cu_fail(e, r, "cuModuleLoadData", __FILE__, __LINE__);
    }
    *mod = m;
    for (int k = 0; k < count; k++) {
        r = api.cuModuleGetFunction((CUfunction *)&fns[k], m->module, names[k]);
        if (r != CUDA_SUCCESS) {
            cu_fail(e, r, "cuModuleGetFunction", __FILE__, __LINE__);
            size_t len = strlen(e ? e->msg : "");
            if (e) snprintf(e->msg + len, sizeof e->msg - len, " for kernel %s", names[k]);
            return -1;
        }
    }
    return 0;
}

static void gpu_unload_module(void *c, nr_dev_module *m)
{
    (void)c;
    if (!m) return;
    api.cuModuleUnload(m->module);
    free(m);
}

/* ---- memory ---------------------------------------------------------------------- */

static int gpu_alloc(void *c, nr_dptr *p, size_t bytes, nr_error *e)
{
    (void)c;
    CUdeviceptr d = 0;
    CUresult r = api.cuMemAlloc(&d, bytes ? bytes : 4);
    if (r == CUDA_ERROR_OUT_OF_MEMORY) {
        size_t free_bytes = 0, total = 0;
        if (api.cuMemGetInfo(&free_bytes, &total) != CUDA_SUCCESS) free_bytes = total = 0;
        return nr_fail(e, "GPU out of memory: asked for %.1f MiB, %.1f MiB free of %.1f MiB",
                       (double)bytes / 1048576.0, (double)free_bytes / 1048576.0, (double)total / 1048576.0);
    }
    if (r != CUDA_SUCCESS) return cu_fail(e, r, "cuMemAlloc", __FILE__, __LINE__);
    *p = (nr_dptr)d;
    return 0;
}

static void gpu_free(void *c, nr_dptr p)
{
    (void)c;
    if (p) api.cuMemFree((CUdeviceptr)p);
}

static int gpu_host_alloc(void *c, void **p, size_t bytes, nr_error *e)
{
    (void)c;
    CU(e, cuMemAllocHost(p, bytes ? bytes : 4));
    return 0;
}

static void gpu_host_free(void *c, void *p)
{
    (void)c;
    if (p) api.cuMemFreeHost(p);
}

static int gpu_upload(void *c, nr_dptr dst, const void *src, size_t bytes, nr_error *e)
{
    gpu_ctx *g = c;
    if (bytes) CU(e, cuMemcpyHtoDAsync((CUdeviceptr)dst, src, bytes, g->stream));
    return 0;
}

static int gpu_sync(void *c, nr_error *e)
{
    gpu_ctx *g = c;
    CU(e, cuStreamSynchronize(g->stream));
    return 0;
}

static int gpu_download(void *c, void *dst, nr_dptr src, size_t bytes, nr_error *e)
{
    if (gpu_sync(c, e)) return -1;
    if (bytes) CU(e, cuMemcpyDtoH(dst, (CUdeviceptr)src, bytes));
    return 0;
}

static int gpu_fill32(void *c, nr_dptr p, uint32_t bits, size_t count, nr_error *e)
{
    gpu_ctx *g = c;
    if (count) CU(e, cuMemsetD32Async((CUdeviceptr)p, bits, count, g->stream));
    return 0;
}

static int gpu_copy(void *c, nr_dptr dst, nr_dptr src, size_t bytes, nr_error *e)
{
    gpu_ctx *g = c;
    if (bytes && dst != src) CU(e, cuMemcpyDtoDAsync((CUdeviceptr)dst, (CUdeviceptr)src, bytes, g->stream));
    return 0;
}

/* ---- launches, cuBLAS, graphs ------------------------------------------------------- */

static int gpu_launch(void *c, void *fn, unsigned grid, unsigned block, void **args, nr_error *e)
{
    gpu_ctx *g = c;
    CU(e, cuLaunchKernel((CUfunction)fn, grid, 1, 1, block, 1, 1, 0, g->stream, args, NULL));
    return 0;
}

static int gpu_sgemm(void *c, int trans_a, int trans_b, int m, int n, int k, float alpha, nr_dptr A, int lda,
                     nr_dptr B, int ldb, float beta, nr_dptr C, int ldc, nr_error *e)
{
    gpu_ctx *g = c;
    BLAS(e, cublasSgemm(g->blas, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k,
                        &alpha, (const float *)(uintptr_t)A, lda, (const float *)(uintptr_t)B, ldb, &beta,
                        (float *)(uintptr_t)C, ldc));
    return 0;
}

static int gpu_graph_begin(void *c, nr_error *e)
{
    gpu_ctx *g = c;
    CU(e, cuStreamBeginCapture(g->stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
    return 0;
}

static int gpu_graph_end(void *c, nr_dev_graph **out, nr_error *e)
{
    gpu_ctx *g = c;
    *out = NULL;
    nr_dev_graph *gr = calloc(1, sizeof *gr);
    if (!gr) return nr_fail(e, "out of memory");
    CUresult r = api.cuStreamEndCapture(g->stream, &gr->graph);
    if (r == CUDA_SUCCESS) r = api.cuGraphInstantiate(&gr->exec, gr->graph, 0);
    if (r != CUDA_SUCCESS) {
        if (gr->graph) api.cuGraphDestroy(gr->graph);
        free(gr);
        return cu_fail(e, r, "cuStreamEndCapture/cuGraphInstantiate", __FILE__, __LINE__);
    }
    *out = gr;
    return 0;
}

static int gpu_graph_launch(void *c, nr_dev_graph *gr, nr_error *e)
{
    gpu_ctx *g = c;
    CU(e, cuGraphLaunch(gr->exec, g->stream));
    return 0;
}

static void gpu_graph_free(void *c, nr_dev_graph *gr)
{
    (void)c;
    if (!gr) return;
    api.cuGraphExecDestroy(gr->exec);
    api.cuGraphDestroy(gr->graph);
    free(gr);
}

static const nr_dev_ops cuda_ops = {
    NR_DEV_ABI,      "cuda",         gpu_open,        gpu_close,      gpu_load_module, gpu_unload_module,
    gpu_alloc,       gpu_free,       gpu_host_alloc,  gpu_host_free,  gpu_upload,      gpu_download,
    gpu_fill32,      gpu_copy,       gpu_sync,        gpu_launch,     gpu_sgemm,       gpu_graph_begin,
    gpu_graph_end,   gpu_graph_launch, gpu_graph_free,
};

const nr_dev_ops *nr_cuda_dev_ops(void) { return &cuda_ops; }
