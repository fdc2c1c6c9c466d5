/* Plots and report.html: every picture is a real PNG of the expected size
 * whose pixels show what was asked for (series colours, NaN gaps, crisp
 * upscaled images), files appear atomically, errors name the path, and the
 * report escapes everything it is given.
 *
 * Besides the tests, two modes serve tests/report_screenshot.sh:
 *   test_rt_plot --sample DIR      writes sample pictures and report.html
 *   test_rt_plot --not-blank PNG   exits 0 when the PNG has more than one colour
 *   test_rt_plot --has-colour PNG RRGGBB   exits 0 when over 100 pixels are near that colour */
#include "pictures.h"
#include "plot.h"
#include "report_html.h"
#include "scratch.h"
#include "tap.h"
#include <cairo.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- files ---- */

/* Whether dir holds a leftover "NAME.tmp.PID" file. */
static int has_temporary_file(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int found = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) found |= strstr(de->d_name, ".tmp.") != NULL;
    closedir(d);
    return found;
}

/* The whole file, NUL-terminated; *len gets its size. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = (cap + 4096) * 2;
            char *grown = realloc(buf, cap);
            if (!grown) break;
            buf = grown;
        }
        size_t got = fread(buf + n, 1, 4096, f);
        n += got;
        if (got < 4096) break;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

/* Width and height from the IHDR chunk, after checking the PNG signature; 0 on success. */
static int png_size(const char *path, unsigned *w, unsigned *h)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    size_t len = 0;
    unsigned char *b = (unsigned char *)slurp(path, &len);
    int rc = -1;
    if (b && len >= 24 && !memcmp(b, sig, 8) && !memcmp(b + 12, "IHDR", 4)) {
        *w = (unsigned)b[16] << 24 | (unsigned)b[17] << 16 | (unsigned)b[18] << 8 | b[19];
        *h = (unsigned)b[20] << 24 | (unsigned)b[21] << 16 | (unsigned)b[22] << 8 | b[23];
        rc = 0;
    }
    free(b);
    return rc;
}

/* Pixels of the PNG within tol (per channel) of colour 0xRRGGBB; -1 when unreadable. */
static long count_colour(const char *path, unsigned colour, int tol)
{
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return -1;
    }
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    int stride = cairo_image_surface_get_stride(s);
    const unsigned char *data = cairo_image_surface_get_data(s);
    int want[3] = {(colour >> 16) & 255, (colour >> 8) & 255, colour & 255};
    long n = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint32_t px = *(const uint32_t *)(const void *)(data + (size_t)y * stride + 4 * (size_t)x);
            int got[3] = {(px >> 16) & 255, (px >> 8) & 255, px & 255};
            int close = 1;
            for (int k = 0; k < 3; k++) close &= abs(got[k] - want[k]) <= tol;
            n += close;
        }
    cairo_surface_destroy(s);
    return n;
}

/* Number of distinct colours, capped at 2 (all we need to know). */
static int more_than_one_colour(const char *path)
{
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return -1;
    }
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    int stride = cairo_image_surface_get_stride(s);
    const unsigned char *data = cairo_image_surface_get_data(s);
    uint32_t first = 0;
    int varied = 0;
    for (int y = 0; y < h && !varied; y++)
        for (int x = 0; x < w && !varied; x++) {
            uint32_t px = *(const uint32_t *)(const void *)(data + (size_t)y * stride + 4 * (size_t)x) & 0xFFFFFF;
            if (x == 0 && y == 0) first = px;
            varied = px != first;
        }
    cairo_surface_destroy(s);
    return varied;
}

static int occurrences(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

#define BLUE 0x0072B2   /* first series colour */

/* ---- sample data ---- */

static void sample_curves(double *train, double *val, double *gappy, int n)
{
    for (int i = 0; i < n; i++) {
        train[i] = 0.55 + 0.4 * (1 - exp(-i / 4.0)) + 0.01 * sin(i * 1.7);
        val[i] = 0.52 + 0.37 * (1 - exp(-i / 5.0)) + 0.015 * cos(i * 2.3);
        gappy[i] = (i % 5 == 2 || i == 7) ? NAN : 0.5 + 0.35 * (1 - exp(-i / 6.0));
    }
}

/* A 28x28 grey picture: a ring, a bar or a cross depending on kind. */
static void sample_digit(uint8_t *px, int kind)
{
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) {
            double dx = x - 13.5, dy = y - 13.5, r = sqrt(dx * dx + dy * dy);
            int on = kind % 3 == 0 ? fabs(r - 8) < 2.2 : kind % 3 == 1 ? fabs(dx) < 2.5 && fabs(dy) < 10
                                                                        : fabs(dx) < 2 || fabs(dy) < 2;
            px[y * 28 + x] = on ? (uint8_t)(200 + kind * 5) : (uint8_t)(x + y);
        }
}

/* ---- curves ---- */

static void test_curves_png_size_and_colours(void)
{
    double train[20], val[20], gappy[20];
    sample_curves(train, val, gappy, 20);
    nr_series s[3] = {{"train", train, 20}, {"validation", val, 20}, {"with gaps", gappy, 20}};
    nr_error err = {{0}};
    const char *path = scratch("curves.png");
    CU_ASSERT_EQUAL_FATAL(nr_plot_curves(path, "accuracy per epoch", "epoch", "accuracy", s, 3, &err), 0);
    unsigned w = 0, h = 0;
    CU_ASSERT_EQUAL_FATAL(png_size(path, &w, &h), 0);
    CU_ASSERT_EQUAL(w, 800);
    CU_ASSERT_EQUAL(h, 500);
    CU_ASSERT(count_colour(path, BLUE, 8) > 500);
    CU_ASSERT(count_colour(path, 0xD55E00, 8) > 500);
    CU_ASSERT(more_than_one_colour(path) == 1);
    CU_ASSERT_EQUAL(has_temporary_file(scratch_root), 0);
}

/* A NaN run is a gap, not a line across it: a series with its middle
 * missing draws far fewer pixels than the same series complete. */
static void test_curves_nan_is_a_gap(void)
{
    double full[30], holed[30];
    for (int i = 0; i < 30; i++) full[i] = holed[i] = 0.5;
    for (int i = 2; i < 28; i++) holed[i] = NAN;
    nr_error err = {{0}};
    nr_series a = {"complete", full, 30}, b = {"holed", holed, 30};
    const char *pa = scratch("full.png"), *pb = scratch("holed.png");
    CU_ASSERT_EQUAL_FATAL(nr_plot_curves(pa, "t", "epoch", "y", &a, 1, &err), 0);
    CU_ASSERT_EQUAL_FATAL(nr_plot_curves(pb, "t", "epoch", "y", &b, 1, &err), 0);
    long full_px = count_colour(pa, BLUE, 8), holed_px = count_colour(pb, BLUE, 8);
    CU_ASSERT(full_px > 0 && holed_px > 0);
    CU_ASSERT(holed_px * 3 < full_px);
}

/* Points whose neighbours are NaN have no line: they must still show. */
static void test_curves_isolated_points_visible(void)
{
    double y[60], none[60];
    for (int i = 0; i < 60; i++) y[i] = none[i] = NAN;
    y[10] = 0.2;
    y[40] = 0.8;
    nr_error err = {{0}};
    nr_series a = {"sparse", y, 60}, b = {"empty", none, 60};
    const char *pa = scratch("sparse.png"), *pb = scratch("allnan.png");
    CU_ASSERT_EQUAL_FATAL(nr_plot_curves(pa, "t", "epoch", "y", &a, 1, &err), 0);
    CU_ASSERT_EQUAL_FATAL(nr_plot_curves(pb, "t", "epoch", "y", &b, 1, &err), 0);
    /* Only the legend swatch is blue when nothing is finite. */
    CU_ASSERT(count_colour(pa, BLUE, 8) > count_colour(pb, BLUE, 8) + 20);
}

static void test_curves_tiny_series(void)
{
    double one = 0.7;
    nr_error err = {{0}};
    nr_series s1 = {"one point", &one, 1}, s0 = {"no points", NULL, 0};
    unsigned w, h;
    CU_ASSERT_EQUAL(nr_plot_curves(scratch("one.png"), "one", "epoch", "loss", &s1, 1, &err), 0);
    CU_ASSERT_EQUAL(png_size(scratch("one.png"), &w, &h), 0);
    CU_ASSERT(count_colour(scratch("one.png"), BLUE, 8) > 20);
    CU_ASSERT_EQUAL(nr_plot_curves(scratch("zero.png"), "zero", "epoch", "loss", &s0, 1, &err), 0);
    CU_ASSERT_EQUAL(png_size(scratch("zero.png"), &w, &h), 0);
    CU_ASSERT_EQUAL(nr_plot_curves(scratch("none.png"), "none", NULL, NULL, NULL, 0, &err), 0);
    CU_ASSERT_EQUAL(png_size(scratch("none.png"), &w, &h), 0);
    CU_ASSERT_EQUAL(nr_plot_sweep(scratch("sweep0.png"), "empty sweep", NULL, 0, NULL, 0, &err), 0);
    CU_ASSERT_EQUAL(nr_plot_sweep(scratch("sweep1.png"), "one", (const char *const[]){"lr=1"}, 1, &s1, 1, &err), 0);
    CU_ASSERT_EQUAL(png_size(scratch("sweep1.png"), &w, &h), 0);
}

/* ---- image grid ---- */

/* 28x28 grey images grow by 3 with nearest neighbour: a black/white
 * checkerboard stays pure black and white (a smoothing filter would not). */
static void test_grid_crisp_scaled_images(void)
{
    uint8_t board[28 * 28];
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) board[y * 28 + x] = (x + y) % 2 ? 255 : 0;
    const uint8_t *imgs[5] = {board, board, board, board, board};
    const char *caps[5] = {"true: Coat / pred: Coat", "true: Bag / pred: Shirt", "x", "y", "z"};
    int good[5] = {1, 0, 1, 1, 0};
    nr_error err = {{0}};
    const char *path = scratch("grid.png");
    CU_ASSERT_EQUAL_FATAL(nr_plot_image_grid(path, "test images", imgs, 1, 28, 28, caps, good, 5, 3, &err), 0);
    unsigned w, h;
    CU_ASSERT_EQUAL_FATAL(png_size(path, &w, &h), 0);
    CU_ASSERT(w >= 3 * 84 && h >= 2 * 84);
    long black = count_colour(path, 0x000000, 0);
    CU_ASSERT(black >= 5L * (28 * 28 / 2) * 9);
    CU_ASSERT(count_colour(path, 0x1B7F3B, 10) > 100);   /* green for good */
    CU_ASSERT(count_colour(path, 0xC62828, 10) > 100);   /* red for bad */
}

static void test_grid_rgb_channels(void)
{
    uint8_t red[3 * 32 * 32];
    memset(red, 0, sizeof red);
    memset(red, 255, 32 * 32);   /* plane 0 is red */
    const uint8_t *imgs[1] = {red};
    nr_error err = {{0}};
    const char *path = scratch("rgb.png");
    CU_ASSERT_EQUAL_FATAL(nr_plot_image_grid(path, "cifar", imgs, 3, 32, 32, NULL, NULL, 1, 0, &err), 0);
    CU_ASSERT(count_colour(path, 0xFF0000, 0) >= 96L * 96);
    CU_ASSERT_EQUAL(nr_plot_image_grid(scratch("none.png"), "none", NULL, 3, 32, 32, NULL, NULL, 0, 4, &err), 0);
    CU_ASSERT_EQUAL(nr_plot_image_grid(path, "bad", imgs, 2, 32, 32, NULL, NULL, 1, 0, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
}

/* ---- confusion ---- */

static void test_confusion_sizes(void)
{
    long counts[10 * 10] = {0};
    const char *names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    /* Every row but the empty one (3) and the confused one (6) is all diagonal. */
    for (int t = 0; t < 10; t++) counts[t * 10 + t] = t == 3 ? 0 : 900;
    counts[6 * 10 + 0] = 450;
    nr_error err = {{0}};
    const char *path = scratch("confusion.png");
    CU_ASSERT_EQUAL_FATAL(nr_plot_confusion(path, "confusion", counts, 10, names, &err), 0);
    unsigned w, h;
    CU_ASSERT_EQUAL_FATAL(png_size(path, &w, &h), 0);
    CU_ASSERT(w >= 400 && h >= 400 && w <= 2000 && h <= 2000);
    CU_ASSERT(count_colour(path, 0x08306B, 6) > 8 * 30 * 30);   /* 100% diagonal cells */

    enum { K = 40 };
    long *big = calloc(K * K, sizeof *big);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    for (int i = 0; i < K; i++) big[i * K + i] = 50 + i;
    CU_ASSERT_EQUAL(nr_plot_confusion(scratch("confusion40.png"), "forty", big, K, NULL, &err), 0);
    CU_ASSERT_EQUAL(png_size(scratch("confusion40.png"), &w, &h), 0);
    big[5] = -1;
    CU_ASSERT_EQUAL(nr_plot_confusion(scratch("neg.png"), "neg", big, K, NULL, &err), -1);
    free(big);
}

/* ---- sweep ---- */

static void test_sweep_percent_axis(void)
{
    const char *labels[5] = {"lr=0.1, momentum=0.9", "lr=0.05, momentum=0.9", "lr=0.01, momentum=0.9",
                             "lr=0.005, momentum=0.9", "lr=0.001, momentum=0.9"};
    double val[5] = {0.81, 0.88, 0.912, NAN, 0.85}, test[5] = {0.80, 0.87, 0.905, 0.899, 0.84};
    nr_series s[2] = {{"validation", val, 5}, {"test", test, 5}};
    nr_error err = {{0}};
    const char *path = scratch("sweep.png");
    CU_ASSERT_EQUAL_FATAL(nr_plot_sweep(path, "learning-rate sweep", labels, 5, s, 2, &err), 0);
    unsigned w, h;
    CU_ASSERT_EQUAL_FATAL(png_size(path, &w, &h), 0);
    CU_ASSERT_EQUAL(w, 800);
    CU_ASSERT_EQUAL(h, 500);
    CU_ASSERT(count_colour(path, 0xD55E00, 8) > 200);
}

/* ---- errors and atomicity ---- */

static void test_missing_directory_error(void)
{
    char path[2100];
    snprintf(path, sizeof path, "%s/no/such/dir/plot.png", scratch_root);
    double y[3] = {1, 2, 3};
    nr_series s = {"s", y, 3};
    long counts[4] = {1, 2, 3, 4};
    const uint8_t px[4] = {0};
    const uint8_t *imgs[1] = {px};
    nr_report r = {.title = "t", .clean_acc = NAN};
    int before = scratch_count_entries(scratch_root);
    nr_error err = {{0}};
    CU_ASSERT_EQUAL(nr_plot_curves(path, "t", "x", "y", &s, 1, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    err.msg[0] = '\0';
    CU_ASSERT_EQUAL(nr_plot_sweep(path, "t", (const char *const[]){"a", "b", "c"}, 3, &s, 1, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    err.msg[0] = '\0';
    CU_ASSERT_EQUAL(nr_plot_confusion(path, "t", counts, 2, NULL, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    err.msg[0] = '\0';
    CU_ASSERT_EQUAL(nr_plot_image_grid(path, "t", imgs, 1, 2, 2, NULL, NULL, 1, 1, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    err.msg[0] = '\0';
    CU_ASSERT_EQUAL(nr_report_html(path, &r, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    CU_ASSERT_EQUAL(scratch_count_entries(scratch_root), before);
}

/* The temporary file is written, but the rename onto a directory fails:
 * the error names the path and the temporary file is gone. */
static void test_failed_rename_leaves_nothing(void)
{
    char dir[2100];
    snprintf(dir, sizeof dir, "%s/occupied", scratch_root);
    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
    char inner[2200];
    snprintf(inner, sizeof inner, "%s/keep", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(inner, 0700), 0);   /* non-empty: rename cannot replace it */
    int before = scratch_count_entries(scratch_root);
    double y[2] = {1, 2};
    nr_series s = {"s", y, 2};
    nr_error err = {{0}};
    CU_ASSERT_EQUAL(nr_plot_curves(dir, "t", "x", "y", &s, 1, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, dir));
    nr_report r = {.title = "t", .clean_acc = NAN};
    err.msg[0] = '\0';
    CU_ASSERT_EQUAL(nr_report_html(dir, &r, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, dir));
    CU_ASSERT_EQUAL(scratch_count_entries(scratch_root), before);
    CU_ASSERT_EQUAL(scratch_count_entries(dir), 1);
}

static void test_overwrite_replaces_file(void)
{
    const char *path = scratch("again.png");
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("old contents", f);
    fclose(f);
    double y[4] = {3, 1, 2, 0.5};
    nr_series s = {"loss", y, 4};
    nr_error err = {{0}};
    CU_ASSERT_EQUAL_FATAL(nr_plot_curves(path, "loss", "epoch", "loss", &s, 1, &err), 0);
    unsigned w, h;
    CU_ASSERT_EQUAL(png_size(path, &w, &h), 0);
}

/* ---- report.html ---- */

static const char *const hostile_caption = "<script>alert(\"x\")</script> & 'quotes'";

static nr_report sample_report(nr_report_kv *kv, nr_report_epoch *ep, double *std, double *acc,
                               const char **files, const char **caps)
{
    kv[0] = (nr_report_kv){"model", "lenet5_fashion"};
    kv[1] = (nr_report_kv){"<script>key</script>", "a&b \"c\" <d>"};
    kv[2] = (nr_report_kv){"epochs", "3"};
    for (int i = 0; i < 3; i++)
        ep[i] = (nr_report_epoch){i + 1, 0.9 - 0.2 * i, 0.7 + 0.05 * i, 0.8 - 0.15 * i, 0.72 + 0.05 * i,
                                  NAN, NAN, 0.01, 12.5 + i};
    ep[1].val_acc = NAN;
    std[0] = 0, std[1] = 0.1, std[2] = 0.3;
    acc[0] = 0.9123, acc[1] = 0.8765, acc[2] = 0.5;
    files[0] = "curves.png";
    files[1] = "grid.png";
    files[2] = "we\"ird <name>.png";
    caps[0] = "Training curves";
    caps[1] = hostile_caption;
    caps[2] = NULL;
    return (nr_report){.title = "lenet5_fashion: training report <b>",
                       .summary = kv, .nsummary = 3, .epochs = ep, .nepochs = 3,
                       .noise_std = std, .noise_acc = acc, .nnoise = 3, .clean_acc = 0.9123,
                       .images = files, .image_captions = caps, .nimages = 3};
}

static void test_report_escapes_and_tables(void)
{
    nr_report_kv kv[3];
    nr_report_epoch ep[3];
    double std[3], acc[3];
    const char *files[3], *caps[3];
    nr_report r = sample_report(kv, ep, std, acc, files, caps);
    nr_error err = {{0}};
    const char *path = scratch("report.html");
    CU_ASSERT_EQUAL_FATAL(nr_report_html(path, &r, &err), 0);
    char *html = slurp(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(html);
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<!DOCTYPE html>"));
    CU_ASSERT_PTR_NULL(strstr(html, "<script"));
    CU_ASSERT_PTR_NULL(strstr(html, "<b>"));
    CU_ASSERT_PTR_NULL(strstr(html, "<d>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quotes&#39;"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "&lt;script&gt;key&lt;/script&gt;"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "a&amp;b &quot;c&quot; &lt;d&gt;"));
    /* Exactly the given pictures, in order. */
    CU_ASSERT_EQUAL(occurrences(html, "<img "), 3);
    CU_ASSERT_EQUAL(occurrences(html, "src=\""), 3);
    const char *a = strstr(html, "src=\"curves.png\""), *b = strstr(html, "src=\"grid.png\"");
    const char *c = strstr(html, "src=\"we%22ird%20%3Cname%3E.png\"");
    CU_ASSERT(a && b && c && a < b && b < c);
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "alt=\"we&quot;ird &lt;name&gt;.png\""));
    /* Table values: percent with 2 decimals, NaN as a dash, NaN-only columns left out. */
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "91.23%"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "87.65%"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "50.00%"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "-41.23 pp"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<td>0.5000</td>"));   /* train loss of epoch 3 */
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<td>80.00%</td>"));   /* train acc of epoch 3 */
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<td>&mdash;</td>"));  /* val acc of epoch 2 */
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<td>14.5</td>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "lenet5_fashion"));
    CU_ASSERT_PTR_NULL(strstr(html, ">test acc<"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, ">val acc<"));
    CU_ASSERT_PTR_NULL(strstr(html, "http"));   /* nothing external */
    free(html);
}

static void test_report_empty(void)
{
    nr_report r = {.title = NULL, .clean_acc = NAN};
    nr_error err = {{0}};
    const char *path = scratch("empty.html");
    CU_ASSERT_EQUAL_FATAL(nr_report_html(path, &r, &err), 0);
    char *html = slurp(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(html);
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "No epochs recorded"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "&mdash;"));
    CU_ASSERT_EQUAL(occurrences(html, "<img "), 0);
    free(html);
}

/* ---- sample mode: pictures and a report for a person or a browser ---- */

static int write_samples(const char *dir)
{
    char path[4096];
    nr_error err = {{0}};
    int rc = 0;
    double train[30], val[30], gappy[30];
    sample_curves(train, val, gappy, 30);
    nr_series curves[3] = {{"train accuracy", train, 30}, {"validation accuracy", val, 30},
                           {"test accuracy (every 5th epoch missing)", gappy, 30}};
    snprintf(path, sizeof path, "%s/curves.png", dir);
    rc |= nr_plot_curves(path, "lenet5_fashion: accuracy per epoch", "epoch", "accuracy", curves, 3, &err);

    enum { N = 12 };
    uint8_t digits[N][28 * 28];
    const uint8_t *imgs[N];
    const char *names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    char capbuf[N][80];
    const char *caps[N];
    int good[N];
    for (int i = 0; i < N; i++) {
        sample_digit(digits[i], i);
        imgs[i] = digits[i];
        int pred = i % 4 == 3 ? (i + 3) % 10 : i % 10;
        snprintf(capbuf[i], sizeof capbuf[i], "true: %s / pred: %s", names[i % 10], names[pred]);
        caps[i] = capbuf[i];
        good[i] = pred == i % 10;
    }
    snprintf(path, sizeof path, "%s/grid.png", dir);
    rc |= nr_plot_image_grid(path, "test images: true and predicted class", imgs, 1, 28, 28, caps, good, N, 6, &err);

    long counts[100];
    for (int t = 0; t < 10; t++)
        for (int p = 0; p < 10; p++)
            counts[t * 10 + p] = t == p ? 820 + 17 * t : (t == 6 && (p == 0 || p == 2 || p == 4)) ? 90 + 10 * p
                                                                                                  : (t * 7 + p * 3) % 13;
    snprintf(path, sizeof path, "%s/confusion.png", dir);
    rc |= nr_plot_confusion(path, "confusion matrix (test set)", counts, 10, names, &err);

    const char *labels[6] = {"lr=0.1", "lr=0.05", "lr=0.02", "lr=0.01", "lr=0.005", "lr=0.001"};
    double sv[6] = {0.842, 0.884, 0.9031, 0.9105, 0.8977, NAN}, st[6] = {0.835, 0.879, 0.8964, 0.9052, 0.8931, 0.861};
    nr_series sweep[2] = {{"validation accuracy", sv, 6}, {"test accuracy", st, 6}};
    snprintf(path, sizeof path, "%s/sweep.png", dir);
    rc |= nr_plot_sweep(path, "sweep over the learning rate", labels, 6, sweep, 2, &err);

    nr_report_kv kv[5] = {{"model", "lenet5_fashion"}, {"data", "Fashion-MNIST (60000 train, 10000 test)"},
                          {"optimizer", "SGD, lr 0.01, momentum 0.9"}, {"epochs", "30"},
                          {"note", "<script>alert('escaped')</script>"}};
    nr_report_epoch ep[30];
    for (int i = 0; i < 30; i++)
        ep[i] = (nr_report_epoch){i + 1, 1.2 * exp(-i / 6.0) + 0.2, train[i], 1.1 * exp(-i / 7.0) + 0.25, val[i],
                                  NAN, gappy[i], 0.01 * pow(0.95, i), 11.8 + 0.1 * (i % 3)};
    double nstd[4] = {0, 0.1, 0.2, 0.4}, nacc[4] = {0.9052, 0.8821, 0.8012, 0.5533};
    const char *files[4] = {"curves.png", "grid.png", "confusion.png", "sweep.png"};
    const char *fcaps[4] = {"Accuracy per epoch", "Test images (green: right, red: wrong)",
                            "Confusion matrix", "Learning-rate sweep"};
    nr_report r = {.title = "lenet5_fashion: training report", .summary = kv, .nsummary = 5,
                   .epochs = ep, .nepochs = 30, .noise_std = nstd, .noise_acc = nacc, .nnoise = 4,
                   .clean_acc = 0.9052, .images = files, .image_captions = fcaps, .nimages = 4};
    snprintf(path, sizeof path, "%s/report.html", dir);
    rc |= nr_report_html(path, &r, &err);
    if (rc) fprintf(stderr, "test_rt_plot: %s\n", err.msg);
    return rc ? 1 : 0;
}

/* metrics.csv of a run without a validation split: its val columns are
 * empty and it evaluated the test set each epoch. The curves are train and
 * test; an empty field is a missing value, never a zero. */
static void test_curves_from_metrics_without_validation(void)
{
    const char *dir = scratch_root;
    FILE *f = fopen(scratch("metrics.csv"), "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,lr,seconds\n"
          "1,0.9,0.65,,,0.7,0.72,0.001,1.5\n"
          "2,0.6,0.78,,,0.55,0.8,0.001,1.4\n"
          "3,0.5,0.82,,,0.5,0.83,0.001,1.4\n", f);
    CU_ASSERT_EQUAL_FATAL(fclose(f), 0);
    nr_report_epoch *e = NULL;
    int n = 0;
    nr_error err = {{0}};
    CU_ASSERT_EQUAL_FATAL(nr_read_metrics(dir, &e, &n, &err), 0);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT(isnan(e[0].val_loss) && isnan(e[2].val_acc));
    CU_ASSERT_DOUBLE_EQUAL(e[1].test_acc, 0.8, 1e-12);
    double y[9];
    nr_series s[3];
    CU_ASSERT_EQUAL(nr_curve_series(e, n, 0, y, s), 2);
    CU_ASSERT_STRING_EQUAL(s[0].label, "train");
    CU_ASSERT_STRING_EQUAL(s[1].label, "test");
    CU_ASSERT_DOUBLE_EQUAL(s[1].y[2], 0.83, 1e-12);
    CU_ASSERT_EQUAL(nr_write_curves(dir, "m", e, n, &err), 0);
    /* the second series' colour is there: the test curve was drawn */
    CU_ASSERT(count_colour(scratch("accuracy.png"), 0xD55E00, 8) > 200);
    CU_ASSERT(count_colour(scratch("loss.png"), 0xD55E00, 8) > 200);
    /* only train: one series */
    for (int i = 0; i < n; i++) e[i].test_loss = e[i].test_acc = NAN;
    CU_ASSERT_EQUAL(nr_curve_series(e, n, 1, y, s), 1);
    free(e);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--sample")) return write_samples(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "--not-blank")) return more_than_one_colour(argv[2]) == 1 ? 0 : 1;
    if (argc == 4 && !strcmp(argv[1], "--has-colour"))
        return count_colour(argv[2], (unsigned)strtoul(argv[3], NULL, 16), 6) > 100 ? 0 : 1;
    if (scratch_init("plot")) {
        perror("mkdtemp");
        return 1;
    }
    CU_TestInfo curves[] = {
        {"curves: PNG size and series colours", test_curves_png_size_and_colours},
        {"curves: NaN makes a gap", test_curves_nan_is_a_gap},
        {"curves: isolated points are visible", test_curves_isolated_points_visible},
        {"curves and sweep: 0 and 1 points", test_curves_tiny_series},
        {"curves from metrics.csv without validation: train and test", test_curves_from_metrics_without_validation},
        CU_TEST_INFO_NULL,
    };
    CU_TestInfo pictures[] = {
        {"grid: crisp 3x nearest-neighbour images, caption colours", test_grid_crisp_scaled_images},
        {"grid: RGB planes, empty grid, bad channels", test_grid_rgb_channels},
        {"confusion: 10 named and 40 indexed classes", test_confusion_sizes},
        {"sweep: fractions on a percent axis", test_sweep_percent_axis},
        CU_TEST_INFO_NULL,
    };
    CU_TestInfo files[] = {
        {"missing directory: error names path, nothing left", test_missing_directory_error},
        {"failed rename leaves no temporary file", test_failed_rename_leaves_nothing},
        {"overwrite replaces an existing file", test_overwrite_replaces_file},
        {"report: escaping, images, tables", test_report_escapes_and_tables},
        {"report: empty run", test_report_empty},
        CU_TEST_INFO_NULL,
    };
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    if (tap_add_suite("plot curves", curves) || tap_add_suite("plot pictures", pictures) ||
        tap_add_suite("plot files", files)) {
        CU_cleanup_registry();
        return 1;
    }
    int failed = tap_run_all();
    scratch_remove_tree(scratch_root);
    /* cairo keeps font caches for the life of the process; drop them so
     * LeakSanitizer reports only what the plotting code itself loses. */
    cairo_debug_reset_static_data();
    return failed;
}
