/* Checkpoints in the safetensors format: an 8-byte little-endian header
 * length, a JSON header mapping each tensor name to its dtype, shape and
 * byte range, an optional "__metadata__" object of string pairs, then the
 * raw little-endian data. Files are written atomically (a temporary file in
 * the same directory, fsync, rename, fsync of the directory), so a run
 * killed at any moment leaves the previous checkpoint intact. */
#ifndef NR_CHECKPOINT_H
#define NR_CHECKPOINT_H
#include "nr_error.h"
#include <stdint.h>

typedef struct nr_tensor {
    const char *name;
    const float *data;            /* F32 only: everything netc stores is float32 */
    int rank;
    int64_t shape[4];
} nr_tensor;

typedef struct nr_meta {
    const char *key, *value;
} nr_meta;

int nr_safetensors_write(const char *path, const nr_tensor *tensors, int ntensors, const nr_meta *meta,
                         int nmeta, nr_error *err);

typedef struct nr_st_entry {
    char *name;
    int rank;
    int64_t shape[4];
    const float *data;            /* into the file's buffer */
    size_t count;                 /* elements */
} nr_st_entry;

typedef struct nr_st_file {
    char *path;
    unsigned char *buf;           /* the whole file */
    size_t size;
    nr_st_entry *entries;
    int nentries;
    char **meta_keys, **meta_values;
    int nmeta;
} nr_st_file;

/* Reads and validates a file: header length within the file, well-formed
 * JSON, dtype F32, shapes that match the byte ranges, ranges inside the
 * data and not overlapping. Errors name the path and the byte offset. */
int nr_safetensors_read(const char *path, nr_st_file *f, nr_error *err);
const nr_st_entry *nr_st_find(const nr_st_file *f, const char *name);
const char *nr_st_meta(const nr_st_file *f, const char *key);
void nr_st_free(nr_st_file *f);
#endif
