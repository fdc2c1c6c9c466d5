/* From stored bytes to the model's input: ToTensor (pixels / 255), the
 * augmentations in the order written, Normalize, and the noise of a noise
 * test, each with torchvision's arithmetic.
 *
 * Randomness: op j of the augmentation list draws from the image's stream
 * at indices (j << 32) + k, k = 0 (and 1) for the op's own decisions (the
 * angle, the flip, the crop's top and left) and k = 1 + pixel index for
 * per-pixel noise, so an op's draws never depend on what the ops before it
 * did or drew. */
#include "preprocess.h"
#include "cpu/isa.h"
#include <math.h>
#include <string.h>

#define NR_PI 3.14159265358979323846

/* Stream index of op j's draw k. */
static uint64_t op_draw(int j, uint64_t k)
{
    return ((uint64_t)(uint32_t)j << 32) + k;
}

/* The current size of the image as the ops change it (crop can). */
typedef struct dims {
    int c, h, w;
} dims;

static size_t dims_count(dims d)
{
    return (size_t)d.c * (size_t)d.h * (size_t)d.w;
}

static int has_ops(const nr_augment *a)
{
    return a && a->ops && a->nops > 0;
}

static dims spec_dims(const nr_data_spec *d)
{
    dims s = { d->channels, d->height, d->width };
    return s;
}

/* Size after the op: only crop changes it, to size x size. */
static dims after_op(dims cur, const nr_aug_op *op)
{
    if (op->kind == NR_AUG_CROP && op->size > 0) cur.h = cur.w = op->size;
    return cur;
}

/* Two buffers of the largest size the image takes on the way (crop windows
 * and rotations go from one to the other). */
size_t nr_preprocess_scratch(const nr_data_spec *d, const nr_augment *a)
{
    if (!has_ops(a)) return 0;
    dims cur = spec_dims(d);
    size_t most = dims_count(cur);
    for (int j = 0; j < a->nops; j++) {
        cur = after_op(cur, &a->ops[j]);
        if (dims_count(cur) > most) most = dims_count(cur);
    }
    return 2 * most;
}

void nr_preprocess_out_dims(const nr_data_spec *d, const nr_augment *a, int *h, int *w)
{
    dims cur = spec_dims(d);
    if (has_ops(a))
        for (int j = 0; j < a->nops; j++) cur = after_op(cur, &a->ops[j]);
    *h = cur.h;
    *w = cur.w;
}

/* ---- the steps ---------------------------------------------------------- */

/* ToTensor: float(p) / 255 in float, as torch's div. Vector divisions
 * (16 a vector with AVX-512) beat a table of the 256 quotients, whose
 * loads do not vectorize. */
SIMD_CLONES static void to_unit(const uint8_t *restrict px, float *restrict out, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = (float)px[i] / 255.0f;
}

/* Normalize: (x - mean) / std per channel, subtraction then division as
 * torchvision's sub_().div_(). One value (nnorm 1) serves every channel. */
/* (x - mean) / std per channel, with nnorm values (0: none). */
static void normalize_by(int nnorm, const float *means, const float *stds, float *x, dims s)
{
    if (nnorm <= 0) return;
    size_t plane = (size_t)s.h * (size_t)s.w;
    for (int ch = 0; ch < s.c; ch++) {
        int k = nr_norm_index(nnorm, ch);
        float mean = means[k], std = stds[k];
        float *p = x + (size_t)ch * plane;
        for (size_t i = 0; i < plane; i++) p[i] = nr_normalized(p[i], mean, std);
    }
}

static void normalize(const nr_data_spec *d, float *x, dims s)
{
    normalize_by(d->nnorm, d->mean, d->std, x, s);
}

/* x += std * N(0, 1) from draws first + k, then clamped when asked. */
static void add_noise(float *x, size_t n, float std, int clamp, float lo, float hi, nr_stream s, uint64_t first)
{
    for (size_t k = 0; k < n; k++) x[k] = nr_noisy(x[k], nr_stream_normal(s, first + k), std, clamp, lo, hi);
}

static void hflip(float *x, dims s)
{
    for (int ch = 0; ch < s.c; ch++)
        for (int y = 0; y < s.h; y++) {
            float *row = x + ((size_t)ch * s.h + y) * s.w;
            for (int i = 0, k = s.w - 1; i < k; i++, k--) {
                float t = row[i];
                row[i] = row[k];
                row[k] = t;
            }
        }
}

/* RandomCrop(size, padding): the window of the zero-padded image, without
 * building the padded image. */
static void crop(const float *restrict in, float *restrict out, dims s, int size, int pad, nr_stream st, int j)
{
    int top = nr_window_start(s.h + 2 * pad, size, st, op_draw(j, 0));
    int left = nr_window_start(s.w + 2 * pad, size, st, op_draw(j, 1));
    for (int ch = 0; ch < s.c; ch++)
        for (int y = 0; y < size; y++) {
            int sy = top + y - pad;
            float *o = out + ((size_t)ch * size + y) * size;
            for (int x = 0; x < size; x++) {
                int sx = left + x - pad;
                int inside = sy >= 0 && sy < s.h && sx >= 0 && sx < s.w;
                o[x] = inside ? in[((size_t)ch * s.h + sy) * s.w + sx] : 0.0f;
            }
        }
}

/* ---- rotation ------------------------------------------------------------- */

/* torchvision.transforms.functional.rotate on a float tensor (0.14), step
 * by step in its precision:
 * - the inverse affine matrix of -angle about the centre, in double:
 *   [cos r, sin r, 0; -sin r, cos r, 0] with r = radians(-angle);
 * - rounded to float and divided by (w/2, h/2) (the rescaled theta);
 * - output pixel (x, y) at base grid (x - (w-1)/2, y - (h-1)/2), mapped by
 *   that matrix (sum in the order of torch's small-bmm loop) and
 *   unnormalized as grid_sample's CPU kernel does with align_corners=False:
 *   (g + 1) * (size / 2) - 0.5;
 * - nearest: round half to even; out of the image: fill;
 * - bilinear: the four neighbours with zero padding, plus the in-image
 *   share of the weights (torchvision samples an extra all-ones channel),
 *   blended as img * mask + (1 - mask) * fill.
 * What is not reproduced: torch's larger images go through a BLAS gemm
 * (and its CPU kernels may fuse multiply-adds), which can move a sample
 * coordinate by an ulp; that only matters at exact rounding ties. */
typedef struct rotation {
    float c00, c01, c10, c11;      /* rescaled theta (translation is 0) */
    float half_w, half_h;          /* size / 2 of grid_sample's unnormalize */
} rotation;

static rotation make_rotation(int h, int w, float degrees)
{
    double r = (double)(-degrees) * (NR_PI / 180.0);
    float m0 = (float)cos(r), m1 = (float)sin(r), m3 = (float)-sin(r), m4 = (float)cos(r);
    float sw = (float)(0.5 * w), sh = (float)(0.5 * h);
    rotation R = { m0 / sw, m1 / sw, m3 / sh, m4 / sh, (float)w / 2.0f, (float)h / 2.0f };
    return R;
}

/* Source position (in input pixel units) of output pixel (x, y). */
static void source_of(const rotation *R, int h, int w, int x, int y, float *sx, float *sy)
{
    float bx = (float)x - (float)(0.5 * w) + 0.5f;  /* linspace(-w/2 + 0.5, w/2 - 0.5) */
    float by = (float)y - (float)(0.5 * h) + 0.5f;
    float gx = 0.0f + bx * R->c00 + by * R->c01;
    float gy = 0.0f + bx * R->c10 + by * R->c11;
    *sx = (gx + 1.0f) * R->half_w - 0.5f;
    *sy = (gy + 1.0f) * R->half_h - 0.5f;
}

static void rotate_nearest(const float *restrict in, float *restrict out, int c, int h, int w, const rotation *R,
                           float fill)
{
    size_t plane = (size_t)h * (size_t)w;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float sx, sy;
            source_of(R, h, w, x, y, &sx, &sy);
            float rx = nearbyintf(sx), ry = nearbyintf(sy);
            int inside = rx >= 0.0f && rx < (float)w && ry >= 0.0f && ry < (float)h;
            size_t src = inside ? (size_t)ry * w + (size_t)rx : 0;
            for (int ch = 0; ch < c; ch++)
                out[ch * plane + (size_t)y * w + x] = inside ? in[ch * plane + src] : fill;
        }
}

/* One bilinear tap: its weight counts when (x, y) is inside the image. */
typedef struct tap {
    size_t at;
    float weight;
    int inside;
} tap;

static tap make_tap(float fx, float fy, int h, int w, float weight)
{
    tap t = { 0, weight, fx >= 0.0f && fx < (float)w && fy >= 0.0f && fy < (float)h };
    if (t.inside) t.at = (size_t)fy * w + (size_t)fx;
    return t;
}

static void rotate_bilinear(const float *restrict in, float *restrict out, int c, int h, int w, const rotation *R,
                            float fill)
{
    size_t plane = (size_t)h * (size_t)w;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float sx, sy;
            source_of(R, h, w, x, y, &sx, &sy);
            float x0 = floorf(sx), y0 = floorf(sy);
            float we = sx - x0, ww = 1.0f - we;  /* weights of the east and west columns */
            float ws = sy - y0, wn = 1.0f - ws;  /* of the south and north rows */
            tap t[4] = { make_tap(x0, y0, h, w, wn * ww), make_tap(x0 + 1.0f, y0, h, w, wn * we),
                         make_tap(x0, y0 + 1.0f, h, w, ws * ww), make_tap(x0 + 1.0f, y0 + 1.0f, h, w, ws * we) };
            float mask = 0.0f;
            for (int k = 0; k < 4; k++) mask = mask + (t[k].inside ? t[k].weight : 0.0f);
            for (int ch = 0; ch < c; ch++) {
                const float *p = in + ch * plane;
                float v = 0.0f;
                for (int k = 0; k < 4; k++) v = v + (t[k].inside ? p[t[k].at] * t[k].weight : 0.0f);
                out[ch * plane + (size_t)y * w + x] = v * mask + (1.0f - mask) * fill;
            }
        }
}

void nr_rotate_image(const float *in, float *out, int c, int h, int w, float degrees, int bilinear, float fill)
{
    rotation R = make_rotation(h, w, degrees);
    if (bilinear)
        rotate_bilinear(in, out, c, h, w, &R, fill);
    else
        rotate_nearest(in, out, c, h, w, &R, fill);
}

/* ---- the pipeline --------------------------------------------------------- */

/* Runs op j (not an after-normalize noise) on *cur, using *spare when the
 * result needs a buffer of its own; swaps them when it did. */
static void run_op(const nr_aug_op *op, int j, float **cur, float **spare, dims *s, nr_stream st)
{
    float *t;
    switch (op->kind) {
    case NR_AUG_ROTATE: {
        float u = nr_stream_uniform(st, op_draw(j, 0));
        float angle = -op->degrees + 2.0f * op->degrees * u;
        nr_rotate_image(*cur, *spare, s->c, s->h, s->w, angle, op->bilinear, op->fill);
        break;
    }
    case NR_AUG_HFLIP:
        if (nr_stream_uniform(st, op_draw(j, 0)) < op->p) hflip(*cur, *s);
        return;
    case NR_AUG_CROP: {
        int size = op->size > 0 ? op->size : s->h;
        crop(*cur, *spare, *s, size, op->padding, st, j);
        s->h = s->w = size;
        break;
    }
    case NR_AUG_NOISE:
        add_noise(*cur, dims_count(*s), op->std, op->clamp, op->lo, op->hi, st, op_draw(j, 1));
        return;
    }
    t = *cur;
    *cur = *spare;
    *spare = t;
}

static int after_normalize(const nr_aug_op *op)
{
    return op->kind == NR_AUG_NOISE && op->after_normalize;
}

void nr_preprocess(const nr_data_spec *d, const nr_augment *a, const uint8_t *pixels, float *out, float *scratch,
                   nr_stream s)
{
    dims cur = spec_dims(d);
    if (!has_ops(a)) {
        to_unit(pixels, out, dims_count(cur));
        normalize(d, out, cur);
        return;
    }
    size_t half = nr_preprocess_scratch(d, a) / 2;
    float *x = scratch, *spare = scratch + half;
    to_unit(pixels, x, dims_count(cur));
    for (int j = 0; j < a->nops; j++)
        if (!after_normalize(&a->ops[j])) run_op(&a->ops[j], j, &x, &spare, &cur, s);
    normalize(d, x, cur);
    for (int j = 0; j < a->nops; j++)
        if (after_normalize(&a->ops[j])) run_op(&a->ops[j], j, &x, &spare, &cur, s);
    memcpy(out, x, dims_count(cur) * sizeof *out);
}

void nr_preprocess_noisy(const nr_data_spec *d, const nr_noise_test *t, float std, const uint8_t *pixels,
                         float *out, nr_stream s)
{
    dims cur = spec_dims(d);
    size_t n = dims_count(cur);
    to_unit(pixels, out, n);
    if (t->before_normalize) {
        add_noise(out, n, std, t->clamp, t->lo, t->hi, s, 0);
        normalize(d, out, cur);
        normalize_by(t->nnorm, t->norm_mean, t->norm_std, out, cur);
    } else {
        normalize(d, out, cur);
        normalize_by(t->nnorm, t->norm_mean, t->norm_std, out, cur);
        add_noise(out, n, std, t->clamp, t->lo, t->hi, s, 0);
    }
}
