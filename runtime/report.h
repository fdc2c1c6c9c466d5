/* What a run tells its user: the per-epoch log line and progress bar on
 * stdout, metrics.csv, summary.json and the final accuracy table. */
#ifndef NR_REPORT_H
#define NR_REPORT_H
#include "atomic_file.h"
#include "json.h"
#include "nr_error.h"
#include <stdio.h>

typedef struct nr_epoch_row {
    int epoch, epochs;
    double train_loss, train_acc;
    int has_val;                  /* a validation split exists */
    double val_loss, val_acc;
    int has_test;                 /* no validation split: the test set is evaluated each epoch */
    double test_loss, test_acc;
    double lr, seconds;
} nr_epoch_row;

void nr_print_epoch(FILE *out, const nr_epoch_row *r);
/* A one-line bar redrawn in place with \r; call nr_progress_clear before other output. */
void nr_progress(FILE *out, int epoch, int epochs, long done, long total, double loss, double acc, double secs);
void nr_progress_clear(FILE *out);

/* metrics.csv: the header when the file is new, then one row per epoch. */
int nr_metrics_append(const char *path, const nr_epoch_row *r, nr_error *err);
/* Keeps the header and the rows of epochs 1..epochs (for --resume). */
int nr_metrics_truncate(const char *path, int epochs, nr_error *err);

/* The test table: clean accuracy then each noise level. */
typedef struct nr_noise_row {
    double std, acc, loss;
} nr_noise_row;
void nr_print_test_table(FILE *out, int count, double clean_acc, double clean_loss, const nr_noise_row *rows,
                         int nrows);

#endif
