#include "model.h"
#include "cpu/ops.h"
#include <string.h>

static size_t layer_in_size(const nr_layer *L) { return (size_t)L->in_c * L->in_h * L->in_w; }
static size_t layer_out_size(const nr_layer *L) { return (size_t)L->out_c * L->out_h * L->out_w; }

size_t nr_model_sample_size(const nr_model *m, int i)
{
    return i < 0 ? layer_in_size(&m->layers[0]) : layer_out_size(&m->layers[i]);
}

int nr_model_init(nr_model *m, const nr_program *p, int max_batch, nr_error *err)
{
    memset(m, 0, sizeof *m);
    m->layers = p->layers;
    m->nlayers = p->nlayers;
    m->max_batch = max_batch;
    int nl = p->nlayers;
    m->param_off = nr_zalloc((size_t)(nl + 1) * sizeof *m->param_off);
    m->buffer_off = nr_zalloc((size_t)(nl + 1) * sizeof *m->buffer_off);
    m->act = nr_zalloc((size_t)(nl + 1) * sizeof *m->act);
    m->saved = nr_zalloc((size_t)nl * sizeof *m->saved);
    if (!m->param_off || !m->buffer_off || !m->act || !m->saved) goto oom;
    size_t widest = layer_in_size(&p->layers[0]), scratch = 0;
    for (int i = 0; i < nl; i++) {
        const nr_layer *L = &p->layers[i];
        m->param_off[i + 1] = m->param_off[i] + nr_layer_param_count(L);
        m->buffer_off[i + 1] = m->buffer_off[i] + nr_layer_buffer_count(L);
        if (layer_out_size(L) > widest) widest = layer_out_size(L);
        size_t s = nr_layer_scratch_count(L, max_batch);
        if (s > scratch) scratch = s;
    }
    m->nparams = m->param_off[nl];
    m->nbuffers = m->buffer_off[nl];
    m->params = nr_zalloc(m->nparams * sizeof(float));
    m->grads = nr_zalloc(m->nparams * sizeof(float));
    m->buffers = nr_zalloc(m->nbuffers * sizeof(float));
    m->scratch = nr_zalloc(scratch * sizeof(float));
    m->act[0] = nr_zalloc(layer_in_size(&p->layers[0]) * (size_t)max_batch * sizeof(float));
    m->dx[0] = nr_zalloc(widest * (size_t)max_batch * sizeof(float));
    m->dx[1] = nr_zalloc(widest * (size_t)max_batch * sizeof(float));
    if (!m->params || !m->grads || !m->buffers || !m->scratch || !m->act[0] || !m->dx[0] || !m->dx[1]) goto oom;
    for (int i = 0; i < nl; i++) {
        const nr_layer *L = &p->layers[i];
        m->act[i + 1] = nr_zalloc(layer_out_size(L) * (size_t)max_batch * sizeof(float));
        m->saved[i] = nr_zalloc(nr_layer_saved_count(L, max_batch) * sizeof(float));
        if (!m->act[i + 1] || !m->saved[i]) goto oom;
    }
    return 0;
oom:
    nr_model_free(m);
    return nr_fail(err, "out of memory laying out the model for batches of %d", max_batch);
}

void nr_model_free(nr_model *m)
{
    if (m->act)
        for (int i = 0; i <= m->nlayers; i++) nr_free(m->act[i]);
    if (m->saved)
        for (int i = 0; i < m->nlayers; i++) nr_free(m->saved[i]);
    nr_free(m->act);
    nr_free(m->saved);
    nr_free(m->param_off);
    nr_free(m->buffer_off);
    nr_free(m->params);
    nr_free(m->grads);
    nr_free(m->buffers);
    nr_free(m->scratch);
    nr_free(m->dx[0]);
    nr_free(m->dx[1]);
    memset(m, 0, sizeof *m);
}

void nr_model_init_weights(nr_model *m, uint64_t seed)
{
    for (int i = 0; i < m->nlayers; i++)
        nr_layer_init(&m->layers[i], m->params + m->param_off[i], m->buffers + m->buffer_off[i], seed,
                      (uint32_t)i);
}

const float *nr_model_forward(nr_model *m, int n, int flags, uint64_t seed, uint32_t draw)
{
    for (int i = 0; i < m->nlayers; i++) {
        nr_stream dropout = nr_stream_make(seed, NR_RNG_DROPOUT, (uint32_t)i, draw);
        nr_cpu_forward(&m->layers[i], n, m->act[i], m->act[i + 1], m->params + m->param_off[i],
                       m->buffers + m->buffer_off[i], m->saved[i], m->scratch, flags, dropout);
    }
    return m->act[m->nlayers];
}

void nr_model_backward(nr_model *m, int n, const float *dout)
{
    const float *dy = dout;
    for (int i = m->nlayers - 1; i >= 0; i--) {
        /* The first layer's input gradient is never used. */
        float *dx = i > 0 ? m->dx[i & 1] : NULL;
        nr_cpu_backward(&m->layers[i], n, m->act[i], m->act[i + 1], dy, dx, m->params + m->param_off[i],
                        m->grads + m->param_off[i], m->saved[i], m->scratch);
        dy = dx;
    }
}
