/* The CUDA backend behind runtime/backend.h (being written). */
#include "../backend.h"
#include <stdlib.h>

nr_backend *nr_cuda_backend_open(const nr_backend_config *c, nr_error *e)
{
    (void)c;
    nr_fail(e, "the CUDA backend is not wired up yet");
    return NULL;
}
