/* The layer table: one row per layer kind, with its name, options and
 * defaults, shape rule, parameter count and multiply-add count. The CPU
 * kernels and the CUDA emitter of each kind hang off the same row. */
#ifndef NETC_LAYERS_H
#define NETC_LAYERS_H
#include "spec.h"
#include "../runtime/netrt.h"

/* Shape of one sample: [C, H, W] (rank 3) or [F] (rank 1). */
typedef struct shape {
    int rank;
    long long d[3];
} shape;

typedef enum {
    L_CONV, L_DENSE, L_MAXPOOL, L_AVGPOOL, L_BATCHNORM, L_BATCHNORM1D, L_BATCHNORM2D,
    L_DROPOUT, L_FLATTEN, L_TANH, L_RELU, L_LEAKY_RELU, L_SIGMOID, L_SOFTMAX, L_LOG_SOFTMAX,
    L_COUNT
} layer_id;

enum { CONV_OUT, CONV_KERNEL, CONV_STRIDE, CONV_PADDING, CONV_PADDING_MODE, CONV_BIAS, CONV_IN, CONV_INIT };
enum { DENSE_OUT, DENSE_BIAS, DENSE_IN, DENSE_INIT };
enum { POOL_KERNEL, POOL_STRIDE, POOL_PADDING };
enum { BN_FEATURES, BN_EPS, BN_MOMENTUM, BN_AFFINE };
enum { DROPOUT_P };
enum { LEAKY_SLOPE };

enum { PAD_ZEROS, PAD_REFLECT };
/* Weight initialisation; INIT_MODEL means "as the model's init setting". */
enum { INIT_MODEL, INIT_PYTORCH, INIT_XAVIER_UNIFORM, INIT_XAVIER_NORMAL,
       INIT_KAIMING_UNIFORM, INIT_KAIMING_NORMAL };
extern const char *const init_names[];

/* Where shape rules report: the layer's location and name. */
typedef struct shape_ctx {
    diag_list *dl;
    loc where;
    const char *name;
    int auto_flatten;
} shape_ctx;

typedef struct layer_row {
    call_def call;  /* first: the row is also a call_def */
    /* Sets *out from *in and returns 0; on a mistake reports it and
     * returns -1, leaving out->rank 0 when no output shape follows (a
     * kernel larger than its input) and setting *out when one still does
     * (a wrong 'in='), so that the layers after it are checked too. */
    int (*infer)(const resolved *o, const shape *in, shape *out, shape_ctx *cx);
    long long (*params)(const resolved *o, const shape *in, const shape *out);
    long long (*macs)(const resolved *o, const shape *in, const shape *out);
    int is_activation;       /* elementwise, no parameters */
    int is_normalization;    /* BatchNorm of some rank */
    nr_kind runtime_kind;    /* what the runtime runs it as (runtime/netrt.h's NR_LAYER_KINDS) */
} layer_row;

extern const layer_row layer_table[L_COUNT];
extern const call_table layer_calls;

static inline layer_id layer_kind_of(const resolved *r) { return (layer_id)r->index; }

void shape_format(const shape *s, char *buf, size_t n);  /* "[N, 6, 28, 28]" */
long long shape_elems(const shape *s);
/* a*b and a+b for element, parameter and multiply-add counts (never
 * negative): they saturate at LLONG_MAX instead of overflowing, as the
 * options allow layers whose counts do not fit in 64 bits. */
long long count_mul(long long a, long long b);
long long count_add(long long a, long long b);
#endif
