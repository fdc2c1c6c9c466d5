/* The CUDA backend behind runtime/backend.h: netc's kernels (kernels.cu,
 * compiled by NVRTC, or the emulator's build of the same source) launched
 * layer by layer through layers.c, on the device layer of dev.h.
 *
 * Every step is queued on the device's stream and nothing waits for it:
 * the loss and the number correct of step `slot` land in device memory
 * (results[slot]) and read_steps fetches them when the driver asks.
 *
 * A training step's launches (forward, loss, backward, SAM, optimizer) are
 * captured once per batch size as a CUDA graph and replayed: what changes
 * from step to step (step number, slot, lr, bias corrections) is uploaded
 * to an nr_step_vars in device memory before each replay, and the batch to
 * fixed buffers. NETC_CUDA_GRAPHS=0 launches them one by one instead.
 *
 * The data sets are uploaded once as uint8; a batch is gathered on the GPU
 * through the indices the driver chose and augmented there with
 * runtime/preprocess.c's arithmetic and the same Philox draws (gather.cuh),
 * so both backends see the same images. Per step only the batch's indices
 * and stream numbers cross the bus. */
#include "config.h"
#include "../backend.h"
#include "../nr_math.h"
#include "../cpu/ops.h"
#include "../optim.h"
#include "emu_load.h"
#include "gpu.h"
#include "layers.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    struct { nr_dptr pixels, labels; int count; } sets[NR_SET_COUNT];  /* on the device */
    nr_gpu_batch_desc desc;
    nr_dptr params, grads, buffers, state, sam_saved, sam_scratch;
    nr_dptr *act, *saved;                   /* act[0] the input batch, act[i + 1] layer i's output */
    nr_dptr scratch, dx[2], dlogits, labels, results;
    nr_dptr vars, eval_vars;                /* the step's nr_step_vars (step_in's start); evaluation's (spare slot) */
    int use_graphs;
    struct { int n; nr_dev_graph *graph; } graphs[4];  /* per batch size: the full one, the last */
    int ngraphs;
    nr_dptr step_in;                        /* what a step uploads (step_layout), in one copy */
    nr_dptr batch_image, batch_stream, batch_augment;  /* inside step_in; vars is its start */
    nr_dptr gather_scratch;
    nr_dptr eval_idx;                       /* an evaluation's indices */
    int eval_idx_cap;
    float *h_logits;
    unsigned char *h_step;                  /* step_in's host copy */
} cuda_backend;

static cuda_backend *cuda_of(nr_backend *b) { return (cuda_backend *)b; }

static size_t image_size(const nr_program *p)
{
    return (size_t)p->data.channels * p->data.height * p->data.width;
}

static size_t out_size(const nr_layer *L) { return (size_t)L->out_c * L->out_h * L->out_w; }


/* ---- batches -------------------------------------------------------------- */

/* What a training step sends to the device, in one upload: its
 * nr_step_vars, then the batch's image indices, stream numbers and augment
 * flags, each array sized for the full batch. */
typedef struct step_layout {
    size_t image, stream, augment, bytes;
} step_layout;

static step_layout step_layout_of(int batch)
{
    size_t words = (size_t)batch * sizeof(uint32_t);
    step_layout l;
    l.image = (sizeof(nr_step_vars) + 7) / 8 * 8;
    l.stream = l.image + words;
    l.augment = l.stream + words;
    l.bytes = l.augment + (size_t)batch;
    return l;
}

/* The step's values and its batch, in one copy. The host copy lets the
 * driver's arrays change as soon as the step is queued. */
static int upload_step(cuda_backend *cb, const nr_batch *bt, nr_error *e)
{
    step_layout l = step_layout_of(cb->c.batch);
    size_t n = (size_t)bt->n, words = n * sizeof(uint32_t);
    nr_step_vars v;
    nr_gpu_step_vars(&cb->optim, bt->lr, bt->step + 1, bt->slot, &v);
    memcpy(cb->h_step, &v, sizeof v);
    memcpy(cb->h_step + l.image, bt->image, words);
    memcpy(cb->h_step + l.stream, bt->stream_a, words);
    memcpy(cb->h_step + l.augment, bt->augment, n);
    return nr_gpu_upload(&cb->g, cb->step_in, cb->h_step, l.bytes, e);
}

static int gather_train(cuda_backend *cb, int n, nr_error *e)
{
    return nr_gpu_gather_train(&cb->g, &cb->desc, cb->sets[NR_SET_TRAIN].pixels, cb->sets[NR_SET_TRAIN].labels,
                               cb->batch_image, cb->batch_stream, cb->batch_augment, n, cb->gather_scratch,
                               cb->act[0], cb->labels, e);
}

/* ---- the model on the device -------------------------------------------------- */

static nr_dptr floats_at(nr_dptr base, size_t offset) { return base + offset * sizeof(float); }

/* pass: 0, or 1 for SAM's second pass (its own dropout draws). */
static int forward(cuda_backend *cb, int n, int flags, uint32_t pass, nr_error *e)
{
    for (int i = 0; i < cb->nl; i++) {
        nr_gpu_draws dropout = { cb->c.seed, (uint32_t)i, pass, flags & NR_TRAINING ? cb->vars : 0 };
        if (nr_gpu_forward(&cb->g, &cb->p->layers[i], n, cb->act[i], cb->act[i + 1],
                           floats_at(cb->params, cb->param_off[i]), floats_at(cb->buffers, cb->buffer_off[i]),
                           cb->saved[i], cb->scratch, flags, &dropout, e))
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

/* Forward, loss (into the slot `vars` names) and backward over the uploaded batch. */
static int forward_backward(cuda_backend *cb, int n, int flags, uint32_t pass, nr_dptr vars, nr_error *e)
{
    if (forward(cb, n, flags, pass, e)) return -1;
    if (nr_gpu_loss(&cb->g, &cb->loss, n, cb->p->classes, cb->act[cb->nl], cb->labels, cb->dlogits, cb->results,
                    vars, e))
        return -1;
    return backward(cb, n, e);
}

/* Every launch of a training step on the uploaded batch and step values.
 * A loss that is not finite is seen by the driver when it reads the step;
 * the update then spoils only weights nobody keeps. */
static int step_launches(cuda_backend *cb, int n, nr_error *e)
{
    if (gather_train(cb, n, e)) return -1;
    if (forward_backward(cb, n, NR_TRAINING | NR_UPDATE_STATS, 0, cb->vars, e)) return -1;
    if (cb->optim.sam) {
        /* SAM: the gradient again at the sharpest nearby point; BatchNorm's
         * running statistics stay as the first pass left them. */
        if (nr_gpu_sam_perturb(&cb->g, &cb->optim, cb->params, cb->grads, cb->sam_saved, cb->sam_scratch,
                               cb->nparams, e) ||
            forward_backward(cb, n, NR_TRAINING, 1, cb->eval_vars, e) ||
            nr_gpu_sam_restore(&cb->g, cb->params, cb->sam_saved, cb->nparams, e))
            return -1;
    }
    return nr_gpu_optim_step(&cb->g, &cb->optim, cb->vars, cb->params, cb->grads, cb->state, cb->nparams, e);
}

/* The step's graph for batches of n, captured on first use. */
static int step_graph(cuda_backend *cb, int n, nr_dev_graph **out, nr_error *e)
{
    for (int i = 0; i < cb->ngraphs; i++)
        if (cb->graphs[i].n == n) return *out = cb->graphs[i].graph, 0;
    if (cb->ngraphs == (int)(sizeof cb->graphs / sizeof cb->graphs[0])) {
        cb->g.ops->graph_free(cb->g.ctx, cb->graphs[0].graph);
        memmove(cb->graphs, cb->graphs + 1, sizeof cb->graphs - sizeof cb->graphs[0]);
        cb->ngraphs--;
    }
    if (cb->g.ops->graph_begin(cb->g.ctx, e)) return -1;
    int rc = step_launches(cb, n, e);
    nr_dev_graph *graph = NULL;
    nr_error end_err;
    if (cb->g.ops->graph_end(cb->g.ctx, &graph, rc ? &end_err : e)) return -1;
    if (rc) {
        cb->g.ops->graph_free(cb->g.ctx, graph);
        return -1;
    }
    cb->graphs[cb->ngraphs].n = n;
    cb->graphs[cb->ngraphs++].graph = graph;
    *out = graph;
    return 0;
}

static int cuda_train_step(nr_backend *b, const nr_batch *bt, nr_error *e)
{
    cuda_backend *cb = cuda_of(b);
    if (bt->slot < 0 || bt->slot >= cb->c.max_steps) return nr_fail(e, "step slot %ld out of range", bt->slot);
    if (!cb->sets[NR_SET_TRAIN].pixels) return nr_fail(e, "no training set uploaded");
    if (bt->n < 1 || bt->n > cb->c.batch) return nr_fail(e, "a batch of %d images (at most %d)", bt->n, cb->c.batch);
    if (upload_step(cb, bt, e)) return -1;
    if (!cb->use_graphs) return step_launches(cb, bt->n, e);
    nr_dev_graph *graph;
    return step_graph(cb, bt->n, &graph, e) || cb->g.ops->graph_launch(cb->g.ctx, graph, e) ? -1 : 0;
}

static int cuda_read_steps(nr_backend *b, long first, long count, nr_step_result *out, nr_error *e)
{
    cuda_backend *cb = cuda_of(b);
    if (first < 0 || count < 0 || first + count > cb->c.max_steps)
        return nr_fail(e, "steps %ld..%ld out of range", first, first + count);
    if (!count) return 0;
    size_t bytes = (size_t)count * NR_LOSS_RESULT_BYTES;
    unsigned char *raw = malloc(bytes);
    if (!raw) return nr_fail(e, "out of memory");
    int rc = nr_gpu_download(&cb->g, raw, cb->results + (size_t)first * NR_LOSS_RESULT_BYTES, bytes, e);
    for (long k = 0; k < count && !rc; k++) {
        memcpy(&out[k].loss, raw + k * NR_LOSS_RESULT_BYTES, sizeof(double));
        memcpy(&out[k].correct, raw + k * NR_LOSS_RESULT_BYTES + sizeof(double), sizeof(int));
    }
    free(raw);
    return rc;
}

/* An evaluation's image indices on the device (the buffer grows to the largest set asked for). */
static int upload_eval_indices(cuda_backend *cb, const nr_eval *ev, nr_dptr *idx, nr_error *e)
{
    if (ev->count > cb->eval_idx_cap) {
        nr_gpu_free(&cb->g, cb->eval_idx);
        cb->eval_idx = 0;
        cb->eval_idx_cap = 0;
        if (nr_gpu_alloc(&cb->g, &cb->eval_idx, (size_t)ev->count * sizeof(uint32_t), e)) return -1;
        cb->eval_idx_cap = ev->count;
    }
    /* An upload is queued behind the previous evaluation's launches, which read the old indices. */
    *idx = cb->eval_idx;
    return nr_gpu_upload(&cb->g, cb->eval_idx, ev->idx, (size_t)ev->count * sizeof(uint32_t), e);
}

static int cuda_evaluate(nr_backend *b, const nr_eval *ev, double *loss_sum, long *correct, int32_t *pred,
                         nr_error *e)
{
    cuda_backend *cb = cuda_of(b);
    int classes = cb->p->classes, batch = cb->c.batch;
    if (ev->set < 0 || ev->set >= NR_SET_COUNT || !cb->sets[ev->set].pixels)
        return nr_fail(e, "data set %d not uploaded", ev->set);
    if (ev->noise_level >= cb->p->noise.nstd) return nr_fail(e, "no noise level %d", ev->noise_level);
    *loss_sum = 0;
    *correct = 0;
    nr_dptr idx = 0;
    if (ev->idx && upload_eval_indices(cb, ev, &idx, e)) return -1;
    float noise_std = ev->noise_level >= 0 ? cb->p->noise.std[ev->noise_level] : 0.0f;
    for (int first = 0; first < ev->count; first += batch) {
        int n = ev->count - first < batch ? ev->count - first : batch;
        if (nr_gpu_gather_eval(&cb->g, &cb->desc, cb->sets[ev->set].pixels, cb->sets[ev->set].labels, idx, first, n,
                               ev->noise_level, noise_std, cb->act[0], cb->labels, e) ||
            forward(cb, n, 0, 0, e) ||
            nr_gpu_loss(&cb->g, &cb->loss, n, classes, cb->act[cb->nl], cb->labels, 0, cb->results, cb->eval_vars, e))
            return -1;
        double loss = 0;
        int c = 0;
        if (nr_gpu_loss_result(&cb->g, cb->results, cb->c.max_steps, &loss, &c, e)) return -1;
        if (pred) {
            if (nr_gpu_download(&cb->g, cb->h_logits, cb->act[cb->nl], (size_t)n * classes * sizeof(float), e))
                return -1;
            for (int j = 0; j < n; j++) pred[first + j] = nr_argmax_row(cb->h_logits + (size_t)j * classes, classes);
        }
        *loss_sum += n * loss;
        *correct += c;
    }
    return 0;
}

static int cuda_get_state(nr_backend *b, nr_host_state *s, nr_error *e)
{
    cuda_backend *cb = cuda_of(b);
    if (nr_state_check(s, cb->nparams, cb->nbuffers, cb->nstate, e) || nr_gpu_download(&cb->g, s->params, cb->params, s->nparams * sizeof(float), e) ||
        nr_gpu_download(&cb->g, s->buffers, cb->buffers, s->nbuffers * sizeof(float), e))
        return -1;
    return s->noptim ? nr_gpu_download(&cb->g, s->optim, cb->state, s->noptim * sizeof(float), e) : 0;
}

static int cuda_set_state(nr_backend *b, const nr_host_state *s, nr_error *e)
{
    cuda_backend *cb = cuda_of(b);
    if (nr_state_check(s, cb->nparams, cb->nbuffers, cb->nstate, e) || nr_gpu_upload(&cb->g, cb->params, s->params, s->nparams * sizeof(float), e) ||
        nr_gpu_upload(&cb->g, cb->buffers, s->buffers, s->nbuffers * sizeof(float), e))
        return -1;
    return s->noptim ? nr_gpu_upload(&cb->g, cb->state, s->optim, s->noptim * sizeof(float), e) : 0;
}

/* The set's pixels (uint8) and labels, once. */
static int cuda_upload(nr_backend *b, int set, const nr_dataset *ds, nr_error *e)
{
    cuda_backend *cb = cuda_of(b);
    if (set < 0 || set >= NR_SET_COUNT) return nr_fail(e, "no data set %d", set);
    size_t image = (size_t)ds->channels * ds->height * ds->width;
    if (image != (size_t)cb->desc.c * cb->desc.h * cb->desc.w)
        return nr_fail(e, "%s: images of %dx%dx%d, the model takes %dx%dx%d", ds->source, ds->channels, ds->height,
                       ds->width, cb->desc.c, cb->desc.h, cb->desc.w);
    nr_gpu_free(&cb->g, cb->sets[set].pixels);
    nr_gpu_free(&cb->g, cb->sets[set].labels);
    memset(&cb->sets[set], 0, sizeof cb->sets[set]);
    size_t count = ds->count > 0 ? (size_t)ds->count : 1;
    if (nr_gpu_alloc(&cb->g, &cb->sets[set].pixels, count * image, e) ||
        nr_gpu_alloc(&cb->g, &cb->sets[set].labels, count * sizeof(int32_t), e) ||
        nr_gpu_upload(&cb->g, cb->sets[set].pixels, ds->pixels, (size_t)ds->count * image, e) ||
        nr_gpu_upload(&cb->g, cb->sets[set].labels, ds->labels, (size_t)ds->count * sizeof(int32_t), e))
        return -1;
    cb->sets[set].count = ds->count;
    return 0;
}

static void cuda_destroy(nr_backend *b)
{
    cuda_backend *cb = cuda_of(b);
    nr_gpu *g = &cb->g;
    if (g->ops) {
        for (int i = 0; i < cb->ngraphs; i++) g->ops->graph_free(g->ctx, cb->graphs[i].graph);
        nr_dptr *bufs[] = { &cb->params, &cb->grads,  &cb->buffers, &cb->state,   &cb->sam_saved,
                            &cb->sam_scratch, &cb->scratch, &cb->dx[0], &cb->dx[1], &cb->dlogits,
                            &cb->labels, &cb->results, &cb->step_in, &cb->eval_vars,
                            &cb->gather_scratch, &cb->eval_idx };
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) nr_gpu_free(g, *bufs[i]);
        for (int i = 0; cb->act && i <= cb->nl; i++) nr_gpu_free(g, cb->act[i]);
        for (int i = 0; cb->saved && i < cb->nl; i++) nr_gpu_free(g, cb->saved[i]);
        for (int i = 0; i < NR_SET_COUNT; i++) {
            nr_gpu_free(g, cb->sets[i].pixels);
            nr_gpu_free(g, cb->sets[i].labels);
        }
        nr_gpu_close(g);
    }
    free(cb->act);
    free(cb->saved);
    free(cb->param_off);
    free(cb->buffer_off);
    nr_free(cb->h_logits);
    nr_free(cb->h_step);
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
        nr_gpu_alloc(&cb->g, &cb->results, ((size_t)cb->c.max_steps + 1) * NR_LOSS_RESULT_BYTES, e) ||
        nr_gpu_alloc(&cb->g, &cb->eval_vars, sizeof(nr_step_vars), e) ||
        alloc_floats(cb, &cb->act[0], image_size(p) * batch, e))
        return -1;
    step_layout l = step_layout_of(batch);
    if (nr_gpu_alloc(&cb->g, &cb->step_in, l.bytes, e) ||
        alloc_floats(cb, &cb->gather_scratch, (size_t)batch * 2 * (size_t)cb->desc.scratch, e))
        return -1;
    cb->vars = cb->step_in;
    cb->batch_image = cb->step_in + l.image;
    cb->batch_stream = cb->step_in + l.stream;
    cb->batch_augment = cb->step_in + l.augment;
    if (cb->optim.sam && (alloc_floats(cb, &cb->sam_saved, cb->nparams, e) ||
                          nr_gpu_alloc(&cb->g, &cb->sam_scratch, NR_GPU_SAM_SCRATCH_BYTES, e)))
        return -1;
    for (int i = 0; i < nl; i++) {
        const nr_layer *L = &p->layers[i];
        if (alloc_floats(cb, &cb->act[i + 1], out_size(L) * batch, e) ||
            alloc_floats(cb, &cb->saved[i], nr_layer_saved_count(L, batch), e))
            return -1;
    }
    /* Evaluation and SAM's second pass write their loss to the spare slot
     * after the epoch's; nothing else of eval_vars is read. */
    nr_step_vars spare;
    nr_gpu_step_vars(&cb->optim, cb->optim.lr, 1, cb->c.max_steps, &spare);
    if (nr_gpu_upload(&cb->g, cb->eval_vars, &spare, sizeof spare, e)) return -1;
    /* Gradients of layers without a backward write (none today) must not be garbage. */
    return nr_gpu_fill32(&cb->g, cb->grads, 0, cb->nparams, e);
}

static int host_buffers(cuda_backend *cb, nr_error *e)
{
    cb->h_logits = nr_alloc((size_t)cb->c.batch * cb->p->classes * sizeof(float));
    cb->h_step = nr_zalloc(step_layout_of(cb->c.batch).bytes);
    if (!cb->h_logits || !cb->h_step) return nr_fail(e, "out of memory for batches of %d", cb->c.batch);
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
    const char *graphs = getenv("NETC_CUDA_GRAPHS");
    cb->use_graphs = !(graphs && !strcmp(graphs, "0"));
    if (nr_gpu_batch_desc_of(c->p, c->seed, &cb->desc, e) || nr_gpu_open(&cb->g, ops, 0, c->tf32, e) ||
        nr_gpu_load_kernels(&cb->g, e) || lay_out(cb, e) || host_buffers(cb, e)) {
        cuda_destroy(&cb->base);
        return NULL;
    }
    describe_device(cb);
    return &cb->base;
}
