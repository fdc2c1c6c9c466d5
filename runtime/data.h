/* Datasets: finding them on disk and loading them into memory as bytes.
 *
 * Formats: MNIST-style IDX files (gzip or raw), CIFAR-10/100 binary
 * batches, and image folders root/<split>/<class>/ holding PNG or JPEG
 * files (decoded with libpng / libjpeg). Pixels stay uint8 (0..255) in memory; conversion to
 * float, normalization and augmentation happen per batch (preprocess.h).
 *
 * Search: a directory the user names (--data, else the model's data.path)
 * is the only place looked at, as DIR/<dir> (dir = mnist, fashion-mnist or
 * fashion_mnist, cifar10, cifar100) and as DIR itself. Otherwise the
 * dataset is looked for as ROOT/<dir> under, in order, $NETC_DATA, ./data
 * and /usr/share/datasets. A missing dataset is an error listing every
 * place looked at and how to get the data (scripts/get-data NAME). */
#ifndef NR_DATA_H
#define NR_DATA_H
#include "netrt.h"
#include "nr_error.h"
#include <stdint.h>

typedef struct nr_dataset {
    int count, channels, height, width, classes;
    uint8_t *pixels;              /* count images, each channels*height*width bytes, CHW */
    int32_t *labels;              /* count labels in 0..classes-1 */
    char source[1024];            /* where it came from, for logs and summary.json */
} nr_dataset;

/* Loads the training and test sets the spec names, resized to the spec's
 * size when it asks for a resize (bilinear, or bicubic with a = -0.75, no
 * antialiasing: torchvision's tensor resize). data_dir is --data or NULL.
 * On error both sets are left empty (and need no free). */
int nr_data_load(const nr_data_spec *spec, const char *data_dir, nr_dataset *train,
                 nr_dataset *test, nr_error *err);
void nr_dataset_free(nr_dataset *d);

/* The pieces, for tests and tools. Each names the file and the byte offset
 * of what is wrong in its error. */
int nr_load_idx_images(const char *path, nr_dataset *d, nr_error *err);     /* fills count/h/w/pixels, channels 1 */
int nr_load_idx_labels(const char *path, nr_dataset *d, nr_error *err);     /* fills labels; count must match */
int nr_load_cifar_bin(const char *const *paths, int npaths, int cifar100, nr_dataset *d, nr_error *err);
int nr_load_image_folder(const char *dir, nr_dataset *d, nr_error *err);    /* dir/<class>/<files>, classes sorted by name */
/* Resizes every image of d to size x size in place of its pixels. */
int nr_dataset_resize(nr_dataset *d, int size, int bicubic, nr_error *err);
/* Added with the implementation (data.c). */

/* How nr_load_image_folder_as brings images to the size asked. */
typedef enum { NR_RESIZE_NONE, NR_RESIZE_BILINEAR, NR_RESIZE_BICUBIC } nr_resize_mode;

/* nr_load_image_folder with the result's form given: channels 1 or 3 (grey
 * images are replicated, RGB converted with PIL's weights), or 0 for the
 * first image's; height and width, or 0 for the first image's. With
 * NR_RESIZE_NONE an image of another size is an error naming it; otherwise
 * each image is resized as nr_dataset_resize would (same size: unchanged).
 * Classes are the sorted non-hidden subdirectories (torchvision's
 * ImageFolder order); files are *.png, *.jpg, *.jpeg in any letter case,
 * found recursively and ordered by (directory, name). */
int nr_load_image_folder_as(const char *dir, int channels, int height, int width, nr_resize_mode resize,
                            nr_dataset *d, nr_error *err);

/* Notes on the loaders above:
 * - nr_load_idx_images sets count, channels (1), height, width and pixels
 *   and leaves the other fields alone.
 * - nr_load_idx_labels requires d->labels == NULL. When d->pixels is set,
 *   the label count must equal d->count (otherwise d->count is set). When
 *   d->classes > 0 every label must be below it; otherwise d->classes
 *   becomes the largest label + 1.
 * - nr_load_cifar_bin: channels 3, 32x32, classes 10 (or 100, the fine
 *   label; coarse labels are checked to be < 20).
 * - All of them fill d only on success. */
#endif
