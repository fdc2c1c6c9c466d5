#include "isa.h"
#include <stdlib.h>
#include <string.h>

static int have_avx512(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

int nr_cpu_avx512_kernels(void)
{
    static int decided = -1; /* the CPU and the environment do not change during a run */
    if (decided < 0) {
        const char *choice = getenv("NETC_CPU_KERNELS");
        decided = have_avx512() && !(choice && strcmp(choice, "generic") == 0);
    }
    return decided;
}
