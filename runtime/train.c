/* The training driver, in the order a run happens: settings, data, model,
 * run directory, (resume,) epochs of train + evaluate + checkpoint, then the
 * test set and the noise tests, then summary.json. */
#include "train.h"
#include "backend.h"
#include "checkpoint.h"
#include "cpu/ops.h"
#include "data.h"
#include "optim.h"
#include "pictures.h"
#include "preprocess.h"
#include "report.h"
#include "run_checks.h"
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct run {
    const nr_program *p;
    nr_run_opts o;
    nr_train t;                   /* the model's settings with the command line's overrides */
    int epochs, batch;
    double lr;
    uint64_t seed;
    nr_dataset train_set, test_set;
    uint32_t *train_idx, *val_idx;
    int ntrain, nval, ntest;
    nr_backend *b;
    nr_host_state host;           /* weights, buffers, optimizer state: checkpoints */
    uint32_t *batch_image, *batch_stream;  /* the batch being described */
    uint8_t *batch_augment;
    nr_step_result *steps;        /* per step of the epoch, read from the backend */
    int nthreads;
    long steps_issued;            /* steps of this epoch handed to the backend */
    FILE *step_log;               /* $NETC_STEP_LOG: every step's loss (tests compare devices) */
    int epoch_done;               /* completed epochs */
    long step;                    /* optimizer steps taken */
    char dir[2048];
    size_t made_dirs;             /* what nr_make_dirs created of dir: see there */
    double *epoch_seconds;
    double train_seconds;
    long train_images;
    double last_train_loss;
} run;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void path_in(const run *r, char *out, size_t n, const char *file)
{
    snprintf(out, n, "%s/%s", r->dir, file);
}

/* ---- settings --------------------------------------------------------- */

static void apply_overrides(run *r)
{
    const nr_program *p = r->p;
    r->t = p->train;
    r->epochs = r->o.epochs > 0 ? r->o.epochs : p->train.epochs;
    r->batch = r->o.batch > 0 ? r->o.batch : p->train.batch;
    r->lr = r->o.lr > 0 ? r->o.lr : p->train.optim.lr;
    r->seed = r->o.seed >= 0 ? (uint64_t)r->o.seed : p->train.seed;
    r->t.optim.lr = (float)r->lr;
    int threads = r->o.threads >= 0 ? r->o.threads : p->train.threads;
    nr_cpu_set_threads(threads);
#ifdef _OPENMP
    r->nthreads = omp_get_max_threads();
#else
    r->nthreads = 1;
#endif
}

/* ---- data ------------------------------------------------------------- */

static uint32_t *iota(int n)
{
    uint32_t *v = nr_alloc((size_t)(n ? n : 1) * sizeof *v);
    if (v)
        for (int i = 0; i < n; i++) v[i] = (uint32_t)i;
    return v;
}

/* Training and validation indices: a permutation drawn from the seed, its
 * last `validation` entries held out (as torch.utils.data.random_split). */
static int split_data(run *r, nr_error *err)
{
    int n = r->train_set.count, v = r->p->data.validation;
    if (v >= n)
        return nr_fail(err, "data.validation = %d, but the training set (%s) has only %d images", v,
                       r->train_set.source, n);
    r->train_idx = iota(n);
    r->val_idx = nr_alloc((size_t)(v ? v : 1) * sizeof *r->val_idx);
    if (!r->train_idx || !r->val_idx) return nr_fail(err, "out of memory");
    if (v) {
        nr_permutation(nr_stream_make(r->seed, NR_RNG_SPLIT, 0, 0), r->train_idx, (size_t)n);
        memcpy(r->val_idx, r->train_idx + (n - v), (size_t)v * sizeof *r->val_idx);
    }
    r->ntrain = n - v;
    r->nval = v;
    if (r->o.train_limit > 0 && r->o.train_limit < r->ntrain) r->ntrain = r->o.train_limit;
    if (r->o.train_limit > 0 && r->o.train_limit < r->nval) r->nval = r->o.train_limit;
    return 0;
}

static int load_data(run *r, int need_train, nr_error *err)
{
    double t0 = now_seconds();
    if (r->o.shared_train) {
        /* Borrowed: free_run leaves them to their owner. */
        r->train_set = *r->o.shared_train;
        r->test_set = *r->o.shared_test;
    } else if (nr_data_load(&r->p->data, r->o.data_dir, &r->train_set, &r->test_set, err))
        return -1;
    if (!r->o.quiet && !r->o.shared_train)
        printf("data: %s (%d train, %d test images, loaded in %.1f s)\n", r->train_set.source, r->train_set.count,
               r->test_set.count, now_seconds() - t0);
    r->ntest = r->test_set.count;
    if (r->o.test_limit > 0 && r->o.test_limit < r->ntest) r->ntest = r->o.test_limit;
    return need_train ? split_data(r, err) : 0;
}

/* Sample s of an epoch: with `copies` > 0 the epoch holds the originals and
 * `copies` augmented copies of each (fixed for the run); with 0 every image
 * is augmented afresh each epoch. */
static void describe_batch(run *r, const uint32_t *order, long first, int n, int epoch)
{
    const nr_augment *a = &r->p->augment;
    for (int j = 0; j < n; j++) {
        uint32_t s = order[first + j];
        uint32_t copy = s / (uint32_t)r->ntrain;
        r->batch_image[j] = r->train_idx[s % (uint32_t)r->ntrain];
        r->batch_augment[j] = a->nops > 0 && (a->copies == 0 || copy > 0);
        r->batch_stream[j] = a->copies ? 0x80000000u | copy : (uint32_t)epoch;
    }
}

/* Mean loss and accuracy of the model (inference mode) over `count` images
 * of a set (idx NULL: the first ones), clean or at a noise level; each
 * image's predicted class when pred is not NULL. */
static int evaluate_pred(run *r, int set, const uint32_t *idx, int count, int noise_level, double *loss, double *acc,
                         int32_t *pred, nr_error *err)
{
    nr_eval ev = { set, idx, count, noise_level };
    double loss_sum = 0;
    long correct = 0;
    if (count && r->b->ops->evaluate(r->b, &ev, &loss_sum, &correct, pred, err)) return -1;
    *loss = count ? loss_sum / count : NAN;
    *acc = count ? (double)correct / count : NAN;
    return 0;
}

static int evaluate(run *r, int set, const uint32_t *idx, int count, double *loss, double *acc, nr_error *err)
{
    return evaluate_pred(r, set, idx, count, -1, loss, acc, NULL, err);
}

/* ---- checkpoints ------------------------------------------------------ */

typedef struct tensor_list {
    nr_tensor *t;
    float **dst;                  /* where each tensor loads into */
    int n;
    char **names;
} tensor_list;

static void tensors_free(tensor_list *tl)
{
    for (int i = 0; i < tl->n; i++) free(tl->names[i]);
    free(tl->names);
    free(tl->t);
    free(tl->dst);
    memset(tl, 0, sizeof *tl);
}

static void tensor_add(tensor_list *tl, const char *layer, const char *what, float *data, int rank, const int64_t *shape)
{
    size_t len = strlen(layer) + strlen(what) + 2;
    char *name = malloc(len);
    if (name) snprintf(name, len, "%s%s%s", layer, *what ? "." : "", what);
    tl->names[tl->n] = name;
    tl->dst[tl->n] = data;
    nr_tensor *t = &tl->t[tl->n++];
    t->name = name ? name : "?";
    t->data = data;
    t->rank = rank;
    for (int i = 0; i < rank; i++) t->shape[i] = shape[i];
}

/* The model's tensors under PyTorch's state_dict names (layer.weight,
 * layer.bias, layer.running_mean, layer.running_var), then the optimizer's. */
static int model_tensors(run *r, tensor_list *tl, int with_optimizer)
{
    int cap = 4 * r->p->nlayers + 2;
    tl->t = calloc((size_t)cap, sizeof *tl->t);
    tl->dst = calloc((size_t)cap, sizeof *tl->dst);
    tl->names = calloc((size_t)cap, sizeof *tl->names);
    tl->n = 0;
    if (!tl->t || !tl->dst || !tl->names) return -1;
    float *w = r->host.params, *b = r->host.buffers;
    for (int i = 0; i < r->p->nlayers; i++, w += nr_layer_param_count(&r->p->layers[i - 1]),
             b += nr_layer_buffer_count(&r->p->layers[i - 1])) {
        const nr_layer *L = &r->p->layers[i];
        int64_t c = L->out_c, k = L->kernel;
        if (L->kind == NR_CONV) {
            int64_t s[4] = { c, L->in_c, k, k };
            tensor_add(tl, L->name, "weight", w, 4, s);
            if (L->bias) tensor_add(tl, L->name, "bias", w + c * L->in_c * k * k, 1, &c);
        } else if (L->kind == NR_DENSE) {
            int64_t s[2] = { c, L->in_c };
            tensor_add(tl, L->name, "weight", w, 2, s);
            if (L->bias) tensor_add(tl, L->name, "bias", w + c * L->in_c, 1, &c);
        } else if (L->kind == NR_BATCHNORM) {
            if (L->affine) {
                tensor_add(tl, L->name, "weight", w, 1, &c);
                tensor_add(tl, L->name, "bias", w + c, 1, &c);
            }
            tensor_add(tl, L->name, "running_mean", b, 1, &c);
            tensor_add(tl, L->name, "running_var", b + c, 1, &c);
        }
    }
    if (with_optimizer && r->host.noptim) {
        int64_t n = (int64_t)r->host.noptim;
        tensor_add(tl, "optimizer", "state", r->host.optim, 1, &n);
    }
    for (int i = 0; i < tl->n; i++)
        if (!tl->names[i]) return -1;
    return 0;
}

static int save_checkpoint(run *r, const char *file, int with_optimizer, nr_error *err)
{
    char path[2200], epoch[32], step[32], seed[32], batch[32], lr[40], epochs[32], loss[40], limit[32];
    path_in(r, path, sizeof path, file);
    if (r->b->ops->get_state(r->b, &r->host, err)) return -1;
    tensor_list tl;
    char *layers = nr_layers_describe(r->p);
    if (!layers || model_tensors(r, &tl, with_optimizer)) {
        if (layers) tensors_free(&tl);
        free(layers);
        return nr_fail(err, "out of memory saving %s", path);
    }
    snprintf(epoch, sizeof epoch, "%d", r->epoch_done);
    snprintf(step, sizeof step, "%ld", r->step);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->seed);
    snprintf(batch, sizeof batch, "%d", r->batch);
    snprintf(lr, sizeof lr, "%.17g", r->lr);
    snprintf(epochs, sizeof epochs, "%d", r->epochs);
    snprintf(loss, sizeof loss, "%.17g", r->last_train_loss);
    snprintf(limit, sizeof limit, "%d", r->o.train_limit);
    nr_meta meta[] = {
        { "format", NR_CHECKPOINT_FORMAT }, { "model", r->p->model }, { "epoch", epoch }, { "step", step },
        { "seed", seed }, { "batch", batch }, { "lr", lr }, { "epochs", epochs },
        { "netc_version", r->p->netc_version }, { "source", r->p->source }, { "train_loss", loss },
        /* This changes the numbers too: a resume must keep it. The thread
         * count does not (the CPU step sums in a fixed order), so it is
         * not recorded: runs on any thread count write the same file. */
        { "train_limit", limit },
        /* What the tensors mean: a resume or test by another model is refused. */
        { "layers", layers },
    };
    int rc = nr_safetensors_write(path, tl.t, tl.n, meta, (int)(sizeof meta / sizeof meta[0]), err);
    tensors_free(&tl);
    free(layers);
    return rc;
}

static void shape_text(char *buf, size_t n, int rank, const int64_t *s)
{
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < rank && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (len < n) snprintf(buf + len, n - len, "]");
}

/* Copies every tensor of the model (and the optimizer's when asked) from a
 * checkpoint, checking names and shapes. */
static int load_tensors(run *r, const nr_st_file *f, int with_optimizer, nr_error *err)
{
    tensor_list tl;
    if (model_tensors(r, &tl, with_optimizer)) {
        tensors_free(&tl);
        return nr_fail(err, "out of memory loading %s", f->path);
    }
    int rc = 0;
    for (int i = 0; i < tl.n && !rc; i++) {
        const nr_tensor *want = &tl.t[i];
        const nr_st_entry *e = nr_st_find(f, want->name);
        if (!e) {
            rc = nr_fail(err, "%s: no tensor '%s': the checkpoint is not of this model (%s)", f->path, want->name,
                         r->p->model);
            break;
        }
        int same = e->rank == want->rank;
        for (int d = 0; same && d < e->rank; d++) same = e->shape[d] == want->shape[d];
        if (!same) {
            char a[128], b[128];
            shape_text(a, sizeof a, e->rank, e->shape);
            shape_text(b, sizeof b, want->rank, want->shape);
            rc = nr_fail(err, "%s: tensor '%s' is %s, but this model's is %s", f->path, want->name, a, b);
            break;
        }
        memcpy(tl.dst[i], e->data, e->count * sizeof(float));
    }
    tensors_free(&tl);
    return rc ? rc : r->b->ops->set_state(r->b, &r->host, err);
}

/* The settings and counters of a run from its checkpoint f (its weights
 * are loaded once the model is laid out). Every metadata field is checked
 * (run_checks.c) before any is used. */
static int resume_from(run *r, const nr_st_file *f, nr_error *err)
{
    const char *path = f->path;
    nr_ck_meta m;
    if (nr_checkpoint_meta(f, &m, err) || nr_checkpoint_matches(f, &m, r->p, stderr, err)) return -1;
    /* A resumed run continues the saved one: the settings that shape the
     * result must be the saved ones; only the number of epochs may grow. */
    if (r->o.seed >= 0 && (uint64_t)m.seed != (uint64_t)r->o.seed)
        return nr_fail(err, "%s was trained with --seed %lld; resuming with --seed %lld would not continue it", path,
                       m.seed, r->o.seed);
    if (r->o.batch > 0 && m.batch != r->o.batch)
        return nr_fail(err, "%s was trained with --batch %lld; resume without --batch or with the same", path, m.batch);
    if (r->o.lr > 0 && fabs(r->o.lr - m.lr) > 1e-12 * fabs(r->o.lr))
        return nr_fail(err, "%s was trained with --lr %.17g; resume without --lr or with the same", path, m.lr);
    if (r->o.epochs > 0 && r->o.epochs < m.epoch)
        return nr_fail(err, "%s already holds %lld epochs; --epochs %d cannot shorten it", path, m.epoch, r->o.epochs);
    if (m.train_limit >= 0 && r->o.train_limit > 0 && m.train_limit != r->o.train_limit)
        return nr_fail(err, "%s was trained with %s%lld; resume without --train-limit or with the same", path,
                       m.train_limit ? "--train-limit " : "every training image, not --train-limit ",
                       m.train_limit ? m.train_limit : (long long)r->o.train_limit);
    if (m.train_limit >= 0) r->o.train_limit = (int)m.train_limit;
    r->last_train_loss = m.train_loss;
    r->seed = (uint64_t)m.seed;
    r->batch = (int)m.batch;
    r->lr = m.lr;
    r->t.optim.lr = (float)r->lr;
    if (r->o.epochs <= 0) r->epochs = (int)m.epochs;
    r->epoch_done = (int)m.epoch;
    r->step = (long)m.step;
    return 0;
}

/* ---- the run directory ------------------------------------------------ */

/* mkdir of buf's first len characters; notes in *made the first it created. */
static int make_dir(char *buf, size_t len, size_t *made, nr_error *err)
{
    if (mkdir(buf, 0777) == 0) {
        if (made && !*made) *made = len;
        return 0;
    }
    return errno == EEXIST ? 0 : nr_fail_errno(err, "cannot create directory %s", buf);
}

int nr_make_dirs(const char *path, size_t *made, nr_error *err)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", path);
    if (made) *made = 0;
    if (!buf[0]) return nr_fail(err, "an empty directory name");
    for (char *s = buf + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (make_dir(buf, (size_t)(s - buf), made, err)) return -1;
        *s = '/';
    }
    return make_dir(buf, strlen(buf), made, err);
}

void nr_remove_empty_dirs(const char *path, size_t top)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", path);
    while (top > 0 && rmdir(buf) == 0) {
        char *slash = strrchr(buf, '/');
        if (!slash || (size_t)(slash - buf) < top) break;
        *slash = '\0';
    }
}

int nr_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

void nr_path_safe(char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
              *s == '-' || *s == '_' || *s == '='))
            *s = '_';
}

/* runs/<model>-<tag><YYYYmmdd-HHMMSS>, the model name made safe for a path. */
void nr_default_run_dir(const char *model, const char *tag, char *out, size_t n)
{
    char name[256];
    snprintf(name, sizeof name, "%s", model);
    nr_path_safe(name);
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    snprintf(out, n, "runs/%s-%s%s", name, tag, stamp);
    for (int i = 2; nr_file_exists(out) && i < 1000; i++) snprintf(out, n, "runs/%s-%s%s-%d", name, tag, stamp, i);
}

/* The newest runs/<model>-* holding a last.safetensors, for --resume without --out. */
static int newest_run_dir(const run *r, char *out, size_t n)
{
    DIR *d = opendir("runs");
    if (!d) return -1;
    time_t best = 0;
    size_t mlen = strlen(r->p->model);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, r->p->model, mlen) || e->d_name[mlen] != '-') continue;
        char ck[2200];
        struct stat st;
        snprintf(ck, sizeof ck, "runs/%s/last.safetensors", e->d_name);
        if (stat(ck, &st) == 0 && st.st_mtime >= best) {
            best = st.st_mtime;
            snprintf(out, n, "runs/%s", e->d_name);
        }
    }
    closedir(d);
    return best ? 0 : -1;
}

static int setup_run_dir(run *r, nr_error *err)
{
    char ck[2200];
    if (r->o.out_dir) snprintf(r->dir, sizeof r->dir, "%s", r->o.out_dir);
    else if (r->o.resume) {
        if (newest_run_dir(r, r->dir, sizeof r->dir))
            return nr_fail(err, "--resume: no run of %s with a checkpoint under runs/; name the run with --out DIR",
                           r->p->model);
    } else nr_default_run_dir(r->p->model, "", r->dir, sizeof r->dir);
    path_in(r, ck, sizeof ck, "last.safetensors");
    if (r->o.resume && !nr_file_exists(ck))
        return nr_fail(err, "--resume: %s has no checkpoint (no %s)", r->dir, ck);
    if (!r->o.resume && nr_file_exists(ck))
        return nr_fail(err, "%s already holds a run (%s); continue it with --resume, or choose another --out", r->dir,
                       ck);
    return nr_make_dirs(r->dir, &r->made_dirs, err);
}

/* ---- summary.json ----------------------------------------------------- */

typedef struct summary {
    run *r;
    int tested;
    double test_acc, test_loss, val_acc, val_loss;
    const nr_noise_row *noise;
    int nnoise;
    const char *status;
} summary;

static const char *optimizer_name(const nr_optim *o)
{
    static const char *const names[] = { "sgd", "adam", "adamw", "rmsprop" };
    return names[o->kind];
}

static void write_summary_json(FILE *f, void *arg)
{
    const summary *s = arg;
    const run *r = s->r;
    nr_json j;
    nr_json_begin(&j, f);
    nr_json_open(&j, '{');
    nr_json_key(&j, "model"), nr_json_str(&j, r->p->model);
    nr_json_key(&j, "source"), nr_json_str(&j, r->p->source);
    nr_json_key(&j, "overrides"), nr_json_str(&j, r->p->overrides);
    nr_json_key(&j, "netc_version"), nr_json_str(&j, r->p->netc_version);
    nr_json_key(&j, "device"), nr_json_str(&j, r->b->device);
    nr_json_key(&j, "threads"), nr_json_int(&j, r->nthreads);
    nr_json_key(&j, "status"), nr_json_str(&j, s->status);
    nr_json_key(&j, "parameters"), nr_json_int(&j, (long long)r->host.nparams);
    nr_json_key(&j, "dataset");
    nr_json_open(&j, '{');
    nr_json_key(&j, "name"), nr_json_str(&j, r->p->data.name);
    nr_json_key(&j, "source"), nr_json_str(&j, r->train_set.source);
    nr_json_key(&j, "train_images"), nr_json_int(&j, r->ntrain);
    nr_json_key(&j, "validation_images"), nr_json_int(&j, r->nval);
    nr_json_key(&j, "test_images"), nr_json_int(&j, r->ntest);
    nr_json_close(&j, '{');
    nr_json_key(&j, "hyperparameters");
    nr_json_open(&j, '{');
    nr_json_key(&j, "epochs"), nr_json_int(&j, r->epochs);
    nr_json_key(&j, "batch"), nr_json_int(&j, r->batch);
    nr_json_key(&j, "optimizer"), nr_json_str(&j, optimizer_name(&r->t.optim));
    nr_json_key(&j, "sam"), nr_json_bool(&j, r->t.optim.sam);
    nr_json_key(&j, "lr"), nr_json_num(&j, r->lr);
    nr_json_key(&j, "seed"), nr_json_int(&j, (long long)r->seed);
    nr_json_close(&j, '{');
    nr_json_key(&j, "epochs_completed"), nr_json_int(&j, r->epoch_done);
    /* Epochs trained by this process (a resumed run's earlier ones are in metrics.csv). */
    nr_json_key(&j, "seconds_per_epoch");
    nr_json_open(&j, '[');
    for (int e = 0; e < r->epoch_done && r->epoch_seconds; e++)
        if (r->epoch_seconds[e] > 0) nr_json_num(&j, r->epoch_seconds[e]);
    nr_json_close(&j, '[');
    nr_json_key(&j, "final_train_loss"), nr_json_num(&j, r->epoch_done ? r->last_train_loss : NAN);
    nr_json_key(&j, "train_seconds"), nr_json_num(&j, r->train_seconds);
    nr_json_key(&j, "images_per_second"),
        nr_json_num(&j, r->train_seconds > 0 ? r->train_images / r->train_seconds : NAN);
    nr_json_key(&j, "validation_accuracy"), nr_json_num(&j, r->nval ? s->val_acc : NAN);
    nr_json_key(&j, "test_accuracy"), nr_json_num(&j, s->tested ? s->test_acc : NAN);
    nr_json_key(&j, "test_loss"), nr_json_num(&j, s->tested ? s->test_loss : NAN);
    nr_json_key(&j, "noise_tests");
    nr_json_open(&j, '[');
    for (int i = 0; i < s->nnoise; i++) {
        nr_json_open(&j, '{');
        nr_json_key(&j, "std"), nr_json_num(&j, s->noise[i].std);
        nr_json_key(&j, "accuracy"), nr_json_num(&j, s->noise[i].acc);
        nr_json_key(&j, "loss"), nr_json_num(&j, s->noise[i].loss);
        nr_json_close(&j, '{');
    }
    nr_json_close(&j, '[');
    nr_json_close(&j, '{');
}

/* ---- setup and teardown ----------------------------------------------- */

/* A batch no larger than the images it draws from, and a run that fits in
 * the memory the machine has (run_checks.c), before anything is allocated. */
static int fit_in_memory(run *r, long images, const char *what, nr_error *err)
{
    r->batch = nr_cap_batch(r->batch, images, what, r->o.quiet ? NULL : stdout);
    size_t data = ((size_t)r->train_set.count * (size_t)r->train_set.channels * r->train_set.height * r->train_set.width +
                   (size_t)r->test_set.count * (size_t)r->test_set.channels * r->test_set.height * r->test_set.width) +
                  ((size_t)r->train_set.count + (size_t)r->test_set.count) * sizeof(int32_t);
    nr_mem_estimate e;
    const char *source;
    nr_estimate_memory(r->p, &r->t.optim, r->batch, data, &e);
    if (r->o.device == NR_DEVICE_CUDA) {
        /* The activations live in GPU memory (its allocations report their own shortage). */
        e.total -= e.activations;
        e.activations = 0;
    }
    size_t available = nr_available_memory(&source);
    return nr_check_memory(&e, r->batch, available, source, err);
}

static long epoch_samples(const run *r)
{
    return (long)r->ntrain * (1 + r->p->augment.copies);
}


static int alloc_host_state(run *r, nr_error *err)
{
    nr_host_state *h = &r->host;
    nr_state_counts(r->p, &r->t.optim, &h->nparams, &h->nbuffers, &h->noptim);
    if (r->p->params >= 0 && (long long)h->nparams != r->p->params)
        return nr_fail(err, "the compiler counted %lld parameters but the runtime lays out %zu: netc and libnetrt "
                            "disagree on a layer kind; rebuild the program with this netc",
                       r->p->params, h->nparams);
    h->params = nr_zalloc((h->nparams ? h->nparams : 1) * sizeof(float));
    h->buffers = nr_zalloc((h->nbuffers ? h->nbuffers : 1) * sizeof(float));
    h->optim = nr_zalloc((h->noptim ? h->noptim : 1) * sizeof(float));
    if (!h->params || !h->buffers || !h->optim) return nr_fail(err, "out of memory for the model's weights");
    return 0;
}

static int alloc_run(run *r, nr_device_choice device, nr_error *err)
{
    if (alloc_host_state(r, err)) return -1;
    long iters = (epoch_samples(r) + r->batch - 1) / r->batch;
    nr_backend_config c = { r->p, r->batch, r->seed, &r->t.optim, &r->t.loss, r->t.tf32, iters > 0 ? iters : 1 };
    r->b = nr_backend_open(device, &c, err);
    if (!r->b) return -1;
    r->batch_image = nr_zalloc((size_t)r->batch * sizeof *r->batch_image);
    r->batch_stream = nr_zalloc((size_t)r->batch * sizeof *r->batch_stream);
    r->batch_augment = nr_zalloc((size_t)r->batch);
    r->steps = nr_zalloc((size_t)c.max_steps * sizeof *r->steps);
    int slots = r->epochs > r->epoch_done ? r->epochs : r->epoch_done;
    r->epoch_seconds = nr_zalloc(((size_t)slots + 1) * sizeof(double));
    if (!r->batch_image || !r->batch_stream || !r->batch_augment || !r->steps || !r->epoch_seconds)
        return nr_fail(err, "out of memory for batches of %d", r->batch);
    if (r->b->ops->upload(r->b, NR_SET_TRAIN, &r->train_set, err)) return -1;
    return r->b->ops->upload(r->b, NR_SET_TEST, &r->test_set, err);
}

static void free_run(run *r)
{
    nr_backend_close(r->b);
    if (r->step_log && fclose(r->step_log)) perror("NETC_STEP_LOG");
    if (!r->o.shared_train) {
        nr_dataset_free(&r->train_set);
        nr_dataset_free(&r->test_set);
    }
    nr_free(r->train_idx);
    nr_free(r->val_idx);
    nr_free(r->host.params);
    nr_free(r->host.buffers);
    nr_free(r->host.optim);
    nr_free(r->batch_image);
    nr_free(r->batch_stream);
    nr_free(r->batch_augment);
    nr_free(r->steps);
    nr_free(r->epoch_seconds);
}

/* $NETC_STEP_LOG names a file that receives "epoch step loss correct" for
 * every training step: the tests compare the CPU's and the GPU's runs with it. */
static int open_step_log(run *r, nr_error *err)
{
    const char *path = getenv("NETC_STEP_LOG");
    if (!path || !*path) return 0;
    r->step_log = fopen(path, "a");
    return r->step_log ? 0 : nr_fail_errno(err, "NETC_STEP_LOG: cannot open %s", path);
}

/* The initial weights (the same on every device: drawn here, on the host). */
static int init_weights(run *r, nr_error *err)
{
    float *w = r->host.params, *b = r->host.buffers;
    for (int i = 0; i < r->p->nlayers; i++) {
        const nr_layer *L = &r->p->layers[i];
        nr_layer_init(L, w, b, r->seed, (uint32_t)i);
        w += nr_layer_param_count(L);
        b += nr_layer_buffer_count(L);
    }
    memset(r->host.optim, 0, r->host.noptim * sizeof(float));
    return r->b->ops->set_state(r->b, &r->host, err);
}

/* ---- training --------------------------------------------------------- */

/* One epoch; fills the row's train fields. Returns NR_EXIT_NONFINITE when
 * the loss stopped being finite. */
/* Images in step `it` of an epoch of `total`. */
static int step_images(const run *r, long total, long it)
{
    long left = total - it * r->batch;
    return left < r->batch ? (int)left : r->batch;
}

static int nonfinite_stop(run *r, int epoch, long it, long iters, double loss, nr_error *err)
{
    if (r->o.progress) nr_progress_clear(stdout);
    double lr = nr_schedule_lr(&r->t.schedule, r->lr, epoch, r->step - r->steps_issued + it, r->epochs, iters);
    char kept[2300];
    if (r->epoch_done)
        snprintf(kept, sizeof kept, "The last good checkpoint is %s/last.safetensors (epoch %d).", r->dir,
                 r->epoch_done);
    else snprintf(kept, sizeof kept, "No checkpoint was written: it diverged in the first epoch.");
    nr_fail(err, "the loss became %s at epoch %d, step %ld of %ld (lr %.3g); training stopped. %s "
                 "A lower --lr usually helps.",
            isnan(loss) ? "NaN" : "infinite", epoch + 1, it + 1, iters, lr, kept);
    return NR_EXIT_NONFINITE;
}

/* Reads the results of steps [*seen, upto) of the epoch from the backend
 * into the sums; NR_EXIT_NONFINITE at the first loss that is not finite. */
static int collect_steps(run *r, int epoch, long total, long iters, long *seen, long upto, double *loss_sum,
                         long *correct, nr_error *err)
{
    if (upto <= *seen) return 0;
    if (r->b->ops->read_steps(r->b, *seen, upto - *seen, r->steps + *seen, err)) return -1;
    for (long k = *seen; k < upto; k++) {
        const nr_step_result *s = &r->steps[k];
        if (r->step_log) fprintf(r->step_log, "%d %ld %.9g %d\n", epoch + 1, k + 1, s->loss, s->correct);
        if (!isfinite(s->loss)) return nonfinite_stop(r, epoch, k, iters, s->loss, err);
        *loss_sum += s->loss * step_images(r, total, k);
        *correct += s->correct;
    }
    *seen = upto;
    return 0;
}

/* One epoch; fills the row's train fields. The backend keeps each step's
 * loss and the driver reads them about ten times a second and at the end,
 * so neither a GPU nor the CPU's queued steps wait after every step.
 * Returns NR_EXIT_NONFINITE when the loss stopped being finite. */
static int train_epoch(run *r, int epoch, uint32_t *order, nr_epoch_row *row, nr_error *err)
{
    long total = epoch_samples(r), iters = (total + r->batch - 1) / r->batch;
    for (long i = 0; i < total; i++) order[i] = (uint32_t)i;
    if (r->t.shuffle) nr_permutation(nr_stream_make(r->seed, NR_RNG_SHUFFLE, (uint32_t)epoch, 0), order, (size_t)total);
    double loss_sum = 0, t0 = now_seconds(), last_draw = 0, last_read = t0;
    long correct = 0, seen = 0;
    r->steps_issued = 0;
    int rc = 0;
    for (long it = 0; it < iters && !rc; it++) {
        int n = step_images(r, total, it);
        double lr = nr_schedule_lr(&r->t.schedule, r->lr, epoch, r->step, r->epochs, iters);
        describe_batch(r, order, it * r->batch, n, epoch);
        nr_batch b = { n, r->batch_image, r->batch_stream, r->batch_augment, r->step, it, (float)lr };
        if (r->b->ops->train_step(r->b, &b, err)) return -1;
        r->step++;
        r->steps_issued++;
        row->lr = lr;
        double t = now_seconds();
        int draw = r->o.progress && (t - last_draw > 0.1 || it + 1 == iters);
        if (draw || t - last_read > 0.1 || it + 1 == iters) {
            /* Reading waits for the steps queued so far; ten times a second a
             * loss that stopped being finite is seen soon enough. */
            rc = collect_steps(r, epoch, total, iters, &seen, it + 1, &loss_sum, &correct, err);
            last_read = t;
        }
        if (!rc && draw) {
            long done = it * r->batch + n;
            nr_progress(stdout, epoch + 1, r->epochs, done, total, loss_sum / done, (double)correct / done, t - t0);
            last_draw = t;
        }
    }
    if (rc) return rc;
    if (r->o.progress) nr_progress_clear(stdout);
    row->seconds = now_seconds() - t0;
    row->train_loss = loss_sum / total;
    row->train_acc = (double)correct / total;
    r->train_seconds += row->seconds;
    r->train_images += total;
    return 0;
}

static int evaluate_epoch(run *r, nr_epoch_row *row, nr_error *err)
{
    if (r->nval) {
        row->has_val = 1;
        return evaluate(r, NR_SET_TRAIN, r->val_idx, r->nval, &row->val_loss, &row->val_acc, err);
    }
    row->has_test = 1;
    return evaluate(r, NR_SET_TEST, NULL, r->ntest, &row->test_loss, &row->test_acc, err);
}

/* Test accuracy, clean and at each noise level; prints the table.
 * pred (r->ntest entries) receives the clean predictions. */
static int final_test(run *r, summary *s, nr_noise_row *rows, int32_t *pred, nr_error *err)
{
    if (evaluate_pred(r, NR_SET_TEST, NULL, r->ntest, -1, &s->test_loss, &s->test_acc, pred, err)) return -1;
    for (int l = 0; l < r->p->noise.nstd; l++) {
        rows[l].std = r->p->noise.std[l];
        if (evaluate_pred(r, NR_SET_TEST, NULL, r->ntest, l, &rows[l].loss, &rows[l].acc, NULL, err)) return -1;
    }
    s->tested = 1;
    s->noise = rows;
    s->nnoise = r->p->noise.nstd;
    /* A quiet sweep prints only its own table at the end. */
    if (!(r->o.quiet && r->o.result))
        nr_print_test_table(stdout, r->ntest, s->test_acc, s->test_loss, rows, r->p->noise.nstd);
    return 0;
}

static int write_summary(run *r, summary *s, nr_error *err)
{
    char path[2200];
    path_in(r, path, sizeof path, "summary.json");
    return nr_write_atomic(path, write_summary_json, s, err);
}

/* The page of a run: summary, epochs, noise table and pictures. */
static int write_page(run *r, const summary *s, const char *dir, const nr_report_epoch *epochs, int nepochs,
                      int with_curves, nr_error *err)
{
    char params[32], batch[32], lr[32], seed[32], test_acc[32], val_acc[32], ips[32], ntrain[32], ntest[32];
    snprintf(params, sizeof params, "%zu", r->host.nparams);
    snprintf(batch, sizeof batch, "%d", r->batch);
    snprintf(lr, sizeof lr, "%g", r->lr);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->seed);
    snprintf(test_acc, sizeof test_acc, "%.2f%%", 100 * s->test_acc);
    snprintf(val_acc, sizeof val_acc, r->nval ? "%.2f%%" : "-", 100 * s->val_acc);
    snprintf(ips, sizeof ips, "%.0f", r->train_seconds > 0 ? r->train_images / r->train_seconds : 0.0);
    snprintf(ntrain, sizeof ntrain, "%d (+ %d validation)", r->ntrain, r->nval);
    snprintf(ntest, sizeof ntest, "%d", r->ntest);
    nr_report_kv kv[] = {
        { "model", r->p->model }, { "source", r->p->source }, { "overrides", r->p->overrides },
        { "dataset", r->test_set.source }, { "training images", ntrain }, { "test images", ntest },
        { "parameters", params }, { "optimizer", optimizer_name(&r->t.optim) }, { "learning rate", lr },
        { "batch", batch }, { "seed", seed }, { "validation accuracy", val_acc }, { "test accuracy", test_acc },
        { "training images per second", ips }, { "device", r->b->device }, { "status", s->status },
    };
    /* The noise table starts with the clean accuracy (std 0). */
    double stds[65] = { 0 }, accs[65] = { s->tested ? s->test_acc : NAN };
    int nnoise = s->tested ? 1 : 0;
    for (int i = 0; i < s->nnoise && nnoise < 65; i++, nnoise++) stds[nnoise] = s->noise[i].std, accs[nnoise] = s->noise[i].acc;
    static const char *const curve_images[] = { "loss.png", "accuracy.png", "samples.png", "confusion.png" };
    static const char *const curve_caps[] = { "loss per epoch", "accuracy per epoch",
                                              "test images, correctly (green) and wrongly (red) classified",
                                              "confusion matrix of the test set" };
    int first = with_curves ? 0 : 2;
    char title[300], path[2300];
    snprintf(title, sizeof title, "%s: %s report", r->p->model, with_curves ? "training" : "test");
    nr_report rep = { title, kv, (int)(sizeof kv / sizeof kv[0]), epochs, nepochs, stds, accs, nnoise,
                      s->tested ? s->test_acc : NAN, curve_images + first, curve_caps + first, 4 - first };
    snprintf(path, sizeof path, "%s/report.html", dir);
    return nr_report_html(path, &rep, err);
}

/* The pictures and report.html of a run directory (with_curves: of a
 * training run, from its metrics.csv). */
static int write_reports(run *r, const summary *s, const int32_t *pred, const char *dir, int with_curves,
                         nr_error *err)
{
    nr_report_epoch *epochs = NULL;
    int nepochs = 0, rc = 0;
    if (with_curves) {
        rc = nr_read_metrics(dir, &epochs, &nepochs, err);
        if (!rc) rc = nr_write_curves(dir, r->p->model, epochs, nepochs, err);
    }
    if (!rc) rc = nr_write_test_pictures(dir, r->p, &r->test_set, r->ntest, pred, r->seed, err);
    if (!rc) rc = write_page(r, s, dir, epochs, nepochs, with_curves, err);
    free(epochs);
    return rc;
}

/* Where PROG test puts its pictures: --out, else test/ beside the weights. */
static int test_pictures_dir(run *r, const nr_run_opts *o, char *out, size_t n, nr_error *err)
{
    /* Not the run directory itself: its report.html is the training's. */
    if (o->out_dir) snprintf(out, n, "%s", o->out_dir);
    else {
        char dir[1900];
        snprintf(dir, sizeof dir, "%s", o->weights);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        snprintf(out, n, "%s/test", slash ? (dir[0] ? dir : "/") : ".");
    }
    (void)r;
    return nr_make_dirs(out, NULL, err);
}

/* The test table (clean and noisy), then the records: for a training run
 * (test_opts NULL) summary.json and its report in r->dir; for PROG test the
 * report in the directory test_opts names. */
static int test_and_report(run *r, summary *s, nr_noise_row *rows, const nr_run_opts *test_opts, nr_error *err)
{
    int32_t *pred = nr_alloc((size_t)(r->ntest ? r->ntest : 1) * sizeof *pred);
    if (!pred) return nr_fail(err, "out of memory");
    int rc = final_test(r, s, rows, pred, err);
    if (!rc) rc = test_opts ? test_pictures_dir(r, test_opts, r->dir, sizeof r->dir, err) : write_summary(r, s, err);
    if (!rc) rc = write_reports(r, s, pred, r->dir, !test_opts, err);
    nr_free(pred);
    return rc;
}

static void print_device(const run *r)
{
    if (r->o.quiet) return;
    printf("device: %s%s%s%s\n", r->b->device, r->b->why[0] ? " (" : "", r->b->why, r->b->why[0] ? ")" : "");
    fflush(stdout);
}

static void print_header(const run *r)
{
    if (r->o.quiet) return;
    printf("model %s: %lld parameters; %d epochs, batch %d, lr %g, seed %llu, %d thread%s\n", r->p->model,
           (long long)r->host.nparams, r->epochs, r->batch, r->lr, (unsigned long long)r->seed, r->nthreads,
           r->nthreads == 1 ? "" : "s");
    printf("train %d images%s, validation %d, test %d; run directory %s\n", r->ntrain,
           r->p->augment.copies ? " (+ augmented copies)" : "", r->nval, r->ntest, r->dir);
    print_device(r);
}

/* A classifier whose cross-entropy stays at ln(classes) predicts uniform
 * probabilities: it is not learning (yet). Users met this with W4's deep
 * MLP, which sat at 11% for epochs; saying so beats a silent plateau. */
static void note_chance_level(const run *r, const nr_epoch_row *row, int *noted)
{
    nr_loss_kind k = r->t.loss.kind;
    double chance = log((double)r->p->classes);
    if (*noted || r->o.quiet || (k != NR_LOSS_CROSS_ENTROPY && k != NR_LOSS_NLL)) return;
    if (fabs(row->train_loss - chance) > 0.005 * chance) return;
    *noted = 1;
    printf("note: after epoch %d the training loss is still %.4f = ln(%d), chance level: the model is not "
           "learning yet.\n      Deep stacks trained with plain SGD can sit on such a plateau for epochs; "
           "a larger lr, momentum,\n      adam, or kaiming init usually gets them moving.\n",
           row->epoch, row->train_loss, r->p->classes);
}

static int train_loop(run *r, nr_error *err)
{
    uint32_t *order = nr_alloc((size_t)epoch_samples(r) * sizeof *order);
    if (!order) return nr_fail(err, "out of memory");
    char metrics[2200];
    path_in(r, metrics, sizeof metrics, "metrics.csv");
    int rc = nr_metrics_truncate(metrics, r->epoch_done, err);
    nr_epoch_row row;
    memset(&row, 0, sizeof row);
    int noted = 0;
    for (int epoch = r->epoch_done; epoch < r->epochs && !rc; epoch++) {
        memset(&row, 0, sizeof row);
        row.epoch = epoch + 1;
        row.epochs = r->epochs;
        rc = train_epoch(r, epoch, order, &row, err);
        if (rc) break;
        rc = evaluate_epoch(r, &row, err);
        if (rc) break;
        r->epoch_done = epoch + 1;
        r->epoch_seconds[epoch] = row.seconds;
        r->last_train_loss = row.train_loss;
        if (!r->o.quiet) nr_print_epoch(stdout, &row);
        note_chance_level(r, &row, &noted);
        rc = nr_metrics_append(metrics, &row, err);
        if (!rc) rc = save_checkpoint(r, "last.safetensors", 1, err);
    }
    nr_free(order);
    return rc;
}

int nr_train_run(const nr_program *p, const nr_run_opts *o, nr_error *err)
{
    run r;
    memset(&r, 0, sizeof r);
    r.p = p;
    r.o = *o;
    apply_overrides(&r);
    int rc = setup_run_dir(&r, err);
    if (!rc) rc = nr_check_writable_dir(r.dir, err);
    char ck[2200];
    path_in(&r, ck, sizeof ck, "last.safetensors");
    /* A resumed run's checkpoint is read once: settings now, weights after the layout. */
    nr_st_file f;
    int have_ck = 0;
    if (!rc && r.o.resume) {
        rc = nr_safetensors_read(ck, &f, err);
        have_ck = !rc;
        if (!rc) rc = resume_from(&r, &f, err);
        if (!rc) rc = nr_check_finite_tensors(&f, err);
    }
    if (!rc) rc = load_data(&r, 1, err);
    if (!rc) rc = fit_in_memory(&r, epoch_samples(&r), "training images an epoch has", err);
    if (!rc) rc = open_step_log(&r, err);
    if (!rc) rc = alloc_run(&r, o->device, err);
    if (!rc) rc = init_weights(&r, err);
    if (!rc) {
        if (have_ck) {
            rc = load_tensors(&r, &f, 1, err);
            if (!rc && !r.o.quiet) printf("resuming %s after epoch %d (step %ld)\n", ck, r.epoch_done, r.step);
        }
    }
    if (have_ck) nr_st_free(&f);
    if (!rc) {
        print_header(&r);
        rc = train_loop(&r, err);
    }
    summary s = { &r, 0, NAN, NAN, NAN, NAN, NULL, 0, "trained" };
    nr_noise_row rows[64];
    if (!rc) {
        rc = save_checkpoint(&r, "model.safetensors", 0, err);
        if (!rc && r.nval) rc = evaluate(&r, NR_SET_TRAIN, r.val_idx, r.nval, &s.val_loss, &s.val_acc, err);
        if (!rc) rc = test_and_report(&r, &s, rows, NULL, err);
        if (!rc && r.o.result) {
            nr_run_result *res = r.o.result;
            res->train_loss = r.last_train_loss;
            res->val_acc = r.nval ? s.val_acc : NAN;
            res->test_acc = s.test_acc;
            res->seconds = r.train_seconds;
            res->epochs = r.epoch_done;
            snprintf(res->dir, sizeof res->dir, "%s", r.dir);
        }
        if (!rc && !r.o.quiet) printf("\nweights: %s/model.safetensors; log: %s/metrics.csv; summary: %s/summary.json\n",
                                      r.dir, r.dir, r.dir);
    } else if (rc == NR_EXIT_NONFINITE && r.b) {
        nr_error e2;
        s.status = "stopped: loss not finite";
        if (write_summary(&r, &s, &e2)) fprintf(stderr, "%s\n", e2.msg);
    }
    /* A run that failed before writing anything (no data, say) leaves no
     * empty directory behind; one with files in it stays. */
    if (rc) nr_remove_empty_dirs(r.dir, r.made_dirs);
    free_run(&r);
    return rc;
}

/* ---- test ------------------------------------------------------------- */

int nr_test_run(const nr_program *p, const nr_run_opts *o, nr_error *err)
{
    run r;
    memset(&r, 0, sizeof r);
    r.p = p;
    r.o = *o;
    apply_overrides(&r);
    nr_st_file f;
    int rc = nr_safetensors_read(o->weights, &f, err);
    if (rc) return -1;
    rc = nr_check_weights_file(&f, p, err);
    if (!rc) rc = load_data(&r, 0, err);
    if (!rc) rc = fit_in_memory(&r, r.ntest, "test images", err);
    if (!rc) rc = alloc_run(&r, o->device, err);
    if (!rc) rc = load_tensors(&r, &f, 0, err);
    nr_st_free(&f);
    if (!rc) {
        print_device(&r);
        summary s = { &r, 0, NAN, NAN, NAN, NAN, NULL, 0, "tested" };
        nr_noise_row rows[64];
        if (!r.o.quiet) printf("model %s: weights %s\n", p->model, o->weights);
        rc = test_and_report(&r, &s, rows, o, err);
    }
    free_run(&r);
    return rc;
}
