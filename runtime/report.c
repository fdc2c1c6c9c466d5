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

/* ---- JSON --------------------------------------------------------------- */

static void json_sep(nr_json *j)
{
    if (!j->first[j->depth]) fputc(',', j->f);
    j->first[j->depth] = 0;
}

static void json_indent(nr_json *j)
{
    fputc('\n', j->f);
    for (int i = 0; i < j->depth; i++) fputs("  ", j->f);
}

void nr_json_begin(nr_json *j, FILE *f)
{
    memset(j, 0, sizeof *j);
    j->f = f;
    j->first[0] = 1;
}

static void json_value_start(nr_json *j)
{
    if (j->after_key) {
        j->after_key = 0;
        return;
    }
    json_sep(j);
    if (j->depth) json_indent(j);
}

static void json_escaped(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
        else if (*c < 0x20) fprintf(f, "\\u%04x", *c);
        else fputc(*c, f);
    }
    fputc('"', f);
}

void nr_json_key(nr_json *j, const char *key)
{
    json_sep(j);
    json_indent(j);
    json_escaped(j->f, key);
    fputs(": ", j->f);
    j->after_key = 1;
}

void nr_json_open(nr_json *j, char bracket)
{
    json_value_start(j);
    fputc(bracket, j->f);
    if (j->depth < 15) j->depth++;
    j->first[j->depth] = 1;
}

void nr_json_close(nr_json *j, char bracket)
{
    int empty = j->first[j->depth];
    if (j->depth > 0) j->depth--;
    if (!empty) json_indent(j);
    fputc(bracket == '{' ? '}' : bracket == '[' ? ']' : bracket, j->f);
    if (j->depth == 0) fputc('\n', j->f);
}

void nr_json_str(nr_json *j, const char *s)
{
    json_value_start(j);
    json_escaped(j->f, s ? s : "");
}

void nr_json_num(nr_json *j, double v)
{
    json_value_start(j);
    if (isfinite(v)) fprintf(j->f, "%.10g", v);
    else fputs("null", j->f);
}

void nr_json_int(nr_json *j, long long v)
{
    json_value_start(j);
    fprintf(j->f, "%lld", v);
}

void nr_json_bool(nr_json *j, int v)
{
    json_value_start(j);
    fputs(v ? "true" : "false", j->f);
}

void nr_json_null(nr_json *j)
{
    json_value_start(j);
    fputs("null", j->f);
}

int nr_write_atomic(const char *path, void (*fn)(FILE *f, void *arg), void *arg, nr_error *err)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) return nr_fail(err, "%s: out of memory", path);
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        nr_fail_errno(err, "%s: cannot create", tmp);
        free(tmp);
        return -1;
    }
    fn(f, arg);
    int bad = fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        nr_fail_errno(err, "%s: cannot write", path);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}
