/* PROG sweep: every point of the file's sweeps trained in turn, sharing the
 * loaded data, then one table of results, sweep.csv and a plot per sweep. */
#include "json.h"
#include "plot.h"
#include "report.h"
#include "train.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Points whose data loads the same way can share one copy of it. */
static int same_data(const nr_data_spec *a, const nr_data_spec *b)
{
    int same_path = (!a->path && !b->path) || (a->path && b->path && !strcmp(a->path, b->path));
    return a->dataset == b->dataset && same_path && a->resize == b->resize &&
           a->resize_bicubic == b->resize_bicubic && a->channels == b->channels && a->height == b->height &&
           a->width == b->width && a->classes == b->classes;
}

/* Whether the swept names "c1, c2, c3" (or "lr") include name[0..len). */
static int sweep_has_name(const char *sweep, const char *name, size_t len)
{
    for (const char *s = sweep; *s;) {
        while (*s == ' ' || *s == ',') s++;
        size_t n = strcspn(s, ", ");
        if (n == len && !strncmp(s, name, len)) return 1;
        s += n;
    }
    return 0;
}

/* Whether point k belongs to a sweep listed in `only` ("lr,batch"; a
 * joint sweep "c1, c2, c3" is selected by any of its names). */
static int selected(const nr_sweep_point *pt, const char *only)
{
    if (!only) return 1;
    for (const char *s = only; *s;) {
        size_t len = strcspn(s, ",");
        if (len && sweep_has_name(pt->sweep, s, len)) return 1;
        if (!s[len]) break;
        s += len + 1;
    }
    return 0;
}

/* A directory name for a point: "07-lr=0.0016", unsafe characters as '_'. */
static void point_dir(const char *sweep_dir, int k, const nr_sweep_point *pt, char *out, size_t n)
{
    char label[160];
    snprintf(label, sizeof label, "%s=%s", pt->sweep, pt->value);
    nr_path_safe(label);
    snprintf(out, n, "%s/%02d-%s", sweep_dir, k, label);
}

static int check_names(const nr_program *p, const char *only, nr_error *err)
{
    if (!only) return 0;
    for (const char *s = only; *s;) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        int found = 0;
        for (int k = 0; k < p->nsweep && !found; k++) found = sweep_has_name(p->sweep[k].sweep, s, len);
        if (!found) {
            char names[512] = "";
            for (int k = 0; k < p->nsweep; k++)
                if (k == 0 || strcmp(p->sweep[k].sweep, p->sweep[k - 1].sweep)) {
                    size_t l = strlen(names);
                    snprintf(names + l, sizeof names - l, "%s'%s'", l ? ", " : "", p->sweep[k].sweep);
                }
            return nr_fail(err, "--sweep: the model has no sweep '%.*s'; its sweeps are %s", (int)len, s, names);
        }
        if (!end) break;
        s = end + 1;
    }
    return 0;
}

typedef struct sweep_table {
    const nr_program *p;
    const nr_run_result *res;
    const int *done;
} sweep_table;

static void pct(FILE *f, double v)
{
    if (isnan(v)) fprintf(f, "%9s", "-");
    else fprintf(f, "%8.2f%%", 100 * v);
}

static void print_table(FILE *f, const sweep_table *t)
{
    int ws = 5, wv = 5;
    for (int k = 0; k < t->p->nsweep; k++) {
        if (!t->done[k]) continue;
        int ls = (int)strlen(t->p->sweep[k].sweep), lv = (int)strlen(t->p->sweep[k].value);
        if (ls > ws) ws = ls;
        if (lv > wv) wv = lv;
    }
    fprintf(f, "\n%-*s  %-*s %9s %9s %10s %9s\n", ws, "sweep", wv, "value", "val acc", "test acc", "train loss",
            "seconds");
    for (int k = 0; k < t->p->nsweep; k++) {
        if (!t->done[k]) continue;
        const nr_sweep_point *pt = &t->p->sweep[k];
        const nr_run_result *r = &t->res[k];
        fprintf(f, "%-*s  %-*s ", ws, pt->sweep, wv, pt->value);
        pct(f, r->val_acc);
        fputc(' ', f);
        pct(f, r->test_acc);
        fprintf(f, " %10.4f %9.1f%s\n", r->train_loss, r->seconds, pt->same_as >= 0 ? "  (same as an earlier point)" : "");
    }
    fflush(f);
}

static void csv_field(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void write_csv(FILE *f, void *arg)
{
    const sweep_table *t = arg;
    fputs("sweep,value,val_acc,test_acc,train_loss,seconds,run\n", f);
    for (int k = 0; k < t->p->nsweep; k++) {
        if (!t->done[k]) continue;
        const nr_run_result *r = &t->res[k];
        csv_field(f, t->p->sweep[k].sweep);
        fputc(',', f);
        csv_field(f, t->p->sweep[k].value);
        fputc(',', f);
        if (!isnan(r->val_acc)) fprintf(f, "%.6g", r->val_acc);
        fputc(',', f);
        if (!isnan(r->test_acc)) fprintf(f, "%.6g", r->test_acc);
        fputc(',', f);
        if (!isnan(r->train_loss)) fprintf(f, "%.6g", r->train_loss);
        fprintf(f, ",%.3f,", r->seconds);
        csv_field(f, r->dir);
        fputc('\n', f);
    }
}

/* One plot per sweep: accuracy against the swept value. */
static int plot_sweeps(const char *dir, const sweep_table *t, nr_error *err)
{
    const nr_program *p = t->p;
    for (int first = 0; first < p->nsweep;) {
        int end = first;
        while (end < p->nsweep && !strcmp(p->sweep[end].sweep, p->sweep[first].sweep)) end++;
        const char *labels[256];
        double val[256], test[256];
        int n = 0, has_val = 0;
        for (int k = first; k < end && n < 256; k++) {
            if (!t->done[k]) continue;
            labels[n] = p->sweep[k].value;
            val[n] = t->res[k].val_acc;
            test[n] = t->res[k].test_acc;
            has_val |= !isnan(val[n]);
            n++;
        }
        if (n) {
            char path[2300], title[256], name[128];
            snprintf(name, sizeof name, "%s", p->sweep[first].sweep);
            nr_path_safe(name);
            snprintf(path, sizeof path, "%s/sweep-%s.png", dir, name);
            snprintf(title, sizeof title, "%s: accuracy against %s", p->model, p->sweep[first].sweep);
            nr_series s[2] = { { "test", test, n }, { "validation", val, n } };
            if (nr_plot_sweep(path, title, labels, n, s, has_val ? 2 : 1, err)) return -1;
        }
        first = end;
    }
    return 0;
}

/* --resume: a point whose run finished keeps its results; one with a
 * checkpoint continues from it; the others start. Returns 1 when the point
 * is finished (res filled), 0 when it must run (resume set as needed), -1
 * when its summary.json is there but unreadable (err says where). */
static int resume_point(const char *out, nr_run_opts *po, nr_run_result *res, nr_error *err)
{
    char path[2400];
    snprintf(path, sizeof path, "%s/summary.json", out);
    if (nr_file_exists(path)) {
        /* summary.json is a few kilobytes; anything near a megabyte is not one train wrote. */
        nr_json_value *summary = nr_json_read_file(path, 1 << 20, err);
        if (!summary) return -1;
        const nr_json_value *status = nr_json_member(summary, "status");
        int trained = status && status->kind == NR_JSON_STRING && !strcmp(status->s, "trained");
        if (trained) {
            res->test_acc = nr_json_number(summary, "test_accuracy");
            res->val_acc = nr_json_number(summary, "validation_accuracy");
            res->train_loss = nr_json_number(summary, "final_train_loss");
            res->seconds = nr_json_number(summary, "train_seconds");
            double epochs = nr_json_number(summary, "epochs_completed");
            res->epochs = epochs >= 0 && epochs <= 1e6 ? (int)epochs : 0;
            snprintf(res->dir, sizeof res->dir, "%s", out);
        }
        nr_json_value_free(summary);
        if (trained) return 1;
    }
    snprintf(path, sizeof path, "%s/last.safetensors", out);
    po->resume = nr_file_exists(path);
    return 0;
}

int nr_sweep_run(const nr_program *p, const nr_run_opts *o, const char *only, nr_error *err)
{
    if (!p->nsweep) return nr_fail(err, "model %s declares no sweep ('sweep NAME = [...]' in %s)", p->model, p->source);
    if (check_names(p, only, err)) return -1;
    char dir[2048];
    if (o->resume && !o->out_dir) return nr_fail(err, "sweep --resume needs --out DIR, the sweep to continue");
    if (o->out_dir) snprintf(dir, sizeof dir, "%s", o->out_dir);
    else nr_default_run_dir(p->model, "sweep-", dir, sizeof dir);
    size_t made;
    if (nr_make_dirs(dir, &made, err)) return -1;
    nr_dataset train, test;
    if (nr_data_load(&p->data, o->data_dir, &train, &test, err)) {
        nr_remove_empty_dirs(dir, made); /* nothing of the sweep's to keep */
        return -1;
    }
    nr_run_result *res = calloc((size_t)p->nsweep, sizeof *res);
    int *done = calloc((size_t)p->nsweep, sizeof *done);
    int rc = res && done ? 0 : nr_fail(err, "out of memory");
    int total = 0;
    for (int k = 0; k < p->nsweep; k++) total += selected(&p->sweep[k], only);
    if (!rc && !o->quiet)
        printf("sweep of %s: %d runs in %s; data %s\n", p->model, total, dir, train.source);
    for (int k = 0, i = 0; k < p->nsweep && !rc; k++) {
        const nr_sweep_point *pt = &p->sweep[k];
        if (!selected(pt, only)) continue;
        i++;
        if (pt->same_as >= 0 && done[pt->same_as]) {
            res[k] = res[pt->same_as];
            done[k] = 1;
            if (!o->quiet) printf("\n== %d/%d: %s = %s: the same model as %s = %s, not trained again\n", i, total,
                                  pt->sweep, pt->value, p->sweep[pt->same_as].sweep, p->sweep[pt->same_as].value);
            continue;
        }
        nr_run_opts po = *o;
        char out[2300];
        point_dir(dir, k, pt, out, sizeof out);
        po.out_dir = out;
        po.resume = 0;
        int finished = o->resume ? resume_point(out, &po, &res[k], err) : 0;
        if (finished < 0) {
            rc = -1;
            break;
        }
        if (finished) {
            done[k] = 1;
            if (!o->quiet) printf("\n== %d/%d: %s = %s: finished earlier (%s)\n", i, total, pt->sweep, pt->value, out);
            continue;
        }
        po.result = &res[k];
        int share = same_data(&pt->program->data, &p->data);
        po.shared_train = share ? &train : NULL;
        po.shared_test = share ? &test : NULL;
        if (!o->quiet) printf("\n== %d/%d: %s = %s\n", i, total, pt->sweep, pt->value);
        fflush(stdout);
        rc = nr_train_run(pt->program, &po, err);
        if (rc == NR_EXIT_NONFINITE) {
            /* A diverging point is a result of the study, not the end of it. */
            fprintf(stderr, "%s\n", err->msg);
            res[k].train_loss = res[k].val_acc = res[k].test_acc = NAN;
            rc = 0;
        }
        done[k] = !rc;
    }
    sweep_table t = { p, res, done };
    if (!rc) {
        print_table(stdout, &t);
        char path[2300];
        snprintf(path, sizeof path, "%s/sweep.csv", dir);
        rc = nr_write_atomic(path, write_csv, &t, err);
        if (!rc) rc = plot_sweeps(dir, &t, err);
        if (!rc && !o->quiet) printf("\nresults: %s/sweep.csv and %s/sweep-*.png\n", dir, dir);
    }
    if (rc) nr_remove_empty_dirs(dir, made); /* a point's run, if any, stays */
    nr_dataset_free(&train);
    nr_dataset_free(&test);
    free(res);
    free(done);
    return rc;
}
