/* The CUDA backend behind runtime/backend.h: netc's kernels (kernels.cu,
 * compiled by NVRTC, or the emulator's build of the same source) launched
 * layer by layer through layers.c, on the device layer of dev.h.
 *
 * Every step is queued on the device's stream and nothing waits for it:
 * the loss and the number correct of step `slot` land in device memory
 * (results[slot]) and read_steps fetches them when the driver asks.
 *
 * Batches are prepared on the host by the CPU's own preprocessing
 * (runtime/preprocess.c: normalize, resize, augmentation, noise), so both
 * backends see the same images bit for bit, and uploaded as floats. */
#include "config.h"
#include "../backend.h"
#include "../cpu/ops.h"
#include "../optim.h"
#include "../preprocess.h"
#include "emu_load.h"
#include "gpu.h"
#include "layers.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef HAVE_CUDA
/* Built without the CUDA toolkit: no driver layer, the emulator only. */
const nr_dev_ops *nr_cuda_dev_ops(void) { return NULL; }
#endif

typedef struct cuda_backend {
    nr_backend base;
    const nr_program *p;
    nr_backend_config c;
    nr_optim optim;
    nr_loss loss;
    nr_gpu g;
    int nl;
    size_t nparams, nbuffers, nstate;
    size_t *param_off, *buffer_off;         /* per layer, in floats */
    const nr_dataset *sets[NR_SET_COUNT];   /* kept on the host: batches are prepared there */
    nr_dptr params, grads, buffers, state, sam_saved, sam_scratch;
    nr_dptr *act, *saved;                   /* act[0] the input batch, act[i + 1] layer i's output */
    nr_dptr scratch, dx[2], dlogits, labels, results;
    float *h_input, *h_logits;
    int32_t *h_labels;
    float *pre_scratch;                     /* per thread */
    size_t pre_scratch_each;
    int nthreads;
} cuda_backend;

static cuda_backend *cuda_of(nr_backend *b) { return (cuda_backend *)b; }

static size_t image_size(const nr_program *p)
{
    return (size_t)p->data.channels * p->data.height * p->data.width;
}

static size_t out_size(const nr_layer *L) { return (size_t)L->out_c * L->out_h * L->out_w; }

/* The results slot SAM's second pass and evaluations write to. */
static nr_dptr spare_result(const cuda_backend *cb)
{
    return cb->results + (size_t)cb->c.max_steps * NR_GPU_LOSS_RESULT_BYTES;
}

/* ---- host-side batch preparation -------------------------------------------- */

static float *thread_scratch(cuda_backend *cb)
{
#ifdef _OPENMP
    return cb->pre_scratch + (size_t)omp_get_thread_num() * cb->pre_scratch_each;
#else
    return cb->pre_scratch;
#endif
}

static int upload_batch(cuda_backend *cb, int n, nr_error *e)
{
    size_t sz = image_size(cb->p);
    if (nr_gpu_upload(&cb->g, cb->act[0], cb->h_input, (size_t)n * sz * sizeof(float), e)) return -1;
    return nr_gpu_upload(&cb->g, cb->labels, cb->h_labels, (size_t)n * sizeof(int32_t), e);
}

static int prepare_train_batch(cuda_backend *cb, const nr_batch *bt, nr_error *e)
{
    const nr_program *p = cb->p;
    const nr_dataset *ds = cb->sets[NR_SET_TRAIN];
    size_t sz = image_size(p);
#pragma omp parallel for schedule(static)
    for (int j = 0; j < bt->n; j++) {
        uint32_t img = bt->image[j];
        nr_stream st = nr_stream_make(cb->c.seed, NR_RNG_AUGMENT, bt->stream_a[j], img);
        nr_preprocess(&p->data, bt->augment[j] ? &p->augment : NULL, ds->pixels + (size_t)img * sz,
                      cb->h_input + (size_t)j * sz, thread_scratch(cb), st);
        cb->h_labels[j] = ds->labels[img];
    }
    return upload_batch(cb, bt->n, e);
}

static int prepare_eval_batch(cuda_backend *cb, const nr_eval *ev, int first, int n, nr_error *e)
{
    const nr_program *p = cb->p;
    const nr_dataset *ds = cb->sets[ev->set];
    const nr_noise_test *nt = &p->noise;
    size_t sz = image_size(p);
#pragma omp parallel for schedule(static)
    for (int j = 0; j < n; j++) {
        uint32_t img = ev->idx ? ev->idx[first + j] : (uint32_t)(first + j);
        const uint8_t *px = ds->pixels + (size_t)img * sz;
        float *out = cb->h_input + (size_t)j * sz;
        if (ev->noise_level < 0)
            nr_preprocess(&p->data, NULL, px, out, thread_scratch(cb), nr_stream_make(0, NR_RNG_AUGMENT, 0, 0));
        else
            nr_preprocess_noisy(&p->data, nt, nt->std[ev->noise_level], px, out,
                                nr_noise_stream(nt, ev->noise_level, img));
        cb->h_labels[j] = ds->labels[img];
    }
    return upload_batch(cb, n, e);
}

/* ---- the model on the device -------------------------------------------------- */

static nr_dptr floats_at(nr_dptr base, size_t offset) { return base + offset * sizeof(float); }

static int forward(cuda_backend *cb, int n, int flags, uint32_t draw, nr_error *e)
{
    for (int i = 0; i < cb->nl; i++) {
        nr_stream dropout = nr_stream_make(cb->c.seed, NR_RNG_DROPOUT, (uint32_t)i, draw);
        if (nr_gpu_forward(&cb->g, &cb->p->layers[i], n, cb->act[i], cb->act[i + 1],
                           floats_at(cb->params, cb->param_off[i]), floats_at(cb->buffers, cb->buffer_off[i]),
                           cb->saved[i], cb->scratch, flags, dropout, e))
            return -1;
    }
    return 0;
}

static int backward(cuda_backend *cb, int n, nr_error *e)
{
    nr_dptr dy = cb->dlogits;
    for (int i = cb->nl - 1; i >= 0; i--) {
        /* The first layer's input gradient is never used. */
        nr_dptr dx = i > 0 ? cb->dx[i & 1] : 0;
        if (nr_gpu_backward(&cb->g, &cb->p->layers[i], n, cb->act[i], cb->act[i + 1], dy, dx,
                            floats_at(cb->params, cb->param_off[i]), floats_at(cb->grads, cb->param_off[i]),
                            cb->saved[i], cb->scratch, e))
            return -1;
        dy = dx;
    }
    return 0;
}

/* Forward, loss (into `result`) and backward over the uploaded batch. */
static int forward_backward(cuda_backend *cb, int n, int flags, uint32_t draw, nr_dptr result, nr_error *e)
{
    if (forward(cb, n, flags, draw, e)) return -1;
    if (nr_gpu_loss(&cb->g, &cb->loss, n, cb->p->classes, cb->act[cb->nl], cb->labels, cb->dlogits, result, e))
        return -1;
    return backward(cb, n, e);
}

static int cuda_train_step(nr_backend *b, const nr_batch *bt, nr_error *e)
{
    cuda_backend *cb = cuda_of(b);
    if (bt->slot < 0 || bt->slot >= cb->c.max_steps) return nr_fail(e, "step slot %ld out of range", bt->slot);
    if (!cb->sets[NR_SET_TRAIN]) return nr_fail(e, "no training set uploaded");
    if (prepare_train_batch(cb, bt, e)) return -1;
    nr_dptr result = cb->results + (size_t)bt->slot * NR_GPU_LOSS_RESULT_BYTES;
    if (forward_backward(cb, bt->n, NR_TRAINING | NR_UPDATE_STATS, (uint32_t)(2 * bt->step), result, e)) return -1;
    /* A loss that is not finite is seen by the driver when it reads the
     * step; the update below then spoils only weights nobody keeps. */
    if (cb->optim.sam) {
        /* SAM: the gradient again at the sharpest nearby point; BatchNorm's
         * running statistics stay as the first pass left them. */
        if (nr_gpu_sam_perturb(&cb->g, &cb->optim, cb->params, cb->grads, cb->sam_saved, cb->sam_scratch,
                               cb->nparams, e) ||
            forward_backward(cb, bt->n, NR_TRAINING, (uint32_t)(2 * bt->step + 1), spare_result(cb), e) ||
            nr_gpu_sam_restore(&cb->g, cb->params, cb->sam_saved, cb->nparams, e))
            return -1;
    }
    return nr_gpu_optim_step(&cb->g, &cb->optim, bt->lr, bt->step + 1, cb->params, cb->grads, cb->state, cb->nparams,
                             e);
}

static int cuda_read_steps(nr_backend *b, long first, long count, nr_step_result *out, nr_error *e)
{
    cuda_backend *cb = cuda_of(b);
    if (first < 0 || count < 0 || first + count > cb->c.max_steps)
        return nr_fail(e, "steps %ld..%ld out of range", first, first + count);
    if (!count) return 0;
    size_t bytes = (size_t)count * NR_GPU_LOSS_RESULT_BYTES;
    unsigned char *raw = malloc(bytes);
    if (!raw) return nr_fail(e, "out of memory");
    int rc = nr_gpu_download(&cb->g, raw, cb->results + (size_t)first * NR_GPU_LOSS_RESULT_BYTES, bytes, e);
    for (long k = 0; k < count && !rc; k++) {
        memcpy(&out[k].loss, raw + k * NR_GPU_LOSS_RESULT_BYTES, sizeof(double));
        memcpy(&out[k].correct, raw + k * NR_GPU_LOSS_RESULT_BYTES + sizeof(double), sizeof(int));
    }
    free(raw);
    return rc;
}

/* Index of the largest of n values. */
static int32_t argmax(const float *v, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

static int cuda_evaluate(nr_backend *b, const nr_eval *ev, double *loss_sum, long *correct, int32_t *pred,
                         nr_error *e)
{
    cuda_backend *cb = cuda_of(b);
    int classes = cb->p->classes, batch = cb->c.batch;
    if (ev->set < 0 || ev->set >= NR_SET_COUNT || !cb->sets[ev->set]) return nr_fail(e, "data set %d not uploaded", ev->set);
    *loss_sum = 0;
    *correct = 0;
    for (int first = 0; first < ev->count; first += batch) {
        int n = ev->count - first < batch ? ev->count - first : batch;
        if (prepare_eval_batch(cb, ev, first, n, e) || forward(cb, n, 0, 0, e) ||
            nr_gpu_loss(&cb->g, &cb->loss, n, classes, cb->act[cb->nl], cb->labels, 0, spare_result(cb), e))
            return -1;
        double loss = 0;
        int c = 0;
        if (nr_gpu_loss_result(&cb->g, spare_result(cb), &loss, &c, e)) return -1;
        if (pred) {
            if (nr_gpu_download(&cb->g, cb->h_logits, cb->act[cb->nl], (size_t)n * classes * sizeof(float), e))
                return -1;
            for (int j = 0; j < n; j++) pred[first + j] = argmax(cb->h_logits + (size_t)j * classes, classes);
        }
        *loss_sum += n * loss;
        *correct += c;
    }
    return 0;
}

static int check_counts(const cuda_backend *cb, const nr_host_state *s, nr_error *e)
{
    if (s->nparams != cb->nparams || s->nbuffers != cb->nbuffers || s->noptim != cb->nstate)
        return nr_fail(e, "state of %zu/%zu/%zu floats handed to a model of %zu/%zu/%zu", s->nparams, s->nbuffers,
                       s->noptim, cb->nparams, cb->nbuffers, cb->nstate);
    return 0;
}

static int cuda_get_state(nr_backend *b, nr_host_state *s, nr_error *e)
{
    cuda_backend *cb = cuda_of(b);
    if (check_counts(cb, s, e) || nr_gpu_download(&cb->g, s->params, cb->params, s->nparams * sizeof(float), e) ||
        nr_gpu_download(&cb->g, s->buffers, cb->buffers, s->nbuffers * sizeof(float), e))
        return -1;
    return s->noptim ? nr_gpu_download(&cb->g, s->optim, cb->state, s->noptim * sizeof(float), e) : 0;
}

static int cuda_set_state(nr_backend *b, const nr_host_state *s, nr_error *e)
{
    cuda_backend *cb = cuda_of(b);
    if (check_counts(cb, s, e) || nr_gpu_upload(&cb->g, cb->params, s->params, s->nparams * sizeof(float), e) ||
        nr_gpu_upload(&cb->g, cb->buffers, s->buffers, s->nbuffers * sizeof(float), e))
        return -1;
    return s->noptim ? nr_gpu_upload(&cb->g, cb->state, s->optim, s->noptim * sizeof(float), e) : 0;
}

static int cuda_upload(nr_backend *b, int set, const nr_dataset *ds, nr_error *e)
{
    if (set < 0 || set >= NR_SET_COUNT) return nr_fail(e, "no data set %d", set);
    /* Borrowed: the driver keeps the set alive for the backend's lifetime. */
    cuda_of(b)->sets[set] = ds;
    return 0;
}

static void cuda_destroy(nr_backend *b)
{
    cuda_backend *cb = cuda_of(b);
    nr_gpu *g = &cb->g;
    if (g->ops) {
        nr_dptr *bufs[] = { &cb->params, &cb->grads, &cb->buffers, &cb->state, &cb->sam_saved, &cb->sam_scratch,
                            &cb->scratch, &cb->dx[0], &cb->dx[1], &cb->dlogits, &cb->labels, &cb->results };
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) nr_gpu_free(g, *bufs[i]);
        for (int i = 0; cb->act && i <= cb->nl; i++) nr_gpu_free(g, cb->act[i]);
        for (int i = 0; cb->saved && i < cb->nl; i++) nr_gpu_free(g, cb->saved[i]);
        nr_gpu_close(g);
    }
    free(cb->act);
    free(cb->saved);
    free(cb->param_off);
    free(cb->buffer_off);
    nr_free(cb->h_input);
    nr_free(cb->h_logits);
    nr_free(cb->h_labels);
    nr_free(cb->pre_scratch);
    free(cb);
}

static const nr_backend_ops cuda_ops = {
    cuda_upload, cuda_train_step, cuda_read_steps, cuda_evaluate, cuda_get_state, cuda_set_state, cuda_destroy,
};

/* ---- opening ------------------------------------------------------------------- */

static int alloc_floats(cuda_backend *cb, nr_dptr *p, size_t count, nr_error *e)
{
    return nr_gpu_alloc(&cb->g, p, (count ? count : 1) * sizeof(float), e);
}

static int lay_out(cuda_backend *cb, nr_error *e)
{
    const nr_program *p = cb->p;
    int nl = cb->nl, batch = cb->c.batch;
    cb->param_off = calloc((size_t)nl + 1, sizeof *cb->param_off);
    cb->buffer_off = calloc((size_t)nl + 1, sizeof *cb->buffer_off);
    cb->act = calloc((size_t)nl + 1, sizeof *cb->act);
    cb->saved = calloc((size_t)nl, sizeof *cb->saved);
    if (!cb->param_off || !cb->buffer_off || !cb->act || !cb->saved) return nr_fail(e, "out of memory");
    size_t widest = image_size(p), scratch = 0;
    for (int i = 0; i < nl; i++) {
        const nr_layer *L = &p->layers[i];
        cb->param_off[i + 1] = cb->param_off[i] + nr_layer_param_count(L);
        cb->buffer_off[i + 1] = cb->buffer_off[i] + nr_layer_buffer_count(L);
        if (out_size(L) > widest) widest = out_size(L);
        size_t s = nr_gpu_layer_scratch_count(L, batch);
        if (s > scratch) scratch = s;
    }
    cb->nparams = cb->param_off[nl];
    cb->nbuffers = cb->buffer_off[nl];
    cb->nstate = nr_optim_state_count(&cb->optim, cb->nparams);
    if (alloc_floats(cb, &cb->params, cb->nparams, e) || alloc_floats(cb, &cb->grads, cb->nparams, e) ||
        alloc_floats(cb, &cb->buffers, cb->nbuffers, e) || alloc_floats(cb, &cb->state, cb->nstate, e) ||
        alloc_floats(cb, &cb->scratch, scratch, e) || alloc_floats(cb, &cb->dx[0], widest * batch, e) ||
        alloc_floats(cb, &cb->dx[1], widest * batch, e) ||
        alloc_floats(cb, &cb->dlogits, (size_t)batch * p->classes, e) ||
        nr_gpu_alloc(&cb->g, &cb->labels, (size_t)batch * sizeof(int32_t), e) ||
        nr_gpu_alloc(&cb->g, &cb->results, ((size_t)cb->c.max_steps + 1) * NR_GPU_LOSS_RESULT_BYTES, e) ||
        alloc_floats(cb, &cb->act[0], image_size(p) * batch, e))
        return -1;
    if (cb->optim.sam && (alloc_floats(cb, &cb->sam_saved, cb->nparams, e) ||
                          nr_gpu_alloc(&cb->g, &cb->sam_scratch, NR_GPU_SAM_SCRATCH_BYTES, e)))
        return -1;
    for (int i = 0; i < nl; i++) {
        const nr_layer *L = &p->layers[i];
        if (alloc_floats(cb, &cb->act[i + 1], out_size(L) * batch, e) ||
            alloc_floats(cb, &cb->saved[i], nr_layer_saved_count(L, batch), e))
            return -1;
    }
    /* Gradients of layers without a backward write (none today) must not be garbage. */
    return nr_gpu_fill32(&cb->g, cb->grads, 0, cb->nparams, e);
}

static int host_buffers(cuda_backend *cb, nr_error *e)
{
    const nr_program *p = cb->p;
#ifdef _OPENMP
    cb->nthreads = omp_get_max_threads();
#else
    cb->nthreads = 1;
#endif
    cb->h_input = nr_alloc(image_size(p) * (size_t)cb->c.batch * sizeof(float));
    cb->h_logits = nr_alloc((size_t)cb->c.batch * p->classes * sizeof(float));
    cb->h_labels = nr_alloc((size_t)cb->c.batch * sizeof(int32_t));
    cb->pre_scratch_each = nr_preprocess_scratch(&p->data, &p->augment) + 16;
    cb->pre_scratch = nr_zalloc(cb->pre_scratch_each * (size_t)cb->nthreads * sizeof(float));
    if (!cb->h_input || !cb->h_logits || !cb->h_labels || !cb->pre_scratch)
        return nr_fail(e, "out of memory for batches of %d", cb->c.batch);
    return 0;
}

const nr_dev_ops *nr_cuda_device_layer(nr_error *e)
{
    const char *which = getenv("NETC_CUDA");
    if (which && !strcmp(which, "emu")) return nr_emu_load(e);
    if (which && *which && strcmp(which, "gpu")) {
        nr_fail(e, "NETC_CUDA is '%s': use 'emu' for the emulator, or unset it", which);
        return NULL;
    }
    const nr_dev_ops *ops = nr_cuda_dev_ops();
    if (!ops) nr_fail(e, "this libnetrt was built without the CUDA toolkit (configure --with-cuda=DIR)");
    return ops;
}

static void describe_device(cuda_backend *cb)
{
    const nr_dev_info *in = &cb->g.info;
    if (in->emulated) {
        snprintf(cb->base.device, sizeof cb->base.device, "%.100s (sm_%d%d emulated on the CPU)", in->name, in->major,
                 in->minor);
        snprintf(cb->base.why, sizeof cb->base.why, "NETC_CUDA=emu; kernels: %.200s", cb->g.module_note);
        return;
    }
    snprintf(cb->base.device, sizeof cb->base.device, "%.80s (sm_%d%d, %d SMs, %.1f GiB)", in->name, in->major,
             in->minor, in->sm_count, (double)in->total_memory / (1024.0 * 1024.0 * 1024.0));
    snprintf(cb->base.why, sizeof cb->base.why, "driver %d.%d, NVRTC %d.%d; kernels: %.200s",
             in->driver_version / 1000, in->driver_version % 1000 / 10, in->nvrtc_version / 1000,
             in->nvrtc_version % 1000 / 10, cb->g.module_note);
}

nr_backend *nr_cuda_backend_open(const nr_backend_config *c, nr_error *e)
{
    const nr_dev_ops *ops = nr_cuda_device_layer(e);
    if (!ops) return NULL;
    cuda_backend *cb = calloc(1, sizeof *cb);
    if (!cb) {
        nr_fail(e, "out of memory");
        return NULL;
    }
    cb->base.ops = &cuda_ops;
    cb->p = c->p;
    cb->c = *c;
    cb->optim = *c->optim;
    cb->loss = *c->loss;
    cb->nl = c->p->nlayers;
    if (nr_gpu_open(&cb->g, ops, 0, c->tf32, e) || nr_gpu_load_kernels(&cb->g, e) || lay_out(cb, e) ||
        host_buffers(cb, e)) {
        cuda_destroy(&cb->base);
        return NULL;
    }
    describe_device(cb);
    return &cb->base;
}
