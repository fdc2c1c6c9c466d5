/* nr_main: the command line of every generated program. */
#include "netrt.h"
#include "train.h"
#include "run_checks.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(const nr_program *p, const char *prog, FILE *out)
{
    fprintf(out,
            "usage: %s train [OPTIONS]\n"
            "       %s test --weights FILE [OPTIONS]\n"
            "       %s sweep [--sweep NAME,...] [OPTIONS]\n"
            "\n"
            "Trains and tests model '%s' (compiled by netc %s from %s).\n"
            "\n"
            "commands:\n"
            "  train              train, validate each epoch, checkpoint, then test\n"
            "  test               test saved weights: clean accuracy and the noise tests\n"
            "  sweep              train every point of the file's sweeps (%d runs), then\n"
            "                     print the results table, write sweep.csv and plots\n"
            "\n"
            "options:\n"
            "  --data DIR         where the dataset is (else $NETC_DATA, ./data, /usr/share/datasets)\n"
            "  --epochs N         epochs to train (model: %d)\n"
            "  --batch N          images per step (model: %d)\n"
            "  --lr X             learning rate (model: %g)\n"
            "  --seed N           seed of init, split, shuffling, dropout, augmentation (model: %u)\n"
            "  --threads N        CPU threads, 0 for every core (model: %d)\n"
            "  --device D         auto, cpu or cuda (default auto)\n"
            "  --out DIR          run directory (default runs/<model>-<date>-<time>;\n"
            "                     a sweep's holds one directory per point)\n"
            "  --resume           continue the run in --out DIR (default: the newest run of this model);\n"
            "                     with sweep, continue the sweep in --out DIR\n"
            "  --weights FILE     weights to test (a run's model.safetensors or last.safetensors)\n"
            "  --sweep NAMES      sweep: only these swept names (comma-separated, e.g. lr,batch)\n"
            "  --train-limit N    use only the first N training (and validation) images\n"
            "  --test-limit N     use only the first N test images\n"
            "  --quiet            print only errors and the final table\n"
            "  -h, --help         show this help\n"
            "\n"
            "A run directory holds metrics.csv (one row per epoch), summary.json,\n"
            "last.safetensors (checkpoint after each epoch, with the optimizer state)\n"
            "and model.safetensors (the final weights). Exit status: 0 success, 1 error,\n"
            "2 command-line mistake, 3 the loss became NaN or infinite. See netc(1).\n",
            prog, prog, prog, p->model, p->netc_version, p->source, p->nsweep, p->train.epochs, p->train.batch, p->train.optim.lr,
            (unsigned)p->train.seed, p->train.threads);
}

static int bad_usage(const char *prog, const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
    return 2;
}

static int parse_long(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

typedef struct cli {
    const char *command;
    const char *device;
    const char *only;             /* sweep --sweep NAMES */
    nr_run_opts o;
} cli;

/* An option that takes a value: returns the value or NULL (after an error). */
static const char *value_of(int argc, char **argv, int *i)
{
    return *i + 1 < argc ? argv[++*i] : NULL;
}

static int parse_number_option(const char *prog, const char *opt, const char *v, long long lo, long long hi,
                               long long *out)
{
    if (!v) return bad_usage(prog, "%s needs a value", opt);
    if (parse_long(v, lo, hi, out)) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s needs a whole number from %lld to %lld, got '%%s'", opt, lo, hi);
        return bad_usage(prog, msg, v);
    }
    return 0;
}

static int parse_cli(int argc, char **argv, cli *c)
{
    const char *prog = argv[0];
    memset(c, 0, sizeof *c);
    c->o.seed = -1;
    c->o.threads = -1;
    c->device = "auto";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long long v = 0;
        int rc = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return -1;
        else if (!strcmp(a, "--data")) { if (!(c->o.data_dir = value_of(argc, argv, &i))) return bad_usage(prog, "%s needs a directory", a); }
        else if (!strcmp(a, "--out")) { if (!(c->o.out_dir = value_of(argc, argv, &i))) return bad_usage(prog, "%s needs a directory", a); }
        else if (!strcmp(a, "--weights")) { if (!(c->o.weights = value_of(argc, argv, &i))) return bad_usage(prog, "%s needs a file", a); }
        else if (!strcmp(a, "--device")) { if (!(c->device = value_of(argc, argv, &i))) return bad_usage(prog, "%s needs auto, cpu or cuda", a); }
        else if (!strcmp(a, "--sweep")) { if (!(c->only = value_of(argc, argv, &i))) return bad_usage(prog, "%s needs swept names, e.g. lr,batch", a); }
        else if (!strcmp(a, "--resume")) c->o.resume = 1;
        else if (!strcmp(a, "--quiet")) c->o.quiet = 1;
        else if (!strcmp(a, "--epochs")) { if (!(rc = parse_number_option(prog, a, value_of(argc, argv, &i), 1, 1000000, &v))) c->o.epochs = (int)v; }
        else if (!strcmp(a, "--batch")) { if (!(rc = parse_number_option(prog, a, value_of(argc, argv, &i), 1, 1 << 20, &v))) c->o.batch = (int)v; }
        else if (!strcmp(a, "--seed")) { if (!(rc = parse_number_option(prog, a, value_of(argc, argv, &i), 0, 4294967295LL, &v))) c->o.seed = v; }
        else if (!strcmp(a, "--threads")) { if (!(rc = parse_number_option(prog, a, value_of(argc, argv, &i), 0, 4096, &v))) c->o.threads = (int)v; }
        else if (!strcmp(a, "--train-limit")) { if (!(rc = parse_number_option(prog, a, value_of(argc, argv, &i), 1, INT_MAX, &v))) c->o.train_limit = (int)v; }
        else if (!strcmp(a, "--test-limit")) { if (!(rc = parse_number_option(prog, a, value_of(argc, argv, &i), 1, INT_MAX, &v))) c->o.test_limit = (int)v; }
        else if (!strcmp(a, "--lr")) {
            const char *s = value_of(argc, argv, &i);
            char *end;
            if (!s) return bad_usage(prog, "%s needs a value", a);
            errno = 0;
            c->o.lr = strtod(s, &end);
            if (errno || end == s || *end || !(c->o.lr > 0) || c->o.lr > 1e6)
                return bad_usage(prog, "--lr needs a positive number, got '%s'", s);
        } else if (a[0] == '-') return bad_usage(prog, "unknown option '%s'", a);
        else if (!c->command) c->command = a;
        else return bad_usage(prog, "one command only, got a second: '%s'", a);
        if (rc) return rc;
    }
    /* An empty name is a slip on the command line (an unset shell variable), not a place. */
    if (c->o.out_dir && !*c->o.out_dir) return bad_usage(prog, "%s", "--out needs a directory, not an empty string");
    if (c->o.data_dir && !*c->o.data_dir) return bad_usage(prog, "%s", "--data needs a directory, not an empty string");
    if (c->o.weights && !*c->o.weights) return bad_usage(prog, "%s", "--weights needs a file, not an empty string");
    if (!c->command) return bad_usage(prog, "%s", "no command: use 'train', 'test' or 'sweep'");
    if (strcmp(c->command, "train") && strcmp(c->command, "test") && strcmp(c->command, "sweep"))
        return bad_usage(prog, "unknown command '%s': use 'train', 'test' or 'sweep'", c->command);
    if (c->only && strcmp(c->command, "sweep")) return bad_usage(prog, "%s", "--sweep goes with the sweep command");
    if (!strcmp(c->command, "test") && !c->o.weights)
        return bad_usage(prog, "%s", "test needs --weights FILE (e.g. runs/<run>/model.safetensors)");
    if (strcmp(c->device, "auto") && strcmp(c->device, "cpu") && strcmp(c->device, "cuda"))
        return bad_usage(prog, "--device must be auto, cpu or cuda, not '%s'", c->device);
    return 0;
}

/* More threads than cores only take turns: a run with --threads 999 on
 * two cores ran 25 times slower. Warned about, not refused (a machine may
 * hide cores from sysconf). */
static void warn_threads(const nr_program *p, const nr_run_opts *o, const char *prog)
{
    int threads = o->threads >= 0 ? o->threads : p->train.threads, cores = nr_core_count();
    if (threads > cores)
        fprintf(stderr, "%s: warning: %d threads on a machine with %d core%s: the threads take turns, which makes "
                        "the run slower, not faster; --threads 0 uses every core\n",
                prog, threads, cores, cores == 1 ? "" : "s");
}

/* OpenMP threads that wait at a barrier spin by default (libgomp: 300,000
 * spins). On a machine whose cores are busy with other programs a spinning
 * thread takes the time the thread it waits for needs: training on 2
 * threads of a loaded 2-core machine ran several times slower than with
 * passive waiting (bench/RESULTS.md). libgomp reads its settings once,
 * when it is loaded, before main and before the executable's preinit array
 * (tried: the variables set there are ignored), so the program sets
 * OMP_WAIT_POLICY=passive and starts itself again, unless the user has
 * chosen a policy or a spin count. If the exec fails, it runs as is. */
static void wait_passively(char **argv)
{
#if defined(_OPENMP) && defined(__linux__)
    if (!argv || !argv[0] || getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("OMP_WAIT_POLICY", "passive", 0) != 0) return;
    execv("/proc/self/exe", argv);
#else
    (void)argv;
#endif
}

int nr_main(const nr_program *p, int argc, char **argv)
{
    wait_passively(argv);
    const char *prog = argc > 0 ? argv[0] : "program";
    if (p->abi != NR_ABI_VERSION) {
        fprintf(stderr, "%s: compiled for runtime interface %d, but libnetrt speaks %d: run netc again\n", prog,
                p->abi, NR_ABI_VERSION);
        return 1;
    }
    cli c;
    int rc = parse_cli(argc, argv, &c);
    if (rc < 0) {
        usage(p, prog, stdout);
        return 0;
    }
    if (rc) return rc;
    c.o.device = !strcmp(c.device, "cpu") ? NR_DEVICE_CPU : !strcmp(c.device, "cuda") ? NR_DEVICE_CUDA : NR_DEVICE_AUTO;
    warn_threads(p, &c.o, prog);
    c.o.progress = !c.o.quiet && isatty(STDOUT_FILENO);
    nr_error err;
    err.msg[0] = '\0';
    if (!strcmp(c.command, "train")) rc = nr_train_run(p, &c.o, &err);
    else if (!strcmp(c.command, "test")) rc = nr_test_run(p, &c.o, &err);
    else rc = nr_sweep_run(p, &c.o, c.only, &err);
    if (rc) {
        fflush(stdout);
        fprintf(stderr, "%s: %s\n", prog, err.msg[0] ? err.msg : "failed");
        return rc == NR_EXIT_NONFINITE ? NR_EXIT_NONFINITE : 1;
    }
    return 0;
}
