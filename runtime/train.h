/* The driver: training with validation, checkpoints and resume; testing
 * with the model's noise tests; the run directory's records. */
#ifndef NR_TRAIN_H
#define NR_TRAIN_H
#include "netrt.h"
#include "nr_error.h"

#include "backend.h"
#include "data.h"

/* What a finished run reports to its caller (a sweep). */
typedef struct nr_run_result {
    double train_loss, val_acc, test_acc;   /* NaN when absent */
    double seconds;                          /* training time */
    int epochs;
    char dir[2400];
} nr_run_result;

typedef struct nr_run_opts {
    const char *data_dir;         /* --data */
    int epochs, batch;            /* 0: the model's */
    double lr;                    /* 0: the model's */
    long long seed;               /* -1: the model's */
    int threads;                  /* -1: the model's */
    const char *out_dir;          /* --out, or NULL for runs/<model>-<time> */
    int resume;
    const char *weights;          /* test --weights */
    int train_limit, test_limit;  /* 0: all images */
    nr_device_choice device;      /* --device */
    int progress;                 /* draw a progress bar (stdout is a terminal) */
    int quiet;
    const nr_dataset *shared_train;  /* already loaded (a sweep shares them), or NULL */
    const nr_dataset *shared_test;
    nr_run_result *result;        /* filled when not NULL */
} nr_run_opts;

/* Exit statuses beyond 0/1/2 that callers may want to tell apart. */
enum { NR_EXIT_NONFINITE = 3 };

/* Returns 0, -1 with err filled, or NR_EXIT_NONFINITE when the loss stopped
 * being finite (err says where; the last good checkpoint is kept). */
int nr_train_run(const nr_program *p, const nr_run_opts *o, nr_error *err);
int nr_test_run(const nr_program *p, const nr_run_opts *o, nr_error *err);
/* Every point of the program's sweeps (or those named in `only`, a
 * comma-separated list of swept names), one run directory each under the
 * sweep's directory, then the table, sweep.csv and the plots. */
int nr_sweep_run(const nr_program *p, const nr_run_opts *o, const char *only, nr_error *err);
int nr_file_exists(const char *path);
/* Makes s usable as one file name: characters other than letters, digits
 * and . - _ = become '_'. */
void nr_path_safe(char *s);
/* mkdir -p. When made is not NULL, *made is the length of path's shortest
 * prefix (ending before a '/', or the whole path) that this call created:
 * 0 when it created none. */
int nr_make_dirs(const char *path, size_t *made, nr_error *err);
/* Removes path and then its parents, while they are empty, down to its
 * first `top` characters (nr_make_dirs's *made: what it created); nothing
 * when top is 0. */
void nr_remove_empty_dirs(const char *path, size_t top);
/* runs/<model>-<tag><date>-<time>, not yet existing. */
void nr_default_run_dir(const char *model, const char *tag, char *out, size_t n);
#endif
