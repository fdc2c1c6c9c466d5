/* The pictures of a run directory and the page that shows them: training
 * curves from metrics.csv, sample test images with their predictions, the
 * confusion matrix, and report.html. */
#include "pictures.h"
#include "classes.h"
#include "rng.h"
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A metrics.csv field: an empty one (the run had no such value that
 * epoch) is NaN, never 0, so the plots leave it out. */
static double csv_value(const char *field)
{
    if (!*field || *field == ',' || *field == '\n' || *field == '\r') return NAN;
    char *end;
    double v = strtod(field, &end);
    return end == field ? NAN : v;
}

int nr_read_metrics(const char *dir, nr_report_epoch **out, int *count, nr_error *err)
{
    char path[2300], line[1024];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    *out = NULL;
    *count = 0;
    FILE *f = fopen(path, "r");
    if (!f) return nr_fail_errno(err, "%s: cannot open", path);
    int cap = 0;
    nr_report_epoch *rows = NULL;
    if (!fgets(line, sizeof line, f)) line[0] = '\0';  /* the header */
    while (fgets(line, sizeof line, f)) {
        double v[9];
        char *s = line;
        for (int i = 0; i < 9; i++) {
            v[i] = csv_value(s);
            char *comma = strchr(s, ',');
            s = comma ? comma + 1 : s + strlen(s);
        }
        if (*count == cap) {
            cap = cap ? 2 * cap : 32;
            nr_report_epoch *grown = realloc(rows, (size_t)cap * sizeof *rows);
            if (!grown) {
                free(rows);
                fclose(f);
                return nr_fail(err, "%s: out of memory", path);
            }
            rows = grown;
        }
        rows[(*count)++] = (nr_report_epoch){ (int)v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8] };
    }
    fclose(f);
    *out = rows;
    return 0;
}

static double epoch_field(const nr_report_epoch *e, int loss, int which)
{
    static const size_t loss_at[] = { offsetof(nr_report_epoch, train_loss), offsetof(nr_report_epoch, val_loss),
                                      offsetof(nr_report_epoch, test_loss) };
    static const size_t acc_at[] = { offsetof(nr_report_epoch, train_acc), offsetof(nr_report_epoch, val_acc),
                                     offsetof(nr_report_epoch, test_acc) };
    double v;
    memcpy(&v, (const char *)e + (loss ? loss_at : acc_at)[which], sizeof v);
    return v;
}

int nr_curve_series(const nr_report_epoch *e, int n, int loss, double *y, nr_series *out)
{
    static const char *const labels[] = { "train", "validation", "test" };
    int count = 0;
    for (int which = 0; which < 3; which++) {
        double *col = y + (size_t)count * (size_t)n;
        int finite = 0;
        for (int i = 0; i < n; i++) {
            col[i] = epoch_field(&e[i], loss, which);
            finite |= isfinite(col[i]);
        }
        if (finite) out[count++] = (nr_series){ labels[which], col, n };
    }
    return count;
}

int nr_write_curves(const char *dir, const char *model, const nr_report_epoch *e, int n, nr_error *err)
{
    double *y = malloc((size_t)(n ? n : 1) * 6 * sizeof *y);
    if (!y) return nr_fail(err, "out of memory");
    nr_series loss[3], acc[3];
    int nloss = nr_curve_series(e, n, 1, y, loss), nacc = nr_curve_series(e, n, 0, y + 3 * (size_t)n, acc);
    char path[2300], title[300];
    snprintf(path, sizeof path, "%s/loss.png", dir);
    snprintf(title, sizeof title, "%s: loss per epoch", model);
    int rc = nr_plot_curves(path, title, "epoch", "loss", loss, nloss, err);
    snprintf(path, sizeof path, "%s/accuracy.png", dir);
    snprintf(title, sizeof title, "%s: accuracy per epoch", model);
    if (!rc) rc = nr_plot_curves(path, title, "epoch", "accuracy", acc, nacc, err);
    free(y);
    return rc;
}

/* Up to `want` indices of images whose prediction is (right) or is not
 * (!right) their label, drawn at random but reproducibly. */
static int pick(const nr_dataset *test, int count, const int32_t *pred, int right, int want, uint64_t seed,
                int *out)
{
    uint32_t *perm = malloc((size_t)(count ? count : 1) * sizeof *perm);
    if (!perm) return 0;
    nr_permutation(nr_stream_make(seed, NR_RNG_TEST, right, 0), perm, (size_t)count);
    int n = 0;
    for (int i = 0; i < count && n < want; i++)
        if ((pred[perm[i]] == test->labels[perm[i]]) == right) out[n++] = (int)perm[i];
    free(perm);
    return n;
}

static const char *class_name(const char *const *names, int k, char *buf, size_t n)
{
    if (names) return names[k];
    snprintf(buf, n, "class %d", k);
    return buf;
}

int nr_write_test_pictures(const char *dir, const nr_program *p, const nr_dataset *test, int count,
                           const int32_t *pred, uint64_t seed, nr_error *err)
{
    const char *const *names = nr_class_names(p->data.dataset, p->classes);
    int idx[20], nright = pick(test, count, pred, 1, 10, seed, idx);
    int nwrong = pick(test, count, pred, 0, 10, seed, idx + nright);
    int n = nright + nwrong;
    const uint8_t *images[20];
    char captions[20][160];
    const char *caps[20];
    int good[20];
    size_t sz = (size_t)test->channels * test->height * test->width;
    for (int i = 0; i < n; i++) {
        char a[32], b[32];
        images[i] = test->pixels + (size_t)idx[i] * sz;
        snprintf(captions[i], sizeof captions[i], "true: %s\npred: %s",
                 class_name(names, test->labels[idx[i]], a, sizeof a), class_name(names, pred[idx[i]], b, sizeof b));
        caps[i] = captions[i];
        good[i] = i < nright;
    }
    char path[2300], title[300];
    snprintf(path, sizeof path, "%s/samples.png", dir);
    snprintf(title, sizeof title, "%s: %d correctly and %d wrongly classified test images", p->model, nright, nwrong);
    int rc = n ? nr_plot_image_grid(path, title, images, test->channels, test->height, test->width, caps, good, n, 5, err)
               : 0;
    long *counts = calloc((size_t)p->classes * p->classes, sizeof *counts);
    if (!counts) return nr_fail(err, "out of memory");
    for (int i = 0; i < count; i++)
        if (pred[i] >= 0 && pred[i] < p->classes) counts[(size_t)test->labels[i] * p->classes + pred[i]]++;
    snprintf(path, sizeof path, "%s/confusion.png", dir);
    snprintf(title, sizeof title, "%s: confusion matrix (%d test images)", p->model, count);
    if (!rc) rc = nr_plot_confusion(path, title, counts, p->classes, names, err);
    free(counts);
    return rc;
}
