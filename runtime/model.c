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

static int min_int(int a, int b) { return a < b ? a : b; }

static int micro_count(const nr_model *m, int n) { return (n + m->micro - 1) / m->micro; }

static int batchnorm_channels(const nr_layer *L) { return L->kind == NR_BATCHNORM ? L->in_c : 0; }

/* Where a BatchNorm layer's fused backward scratch starts in the lane's
 * scratch: after its 4 * C doubles of totals. */
static size_t bn_fused_at(const nr_layer *L) { return nr_round16(8 * (size_t)L->in_c); }

/* A BatchNorm layer in training mode needs the whole batch's statistics:
 * a phase ends there, until every micro-batch has its sums. */
static int needs_sync(const nr_model *m, int training, int i)
{
    return m->layers[i].kind == NR_BATCHNORM && training;
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
static int fused_triple(const nr_model *m, int training, int i)
{
    return i >= 0 && needs_sync(m, training, i) && fused_pair(m, i + 1);
}

/* The layer whose input gradient a later phase reads, for the BatchNorm
 * layer b that ends the phase: the pooling's dy (the layer after it) when
 * the triple is fused, else BatchNorm's own dy. */
static int edge_layer(const nr_model *m, int b) { return fused_triple(m, 1, b) ? b + 3 : b + 1; }

/* ---- layout ------------------------------------------------------------- */

static int make_plan(const nr_model *m, int training, nr_plan *pl)
{
    int nl = m->nlayers, k = 0;
    for (int i = 0; i < nl; i++) k += needs_sync(m, training, i);
    pl->syncs = k;
    pl->lo = nr_zalloc((size_t)(2 * k + 1) * sizeof *pl->lo);
    pl->hi = nr_zalloc((size_t)(2 * k + 1) * sizeof *pl->hi);
    pl->fwd_phase = nr_zalloc((size_t)(nl + 1) * sizeof *pl->fwd_phase);
    pl->bwd_phase = nr_zalloc((size_t)(nl + 1) * sizeof *pl->bwd_phase);
    if (!pl->lo || !pl->hi || !pl->fwd_phase || !pl->bwd_phase) return -1;
    /* Forward phase q: from the (q-1)-th sync layer (or 0) to the q-th (or
     * the end); backward phase k + c: the c-th sync layer from the end down
     * to the layer after the sync before it. */
    int q = 0;
    for (int i = 0; i < nl; i++) {
        if (needs_sync(m, training, i)) {
            pl->hi[q] = i;
            pl->lo[++q] = i;
        }
        pl->fwd_phase[i + 1] = q;
    }
    pl->hi[k] = nl;
    for (int c = 1; c <= k; c++) {
        pl->lo[k + c] = k - c >= 1 ? pl->lo[k - c] + 1 : 0;
        pl->hi[k + c] = pl->lo[k - c + 1] + 1;
    }
    /* Layer i's backward runs in the phase of the first sync layer at or
     * after it: k + (syncs at or after i) = k + (k - syncs before i). */
    for (int i = 0; i <= nl; i++) pl->bwd_phase[i] = 2 * k - pl->fwd_phase[i];
    return 0;
}

static void free_plan(nr_plan *pl)
{
    nr_free(pl->lo);
    nr_free(pl->hi);
    nr_free(pl->fwd_phase);
    nr_free(pl->bwd_phase);
}

static int alloc_lane(const nr_model *m, nr_lane *ln, int nmicro)
{
    int nl = m->nlayers;
    ln->act = nr_zalloc((size_t)(nl + 1) * sizeof *ln->act);
    ln->saved = nr_zalloc((size_t)nl * sizeof *ln->saved);
    ln->bn_part = nr_zalloc((size_t)nl * sizeof *ln->bn_part);
    ln->dx_edge = nr_zalloc((size_t)(nl + 1) * sizeof *ln->dx_edge);
    if (!ln->act || !ln->saved || !ln->bn_part || !ln->dx_edge) return -1;
    ln->act[0] = nr_zalloc(layer_in_size(&m->layers[0]) * (size_t)m->max_batch * sizeof(float));
    if (!ln->act[0]) return -1;
    for (int i = 0; i < nl; i++) {
        const nr_layer *L = &m->layers[i];
        ln->act[i + 1] = nr_zalloc(layer_out_size(L) * (size_t)m->max_batch * sizeof(float));
        ln->saved[i] = nr_zalloc((m->saved_each[i] ? m->saved_each[i] : 1) * (size_t)nmicro * sizeof(float));
        if (!ln->act[i + 1] || !ln->saved[i]) return -1;
        if (batchnorm_channels(L)) {
            ln->bn_part[i] = nr_zalloc(4 * (size_t)batchnorm_channels(L) * (size_t)nmicro * sizeof(double));
            if (!ln->bn_part[i]) return -1;
            int e = edge_layer(m, i);
            if (e < nl && !ln->dx_edge[e]) {
                ln->dx_edge[e] = nr_zalloc(layer_in_size(&m->layers[e]) * (size_t)m->max_batch * sizeof(float));
                if (!ln->dx_edge[e]) return -1;
            }
        }
    }
    ln->dx[0] = nr_zalloc(m->widest * (size_t)m->max_batch * sizeof(float));
    ln->dx[1] = nr_zalloc(m->widest * (size_t)m->max_batch * sizeof(float));
    ln->part_grads = nr_zalloc((m->nparams ? m->nparams : 1) * (size_t)nmicro * sizeof(float));
    ln->dlogits = nr_zalloc((size_t)m->max_batch * m->classes * sizeof(float));
    ln->labels = nr_zalloc((size_t)m->max_batch * sizeof *ln->labels);
    ln->loss_part = nr_zalloc((size_t)nmicro * sizeof *ln->loss_part);
    ln->correct_part = nr_zalloc((size_t)nmicro * sizeof *ln->correct_part);
    ln->scratch = nr_zalloc((m->scratch_each ? m->scratch_each : 1) * sizeof(float));
    if (!ln->dx[0] || !ln->dx[1] || !ln->part_grads || !ln->dlogits || !ln->labels || !ln->loss_part ||
        !ln->correct_part || !ln->scratch)
        return -1;
    return 0;
}

static void free_lane(const nr_model *m, nr_lane *ln)
{
    for (int i = 0; i <= m->nlayers; i++) {
        if (ln->act) nr_free(ln->act[i]);
        if (ln->dx_edge) nr_free(ln->dx_edge[i]);
        if (i < m->nlayers && ln->saved) nr_free(ln->saved[i]);
        if (i < m->nlayers && ln->bn_part) nr_free(ln->bn_part[i]);
    }
    nr_free(ln->act);
    nr_free(ln->saved);
    nr_free(ln->bn_part);
    nr_free(ln->dx_edge);
    nr_free(ln->dx[0]);
    nr_free(ln->dx[1]);
    nr_free(ln->part_grads);
    nr_free(ln->dlogits);
    nr_free(ln->labels);
    nr_free(ln->loss_part);
    nr_free(ln->correct_part);
    nr_free(ln->scratch);
}

static int run_task(void *ctx, const nr_task *t);
static void finish_pass(void *ctx, const nr_task *last);

/* Per layer: parameter and buffer offsets, saved block sizes, and the
 * largest scratch any layer needs. */
static void lay_out_layers(nr_model *m)
{
    size_t widest = layer_in_size(&m->layers[0]);
    for (int i = 0; i < m->nlayers; i++) {
        const nr_layer *L = &m->layers[i];
        m->param_off[i + 1] = m->param_off[i] + nr_layer_param_count(L);
        m->buffer_off[i + 1] = m->buffer_off[i] + nr_layer_buffer_count(L);
        m->saved_each[i] = nr_layer_saved_count(L, m->micro);
        if (layer_out_size(L) > widest) widest = layer_out_size(L);
        size_t s = nr_layer_thread_scratch_count(L, m->micro);
        /* BatchNorm's totals take 4 * C doubles of the lane's scratch, then its fused backward's */
        if (batchnorm_channels(L) && bn_fused_at(L) + nr_bn_fused_scratch(L) > s)
            s = bn_fused_at(L) + nr_bn_fused_scratch(L);
        if (s > m->scratch_each) m->scratch_each = s;
    }
    m->scratch_each = nr_round16(m->scratch_each);
    m->widest = widest;
    m->nparams = m->param_off[m->nlayers];
    m->nbuffers = m->buffer_off[m->nlayers];
}

int nr_model_init(nr_model *m, const nr_program *p, int max_batch, nr_error *err)
{
    memset(m, 0, sizeof *m);
    m->layers = p->layers;
    m->nlayers = p->nlayers;
    m->max_batch = max_batch;
    m->classes = p->classes;
    m->micro = micro_size_for(max_batch);
    int nl = p->nlayers, nmicro = micro_count(m, max_batch);
    m->nlanes = min_int(max_threads(), nmicro);
    if (m->nlanes < 1) m->nlanes = 1;
    m->param_off = nr_zalloc((size_t)(nl + 1) * sizeof *m->param_off);
    m->buffer_off = nr_zalloc((size_t)(nl + 1) * sizeof *m->buffer_off);
    m->saved_each = nr_zalloc((size_t)nl * sizeof *m->saved_each);
    m->lane = nr_zalloc((size_t)m->nlanes * sizeof *m->lane);
    if (!m->param_off || !m->buffer_off || !m->saved_each || !m->lane) goto oom;
    lay_out_layers(m);
    m->params = nr_zalloc((m->nparams ? m->nparams : 1) * sizeof(float));
    m->grads = nr_zalloc((m->nparams ? m->nparams : 1) * sizeof(float));
    m->buffers = nr_zalloc((m->nbuffers ? m->nbuffers : 1) * sizeof(float));
    m->out = nr_zalloc((size_t)max_batch * m->classes * sizeof(float));
    m->labels = nr_zalloc((size_t)max_batch * sizeof *m->labels);
    if (!m->params || !m->grads || !m->buffers || !m->out || !m->labels || make_plan(m, 0, &m->plan[0]) ||
        make_plan(m, 1, &m->plan[1]))
        goto oom;
    for (int l = 0; l < m->nlanes; l++)
        if (alloc_lane(m, &m->lane[l], nmicro)) goto oom;
    m->team = nr_team_new(m->nlanes, 2 * m->plan[1].syncs + 1, nmicro, sizeof(nr_pass), run_task, finish_pass, m, err);
    if (!m->team) {
        nr_model_free(m);
        return -1;
    }
    return 0;
oom:
    nr_model_free(m);
    return nr_fail(err, "out of memory laying out the model for batches of %d", max_batch);
}

void nr_model_free(nr_model *m)
{
    nr_team_free(m->team); /* first: its threads read the rest */
    if (m->lane)
        for (int l = 0; l < m->nlanes; l++) free_lane(m, &m->lane[l]);
    for (int t = 0; t < 2; t++) free_plan(&m->plan[t]);
    nr_free(m->lane);
    nr_free(m->saved_each);
    nr_free(m->param_off);
    nr_free(m->buffer_off);
    nr_free(m->params);
    nr_free(m->grads);
    nr_free(m->buffers);
    nr_free(m->out);
    nr_free(m->labels);
    memset(m, 0, sizeof *m);
}

void nr_model_init_weights(nr_model *m, uint64_t seed)
{
    for (int i = 0; i < m->nlayers; i++)
        nr_layer_init(&m->layers[i], m->params + m->param_off[i], m->buffers + m->buffer_off[i], seed,
                      (uint32_t)i);
}

/* ---- the data-parallel pass --------------------------------------------- */

/* One task: micro-batch j of a pass, its samples [first, first + nb), in
 * phase `phase`, written into lane `out` (the lane's scratch is its own). */
typedef struct micro_batch {
    int j, first, nb, nmicro, phase, training;
    const nr_plan *plan;
    const nr_pass *ps;
    const nr_task *task;
    nr_lane *out;
    float *scratch, *grads;
} micro_batch;

/* The lane that finished micro-batch j of the phase. */
static const nr_lane *winner_lane(const nr_model *m, int phase, int j)
{
    return &m->lane[nr_team_winner(m->team, phase, j)];
}

/* The lane holding what phase `phase` wrote for this micro-batch: this
 * task's own within its phase, else the lane that finished that task. */
static const nr_lane *lane_of(const nr_model *m, int phase, const micro_batch *mb)
{
    return phase == mb->phase ? mb->out : winner_lane(m, phase, mb->j);
}

static const float *saved_at(const nr_model *m, int i, const micro_batch *mb)
{
    return lane_of(m, mb->plan->fwd_phase[i + 1], mb)->saved[i] + (size_t)mb->j * m->saved_each[i];
}

static float *saved_out(const nr_model *m, int i, const micro_batch *mb)
{
    return mb->out->saved[i] + (size_t)mb->j * m->saved_each[i];
}

/* Where layer i writes micro-batch j's output (i = -1: the input). */
static float *act_out(const nr_model *m, int i, const micro_batch *mb)
{
    return mb->out->act[i + 1] + (size_t)mb->first * nr_model_sample_size(m, i);
}

/* Layer i's input (the output of layer i - 1). */
static const float *act_at(const nr_model *m, int i, const micro_batch *mb)
{
    return lane_of(m, mb->plan->fwd_phase[i], mb)->act[i] + (size_t)mb->first * nr_model_sample_size(m, i - 1);
}

/* Micro-batch j's sums for BatchNorm layer i: 4 * C doubles, the forward's
 * sum and squared deviation from the part's own mean, then backward's sum
 * dy and sum dy xhat. */
static double *bn_part_in(const nr_lane *ln, const nr_model *m, int i, int j)
{
    return ln->bn_part[i] + (size_t)j * 4 * m->layers[i].in_c;
}

/* out[c] = sum over micro-batches of their value at offset + c, in
 * micro-batch order, each from the lane of the phase that wrote it. */
static void bn_total(const nr_model *m, int i, int nmicro, int phase, size_t offset, int count, double *out)
{
    for (int c = 0; c < count; c++) out[c] = 0.0;
    for (int j = 0; j < nmicro; j++) {
        const double *part = bn_part_in(winner_lane(m, phase, j), m, i, j) + offset;
        for (int c = 0; c < count; c++) out[c] += part[c];
    }
}

/* Images in micro-batch j of a pass. */
static int micro_images(const nr_model *m, const nr_pass *ps, int j)
{
    int first = j * m->micro;
    return ps->n - first < m->micro ? ps->n - first : m->micro;
}

/* The batch's mean and biased variance of BatchNorm layer i from each
 * micro-batch's sum and squared deviation from its own mean (Chan et al.'s
 * combination, in micro-batch order): the variance is the sum over j of
 * sqdev_j + n_j (mean_j - mean)^2, over count. stats: mean [C], var [C]. */
static void bn_batch_stats(const nr_model *m, const nr_pass *ps, int i, int phase, double *stats)
{
    int C = m->layers[i].in_c, nmicro = micro_count(m, ps->n);
    size_t hw = (size_t)m->layers[i].in_h * m->layers[i].in_w, count = (size_t)ps->n * hw;
    double *mean = stats, *var = stats + C;
    bn_total(m, i, nmicro, phase, 0, C, mean);
    for (int c = 0; c < C; c++) mean[c] /= (double)count;
    for (int c = 0; c < C; c++) var[c] = 0.0;
    for (int j = 0; j < nmicro; j++) {
        const double *part = bn_part_in(winner_lane(m, phase, j), m, i, j);
        double n_j = (double)micro_images(m, ps, j) * (double)hw;
        for (int c = 0; c < C; c++) {
            double d = part[c] / n_j - mean[c];
            var[c] += part[C + c] + n_j * d * d;
        }
    }
    for (int c = 0; c < C; c++) var[c] /= (double)count;
}

/* The batch statistics of BatchNorm layer i, from the sums `phase` wrote,
 * set into `saved` (and into the running statistics when flags has
 * NR_UPDATE_STATS). stats: 2 * C doubles of room. */
static void bn_set_batch_stats(nr_model *m, const nr_pass *ps, int i, int phase, double *stats, float *saved,
                               int flags)
{
    const nr_layer *L = &m->layers[i];
    bn_batch_stats(m, ps, i, phase, stats);
    nr_bn_set_stats(L, (size_t)ps->n * L->in_h * L->in_w, stats, stats + L->in_c, m->buffers + m->buffer_off[i],
                    saved, flags);
}

/* The batch statistics of BatchNorm layer i into the micro-batch's saved
 * block (the running statistics move once, after the pass). */
static void bn_synced_stats(nr_model *m, int i, const micro_batch *mb)
{
    /* mean [C], var [C] in the lane's scratch, free between layers */
    bn_set_batch_stats(m, mb->ps, i, mb->plan->fwd_phase[i], (double *)mb->scratch, saved_out(m, i, mb),
                       mb->ps->flags & ~NR_UPDATE_STATS);
}

static void bn_forward_synced(nr_model *m, int i, const micro_batch *mb)
{
    bn_synced_stats(m, i, mb);
    nr_bn_apply(&m->layers[i], mb->nb, act_at(m, i, mb), act_out(m, i, mb), m->params + m->param_off[i],
                saved_at(m, i, mb));
}

/* The micro-batch's sums for BatchNorm layer i, while its input is still
 * in cache: the sum, and the squared deviation from the part's own mean. */
static void bn_part_sums(nr_model *m, int i, const micro_batch *mb)
{
    double *part = bn_part_in(mb->out, m, i, mb->j);
    nr_bn_part_stats(&m->layers[i], mb->nb, act_at(m, i, mb), part, part + m->layers[i].in_c);
}

/* Layers [lo, hi) of the micro-batch; when hi is a BatchNorm layer that
 * needs batch statistics, ends with this micro-batch's sums for it.
 * Returns -1 when the task's result stopped being wanted on the way. */
static int forward_span(nr_model *m, int lo, int hi, const micro_batch *mb)
{
    const nr_pass *ps = mb->ps;
    for (int i = lo; i < hi; i++) {
        if (i > lo && !nr_task_wanted(mb->task)) return -1;
        if (fused_triple(m, mb->training, i)) { /* act[i + 1] and act[i + 2] are left unwritten */
            bn_synced_stats(m, i, mb);
            nr_cpu_bn_relu_maxpool_forward(&m->layers[i], m->params + m->param_off[i], saved_at(m, i, mb),
                                           &m->layers[i + 2], mb->nb, act_at(m, i, mb), act_out(m, i + 2, mb),
                                           saved_out(m, i + 2, mb));
            i += 2;
            continue;
        }
        if (needs_sync(m, mb->training, i)) {
            bn_forward_synced(m, i, mb);
            continue;
        }
        if (i + 1 < hi && fused_pair(m, i)) { /* act[i + 1], the relu's output, is left unwritten */
            nr_cpu_relu_maxpool_forward(&m->layers[i + 1], mb->nb, act_at(m, i, mb), act_out(m, i + 1, mb),
                                        saved_out(m, i + 1, mb));
            i++;
            continue;
        }
        nr_stream dropout = nr_stream_make(ps->seed, NR_RNG_DROPOUT, (uint32_t)i, ps->draw);
        nr_cpu_forward_part(&m->layers[i], mb->nb, mb->first, act_at(m, i, mb), act_out(m, i, mb),
                            m->params + m->param_off[i], m->buffers + m->buffer_off[i], saved_out(m, i, mb),
                            mb->scratch, ps->flags, dropout);
    }
    if (hi < m->nlayers) bn_part_sums(m, hi, mb);
    return 0;
}

/* d(loss)/d(output of layer i) of the micro-batch: dlogits, a gradient
 * another phase left (dx_edge), or the one this task just wrote. */
static const float *dy_at(const nr_model *m, int i, const micro_batch *mb)
{
    if (i == m->nlayers - 1) return mb->out->dlogits + (size_t)mb->first * m->classes;
    const nr_lane *ln = lane_of(m, mb->plan->bwd_phase[i + 1], mb);
    if (ln->dx_edge[i + 1]) return ln->dx_edge[i + 1] + (size_t)mb->first * layer_in_size(&m->layers[i + 1]);
    return mb->out->dx[(i + 1) & 1] + (size_t)mb->first * m->widest;
}

/* Where the gradient of layer i's input goes (NULL for the first layer,
 * whose is unused). Micro-batches at different layers share the two
 * ping-pong buffers: each owns a region of the widest layer's size. */
static float *dx_at(const nr_model *m, int i, const micro_batch *mb)
{
    if (i == 0) return NULL;
    if (mb->out->dx_edge[i]) return mb->out->dx_edge[i] + (size_t)mb->first * layer_in_size(&m->layers[i]);
    return mb->out->dx[i & 1] + (size_t)mb->first * m->widest;
}

/* The pooling's output, dy and argmax of the triple at BatchNorm layer i. */
static nr_pooled_grad pooled_grad_of(const nr_model *m, int i, const micro_batch *mb)
{
    nr_pooled_grad g = { act_at(m, i + 3, mb), dy_at(m, i + 2, mb), saved_at(m, i + 2, mb) };
    return g;
}

/* Backward of BatchNorm layer i for the micro-batch from the whole batch's
 * sums; the parameter gradients (whole-batch sums already) go to
 * micro-batch 0, zeros to the others, so the step's sum is exact. */
static void bn_backward_synced(nr_model *m, int i, const micro_batch *mb)
{
    const nr_layer *L = &m->layers[i];
    int C = L->in_c;
    double *sums = (double *)mb->scratch;
    bn_total(m, i, mb->nmicro, mb->plan->bwd_phase[i + 1], 2 * (size_t)C, 2 * C, sums);
    if (L->affine) {
        float *dp = mb->grads + m->param_off[i];
        for (int c = 0; c < C; c++) {
            dp[c] = mb->j == 0 ? (float)sums[C + c] : 0.0f;
            dp[C + c] = mb->j == 0 ? (float)sums[c] : 0.0f;
        }
    }
    float *dx = dx_at(m, i, mb);
    size_t count = (size_t)mb->ps->n * L->in_h * L->in_w;
    if (dx && fused_triple(m, mb->training, i)) {
        nr_pooled_grad g = pooled_grad_of(m, i, mb);
        nr_bn_fused_grad_apply(L, &m->layers[i + 2], mb->nb, count, act_at(m, i, mb), &g, dx,
                               m->params + m->param_off[i], saved_at(m, i, mb), sums, mb->scratch + bn_fused_at(L));
    } else if (dx) {
        nr_bn_grad_apply(L, mb->nb, count, act_at(m, i, mb), dy_at(m, i, mb), dx, m->params + m->param_off[i],
                         saved_at(m, i, mb), sums);
    }
}

/* Backward of the fused pair i (relu), i + 1 (max pooling): the pooling's
 * dy and the relu's dx share a buffer (dy_at, dx_at), so dy is copied to
 * the lane's scratch first. */
static void fused_backward(nr_model *m, int i, const micro_batch *mb)
{
    float *dx = dx_at(m, i, mb);
    if (!dx) return;
    size_t count = (size_t)mb->nb * nr_model_sample_size(m, i + 1);
    memcpy(mb->scratch, dy_at(m, i + 1, mb), count * sizeof(float));
    nr_cpu_relu_maxpool_backward(&m->layers[i + 1], mb->nb, act_at(m, i + 2, mb), mb->scratch, dx,
                                 saved_at(m, i + 1, mb));
}

/* Backward of layers hi-1 down to lo of the micro-batch; when lo - 1 is a
 * BatchNorm layer that needs batch sums, ends with this micro-batch's.
 * Returns -1 when the task's result stopped being wanted on the way. */
static int backward_span(nr_model *m, int lo, int hi, const micro_batch *mb)
{
    for (int i = hi - 1; i >= lo; i--) {
        if (!nr_task_wanted(mb->task)) return -1;
        if (needs_sync(m, mb->training, i)) {
            bn_backward_synced(m, i, mb);
            continue;
        }
        if (i - 1 >= lo && fused_pair(m, i - 1)) {
            if (!fused_triple(m, mb->training, i - 2)) fused_backward(m, i - 1, mb);
            i--;
            continue;
        }
        nr_cpu_backward(&m->layers[i], mb->nb, act_at(m, i, mb), act_at(m, i + 1, mb), dy_at(m, i, mb),
                        dx_at(m, i, mb), m->params + m->param_off[i], mb->grads + m->param_off[i],
                        saved_at(m, i, mb), mb->scratch);
    }
    int b = lo - 1;
    if (b < 0) return 0;
    const nr_layer *L = &m->layers[b];
    double *sums = bn_part_in(mb->out, m, b, mb->j) + 2 * (size_t)L->in_c;
    if (fused_triple(m, mb->training, b)) {
        nr_pooled_grad g = pooled_grad_of(m, b, mb);
        nr_bn_fused_grad_sums(L, &m->layers[b + 2], mb->nb, act_at(m, b, mb), &g, saved_at(m, b, mb), sums,
                              mb->scratch + bn_fused_at(L));
    } else {
        nr_bn_grad_sums(L, mb->nb, act_at(m, b, mb), dy_at(m, b, mb), saved_at(m, b, mb), sums);
    }
    return 0;
}

/* The last forward span of the micro-batch, its loss, and its backward
 * down to the last layer that needs batch sums. */
static int forward_loss_backward(nr_model *m, int lo, const micro_batch *mb)
{
    const nr_pass *ps = mb->ps;
    if (forward_span(m, lo, m->nlayers, mb)) return -1;
    if (!ps->loss) return 0;
    const float *out = act_out(m, m->nlayers - 1, mb);
    const int *labels = lane_of(m, 0, mb)->labels + mb->first;
    mb->out->loss_part[mb->j] = nr_loss_rows(ps->loss, mb->nb, m->classes, out, labels,
                                             mb->out->dlogits + (size_t)mb->first * m->classes,
                                             &mb->out->correct_part[mb->j], 1.0 / ps->n);
    int k = mb->plan->syncs;
    return backward_span(m, k > 0 ? mb->plan->lo[k] + 1 : 0, m->nlayers, mb);
}

/* The samples of the micro-batch, from the caller's data. */
static int prepare_inputs(nr_model *m, const micro_batch *mb)
{
    const nr_pass *ps = mb->ps;
    if (!ps->prepare) return 0;
    if (!nr_task_enter_caller(mb->task)) return -1;
    ps->prepare(ps->ctx, mb->first, mb->nb, act_out(m, -1, mb), mb->out->labels + mb->first, mb->task->lane);
    nr_task_leave_caller(mb->task);
    return 0;
}

static int run_task(void *ctx, const nr_task *t)
{
    nr_model *m = ctx;
    const nr_pass *ps = t->args;
    nr_cpu_lane_kernels(1);
    micro_batch mb;
    mb.j = t->index;
    mb.nmicro = micro_count(m, ps->n);
    mb.first = t->index * m->micro;
    mb.nb = micro_images(m, ps, t->index);
    mb.phase = t->phase;
    mb.training = (ps->flags & NR_TRAINING) != 0;
    mb.plan = &m->plan[mb.training];
    mb.ps = ps;
    mb.task = t;
    mb.out = &m->lane[t->lane];
    mb.scratch = mb.out->scratch;
    mb.grads = mb.out->part_grads + (size_t)t->index * m->nparams;
    int k = mb.plan->syncs, q = t->phase;
    if (q == 0 && prepare_inputs(m, &mb)) return -1;
    if (q < k) return forward_span(m, mb.plan->lo[q], mb.plan->hi[q], &mb);
    if (q == k) return forward_loss_backward(m, mb.plan->lo[k], &mb);
    return backward_span(m, mb.plan->lo[q], mb.plan->hi[q], &mb);
}

/* ---- after the pass: what the lanes that finished first wrote ----------- */

/* grads = the micro-batches' gradients summed in micro-batch order. */
static void sum_gradients(nr_model *m, const nr_plan *pl, int nmicro)
{
    for (int i = 0; i < m->nlayers; i++) {
        size_t lo = m->param_off[i], hi = m->param_off[i + 1];
        if (hi == lo) continue;
        float *g = m->grads;
        for (int j = 0; j < nmicro; j++) {
            const float *part = winner_lane(m, pl->bwd_phase[i], j)->part_grads + (size_t)j * m->nparams;
            if (j == 0) {
                memcpy(g + lo, part + lo, (hi - lo) * sizeof *g);
                continue;
            }
#pragma omp simd
            for (size_t e = lo; e < hi; e++) g[e] += part[e];
        }
    }
}

/* BatchNorm's running statistics, moved once per pass. */
static void update_running_stats(nr_model *m, const nr_pass *ps, const nr_plan *pl, float *scratch)
{
    double *stats = (double *)scratch;
    for (int i = 0; i < m->nlayers; i++) {
        if (!needs_sync(m, 1, i)) continue;
        float *saved = (float *)(stats + 2 * (size_t)m->layers[i].in_c); /* a throwaway block */
        bn_set_batch_stats(m, ps, i, pl->fwd_phase[i], stats, saved, ps->flags);
    }
}

/* The output rows and labels of every micro-batch, in one place. */
static void gather_outputs(nr_model *m, const nr_plan *pl, const nr_pass *ps, int nmicro)
{
    int last = pl->syncs;
    size_t per = (size_t)m->classes;
    for (int j = 0; j < nmicro; j++) {
        int first = j * m->micro, nb = micro_images(m, ps, j);
        const nr_lane *out = winner_lane(m, last, j);
        const nr_lane *in = winner_lane(m, 0, j);
        memcpy(m->out + (size_t)first * per, out->act[m->nlayers] + (size_t)first * per, (size_t)nb * per * sizeof(float));
        memcpy(m->labels + first, in->labels + first, (size_t)nb * sizeof *m->labels);
    }
}

/* After the pass, on the thread that finished it: the outputs in one
 * place, the running statistics, the gradients and the loss, then the
 * pass's own `after`. */
static void finish_pass(void *ctx, const nr_task *last)
{
    nr_model *m = ctx;
    const nr_pass *ps = last->args;
    int nmicro = micro_count(m, ps->n), training = (ps->flags & NR_TRAINING) != 0;
    const nr_plan *pl = &m->plan[training];
    gather_outputs(m, pl, ps, nmicro);
    if (training && (ps->flags & NR_UPDATE_STATS)) update_running_stats(m, ps, pl, m->lane[last->lane].scratch);
    m->loss_mean = 0.0;
    m->correct = 0;
    if (ps->loss) {
        sum_gradients(m, pl, nmicro);
        double total = 0.0;
        int right = 0;
        for (int j = 0; j < nmicro; j++) {
            const nr_lane *ln = winner_lane(m, pl->syncs, j);
            total += ln->loss_part[j];
            right += ln->correct_part[j];
        }
        m->loss_mean = total / ps->n;
        m->correct = right;
    }
    if (ps->after) ps->after(ps->ctx, m->loss_mean, m->correct);
}

static int pass_phases(const nr_model *m, const nr_pass *ps)
{
    const nr_plan *pl = &m->plan[(ps->flags & NR_TRAINING) != 0];
    return ps->loss ? 2 * pl->syncs + 1 : pl->syncs + 1;
}

long nr_model_wait_for_room(nr_model *m)
{
    long k = nr_team_wait_for_room(m->team);
    nr_cpu_lane_kernels(0); /* lane 0 may have run tasks while it waited */
    return k;
}

long nr_model_submit(nr_model *m, const nr_pass *ps)
{
    long k = nr_team_submit(m->team, pass_phases(m, ps), micro_count(m, ps->n), ps);
    nr_cpu_lane_kernels(0); /* lane 0 may have run tasks while it waited for room */
    return k;
}

void nr_model_wait(nr_model *m, long passes)
{
    nr_team_wait(m->team, passes);
    nr_cpu_lane_kernels(0); /* run_task set it on this thread too */
}

long nr_model_submitted(const nr_model *m) { return nr_team_submitted(m->team); }

const float *nr_model_pass(nr_model *m, const nr_pass *ps, double *loss_mean, int *correct)
{
    if (ps->n <= 0) return m->out;
    nr_model_wait(m, nr_model_submit(m, ps));
    if (ps->loss) {
        *loss_mean = m->loss_mean;
        if (correct) *correct = m->correct;
    }
    return m->out;
}
