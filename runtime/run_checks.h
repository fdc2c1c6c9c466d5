/* Checks a run makes before it spends time or memory: the metadata of a
 * checkpoint (every field's type and range, and that it belongs to this
 * model), weights that hold NaN or infinity, the memory a run needs
 * against what the machine has, a run directory that cannot be written,
 * and command-line values that would waste the machine (a batch larger
 * than the data, more threads than cores). */
#ifndef NR_RUN_CHECKS_H
#define NR_RUN_CHECKS_H
#include "checkpoint.h"
#include "netrt.h"
#include "nr_error.h"
#include <stddef.h>
#include <stdio.h>

#define NR_CHECKPOINT_FORMAT "netc-checkpoint-1"

/* The canonical text of the model's layer table, stored in a checkpoint's
 * metadata ("layers"): one entry per layer, "; " between them, each
 * "NAME KIND in=.. out=.. OPTION=VALUE ..." with every option that changes
 * what the weights mean. malloc'd; NULL when out of memory. */
char *nr_layers_describe(const nr_program *p);
/* 0 when the two descriptions are the same; else -1 with `what` saying
 * which layer and which option differ ("layer 10 (fc1): init is pytorch
 * in the checkpoint, xavier_uniform in this model"). */
int nr_layers_compare(const char *saved, const char *now, char *what, size_t n);

/* A netc checkpoint's metadata, checked for type and range. */
typedef struct nr_ck_meta {
    const char *model;
    const char *layers;           /* NULL: written before netc recorded the layer table */
    long long epoch, step, seed, batch, epochs;
    double lr;
    double train_loss;            /* NaN when absent */
    long long threads;            /* -1 when absent (older checkpoints) */
    long long train_limit;        /* -1 when absent (older checkpoints) */
} nr_ck_meta;

/* 1 when f says it is a netc checkpoint (it has a "format" entry), else 0
 * (a safetensors file from elsewhere, e.g. PyTorch's save_file). */
int nr_is_netc_checkpoint(const nr_st_file *f);
/* Reads and checks every field; errors name the file and the field. */
int nr_checkpoint_meta(const nr_st_file *f, nr_ck_meta *m, nr_error *err);
/* Refuses a checkpoint of another model: another name, or a layer table
 * that differs (which layer, which option). A checkpoint without a layer
 * table (written by an older netc) is checked by name here and by tensor
 * names and shapes when loaded; `note` (when not NULL) says so. */
int nr_checkpoint_matches(const nr_st_file *f, const nr_ck_meta *m, const nr_program *p, FILE *note,
                          nr_error *err);
/* Refuses a file whose tensors hold NaN or infinity, naming the tensor and
 * the first bad index. */
int nr_check_finite_tensors(const nr_st_file *f, nr_error *err);

/* For test --weights: a netc checkpoint's metadata and model (a
 * safetensors file from elsewhere has none and is checked by tensor names
 * and shapes when loaded), and finite values. */
int nr_check_weights_file(const nr_st_file *f, const nr_program *p, nr_error *err);

/* What a run will hold in memory, in bytes. */
typedef struct nr_mem_estimate {
    size_t activations;           /* per batch: inputs, outputs, saved values, gradients, scratch */
    size_t parameters;            /* weights, gradients, buffers */
    size_t optimizer;             /* optimizer state (and SAM's copy) */
    size_t data;                  /* the images and labels (already loaded) */
    size_t total;
} nr_mem_estimate;
void nr_estimate_memory(const nr_program *p, const nr_optim *optim, int batch, size_t data_bytes,
                        nr_mem_estimate *e);
/* Memory this process can still take, in bytes, and where the figure came
 * from ("MemAvailable in /proc/meminfo", "the cgroup's memory.max"...);
 * 0 when nothing says. */
size_t nr_available_memory(const char **source);
/* Refuses (with the figures) a run whose estimate, less the data already
 * loaded, exceeds `available` bytes from `source`. */
int nr_check_memory(const nr_mem_estimate *e, int batch, size_t available, const char *source, nr_error *err);

/* A run directory that cannot hold files: found before training, by
 * writing (and removing) a small file in it. */
int nr_check_writable_dir(const char *dir, nr_error *err);
/* The batch, no larger than the images an epoch has; a note on `note`
 * (when not NULL) when it was cut. */
int nr_cap_batch(int batch, long images, const char *what, FILE *note);
/* Cores this machine has online (at least 1). */
int nr_core_count(void);
#endif
