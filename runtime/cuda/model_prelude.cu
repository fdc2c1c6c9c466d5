/* ==== netc's templates for a model's kernels (runtime/cuda/model_prelude.cu and
 * what it includes, embedded in netc at build time); the model's own part
 * follows them. ==== */
#include "fused.cuh"
#include "data.cuh"
