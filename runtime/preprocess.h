/* From stored bytes to the float tensor the model sees, one image at a time:
 * pixels/255, the augmentation ops in the order written (training only),
 * normalize, and the noise of a noise test. Randomness comes from the
 * stream given, so the same (seed, epoch, image) always gives the same image. */
#ifndef NR_PREPROCESS_H
#define NR_PREPROCESS_H
#include "netrt.h"
#include "rng.h"
#include <stdint.h>

/* Scratch floats nr_preprocess needs for one image of the spec's size
 * (crop padding, rotation). */
size_t nr_preprocess_scratch(const nr_data_spec *d, const nr_augment *a);

/* Height and width of nr_preprocess's output: the spec's, unless a crop's
 * size differs from it (the front end forbids that; the runtime still
 * crops to size x size, so `out` must then hold c * size * size floats). */
void nr_preprocess_out_dims(const nr_data_spec *d, const nr_augment *a, int *h, int *w);

/* torchvision's rotate of a float CHW image by `degrees` (counter-clockwise
 * positive) about its centre, same size, nearest or bilinear, `fill` where
 * the source falls outside the image (see preprocess.c for what exactly is
 * matched). in and out must not overlap. The rotate op draws its angle and
 * calls this. */
void nr_rotate_image(const float *in, float *out, int c, int h, int w, float degrees, int bilinear, float fill);

/* out[c*h*w] = normalize(augment(pixels / 255)). `a` is NULL (or has no ops)
 * for evaluation. Noise ops with after_normalize run after normalize; every
 * other op runs on [0, 1] pixels before it. Op j of the list draws from
 * stream s at indices (j << 32) + k. */
void nr_preprocess(const nr_data_spec *d, const nr_augment *a, const uint8_t *pixels, float *out,
                   float *scratch, nr_stream s);

/* A noisy test image: as nr_preprocess without augmentation, then the noise
 * test's own normalize when it has one, plus Gaussian noise of the given std
 * added before or after (both) normalizes as the noise test says, then
 * clamped when it says so. Pixel k of the image draws index k of
 * stream s (the caller makes s per image, or the same for every image when
 * same_noise). */
void nr_preprocess_noisy(const nr_data_spec *d, const nr_noise_test *t, float std, const uint8_t *pixels,
                         float *out, nr_stream s);
#endif
