/* The one CBLAS routine the CPU backend calls, for building the GPU tests
 * on a machine without OpenBLAS's headers (tests/gpu/run.sh uses it only
 * then, and says so). Declarations as in the reference cblas.h. */
#ifndef NETC_FALLBACK_CBLAS_H
#define NETC_FALLBACK_CBLAS_H
enum CBLAS_ORDER { CblasRowMajor = 101, CblasColMajor = 102 };
enum CBLAS_TRANSPOSE { CblasNoTrans = 111, CblasTrans = 112, CblasConjTrans = 113 };
void cblas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N, int K,
                 float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
#endif
