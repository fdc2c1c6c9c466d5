/* PNG/JPEG decoding and torchvision-style resizing of uint8 CHW images. */
#include "image.h"
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <jpeglib.h>
#include <jerror.h>

/* No dataset image is anywhere near this; a corrupt header claiming more
 * must not turn into a huge allocation. */
#define MAX_SIDE 16384
#define MAX_PIXELS (1L << 26)

uint8_t nr_rgb_to_grey(uint8_t r, uint8_t g, uint8_t b)
{
    /* PIL's ImagingConvert rgb2l: the 299/587/114 weights scaled to 2^16. */
    return (uint8_t)(((uint32_t)r * 19595u + (uint32_t)g * 38470u + (uint32_t)b * 7471u + 0x8000u) >> 16);
}

void nr_image_free(nr_image *img)
{
    if (!img) return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

/* Interleaved HWC samples with `have` channels (1 or 3) to CHW with `want`. */
static void hwc_to_chw(const uint8_t *hwc, int have, int want, size_t npix, uint8_t *chw)
{
    if (have == want) {
        for (int c = 0; c < want; c++)
            for (size_t i = 0; i < npix; i++) chw[(size_t)c * npix + i] = hwc[i * (size_t)have + (size_t)c];
    } else if (have == 1) {
        for (int c = 0; c < want; c++) memcpy(chw + (size_t)c * npix, hwc, npix);
    } else {
        for (size_t i = 0; i < npix; i++) chw[i] = nr_rgb_to_grey(hwc[3 * i], hwc[3 * i + 1], hwc[3 * i + 2]);
    }
}

/* Finishes a decode: img gets CHW pixels with the channel count asked. */
static int finish_image(const uint8_t *hwc, int have, int want, int h, int w, const char *name, nr_image *img,
                        nr_error *err)
{
    if (want == 0) want = have;
    size_t npix = (size_t)h * (size_t)w;
    uint8_t *chw = malloc(npix * (size_t)want);
    if (!chw) return nr_fail(err, "%s: out of memory for a %dx%d image", name, w, h);
    hwc_to_chw(hwc, have, want, npix, chw);
    img->channels = want;
    img->height = h;
    img->width = w;
    img->pixels = chw;
    return 0;
}

/* ---- PNG ---- */

typedef struct png_state {
    const uint8_t *bytes;
    size_t len, pos;
    char msg[256];
    uint8_t *hwc;
    png_bytep *rows;
} png_state;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_state *st = png_get_error_ptr(png);
    snprintf(st->msg, sizeof st->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* a library does not print; warnings do not change pixels we use */
}

static void png_read_memory(png_structp png, png_bytep out, size_t n)
{
    png_state *st = png_get_io_ptr(png);
    if (n > st->len - st->pos) png_error(png, "PNG data ends early (truncated file)");
    memcpy(out, st->bytes + st->pos, n);
    st->pos += n;
}

/* The libpng calls proper; st lives in the caller so that nothing the
 * longjmp crosses is a non-volatile local of this function. */
static int png_decode_rows(png_structp png, png_infop info, png_state *st, int *have, int *h, int *w)
{
    if (setjmp(png_jmpbuf(png))) return -1;
    png_set_read_fn(png, st, png_read_memory);
    png_set_user_limits(png, MAX_SIDE, MAX_SIDE);
    png_read_info(png, info);
    png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if ((long)width * (long)height > MAX_PIXELS) png_error(png, "image too large");
    /* PIL's view of the file: expanded palettes and low bit depths, the high
     * byte of 16-bit samples, alpha dropped rather than composited. */
    if (depth == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int nch = png_get_channels(png, info);
    if (nch != 1 && nch != 3) png_error(png, "unexpected channel layout after conversion");
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)width * (size_t)nch) png_error(png, "unexpected row size after conversion");
    st->hwc = malloc(rowbytes * height);
    st->rows = malloc(sizeof *st->rows * height);
    if (!st->hwc || !st->rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < height; y++) st->rows[y] = st->hwc + (size_t)y * rowbytes;
    png_read_image(png, st->rows);
    png_read_end(png, NULL);
    *have = nch;
    *h = (int)height;
    *w = (int)width;
    return 0;
}

static int decode_png(const uint8_t *bytes, size_t len, const char *name, int channels, nr_image *img, nr_error *err)
{
    png_state st = { .bytes = bytes, .len = len };
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st, png_on_error, png_on_warning);
    if (!png) return nr_fail(err, "%s: cannot start the PNG decoder", name);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return nr_fail(err, "%s: cannot start the PNG decoder", name);
    }
    int have = 0, h = 0, w = 0;
    int rc = png_decode_rows(png, info, &st, &have, &h, &w);
    png_destroy_read_struct(&png, &info, NULL);
    if (rc == 0) rc = finish_image(st.hwc, have, channels, h, w, name, img, err);
    else nr_fail(err, "%s: corrupt PNG: %s", name, st.msg);
    free(st.hwc);
    free(st.rows);
    return rc;
}

/* ---- JPEG ---- */

typedef struct jpeg_state {
    struct jpeg_error_mgr mgr;    /* first, so the error_mgr pointer is the state */
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    int truncated;
    uint8_t *hwc;
} jpeg_state;

static void jpeg_on_error(j_common_ptr c)
{
    jpeg_state *st = (jpeg_state *)c->err;
    c->err->format_message(c, st->msg);
    longjmp(st->jump, 1);
}

/* libjpeg's warnings normally go to stderr; keep quiet, but remember the
 * one that means the data ended early: PIL refuses such files too. */
static void jpeg_on_message(j_common_ptr c, int level)
{
    if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) ((jpeg_state *)c->err)->truncated = 1;
}

static int jpeg_decode_rows(struct jpeg_decompress_struct *cinfo, jpeg_state *st, const uint8_t *bytes, size_t len,
                            int *have, int *h, int *w)
{
    if (setjmp(st->jump)) return -1;
    jpeg_create_decompress(cinfo);
    jpeg_mem_src(cinfo, bytes, (unsigned long)len);
    jpeg_read_header(cinfo, TRUE);
    if (cinfo->jpeg_color_space == JCS_GRAYSCALE) cinfo->out_color_space = JCS_GRAYSCALE;
    else if (cinfo->jpeg_color_space == JCS_YCbCr || cinfo->jpeg_color_space == JCS_RGB)
        cinfo->out_color_space = JCS_RGB;
    else {
        snprintf(st->msg, sizeof st->msg, "CMYK/YCCK JPEGs are not supported (convert it to RGB)");
        return -1;
    }
    if (cinfo->image_width == 0 || cinfo->image_height == 0 || cinfo->image_width > MAX_SIDE ||
        cinfo->image_height > MAX_SIDE) {
        snprintf(st->msg, sizeof st->msg, "image size %ux%u outside 1..%d per side", cinfo->image_width,
                 cinfo->image_height, MAX_SIDE);
        return -1;
    }
    jpeg_start_decompress(cinfo);
    int nch = cinfo->output_components;
    size_t rowbytes = (size_t)cinfo->output_width * (size_t)nch;
    st->hwc = malloc(rowbytes * cinfo->output_height);
    if (!st->hwc) {
        snprintf(st->msg, sizeof st->msg, "out of memory");
        return -1;
    }
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = st->hwc + (size_t)cinfo->output_scanline * rowbytes;
        jpeg_read_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_decompress(cinfo);
    if (st->truncated) {
        snprintf(st->msg, sizeof st->msg, "the JPEG data ends early (truncated file)");
        return -1;
    }
    *have = nch;
    *h = (int)cinfo->output_height;
    *w = (int)cinfo->output_width;
    return 0;
}

static int decode_jpeg(const uint8_t *bytes, size_t len, const char *name, int channels, nr_image *img,
                       nr_error *err)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_state st;
    memset(&st, 0, sizeof st);
    cinfo.err = jpeg_std_error(&st.mgr);
    st.mgr.error_exit = jpeg_on_error;
    st.mgr.emit_message = jpeg_on_message;
    int have = 0, h = 0, w = 0;
    int rc = jpeg_decode_rows(&cinfo, &st, bytes, len, &have, &h, &w);
    jpeg_destroy_decompress(&cinfo);
    if (rc == 0) rc = finish_image(st.hwc, have, channels, h, w, name, img, err);
    else nr_fail(err, "%s: corrupt JPEG: %s", name, st.msg);
    free(st.hwc);
    return rc;
}

int nr_image_decode(const uint8_t *bytes, size_t len, const char *name, int channels, nr_image *img,
                    nr_error *err)
{
    memset(img, 0, sizeof *img);
    if (channels != 0 && channels != 1 && channels != 3)
        return nr_fail(err, "%s: cannot decode to %d channels (1 or 3)", name, channels);
    static const uint8_t png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    if (len >= 8 && memcmp(bytes, png_sig, 8) == 0) return decode_png(bytes, len, name, channels, img, err);
    if (len >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff)
        return decode_jpeg(bytes, len, name, channels, img, err);
    return nr_fail(err, "%s: not a PNG or JPEG file (unknown signature at byte 0)", name);
}

int nr_image_read_file(const char *path, int channels, nr_image *img, nr_error *err)
{
    memset(img, 0, sizeof *img);
    FILE *f = fopen(path, "rb");
    if (!f) return nr_fail_errno(err, "%s: cannot open", path);
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        nr_fail_errno(err, "%s: cannot stat", path);
        fclose(f);
        return -1;
    }
    if (sb.st_size <= 0 || sb.st_size > (1L << 30)) {
        fclose(f);
        return nr_fail(err, "%s: %s image file (%lld bytes)", path, sb.st_size <= 0 ? "empty" : "oversized",
                       (long long)sb.st_size);
    }
    size_t len = (size_t)sb.st_size;
    uint8_t *bytes = malloc(len);
    if (!bytes) {
        fclose(f);
        return nr_fail(err, "%s: out of memory reading %zu bytes", path, len);
    }
    size_t got = fread(bytes, 1, len, f);
    int read_failed = ferror(f);
    fclose(f);
    int rc;
    if (read_failed || got != len) rc = nr_fail(err, "%s: read error after %zu of %zu bytes", path, got, len);
    else rc = nr_image_decode(bytes, len, path, channels, img, err);
    free(bytes);
    return rc;
}

/* ---- Resize ---- */

/* For each output position along one axis: `taps` source indices (already
 * clamped to the image) and their weights, as PyTorch's CPU upsample
 * kernels compute them (float32, align_corners=False, no antialiasing). */
typedef struct axis_taps {
    int taps;
    int *index;
    float *weight;
} axis_taps;

static float cubic_near(float x, float a) /* |x| <= 1 */
{
    return ((a + 2) * x - (a + 3)) * x * x + 1;
}

static float cubic_far(float x, float a) /* 1 < |x| < 2 */
{
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
}

static int clamp_index(long i, int n)
{
    return i < 0 ? 0 : i > n - 1 ? n - 1 : (int)i;
}

static void make_taps(axis_taps *t, int in, int out, int bicubic)
{
    const float scale = (float)in / (float)out;
    for (int o = 0; o < out; o++) {
        float src = scale * ((float)o + 0.5f) - 0.5f;
        if (!bicubic && src < 0) src = 0; /* linear clamps the coordinate, cubic clamps the indices */
        long i0 = (long)floorf(src);
        if (i0 > in - 1) i0 = in - 1;
        float lambda = src - (float)i0;
        lambda = lambda < 0 ? 0 : lambda > 1 ? 1 : lambda;
        int *idx = t->index + (size_t)o * (size_t)t->taps;
        float *w = t->weight + (size_t)o * (size_t)t->taps;
        if (!bicubic) {
            idx[0] = (int)i0;
            idx[1] = (int)(i0 < in - 1 ? i0 + 1 : i0);
            w[0] = 1.0f - lambda;
            w[1] = lambda;
        } else {
            const float a = -0.75f;
            w[0] = cubic_far(lambda + 1.0f, a);
            w[1] = cubic_near(lambda, a);
            w[2] = cubic_near(1.0f - lambda, a);
            w[3] = cubic_far(1.0f - lambda + 1.0f, a);
            for (int j = 0; j < 4; j++) idx[j] = clamp_index(i0 - 1 + j, in);
        }
    }
}

static int alloc_taps(axis_taps *t, int out, int bicubic)
{
    t->taps = bicubic ? 4 : 2;
    t->index = malloc(sizeof *t->index * (size_t)out * (size_t)t->taps);
    t->weight = malloc(sizeof *t->weight * (size_t)out * (size_t)t->taps);
    return t->index && t->weight ? 0 : -1;
}

static void free_taps(axis_taps *t)
{
    free(t->index);
    free(t->weight);
}

static uint8_t to_u8(float v)
{
    /* torchvision: clamp, then torch.round (half to even, as rintf in the
     * default rounding mode). */
    if (!(v > 0)) return 0;
    if (v > 255) return 255;
    return (uint8_t)rintf(v);
}

/* Separable, but in PyTorch's order: each output is sum_i wy_i * (sum_j
 * wx_j * x[y_i][x_j]), accumulated left to right, so the row sums can be
 * computed once per source row and reused without changing any result. */
static void resize_plane(const uint8_t *src, int h, int w, uint8_t *dst, int oh, int ow, const axis_taps *ty,
                         const axis_taps *tx, float *rowsum)
{
    for (int y = 0; y < h; y++) {
        const uint8_t *row = src + (size_t)y * (size_t)w;
        for (int o = 0; o < ow; o++) {
            const int *ix = tx->index + (size_t)o * (size_t)tx->taps;
            const float *wx = tx->weight + (size_t)o * (size_t)tx->taps;
            float acc = (float)row[ix[0]] * wx[0];
            for (int j = 1; j < tx->taps; j++) acc += (float)row[ix[j]] * wx[j];
            rowsum[(size_t)y * (size_t)ow + (size_t)o] = acc;
        }
    }
    for (int oy = 0; oy < oh; oy++) {
        const int *iy = ty->index + (size_t)oy * (size_t)ty->taps;
        const float *wy = ty->weight + (size_t)oy * (size_t)ty->taps;
        for (int ox = 0; ox < ow; ox++) {
            float acc = rowsum[(size_t)iy[0] * (size_t)ow + (size_t)ox] * wy[0];
            for (int i = 1; i < ty->taps; i++) acc += rowsum[(size_t)iy[i] * (size_t)ow + (size_t)ox] * wy[i];
            dst[(size_t)oy * (size_t)ow + (size_t)ox] = to_u8(acc);
        }
    }
}

int nr_image_resize(const uint8_t *src, int channels, int height, int width, uint8_t *dst, int out_h, int out_w,
                    int bicubic, nr_error *err)
{
    if (channels <= 0 || height <= 0 || width <= 0 || out_h <= 0 || out_w <= 0 || height > MAX_SIDE ||
        width > MAX_SIDE || out_h > MAX_SIDE || out_w > MAX_SIDE)
        return nr_fail(err, "resize: bad sizes (%d channels, %dx%d to %dx%d)", channels, width, height, out_w,
                       out_h);
    axis_taps ty = { 0 }, tx = { 0 };
    float *rowsum = malloc(sizeof *rowsum * (size_t)height * (size_t)out_w);
    int ok = rowsum && alloc_taps(&ty, out_h, bicubic) == 0 && alloc_taps(&tx, out_w, bicubic) == 0;
    if (ok) {
        make_taps(&ty, height, out_h, bicubic);
        make_taps(&tx, width, out_w, bicubic);
        size_t in_plane = (size_t)height * (size_t)width, out_plane = (size_t)out_h * (size_t)out_w;
        for (int c = 0; c < channels; c++)
            resize_plane(src + (size_t)c * in_plane, height, width, dst + (size_t)c * out_plane, out_h, out_w, &ty,
                         &tx, rowsum);
    }
    free(rowsum);
    free_taps(&ty);
    free_taps(&tx);
    return ok ? 0 : nr_fail(err, "resize: out of memory");
}
