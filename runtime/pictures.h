/* The pictures of a run directory (drawn by plot.c) and report.html. */
#ifndef NR_PICTURES_H
#define NR_PICTURES_H
#include "data.h"
#include "netrt.h"
#include "plot.h"

/* The epochs of DIR/metrics.csv (the caller frees *out). */
int nr_read_metrics(const char *dir, nr_report_epoch **out, int *count, nr_error *err);
/* DIR/loss.png and DIR/accuracy.png: train and validation (else test) per epoch. */
int nr_write_curves(const char *dir, const char *model, const nr_report_epoch *epochs, int n, nr_error *err);
/* DIR/samples.png (10 right and 10 wrong test images, drawn from the seed)
 * and DIR/confusion.png, from the predictions of the first `count` test images. */
int nr_write_test_pictures(const char *dir, const nr_program *p, const nr_dataset *test, int count,
                           const int32_t *pred, uint64_t seed, nr_error *err);
#endif
