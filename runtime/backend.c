/* Choosing and opening a backend; what both backends share. */
#include "backend.h"
#include "cpu/ops.h"
#include "optim.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nr_state_counts(const nr_program *p, const nr_optim *o, size_t *nparams, size_t *nbuffers, size_t *noptim)
{
    size_t np = 0, nb = 0;
    for (int i = 0; i < p->nlayers; i++) {
        np += nr_layer_param_count(&p->layers[i]);
        nb += nr_layer_buffer_count(&p->layers[i]);
    }
    *nparams = np;
    *nbuffers = nb;
    *noptim = nr_optim_state_count(o, np);
}

int nr_state_check(const nr_host_state *s, size_t nparams, size_t nbuffers, size_t noptim, nr_error *e)
{
    if (s->nparams != nparams || s->nbuffers != nbuffers || s->noptim != noptim)
        return nr_fail(e, "state of %zu/%zu/%zu floats handed to a model of %zu/%zu/%zu", s->nparams, s->nbuffers,
                       s->noptim, nparams, nbuffers, noptim);
    return 0;
}

nr_stream nr_noise_stream(const nr_noise_test *t, int level, uint32_t img)
{
    uint32_t a = t->same_noise ? 0 : (uint32_t)level;
    return nr_stream_make(t->seed, NR_RNG_NOISE_TEST, a, t->same_noise ? 0 : img + 1);
}

nr_backend *nr_backend_open(nr_device_choice choice, const nr_backend_config *c, nr_error *e)
{
    if (choice == NR_DEVICE_CPU) {
        nr_backend *b = nr_cpu_backend_open(c, e);
        if (b) snprintf(b->why, sizeof b->why, "--device cpu");
        return b;
    }
    nr_error gpu_err;
    gpu_err.msg[0] = '\0';
    nr_backend *b = nr_cuda_backend_open(c, &gpu_err);
    if (b || choice == NR_DEVICE_CUDA) {
        if (!b) nr_fail(e, "--device cuda: %s", gpu_err.msg);
        return b;
    }
    b = nr_cpu_backend_open(c, e);
    if (b) snprintf(b->why, sizeof b->why, "no GPU: %.480s", gpu_err.msg);
    return b;
}

void nr_backend_close(nr_backend *b)
{
    if (b) b->ops->destroy(b);
}
