/* NVRTC: run-time compilation of the kernel source, and the cache of
 * compiled binaries. Needs no GPU and no CUDA driver (only libnvrtc), so
 * the kernels can be compiled and checked on any machine with the toolkit.
 *
 * The binary is cached under $XDG_CACHE_HOME/netc (default ~/.cache/netc),
 * keyed by a hash of the source, the architecture, the NVRTC version and
 * the options, so a second start compiles nothing. */
#ifndef NR_CUDA_NVRTC_H
#define NR_CUDA_NVRTC_H
#include "../nr_error.h"
#include <nvrtc.h>
#include <stddef.h>
#include <stdint.h>

int nr_nvrtc_fail(nr_error *e, nvrtcResult r, const char *call, const char *file, int line);

#define NR_NVRTC(e, call)                                                                     \
    do {                                                                                      \
        nvrtcResult nr_r_ = (call);                                                           \
        if (nr_r_ != NVRTC_SUCCESS) return nr_nvrtc_fail((e), nr_r_, #call, __FILE__, __LINE__); \
    } while (0)

typedef struct nr_nvrtc_output {
    void *image;        /* cubin, or NUL-terminated PTX when ptx is set */
    size_t size;
    int ptx;            /* the arch is newer than this NVRTC: PTX for the driver to finish */
    char *log;          /* NVRTC's log (ptxas' resource lines when verbose), or NULL */
    int from_cache;
    double seconds;     /* compile (or cache read) time */
} nr_nvrtc_output;

/* NVRTC's version as major * 1000 + minor * 10 (e.g. 13000), or -1. */
int nr_nvrtc_version(void);

/* Compiles source (named `name` in messages) for compute capability
 * major.minor: a cubin, or PTX for the newest architecture NVRTC knows
 * when it does not know this one. verbose asks ptxas for its per-kernel
 * register and spill report (in out->log). On a compile error, e holds the
 * name, the architecture and the start of NVRTC's log, and out->log the
 * whole log. Free out with nr_nvrtc_output_free (also after a failure). */
int nr_nvrtc_compile(const char *source, const char *name, int major, int minor, int verbose, nr_nvrtc_output *out,
                     nr_error *e);
void nr_nvrtc_output_free(nr_nvrtc_output *out);

/* As nr_nvrtc_compile (never verbose), through the cache: a valid cached
 * binary is read instead of compiling, and a fresh compile is stored. A
 * cache that cannot be written costs a compile next time, never an error;
 * *cache_note (when not NULL) says why it was not used. */
int nr_nvrtc_compile_cached(const char *source, const char *name, int major, int minor, nr_nvrtc_output *out,
                            char *cache_note, size_t note_cap, nr_error *e);

/* The cache directory ($XDG_CACHE_HOME/netc, else $HOME/.cache/netc). */
int nr_gpu_cache_dir(char *buf, size_t cap, nr_error *e);

/* FNV-1a, 64 bits, continuing from h (start with NR_FNV_OFFSET). */
#define NR_FNV_OFFSET 0xcbf29ce484222325ull
uint64_t nr_fnv1a64(uint64_t h, const void *data, size_t n);

#endif
