/* Images as bytes: PNG and JPEG decoding to uint8 CHW, grey/RGB conversion
 * the way PIL does it, and resizing the way torchvision resizes tensors.
 *
 * Decoding follows what torchvision's ImageFolder sees through PIL: palette
 * and low-bit-depth PNGs are expanded, 16-bit samples keep their high byte,
 * alpha is dropped (not composited), gamma chunks are ignored, and JPEGs are
 * decoded with libjpeg's defaults (islow DCT, fancy upsampling). */
#ifndef NR_IMAGE_H
#define NR_IMAGE_H
#include "nr_error.h"
#include <stddef.h>
#include <stdint.h>

typedef struct nr_image {
    int channels, height, width;
    uint8_t *pixels;              /* channels*height*width bytes, CHW */
} nr_image;

/* Decodes PNG or JPEG bytes (told apart by their signature) into img with
 * `channels` channels: 1 (grey) or 3 (RGB), or 0 to keep the file's own (1
 * for grey images, 3 for colour). `name` is what errors call the image. */
int nr_image_decode(const uint8_t *bytes, size_t len, const char *name, int channels, nr_image *img,
                    nr_error *err);
/* Reads and decodes the file at path (as nr_image_decode). */
int nr_image_read_file(const char *path, int channels, nr_image *img, nr_error *err);
void nr_image_free(nr_image *img);

/* PIL's "L" conversion: L = R*299/1000 + G*587/1000 + B*114/1000, in PIL's
 * 16-bit fixed point (weights 19595, 38470, 7471), rounded to nearest. */
uint8_t nr_rgb_to_grey(uint8_t r, uint8_t g, uint8_t b);

/* Resizes a uint8 CHW image to out_h x out_w as
 * torch.nn.functional.interpolate(float(x), mode bilinear or bicubic with
 * a = -0.75, align_corners=False, antialias=False) followed by torchvision's
 * clamp to [0, 255] and round half to even. Computed in float32 with
 * PyTorch's order of operations. src and dst must not overlap. */
int nr_image_resize(const uint8_t *src, int channels, int height, int width, uint8_t *dst, int out_h, int out_w,
                    int bicubic, nr_error *err);
#endif
