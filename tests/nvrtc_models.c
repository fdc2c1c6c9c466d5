/* Compiles one CUDA source (netc --emit-cuda's output, a file or '-') with
 * NVRTC for sm_80 and sm_90, which needs no GPU: one TAP line per
 * architecture, with the compile time and ptxas' register and spill report
 * of every kernel as comments. A spill or a compile error fails the line.
 * Used by tests/nvrtc_models.sh; prints no plan line (the script does). */
#include "../runtime/cuda/nvrtc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0;) {
        len += got;
        if (cap - len < 2) {
            char *bigger = realloc(buf, cap *= 2);
            if (!bigger) free(buf);
            buf = bigger;
        }
    }
    if (f != stdin) fclose(f);
    if (buf) buf[len] = 0;
    return buf;
}

/* Walks ptxas' "Function properties for NAME" blocks: registers and spills of each kernel. */
static int report(const char *log, int arch, int *kernels, int *max_regs)
{
    int spilling = 0;
    const char *key = "Function properties for ";
    for (const char *at = strstr(log, key); at; at = strstr(at, key)) {
        at += strlen(key);
        const char *eol = strchr(at, '\n');
        if (!eol) break;
        char name[160];
        snprintf(name, sizeof name, "%.*s", (int)(eol - at) < 159 ? (int)(eol - at) : 159, at);
        const char *next = strstr(eol, key);
        const char *st = strstr(eol, "bytes spill stores"), *used = strstr(eol, "Used ");
        if (!st || !used || (next && used > next)) continue;
        const char *line = st;
        while (line > eol && line[-1] != ',' && line[-1] != '\n') line--;
        int spill_st = atoi(line), spill_ld = atoi(strchr(st, ',') ? strchr(st, ',') + 1 : st);
        int regs = atoi(used + 5);
        printf("# sm_%d %-40s %3d registers, %d bytes spill stores, %d bytes spill loads\n", arch, name, regs, spill_st,
               spill_ld);
        (*kernels)++;
        if (regs > *max_regs) *max_regs = regs;
        if (spill_st > 0 || spill_ld > 0) spilling++;
    }
    return spilling;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: nvrtc_models SOURCE.cu NAME\n");
        return 2;
    }
    char *src = slurp(argv[1]);
    if (!src) {
        printf("not ok - cannot read %s\n", argv[1]);
        return 1;
    }
    int failed = 0;
    for (int major = 8; major <= 9; major++) {
        nr_nvrtc_output out;
        nr_error e = { "" };
        int rc = nr_nvrtc_compile(src, argv[2], major, 0, 1, &out, &e);
        int kernels = 0, max_regs = 0, spilling = 0;
        if (rc == 0) spilling = report(out.log ? out.log : "", major * 10, &kernels, &max_regs);
        else printf("# %s\n", e.msg);
        int ok = rc == 0 && !out.ptx && kernels > 0 && spilling == 0;
        printf("%s - %s compiles for sm_%d0 (%.2f s, %d kernels, at most %d registers, %d spilling)\n",
               ok ? "ok" : "not ok", argv[2], major, out.seconds, kernels, max_regs, spilling);
        failed += !ok;
        nr_nvrtc_output_free(&out);
    }
    free(src);
    return failed ? 1 : 0;
}
