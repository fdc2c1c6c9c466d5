/* The CUDA emitter: checked IR -> the fusion plan of the model's training
 * step (which IR nodes each kernel covers) and one CUDA C source holding
 * every kernel of that plan, with the model's shapes, strides and options as
 * compile-time constants. Pure functions of the IR, so both are golden-tested
 * (netc --print-kernels, netc --emit-cuda); tests/nvrtc_models.sh compiles
 * the source of every model with NVRTC. */
#ifndef NETC_EMIT_CUDA_H
#define NETC_EMIT_CUDA_H
#include "ir.h"
#include "util.h"

typedef enum {
    CP_DATA, CP_FORWARD, CP_LOSS, CP_BACKWARD, CP_UPDATE, CP_EVAL
} cuda_pass;

/* One launch of the training step (or of evaluation). cuBLAS calls and
 * views are listed too, so the table shows the whole step; they have no
 * kernel of their own in the source. */
typedef struct cuda_launch {
    cuda_pass pass;
    char name[160];       /* the kernel's name in the source, or what cuBLAS does */
    const char *kind;     /* "conv+act+pool", "cublas sgemm", "bn stats", ... */
    char covers[160];     /* the IR nodes, space separated */
    char shape[96];       /* launch shape; N is the batch */
    int has_kernel;       /* a __global__ of the source (first use only) */
} cuda_launch;

/* A fused group: a producer (conv or dense) or none, then an optional
 * BatchNorm, activation, pooling and dropout, in that order, each an IR node
 * index or -1. Flatten is a view; a softmax at the end goes to the loss. */
typedef struct cuda_group {
    int first, count;     /* the IR nodes covered */
    int producer, bn, act, pool, drop, softmax, view;
    int implicit;         /* a conv computed in the kernel (implicit GEMM), else im2col + cuBLAS */
    int to_loss;          /* the last dense: its bias is added in the loss kernel */
    char name[100];       /* the nodes' names joined with '_' */
} cuda_group;

typedef struct cuda_plan {
    cuda_group *groups;
    int ngroups;
    cuda_launch *launches;
    int nlaunches, cap;
} cuda_plan;

void cuda_plan_build(const ir_program *p, cuda_plan *plan);
void cuda_plan_free(cuda_plan *plan);
/* The plan as a table (netc --print-kernels). */
void cuda_plan_print(const ir_program *p, const cuda_plan *plan, strbuf *out);
/* The CUDA C source of every kernel of the plan (netc --emit-cuda): the
 * templates every model shares, then the model's constants, the wrappers
 * instantiating the templates, and its data kernels. */
void emit_cuda(const ir_program *p, strbuf *out);

/* The shared templates: runtime/cuda/model_prelude.cu with what it
 * includes (fused.cuh, data.cuh, common.cuh, runtime/nr_math.h) expanded,
 * embedded at build time by scripts/embed-cuda (cuda_prelude_embed.c). */
extern const char nr_cuda_model_prelude[];
#endif
