/* The CUDA emulator: runtime/cuda/dev.h's device layer on the CPU, in a
 * shared object (libnetemu.so) that the runtime loads with dlopen when
 * NETC_CUDA=emu (runtime/cuda/emu_load.h finds it).
 *
 * Running a program on it: build netc (the emulator is built whenever a C++
 * compiler is found; no CUDA toolkit is needed), then
 *     NETC_CUDA=emu ./model train ...
 * NETC_EMU_LIB=/path/to/libnetemu.so picks the shared object (else the
 * build tree's, else the installed one in $(pkglibdir)).
 *
 * What it emulates:
 * - memory: host allocations (nr_dptr is the pointer), 256-byte aligned,
 *   filled with 0xff bytes (NaN floats, -1 integers) so that reading what
 *   was never written shows; every allocation is tracked, so a copy, fill or
 *   GEMM outside one, or a free of something that is not one, is an error
 *   (free cannot return it: the next call that can fail reports it). The
 *   device's memory is NETC_EMU_MEMORY_MB (default half the machine's RAM);
 * - the stream: everything runs at once, in order. An upload from
 *   page-locked memory (host_alloc) is asynchronous on a GPU, so its source
 *   must stay unchanged until a sync or download (dev.h): the emulator
 *   hashes it at the upload and again there, and a change is an error, as
 *   is host_free of a buffer with an upload still queued;
 * - launches: the kernels compiled into this object (or a module, below) run
 *   block after block, threads as fibers (fiber.cc). NETC_EMU_ORDER=reverse
 *   runs blocks and the threads of a block in reverse order: a kernel whose
 *   result changes with the order has a race;
 * - sgemm: cblas_sgemm in cuBLAS's column-major convention, in fp32 (TF32
 *   is not emulated: tf32 is accepted and ignored);
 * - graphs: capture records launches (with copies of their argument
 *   values), fills, copies and GEMMs; replay runs them again. Uploads,
 *   downloads and syncs while capturing are errors, as in CUDA.
 *
 * Modules: load_module ignores the source text (the emulator cannot compile
 * CUDA at run time). When `name` ends in ".so" it is a path to a module
 * built with runtime/cuda/emu/shim.h and module.h (tests/emu/ has one);
 * otherwise the kernels are the ones compiled into libnetemu.so from
 * netc's kernel source at build time. Either way each name in names[] is
 * looked up as <name>__emu; a missing one is an error naming it. */
#include "fiber.h"
#include "module.h"
#include "../dev.h"
#include <cblas.h>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

const uint32_t KERNEL_MAGIC = 0x6e72656d; /* "nrem" */

struct kernel {
    uint32_t magic;
    std::string name;
    void (*run)(void **);
    nr_emu_params params;
};

enum node_kind { NODE_LAUNCH, NODE_FILL, NODE_COPY, NODE_SGEMM };

struct sgemm_call {
    int trans_a, trans_b, m, n, k;
    float alpha, beta;
    nr_dptr A, B, C;
    int lda, ldb, ldc;
};

/* One recorded operation; a launch keeps its argument values. */
struct node {
    node_kind kind;
    const kernel *k;
    unsigned grid, block;
    std::vector<unsigned char> arg_bytes;
    std::vector<size_t> arg_offsets;
    nr_dptr dst, src;
    size_t bytes;
    uint32_t bits;
    sgemm_call gemm;
};

/* An upload the stream has not passed yet (as far as the caller may know):
 * its source must not change until a sync or a download. */
struct pending_upload {
    const void *src;
    size_t bytes;
    nr_dptr dst;
    uint64_t hash;
};

struct emu_ctx {
    std::map<uintptr_t, size_t> allocs; /* start -> bytes */
    std::map<uintptr_t, size_t> host_allocs;
    std::vector<pending_upload> pending;
    size_t used, total;
    int reverse;
    bool capturing;
    nr_dev_graph *capture;
    std::string deferred; /* an error from a call that cannot return one */
};

} // namespace

struct nr_dev_module {
    void *handle; /* dlopen'ed module, or NULL for the built-in kernels */
    std::vector<kernel *> kernels;
};

struct nr_dev_graph {
    std::vector<node> nodes;
};

/* One scheduler for the process: modules are bound to its builtins, and
 * the fibers run on whichever thread launches, one launch at a time. */
static std::mutex sched_lock;
static nr_emu_sched *sched;

static emu_ctx *C(void *ctx)
{
    return static_cast<emu_ctx *>(ctx);
}

/* Reports (once) what free could not. */
static int take_deferred(emu_ctx *c, nr_error *e)
{
    if (c->deferred.empty()) return 0;
    nr_fail(e, "%s", c->deferred.c_str());
    c->deferred.clear();
    return -1;
}

/* Keeps the first error of a call that cannot return one, for the next that can. */
static void defer(emu_ctx *c, const std::string &msg)
{
    if (c->deferred.empty()) c->deferred = msg;
}

/* [p, p + bytes) must lie inside one allocation. */
static int check_range(emu_ctx *c, const char *what, nr_dptr p, size_t bytes, nr_error *e)
{
    if (!p) return nr_fail(e, "CUDA emulator: %s: null device pointer", what);
    auto it = c->allocs.upper_bound((uintptr_t)p);
    if (it == c->allocs.begin())
        return nr_fail(e, "CUDA emulator: %s: 0x%llx is not device memory", what, (unsigned long long)p);
    --it;
    uintptr_t start = it->first, end = start + it->second;
    bool inside = (uintptr_t)p < end || (uintptr_t)p == start; /* an empty allocation has its start */
    if (!inside)
        return nr_fail(e, "CUDA emulator: %s: 0x%llx is not device memory", what, (unsigned long long)p);
    if (bytes > end - (uintptr_t)p)
        return nr_fail(e, "CUDA emulator: %s: %zu bytes at 0x%llx run outside the allocation of %zu bytes at 0x%llx",
                       what, bytes, (unsigned long long)p, it->second, (unsigned long long)start);
    return 0;
}

static size_t default_total_memory(void)
{
    const char *mb = getenv("NETC_EMU_MEMORY_MB");
    long v = mb ? strtol(mb, nullptr, 10) : 0;
    if (v > 0) return (size_t)v << 20;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return (size_t)4 << 30;
    return (size_t)pages * (size_t)page / 2;
}

static int emu_open(void **ctx, int ordinal, int tf32, nr_dev_info *info, nr_error *e)
{
    (void)tf32;
    if (ordinal != 0) return nr_fail(e, "CUDA emulator: no device %d (the emulator is device 0 only)", ordinal);
    const char *order = getenv("NETC_EMU_ORDER");
    int reverse = 0;
    if (order && *order) {
        if (!strcmp(order, "reverse")) reverse = 1;
        else if (strcmp(order, "forward"))
            return nr_fail(e, "CUDA emulator: NETC_EMU_ORDER=%s: expected forward or reverse", order);
    }
    {
        std::lock_guard<std::mutex> hold(sched_lock);
        if (!sched && !(sched = nr_emu_sched_new(0))) return nr_fail(e, "CUDA emulator: out of memory");
    }
    emu_ctx *c = new (std::nothrow) emu_ctx();
    if (!c) return nr_fail(e, "CUDA emulator: out of memory");
    c->total = default_total_memory();
    c->reverse = reverse;
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "netc CUDA emulator");
    info->major = 9;
    info->minor = 0;
    info->sm_count = 2; /* launchers size grids by SMs: keep emulated grids small */
    info->total_memory = c->total;
    info->free_memory = c->total;
    info->emulated = 1;
    *ctx = c;
    return 0;
}

static void emu_close(void *ctx)
{
    emu_ctx *c = C(ctx);
    if (!c) return;
    for (auto &a : c->allocs) free((void *)a.first);
    for (auto &a : c->host_allocs) free((void *)a.first);
    delete c->capture;
    delete c;
}

/* ---- modules ------------------------------------------------------------ */

/* This shared object, for dlsym of the built-in kernels. */
static void *self_handle(nr_error *e)
{
    Dl_info di;
    if (!dladdr((void *)&emu_open, &di) || !di.dli_fname)
        return nr_fail(e, "CUDA emulator: cannot find its own shared object"), nullptr;
    void *h = dlopen(di.dli_fname, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (!h) nr_fail(e, "CUDA emulator: %s: %s", di.dli_fname, dlerror());
    return h;
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && !strcmp(s + n - t, tail);
}

static void emu_unload_module(void *ctx, nr_dev_module *mod)
{
    (void)ctx;
    if (!mod) return;
    for (kernel *k : mod->kernels) delete k;
    if (mod->handle) dlclose(mod->handle);
    delete mod;
}

static int find_kernel(void *handle, const char *module, const char *name, nr_dev_module *mod, nr_error *e)
{
    std::string sym = std::string(name) + "__emu";
    void *run = dlsym(handle, sym.c_str());
    void *params = dlsym(handle, (sym + "_params").c_str());
    if (!run || !params) return nr_fail(e, "CUDA emulator: module %s has no kernel %s (no symbol %s)", module, name, sym.c_str());
    kernel *k = new (std::nothrow) kernel();
    if (!k) return nr_fail(e, "CUDA emulator: out of memory");
    k->magic = KERNEL_MAGIC;
    k->name = name;
    k->run = reinterpret_cast<void (*)(void **)>(run);
    k->params = reinterpret_cast<nr_emu_params (*)(void)>(params)();
    mod->kernels.push_back(k);
    return 0;
}

static int emu_load_module(void *ctx, const char *source, const char *name, const char *const *names, int count,
                           nr_dev_module **out, void **fns, char *note, size_t note_cap, nr_error *e)
{
    (void)ctx;
    (void)source; /* compiled in at build time, or in the module named */
    bool external = ends_with(name, ".so");
    void *handle = external ? dlopen(name, RTLD_NOW | RTLD_LOCAL) : self_handle(e);
    if (!handle) return external ? nr_fail(e, "CUDA emulator: cannot load module %s: %s", name, dlerror()) : -1;
    nr_dev_module *mod = new (std::nothrow) nr_dev_module();
    if (!mod) {
        dlclose(handle);
        return nr_fail(e, "CUDA emulator: out of memory");
    }
    mod->handle = handle;
    auto bind = reinterpret_cast<int (*)(nr_emu_builtins *, int)>(dlsym(handle, "nr_emu_module_bind"));
    if (!bind || bind(nr_emu_sched_builtins(sched), NR_EMU_BUILTINS_ABI)) {
        emu_unload_module(ctx, mod);
        return nr_fail(e, "CUDA emulator: %s is not a module built with this emulator's shim.h (NR_EMU_MODULE)", name);
    }
    for (int i = 0; i < count; i++) {
        if (find_kernel(handle, name, names[i], mod, e)) {
            emu_unload_module(ctx, mod);
            return -1;
        }
        fns[i] = mod->kernels.back();
    }
    if (note && note_cap)
        snprintf(note, note_cap, external ? "emulated: kernels from %s" : "emulated: kernels compiled into the emulator (%s)",
                 name);
    *out = mod;
    return 0;
}

/* ---- memory ---------------------------------------------------------------- */

static int emu_alloc(void *ctx, nr_dptr *p, size_t bytes, nr_error *e)
{
    emu_ctx *c = C(ctx);
    if (take_deferred(c, e)) return -1;
    if (bytes > c->total - c->used)
        return nr_fail(e, "CUDA emulator: out of device memory: asked %zu bytes, %zu of %zu free", bytes,
                       c->total - c->used, c->total);
    void *m = nullptr;
    /* cuMemAlloc's alignment; the exact size, so that AddressSanitizer sees overruns */
    if (posix_memalign(&m, 256, bytes ? bytes : 1))
        return nr_fail(e, "CUDA emulator: out of host memory for %zu bytes of device memory", bytes);
    memset(m, 0xff, bytes);
    try {
        c->allocs.emplace((uintptr_t)m, bytes);
    } catch (...) {
        free(m);
        return nr_fail(e, "CUDA emulator: out of memory");
    }
    c->used += bytes;
    *p = (nr_dptr)(uintptr_t)m;
    return 0;
}

static void emu_free(void *ctx, nr_dptr p)
{
    emu_ctx *c = C(ctx);
    if (!p) return;
    auto it = c->allocs.find((uintptr_t)p);
    if (it == c->allocs.end()) {
        char buf[160];
        snprintf(buf, sizeof buf, "CUDA emulator: free of 0x%llx, which is not a device allocation (freed twice?)",
                 (unsigned long long)p);
        defer(c, buf);
        return;
    }
    c->used -= it->second;
    free((void *)it->first);
    c->allocs.erase(it);
}

static int emu_host_alloc(void *ctx, void **p, size_t bytes, nr_error *e)
{
    emu_ctx *c = C(ctx);
    *p = malloc(bytes ? bytes : 1);
    if (!*p) return nr_fail(e, "CUDA emulator: out of memory for %zu bytes of page-locked memory", bytes);
    try {
        c->host_allocs.emplace((uintptr_t)*p, bytes);
    } catch (...) {
        free(*p);
        return nr_fail(e, "CUDA emulator: out of memory");
    }
    return 0;
}

static void emu_host_free(void *ctx, void *p)
{
    emu_ctx *c = C(ctx);
    if (!p) return;
    auto it = c->host_allocs.find((uintptr_t)p);
    if (it == c->host_allocs.end()) {
        char buf[160];
        snprintf(buf, sizeof buf, "CUDA emulator: host_free of %p, which is not from host_alloc (freed twice?)", p);
        defer(c, buf);
        return;
    }
    uintptr_t start = it->first, end = start + it->second;
    for (size_t i = 0; i < c->pending.size(); i++) {
        uintptr_t src = (uintptr_t)c->pending[i].src;
        if (src < start || src >= end) continue;
        char buf[200];
        snprintf(buf, sizeof buf, "CUDA emulator: host_free of %p while an upload from it is queued (sync first)", p);
        defer(c, buf);
        c->pending.erase(c->pending.begin() + (std::ptrdiff_t)i--);
    }
    c->host_allocs.erase(it);
    free(p);
}

/* From host_alloc? Only those copies are asynchronous in CUDA: from pageable
 * memory, cuMemcpyHtoDAsync returns once the source has been staged. */
static bool is_page_locked(const emu_ctx *c, const void *p)
{
    auto it = c->host_allocs.upper_bound((uintptr_t)p);
    if (it == c->host_allocs.begin()) return false;
    --it;
    return (uintptr_t)p < it->first + it->second;
}

/* A quick 64-bit hash of a buffer (a word at a time). */
static uint64_t hash_bytes(const void *p, size_t bytes)
{
    const unsigned char *b = static_cast<const unsigned char *>(p);
    uint64_t h = 0x9e3779b97f4a7c15ull ^ bytes;
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    for (; i < bytes; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* The stream is passed (sync, download): every upload's source must still
 * hold what was copied. The emulator copies at once, so a source changed
 * before this point would have gone to a real GPU changed. */
static int check_pending(emu_ctx *c, nr_error *e)
{
    int rc = 0;
    for (const pending_upload &u : c->pending)
        if (!rc && hash_bytes(u.src, u.bytes) != u.hash)
            rc = nr_fail(e, "CUDA emulator: the host buffer %p (%zu bytes) uploaded to 0x%llx changed before a sync "
                            "or download: on a GPU the copy may read the new contents (keep the buffer until the stream "
                            "has passed the copy)", u.src, u.bytes, (unsigned long long)u.dst);
    c->pending.clear();
    return rc;
}

static int not_while_capturing(emu_ctx *c, const char *what, nr_error *e)
{
    if (take_deferred(c, e)) return -1;
    if (c->capturing)
        return nr_fail(e, "CUDA emulator: %s while capturing a graph (CUDA refuses it: stream capture unsupported)", what);
    return 0;
}

static int emu_upload(void *ctx, nr_dptr dst, const void *src, size_t bytes, nr_error *e)
{
    emu_ctx *c = C(ctx);
    if (not_while_capturing(c, "upload", e)) return -1;
    if (!bytes) return 0;
    if (check_range(c, "upload", dst, bytes, e)) return -1;
    memcpy((void *)(uintptr_t)dst, src, bytes);
    if (!is_page_locked(c, src)) return 0;
    try {
        c->pending.push_back({ src, bytes, dst, hash_bytes(src, bytes) });
    } catch (...) {
        return nr_fail(e, "CUDA emulator: out of memory");
    }
    return 0;
}

static int emu_download(void *ctx, void *dst, nr_dptr src, size_t bytes, nr_error *e)
{
    emu_ctx *c = C(ctx);
    if (not_while_capturing(c, "download", e) || check_pending(c, e)) return -1;
    if (!bytes) return 0;
    if (check_range(c, "download", src, bytes, e)) return -1;
    memcpy(dst, (const void *)(uintptr_t)src, bytes);
    return 0;
}

static int emu_sync(void *ctx, nr_error *e)
{
    emu_ctx *c = C(ctx);
    return not_while_capturing(c, "sync", e) || check_pending(c, e) ? -1 : 0;
}

/* ---- operations that graphs record ---------------------------------------- */

static int run_fill(emu_ctx *c, nr_dptr p, uint32_t bits, size_t count, nr_error *e)
{
    if (!count) return 0;
    if (count > SIZE_MAX / 4) return nr_fail(e, "CUDA emulator: fill32 of %zu words", count);
    if (check_range(c, "fill32", p, count * 4, e)) return -1;
    uint32_t *w = (uint32_t *)(uintptr_t)p;
    for (size_t i = 0; i < count; i++) w[i] = bits;
    return 0;
}

static int run_copy(emu_ctx *c, nr_dptr dst, nr_dptr src, size_t bytes, nr_error *e)
{
    if (!bytes) return 0;
    if (check_range(c, "copy (destination)", dst, bytes, e) || check_range(c, "copy (source)", src, bytes, e)) return -1;
    if (dst < src + bytes && src < dst + bytes)
        return nr_fail(e, "CUDA emulator: copy of %zu bytes between overlapping ranges 0x%llx and 0x%llx", bytes,
                       (unsigned long long)dst, (unsigned long long)src);
    memcpy((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, bytes);
    return 0;
}

/* Bytes a column-major rows x cols matrix with leading dimension ld spans. */
static size_t matrix_bytes(int rows, int cols, int ld)
{
    return ((size_t)ld * (size_t)(cols - 1) + (size_t)rows) * sizeof(float);
}

static int run_sgemm(emu_ctx *c, const sgemm_call &g, nr_error *e)
{
    if (g.m < 0 || g.n < 0 || g.k < 0)
        return nr_fail(e, "CUDA emulator: sgemm with m=%d n=%d k=%d", g.m, g.n, g.k);
    int a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;
    int b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;
    /* cuBLAS: CUBLAS_STATUS_INVALID_VALUE */
    if (g.lda < (a_rows > 1 ? a_rows : 1) || g.ldb < (b_rows > 1 ? b_rows : 1) || g.ldc < (g.m > 1 ? g.m : 1))
        return nr_fail(e, "CUDA emulator: sgemm m=%d n=%d k=%d%s%s with lda=%d ldb=%d ldc=%d: a leading dimension "
                          "is smaller than its matrix's rows", g.m, g.n, g.k, g.trans_a ? " A^T" : "",
                       g.trans_b ? " B^T" : "", g.lda, g.ldb, g.ldc);
    if (!g.m || !g.n) return 0;
    if (check_range(c, "sgemm C", g.C, matrix_bytes(g.m, g.n, g.ldc), e)) return -1;
    if (g.k && (check_range(c, "sgemm A", g.A, matrix_bytes(a_rows, a_cols, g.lda), e) ||
                check_range(c, "sgemm B", g.B, matrix_bytes(b_rows, b_cols, g.ldb), e)))
        return -1;
    cblas_sgemm(CblasColMajor, g.trans_a ? CblasTrans : CblasNoTrans, g.trans_b ? CblasTrans : CblasNoTrans, g.m,
                g.n, g.k, g.alpha, (const float *)(uintptr_t)g.A, g.lda, (const float *)(uintptr_t)g.B, g.ldb, g.beta,
                (float *)(uintptr_t)g.C, g.ldc);
    return 0;
}

static int run_launch(emu_ctx *c, const kernel *k, unsigned grid, unsigned block, void **args, nr_error *e)
{
    std::lock_guard<std::mutex> hold(sched_lock);
    return nr_emu_sched_run(sched, k->name.c_str(), k->run, args, grid, block, c->reverse, e);
}

static int check_kernel(const void *fn, nr_error *e)
{
    if (!fn || static_cast<const kernel *>(fn)->magic != KERNEL_MAGIC)
        return nr_fail(e, "CUDA emulator: launch of %p, which is no kernel from load_module", fn);
    return 0;
}

static int emu_launch(void *ctx, void *fn, unsigned grid, unsigned block, void **args, nr_error *e)
{
    emu_ctx *c = C(ctx);
    if (take_deferred(c, e) || check_kernel(fn, e)) return -1;
    const kernel *k = static_cast<const kernel *>(fn);
    if (!c->capturing) return run_launch(c, k, grid, block, args, e);
    if (grid == 0 || block == 0 || block > NR_EMU_MAX_BLOCK)
        return nr_fail(e, "CUDA emulator: kernel %s captured on %u blocks of %u threads", k->name.c_str(), grid, block);
    node n{};
    n.kind = NODE_LAUNCH;
    n.k = k;
    n.grid = grid;
    n.block = block;
    size_t off = 0;
    for (int i = 0; i < k->params.count; i++) {
        off = (off + 15) & ~(size_t)15; /* any parameter type's alignment */
        n.arg_offsets.push_back(off);
        off += k->params.sizes[i];
    }
    n.arg_bytes.resize(off);
    for (int i = 0; i < k->params.count; i++) memcpy(n.arg_bytes.data() + n.arg_offsets[i], args[i], k->params.sizes[i]);
    c->capture->nodes.push_back(std::move(n));
    return 0;
}

static int emu_fill32(void *ctx, nr_dptr p, uint32_t bits, size_t count, nr_error *e)
{
    emu_ctx *c = C(ctx);
    if (take_deferred(c, e)) return -1;
    if (!c->capturing) return run_fill(c, p, bits, count, e);
    node n{};
    n.kind = NODE_FILL;
    n.dst = p;
    n.bits = bits;
    n.bytes = count;
    c->capture->nodes.push_back(std::move(n));
    return 0;
}

static int emu_copy(void *ctx, nr_dptr dst, nr_dptr src, size_t bytes, nr_error *e)
{
    emu_ctx *c = C(ctx);
    if (take_deferred(c, e)) return -1;
    if (!c->capturing) return run_copy(c, dst, src, bytes, e);
    node n{};
    n.kind = NODE_COPY;
    n.dst = dst;
    n.src = src;
    n.bytes = bytes;
    c->capture->nodes.push_back(std::move(n));
    return 0;
}

static int emu_sgemm(void *ctx, int trans_a, int trans_b, int m, int n, int k, float alpha, nr_dptr A, int lda,
                     nr_dptr B, int ldb, float beta, nr_dptr Cm, int ldc, nr_error *e)
{
    emu_ctx *c = C(ctx);
    if (take_deferred(c, e)) return -1;
    sgemm_call g = { trans_a, trans_b, m, n, k, alpha, beta, A, B, Cm, lda, ldb, ldc };
    if (!c->capturing) return run_sgemm(c, g, e);
    node nd{};
    nd.kind = NODE_SGEMM;
    nd.gemm = g;
    c->capture->nodes.push_back(std::move(nd));
    return 0;
}

/* ---- graphs ------------------------------------------------------------------ */

static int emu_graph_begin(void *ctx, nr_error *e)
{
    emu_ctx *c = C(ctx);
    if (take_deferred(c, e)) return -1;
    if (c->capturing) return nr_fail(e, "CUDA emulator: graph_begin while already capturing");
    c->capture = new (std::nothrow) nr_dev_graph();
    if (!c->capture) return nr_fail(e, "CUDA emulator: out of memory");
    c->capturing = true;
    return 0;
}

static int emu_graph_end(void *ctx, nr_dev_graph **g, nr_error *e)
{
    emu_ctx *c = C(ctx);
    if (!c->capturing) return nr_fail(e, "CUDA emulator: graph_end without graph_begin");
    c->capturing = false;
    *g = c->capture;
    c->capture = nullptr;
    return take_deferred(c, e);
}

static int replay(emu_ctx *c, const node &n, nr_error *e)
{
    switch (n.kind) {
    case NODE_FILL:
        return run_fill(c, n.dst, n.bits, n.bytes, e);
    case NODE_COPY:
        return run_copy(c, n.dst, n.src, n.bytes, e);
    case NODE_SGEMM:
        return run_sgemm(c, n.gemm, e);
    case NODE_LAUNCH:
        break;
    }
    /* the values recorded at capture (each thread copies them into its parameters) */
    std::vector<void *> args(n.arg_offsets.size());
    unsigned char *values = const_cast<unsigned char *>(n.arg_bytes.data());
    for (size_t i = 0; i < args.size(); i++) args[i] = values + n.arg_offsets[i];
    return run_launch(c, n.k, n.grid, n.block, args.data(), e);
}

static int emu_graph_launch(void *ctx, nr_dev_graph *g, nr_error *e)
{
    emu_ctx *c = C(ctx);
    if (not_while_capturing(c, "graph_launch", e)) return -1;
    for (const node &n : g->nodes)
        if (replay(c, n, e)) return -1;
    return 0;
}

static void emu_graph_free(void *ctx, nr_dev_graph *g)
{
    (void)ctx;
    delete g;
}

static const nr_dev_ops emu_ops = {
    NR_DEV_ABI,         "emu",          emu_open,      emu_close,      emu_load_module, emu_unload_module,
    emu_alloc,          emu_free,       emu_host_alloc, emu_host_free, emu_upload,      emu_download,
    emu_fill32,         emu_copy,       emu_sync,      emu_launch,     emu_sgemm,       emu_graph_begin,
    emu_graph_end,      emu_graph_launch, emu_graph_free,
};

NR_EMU_EXPORT const nr_dev_ops *nr_emu_dev_ops(void)
{
    return &emu_ops;
}
