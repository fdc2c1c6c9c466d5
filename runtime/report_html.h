/* report.html, the page of a run directory (written by report_html.c). */
#ifndef NR_REPORT_HTML_H
#define NR_REPORT_HTML_H
#include "nr_error.h"

/* report.html: a page that opens in a browser, with the run's summary,
 * its epoch table, its noise table and the pictures plot.c draws
 * (referenced by file name, all in the same directory). */
typedef struct nr_report_kv {
    const char *key, *value;
} nr_report_kv;

typedef struct nr_report_epoch {
    int epoch;
    double train_loss, train_acc, val_loss, val_acc, test_loss, test_acc, lr, seconds;  /* NaN: none */
} nr_report_epoch;

typedef struct nr_report {
    const char *title;            /* "lenet5_fashion: training report" */
    const nr_report_kv *summary;  /* shown as a two-column table, in order */
    int nsummary;
    const nr_report_epoch *epochs;
    int nepochs;
    const double *noise_std;      /* the test table: clean first (std 0 and is_clean) */
    const double *noise_acc;
    int nnoise;
    double clean_acc;             /* NaN when the run was not tested */
    const char *const *images;    /* PNG file names in the same directory, shown in order */
    const char *const *image_captions;
    int nimages;
} nr_report;

int nr_report_html(const char *path, const nr_report *r, nr_error *err);
#endif
