/* A plain reference SGEMM (see cblas.h beside it): C = alpha op(A) op(B) +
 * beta C, summed in float in k order, like a textbook loop. Slow, and only
 * for the GPU tests' CPU reference where OpenBLAS is missing. */
#include "cblas.h"
#include <stddef.h>

/* Element (i, j) of op(X) for a matrix stored with leading dimension ld. */
static float at(const float *X, int ld, int trans, int row_major, int i, int j)
{
    int r = trans ? j : i, c = trans ? i : j;
    return row_major ? X[(size_t)r * ld + c] : X[(size_t)c * ld + r];
}

void cblas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N, int K,
                 float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    int rm = order == CblasRowMajor, tA = ta != CblasNoTrans, tB = tb != CblasNoTrans;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float sum = 0.0f;
            for (int k = 0; k < K; k++) sum += at(A, lda, tA, rm, i, k) * at(B, ldb, tB, rm, k, j);
            float *c = rm ? &C[(size_t)i * ldc + j] : &C[(size_t)j * ldc + i];
            *c = alpha * sum + (beta == 0.0f ? 0.0f : beta * *c);
        }
}
