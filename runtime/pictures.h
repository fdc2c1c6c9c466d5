/* The pictures of a run directory (drawn by plot.c) and report.html. */
#ifndef NR_PICTURES_H
#define NR_PICTURES_H
#include "data.h"
#include "netrt.h"
#include "plot.h"
#include "report_html.h"

/* The epochs of DIR/metrics.csv (the caller frees *out). */
int nr_read_metrics(const char *dir, nr_report_epoch **out, int *count, nr_error *err);
/* The curves the epochs have, of the loss (loss = 1) or the accuracy:
 * train, validation, test, each only when some epoch has a value (a run
 * without a validation split evaluates the test set instead). y holds
 * 3 * n values for the series' data. Returns the number of series. */
int nr_curve_series(const nr_report_epoch *epochs, int n, int loss, double *y, nr_series *out);
/* DIR/loss.png and DIR/accuracy.png: the curves above per epoch; a missing
 * value is a gap, never a zero. */
int nr_write_curves(const char *dir, const char *model, const nr_report_epoch *epochs, int n, nr_error *err);
/* DIR/samples.png (10 right and 10 wrong test images, drawn from the seed)
 * and DIR/confusion.png, from the predictions of the first `count` test images. */
int nr_write_test_pictures(const char *dir, const nr_program *p, const nr_dataset *test, int count,
                           const int32_t *pred, uint64_t seed, nr_error *err);
#endif
