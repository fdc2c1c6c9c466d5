/* Pictures of a run, drawn with cairo into PNG files: training curves, a
 * grid of test images with their labels, a confusion matrix, and the
 * accuracy of each point of a sweep. Every function writes one file (to a
 * temporary name, then renamed) and returns 0, or -1 with err filled. */
#ifndef NR_PLOT_H
#define NR_PLOT_H
#include "nr_error.h"
#include <stdint.h>

typedef struct nr_series {
    const char *label;            /* legend text */
    const double *y;              /* n values; NaN values are gaps */
    int n;
} nr_series;

/* Line chart of several series against x = 1..n (epochs). */
int nr_plot_curves(const char *path, const char *title, const char *xlabel, const char *ylabel,
                   const nr_series *series, int nseries, nr_error *err);

/* A grid of n images (uint8, CHW, c = 1 or 3, each h x w), scaled up for
 * visibility, each with its caption under it ("true: Coat / pred: Shirt");
 * good[i] colours caption i green (1) or red (0). */
int nr_plot_image_grid(const char *path, const char *title, const uint8_t *const *images, int c, int h, int w,
                       const char *const *captions, const int *good, int n, int columns, nr_error *err);

/* Confusion matrix: counts[t * classes + p] images of true class t predicted
 * as p; rows normalised to colour, counts printed when classes <= 20. */
int nr_plot_confusion(const char *path, const char *title, const long *counts, int classes,
                      const char *const *class_names, nr_error *err);

/* Accuracy of each sweep point: one group per point (x labels such as
 * "lr=0.001"), a bar or marker per series (validation, test). */
int nr_plot_sweep(const char *path, const char *title, const char *const *point_labels, int npoints,
                  const nr_series *series, int nseries, nr_error *err);

#endif
