/* Build-time helper (temporary, until the kernels live in runtime/cuda/kernels.cu):
 * writes netc's kernel source, as embedded in libnetrt
 * (runtime/cuda/kernels_src.c), to stdout followed by the X-macro
 * NR_EMU_SOURCE_KERNELS(X) listing its kernels, so that kernels_emu.cc
 * compiles the very text NVRTC compiles without a second copy of it. */
#include "../kernels.h"
#include <stdio.h>

int main(void)
{
    if (fputs(nr_cuda_kernel_source(), stdout) == EOF) return 1;
    printf("\n#define NR_EMU_SOURCE_KERNELS(X)");
    for (int i = 0; i < NR_K_COUNT; i++) printf(" \\\n    X(%s)", nr_cuda_kernel_names[i]);
    printf("\n");
    return fflush(stdout) ? 1 : 0;
}
