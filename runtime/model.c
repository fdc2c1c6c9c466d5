#include "model.h"
#include "cpu/isa.h"
#include "cpu/ops.h"
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static size_t layer_in_size(const nr_layer *L) { return (size_t)L->in_c * L->in_h * L->in_w; }
static size_t layer_out_size(const nr_layer *L) { return (size_t)L->out_c * L->out_h * L->out_w; }

size_t nr_model_sample_size(const nr_model *m, int i)
{
    return i < 0 ? layer_in_size(&m->layers[0]) : layer_out_size(&m->layers[i]);
}

/* Micro-batches of a batch: about 8 of them, so that two threads can even
 * out their loads (a descheduled thread leaves its share to the others),
 * of at least 8 images, so that each layer's GEMMs stay wide enough: on
 * LeNet-5 at batch 32, micro-batches of 4 images cost 14% more
 * instructions per image than the whole batch at once, of 8 images 6%
 * (bench/RESULTS.md). A function of the batch size only. */
#define MICRO_TARGET 8
#define MICRO_MIN_IMAGES 8

static int micro_size_for(int batch)
{
    int micro = (batch + MICRO_TARGET - 1) / MICRO_TARGET;
    if (micro < MICRO_MIN_IMAGES) micro = MICRO_MIN_IMAGES;
    return micro < batch ? micro : (batch > 0 ? batch : 1);
}

static int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int micro_count(const nr_model *m, int n) { return (n + m->micro - 1) / m->micro; }

static int batchnorm_channels(const nr_layer *L) { return L->kind == NR_BATCHNORM ? L->in_c : 0; }

/* Where a BatchNorm layer's fused backward scratch starts in the thread's
 * scratch: after its 4 * C doubles of totals. */
static size_t bn_fused_at(const nr_layer *L) { return nr_round16(8 * (size_t)L->in_c); }

/* Per-layer blocks: saved floats per micro-batch, BatchNorm partial sums. */
static int alloc_layer_blocks(nr_model *m, int nmicro)
{
    for (int i = 0; i < m->nlayers; i++) {
        const nr_layer *L = &m->layers[i];
        m->saved_each[i] = nr_layer_saved_count(L, m->micro);
        m->act[i + 1] = nr_zalloc(layer_out_size(L) * (size_t)m->max_batch * sizeof(float));
        m->saved[i] = nr_zalloc((m->saved_each[i] ? m->saved_each[i] : 1) * (size_t)nmicro * sizeof(float));
        if (!m->act[i + 1] || !m->saved[i]) return -1;
        if (batchnorm_channels(L)) {
            m->bn_part[i] = nr_zalloc(4 * (size_t)batchnorm_channels(L) * (size_t)nmicro * sizeof(double));
            if (!m->bn_part[i]) return -1;
        }
    }
    return 0;
}

int nr_model_init(nr_model *m, const nr_program *p, int max_batch, nr_error *err)
{
    memset(m, 0, sizeof *m);
    m->layers = p->layers;
    m->nlayers = p->nlayers;
    m->max_batch = max_batch;
    m->micro = micro_size_for(max_batch);
    m->nthreads = max_threads();
    int nl = p->nlayers, nmicro = micro_count(m, max_batch);
    m->param_off = nr_zalloc((size_t)(nl + 1) * sizeof *m->param_off);
    m->buffer_off = nr_zalloc((size_t)(nl + 1) * sizeof *m->buffer_off);
    m->act = nr_zalloc((size_t)(nl + 1) * sizeof *m->act);
    m->saved = nr_zalloc((size_t)nl * sizeof *m->saved);
    m->saved_each = nr_zalloc((size_t)nl * sizeof *m->saved_each);
    m->bn_part = nr_zalloc((size_t)nl * sizeof *m->bn_part);
    if (!m->param_off || !m->buffer_off || !m->act || !m->saved || !m->saved_each || !m->bn_part) goto oom;
    size_t widest = layer_in_size(&p->layers[0]);
    for (int i = 0; i < nl; i++) {
        const nr_layer *L = &p->layers[i];
        m->param_off[i + 1] = m->param_off[i] + nr_layer_param_count(L);
        m->buffer_off[i + 1] = m->buffer_off[i] + nr_layer_buffer_count(L);
        if (layer_out_size(L) > widest) widest = layer_out_size(L);
        size_t s = nr_layer_thread_scratch_count(L, m->micro);
        /* BatchNorm's totals take 4 * C doubles of the thread's scratch, then its fused backward's */
        if (batchnorm_channels(L) && bn_fused_at(L) + nr_bn_fused_scratch(L) > s)
            s = bn_fused_at(L) + nr_bn_fused_scratch(L);
        if (s > m->scratch_each) m->scratch_each = s;
    }
    m->scratch_each = nr_round16(m->scratch_each);
    m->widest = widest;
    m->nparams = m->param_off[nl];
    m->nbuffers = m->buffer_off[nl];
    m->params = nr_zalloc(m->nparams * sizeof(float));
    m->grads = nr_zalloc(m->nparams * sizeof(float));
    m->part_grads = nr_zalloc((m->nparams ? m->nparams : 1) * (size_t)nmicro * sizeof(float));
    m->buffers = nr_zalloc(m->nbuffers * sizeof(float));
    m->scratch = nr_zalloc((m->scratch_each ? m->scratch_each : 1) * (size_t)m->nthreads * sizeof(float));
    m->act[0] = nr_zalloc(layer_in_size(&p->layers[0]) * (size_t)max_batch * sizeof(float));
    m->dx[0] = nr_zalloc(widest * (size_t)max_batch * sizeof(float));
    m->dx[1] = nr_zalloc(widest * (size_t)max_batch * sizeof(float));
    m->loss_part = nr_zalloc((size_t)nmicro * sizeof *m->loss_part);
    m->correct_part = nr_zalloc((size_t)nmicro * sizeof *m->correct_part);
    if (!m->params || !m->grads || !m->part_grads || !m->buffers || !m->scratch || !m->act[0] || !m->dx[0] ||
        !m->dx[1] || !m->loss_part || !m->correct_part || alloc_layer_blocks(m, nmicro))
        goto oom;
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
    if (m->bn_part)
        for (int i = 0; i < m->nlayers; i++) nr_free(m->bn_part[i]);
    nr_free(m->act);
    nr_free(m->saved);
    nr_free(m->saved_each);
    nr_free(m->bn_part);
    nr_free(m->param_off);
    nr_free(m->buffer_off);
    nr_free(m->params);
    nr_free(m->grads);
    nr_free(m->part_grads);
    nr_free(m->buffers);
    nr_free(m->scratch);
    nr_free(m->dx[0]);
    nr_free(m->dx[1]);
    nr_free(m->loss_part);
    nr_free(m->correct_part);
    memset(m, 0, sizeof *m);
}

void nr_model_init_weights(nr_model *m, uint64_t seed)
{
    for (int i = 0; i < m->nlayers; i++)
        nr_layer_init(&m->layers[i], m->params + m->param_off[i], m->buffers + m->buffer_off[i], seed,
                      (uint32_t)i);
}

/* ---- the data-parallel pass --------------------------------------------- */

/* Where micro-batch j of a pass works: its samples [first, first + nb),
 * its thread's scratch and its parameter gradients. */
typedef struct micro_batch {
    int j, first, nb, nmicro;
    float *scratch, *grads;
} micro_batch;

/* A BatchNorm layer in training mode needs the whole batch's statistics:
 * the pass stops there until every micro-batch has its sums. */
static int needs_sync(const nr_model *m, const nr_pass *ps, int i)
{
    return m->layers[i].kind == NR_BATCHNORM && (ps->flags & NR_TRAINING);
}

static float *saved_of(const nr_model *m, int i, int j) { return m->saved[i] + (size_t)j * m->saved_each[i]; }

/* Where layer i writes micro-batch j's output (i = -1: the input). */
static float *act_out(const nr_model *m, int i, const micro_batch *mb)
{
    return m->act[i + 1] + (size_t)mb->first * nr_model_sample_size(m, i);
}

static const float *act_at(const nr_model *m, int i, const micro_batch *mb) { return act_out(m, i - 1, mb); }

/* Micro-batch part's sums for BatchNorm layer i: 4 * C doubles, the
 * forward's sum and squared deviation from the part's own mean, then
 * backward's sum dy and sum dy xhat. */
static double *bn_part_of(const nr_model *m, int i, int j)
{
    return m->bn_part[i] + (size_t)j * 4 * m->layers[i].in_c;
}

/* out[k] = sum over micro-batches of their value at offset k, in
 * micro-batch order: the same total whichever thread asks. */
static void bn_total(const nr_model *m, int i, int nmicro, size_t offset, int count, double *out)
{
    for (int c = 0; c < count; c++) out[c] = 0.0;
    for (int j = 0; j < nmicro; j++) {
        const double *part = bn_part_of(m, i, j) + offset;
        for (int c = 0; c < count; c++) out[c] += part[c];
    }
}

/* Images in micro-batch j of a pass. */
static int micro_images(const nr_model *m, const nr_pass *ps, int j)
{
    int first = j * m->micro;
    return ps->n - first < m->micro ? ps->n - first : m->micro;
}

/* The batch's biased variance from each micro-batch's sum and squared
 * deviation from its own mean (Chan et al.'s combination, in micro-batch
 * order): sum over j of sqdev_j + n_j (mean_j - mean)^2, over count. */
static void bn_batch_variance(const nr_model *m, const nr_pass *ps, int i, const double *mean, double *var)
{
    int C = m->layers[i].in_c;
    size_t hw = (size_t)m->layers[i].in_h * m->layers[i].in_w, count = (size_t)ps->n * hw;
    for (int c = 0; c < C; c++) var[c] = 0.0;
    for (int j = 0; j < micro_count(m, ps->n); j++) {
        const double *part = bn_part_of(m, i, j);
        double n_j = (double)micro_images(m, ps, j) * (double)hw;
        for (int c = 0; c < C; c++) {
            double d = part[c] / n_j - mean[c];
            var[c] += part[C + c] + n_j * d * d;
        }
    }
    for (int c = 0; c < C; c++) var[c] /= (double)count;
}

/* The batch statistics of BatchNorm layer i into micro-batch j's saved
 * block (each micro-batch computes the same totals; only micro-batch 0
 * moves the running statistics). */
static void bn_synced_stats(nr_model *m, const nr_pass *ps, int i, const micro_batch *mb)
{
    const nr_layer *L = &m->layers[i];
    int C = L->in_c;
    size_t count = (size_t)ps->n * L->in_h * L->in_w;
    double *stats = (double *)mb->scratch; /* mean [C], var [C]: scratch is free between layers */
    bn_total(m, i, mb->nmicro, 0, C, stats);
    for (int c = 0; c < C; c++) stats[c] /= (double)count;
    bn_batch_variance(m, ps, i, stats, stats + C);
    int flags = mb->j == 0 ? ps->flags : ps->flags & ~NR_UPDATE_STATS;
    nr_bn_set_stats(L, count, stats, stats + C, m->buffers + m->buffer_off[i], saved_of(m, i, mb->j), flags);
}

static void bn_forward_synced(nr_model *m, const nr_pass *ps, int i, const micro_batch *mb)
{
    bn_synced_stats(m, ps, i, mb);
    nr_bn_apply(&m->layers[i], mb->nb, act_at(m, i, mb), act_out(m, i, mb), m->params + m->param_off[i],
                saved_of(m, i, mb->j));
}

/* Micro-batch j's sums for BatchNorm layer i, while its input is still in
 * cache: the sum, and the squared deviation from the part's own mean. */
static void bn_part_sums(nr_model *m, int i, const micro_batch *mb)
{
    double *part = bn_part_of(m, i, mb->j);
    nr_bn_part_stats(&m->layers[i], mb->nb, act_at(m, i, mb), part, part + m->layers[i].in_c);
}

/* Layers i (relu) and i + 1 (max pooling) run as one pass (ops.h). */
static int fused_pair(const nr_model *m, int i)
{
    return i >= 0 && i + 1 < m->nlayers && nr_cpu_relu_maxpool_fusable(&m->layers[i], &m->layers[i + 1]);
}

/* BatchNorm layer i, in training, and the relu -> max pooling pair after
 * it run as one pass forward (neither's output is stored); backward,
 * BatchNorm's runs from the pooling's dy and the pair's own is left out
 * (the relu's dx is never stored either). */
static int fused_triple(const nr_model *m, const nr_pass *ps, int i)
{
    return i >= 0 && needs_sync(m, ps, i) && fused_pair(m, i + 1);
}

/* Layers [lo, hi) of micro-batch j; when hi is a BatchNorm layer that
 * needs batch statistics, ends with this micro-batch's sums for it. */
static void forward_span(nr_model *m, const nr_pass *ps, int lo, int hi, const micro_batch *mb)
{
    for (int i = lo; i < hi; i++) {
        if (fused_triple(m, ps, i)) { /* act[i + 1] and act[i + 2] are left unwritten */
            bn_synced_stats(m, ps, i, mb);
            nr_cpu_bn_relu_maxpool_forward(&m->layers[i], m->params + m->param_off[i], saved_of(m, i, mb->j),
                                           &m->layers[i + 2], mb->nb, act_at(m, i, mb), act_out(m, i + 2, mb),
                                           saved_of(m, i + 2, mb->j));
            i += 2;
            continue;
        }
        if (needs_sync(m, ps, i)) {
            bn_forward_synced(m, ps, i, mb);
            continue;
        }
        if (i + 1 < hi && fused_pair(m, i)) { /* act[i + 1], the relu's output, is left unwritten */
            nr_cpu_relu_maxpool_forward(&m->layers[i + 1], mb->nb, act_at(m, i, mb), act_out(m, i + 1, mb),
                                        saved_of(m, i + 1, mb->j));
            i++;
            continue;
        }
        nr_stream dropout = nr_stream_make(ps->seed, NR_RNG_DROPOUT, (uint32_t)i, ps->draw);
        nr_cpu_forward_part(&m->layers[i], mb->nb, mb->first, act_at(m, i, mb), act_out(m, i, mb),
                            m->params + m->param_off[i], m->buffers + m->buffer_off[i], saved_of(m, i, mb->j),
                            mb->scratch, ps->flags, dropout);
    }
    if (hi < m->nlayers) bn_part_sums(m, hi, mb);
}

/* d(loss)/d(output of layer i) of micro-batch j, and where the gradient
 * of layer i's input goes (NULL for the first layer, whose is unused). */
static const float *dy_at(const nr_model *m, const nr_pass *ps, int i, const micro_batch *mb)
{
    if (i == m->nlayers - 1) return ps->dlogits + (size_t)mb->first * ps->classes;
    return m->dx[(i + 1) & 1] + (size_t)mb->first * m->widest;
}

/* Micro-batches at different layers share the two buffers: each owns a
 * region of the widest layer's size, whatever layer it is at. */
static float *dx_at(const nr_model *m, int i, const micro_batch *mb)
{
    return i > 0 ? m->dx[i & 1] + (size_t)mb->first * m->widest : NULL;
}

/* The pooling's output, dy and argmax of the triple at BatchNorm layer i. */
static nr_pooled_grad pooled_grad_of(const nr_model *m, const nr_pass *ps, int i, const micro_batch *mb)
{
    nr_pooled_grad g = { act_out(m, i + 2, mb), dy_at(m, ps, i + 2, mb), saved_of(m, i + 2, mb->j) };
    return g;
}

/* Backward of BatchNorm layer i for micro-batch j from the whole batch's
 * sums; the parameter gradients (whole-batch sums already) go to
 * micro-batch 0, zeros to the others, so the step's sum is exact. */
static void bn_backward_synced(nr_model *m, const nr_pass *ps, int i, const micro_batch *mb)
{
    const nr_layer *L = &m->layers[i];
    int C = L->in_c;
    double *sums = (double *)mb->scratch;
    bn_total(m, i, mb->nmicro, 2 * (size_t)C, 2 * C, sums);
    if (L->affine) {
        float *dp = mb->grads + m->param_off[i];
        for (int c = 0; c < C; c++) {
            dp[c] = mb->j == 0 ? (float)sums[C + c] : 0.0f;
            dp[C + c] = mb->j == 0 ? (float)sums[c] : 0.0f;
        }
    }
    float *dx = dx_at(m, i, mb);
    size_t count = (size_t)ps->n * L->in_h * L->in_w;
    if (dx && fused_triple(m, ps, i)) {
        nr_pooled_grad g = pooled_grad_of(m, ps, i, mb);
        nr_bn_fused_grad_apply(L, &m->layers[i + 2], mb->nb, count, act_at(m, i, mb), &g, dx,
                               m->params + m->param_off[i], saved_of(m, i, mb->j), sums,
                               mb->scratch + bn_fused_at(L));
    } else if (dx) {
        nr_bn_grad_apply(L, mb->nb, count, act_at(m, i, mb), dy_at(m, ps, i, mb), dx, m->params + m->param_off[i],
                         saved_of(m, i, mb->j), sums);
    }
}

/* Backward of the fused pair i (relu), i + 1 (max pooling): the pooling's
 * dy and the relu's dx share a buffer (dy_at, dx_at), so dy is copied to
 * the thread's scratch first. */
static void fused_backward(nr_model *m, const nr_pass *ps, int i, const micro_batch *mb)
{
    float *dx = dx_at(m, i, mb);
    if (!dx) return;
    size_t count = (size_t)mb->nb * nr_model_sample_size(m, i + 1);
    memcpy(mb->scratch, dy_at(m, ps, i + 1, mb), count * sizeof(float));
    nr_cpu_relu_maxpool_backward(&m->layers[i + 1], mb->nb, act_at(m, i + 2, mb), mb->scratch, dx,
                                 saved_of(m, i + 1, mb->j));
}

/* Backward of layers hi-1 down to lo of micro-batch j; when lo - 1 is a
 * BatchNorm layer that needs batch sums, ends with this micro-batch's. */
static void backward_span(nr_model *m, const nr_pass *ps, int lo, int hi, const micro_batch *mb)
{
    for (int i = hi - 1; i >= lo; i--) {
        if (needs_sync(m, ps, i)) {
            bn_backward_synced(m, ps, i, mb);
            continue;
        }
        if (i - 1 >= lo && fused_pair(m, i - 1)) {
            if (!fused_triple(m, ps, i - 2)) fused_backward(m, ps, i - 1, mb);
            i--;
            continue;
        }
        nr_cpu_backward(&m->layers[i], mb->nb, act_at(m, i, mb), act_at(m, i + 1, mb), dy_at(m, ps, i, mb),
                        dx_at(m, i, mb), m->params + m->param_off[i], mb->grads + m->param_off[i],
                        saved_of(m, i, mb->j), mb->scratch);
    }
    int b = lo - 1;
    if (b < 0) return;
    const nr_layer *L = &m->layers[b];
    double *sums = bn_part_of(m, b, mb->j) + 2 * (size_t)L->in_c;
    if (fused_triple(m, ps, b)) {
        nr_pooled_grad g = pooled_grad_of(m, ps, b, mb);
        nr_bn_fused_grad_sums(L, &m->layers[b + 2], mb->nb, act_at(m, b, mb), &g, saved_of(m, b, mb->j), sums,
                              mb->scratch + bn_fused_at(L));
    } else {
        nr_bn_grad_sums(L, mb->nb, act_at(m, b, mb), dy_at(m, ps, b, mb), saved_of(m, b, mb->j), sums);
    }
}

static micro_batch micro_batch_of(const nr_model *m, const nr_pass *ps, int j, int nmicro)
{
    micro_batch mb;
    mb.j = j;
    mb.nmicro = nmicro;
    mb.first = j * m->micro;
    mb.nb = ps->n - mb.first < m->micro ? ps->n - mb.first : m->micro;
#ifdef _OPENMP
    mb.scratch = m->scratch + (size_t)omp_get_thread_num() * m->scratch_each;
#else
    mb.scratch = m->scratch;
#endif
    mb.grads = nmicro == 1 ? m->grads : m->part_grads + (size_t)j * m->nparams;
    return mb;
}

/* The first layer at or after i that needs batch statistics (nlayers: none). */
static int next_sync(const nr_model *m, const nr_pass *ps, int i)
{
    while (i < m->nlayers && !needs_sync(m, ps, i)) i++;
    return i;
}

/* The last layer before i that needs batch statistics (-1: none). */
static int prev_sync(const nr_model *m, const nr_pass *ps, int i)
{
    i--;
    while (i >= 0 && !needs_sync(m, ps, i)) i--;
    return i;
}

/* The last forward span of micro-batch j, its loss, and its backward down
 * to the last layer that needs batch sums. */
static void forward_loss_backward(nr_model *m, const nr_pass *ps, int lo, const micro_batch *mb)
{
    forward_span(m, ps, lo, m->nlayers, mb);
    if (!ps->loss) return;
    const float *out = m->act[m->nlayers] + (size_t)mb->first * ps->classes;
    m->loss_part[mb->j] = nr_loss_rows(ps->loss, mb->nb, ps->classes, out, ps->labels + mb->first,
                                       ps->dlogits + (size_t)mb->first * ps->classes, &m->correct_part[mb->j],
                                       1.0 / ps->n);
    int b = prev_sync(m, ps, m->nlayers);
    backward_span(m, ps, b + 1, m->nlayers, mb);
}

/* grads = the micro-batches' gradients summed in micro-batch order. */
static void sum_gradients(nr_model *m, int nmicro)
{
    if (nmicro == 1) return; /* micro-batch 0 wrote grads itself */
    size_t np = m->nparams;
    /* Blocks of parameters split between the threads; within a block, one
     * micro-batch after another (vector loops; each element's sum still
     * runs in micro-batch order). */
    size_t block = 2048, nblocks = (np + block - 1) / block;
#pragma omp for schedule(static)
    for (size_t q = 0; q < nblocks; q++) {
        size_t lo = q * block, hi = lo + block < np ? lo + block : np;
        float *g = m->grads;
        memcpy(g + lo, m->part_grads + lo, (hi - lo) * sizeof *g);
        for (int j = 1; j < nmicro; j++) {
            const float *part = m->part_grads + (size_t)j * np;
#pragma omp simd
            for (size_t k = lo; k < hi; k++) g[k] += part[k];
        }
    }
}

const float *nr_model_pass(nr_model *m, const nr_pass *ps, double *loss_mean, int *correct)
{
    int nmicro = micro_count(m, ps->n);
    int threads = m->nthreads < nmicro ? m->nthreads : nmicro;
    if (ps->n <= 0) return m->act[m->nlayers];
#pragma omp parallel num_threads(threads)
    {
        int lo = 0, prepared = 0;
        /* Forward: spans between BatchNorm layers; each BatchNorm waits
         * once, for every micro-batch's sums. */
        for (int hi = next_sync(m, ps, 0); hi < m->nlayers; lo = hi, hi = next_sync(m, ps, hi + 1)) {
#pragma omp for schedule(dynamic, 1)
            for (int j = 0; j < nmicro; j++) {
                micro_batch mb = micro_batch_of(m, ps, j, nmicro);
                if (!prepared && ps->prepare) ps->prepare(ps->ctx, mb.first, mb.nb);
                forward_span(m, ps, lo, hi, &mb);
            }
            prepared = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int j = 0; j < nmicro; j++) {
            micro_batch mb = micro_batch_of(m, ps, j, nmicro);
            if (!prepared && ps->prepare) ps->prepare(ps->ctx, mb.first, mb.nb);
            forward_loss_backward(m, ps, lo, &mb);
        }
        /* Backward below the last BatchNorm: one span per BatchNorm. */
        if (ps->loss) {
            for (int hi = prev_sync(m, ps, m->nlayers); hi >= 0; hi = prev_sync(m, ps, hi)) {
                int b = prev_sync(m, ps, hi);
#pragma omp for schedule(dynamic, 1)
                for (int j = 0; j < nmicro; j++) {
                    micro_batch mb = micro_batch_of(m, ps, j, nmicro);
                    backward_span(m, ps, b + 1, hi + 1, &mb);
                }
            }
            sum_gradients(m, nmicro);
        }
    }
    if (ps->loss) {
        double total = 0.0;
        int right = 0;
        for (int j = 0; j < nmicro; j++) {
            total += m->loss_part[j];
            right += m->correct_part[j];
        }
        *loss_mean = total / ps->n;
        if (correct) *correct = right;
    }
    return m->act[m->nlayers];
}
