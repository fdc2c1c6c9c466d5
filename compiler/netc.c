/* netc: the command-line driver. */
#include "config.h"
#include "build.h"
#include "emit_c.h"
#include "emit_cuda.h"
#include "frontend.h"
#include "util.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum action { ACT_NONE, ACT_CHECK, ACT_PRINT_SHAPES, ACT_EMIT_IR, ACT_EMIT_C, ACT_BUILD, ACT_EMIT_CUDA,
              ACT_PRINT_KERNELS };

static void usage(FILE *out)
{
    fputs("usage: netc [OPTIONS] FILE.net -o PROGRAM\n"
          "       netc --check|--print-shapes|--emit-ir|--emit-c [OPTIONS] FILE.net\n"
          "       netc --emit-cuda|--print-kernels [OPTIONS] FILE.net\n"
          "\n"
          "Compiles a model description into a program that trains and tests it\n"
          "(PROGRAM train, PROGRAM test --weights FILE, PROGRAM --help), or checks it.\n"
          "\n"
          "  -o PROGRAM           write the program (the C compiler is $CC, else the one\n"
          "                       netc was configured with)\n"
          "  -S, --emit-c         keep the generated C as PROGRAM.c; without -o, print it\n"
          "  -v                   print the C compiler's command line\n"
          "  --check              parse and check FILE; print only diagnostics\n"
          "  --print-shapes       print every layer's output shape and parameter count\n"
          "  --emit-ir            print the checked intermediate representation\n"
          "  --emit-cuda          print the model's CUDA kernels (the GPU backend's source)\n"
          "  --print-kernels      print the GPU fusion plan: each kernel and the layers it covers\n"
          "  -D NAME=VALUE        override a 'param' of the file (repeatable)\n"
          "  --sweep NAME=[V,...] a sweep instead of the file's (repeatable), e.g.\n"
          "                       --sweep 'lr=[0.001, 0.01]'; PROGRAM sweep runs it\n"
          "  -Werror              treat warnings as errors\n"
          "  --color=WHEN         colour diagnostics: auto (default), always, never\n"
          "  --max-errors=N       stop reporting after N errors (default 50, 0: no limit)\n"
          "  -h, --help           show this help\n"
          "  --version            show the version\n"
          "\n"
          "FILE may be '-' for standard input. Exit status: 0 when FILE is valid, 1 when\n"
          "it has errors, 2 for a command-line mistake. See netc(1) and netc.net(5).\n",
          out);
}

typedef struct cli {
    enum action action;
    const char *file;
    const char *output;
    int color;         /* -1: auto */
    int werror;
    int max_errors;
    int emit_c;        /* -S / --emit-c */
    int verbose;
    strbuf overrides;  /* the -D options as given, for the program's records */
    int malformed;     /* a -D or --sweep that does not parse: reported, exit status 2 */
} cli;

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "netc: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'netc --help' for more information.\n");
    return 2;
}

static int set_action(cli *c, enum action a, const char *flag)
{
    if (c->action != ACT_NONE && c->action != a)
        return usage_error("%s cannot be combined with another action", flag);
    c->action = a;
    return 0;
}

/* Returns 0, or an exit status for a command-line mistake (or -1 for --help/--version). */
static int parse_args(int argc, char **argv, cli *c, frontend *fe)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--check")) { if (set_action(c, ACT_CHECK, a)) return 2; }
        else if (!strcmp(a, "--print-shapes")) { if (set_action(c, ACT_PRINT_SHAPES, a)) return 2; }
        else if (!strcmp(a, "--emit-ir")) { if (set_action(c, ACT_EMIT_IR, a)) return 2; }
        else if (!strcmp(a, "--emit-cuda")) { if (set_action(c, ACT_EMIT_CUDA, a)) return 2; }
        else if (!strcmp(a, "--print-kernels")) { if (set_action(c, ACT_PRINT_KERNELS, a)) return 2; }
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return -1; }
        else if (!strcmp(a, "--version")) { printf("netc %s\n", PACKAGE_VERSION); return -1; }
        else if (!strcmp(a, "-Werror")) c->werror = 1;
        else if (!strcmp(a, "--color") || !strcmp(a, "--color=always")) c->color = 1;
        else if (!strcmp(a, "--color=never")) c->color = 0;
        else if (!strcmp(a, "--color=auto")) c->color = -1;
        else if (!strncmp(a, "--max-errors=", 13)) {
            char *end;
            long n = strtol(a + 13, &end, 10);
            if (*end || end == a + 13 || n < 0 || n > 1000000)
                return usage_error("--max-errors needs a count, got '%s'", a + 13);
            c->max_errors = (int)n;
        } else if (!strcmp(a, "-D") || !strncmp(a, "-D", 2)) {
            const char *def = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
            if (!def) return usage_error("%s needs NAME=VALUE", "-D");
            if (frontend_define(fe, def)) c->malformed = 1;
            sb_printf(&c->overrides, "%s-D %s", c->overrides.len ? " " : "", def);
        } else if (!strcmp(a, "-o")) {
            if (i + 1 >= argc) return usage_error("%s needs a file name", "-o");
            c->output = argv[++i];
            if (set_action(c, ACT_BUILD, a)) return 2;
        } else if (!strcmp(a, "--sweep") || !strncmp(a, "--sweep=", 8)) {
            const char *def = a[7] == '=' ? a + 8 : (i + 1 < argc ? argv[++i] : NULL);
            if (!def) return usage_error("%s needs NAME=[VALUE, ...]", "--sweep");
            if (frontend_sweep(fe, def)) c->malformed = 1;
        } else if (!strcmp(a, "-S") || !strcmp(a, "--emit-c")) {
            c->emit_c = 1;
        } else if (!strcmp(a, "-v")) {
            c->verbose = 1;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option '%s'", a);
        } else if (c->file) {
            return usage_error("only one input file, got a second: '%s'", a);
        } else {
            c->file = a;
        }
    }
    if (!c->file) return usage_error("%s", "no input file");
    if (c->emit_c && c->action != ACT_BUILD) {
        if (set_action(c, ACT_EMIT_C, "--emit-c")) return 2;
    }
    return 0;
}

static char *read_input(const char *path, size_t *len)
{
    if (strcmp(path, "-") == 0) {
        strbuf sb;
        sb_init(&sb);
        int ch;
        while ((ch = getchar()) != EOF) sb_putc(&sb, (char)ch);
        *len = sb.len;
        return sb_steal(&sb);
    }
    return read_file(path, len);
}

/* Every point of every sweep of the file, each lowered on its own. */
static int collect_points(frontend *fe, emit_point **out)
{
    int n = 0, cap = 0;
    emit_point *pts = NULL;
    for (int s = 0; s < fe->prog->nsweeps; s++) {
        const ir_sweep *sw = &fe->prog->sweeps[s];
        strbuf names;
        sb_init(&names);
        for (int i = 0; i < sw->nnames; i++) sb_printf(&names, "%s%s", i ? ", " : "", sw->names[i]);
        for (int k = 0; k < sw->values->nitems; k++) {
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                pts = xrealloc(pts, (size_t)cap * sizeof *pts);
            }
            strbuf value;
            sb_init(&value);
            ast_value_print(sw->values->items[k], &value);
            pts[n].sweep = xstrdup(names.data);
            pts[n].value = sb_steal(&value);
            pts[n].prog = frontend_sweep_point(fe, s, k);
            if (!pts[n].prog) {
                fprintf(stderr, "netc: sweep %s = %s does not compile\n", pts[n].sweep, pts[n].value);
                n++;
                *out = pts;
                sb_free(&names);
                return -n;
            }
            n++;
        }
        sb_free(&names);
    }
    *out = pts;
    return n;
}

static void free_points(emit_point *pts, int n)
{
    for (int i = 0; i < n; i++) {
        free((char *)pts[i].sweep);
        free((char *)pts[i].value);
        ir_program_free((ir_program *)pts[i].prog);
    }
    free(pts);
}

/* --emit-c prints the program's C; -o compiles it. Returns nonzero on failure. */
static int generate(const cli *c, frontend *fe)
{
    emit_info info = { c->file, PACKAGE_VERSION, c->overrides.len ? c->overrides.data : "" };
    emit_point *pts = NULL;
    int npts = collect_points(fe, &pts);
    if (npts < 0) {
        free_points(pts, -npts);
        return 1;
    }
    strbuf code;
    sb_init(&code);
    emit_c(fe->prog, &info, pts, npts, &code);
    free_points(pts, npts);
    int rc = 0;
    if (c->action == ACT_EMIT_C) {
        rc = fputs(code.data, stdout) < 0;
    } else {
        build_opts bo = { c->output, c->emit_c, c->verbose };
        rc = build_program(code.data, &bo) != 0;
    }
    sb_free(&code);
    return rc;
}

/* --emit-cuda prints the CUDA source, --print-kernels its fusion plan. */
static int print_cuda(const cli *c, const ir_program *prog)
{
    strbuf text;
    sb_init(&text);
    if (c->action == ACT_EMIT_CUDA) {
        emit_cuda(prog, &text);
    } else {
        cuda_plan plan;
        cuda_plan_build(prog, &plan);
        cuda_plan_print(prog, &plan, &text);
        cuda_plan_free(&plan);
    }
    int rc = fputs(text.data ? text.data : "", stdout) < 0;
    sb_free(&text);
    return rc;
}

int main(int argc, char **argv)
{
    cli c = { ACT_NONE, NULL, NULL, -1, 0, 50, 0, 0, { NULL, 0, 0 }, 0 };
    frontend fe;
    frontend_init(&fe);
    int rc = parse_args(argc, argv, &c, &fe);
    if (rc) {
        frontend_free(&fe);
        sb_free(&c.overrides);
        return rc < 0 ? 0 : rc;
    }
    int color = c.color >= 0 ? c.color : isatty(STDERR_FILENO) && getenv("NO_COLOR") == NULL;
    if (c.malformed) {  /* a command-line mistake: the file is not read */
        diag_render_all(&fe.dl, stderr, color);
        fprintf(stderr, "Try 'netc --help' for more information.\n");
        frontend_free(&fe);
        sb_free(&c.overrides);
        return 2;
    }
    fe.dl.max_errors = c.max_errors;
    fe.dl.warnings_are_errors = c.werror;
    size_t len = 0;
    char *text = read_input(c.file, &len);
    if (!text) {
        fprintf(stderr, "netc: cannot read '%s': %s\n", c.file, strerror(errno));
        frontend_free(&fe);
        sb_free(&c.overrides);
        return 1;
    }
    int failed = frontend_run(&fe, strcmp(c.file, "-") ? c.file : "<stdin>", text, len);
    free(text);
    int wants_c = c.action == ACT_EMIT_C || c.action == ACT_BUILD || c.action == ACT_EMIT_CUDA ||
                  c.action == ACT_PRINT_KERNELS;
    if (!failed && fe.prog && wants_c) failed = emit_c_check(fe.prog, &fe.dl) != 0;
    diag_render_all(&fe.dl, stderr, color);
    if (!failed && fe.prog) {
        if (c.action == ACT_PRINT_SHAPES) ir_print_shapes(fe.prog, stdout);
        else if (c.action == ACT_EMIT_IR) ir_dump(fe.prog, stdout);
        else if (c.action == ACT_EMIT_CUDA || c.action == ACT_PRINT_KERNELS) failed = print_cuda(&c, fe.prog);
        else if (wants_c) failed = generate(&c, &fe);
    }
    if (failed && fe.dl.errors) fprintf(stderr, "netc: %d error%s, %d warning%s\n", fe.dl.errors, fe.dl.errors == 1 ? "" : "s",
                        fe.dl.warnings, fe.dl.warnings == 1 ? "" : "s");
    frontend_free(&fe);
    sb_free(&c.overrides);
    return failed ? 1 : 0;
}
