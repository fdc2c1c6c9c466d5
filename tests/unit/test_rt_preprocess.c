/* Preprocessing: ToTensor, Normalize, the augmentations and noise-test
 * noise. The want_rot_* tables are torchvision 0.14's rotations of the
 * ramp image below, made by tests/fixtures/gen_preprocess_fixtures.py (the
 * test itself needs neither python nor torch). */
#include "preprocess.h"
#include "tap.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The fixtures' image: 2 x 5 x 6, byte 17 * index mod 256. */
enum { RC = 2, RH = 5, RW = 6, RN = RC * RH * RW };

static void ramp_bytes(uint8_t *px)
{
    for (int i = 0; i < RN; i++) px[i] = (uint8_t)((17 * i) % 256);
}

static void ramp_floats(float *x)
{
    uint8_t px[RN];
    ramp_bytes(px);
    for (int i = 0; i < RN; i++) x[i] = (float)px[i] / 255.0f;
}

/* rotate(30 degrees, nearest, fill 0) */
static const float want_rot_nearest_30[60] = {
    0.0f, 0.13333334f, 0.200000003f, 0.666666687f, 0.733333349f, 0.0f,
    0.0666666701f, 0.13333334f, 0.600000024f, 0.600000024f, 0.0627451017f, 0.129411772f,
    0.400000006f, 0.466666669f, 0.933333337f, 1.0f, 0.4627451f, 0.529411793f,
    0.800000012f, 0.866666675f, 0.329411775f, 0.329411775f, 0.796078444f, 0.862745106f,
    0.0f, 0.196078435f, 0.262745112f, 0.729411781f, 0.796078444f, 0.0f,
    0.0f, 0.125490203f, 0.192156866f, 0.65882355f, 0.725490212f, 0.0f,
    0.0588235296f, 0.125490203f, 0.592156887f, 0.592156887f, 0.0549019612f, 0.121568628f,
    0.392156869f, 0.458823532f, 0.925490201f, 0.992156863f, 0.454901963f, 0.521568656f,
    0.792156875f, 0.858823538f, 0.321568638f, 0.321568638f, 0.788235307f, 0.854901969f,
    0.0f, 0.188235298f, 0.254901975f, 0.721568644f, 0.788235307f, 0.0f,
};
/* rotate(-17.5 degrees, nearest, fill 0.5) */
static const float want_rot_nearest_m17[60] = {
    0.400000006f, 0.400000006f, 0.0666666701f, 0.13333334f, 0.200000003f, 0.5f,
    0.800000012f, 0.466666669f, 0.533333361f, 0.600000024f, 0.666666687f, 0.333333343f,
    0.196078435f, 0.866666675f, 0.933333337f, 1.0f, 0.0627451017f, 0.733333349f,
    0.596078455f, 0.262745112f, 0.329411775f, 0.396078438f, 0.4627451f, 0.129411772f,
    0.5f, 0.729411781f, 0.796078444f, 0.862745106f, 0.529411793f, 0.529411793f,
    0.392156869f, 0.392156869f, 0.0588235296f, 0.125490203f, 0.192156866f, 0.5f,
    0.792156875f, 0.458823532f, 0.525490224f, 0.592156887f, 0.65882355f, 0.325490206f,
    0.188235298f, 0.858823538f, 0.925490201f, 0.992156863f, 0.0549019612f, 0.725490212f,
    0.588235319f, 0.254901975f, 0.321568638f, 0.388235301f, 0.454901963f, 0.121568628f,
    0.5f, 0.721568644f, 0.788235307f, 0.854901969f, 0.521568656f, 0.521568656f,
};
/* rotate(30 degrees, bilinear, fill 0) */
static const float want_rot_bilinear_30[60] = {
    2.86721843e-05f, 0.0393636823f, 0.211645499f, 0.469380558f, 0.709095955f, 0.0471762866f,
    0.0434952527f, 0.266987294f, 0.524722338f, 0.615539551f, 0.152751163f, 0.197285593f,
    0.322329104f, 0.580064118f, 0.837799191f, 0.844553828f, 0.399785131f, 0.607082665f,
    0.450624913f, 0.776660681f, 0.532434762f, 0.404689491f, 0.662424505f, 0.682757318f,
    0.0570873059f, 0.220315754f, 0.460031182f, 0.717766285f, 0.209970817f, 0.000270757126f,
    2.61453242e-05f, 0.0372595899f, 0.203802362f, 0.461537451f, 0.701252818f, 0.0462964252f,
    0.16685465f, 0.259144187f, 0.516879201f, 0.607696414f, 0.144908026f, 0.191817999f,
    0.481403828f, 0.572220981f, 0.829956055f, 0.836710632f, 0.391941994f, 0.599239528f,
    0.445157319f, 0.768817484f, 0.524591625f, 0.396846354f, 0.654581368f, 0.676628649f,
    0.0562074445f, 0.212472603f, 0.452188015f, 0.709923148f, 0.207866743f, 0.000268230302f,
};
/* rotate(-17.5 degrees, bilinear, fill 0.25) */
static const float want_rot_bilinear_m17[60] = {
    0.210756332f, 0.248650834f, 0.191949606f, 0.155036062f, 0.180960268f, 0.19796215f,
    0.523974955f, 0.650184691f, 0.593483448f, 0.536782265f, 0.480081052f, 0.423379898f,
    0.353707045f, 0.598890841f, 0.844074726f, 0.938316107f, 0.368780524f, 0.575704753f,
    0.50603193f, 0.449330747f, 0.392629594f, 0.478542358f, 0.279227108f, 0.185865477f,
    0.239584371f, 0.380768329f, 0.698957682f, 0.737462163f, 0.68076092f, 0.277925491f,
    0.250017911f, 0.48454532f, 0.184106469f, 0.148073196f, 0.177732557f, 0.197051197f,
    0.51876533f, 0.642341554f, 0.585640311f, 0.528939128f, 0.472237915f, 0.415536761f,
    0.345863879f, 0.591047704f, 0.836231589f, 0.93047297f, 0.360937387f, 0.567861617f,
    0.498188823f, 0.441487581f, 0.384786427f, 0.470699251f, 0.271383971f, 0.180655837f,
    0.238673419f, 0.377540618f, 0.691994786f, 0.729619026f, 0.672917843f, 0.275850981f,
};

static nr_data_spec make_spec(int c, int h, int w)
{
    nr_data_spec d;
    memset(&d, 0, sizeof d);
    d.channels = c;
    d.height = h;
    d.width = w;
    return d;
}

static nr_aug_op make_op(nr_aug_kind kind)
{
    nr_aug_op op;
    memset(&op, 0, sizeof op);
    op.kind = kind;
    return op;
}

/* Bytes of a test image from the test stream. */
static void random_bytes(uint8_t *px, size_t n, uint32_t which)
{
    nr_stream s = nr_stream_make(3, NR_RNG_TEST, which, 0);
    for (size_t i = 0; i < n; i++) px[i] = (uint8_t)nr_below(s, i, 256);
}

/* nr_preprocess with the scratch it asks for. */
static void preprocess(const nr_data_spec *d, const nr_aug_op *ops, int nops, const uint8_t *px, float *out,
                       nr_stream s)
{
    nr_augment a = { 0, ops, nops };
    size_t ns = nr_preprocess_scratch(d, &a);
    float *scratch = ns ? malloc(ns * sizeof *scratch) : NULL;
    CU_ASSERT_FATAL(ns == 0 || scratch);
    nr_preprocess(d, nops ? &a : NULL, px, out, scratch, s);
    free(scratch);
}

static nr_stream stream(uint32_t image)
{
    return nr_stream_make(11, NR_RNG_AUGMENT, 0, image);
}

/* ---- ToTensor and Normalize ------------------------------------------------ */

static void test_to_tensor(void)
{
    nr_data_spec d = make_spec(1, 1, 4);
    const uint8_t px[4] = { 0, 1, 128, 255 };
    float out[4];
    preprocess(&d, NULL, 0, px, out, stream(0));
    CU_ASSERT_EQUAL(out[0], 0.0f);
    CU_ASSERT_DOUBLE_EQUAL(out[1], 1.0 / 255, 1e-8);
    CU_ASSERT_DOUBLE_EQUAL(out[2], 128.0 / 255, 1e-7);
    CU_ASSERT_EQUAL(out[3], 1.0f);
    CU_ASSERT_EQUAL(nr_preprocess_scratch(&d, NULL), 0);
}

static void test_normalize_one_value(void)
{
    nr_data_spec d = make_spec(2, 2, 2);
    d.nnorm = 1;
    d.mean[0] = 0.1307f;
    d.std[0] = 0.3081f;
    d.mean[1] = 100.0f;  /* unused: one value serves every channel */
    d.std[1] = 100.0f;
    const uint8_t px[8] = { 0, 51, 102, 255, 255, 0, 7, 200 };
    float out[8];
    preprocess(&d, NULL, 0, px, out, stream(0));
    for (int i = 0; i < 8; i++) CU_ASSERT_DOUBLE_EQUAL(out[i], (px[i] / 255.0 - 0.1307) / 0.3081, 1e-5);
}

static void test_normalize_per_channel(void)
{
    nr_data_spec d = make_spec(3, 1, 2);
    d.nnorm = 3;
    const float mean[3] = { 0.5f, 0.25f, 0.0f }, std[3] = { 0.5f, 0.2f, 2.0f };
    memcpy(d.mean, mean, sizeof mean);
    memcpy(d.std, std, sizeof std);
    const uint8_t px[6] = { 0, 255, 0, 255, 0, 255 };
    float out[6];
    preprocess(&d, NULL, 0, px, out, stream(0));
    const double want[6] = { -1.0, 1.0, -1.25, 3.75, 0.0, 0.5 };
    for (int i = 0; i < 6; i++) CU_ASSERT_DOUBLE_EQUAL(out[i], want[i], 1e-6);
}

/* ---- hflip and crop ---------------------------------------------------------- */

static void test_hflip(void)
{
    nr_data_spec d = make_spec(RC, RH, RW);
    uint8_t px[RN];
    ramp_bytes(px);
    float plain[RN], out[RN];
    preprocess(&d, NULL, 0, px, plain, stream(0));
    nr_aug_op op = make_op(NR_AUG_HFLIP);
    op.p = 1.0f;
    for (uint32_t img = 0; img < 5; img++) {
        preprocess(&d, &op, 1, px, out, stream(img));
        for (int c = 0; c < RC; c++)
            for (int y = 0; y < RH; y++)
                for (int x = 0; x < RW; x++)
                    CU_ASSERT_EQUAL(out[(c * RH + y) * RW + x], plain[(c * RH + y) * RW + (RW - 1 - x)]);
    }
    op.p = 0.0f;
    for (uint32_t img = 0; img < 5; img++) {
        preprocess(&d, &op, 1, px, out, stream(img));
        CU_ASSERT(memcmp(out, plain, sizeof out) == 0);
    }
    /* p = 0.5: about half the images flipped */
    op.p = 0.5f;
    int flipped = 0;
    for (uint32_t img = 0; img < 400; img++) {
        preprocess(&d, &op, 1, px, out, stream(img));
        flipped += memcmp(out, plain, sizeof out) != 0;
    }
    CU_ASSERT(flipped > 150 && flipped < 250);
}

/* Value of the zero-padded image at (c, y, x) of the padded frame. */
static float padded_at(const float *img, int h, int w, int pad, int c, int y, int x)
{
    y -= pad;
    x -= pad;
    return y < 0 || y >= h || x < 0 || x >= w ? 0.0f : img[((size_t)c * h + y) * w + x];
}

static int is_window(const float *out, const float *img, int c, int h, int w, int pad, int size, int top, int left)
{
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                if (out[((size_t)ch * size + y) * size + x] != padded_at(img, h, w, pad, ch, top + y, left + x))
                    return 0;
    return 1;
}

static void test_crop_window(void)
{
    enum { C = 2, S = 8, PAD = 2 };
    nr_data_spec d = make_spec(C, S, S);
    uint8_t px[C * S * S];
    random_bytes(px, sizeof px, 1);
    float img[C * S * S], out[C * S * S];
    preprocess(&d, NULL, 0, px, img, stream(0));
    nr_aug_op ops[2] = { make_op(NR_AUG_HFLIP), make_op(NR_AUG_CROP) };
    ops[1].size = S;
    ops[1].padding = PAD;
    int seen[2 * PAD + 1][2 * PAD + 1];
    memset(seen, 0, sizeof seen);
    for (uint32_t i = 0; i < 500; i++) {
        /* op 1 of the list: top from draw (1 << 32) + 0, left from + 1 */
        nr_stream s = stream(i);
        int top = (int)nr_below(s, (1ull << 32) + 0, 2 * PAD + 1);
        int left = (int)nr_below(s, (1ull << 32) + 1, 2 * PAD + 1);
        preprocess(&d, ops, 2, px, out, s);
        CU_ASSERT(is_window(out, img, C, S, S, PAD, S, top, left));
        seen[top][left]++;
    }
    for (int t = 0; t <= 2 * PAD; t++)
        for (int l = 0; l <= 2 * PAD; l++) CU_ASSERT(seen[t][l] > 0);
}

/* The front end keeps crop sizes equal to the input size; the runtime
 * still does the right thing with others. */
static void test_crop_other_sizes(void)
{
    enum { S = 6 };
    nr_data_spec d = make_spec(1, S, S);
    uint8_t px[S * S];
    random_bytes(px, sizeof px, 2);
    float img[S * S], small[3 * 3], big[10 * 10];
    preprocess(&d, NULL, 0, px, img, stream(0));
    nr_aug_op op = make_op(NR_AUG_CROP);
    op.size = 3;
    op.padding = 1;
    nr_augment a = { 0, &op, 1 };
    int h, w;
    nr_preprocess_out_dims(&d, &a, &h, &w);
    CU_ASSERT(h == 3 && w == 3);
    CU_ASSERT(nr_preprocess_scratch(&d, &a) >= 2 * S * S);
    for (uint32_t i = 0; i < 50; i++) {
        nr_stream s = stream(i);
        int top = (int)nr_below(s, 0, S + 2 - 3 + 1), left = (int)nr_below(s, 1, S + 2 - 3 + 1);
        preprocess(&d, &op, 1, px, small, s);
        CU_ASSERT(is_window(small, img, 1, S, S, 1, 3, top, left));
    }
    /* a window larger than the padded image holds it at a random place */
    op.size = 10;
    op.padding = 1;
    nr_preprocess_out_dims(&d, &a, &h, &w);
    CU_ASSERT(h == 10 && w == 10);
    CU_ASSERT(nr_preprocess_scratch(&d, &a) >= 2 * 10 * 10);
    for (uint32_t i = 0; i < 50; i++) {
        nr_stream s = stream(i);
        int top = -(int)nr_below(s, 0, 10 - 8 + 1), left = -(int)nr_below(s, 1, 10 - 8 + 1);
        preprocess(&d, &op, 1, px, big, s);
        CU_ASSERT(is_window(big, img, 1, S, S, 1, 10, top, left));
    }
    nr_preprocess_out_dims(&d, NULL, &h, &w);
    CU_ASSERT(h == S && w == S);
}

/* ---- rotation ------------------------------------------------------------------ */

static void test_rotate_exact_angles(void)
{
    enum { C = 2, S = 7 };
    float in[C * S * S], out[C * S * S];
    nr_stream s = nr_stream_make(5, NR_RNG_TEST, 0, 0);
    for (int i = 0; i < C * S * S; i++) in[i] = nr_uniform(s, (uint64_t)i);
    nr_rotate_image(in, out, C, S, S, 0.0f, 0, 0.5f);
    CU_ASSERT(memcmp(in, out, sizeof in) == 0);
    /* bilinear: torchvision's 1 / (w/2) in float leaves sample points an ulp
     * off the pixel centres, so it is the identity only to ~4e-7 (as there) */
    nr_rotate_image(in, out, C, S, S, 0.0f, 1, 0.5f);
    for (int i = 0; i < C * S * S; i++) CU_ASSERT_DOUBLE_EQUAL(out[i], in[i], 1e-6);
    /* counter-clockwise 90: output (y, x) is input (x, S-1-y); 180: (S-1-y, S-1-x) */
    for (int sq = 0; sq < 2; sq++) {
        int n = sq ? S : S - 1;  /* odd and even sizes */
        float deg[3] = { 90.0f, 180.0f, -90.0f };
        for (int k = 0; k < 3; k++) {
            nr_rotate_image(in, out, C, n, n, deg[k], 0, 0.5f);
            int ok = 1;
            for (int c = 0; c < C; c++)
                for (int y = 0; y < n; y++)
                    for (int x = 0; x < n; x++) {
                        int sy = k == 0 ? x : k == 1 ? n - 1 - y : n - 1 - x;
                        int sx = k == 0 ? n - 1 - y : k == 1 ? n - 1 - x : y;
                        ok &= out[(c * n + y) * n + x] == in[(c * n + sy) * n + sx];
                    }
            CU_ASSERT(ok);
        }
    }
    /* bilinear at 90 degrees: the same permutation up to the sine's rounding */
    nr_rotate_image(in, out, C, S, S, 90.0f, 1, 0.5f);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
                CU_ASSERT_DOUBLE_EQUAL(out[(c * S + y) * S + x], in[(c * S + x) * S + (S - 1 - y)], 1e-5);
}

static void check_rotation(float degrees, int bilinear, float fill, const float *want, double tol)
{
    float in[RN], out[RN];
    ramp_floats(in);
    nr_rotate_image(in, out, RC, RH, RW, degrees, bilinear, fill);
    int bad = 0;
    for (int i = 0; i < RN; i++)
        if (fabs((double)out[i] - want[i]) > tol) {
            fprintf(stderr, "# rotate %g%s: [%d] %.9g, torchvision %.9g\n", degrees, bilinear ? " bilinear" : "", i,
                    out[i], want[i]);
            bad++;
        }
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_rotate_like_torchvision(void)
{
    check_rotation(30.0f, 0, 0.0f, want_rot_nearest_30, 0.0);
    check_rotation(-17.5f, 0, 0.5f, want_rot_nearest_m17, 0.0);
    check_rotation(30.0f, 1, 0.0f, want_rot_bilinear_30, 1e-6);
    check_rotation(-17.5f, 1, 0.25f, want_rot_bilinear_m17, 1e-6);
}

/* The rotate op: angle = -d + 2d * u, u = draw (j << 32) of the stream. */
static void test_rotate_op_draws_angle(void)
{
    nr_data_spec d = make_spec(RC, RH, RW);
    uint8_t px[RN];
    ramp_bytes(px);
    float in[RN], want[RN], out[RN];
    ramp_floats(in);
    nr_aug_op ops[2] = { make_op(NR_AUG_HFLIP), make_op(NR_AUG_ROTATE) };  /* flip p 0: never */
    ops[1].degrees = 40.0f;
    ops[1].bilinear = 1;
    ops[1].fill = 0.3f;
    int differ = 0;
    for (uint32_t i = 0; i < 20; i++) {
        nr_stream s = stream(i);
        float u = nr_uniform(s, 1ull << 32);
        nr_rotate_image(in, want, RC, RH, RW, -40.0f + 80.0f * u, 1, 0.3f);
        preprocess(&d, ops, 2, px, out, s);
        CU_ASSERT(memcmp(out, want, sizeof out) == 0);
        differ += memcmp(out, in, sizeof out) != 0;
    }
    CU_ASSERT(differ > 15);
}

/* ---- noise ------------------------------------------------------------------------ */

enum { NS = 128, NPIX = NS * NS };

static void mean_std(const float *a, const float *b, size_t n, double scale, double *mean, double *std)
{
    double s = 0, ss = 0;
    for (size_t i = 0; i < n; i++) {
        double x = ((double)a[i] - b[i]) * scale;
        s += x;
        ss += x * x;
    }
    *mean = s / n;
    *std = sqrt(ss / n - *mean * *mean);
}

static void test_noise_op_statistics(void)
{
    nr_data_spec d = make_spec(1, NS, NS);
    uint8_t *px = malloc(NPIX);
    float *clean = malloc(NPIX * sizeof *clean), *out = malloc(NPIX * sizeof *out);
    CU_ASSERT_FATAL(px && clean && out);
    memset(px, 128, NPIX);
    preprocess(&d, NULL, 0, px, clean, stream(0));
    nr_aug_op op = make_op(NR_AUG_NOISE);
    op.std = 0.1f;
    preprocess(&d, &op, 1, px, out, stream(1));
    double mean, std;
    mean_std(out, clean, NPIX, 1.0, &mean, &std);
    CU_ASSERT(fabs(mean) < 4 * 0.1 / NS);
    CU_ASSERT(fabs(std - 0.1) < 0.003);
    /* pixel k of op 0 draws index 1 + k */
    nr_stream s = stream(1);
    for (int k = 0; k < 100; k++) CU_ASSERT_EQUAL(out[k], clean[k] + nr_normal(s, 1 + (uint64_t)k) * 0.1f);
    /* clamped */
    op.std = 0.5f;
    op.clamp = 1;
    op.lo = 0.4f;
    op.hi = 0.6f;
    preprocess(&d, &op, 1, px, out, stream(1));
    int at_lo = 0, at_hi = 0, outside = 0;
    for (int i = 0; i < NPIX; i++) {
        outside += out[i] < 0.4f || out[i] > 0.6f;
        at_lo += out[i] == 0.4f;
        at_hi += out[i] == 0.6f;
    }
    CU_ASSERT_EQUAL(outside, 0);
    CU_ASSERT(at_lo > NPIX / 4 && at_hi > NPIX / 4);
    free(px);
    free(clean);
    free(out);
}

static void test_noise_op_streams_and_placement(void)
{
    nr_data_spec d = make_spec(1, NS, NS);
    d.nnorm = 1;
    d.mean[0] = 0.5f;
    d.std[0] = 0.25f;
    uint8_t *px = malloc(NPIX);
    float *clean = malloc(NPIX * sizeof *clean), *a = malloc(NPIX * sizeof *a), *b = malloc(NPIX * sizeof *b);
    CU_ASSERT_FATAL(px && clean && a && b);
    random_bytes(px, NPIX, 4);
    preprocess(&d, NULL, 0, px, clean, stream(0));
    nr_aug_op op = make_op(NR_AUG_NOISE);
    op.std = 0.1f;
    preprocess(&d, &op, 1, px, a, stream(7));
    preprocess(&d, &op, 1, px, b, stream(7));
    CU_ASSERT(memcmp(a, b, NPIX * sizeof *a) == 0);
    preprocess(&d, &op, 1, px, b, stream(8));
    CU_ASSERT(memcmp(a, b, NPIX * sizeof *a) != 0);
    /* before normalize the noise is divided by std 0.25 on the way: 4x larger */
    double mean, std;
    mean_std(a, clean, NPIX, 1.0, &mean, &std);
    CU_ASSERT(fabs(std - 0.4) < 0.012);
    op.after_normalize = 1;
    preprocess(&d, &op, 1, px, b, stream(7));
    mean_std(b, clean, NPIX, 1.0, &mean, &std);
    CU_ASSERT(fabs(std - 0.1) < 0.003);
    /* same draws either way: (before - clean) = (after - clean) / 0.25 */
    for (int i = 0; i < NPIX; i += 97) CU_ASSERT_DOUBLE_EQUAL(a[i] - clean[i], (b[i] - clean[i]) / 0.25, 1e-5);
    /* an after-normalize noise keeps its place in the list for its draws: op 1 */
    nr_aug_op two[2] = { op, make_op(NR_AUG_HFLIP) };
    two[1].p = 0.0f;
    nr_aug_op swapped[2] = { make_op(NR_AUG_HFLIP), op };
    preprocess(&d, two, 2, px, a, stream(7));
    preprocess(&d, swapped, 2, px, b, stream(7));
    CU_ASSERT(memcmp(a, b, NPIX * sizeof *a) != 0);
    nr_stream s = stream(7);
    for (int k = 0; k < 50; k++) CU_ASSERT_EQUAL(b[k], clean[k] + nr_normal(s, (1ull << 32) + 1 + (uint64_t)k) * 0.1f);
    free(px);
    free(clean);
    free(a);
    free(b);
}

/* ---- noise test ---------------------------------------------------------------------- */

static void test_noisy_test_images(void)
{
    nr_data_spec d = make_spec(1, NS, NS);
    d.nnorm = 1;
    d.mean[0] = 0.1307f;
    d.std[0] = 0.3081f;
    uint8_t *px = malloc(NPIX);
    float *clean = malloc(NPIX * sizeof *clean), *a = malloc(NPIX * sizeof *a), *b = malloc(NPIX * sizeof *b);
    CU_ASSERT_FATAL(px && clean && a && b);
    random_bytes(px, NPIX, 5);
    preprocess(&d, NULL, 0, px, clean, stream(0));
    nr_noise_test t;
    memset(&t, 0, sizeof t);
    nr_stream s = nr_stream_make(0, NR_RNG_NOISE_TEST, 0, 1);
    /* after normalize (W1's test): out = clean + std * z_k */
    nr_preprocess_noisy(&d, &t, 0.4f, px, a, s);
    for (int k = 0; k < NPIX; k += 31) CU_ASSERT_EQUAL(a[k], clean[k] + nr_normal(s, (uint64_t)k) * 0.4f);
    double mean, std;
    mean_std(a, clean, NPIX, 1.0, &mean, &std);
    CU_ASSERT(fabs(mean) < 4 * 0.4 / NS);
    CU_ASSERT(fabs(std - 0.4) < 0.012);
    nr_preprocess_noisy(&d, &t, 0.4f, px, b, s);
    CU_ASSERT(memcmp(a, b, NPIX * sizeof *a) == 0);
    nr_preprocess_noisy(&d, &t, 0.4f, px, b, nr_stream_make(0, NR_RNG_NOISE_TEST, 0, 2));
    CU_ASSERT(memcmp(a, b, NPIX * sizeof *a) != 0);
    /* before normalize: the same draws, scaled by 1/std of Normalize */
    t.before_normalize = 1;
    nr_preprocess_noisy(&d, &t, 0.4f, px, b, s);
    for (int k = 0; k < NPIX; k += 31) CU_ASSERT_DOUBLE_EQUAL(b[k] - clean[k], (a[k] - clean[k]) / 0.3081, 1e-5);
    /* clamped where the noise is added: [0, 1] pixels, then normalized */
    t.clamp = 1;
    t.lo = 0.0f;
    t.hi = 1.0f;
    nr_preprocess_noisy(&d, &t, 0.8f, px, b, s);
    double lo = (0.0 - 0.1307) / 0.3081, hi = (1.0 - 0.1307) / 0.3081;
    int outside = 0, at_edge = 0;
    for (int i = 0; i < NPIX; i++) {
        outside += b[i] < lo - 1e-6 || b[i] > hi + 1e-6;
        at_edge += fabs(b[i] - lo) < 1e-6 || fabs(b[i] - hi) < 1e-6;
    }
    CU_ASSERT_EQUAL(outside, 0);
    CU_ASSERT(at_edge > NPIX / 10);
    /* clamped after normalize: to [lo, hi] of the normalized values */
    t.before_normalize = 0;
    t.lo = -1.0f;
    t.hi = 1.0f;
    nr_preprocess_noisy(&d, &t, 0.8f, px, b, s);
    outside = 0;
    for (int i = 0; i < NPIX; i++) outside += b[i] < -1.0f || b[i] > 1.0f;
    CU_ASSERT_EQUAL(outside, 0);
    for (int k = 0; k < NPIX; k += 31) {
        float v = clean[k] + nr_normal(s, (uint64_t)k) * 0.8f;
        CU_ASSERT_EQUAL(b[k], v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v);
    }
    free(px);
    free(clean);
    free(a);
    free(b);
}

/* W1's script: training saw [0, 1] pixels, the noise test normalized them
 * first (its own normalize), then added the noise. */
static void test_noise_test_own_normalize(void)
{
    nr_data_spec d = make_spec(1, NS, NS);  /* no normalize in the data */
    uint8_t *px = malloc(NPIX);
    float *clean = malloc(NPIX * sizeof *clean), *b = malloc(NPIX * sizeof *b);
    CU_ASSERT_FATAL(px && clean && b);
    random_bytes(px, NPIX, 7);
    preprocess(&d, NULL, 0, px, clean, stream(0));
    nr_noise_test t;
    memset(&t, 0, sizeof t);
    t.nnorm = 1;
    t.norm_mean[0] = 0.1307f;
    t.norm_std[0] = 0.3081f;
    nr_stream s = nr_stream_make(0, NR_RNG_NOISE_TEST, 0, 1);
    nr_preprocess_noisy(&d, &t, 0.4f, px, b, s);
    for (int k = 0; k < NPIX; k += 31)
        CU_ASSERT_EQUAL(b[k], (clean[k] - 0.1307f) / 0.3081f + nr_normal(s, (uint64_t)k) * 0.4f);
    /* before_normalize: the noise on [0, 1] pixels, then both normalizes */
    t.before_normalize = 1;
    nr_preprocess_noisy(&d, &t, 0.4f, px, b, s);
    for (int k = 0; k < NPIX; k += 31)
        CU_ASSERT_EQUAL(b[k], (clean[k] + nr_normal(s, (uint64_t)k) * 0.4f - 0.1307f) / 0.3081f);
    free(px);
    free(clean);
    free(b);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_TestInfo tests[] = {
        { "pixels / 255", test_to_tensor },
        { "normalize with one value", test_normalize_one_value },
        { "normalize per channel", test_normalize_per_channel },
        { "hflip p 1, 0 and 0.5", test_hflip },
        { "crop: a window of the padded image, every offset", test_crop_window },
        { "crop to other sizes", test_crop_other_sizes },
        { "rotate 0, 90, 180, -90 exactly", test_rotate_exact_angles },
        { "rotate like torchvision", test_rotate_like_torchvision },
        { "rotate op draws its angle", test_rotate_op_draws_angle },
        { "noise op: statistics, draws, clamp", test_noise_op_statistics },
        { "noise op: streams, before and after normalize", test_noise_op_streams_and_placement },
        { "noise test images", test_noisy_test_images },
        { "the noise test's own normalize", test_noise_test_own_normalize },
        CU_TEST_INFO_NULL,
    };
    if (tap_add_suite("preprocess", tests)) return 1;
    return tap_run_all();
}
