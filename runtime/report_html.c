/* report.html: the page of a run, with its summary, its epoch table, its
 * noise table and its pictures (report_html.h). Everything given is
 * escaped; a column or table without values is left out, never shown as
 * zeros. Written atomically, so a browser refreshing it sees a whole page. */
#include "report_html.h"
#include "atomic_file.h"
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const char *or_empty(const char *s)
{
    return s ? s : "";
}


static void html_escaped(FILE *f, const char *s)
{
    for (s = or_empty(s); *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* A file name as a relative URL: bytes outside the unreserved set are
 * percent-encoded, so "#", "?", "%" or spaces in a name still find the file. */
static void url_escaped(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)or_empty(s); *p; p++) {
        int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                    strchr("-._~/", *p) != NULL;
        if (plain)
            fputc(*p, f);
        else
            fprintf(f, "%%%02X", *p);
    }
}

#define EM_DASH "&mdash;"

static void html_percent(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.2f%%", 100 * v);
    else
        fputs(EM_DASH, f);
}

static void html_number(FILE *f, const char *fmt, double v)
{
    if (isfinite(v))
        fprintf(f, fmt, v);
    else
        fputs(EM_DASH, f);
}

static const char REPORT_CSS[] =
    "body{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,\"DejaVu Sans\",sans-serif;"
    "margin:0 auto;max-width:1100px;padding:24px 32px 48px;color:#222;background:#fff;line-height:1.45}\n"
    "h1{font-size:1.6em;margin:0 0 .3em}h2{font-size:1.2em;margin:1.8em 0 .6em;"
    "border-bottom:1px solid #ddd;padding-bottom:.2em}\n"
    ".headline{font-size:1.1em;margin:.2em 0 1em}.headline strong{font-size:1.2em}\n"
    "table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:.95em}\n"
    "th,td{padding:4px 12px;border-bottom:1px solid #e5e5e5;text-align:right}\n"
    "thead th{background:#f3f5f7;border-bottom:2px solid #ccd}\n"
    "tbody tr:nth-child(even){background:#fafbfc}\n"
    "table.kv th{text-align:left;font-weight:600;color:#444}table.kv td{text-align:left}\n"
    ".none{color:#777;font-style:italic}\n"
    ".figures{display:flex;flex-wrap:wrap;gap:24px}\n"
    "figure{margin:0;max-width:100%}figure img{max-width:100%;height:auto;border:1px solid #e5e5e5}\n"
    "figcaption{color:#555;font-size:.9em;margin-top:4px}\n";

static void report_summary(FILE *f, const nr_report *r)
{
    fputs("<p class=\"headline\">Clean test accuracy: <strong>", f);
    html_percent(f, r->clean_acc);
    fputs("</strong></p>\n<h2>Summary</h2>\n", f);
    if (r->nsummary <= 0) {
        fputs("<p class=\"none\">No summary.</p>\n", f);
        return;
    }
    fputs("<table class=\"kv\"><tbody>\n", f);
    for (int i = 0; i < r->nsummary; i++) {
        fputs("<tr><th scope=\"row\">", f);
        html_escaped(f, r->summary[i].key);
        fputs("</th><td>", f);
        html_escaped(f, r->summary[i].value);
        fputs("</td></tr>\n", f);
    }
    fputs("</tbody></table>\n", f);
}

/* The epoch table's columns; a column with no value in any epoch (no
 * validation set, an untested run) is left out rather than shown as dashes. */
typedef struct epoch_column {
    const char *head;
    size_t offset;
    int percent;
    const char *fmt;
} epoch_column;

static const epoch_column EPOCH_COLUMNS[] = {
    {"train loss", offsetof(nr_report_epoch, train_loss), 0, "%.4f"},
    {"train acc", offsetof(nr_report_epoch, train_acc), 1, NULL},
    {"val loss", offsetof(nr_report_epoch, val_loss), 0, "%.4f"},
    {"val acc", offsetof(nr_report_epoch, val_acc), 1, NULL},
    {"test loss", offsetof(nr_report_epoch, test_loss), 0, "%.4f"},
    {"test acc", offsetof(nr_report_epoch, test_acc), 1, NULL},
    {"learning rate", offsetof(nr_report_epoch, lr), 0, "%.4g"},
    {"seconds", offsetof(nr_report_epoch, seconds), 0, "%.1f"},
};
#define NEPOCH_COLUMNS ((int)(sizeof EPOCH_COLUMNS / sizeof EPOCH_COLUMNS[0]))

static double epoch_value(const nr_report_epoch *e, const epoch_column *col)
{
    return *(const double *)(const void *)((const char *)e + col->offset);
}

static int column_has_values(const nr_report *r, const epoch_column *col)
{
    for (int i = 0; i < r->nepochs; i++)
        if (isfinite(epoch_value(&r->epochs[i], col))) return 1;
    return 0;
}

static void report_epochs(FILE *f, const nr_report *r)
{
    fputs("<h2>Epochs</h2>\n", f);
    if (r->nepochs <= 0 || !r->epochs) {
        fputs("<p class=\"none\">No epochs recorded.</p>\n", f);
        return;
    }
    int shown[NEPOCH_COLUMNS];
    fputs("<table class=\"epochs\"><thead><tr><th scope=\"col\">epoch</th>", f);
    for (int k = 0; k < NEPOCH_COLUMNS; k++) {
        shown[k] = column_has_values(r, &EPOCH_COLUMNS[k]);
        if (shown[k]) fprintf(f, "<th scope=\"col\">%s</th>", EPOCH_COLUMNS[k].head);
    }
    fputs("</tr></thead>\n<tbody>\n", f);
    for (int i = 0; i < r->nepochs; i++) {
        fprintf(f, "<tr><td>%d</td>", r->epochs[i].epoch);
        for (int k = 0; k < NEPOCH_COLUMNS; k++) {
            if (!shown[k]) continue;
            double v = epoch_value(&r->epochs[i], &EPOCH_COLUMNS[k]);
            fputs("<td>", f);
            if (EPOCH_COLUMNS[k].percent)
                html_percent(f, v);
            else
                html_number(f, EPOCH_COLUMNS[k].fmt, v);
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</tbody></table>\n", f);
}

static void report_noise(FILE *f, const nr_report *r)
{
    if (r->nnoise <= 0 || !r->noise_std || !r->noise_acc) return;
    fputs("<h2>Accuracy under input noise</h2>\n<table class=\"noise\"><thead><tr>"
          "<th scope=\"col\">noise std</th><th scope=\"col\">accuracy</th>"
          "<th scope=\"col\">change from clean</th></tr></thead>\n<tbody>\n", f);
    for (int i = 0; i < r->nnoise; i++) {
        fputs("<tr><td>", f);
        if (r->noise_std[i] == 0)
            fputs("0 (clean)", f);
        else
            html_number(f, "%g", r->noise_std[i]);
        fputs("</td><td>", f);
        html_percent(f, r->noise_acc[i]);
        fputs("</td><td>", f);
        html_number(f, "%+.2f pp", 100 * (r->noise_acc[i] - r->clean_acc));
        fputs("</td></tr>\n", f);
    }
    fputs("</tbody></table>\n", f);
}

static void report_figures(FILE *f, const nr_report *r)
{
    if (r->nimages <= 0 || !r->images) return;
    fputs("<h2>Pictures</h2>\n<div class=\"figures\">\n", f);
    for (int i = 0; i < r->nimages; i++) {
        const char *cap = r->image_captions && r->image_captions[i] ? r->image_captions[i] : r->images[i];
        fputs("<figure><img src=\"", f);
        url_escaped(f, r->images[i]);
        fputs("\" alt=\"", f);
        html_escaped(f, cap);
        fputs("\"><figcaption>", f);
        html_escaped(f, cap);
        fputs("</figcaption></figure>\n", f);
    }
    fputs("</div>\n", f);
}

int nr_report_html(const char *path, const nr_report *r, nr_error *err)
{
    if (!r) return nr_fail(err, "%s: no report given", path);
    if ((r->nsummary > 0 && !r->summary) || (r->nimages > 0 && !r->images))
        return nr_fail(err, "%s: report tables are missing", path);
    for (int i = 0; i < r->nimages; i++)
        if (!r->images[i]) return nr_fail(err, "%s: image %d has no file name", path, i);
    nr_atomic_file af;
    FILE *f = nr_atomic_open(&af, path, err);
    if (!f) return -1;
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>", f);
    html_escaped(f, r->title);
    fprintf(f, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>", REPORT_CSS);
    html_escaped(f, r->title);
    fputs("</h1>\n", f);
    report_summary(f, r);
    report_epochs(f, r);
    report_noise(f, r);
    report_figures(f, r);
    fputs("</body>\n</html>\n", f);
    return nr_atomic_commit(&af, 1, err);
}
