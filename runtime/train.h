/* The driver: training with validation, checkpoints and resume; testing
 * with the model's noise tests; the run directory's records. */
#ifndef NR_TRAIN_H
#define NR_TRAIN_H
#include "netrt.h"
#include "nr_error.h"

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
    int progress;                 /* draw a progress bar (stdout is a terminal) */
    int quiet;
} nr_run_opts;

/* Exit statuses beyond 0/1/2 that callers may want to tell apart. */
enum { NR_EXIT_NONFINITE = 3 };

/* Returns 0, -1 with err filled, or NR_EXIT_NONFINITE when the loss stopped
 * being finite (err says where; the last good checkpoint is kept). */
int nr_train_run(const nr_program *p, const nr_run_opts *o, nr_error *err);
int nr_test_run(const nr_program *p, const nr_run_opts *o, nr_error *err);
#endif
