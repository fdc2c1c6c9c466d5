/* Fuzz harness for the netc front end: every input is parsed, checked
 * (sema, sweep points, shape pass) and its diagnostics rendered, caret
 * lines included, to /dev/null, as are the shape table and the IR dump of a
 * model without errors. Leading "#D NAME=VALUE" lines are also
 * passed to frontend_define, like netc's -D.
 *
 * With libFuzzer (tests/fuzz/run.sh):
 *     clang -fsanitize=fuzzer,address,undefined ... fuzz_frontend.c
 * Without it, as a regression test over the corpus (make check):
 *     cc -DFUZZ_STANDALONE_MAIN ... fuzz_frontend.c
 *     ./fuzz_corpus FILE-OR-DIRECTORY...
 * which runs every named file, and every file in each named directory. */
#include "diag.h"
#include "frontend.h"
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

/* Leading lines "#D NAME=VALUE" (comments to the language) are also given to
 * frontend_define, as netc's -D NAME=VALUE would be, so overrides are fuzzed. */
static void define_overrides(frontend *fe, const uint8_t *data, size_t size)
{
    size_t i = 0;
    while (size - i >= 3 && data[i] == '#' && data[i + 1] == 'D' && data[i + 2] == ' ') {
        size_t start = i + 3, end = start;
        while (end < size && data[end] != '\n') end++;
        char *text = malloc(end - start + 1);
        if (!text) return;
        memcpy(text, data + start, end - start);
        text[end - start] = '\0';
        frontend_define(fe, text);
        free(text);
        i = end < size ? end + 1 : end;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!devnull) devnull = fopen("/dev/null", "w");
    frontend fe;
    frontend_init(&fe);
    define_overrides(&fe, data, size);
    int failed = frontend_run(&fe, "fuzz.net", (const char *)data, size);
    if (devnull) {
        diag_render_all(&fe.dl, devnull, 0);
        diag_render_all(&fe.dl, devnull, 1);
        /* what netc --print-shapes and --emit-ir print for a valid model */
        if (!failed && fe.prog) {
            ir_print_shapes(fe.prog, devnull);
            ir_dump(fe.prog, devnull);
        }
    }
    frontend_free(&fe);
    return 0;
}

#ifdef FUZZ_STANDALONE_MAIN
#include <dirent.h>
#include <sys/stat.h>

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    size_t cap = 4096, len = 0, n;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        fprintf(stderr, "%s: out of memory\n", path);
        return 1;
    }
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            unsigned char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                fclose(f);
                fprintf(stderr, "%s: out of memory\n", path);
                return 1;
            }
            buf = b;
            cap *= 2;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        fprintf(stderr, "%s: read error\n", path);
        return 1;
    }
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file directly in dir, in name order. */
static int run_dir(const char *dir, int *count)
{
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return 1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int failed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) { failed = 1; break; }
            names = nn;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        names[n] = malloc(len);
        if (!names[n]) { failed = 1; break; }
        snprintf(names[n], len, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
            failed |= run_file(names[i]);
            ++*count;
        }
        free(names[i]);
    }
    free(names);
    return failed;
}

int main(int argc, char **argv)
{
    int failed = 0, count = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE-OR-DIRECTORY...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            failed = 1;
        } else if (S_ISDIR(st.st_mode)) {
            failed |= run_dir(argv[i], &count);
        } else {
            failed |= run_file(argv[i]);
            count++;
        }
    }
    if (devnull) fclose(devnull);
    devnull = NULL;
    fprintf(stderr, "fuzz_frontend: ran %d input%s\n", count, count == 1 ? "" : "s");
    return failed;
}
#endif
