/* Pictures of a run drawn with cairo (report_html.c makes the page that
 * shows them).
 *
 * Every file is written atomically (atomic_file.h), so a reader (a browser
 * refreshing report.html, a second run) never sees half a picture. Text uses cairo's toy font API: enough for
 * labels, and it needs nothing beyond cairo itself. */
#include "plot.h"
#include "atomic_file.h"
#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <unistd.h>

#define NR_PI 3.14159265358979323846

#define CHART_W 800
#define CHART_H 500
#define FONT_FACE "sans-serif"
#define MAX_IMAGE_SIDE 4096
#define MAX_CLASSES 1000

/* fontconfig loses a few bytes while parsing its configuration the first
 * time cairo looks up a font (libfontconfig 2.14, unreachable, once per
 * process). Programs built with AddressSanitizer would fail on it at exit;
 * this hook, which LeakSanitizer reads at start-up, ignores leaks from inside
 * fontconfig only. Weak, so a program may supply its own list. */
const char *__lsan_default_suppressions(void);
__attribute__((weak)) const char *__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\n";
}

/* ---- canvas: a cairo image surface that ends as a PNG file -------------- */

typedef struct canvas {
    cairo_surface_t *surface;
    cairo_t *cr;
    int width, height;
} canvas;

static int canvas_open(canvas *cv, int width, int height, const char *path, nr_error *err)
{
    cv->width = width;
    cv->height = height;
    cv->surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    cv->cr = cairo_create(cv->surface);
    cairo_status_t st = cairo_status(cv->cr);
    if (st != CAIRO_STATUS_SUCCESS) {
        cairo_destroy(cv->cr);
        cairo_surface_destroy(cv->surface);
        return nr_fail(err, "%s: cannot create a %dx%d picture: %s", path, width, height,
                       cairo_status_to_string(st));
    }
    cairo_set_source_rgb(cv->cr, 1, 1, 1);
    cairo_paint(cv->cr);
    cairo_select_font_face(cv->cr, FONT_FACE, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    return 0;
}

static void canvas_close(canvas *cv)
{
    cairo_destroy(cv->cr);
    cairo_surface_destroy(cv->surface);
}

typedef struct png_sink {
    FILE *f;
    int write_errno;
} png_sink;

static cairo_status_t png_sink_write(void *closure, const unsigned char *data, unsigned int length)
{
    png_sink *s = closure;
    if (fwrite(data, 1, length, s->f) != length) {
        s->write_errno = errno ? errno : EIO;
        return CAIRO_STATUS_WRITE_ERROR;
    }
    return CAIRO_STATUS_SUCCESS;
}

/* Checks that every drawing call succeeded, writes the PNG atomically and
 * frees the canvas in every case. */
static int canvas_save(canvas *cv, const char *path, nr_error *err)
{
    cairo_surface_flush(cv->surface);
    cairo_status_t st = cairo_status(cv->cr);
    if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_status(cv->surface);
    if (st != CAIRO_STATUS_SUCCESS) {
        canvas_close(cv);
        return nr_fail(err, "%s: drawing failed: %s", path, cairo_status_to_string(st));
    }
    nr_atomic_file af;
    FILE *f = nr_atomic_open(&af, path, err);
    if (!f) {
        canvas_close(cv);
        return -1;
    }
    png_sink sink = {f, 0};
    st = cairo_surface_write_to_png_stream(cv->surface, png_sink_write, &sink);
    canvas_close(cv);
    if (st != CAIRO_STATUS_SUCCESS) {
        if (sink.write_errno) errno = sink.write_errno;
        if (sink.write_errno)
            nr_fail_errno(err, "%s: cannot write %s", path, af.tmp);
        else
            nr_fail(err, "%s: cannot encode PNG: %s", path, cairo_status_to_string(st));
        return nr_atomic_commit(&af, 0, err);
    }
    return nr_atomic_commit(&af, 1, err);
}

/* ---- colours ------------------------------------------------------------ */

typedef struct rgb {
    double r, g, b;
} rgb;

static rgb hex_rgb(unsigned v)
{
    return (rgb){((v >> 16) & 255) / 255.0, ((v >> 8) & 255) / 255.0, (v & 255) / 255.0};
}

/* Okabe-Ito, ordered for a white background: the pale yellow comes last. */
static rgb series_colour(int i)
{
    static const unsigned okabe_ito[] = {0x0072B2, 0xD55E00, 0x009E73, 0xE69F00,
                                         0xCC79A7, 0x56B4E9, 0x000000, 0xF0E442};
    return hex_rgb(okabe_ito[i % (int)(sizeof okabe_ito / sizeof okabe_ito[0])]);
}

static void set_colour(cairo_t *cr, rgb c)
{
    cairo_set_source_rgb(cr, c.r, c.g, c.b);
}

static const unsigned TEXT_DARK = 0x222222, TEXT_MUTED = 0x555555, GRID = 0xE3E3E3, AXIS = 0x444444;
static const unsigned GOOD_GREEN = 0x1B7F3B, BAD_RED = 0xC62828;

/* ---- text --------------------------------------------------------------- */

static void set_font(cairo_t *cr, double size, int bold)
{
    cairo_select_font_face(cr, FONT_FACE, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

static double text_width(cairo_t *cr, const char *s)
{
    cairo_text_extents_t te;
    cairo_text_extents(cr, or_empty(s), &te);
    return te.x_advance;
}

/* Copies s into buf (size cap), shortened with "..." until it is at most
 * max_w pixels wide in the current font; cuts only between UTF-8 characters. */
static const char *fit_text(cairo_t *cr, const char *s, double max_w, char *buf, size_t cap)
{
    s = or_empty(s);
    snprintf(buf, cap, "%s", s);
    size_t len = strlen(buf);
    if (len < strlen(s)) {
        while (len > 0 && ((unsigned char)buf[len] & 0xC0) == 0x80) len--;
        buf[len] = '\0';
    }
    if (text_width(cr, buf) <= max_w && len == strlen(s)) return buf;
    while (len > 0) {
        do len--;
        while (len > 0 && ((unsigned char)buf[len] & 0xC0) == 0x80);
        if (len + 4 > cap) continue;
        memcpy(buf + len, "...", 4);
        if (text_width(cr, buf) <= max_w) return buf;
    }
    buf[0] = '\0';
    return buf;
}

/* Draws s with its anchor at (x, y): ha 0/0.5/1 = left/centre/right of the
 * text, va 0/0.5/1 = top/middle/bottom of the font's ascent..descent box.
 * angle rotates the text about the anchor (radians, clockwise on screen). */
static void draw_text_at(cairo_t *cr, const char *s, double x, double y, double ha, double va, double angle)
{
    s = or_empty(s);
    cairo_font_extents_t fe;
    cairo_font_extents(cr, &fe);
    double w = text_width(cr, s);
    double h = fe.ascent + fe.descent;
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, angle);
    cairo_move_to(cr, -ha * w, -va * h + fe.ascent);
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

static void draw_text(cairo_t *cr, const char *s, double x, double y, double ha, double va)
{
    draw_text_at(cr, s, x, y, ha, va, 0);
}

static double font_height(cairo_t *cr)
{
    cairo_font_extents_t fe;
    cairo_font_extents(cr, &fe);
    return fe.ascent + fe.descent;
}

/* The title centred on top of the canvas, shortened to fit. */
static void draw_title(canvas *cv, const char *title)
{
    char buf[512];
    set_font(cv->cr, 17, 1);
    set_colour(cv->cr, hex_rgb(TEXT_DARK));
    draw_text(cv->cr, fit_text(cv->cr, title, cv->width - 24, buf, sizeof buf), cv->width / 2.0, 12, 0.5, 0);
}

/* ---- scales and ticks --------------------------------------------------- */

/* The 1, 2 or 5 x 10^k step that cuts range into about target pieces. */
static double nice_step(double range, int target)
{
    if (!(range > 0) || !isfinite(range)) return 1;
    double raw = range / target;
    double mag = pow(10, floor(log10(raw)));
    double norm = raw / mag;
    double f = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
    return f * mag;
}

typedef struct scale {
    double lo, hi, step;
    int percent;       /* labels show 100 * value with a "%" */
    int categorical;   /* no numeric tick labels: the caller labels slots */
    int bounded;       /* ticks only within [tick_min, tick_max] (epochs 1..n) */
    double tick_min, tick_max;
} scale;

/* A value axis spanning [lo, hi] widened to whole steps. */
static scale value_scale(double lo, double hi, int target)
{
    if (!(lo <= hi)) lo = 0, hi = 1;
    if (hi - lo < 1e-12 * fmax(1, fabs(hi))) {
        double pad = fabs(lo) > 0 ? fabs(lo) * 0.1 : 0.5;
        lo -= pad;
        hi += pad;
    }
    scale s = {0};
    s.step = nice_step(hi - lo, target);
    s.lo = floor(lo / s.step + 1e-9) * s.step;
    s.hi = ceil(hi / s.step - 1e-9) * s.step;
    if (s.hi <= s.lo) s.hi = s.lo + s.step;
    return s;
}

/* Digits after the point that tick labels of this step need. */
static int step_decimals(double step)
{
    int d = (int)ceil(-log10(step) - 1e-9);
    return d < 0 ? 0 : d > 10 ? 10 : d;
}

static void tick_label(const scale *s, double v, char *buf, size_t cap)
{
    double shown = s->percent ? v * 100 : v;
    double step = s->percent ? s->step * 100 : s->step;
    if (fabs(shown) < step * 1e-6) shown = 0;   /* no "-0" */
    double mag = fabs(shown);
    if (mag != 0 && (mag >= 1e6 || mag < 1e-4))
        snprintf(buf, cap, "%.3g%s", shown, s->percent ? "%" : "");
    else
        snprintf(buf, cap, "%.*f%s", step_decimals(step), shown, s->percent ? "%" : "");
}

/* Ticks are whole multiples of the step, counted, not accumulated. */
static long first_tick(const scale *s)
{
    double lo = s->bounded ? fmax(s->lo, s->tick_min) : s->lo;
    return (long)ceil(lo / s->step - 1e-9);
}

static long last_tick(const scale *s)
{
    double hi = s->bounded ? fmin(s->hi, s->tick_max) : s->hi;
    return (long)floor(hi / s->step + 1e-9);
}

/* ---- an x/y chart ------------------------------------------------------- */

typedef struct chart {
    canvas *cv;
    double x0, y0, x1, y1;   /* plot area: left, top, right, bottom */
    scale xs, ys;
} chart;

static double map_x(const chart *c, double v)
{
    return c->x0 + (v - c->xs.lo) / (c->xs.hi - c->xs.lo) * (c->x1 - c->x0);
}

static double map_y(const chart *c, double v)
{
    return c->y1 - (v - c->ys.lo) / (c->ys.hi - c->ys.lo) * (c->y1 - c->y0);
}

static double widest_tick_label(cairo_t *cr, const scale *s)
{
    char buf[64];
    double w = 0;
    for (long k = first_tick(s); k <= last_tick(s); k++) {
        tick_label(s, k * s->step, buf, sizeof buf);
        w = fmax(w, text_width(cr, buf));
    }
    return w;
}

#define TICK_FONT 12
#define LABEL_FONT 13
#define LEGEND_FONT 12.5

/* Horizontal grid lines, the frame, y ticks with labels, the y axis title;
 * x ticks with labels unless the x axis is categorical. */
static void draw_axes(chart *c, const char *xlabel, const char *ylabel)
{
    cairo_t *cr = c->cv->cr;
    char buf[64], fitted[512];
    cairo_set_line_width(cr, 1);
    set_font(cr, TICK_FONT, 0);
    for (long k = first_tick(&c->ys); k <= last_tick(&c->ys); k++) {
        double v = k * c->ys.step;
        double y = round(map_y(c, v)) + 0.5;
        set_colour(cr, hex_rgb(GRID));
        cairo_move_to(cr, c->x0, y);
        cairo_line_to(cr, c->x1, y);
        cairo_stroke(cr);
        set_colour(cr, hex_rgb(AXIS));
        cairo_move_to(cr, c->x0 - 5, y);
        cairo_line_to(cr, c->x0, y);
        cairo_stroke(cr);
        tick_label(&c->ys, v, buf, sizeof buf);
        set_colour(cr, hex_rgb(TEXT_MUTED));
        draw_text(cr, buf, c->x0 - 8, y, 1, 0.5);
    }
    if (!c->xs.categorical) {
        for (long k = first_tick(&c->xs); k <= last_tick(&c->xs); k++) {
            double v = k * c->xs.step;
            double x = round(map_x(c, v)) + 0.5;
            set_colour(cr, hex_rgb(AXIS));
            cairo_move_to(cr, x, c->y1);
            cairo_line_to(cr, x, c->y1 + 5);
            cairo_stroke(cr);
            tick_label(&c->xs, v, buf, sizeof buf);
            set_colour(cr, hex_rgb(TEXT_MUTED));
            draw_text(cr, buf, x, c->y1 + 8, 0.5, 0);
        }
    }
    set_colour(cr, hex_rgb(AXIS));
    cairo_rectangle(cr, round(c->x0) + 0.5, round(c->y0) + 0.5, round(c->x1) - round(c->x0),
                    round(c->y1) - round(c->y0));
    cairo_stroke(cr);

    set_font(cr, LABEL_FONT, 0);
    set_colour(cr, hex_rgb(TEXT_DARK));
    if (xlabel && *xlabel)
        draw_text(cr, fit_text(cr, xlabel, c->x1 - c->x0, fitted, sizeof fitted), (c->x0 + c->x1) / 2,
                  c->cv->height - 10, 0.5, 1);
    if (ylabel && *ylabel)
        draw_text_at(cr, fit_text(cr, ylabel, c->y1 - c->y0, fitted, sizeof fitted), 12, (c->y0 + c->y1) / 2,
                     0.5, 0, -NR_PI / 2);
}

/* Marker shapes differ per series too, so series stay apart in grey print. */
static void marker_path(cairo_t *cr, int shape, double x, double y, double r)
{
    switch (shape % 5) {
    case 0:
        cairo_new_sub_path(cr);
        cairo_arc(cr, x, y, r, 0, 2 * NR_PI);
        break;
    case 1:
        cairo_rectangle(cr, x - r * 0.85, y - r * 0.85, r * 1.7, r * 1.7);
        break;
    case 2:
        cairo_move_to(cr, x, y - r * 1.15);
        cairo_line_to(cr, x + r * 1.05, y + r * 0.75);
        cairo_line_to(cr, x - r * 1.05, y + r * 0.75);
        cairo_close_path(cr);
        break;
    case 3:
        cairo_move_to(cr, x, y - r * 1.2);
        cairo_line_to(cr, x + r * 1.2, y);
        cairo_line_to(cr, x, y + r * 1.2);
        cairo_line_to(cr, x - r * 1.2, y);
        cairo_close_path(cr);
        break;
    default:
        cairo_move_to(cr, x, y + r * 1.15);
        cairo_line_to(cr, x + r * 1.05, y - r * 0.75);
        cairo_line_to(cr, x - r * 1.05, y - r * 0.75);
        cairo_close_path(cr);
        break;
    }
}

static void draw_marker(cairo_t *cr, int shape, rgb colour, double x, double y)
{
    marker_path(cr, shape, x, y, 4);
    set_colour(cr, colour);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
}

static int finite_at(const nr_series *s, int i)
{
    return i >= 0 && i < s->n && s->y && isfinite(s->y[i]);
}

/* One series as a line through its finite values, broken at NaN; point i
 * sits at x = x_first + i. A point with no finite neighbour would draw no
 * line, so it always gets a marker. */
static void draw_series(chart *c, const nr_series *s, int index, double x_first, int markers)
{
    cairo_t *cr = c->cv->cr;
    rgb colour = series_colour(index);
    cairo_save(cr);
    cairo_rectangle(cr, c->x0 - 6, c->y0 - 6, c->x1 - c->x0 + 12, c->y1 - c->y0 + 12);
    cairo_clip(cr);
    cairo_set_line_width(cr, 2.2);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    set_colour(cr, colour);
    for (int i = 0; i < s->n; i++) {
        if (!finite_at(s, i)) continue;
        double x = map_x(c, x_first + i), y = map_y(c, s->y[i]);
        if (finite_at(s, i - 1))
            cairo_line_to(cr, x, y);
        else
            cairo_move_to(cr, x, y);
    }
    cairo_stroke(cr);
    for (int i = 0; i < s->n; i++) {
        if (!finite_at(s, i)) continue;
        int isolated = !finite_at(s, i - 1) && !finite_at(s, i + 1);
        if (markers || isolated) draw_marker(cr, index, colour, map_x(c, x_first + i), map_y(c, s->y[i]));
    }
    cairo_restore(cr);
}

/* ---- legend: entries in centred rows between the title and the plot ---- */

#define LEGEND_SWATCH 26
#define LEGEND_ROW_H 20

static double legend_entry_width(cairo_t *cr, const nr_series *s, double max_w)
{
    char buf[256];
    return LEGEND_SWATCH + 6 + text_width(cr, fit_text(cr, s->label, max_w, buf, sizeof buf)) + 18;
}

/* Lays out (draw = 0: only counts) or draws the legend from top y; returns
 * the number of rows. */
static int legend(canvas *cv, const nr_series *series, int nseries, double y, int draw)
{
    cairo_t *cr = cv->cr;
    set_font(cr, LEGEND_FONT, 0);
    double avail = cv->width - 40, max_label = avail / 2;
    int rows = 0;
    for (int first = 0; first < nseries; rows++) {
        int last = first;
        double w = legend_entry_width(cr, &series[first], max_label);
        while (last + 1 < nseries && w + legend_entry_width(cr, &series[last + 1], max_label) <= avail)
            w += legend_entry_width(cr, &series[++last], max_label);
        if (draw) {
            double x = (cv->width - w + 18) / 2, cy = y + rows * LEGEND_ROW_H + LEGEND_ROW_H / 2.0;
            for (int i = first; i <= last; i++) {
                char buf[256];
                rgb colour = series_colour(i);
                set_colour(cr, colour);
                cairo_set_line_width(cr, 2.2);
                cairo_move_to(cr, x, cy);
                cairo_line_to(cr, x + LEGEND_SWATCH, cy);
                cairo_stroke(cr);
                draw_marker(cr, i, colour, x + LEGEND_SWATCH / 2.0, cy);
                set_colour(cr, hex_rgb(TEXT_DARK));
                set_font(cr, LEGEND_FONT, 0);
                draw_text(cr, fit_text(cr, series[i].label, max_label, buf, sizeof buf), x + LEGEND_SWATCH + 6, cy,
                          0, 0.5);
                x += legend_entry_width(cr, &series[i], max_label);
            }
        }
        first = last + 1;
    }
    return rows;
}

static int check_series(const char *path, const nr_series *series, int nseries, nr_error *err)
{
    if (nseries < 0 || (nseries > 0 && !series)) return nr_fail(err, "%s: no series given", path);
    for (int i = 0; i < nseries; i++)
        if (series[i].n < 0 || (series[i].n > 0 && !series[i].y))
            return nr_fail(err, "%s: series %d has no values", path, i);
    return 0;
}

/* Smallest and largest finite value over all series; 0 when none. */
static int value_range(const nr_series *series, int nseries, double *lo, double *hi)
{
    int any = 0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < nseries; i++)
        for (int k = 0; k < series[i].n; k++)
            if (isfinite(series[i].y[k])) {
                *lo = fmin(*lo, series[i].y[k]);
                *hi = fmax(*hi, series[i].y[k]);
                any = 1;
            }
    return any;
}

/* Title, legend and the plot area left after margins for the labels. */
static void chart_layout(chart *c, const char *title, const nr_series *series, int nseries, int has_ylabel,
                         double bottom_extra)
{
    cairo_t *cr = c->cv->cr;
    draw_title(c->cv, title);
    int rows = legend(c->cv, series, nseries, 40, 1);
    set_font(cr, TICK_FONT, 0);
    c->x0 = (has_ylabel ? 30 : 10) + widest_tick_label(cr, &c->ys) + 10;
    c->x1 = c->cv->width - 24;
    c->y0 = 40 + rows * LEGEND_ROW_H + 14;
    c->y1 = c->cv->height - 10 - 22 - bottom_extra;
}

static void draw_no_data(chart *c)
{
    set_font(c->cv->cr, 15, 0);
    set_colour(c->cv->cr, hex_rgb(TEXT_MUTED));
    draw_text(c->cv->cr, "no data", (c->x0 + c->x1) / 2, (c->y0 + c->y1) / 2, 0.5, 0.5);
}

#define MARKER_LIMIT 40   /* more points than this: lines only */

int nr_plot_curves(const char *path, const char *title, const char *xlabel, const char *ylabel,
                   const nr_series *series, int nseries, nr_error *err)
{
    if (check_series(path, series, nseries, err)) return -1;
    canvas cv;
    if (canvas_open(&cv, CHART_W, CHART_H, path, err)) return -1;
    chart c = {.cv = &cv};
    int n = 0;
    for (int i = 0; i < nseries; i++) n = series[i].n > n ? series[i].n : n;
    double lo, hi;
    int any = value_range(series, nseries, &lo, &hi);
    c.ys = any ? value_scale(lo, hi, 6) : value_scale(0, 1, 5);
    /* Epochs are whole numbers: steps below 1 would repeat labels. */
    c.xs.step = fmax(1, nice_step(n > 1 ? n - 1 : 1, 10));
    double pad = n > 1 ? 0.02 * (n - 1) : 1;
    c.xs.lo = (n > 0 ? 1 : 0) - pad;
    c.xs.hi = (n > 0 ? n : 1) + pad;
    c.xs.bounded = 1;   /* no epoch 0 or -1 */
    c.xs.tick_min = 1;
    c.xs.tick_max = n > 1 ? n : 1;
    chart_layout(&c, title, series, nseries, ylabel && *ylabel, TICK_FONT + 10);
    draw_axes(&c, xlabel, ylabel);
    for (int i = 0; i < nseries; i++) draw_series(&c, &series[i], i, 1, n <= MARKER_LIMIT);
    if (!any) draw_no_data(&c);
    return canvas_save(&cv, path, err);
}

/* ---- sweep: categorical x axis ----------------------------------------- */

#define SWEEP_LABEL_ANGLE (35 * NR_PI / 180)
#define SWEEP_LABEL_MAX 170

/* Labels horizontal when each fits its slot, otherwise slanted; every
 * stride-th label only when even slanted ones would overlap. */
typedef struct slot_labels {
    int slanted, stride;
    double extra_height;   /* room the labels need below the plot */
} slot_labels;

static slot_labels plan_slot_labels(cairo_t *cr, const char *const *labels, int n, double plot_w)
{
    char buf[256];
    slot_labels p = {0, 1, 0};
    set_font(cr, TICK_FONT, 0);
    double widest = 0, h = font_height(cr), slot = n > 0 ? plot_w / n : plot_w;
    for (int i = 0; i < n; i++)
        widest = fmax(widest, text_width(cr, fit_text(cr, labels ? labels[i] : NULL, SWEEP_LABEL_MAX, buf, sizeof buf)));
    if (widest <= slot - 8) {
        p.extra_height = h + 10;
        return p;
    }
    p.slanted = 1;
    /* Slanted labels are spaced by their height divided by sin(angle). */
    double need = (h + 2) / sin(SWEEP_LABEL_ANGLE);
    while (slot * p.stride < need) p.stride++;
    p.extra_height = widest * sin(SWEEP_LABEL_ANGLE) + h * cos(SWEEP_LABEL_ANGLE) + 12;
    return p;
}

static void draw_slot_labels(chart *c, const char *const *labels, int n, const slot_labels *p)
{
    cairo_t *cr = c->cv->cr;
    char buf[256];
    set_font(cr, TICK_FONT, 0);
    cairo_set_line_width(cr, 1);
    for (int i = 0; i < n; i++) {
        double x = round(map_x(c, i)) + 0.5;
        set_colour(cr, hex_rgb(AXIS));
        cairo_move_to(cr, x, c->y1);
        cairo_line_to(cr, x, c->y1 + 5);
        cairo_stroke(cr);
        if (i % p->stride) continue;
        const char *s = fit_text(cr, labels ? labels[i] : NULL, SWEEP_LABEL_MAX, buf, sizeof buf);
        set_colour(cr, hex_rgb(TEXT_MUTED));
        if (p->slanted)
            draw_text_at(cr, s, x + 4, c->y1 + 8, 1, 0.5, -SWEEP_LABEL_ANGLE);
        else
            draw_text(cr, s, x, c->y1 + 8, 0.5, 0);
    }
}

static int all_fractions(const nr_series *series, int nseries)
{
    for (int i = 0; i < nseries; i++)
        for (int k = 0; k < series[i].n; k++)
            if (isfinite(series[i].y[k]) && (series[i].y[k] < 0 || series[i].y[k] > 1)) return 0;
    return 1;
}

int nr_plot_sweep(const char *path, const char *title, const char *const *point_labels, int npoints,
                  const nr_series *series, int nseries, nr_error *err)
{
    if (npoints < 0) return nr_fail(err, "%s: negative number of sweep points", path);
    if (check_series(path, series, nseries, err)) return -1;
    /* Values past the last sweep point have no slot to sit in. */
    nr_series *clipped = malloc(sizeof *clipped * (nseries > 0 ? nseries : 1));
    if (!clipped) return nr_fail(err, "%s: out of memory", path);
    for (int i = 0; i < nseries; i++) {
        clipped[i] = series[i];
        if (clipped[i].n > npoints) clipped[i].n = npoints;
    }
    canvas cv;
    if (canvas_open(&cv, CHART_W, CHART_H, path, err)) {
        free(clipped);
        return -1;
    }
    chart c = {.cv = &cv};
    double lo, hi;
    int any = value_range(clipped, nseries, &lo, &hi);
    c.ys = any ? value_scale(lo, hi, 6) : value_scale(0, 1, 5);
    if (all_fractions(clipped, nseries)) {
        c.ys.percent = 1;
        /* Accuracy cannot pass 100% or drop below 0%: no tick out there. */
        if (c.ys.hi > 1 && hi <= 1) c.ys.hi = fmax(1, c.ys.lo + c.ys.step);
        if (c.ys.lo < 0 && lo >= 0) c.ys.lo = 0;
    }
    c.xs = (scale){.lo = -0.5, .hi = (npoints > 0 ? npoints : 1) - 0.5, .step = 1, .categorical = 1};
    /* The label plan needs the plot width, which the label room changes only vertically. */
    chart_layout(&c, title, clipped, nseries, 1, 0);
    slot_labels plan = plan_slot_labels(cv.cr, point_labels, npoints, c.x1 - c.x0);
    c.y1 -= plan.extra_height;
    if (c.y1 < c.y0 + 80) c.y1 = c.y0 + 80;
    draw_axes(&c, NULL, c.ys.percent ? "accuracy" : NULL);
    draw_slot_labels(&c, point_labels, npoints, &plan);
    for (int i = 0; i < nseries; i++) draw_series(&c, &clipped[i], i, 0, 1);
    if (!any) draw_no_data(&c);
    free(clipped);
    return canvas_save(&cv, path, err);
}

/* ---- image grid --------------------------------------------------------- */

/* One CHW uint8 image as a cairo surface, grey when c == 1. */
static cairo_surface_t *image_surface(const uint8_t *px, int c, int h, int w)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) return s;
    cairo_surface_flush(s);
    unsigned char *data = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    size_t plane = (size_t)h * w;
    for (int y = 0; y < h; y++) {
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)y * stride);
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            uint32_t r = px[i], g = c == 3 ? px[plane + i] : r, b = c == 3 ? px[2 * plane + i] : r;
            row[x] = 0xFF000000u | r << 16 | g << 8 | b;
        }
    }
    cairo_surface_mark_dirty(s);
    return s;
}

/* Small images grow by a whole factor (nearest neighbour keeps pixels
 * crisp) to about 96 px; large ones shrink to 128 px. */
static double image_zoom(int h, int w)
{
    int side = h > w ? h : w;
    if (side <= 96) return 96 / side;
    return side > 128 ? 128.0 / side : 1;
}

/* Splits a caption at its first " / " or newline into two lines. */
static void split_caption(const char *cap, char *l1, char *l2, size_t n)
{
    cap = or_empty(cap);
    const char *nl = strchr(cap, '\n'), *sl = strstr(cap, " / ");
    const char *cut = nl && (!sl || nl < sl) ? nl : sl;
    if (!cut) {
        snprintf(l1, n, "%s", cap);
        l2[0] = '\0';
        return;
    }
    snprintf(l1, n, "%.*s", (int)(cut - cap), cap);
    snprintf(l2, n, "%s", cut + (cut == nl ? 1 : 3));
}

#define GRID_PAD 16
#define GRID_GAP 14
#define CAPTION_FONT 11.5
#define CAPTION_LINE 15
#define GRID_TITLE_H 46

typedef struct grid_layout {
    int columns, rows;
    double zoom, img_w, img_h, cell_w, cell_h;
} grid_layout;

static grid_layout plan_grid(int n, int columns, int h, int w)
{
    grid_layout g;
    g.columns = columns > 0 ? columns : n < 8 ? (n > 0 ? n : 1) : 8;
    if (g.columns > n && n > 0) g.columns = n;
    g.rows = n > 0 ? (n + g.columns - 1) / g.columns : 1;
    g.zoom = image_zoom(h, w);
    g.img_w = round(w * g.zoom);
    g.img_h = round(h * g.zoom);
    g.cell_w = g.img_w > 124 ? g.img_w : 124;
    g.cell_h = g.img_h + 6 + 2 * CAPTION_LINE;
    return g;
}

static int draw_grid_cell(canvas *cv, const grid_layout *g, double x, double y, const uint8_t *px, int c, int h,
                          int w, const char *caption, int good_known, int good)
{
    cairo_t *cr = cv->cr;
    cairo_surface_t *img = image_surface(px, c, h, w);
    cairo_status_t st = cairo_surface_status(img);
    if (st != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(img);
        return -1;
    }
    double ix = round(x + (g->cell_w - g->img_w) / 2), iy = round(y);
    rgb mark = hex_rgb(!good_known ? TEXT_DARK : good ? GOOD_GREEN : BAD_RED);
    if (good_known) {
        set_colour(cr, mark);
        cairo_rectangle(cr, ix - 3, iy - 3, g->img_w + 6, g->img_h + 6);
        cairo_fill(cr);
    }
    cairo_save(cr);
    cairo_translate(cr, ix, iy);
    cairo_scale(cr, g->zoom, g->zoom);
    cairo_set_source_surface(cr, img, 0, 0);
    cairo_pattern_t *pat = cairo_get_source(cr);
    cairo_pattern_set_filter(pat, g->zoom >= 1 ? CAIRO_FILTER_NEAREST : CAIRO_FILTER_GOOD);
    cairo_pattern_set_extend(pat, CAIRO_EXTEND_PAD);
    cairo_rectangle(cr, 0, 0, w, h);
    cairo_fill(cr);
    cairo_restore(cr);
    cairo_surface_destroy(img);

    char l1[512], l2[512], fitted[512];
    split_caption(caption, l1, l2, sizeof l1);
    set_font(cr, CAPTION_FONT, 0);
    set_colour(cr, mark);
    double cx = x + g->cell_w / 2, cy = iy + g->img_h + 6;
    draw_text(cr, fit_text(cr, l1, g->cell_w, fitted, sizeof fitted), cx, cy, 0.5, 0);
    if (l2[0]) draw_text(cr, fit_text(cr, l2, g->cell_w, fitted, sizeof fitted), cx, cy + CAPTION_LINE, 0.5, 0);
    return 0;
}

int nr_plot_image_grid(const char *path, const char *title, const uint8_t *const *images, int c, int h, int w,
                       const char *const *captions, const int *good, int n, int columns, nr_error *err)
{
    if (c != 1 && c != 3) return nr_fail(err, "%s: images must have 1 or 3 channels, not %d", path, c);
    if (h <= 0 || w <= 0 || h > MAX_IMAGE_SIDE || w > MAX_IMAGE_SIDE)
        return nr_fail(err, "%s: bad image size %dx%d", path, h, w);
    if (n < 0 || (n > 0 && !images)) return nr_fail(err, "%s: no images given", path);
    for (int i = 0; i < n; i++)
        if (!images[i]) return nr_fail(err, "%s: image %d is missing", path, i);
    grid_layout g = plan_grid(n, columns, h, w);
    double grid_w = g.columns * g.cell_w + (g.columns - 1) * GRID_GAP;
    int width = (int)ceil(fmax(grid_w + 2 * GRID_PAD, 360));
    int height = (int)ceil(GRID_TITLE_H + g.rows * g.cell_h + (g.rows - 1) * GRID_GAP + GRID_PAD);
    if ((double)width * height > 64e6)
        return nr_fail(err, "%s: %d images of %dx%d make a picture too large", path, n, h, w);
    canvas cv;
    if (canvas_open(&cv, width, height, path, err)) return -1;
    draw_title(&cv, title);
    double left = round((width - grid_w) / 2);
    for (int i = 0; i < n; i++) {
        double x = left + (i % g.columns) * (g.cell_w + GRID_GAP);
        double y = GRID_TITLE_H + (i / g.columns) * (g.cell_h + GRID_GAP);
        if (draw_grid_cell(&cv, &g, x, y, images[i], c, h, w, captions ? captions[i] : NULL, good != NULL,
                           good ? good[i] : 0)) {
            canvas_close(&cv);
            return nr_fail(err, "%s: cannot make a picture of image %d", path, i);
        }
    }
    if (n == 0) {
        set_font(cv.cr, 15, 0);
        set_colour(cv.cr, hex_rgb(TEXT_MUTED));
        draw_text(cv.cr, "no images", width / 2.0, GRID_TITLE_H + g.cell_h / 2, 0.5, 0.5);
    }
    return canvas_save(&cv, path, err);
}

/* ---- confusion matrix --------------------------------------------------- */

/* A white-to-dark-blue ramp (ColorBrewer "Blues") for row shares 0..1. */
static rgb heat_colour(double v)
{
    static const unsigned stops[] = {0xF7FBFF, 0xC6DBEF, 0x6BAED6, 0x2171B5, 0x08306B};
    int last = (int)(sizeof stops / sizeof stops[0]) - 1;
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    double pos = v * last;
    int i = (int)pos;
    if (i >= last) return hex_rgb(stops[last]);
    double t = pos - i;
    rgb a = hex_rgb(stops[i]), b = hex_rgb(stops[i + 1]);
    return (rgb){a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
}

static double linear_channel(double c)
{
    return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4);
}

/* White text on dark cells, dark text on light ones (WCAG luminance). */
static rgb contrast_text(rgb bg)
{
    double lum = 0.2126 * linear_channel(bg.r) + 0.7152 * linear_channel(bg.g) + 0.0722 * linear_channel(bg.b);
    return lum < 0.3 ? (rgb){1, 1, 1} : hex_rgb(TEXT_DARK);
}

#define NAMED_CLASSES_MAX 20

typedef struct confusion_layout {
    int classes, stride, slanted, use_index;
    double cell, label_font, left, top, label_w, x_label_h;
} confusion_layout;

static const char *class_label(const confusion_layout *L, const char *const *names, int i, char *buf, size_t cap)
{
    if (L->use_index || !names || !names[i])
        snprintf(buf, cap, "%d", i);
    else
        snprintf(buf, cap, "%s", names[i]);
    return buf;
}

static confusion_layout plan_confusion(cairo_t *cr, int classes, const char *const *names)
{
    confusion_layout L = {0};
    L.classes = classes;
    L.use_index = classes > NAMED_CLASSES_MAX;
    L.cell = floor(560.0 / classes);
    L.cell = L.cell > 56 ? 56 : L.cell < 5 ? 5 : L.cell;
    L.label_font = classes > NAMED_CLASSES_MAX ? 10 : 12;
    set_font(cr, L.label_font, 0);
    double h = font_height(cr);
    L.stride = 1;
    while (L.cell * L.stride < h + 1) L.stride++;
    char buf[256], fitted[256];
    for (int i = 0; i < classes; i++)
        L.label_w = fmax(L.label_w,
                         text_width(cr, fit_text(cr, class_label(&L, names, i, buf, sizeof buf), 150, fitted, sizeof fitted)));
    L.slanted = L.label_w > L.cell * L.stride - 4;
    L.x_label_h = L.slanted ? (L.label_w + h) * sin(NR_PI / 4) : h + 2;
    L.left = 16 + 20 + L.label_w + 10;
    L.top = GRID_TITLE_H + 8;
    return L;
}

static void draw_class_labels(cairo_t *cr, const confusion_layout *L, const char *const *names)
{
    char buf[256], fitted[256];
    set_font(cr, L->label_font, 0);
    set_colour(cr, hex_rgb(TEXT_DARK));
    double bottom = L->top + L->classes * L->cell;
    for (int i = 0; i < L->classes; i += L->stride) {
        const char *s = fit_text(cr, class_label(L, names, i, buf, sizeof buf), 150, fitted, sizeof fitted);
        double mid = (i + 0.5) * L->cell;
        draw_text(cr, s, L->left - 6, L->top + mid, 1, 0.5);
        if (L->slanted)
            draw_text_at(cr, s, L->left + mid + 3, bottom + 6, 1, 0.5, -NR_PI / 4);
        else
            draw_text(cr, s, L->left + mid, bottom + 5, 0.5, 0);
    }
}

/* The count in a cell, shrunk until it fits; nothing when it cannot. */
static void draw_count(cairo_t *cr, long count, double x, double y, double cell, rgb bg)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", count);
    for (double size = fmin(13, cell * 0.42); size >= 6.5; size -= 0.5) {
        set_font(cr, size, 0);
        if (text_width(cr, buf) <= cell - 4) {
            set_colour(cr, contrast_text(bg));
            draw_text(cr, buf, x + cell / 2, y + cell / 2, 0.5, 0.5);
            return;
        }
    }
}

static void draw_colour_bar(cairo_t *cr, double x, double top, double height)
{
    cairo_pattern_t *ramp = cairo_pattern_create_linear(0, top + height, 0, top);
    for (int k = 0; k <= 20; k++) {
        rgb col = heat_colour(k / 20.0);
        cairo_pattern_add_color_stop_rgb(ramp, k / 20.0, col.r, col.g, col.b);
    }
    cairo_set_source(cr, ramp);
    cairo_rectangle(cr, x, top, 14, height);
    cairo_fill(cr);
    cairo_pattern_destroy(ramp);
    set_colour(cr, hex_rgb(AXIS));
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, x + 0.5, top + 0.5, 13, height - 1);
    cairo_stroke(cr);
    set_font(cr, 11, 0);
    for (int k = 0; k <= 4; k++) {
        char buf[16];
        double y = round(top + height - k / 4.0 * height) + 0.5;
        set_colour(cr, hex_rgb(AXIS));
        cairo_move_to(cr, x + 14, y);
        cairo_line_to(cr, x + 18, y);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%d%%", 25 * k);
        set_colour(cr, hex_rgb(TEXT_MUTED));
        draw_text(cr, buf, x + 21, y, 0, 0.5);
    }
    set_font(cr, 11.5, 0);
    draw_text_at(cr, "share of true class", x + 62, top + height / 2, 0.5, 0.5, NR_PI / 2);
}

int nr_plot_confusion(const char *path, const char *title, const long *counts, int classes,
                      const char *const *class_names, nr_error *err)
{
    if (classes <= 0 || classes > MAX_CLASSES) return nr_fail(err, "%s: bad number of classes %d", path, classes);
    if (!counts) return nr_fail(err, "%s: no counts given", path);
    for (long i = 0; i < (long)classes * classes; i++)
        if (counts[i] < 0) return nr_fail(err, "%s: negative count %ld in cell %ld", path, counts[i], i);
    /* Measure on a scratch surface: the canvas size depends on the labels. */
    cairo_surface_t *probe = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
    cairo_t *pcr = cairo_create(probe);
    confusion_layout L = plan_confusion(pcr, classes, class_names);
    cairo_status_t st = cairo_status(pcr);
    cairo_destroy(pcr);
    cairo_surface_destroy(probe);
    if (st != CAIRO_STATUS_SUCCESS) return nr_fail(err, "%s: cannot measure text: %s", path, cairo_status_to_string(st));

    double side = classes * L.cell;
    int width = (int)ceil(fmax(L.left + side + 24 + 14 + 80, 520));
    int height = (int)ceil(L.top + side + 6 + L.x_label_h + 8 + 22 + 10);
    canvas cv;
    if (canvas_open(&cv, width, height, path, err)) return -1;
    char full_title[600];
    snprintf(full_title, sizeof full_title, "%s%s", or_empty(title),
             L.use_index ? " (classes shown by index)" : "");
    draw_title(&cv, full_title);

    cairo_t *cr = cv.cr;
    for (int t = 0; t < classes; t++) {
        long row = 0;
        for (int p = 0; p < classes; p++) row += counts[(long)t * classes + p];
        for (int p = 0; p < classes; p++) {
            long n = counts[(long)t * classes + p];
            rgb bg = heat_colour(row > 0 ? (double)n / row : 0);
            double x = L.left + p * L.cell, y = L.top + t * L.cell;
            set_colour(cr, bg);
            cairo_rectangle(cr, x, y, L.cell, L.cell);
            cairo_fill(cr);
            if (classes <= NAMED_CLASSES_MAX) draw_count(cr, n, x, y, L.cell, bg);
        }
    }
    set_colour(cr, hex_rgb(AXIS));
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, L.left - 0.5, L.top - 0.5, side + 1, side + 1);
    cairo_stroke(cr);
    draw_class_labels(cr, &L, class_names);
    draw_colour_bar(cr, L.left + side + 24, L.top, side);

    set_font(cr, LABEL_FONT, 1);
    set_colour(cr, hex_rgb(TEXT_DARK));
    draw_text(cr, "predicted", L.left + side / 2, height - 10, 0.5, 1);
    draw_text_at(cr, "true", 16, L.top + side / 2, 0.5, 0, -NR_PI / 2);
    return canvas_save(&cv, path, err);
}
