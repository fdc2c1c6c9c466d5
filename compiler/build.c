#include "config.h"
#include "build.h"
#include "util.h"
#include <errno.h>
#include <libgen.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifndef NETC_SRCDIR
#define NETC_SRCDIR "."
#endif
#ifndef NETC_PKGLIBDIR
#define NETC_PKGLIBDIR "/usr/local/lib/netc"
#endif
#ifndef NETC_PKGINCLUDEDIR
#define NETC_PKGINCLUDEDIR "/usr/local/include/netc"
#endif

typedef struct runtime_paths {
    char lib[8192];            /* libnetrt.a */
    char include[8192];        /* the directory holding netrt.h */
} runtime_paths;

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int join_exists(char *out, size_t n, const char *dir, const char *file)
{
    snprintf(out, n, "%s/%s", dir, file);
    return is_file(out);
}

/* The runtime next to a netc that runs from its build tree (compiler/netc
 * beside runtime/libnetrt.a), else the installed one. */
static int find_runtime(runtime_paths *rp)
{
    char exe[4096], probe[8192];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *dir = dirname(exe);
        char rtdir[4200];
        snprintf(rtdir, sizeof rtdir, "%s/../runtime", dir);
        if (join_exists(rp->lib, sizeof rp->lib, rtdir, "libnetrt.a")) {
            if (join_exists(probe, sizeof probe, rtdir, "netrt.h")) snprintf(rp->include, sizeof rp->include, "%s", rtdir);
            else snprintf(rp->include, sizeof rp->include, "%s/runtime", NETC_SRCDIR);
            return 0;
        }
    }
    if (join_exists(rp->lib, sizeof rp->lib, NETC_PKGLIBDIR, "libnetrt.a") &&
        join_exists(probe, sizeof probe, NETC_PKGINCLUDEDIR, "netrt.h")) {
        snprintf(rp->include, sizeof rp->include, "%s", NETC_PKGINCLUDEDIR);
        return 0;
    }
    fprintf(stderr, "netc: cannot find the runtime library libnetrt.a: not beside this netc (%s/../runtime) "
                    "nor installed (%s)\n", len > 0 ? exe : "?", NETC_PKGLIBDIR);
    return -1;
}

typedef struct argv_list {
    char **v;
    int n, cap;
} argv_list;

static void arg_add(argv_list *a, const char *s)
{
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? a->cap * 2 : 32;
        a->v = xrealloc(a->v, (size_t)a->cap * sizeof *a->v);
    }
    a->v[a->n++] = xstrdup(s);
    a->v[a->n] = NULL;
}

/* Adds the blank-separated words of s (flags from configure or $CC). */
static void arg_add_words(argv_list *a, const char *s)
{
    char *copy = xstrdup(s), *save = NULL;
    for (char *w = strtok_r(copy, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) arg_add(a, w);
    free(copy);
}

static void arg_free(argv_list *a)
{
    for (int i = 0; i < a->n; i++) free(a->v[i]);
    free(a->v);
}

static int run_command(argv_list *a, int verbose)
{
    if (verbose) {
        for (int i = 0; i < a->n; i++) fprintf(stderr, "%s%s", i ? " " : "", a->v[i]);
        fputc('\n', stderr);
    }
    pid_t pid;
    int rc = posix_spawnp(&pid, a->v[0], NULL, NULL, a->v, environ);
    if (rc) {
        fprintf(stderr, "netc: cannot run the C compiler '%s': %s\n", a->v[0], strerror(rc));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "netc: waiting for the C compiler: %s\n", strerror(errno));
            return -1;
        }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    fprintf(stderr, "netc: the C compiler failed (");
    for (int i = 0; i < a->n; i++) fprintf(stderr, "%s%s", i ? " " : "", a->v[i]);
    fprintf(stderr, ")\n");
    return -1;
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "netc: cannot write '%s': %s\n", path, strerror(errno));
        return -1;
    }
    int bad = fputs(text, f) < 0;
    bad |= fclose(f) != 0;
    if (bad) fprintf(stderr, "netc: cannot write '%s': %s\n", path, strerror(errno));
    return bad ? -1 : 0;
}

int build_program(const char *c_text, const build_opts *opts)
{
    runtime_paths rp;
    if (find_runtime(&rp)) return -1;
    /* The generated C goes beside the output when kept, else into a private temporary directory. */
    char cpath[4200];
    int made_tmp = 0;
    if (opts->keep_c) snprintf(cpath, sizeof cpath, "%s.c", opts->output);
    else {
        const char *t = getenv("TMPDIR");
        char templ[4096];
        snprintf(templ, sizeof templ, "%s/netc-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(templ)) {
            fprintf(stderr, "netc: cannot make a temporary directory '%s': %s\n", templ, strerror(errno));
            return -1;
        }
        snprintf(cpath, sizeof cpath, "%s/model.c", templ);
        made_tmp = 1;
    }
    int rc = write_text(cpath, c_text);
    if (!rc) {
        argv_list a = { 0 };
        const char *cc = getenv("CC");
        arg_add_words(&a, cc && *cc ? cc : NETC_CC);
        arg_add_words(&a, NETC_GEN_CFLAGS);
        arg_add(&a, "-I");
        arg_add(&a, rp.include);
        arg_add(&a, "-o");
        arg_add(&a, opts->output);
        arg_add(&a, cpath);
        arg_add(&a, rp.lib);
        arg_add_words(&a, NETRT_LIBS);
        arg_add_words(&a, NETC_GEN_LDFLAGS);
        rc = run_command(&a, opts->verbose);
        arg_free(&a);
    }
    if (made_tmp) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s", cpath);
        unlink(cpath);
        rmdir(dirname(dir));
    }
    return rc;
}
