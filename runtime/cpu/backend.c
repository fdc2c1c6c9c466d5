/* The CPU backend behind runtime/backend.h: the layers of runtime/cpu/ops.c
 * through nr_model, the optimizers of runtime/optim.c, and the batch
 * preparation of runtime/preprocess.c, on the model's team of threads.
 *
 * A training step is queued and returns: its pass runs while the driver
 * prepares the next batches, and the thread that finishes the pass takes
 * the optimizer's step and starts the next queued pass, so training goes
 * on while the driver's thread is descheduled (another program busy on
 * the cores). Reading results, evaluating and the state wait for the
 * queue. SAM's steps, whose second pass needs the first's gradients on
 * the calling thread, run one pass after the other. */
#include "../backend.h"
#include "../model.h"
#include "../nr_math.h"
#include "../optim.h"
#include "../preprocess.h"
#include "ops.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* What a pass's threads need to prepare their samples. */
typedef struct batch_source {
    struct cpu_backend *cb;
    const nr_batch *bt;          /* a training batch, or */
    const nr_eval *ev;           /* an evaluation's samples from first on */
    int first;
} batch_source;

/* A training step waiting in the model's queue or running: its own copy
 * of the batch, and the pass that reads it. */
typedef struct queued_step {
    nr_batch bt;
    uint32_t *image, *stream_a;
    uint8_t *augment;
    batch_source src;
    nr_pass ps;
} queued_step;

typedef struct cpu_backend {
    nr_backend base;
    const nr_program *p;
    nr_backend_config c;
    nr_optim optim;
    nr_loss loss;
    nr_model m;
    const nr_dataset *sets[NR_SET_COUNT];
    float *optim_state, *sam_e;
    size_t nstate;
    float *pre_scratch;           /* per lane of the model's passes */
    size_t pre_scratch_each;
    int nthreads;
    nr_step_result *steps;        /* per slot of the epoch */
    queued_step queue[NR_TEAM_QUEUE];
} cpu_backend;

static cpu_backend *cpu_of(nr_backend *b) { return (cpu_backend *)b; }

static size_t image_size(const nr_program *p)
{
    return (size_t)p->data.channels * p->data.height * p->data.width;
}

static float *lane_scratch(cpu_backend *cb, int lane) { return cb->pre_scratch + (size_t)lane * cb->pre_scratch_each; }

/* Waits for every queued step: their results and the weights are then final. */
static void drain(cpu_backend *cb) { nr_model_wait(&cb->m, nr_model_submitted(&cb->m)); }

static int cpu_upload(nr_backend *b, int set, const nr_dataset *ds, nr_error *e)
{
    if (set < 0 || set >= NR_SET_COUNT) return nr_fail(e, "no data set %d", set);
    drain(cpu_of(b)); /* queued steps read the set they were given */
    /* Borrowed: the driver keeps the set alive for the backend's lifetime. */
    cpu_of(b)->sets[set] = ds;
    return 0;
}

/* Samples [first, first + count) of the training batch: augmented images
 * into the model's input, labels beside them. */
static void prepare_train_samples(void *ctx, int first, int count, float *input, int *labels, int lane)
{
    const batch_source *src = ctx;
    cpu_backend *cb = src->cb;
    const nr_batch *bt = src->bt;
    const nr_program *p = cb->p;
    const nr_dataset *ds = cb->sets[NR_SET_TRAIN];
    size_t sz = image_size(p);
    for (int k = 0; k < count; k++) {
        int j = first + k;
        uint32_t img = bt->image[j];
        nr_stream st = nr_stream_make(cb->c.seed, NR_RNG_AUGMENT, bt->stream_a[j], img);
        nr_preprocess(&p->data, bt->augment[j] ? &p->augment : NULL, ds->pixels + (size_t)img * sz,
                      input + (size_t)k * sz, lane_scratch(cb, lane), st);
        labels[k] = ds->labels[img];
    }
}

/* Loss of one forward and backward pass over the batch, whose samples the
 * pass prepares; the gradients are left in m.grads. */
static double forward_backward(cpu_backend *cb, const nr_batch *bt, int flags, uint32_t draw, int *correct)
{
    batch_source src = { cb, bt, NULL, 0 };
    nr_pass ps = { bt->n, flags, cb->c.seed, draw, prepare_train_samples, &src, &cb->loss, NULL };
    double loss = 0.0;
    nr_model_pass(&cb->m, &ps, &loss, correct);
    return loss;
}

/* The threads of the optimizer's OpenMP regions (used on models of more
 * than 262,144 parameters, optim.c), set on the thread that runs them: a
 * team thread's OpenMP settings are the defaults. One where the team's
 * lanes are pinned: the region's threads would be kept on the pinned
 * lane's CPU, all of them, and take turns there. */
static void set_optim_threads(cpu_backend *cb)
{
#ifdef _OPENMP
    int want = nr_team_pinned(cb->m.team) ? 1 : cb->nthreads;
    if (omp_get_max_threads() != want) omp_set_num_threads(want);
#else
    (void)cb;
#endif
}

/* SAM's step, pass after pass: its second pass needs the first's gradients
 * on the calling thread. */
static void sam_step(cpu_backend *cb, const nr_batch *bt, nr_step_result *res)
{
    nr_model *m = &cb->m;
    set_optim_threads(cb);
    res->correct = 0;
    res->loss = forward_backward(cb, bt, NR_TRAINING | NR_UPDATE_STATS, (uint32_t)(2 * bt->step), &res->correct);
    if (!isfinite(res->loss)) return;
    /* The gradient again at the sharpest nearby point, BatchNorm's running
     * statistics left as the first pass set them. */
    nr_sam_perturb(&cb->optim, m->params, m->grads, cb->sam_e, m->nparams);
    double loss2 = forward_backward(cb, bt, NR_TRAINING, (uint32_t)(2 * bt->step + 1), NULL);
    nr_sam_restore(m->params, cb->sam_e, m->nparams);
    if (!isfinite(loss2)) {
        res->loss = loss2;
        return;
    }
    nr_optim_step(&cb->optim, bt->lr, bt->step + 1, m->params, m->grads, cb->optim_state, m->nparams);
}

/* After a step's pass, on the thread that finished it: the step's result,
 * and the optimizer's step when the loss is finite (when it is not, the
 * driver stops training once it reads the result). */
static void update_after_pass(void *ctx, double loss_mean, int correct)
{
    const batch_source *src = ctx;
    cpu_backend *cb = src->cb;
    const nr_batch *bt = src->bt;
    nr_model *m = &cb->m;
    cb->steps[bt->slot] = (nr_step_result){ loss_mean, correct };
    if (!isfinite(loss_mean)) return;
    set_optim_threads(cb);
    nr_optim_step(&cb->optim, bt->lr, bt->step + 1, m->params, m->grads, cb->optim_state, m->nparams);
}

/* The batch into the queue (its arrays copied: the driver reuses its own)
 * and its pass submitted; the step runs while the driver prepares the
 * next, and read_steps waits for it. */
static void queue_step(cpu_backend *cb, const nr_batch *bt)
{
    nr_model *m = &cb->m;
    queued_step *q = &cb->queue[nr_model_wait_for_room(m) % NR_TEAM_QUEUE];
    size_t n = (size_t)bt->n;
    memcpy(q->image, bt->image, n * sizeof *q->image);
    memcpy(q->stream_a, bt->stream_a, n * sizeof *q->stream_a);
    memcpy(q->augment, bt->augment, n * sizeof *q->augment);
    q->bt = *bt;
    q->bt.image = q->image;
    q->bt.stream_a = q->stream_a;
    q->bt.augment = q->augment;
    q->src = (batch_source){ cb, &q->bt, NULL, 0 };
    q->ps = (nr_pass){ bt->n, NR_TRAINING | NR_UPDATE_STATS, cb->c.seed, (uint32_t)(2 * bt->step),
                       prepare_train_samples, &q->src, &cb->loss, update_after_pass };
    nr_model_submit(m, &q->ps);
}

static int cpu_train_step(nr_backend *b, const nr_batch *bt, nr_error *e)
{
    cpu_backend *cb = cpu_of(b);
    if (bt->slot < 0 || bt->slot >= cb->c.max_steps) return nr_fail(e, "step slot %ld out of range", bt->slot);
    if (bt->n < 1 || bt->n > cb->c.batch) return nr_fail(e, "a step of %d images (at most %d)", bt->n, cb->c.batch);
    if (!cb->sets[NR_SET_TRAIN]) return nr_fail(e, "no training set uploaded");
    if (cb->optim.sam) sam_step(cb, bt, &cb->steps[bt->slot]);
    else queue_step(cb, bt);
    return 0;
}

static int cpu_read_steps(nr_backend *b, long first, long count, nr_step_result *out, nr_error *e)
{
    cpu_backend *cb = cpu_of(b);
    if (first < 0 || count < 0 || first + count > cb->c.max_steps)
        return nr_fail(e, "steps %ld..%ld out of range", first, first + count);
    drain(cb);
    memcpy(out, cb->steps + first, (size_t)count * sizeof *out);
    return 0;
}

/* Samples [first, first + count) of the evaluation batch that starts at
 * the evaluation's sample src->first. */
static void prepare_eval_samples(void *ctx, int first, int count, float *input, int *labels, int lane)
{
    const batch_source *src = ctx;
    cpu_backend *cb = src->cb;
    const nr_eval *ev = src->ev;
    const nr_program *p = cb->p;
    const nr_dataset *ds = cb->sets[ev->set];
    const nr_noise_test *nt = &p->noise;
    size_t sz = image_size(p);
    for (int k = 0; k < count; k++) {
        int at = src->first + first + k;
        uint32_t img = ev->idx ? ev->idx[at] : (uint32_t)at;
        const uint8_t *px = ds->pixels + (size_t)img * sz;
        float *out = input + (size_t)k * sz;
        if (ev->noise_level < 0) {
            nr_preprocess(&p->data, NULL, px, out, lane_scratch(cb, lane), nr_stream_make(0, NR_RNG_AUGMENT, 0, 0));
        } else {
            nr_stream st = nr_noise_stream(nt, ev->noise_level, img);
            nr_preprocess_noisy(&p->data, nt, nt->std[ev->noise_level], px, out, st);
        }
        labels[k] = ds->labels[img];
    }
}

static int cpu_evaluate(nr_backend *b, const nr_eval *ev, double *loss_sum, long *correct, int32_t *pred,
                        nr_error *e)
{
    cpu_backend *cb = cpu_of(b);
    int classes = cb->p->classes, batch = cb->c.batch;
    if (ev->set < 0 || ev->set >= NR_SET_COUNT || !cb->sets[ev->set]) return nr_fail(e, "data set %d not uploaded", ev->set);
    *loss_sum = 0;
    *correct = 0;
    for (int first = 0; first < ev->count; first += batch) {
        int n = ev->count - first < batch ? ev->count - first : batch;
        batch_source src = { cb, NULL, ev, first };
        nr_pass ps = { n, 0, cb->c.seed, 0, prepare_eval_samples, &src, NULL, NULL };
        const float *out = nr_model_pass(&cb->m, &ps, NULL, NULL);
        if (pred)
            for (int j = 0; j < n; j++) pred[first + j] = nr_argmax_row(out + (size_t)j * classes, classes);
        int c = 0;
        *loss_sum += n * nr_loss_forward_backward(&cb->loss, n, classes, out, cb->m.labels, NULL, &c);
        *correct += c;
    }
    return 0;
}

static int cpu_get_state(nr_backend *b, nr_host_state *s, nr_error *e)
{
    cpu_backend *cb = cpu_of(b);
    if (nr_state_check(s, cb->m.nparams, cb->m.nbuffers, cb->nstate, e)) return -1;
    drain(cb);
    memcpy(s->params, cb->m.params, s->nparams * sizeof(float));
    memcpy(s->buffers, cb->m.buffers, s->nbuffers * sizeof(float));
    if (s->noptim) memcpy(s->optim, cb->optim_state, s->noptim * sizeof(float));
    return 0;
}

static int cpu_set_state(nr_backend *b, const nr_host_state *s, nr_error *e)
{
    cpu_backend *cb = cpu_of(b);
    if (nr_state_check(s, cb->m.nparams, cb->m.nbuffers, cb->nstate, e)) return -1;
    drain(cb);
    memcpy(cb->m.params, s->params, s->nparams * sizeof(float));
    memcpy(cb->m.buffers, s->buffers, s->nbuffers * sizeof(float));
    if (s->noptim) memcpy(cb->optim_state, s->optim, s->noptim * sizeof(float));
    return 0;
}

static void cpu_destroy(nr_backend *b)
{
    cpu_backend *cb = cpu_of(b);
    if (cb->m.team) drain(cb);
    nr_model_free(&cb->m);
#ifdef _OPENMP
    omp_set_num_threads(cb->nthreads); /* set_optim_threads may have set 1 on this thread */
#endif
    for (int k = 0; k < NR_TEAM_QUEUE; k++) {
        nr_free(cb->queue[k].image);
        nr_free(cb->queue[k].stream_a);
        nr_free(cb->queue[k].augment);
    }
    nr_free(cb->optim_state);
    nr_free(cb->sam_e);
    nr_free(cb->pre_scratch);
    nr_free(cb->steps);
    free(cb);
}

static const nr_backend_ops cpu_ops = {
    cpu_upload, cpu_train_step, cpu_read_steps, cpu_evaluate, cpu_get_state, cpu_set_state, cpu_destroy,
};

nr_backend *nr_cpu_backend_open(const nr_backend_config *c, nr_error *e)
{
    cpu_backend *cb = calloc(1, sizeof *cb);
    if (!cb) {
        nr_fail(e, "out of memory");
        return NULL;
    }
    cb->base.ops = &cpu_ops;
    cb->p = c->p;
    cb->c = *c;
    cb->optim = *c->optim;
    cb->loss = *c->loss;
#ifdef _OPENMP
    cb->nthreads = omp_get_max_threads();
#else
    cb->nthreads = 1;
#endif
    snprintf(cb->base.device, sizeof cb->base.device, "cpu (%d thread%s)", cb->nthreads, cb->nthreads == 1 ? "" : "s");
    if (nr_model_init(&cb->m, c->p, c->batch, e)) {
        free(cb);
        return NULL;
    }
    cb->nstate = nr_optim_state_count(&cb->optim, cb->m.nparams);
    cb->optim_state = nr_zalloc((cb->nstate ? cb->nstate : 1) * sizeof(float));
    cb->sam_e = cb->optim.sam ? nr_zalloc(cb->m.nparams * sizeof(float)) : NULL;
    cb->pre_scratch_each = nr_preprocess_scratch(&c->p->data, &c->p->augment) + 16;
    cb->pre_scratch = nr_zalloc(cb->pre_scratch_each * (size_t)cb->m.nlanes * sizeof(float));
    cb->steps = nr_zalloc((size_t)(c->max_steps > 0 ? c->max_steps : 1) * sizeof *cb->steps);
    int queued_ok = 1;
    for (int k = 0; k < NR_TEAM_QUEUE; k++) {
        queued_step *q = &cb->queue[k];
        size_t n = (size_t)(c->batch > 0 ? c->batch : 1);
        q->image = nr_zalloc(n * sizeof *q->image);
        q->stream_a = nr_zalloc(n * sizeof *q->stream_a);
        q->augment = nr_zalloc(n * sizeof *q->augment);
        queued_ok = queued_ok && q->image && q->stream_a && q->augment;
    }
    if (!cb->optim_state || (cb->optim.sam && !cb->sam_e) || !cb->pre_scratch || !cb->steps || !queued_ok) {
        cpu_destroy(&cb->base);
        nr_fail(e, "out of memory for batches of %d", c->batch);
        return NULL;
    }
    return &cb->base;
}
