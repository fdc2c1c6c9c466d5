/* The device layer: the few things the CUDA backend asks of a GPU, as one
 * table of functions with a plain C ABI. Two implementations fill it:
 *
 * - the real one (runtime/cuda/driver.c): the CUDA driver API, NVRTC and
 *   cuBLAS, all loaded with dlopen at run time, so nothing built by netc
 *   needs libcuda to link or start;
 * - the emulator (runtime/cuda/emu/, a shared object loaded with dlopen
 *   when NETC_CUDA=emu): the same kernel source compiled as host C++, each
 *   thread block run on the CPU with one fiber per thread, for tests on
 *   machines without a GPU.
 *
 * The backend (runtime/cuda/backend.c) and the per-layer launchers
 * (runtime/cuda/layers.c) see only this table, so what runs through the
 * emulator in `make check` is the host code that drives a real GPU.
 *
 * Conventions: device memory is a 64-bit handle (nr_dptr; 0 is none).
 * Every function that can fail fills an nr_error and returns -1. Work is
 * queued in order on one stream: copies to the device and launches return
 * at once, a copy to the host and `sync` wait for everything queued before. */
#ifndef NR_CUDA_DEV_H
#define NR_CUDA_DEV_H
#include "../nr_error.h"
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NR_DEV_ABI 1

typedef uint64_t nr_dptr;

typedef struct nr_dev_info {
    char name[256];               /* "NVIDIA H200", "netc CUDA emulator" */
    int major, minor;             /* compute capability */
    int sm_count;
    size_t total_memory, free_memory;
    int driver_version;           /* cuDriverGetVersion: 13000 for 13.0; 0 for the emulator */
    int nvrtc_version;            /* major * 1000 + minor * 10, or 0 for the emulator */
    int emulated;
} nr_dev_info;

/* A compiled, loaded module: the kernels looked up by name. */
typedef struct nr_dev_module nr_dev_module;
/* A recorded sequence of launches and copies, replayed as one. */
typedef struct nr_dev_graph nr_dev_graph;

typedef struct nr_dev_ops {
    int abi;                      /* NR_DEV_ABI */
    const char *name;             /* "cuda", "emu" */

    /* Opens device `ordinal`: context, stream, BLAS handle (TF32 allowed
     * when tf32). *ctx is the handle every other call takes. */
    int (*open)(void **ctx, int ordinal, int tf32, nr_dev_info *info, nr_error *e);
    void (*close)(void *ctx);

    /* Compiles `source` (named `name` in messages) for this device, through
     * the binary cache where there is one, loads it and looks up the
     * `count` kernels in `names` (extern "C" names) into fns[]. note (cap
     * bytes) receives a line on how it was obtained ("compiled in 2.6 s",
     * "from the cache", why the cache was not used). */
    int (*load_module)(void *ctx, const char *source, const char *name, const char *const *names, int count,
                       nr_dev_module **mod, void **fns, char *note, size_t note_cap, nr_error *e);
    void (*unload_module)(void *ctx, nr_dev_module *mod);

    /* Memory. Out of memory says how much was asked and what is free. */
    int (*alloc)(void *ctx, nr_dptr *p, size_t bytes, nr_error *e);
    void (*free)(void *ctx, nr_dptr p);
    /* Page-locked host memory, for copies that return before they are done. */
    int (*host_alloc)(void *ctx, void **p, size_t bytes, nr_error *e);
    void (*host_free)(void *ctx, void *p);
    /* Queued copy to the device from ordinary (pageable) host memory: src
     * may be reused as soon as the call returns (the driver stages pageable
     * memory before returning), and the copy is ordered on the stream. */
    int (*upload)(void *ctx, nr_dptr dst, const void *src, size_t bytes, nr_error *e);
    /* Waits for the stream, then copies to the host. */
    int (*download)(void *ctx, void *dst, nr_dptr src, size_t bytes, nr_error *e);
    int (*fill32)(void *ctx, nr_dptr p, uint32_t bits, size_t count, nr_error *e);
    int (*copy)(void *ctx, nr_dptr dst, nr_dptr src, size_t bytes, nr_error *e);
    /* Waits for the stream; an error of an earlier launch surfaces here. */
    int (*sync)(void *ctx, nr_error *e);

    /* Kernel fn (from load_module) on grid x block threads, one dimension
     * each; args[i] points at the i-th argument's value, as cuLaunchKernel. */
    int (*launch)(void *ctx, void *fn, unsigned grid, unsigned block, void **args, nr_error *e);

    /* cuBLAS's cublasSgemm, column-major: C [m, n] = alpha op(A) op(B) + beta C. */
    int (*sgemm)(void *ctx, int trans_a, int trans_b, int m, int n, int k, float alpha, nr_dptr A, int lda,
                 nr_dptr B, int ldb, float beta, nr_dptr C, int ldc, nr_error *e);

    /* Stream capture: between graph_begin and graph_end, launches, copies
     * between device buffers, fills and sgemm calls are recorded instead of
     * run (their arguments are copied when recorded: a value that changes
     * from step to step must be read by the kernel from device memory). */
    int (*graph_begin)(void *ctx, nr_error *e);
    int (*graph_end)(void *ctx, nr_dev_graph **g, nr_error *e);
    int (*graph_launch)(void *ctx, nr_dev_graph *g, nr_error *e);
    void (*graph_free)(void *ctx, nr_dev_graph *g);
} nr_dev_ops;

/* The emulator's shared object exports this (dlsym "nr_emu_dev_ops"). */
typedef const nr_dev_ops *(*nr_emu_entry_fn)(void);

#ifdef __cplusplus
}
#endif
#endif
