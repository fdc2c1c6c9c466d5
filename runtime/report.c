#include "report.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void nr_print_epoch(FILE *out, const nr_epoch_row *r)
{
    int w = r->epochs >= 100 ? 3 : r->epochs >= 10 ? 2 : 1;
    fprintf(out, "epoch %*d/%d  train loss %.4f acc %6.2f%%", w, r->epoch, r->epochs, r->train_loss,
            100 * r->train_acc);
    if (r->has_val) fprintf(out, "  val loss %.4f acc %6.2f%%", r->val_loss, 100 * r->val_acc);
    if (r->has_test) fprintf(out, "  test loss %.4f acc %6.2f%%", r->test_loss, 100 * r->test_acc);
    fprintf(out, "  lr %.3g  %.1f s\n", r->lr, r->seconds);
    fflush(out);
}

void nr_progress(FILE *out, int epoch, int epochs, long done, long total, double loss, double acc, double secs)
{
    enum { WIDTH = 30 };
    int filled = total > 0 ? (int)(WIDTH * done / total) : 0;
    char bar[WIDTH + 1];
    for (int i = 0; i < WIDTH; i++) bar[i] = i < filled ? '#' : '.';
    bar[WIDTH] = '\0';
    double rate = secs > 0 ? done / secs : 0;
    fprintf(out, "\r\033[Kepoch %d/%d [%s] %ld/%ld  loss %.4f acc %6.2f%%  %.0f img/s", epoch, epochs, bar, done,
            total, loss, 100 * acc, rate);
    fflush(out);
}

void nr_progress_clear(FILE *out)
{
    fputs("\r\033[K", out);
}

static const char metrics_header[] =
    "epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,lr,seconds\n";

static void csv_num(FILE *f, int has, double v)
{
    if (has) fprintf(f, ",%.6g", v);
    else fputc(',', f);
}

int nr_metrics_append(const char *path, const nr_epoch_row *r, nr_error *err)
{
    FILE *f = fopen(path, "a");
    if (!f) return nr_fail_errno(err, "%s: cannot open", path);
    if (ftell(f) == 0) fputs(metrics_header, f);
    fprintf(f, "%d,%.6g,%.6g", r->epoch, r->train_loss, r->train_acc);
    csv_num(f, r->has_val, r->val_loss);
    csv_num(f, r->has_val, r->val_acc);
    csv_num(f, r->has_test, r->test_loss);
    csv_num(f, r->has_test, r->test_acc);
    fprintf(f, ",%.6g,%.3f\n", r->lr, r->seconds);
    if (ferror(f) | (fclose(f) != 0)) return nr_fail_errno(err, "%s: cannot write", path);
    return 0;
}

int nr_metrics_truncate(const char *path, int epochs, nr_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? 0 : nr_fail_errno(err, "%s: cannot open", path);
    char line[1024];
    long keep = 0;
    int rows = 0;
    if (fgets(line, sizeof line, f)) keep = ftell(f);
    while (rows < epochs && fgets(line, sizeof line, f)) {
        if (atoi(line) > epochs) break;
        keep = ftell(f);
        rows++;
    }
    fclose(f);
    if (truncate(path, keep)) return nr_fail_errno(err, "%s: cannot truncate", path);
    return 0;
}

void nr_print_test_table(FILE *out, int count, double clean_acc, double clean_loss, const nr_noise_row *rows,
                         int nrows)
{
    fprintf(out, "\ntest set: %d images\n", count);
    fprintf(out, "  %-10s %9s %8s\n", "noise std", "accuracy", "loss");
    fprintf(out, "  %-10s %8.2f%% %8.4f\n", "clean", 100 * clean_acc, clean_loss);
    for (int i = 0; i < nrows; i++) fprintf(out, "  %-10g %8.2f%% %8.4f\n", rows[i].std, 100 * rows[i].acc, rows[i].loss);
    fflush(out);
}
