/* The CUDA kernels compile with NVRTC for sm_80 and sm_90, which needs no
 * GPU and no driver: one TAP line per architecture, with ptxas' register
 * and spill report of every kernel as comments (a spill fails the test),
 * then the NVRTC error path and the binary cache.
 *
 * Plain C with TAP output (no CUnit), so the same program runs on the GPU
 * machine too (tests/gpu/run.sh). */
#include "../runtime/cuda/kernels.h"
#include "../runtime/cuda/nvrtc.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, test_number;

static void tap(int ok, const char *what)
{
    printf("%s %d - %s\n", ok ? "ok" : "not ok", ++test_number, what);
    if (!ok) failures++;
}

/* Registers and spills of kernel `name` from ptxas' verbose log: the lines
 * "Function properties for NAME", "... N bytes spill stores, M bytes spill
 * loads" and "Used R registers". -1 when absent. */
static void kernel_resources(const char *log, const char *name, int *regs, int *spill_st, int *spill_ld)
{
    char key[160];
    *regs = *spill_st = *spill_ld = -1;
    snprintf(key, sizeof key, "Function properties for %s\n", name);
    const char *at = strstr(log, key);
    if (!at) return;
    at += strlen(key);
    const char *st = strstr(at, "bytes spill stores");
    const char *used = strstr(at, "Used ");
    if (st) {
        const char *line = st;
        while (line > at && line[-1] != ',') line--;
        *spill_st = atoi(line);
        const char *ld = strstr(st, ",");
        if (ld) *spill_ld = atoi(ld + 1);
    }
    if (used) *regs = atoi(used + 5);
}

static void compile_for(int major, int minor)
{
    nr_nvrtc_output out;
    nr_error e = { "" };
    char what[128];
    int rc = nr_nvrtc_compile(nr_cuda_kernel_source(), "netc_kernels.cu", major, minor, 1, &out, &e);
    snprintf(what, sizeof what, "kernels compile for sm_%d%d (%.2f s)", major, minor, out.seconds);
    int ok = rc == 0 && out.image && out.size > 0 && !out.ptx;
    if (rc != 0) printf("# %s\n", e.msg);
    int missing = 0, spilled = 0;
    for (int k = 0; ok && k < NR_K_COUNT; k++) {
        int regs, st, ld;
        kernel_resources(out.log ? out.log : "", nr_cuda_kernel_names[k], &regs, &st, &ld);
        if (regs < 0) {
            printf("# %s: no ptxas report (is it in the source?)\n", nr_cuda_kernel_names[k]);
            missing++;
            continue;
        }
        printf("# sm_%d%d %-26s %3d registers, %d bytes spill stores, %d bytes spill loads\n", major, minor,
               nr_cuda_kernel_names[k], regs, st, ld);
        if (st > 0 || ld > 0) spilled++;
    }
    if (missing || spilled) printf("# %d kernels without a report, %d spilling\n", missing, spilled);
    tap(ok && !missing && !spilled, what);
    nr_nvrtc_output_free(&out);
}

static void compile_error_reports_log(void)
{
    const char *bad = "extern \"C\" __global__ void broken(float *x)\n{\n    x[0] = undeclared_name;\n}\n";
    nr_nvrtc_output out;
    nr_error e = { "" };
    int rc = nr_nvrtc_compile(bad, "broken_kernels.cu", 8, 0, 0, &out, &e);
    int ok = rc == -1 && strstr(e.msg, "broken_kernels.cu") && strstr(e.msg, "sm_80") &&
             strstr(e.msg, "undeclared_name") && out.log && strstr(out.log, "undeclared_name");
    if (!ok) printf("# message was: %s\n", e.msg);
    tap(ok, "a compile error returns NVRTC's log with the source's name and the architecture");
    nr_nvrtc_output_free(&out);
}

static void fnv_known_values(void)
{
    int ok = nr_fnv1a64(NR_FNV_OFFSET, "", 0) == 0xcbf29ce484222325ull &&
             nr_fnv1a64(NR_FNV_OFFSET, "a", 1) == 0xaf63dc4c8601ec8cull &&
             nr_fnv1a64(NR_FNV_OFFSET, "foobar", 6) == 0x85944171f73967e8ull;
    tap(ok, "FNV-1a 64 gives the reference values");
}

/* The path of the one entry in dir (the cache holds exactly one here). */
static int only_file_in(const char *dir, char *path, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int files = 0;
    for (struct dirent *ent; (ent = readdir(d));) {
        if (ent->d_name[0] == '.') continue;
        snprintf(path, cap, "%s/%s", dir, ent->d_name);
        files++;
    }
    closedir(d);
    return files == 1 ? 0 : -1;
}

/* First call compiles and stores, the second reads the same bytes back, a
 * damaged file is compiled again and replaced. */
static void cache_round_trip(void)
{
    char tmpl[] = "/tmp/netc_nvrtc_cache_XXXXXX", dir[256], file[1024], note[256];
    if (!mkdtemp(tmpl)) {
        tap(0, "binary cache (mkdtemp failed)");
        return;
    }
    setenv("XDG_CACHE_HOME", tmpl, 1);
    snprintf(dir, sizeof dir, "%s/netc", tmpl);
    nr_nvrtc_output a, b, c;
    nr_error e = { "" };
    const char *src = nr_cuda_kernel_source();
    int ok = nr_nvrtc_compile_cached(src, "k.cu", 8, 0, &a, note, sizeof note, &e) == 0 && !a.from_cache &&
             !note[0];
    ok = ok && nr_nvrtc_compile_cached(src, "k.cu", 8, 0, &b, note, sizeof note, &e) == 0 && b.from_cache &&
         b.size == a.size && memcmp(a.image, b.image, a.size) == 0;
    printf("# cold compile %.3f s, from the cache %.4f s\n", a.seconds, b.seconds);
    if (ok && only_file_in(dir, file, sizeof file) == 0) {
        FILE *f = fopen(file, "r+b");
        /* one byte of the image (past the 40-byte header) changed, size kept */
        int byte = f && fseek(f, 100, SEEK_SET) == 0 ? fgetc(f) : EOF;
        ok = byte != EOF && fseek(f, 100, SEEK_SET) == 0 && fputc(byte ^ 0x5a, f) != EOF;
        if (f && fclose(f) != 0) ok = 0;
        ok = ok && nr_nvrtc_compile_cached(src, "k.cu", 8, 0, &c, note, sizeof note, &e) == 0 && !c.from_cache &&
             c.size == a.size;
        nr_nvrtc_output_free(&c);
        nr_nvrtc_output d;
        ok = ok && nr_nvrtc_compile_cached(src, "k.cu", 8, 0, &d, note, sizeof note, &e) == 0 && d.from_cache;
        nr_nvrtc_output_free(&d);
    } else {
        ok = 0;
    }
    if (!ok) printf("# %s %s\n", e.msg, note);
    tap(ok, "the binary cache stores, reads back, and replaces a damaged entry");
    nr_nvrtc_output_free(&a);
    nr_nvrtc_output_free(&b);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
    if (system(cmd) != 0) printf("# could not remove %s\n", tmpl);
}

int main(void)
{
    int v = nr_nvrtc_version();
    printf("1..5\n# NVRTC %d.%d\n", v / 1000, v % 1000 / 10);
    compile_for(8, 0);
    compile_for(9, 0);
    compile_error_reports_log();
    fnv_known_values();
    cache_round_trip();
    return failures ? 1 : 0;
}
