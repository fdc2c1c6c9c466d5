/* NVRTC and the binary cache (see nvrtc.h). */
#include "config.h"
#include "nvrtc.h"
#include <cuda.h> /* CUDA_VERSION only */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NR_PATH_MAX 4096

/* ---- libnvrtc, loaded at run time ---------------------------------------------
 * Programs that never compile a kernel must not need libnvrtc to start, so it
 * is opened with dlopen on first use: its soname for the toolkit netc was
 * built with (libnvrtc.so.13), else the toolkit's library directory. The
 * calls below keep NVRTC's names; each resolves to the loaded pointer. */
#define STR_(x) #x
#define STR(x) STR_(x)
#define NVRTC_FUNCS(X)                                                                                     \
    X(nvrtcVersion) X(nvrtcGetErrorString) X(nvrtcGetNumSupportedArchs) X(nvrtcGetSupportedArchs)          \
    X(nvrtcGetProgramLogSize) X(nvrtcGetProgramLog) X(nvrtcGetPTXSize) X(nvrtcGetCUBINSize) X(nvrtcGetPTX) \
    X(nvrtcGetCUBIN) X(nvrtcCompileProgram) X(nvrtcCreateProgram) X(nvrtcDestroyProgram)
#define FIELD(f) __typeof__(&f) f;
static struct {
    NVRTC_FUNCS(FIELD)
    int state;                    /* 0 not tried, 1 loaded, -1 failed */
    char error[600];
} nvrtc_lib;
#undef FIELD

static int nvrtc_load(nr_error *e)
{
    if (nvrtc_lib.state == 0) {
        char soname[64], path[NR_PATH_MAX];
        snprintf(soname, sizeof soname, "libnvrtc.so.%d", CUDA_VERSION / 1000);
        snprintf(path, sizeof path, "%s/%s", NETC_CUDA_LIBDIR, soname);
        void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
        if (!h) h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        nvrtc_lib.state = -1;
        if (!h) snprintf(nvrtc_lib.error, sizeof nvrtc_lib.error, "NVRTC cannot be loaded: %s (also tried %.400s)", soname, path);
#define LOAD(f) \
        if (h && !(*(void **)&nvrtc_lib.f = dlsym(h, #f))) { \
            snprintf(nvrtc_lib.error, sizeof nvrtc_lib.error, "%s lacks %s", soname, #f); \
            h = NULL; \
        }
        NVRTC_FUNCS(LOAD)
#undef LOAD
        if (h) nvrtc_lib.state = 1;
    }
    return nvrtc_lib.state == 1 ? 0 : nr_fail(e, "%s", nvrtc_lib.error);
}
#define REDIRECT(f) nvrtc_lib.f
#define nvrtcVersion REDIRECT(nvrtcVersion)
#define nvrtcGetErrorString REDIRECT(nvrtcGetErrorString)
#define nvrtcGetNumSupportedArchs REDIRECT(nvrtcGetNumSupportedArchs)
#define nvrtcGetSupportedArchs REDIRECT(nvrtcGetSupportedArchs)
#define nvrtcGetProgramLogSize REDIRECT(nvrtcGetProgramLogSize)
#define nvrtcGetProgramLog REDIRECT(nvrtcGetProgramLog)
#define nvrtcGetPTXSize REDIRECT(nvrtcGetPTXSize)
#define nvrtcGetCUBINSize REDIRECT(nvrtcGetCUBINSize)
#define nvrtcGetPTX REDIRECT(nvrtcGetPTX)
#define nvrtcGetCUBIN REDIRECT(nvrtcGetCUBIN)
#define nvrtcCompileProgram REDIRECT(nvrtcCompileProgram)
#define nvrtcCreateProgram REDIRECT(nvrtcCreateProgram)
#define nvrtcDestroyProgram REDIRECT(nvrtcDestroyProgram)

int nr_nvrtc_fail(nr_error *e, nvrtcResult r, const char *call, const char *file, int line)
{
    return nr_fail(e, "%s:%d: %s failed: %s", file, line, call, nvrtcGetErrorString(r));
}

static double seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- NVRTC ----------------------------------------------------------------------- */

uint64_t nr_fnv1a64(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

int nr_nvrtc_version(void)
{
    int major = 0, minor = 0;
    if (nvrtc_load(NULL) || nvrtcVersion(&major, &minor) != NVRTC_SUCCESS) return -1;
    return major * 1000 + minor * 10;
}

void nr_nvrtc_output_free(nr_nvrtc_output *out)
{
    if (!out) return;
    free(out->image);
    free(out->log);
    out->image = NULL;
    out->log = NULL;
    out->size = 0;
}

/* The architecture to compile for: the device's own when NVRTC knows it,
 * else the newest NVRTC knows below it (as PTX, which the driver finishes). */
static int pick_arch(int wanted, int *arch, int *ptx, nr_error *e)
{
    int n = 0;
    NR_NVRTC(e, nvrtcGetNumSupportedArchs(&n));
    int *archs = malloc((size_t)(n > 0 ? n : 1) * sizeof *archs);
    if (!archs) return nr_fail(e, "out of memory listing NVRTC's architectures");
    nvrtcResult r = nvrtcGetSupportedArchs(archs);
    if (r != NVRTC_SUCCESS) {
        free(archs);
        return nr_nvrtc_fail(e, r, "nvrtcGetSupportedArchs(archs)", __FILE__, __LINE__);
    }
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (archs[i] == wanted) best = wanted;
        if (archs[i] < wanted && archs[i] > best && best != wanted) best = archs[i];
    }
    free(archs);
    if (best < 0) return nr_fail(e, "NVRTC %d cannot compile for sm_%d or any older architecture", nr_nvrtc_version(), wanted);
    *arch = best;
    *ptx = best != wanted;
    return 0;
}

/* Options every compile uses; see kernels.cu for why fmad is off. */
#define NR_NVRTC_FIXED_OPTIONS "--fmad=false --generate-line-info"

static int read_log(nvrtcProgram prog, char **log)
{
    size_t size = 0;
    *log = NULL;
    if (nvrtcGetProgramLogSize(prog, &size) != NVRTC_SUCCESS || size == 0) return 0;
    *log = malloc(size);
    if (!*log) return -1;
    if (nvrtcGetProgramLog(prog, *log) != NVRTC_SUCCESS) (*log)[0] = '\0';
    return 0;
}

static int fetch_image(nvrtcProgram prog, int ptx, nr_nvrtc_output *out, nr_error *e)
{
    size_t size = 0;
    if (ptx)
        NR_NVRTC(e, nvrtcGetPTXSize(prog, &size));
    else
        NR_NVRTC(e, nvrtcGetCUBINSize(prog, &size));
    out->image = malloc(size ? size : 1);
    if (!out->image) return nr_fail(e, "out of memory for a %zu-byte compiled module", size);
    out->size = size;
    if (ptx)
        NR_NVRTC(e, nvrtcGetPTX(prog, out->image));
    else
        NR_NVRTC(e, nvrtcGetCUBIN(prog, out->image));
    return 0;
}

static int compile_program(nvrtcProgram prog, const char *name, int arch, int ptx, int verbose,
                           nr_nvrtc_output *out, nr_error *e)
{
    char arch_opt[64];
    snprintf(arch_opt, sizeof arch_opt, "--gpu-architecture=%s_%d", ptx ? "compute" : "sm", arch);
    const char *opts[] = { arch_opt, "--fmad=false", "--generate-line-info", "--ptxas-options=-v" };
    int nopts = verbose && !ptx ? 4 : 3;
    nvrtcResult r = nvrtcCompileProgram(prog, nopts, opts);
    if (read_log(prog, &out->log) != 0) return nr_fail(e, "out of memory reading NVRTC's log");
    if (r != NVRTC_SUCCESS)
        return nr_fail(e, "NVRTC could not compile %s for %s_%d: %s\n%.700s", name, ptx ? "compute" : "sm", arch,
                       nvrtcGetErrorString(r), out->log ? out->log : "(no log)");
    return fetch_image(prog, ptx, out, e);
}

int nr_nvrtc_compile(const char *source, const char *name, int major, int minor, int verbose, nr_nvrtc_output *out,
                     nr_error *e)
{
    memset(out, 0, sizeof *out);
    if (nvrtc_load(e)) return -1;
    double start = seconds_now();
    int arch = 0, ptx = 0;
    if (pick_arch(major * 10 + minor, &arch, &ptx, e) != 0) return -1;
    out->ptx = ptx;
    nvrtcProgram prog;
    NR_NVRTC(e, nvrtcCreateProgram(&prog, source, name, 0, NULL, NULL));
    int rc = compile_program(prog, name, arch, ptx, verbose, out, e);
    nvrtcResult r = nvrtcDestroyProgram(&prog);
    if (rc == 0 && r != NVRTC_SUCCESS) rc = nr_nvrtc_fail(e, r, "nvrtcDestroyProgram(&prog)", __FILE__, __LINE__);
    out->seconds = seconds_now() - start;
    return rc;
}

/* ---- the binary cache ----------------------------------------------------------------- */

int nr_gpu_cache_dir(char *buf, size_t cap, nr_error *e)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(buf, cap, "%s/netc", xdg);
    else if (home && home[0])
        n = snprintf(buf, cap, "%s/.cache/netc", home);
    else
        return nr_fail(e, "neither XDG_CACHE_HOME nor HOME is set");
    if (n < 0 || (size_t)n >= cap) return nr_fail(e, "cache directory path too long");
    return 0;
}

/* mkdir -p */
static int make_dirs(char *path, nr_error *e)
{
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char saved = *p;
        *p = '\0';
        int rc = mkdir(path, 0755);
        int err = errno;
        *p = saved;
        if (rc != 0 && err != EEXIST) {
            errno = err;
            return nr_fail_errno(e, "cannot create %s", path);
        }
        if (saved == '\0') return 0;
    }
}

/* A cache file: this header, then the image. The key, the size and the
 * image's own hash guard against a foreign, truncated or damaged file. */
typedef struct cache_header {
    char magic[8];
    uint64_t key;
    uint64_t size;
    uint64_t ptx;
    uint64_t image_hash;
} cache_header;

static const char cache_magic[8] = { 'N', 'E', 'T', 'C', 'B', 'I', 'N', '1' };

static uint64_t cache_key(const char *source, int major, int minor)
{
    char tail[128];
    int n = snprintf(tail, sizeof tail, "|sm_%d%d|nvrtc %d|" NR_NVRTC_FIXED_OPTIONS, major, minor, nr_nvrtc_version());
    uint64_t h = nr_fnv1a64(NR_FNV_OFFSET, source, strlen(source));
    return nr_fnv1a64(h, tail, (size_t)n);
}

static int cache_path(char *buf, size_t cap, uint64_t key, int major, int minor, nr_error *e)
{
    char dir[NR_PATH_MAX];
    if (nr_gpu_cache_dir(dir, sizeof dir, e) != 0) return -1;
    int n = snprintf(buf, cap, "%s/%016llx-sm_%d%d.bin", dir, (unsigned long long)key, major, minor);
    if (n < 0 || (size_t)n >= cap) return nr_fail(e, "cache path too long");
    return 0;
}

/* 0 and the image when the file holds a valid entry for key; -1 otherwise. */
static int cache_read(const char *path, uint64_t key, nr_nvrtc_output *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    cache_header h;
    int ok = fread(&h, sizeof h, 1, f) == 1 && memcmp(h.magic, cache_magic, sizeof cache_magic) == 0 &&
             h.key == key && h.size > 0 && h.size < ((uint64_t)1 << 31);
    if (ok) {
        out->image = malloc((size_t)h.size + 1);
        ok = out->image && fread(out->image, 1, (size_t)h.size, f) == h.size && fgetc(f) == EOF &&
             nr_fnv1a64(NR_FNV_OFFSET, out->image, (size_t)h.size) == h.image_hash;
        if (ok) {
            ((char *)out->image)[h.size] = '\0';
            out->size = (size_t)h.size;
            out->ptx = h.ptx != 0;
        }
    }
    fclose(f);
    if (!ok) {
        free(out->image);
        out->image = NULL;
        return -1;
    }
    return 0;
}

/* Written to a temporary file and renamed, so a reader never sees half. */
static int cache_write(const char *path, uint64_t key, const nr_nvrtc_output *out, nr_error *e)
{
    char dir[NR_PATH_MAX], tmp[NR_PATH_MAX];
    if (nr_gpu_cache_dir(dir, sizeof dir, e) != 0 || make_dirs(dir, e) != 0) return -1;
    int n = snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof tmp) return nr_fail(e, "cache path too long");
    int fd = mkstemp(tmp);
    if (fd < 0) return nr_fail_errno(e, "cannot create %s", tmp);
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(tmp);
        return nr_fail_errno(e, "cannot open %s", tmp);
    }
    cache_header h;
    memcpy(h.magic, cache_magic, sizeof h.magic);
    h.key = key;
    h.size = out->size;
    h.ptx = (uint64_t)out->ptx;
    h.image_hash = nr_fnv1a64(NR_FNV_OFFSET, out->image, out->size);
    int ok = fwrite(&h, sizeof h, 1, f) == 1 && fwrite(out->image, 1, out->size, f) == out->size;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return nr_fail_errno(e, "cannot write %s", path);
    }
    return 0;
}

int nr_nvrtc_compile_cached(const char *source, const char *name, int major, int minor, nr_nvrtc_output *out,
                            char *cache_note, size_t note_cap, nr_error *e)
{
    char path[NR_PATH_MAX];
    nr_error why;
    memset(out, 0, sizeof *out);
    if (nvrtc_load(e)) return -1;
    uint64_t key = cache_key(source, major, minor);
    int have_path = cache_path(path, sizeof path, key, major, minor, &why) == 0;
    if (cache_note && note_cap) cache_note[0] = '\0';
    memset(out, 0, sizeof *out);
    if (have_path) {
        double start = seconds_now();
        if (cache_read(path, key, out) == 0) {
            out->from_cache = 1;
            out->seconds = seconds_now() - start;
            return 0;
        }
    }
    if (nr_nvrtc_compile(source, name, major, minor, 0, out, e) != 0) return -1;
    if (have_path && cache_write(path, key, out, &why) == 0) return 0;
    if (cache_note) snprintf(cache_note, note_cap, "compiled kernels not cached: %s", why.msg);
    return 0;
}

