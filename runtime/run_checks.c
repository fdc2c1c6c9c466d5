/* Checks made before a run spends time or memory (see run_checks.h). */
#include "run_checks.h"
#include "cpu/ops.h"
#include "optim.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the layer table as text ------------------------------------------ */

static const char *const kind_names[NR_KIND_COUNT] = {
    "conv", "dense", "maxpool", "avgpool", "batchnorm", "dropout", "flatten",
    "tanh", "relu", "leaky_relu", "sigmoid", "softmax", "log_softmax",
};

static const char *const init_names[] = {
    "pytorch", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal",
};

typedef struct text {
    char *p;
    size_t len, cap;
    int failed;
} text;

static void text_add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(text *t, const char *fmt, ...)
{
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->p && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? 2 * t->cap : 512;
        while (cap <= t->len + (size_t)n) cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->failed = 1;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

static void shape_add(text *t, const char *what, int rank, int c, int h, int w)
{
    if (rank == 1) text_add(t, " %s=%d", what, c);
    else text_add(t, " %s=%dx%dx%d", what, c, h, w);
}

/* Every option that changes what the stored numbers mean, or what the
 * model computes with them; floats with 9 digits, enough for a float32. */
static void layer_add(text *t, const nr_layer *L)
{
    const char *kind = L->kind >= 0 && L->kind < NR_KIND_COUNT ? kind_names[L->kind] : "?";
    text_add(t, "%s %s", L->name, kind);
    shape_add(t, "in", L->in_rank, L->in_c, L->in_h, L->in_w);
    shape_add(t, "out", L->out_rank, L->out_c, L->out_h, L->out_w);
    const char *init = L->init >= 0 && L->init < (int)(sizeof init_names / sizeof *init_names) ? init_names[L->init] : "?";
    switch (L->kind) {
    case NR_CONV:
        text_add(t, " kernel=%d stride=%d padding=%d padding_mode=%s bias=%d init=%s", L->kernel, L->stride,
                 L->padding, L->reflect ? "reflect" : "zeros", L->bias, init);
        break;
    case NR_DENSE: text_add(t, " bias=%d init=%s", L->bias, init); break;
    case NR_MAXPOOL:
    case NR_AVGPOOL: text_add(t, " kernel=%d stride=%d padding=%d", L->kernel, L->stride, L->padding); break;
    case NR_BATCHNORM: text_add(t, " affine=%d eps=%.9g momentum=%.9g", L->affine, L->eps, L->momentum); break;
    case NR_DROPOUT: text_add(t, " p=%.9g", L->p); break;
    case NR_LEAKY_RELU: text_add(t, " slope=%.9g", L->slope); break;
    default: break;
    }
}

char *nr_layers_describe(const nr_program *p)
{
    text t = { 0 };
    text_add(&t, "%s", "");
    for (int i = 0; i < p->nlayers; i++) {
        if (i) text_add(&t, "; ");
        layer_add(&t, &p->layers[i]);
    }
    if (t.failed) {
        free(t.p);
        return NULL;
    }
    return t.p;
}

/* The i-th "; "-separated entry of s into buf ("" past the end); returns
 * how many entries s has. */
static int entry(const char *s, int i, char *buf, size_t n)
{
    int count = 0;
    buf[0] = '\0';
    while (*s) {
        const char *end = strstr(s, "; ");
        size_t len = end ? (size_t)(end - s) : strlen(s);
        if (count == i) snprintf(buf, n, "%.*s", (int)len, s);
        count++;
        s += len;
        if (end) s += 2;
    }
    return count;
}

/* The i-th space-separated word of s into buf ("" past the end). */
static void word(const char *s, int i, char *buf, size_t n)
{
    buf[0] = '\0';
    for (int k = 0; *s; k++) {
        size_t len = strcspn(s, " ");
        if (k == i) {
            snprintf(buf, n, "%.*s", (int)len, s);
            return;
        }
        s += len;
        while (*s == ' ') s++;
    }
}

/* The value of option `key` ("kernel") in a layer entry, or NULL. */
static const char *option(const char *layer, const char *key, char *buf, size_t n)
{
    char w[256];
    size_t klen = strlen(key);
    for (int k = 2;; k++) {
        word(layer, k, w, sizeof w);
        if (!w[0]) return NULL;
        if (!strncmp(w, key, klen) && w[klen] == '=') {
            snprintf(buf, n, "%s", w + klen + 1);
            return buf;
        }
    }
}

/* Which option of two entries of the same name and kind differs. */
static void option_difference(const char *saved, const char *now, int index, const char *name, char *what, size_t n)
{
    char w[256], key[128], a[128], b[128];
    for (int pass = 0; pass < 2; pass++) {
        const char *from = pass ? now : saved, *other = pass ? saved : now;
        for (int k = 2;; k++) {
            word(from, k, w, sizeof w);
            if (!w[0]) break;
            char *eq = strchr(w, '=');
            if (!eq) continue;
            snprintf(key, sizeof key, "%.*s", (int)(eq - w), w);
            const char *mine = option(from, key, a, sizeof a), *theirs = option(other, key, b, sizeof b);
            if (!theirs) {
                snprintf(what, n, "layer %d (%s): option %s=%s is only in %s", index, name, key, mine,
                         pass ? "this model" : "the checkpoint");
                return;
            }
            if (strcmp(mine, theirs)) {
                snprintf(what, n, "layer %d (%s): %s is %s in the checkpoint, %s in this model", index, name, key,
                         pass ? theirs : mine, pass ? mine : theirs);
                return;
            }
        }
    }
    snprintf(what, n, "layer %d (%s): '%s' in the checkpoint, '%s' in this model", index, name, saved, now);
}

int nr_layers_compare(const char *saved, const char *now, char *what, size_t n)
{
    if (!strcmp(saved, now)) return 0;
    char a[1024], b[1024], an[256], bn[256], ak[64], bk[64];
    int na = entry(saved, 0, a, sizeof a), nb = entry(now, 0, b, sizeof b);
    for (int i = 0; i < na || i < nb; i++) {
        entry(saved, i, a, sizeof a);
        entry(now, i, b, sizeof b);
        if (!strcmp(a, b)) continue;
        word(a, 0, an, sizeof an);
        word(b, 0, bn, sizeof bn);
        word(a, 1, ak, sizeof ak);
        word(b, 1, bk, sizeof bk);
        if (i >= nb) snprintf(what, n, "layer %d (%s %s) of the checkpoint is not in this model (%d layers, not %d)",
                              i + 1, an, ak, nb, na);
        else if (i >= na)
            snprintf(what, n, "layer %d (%s %s) of this model is not in the checkpoint (%d layers, not %d)", i + 1,
                     bn, bk, na, nb);
        else if (strcmp(an, bn) || strcmp(ak, bk))
            snprintf(what, n, "layer %d is %s (%s) in the checkpoint, %s (%s) in this model", i + 1, an, ak, bn, bk);
        else option_difference(a, b, i + 1, an, what, n);
        return -1;
    }
    snprintf(what, n, "the layer tables differ");
    return -1;
}

/* ---- checkpoint metadata ---------------------------------------------- */

int nr_is_netc_checkpoint(const nr_st_file *f)
{
    return nr_st_meta(f, "format") != NULL;
}

static const char *need(const nr_st_file *f, const char *key, nr_error *err)
{
    const char *v = nr_st_meta(f, key);
    if (!v) nr_fail(err, "%s: metadata field '%s' is missing: the file is damaged or not a netc checkpoint", f->path, key);
    return v;
}

/* A whole number as netc writes it (optional '-', digits, nothing else)
 * within lo..hi; absent is -1 with *value untouched when optional. */
static int meta_int(const nr_st_file *f, const char *key, int optional, long long lo, long long hi, long long *value,
                    nr_error *err)
{
    const char *v = optional ? nr_st_meta(f, key) : need(f, key, err);
    if (!v) return optional ? 0 : -1;
    const char *d = v + (*v == '-');
    int digits = *d != '\0';
    for (const char *c = d; *c; c++) digits &= *c >= '0' && *c <= '9';
    errno = 0;
    long long x = digits ? strtoll(v, NULL, 10) : 0;
    if (!digits || errno)
        return nr_fail(err, "%s: metadata field '%s' is '%s', not a whole number", f->path, key, v);
    if (x < lo || x > hi)
        return nr_fail(err, "%s: metadata field '%s' is %lld, outside %lld..%lld", f->path, key, x, lo, hi);
    *value = x;
    return 0;
}

static int meta_real(const nr_st_file *f, const char *key, int optional, double lo, double hi, double *value,
                     nr_error *err)
{
    const char *v = optional ? nr_st_meta(f, key) : need(f, key, err);
    if (!v) return optional ? 0 : -1;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    /* Decimal as netc writes it (%.17g): no hex floats, inf, nan or spaces. */
    if (end == v || *end || strspn(v, "0123456789+-.eE") != strlen(v))
        return nr_fail(err, "%s: metadata field '%s' is '%s', not a number", f->path, key, v);
    if (errno == ERANGE || !isfinite(x))
        return nr_fail(err, "%s: metadata field '%s' is %s, out of range", f->path, key, v);
    if (!(x >= lo && x <= hi))
        return nr_fail(err, "%s: metadata field '%s' is %s, outside %g..%g", f->path, key, v, lo, hi);
    *value = x;
    return 0;
}

int nr_checkpoint_meta(const nr_st_file *f, nr_ck_meta *m, nr_error *err)
{
    memset(m, 0, sizeof *m);
    m->train_loss = NAN;
    m->threads = m->train_limit = -1;
    const char *format = need(f, "format", err);
    if (!format) return -1;
    if (strcmp(format, NR_CHECKPOINT_FORMAT))
        return nr_fail(err, "%s: metadata field 'format' is '%s'; this program reads '%s'", f->path, format,
                       NR_CHECKPOINT_FORMAT);
    if (!(m->model = need(f, "model", err))) return -1;
    m->layers = nr_st_meta(f, "layers");
    /* The same limits as the command line's (see main.c). */
    if (meta_int(f, "epochs", 0, 1, 1000000, &m->epochs, err) || meta_int(f, "epoch", 0, 0, m->epochs, &m->epoch, err) ||
        meta_int(f, "step", 0, 0, INT64_MAX, &m->step, err) ||
        meta_int(f, "seed", 0, 0, 4294967295LL, &m->seed, err) || meta_int(f, "batch", 0, 1, 1 << 20, &m->batch, err) ||
        meta_real(f, "lr", 0, -HUGE_VAL, HUGE_VAL, &m->lr, err) ||
        meta_real(f, "train_loss", 1, -HUGE_VAL, HUGE_VAL, &m->train_loss, err) ||
        meta_int(f, "threads", 1, 1, 4096, &m->threads, err) ||
        meta_int(f, "train_limit", 1, 0, INT32_MAX, &m->train_limit, err))
        return -1;
    if (m->step < m->epoch)
        return nr_fail(err, "%s: metadata field 'step' is %lld, fewer than its %lld epochs (each takes at least one step)",
                       f->path, m->step, m->epoch);
    if (!(m->lr > 0 && m->lr <= 1e6))
        return nr_fail(err, "%s: metadata field 'lr' is %s: a learning rate is above 0 and at most 1e6", f->path,
                       nr_st_meta(f, "lr"));
    return 0;
}

int nr_checkpoint_matches(const nr_st_file *f, const nr_ck_meta *m, const nr_program *p, FILE *note, nr_error *err)
{
    if (strcmp(m->model, p->model))
        return nr_fail(err, "%s holds weights of model '%s', not of '%s'", f->path, m->model, p->model);
    if (!m->layers) {
        if (note)
            fprintf(note, "note: %s was written by an older netc without the layer table; only its model name and "
                          "its tensors' names and shapes are checked\n", f->path);
        return 0;
    }
    char *now = nr_layers_describe(p);
    if (!now) return nr_fail(err, "out of memory");
    char what[1024];
    int rc = 0;
    if (nr_layers_compare(m->layers, now, what, sizeof what))
        rc = nr_fail(err, "%s was saved from another version of model '%s': %s", f->path, p->model, what);
    free(now);
    return rc;
}

int nr_check_finite_tensors(const nr_st_file *f, nr_error *err)
{
    for (int k = 0; k < f->nentries; k++) {
        const nr_st_entry *e = &f->entries[k];
        for (size_t i = 0; i < e->count; i++)
            if (!isfinite(e->data[i]))
                return nr_fail(err, "%s: tensor '%s' holds %s at index %zu (of %zu values): these weights come from "
                                    "a run that diverged",
                               f->path, e->name, isnan(e->data[i]) ? "NaN" : "infinity", i, e->count);
    }
    return 0;
}

int nr_check_weights_file(const nr_st_file *f, const nr_program *p, nr_error *err)
{
    nr_ck_meta m;
    if (nr_is_netc_checkpoint(f) && (nr_checkpoint_meta(f, &m, err) || nr_checkpoint_matches(f, &m, p, stderr, err)))
        return -1;
    return nr_check_finite_tensors(f, err);
}

/* ---- memory ----------------------------------------------------------- */

void nr_estimate_memory(const nr_program *p, const nr_optim *optim, int batch, size_t data_bytes, nr_mem_estimate *e)
{
    /* As nr_model_init and alloc_run lay a run out; sizes in floats. */
    size_t in = (size_t)p->in_c * p->in_h * p->in_w, widest = in, acts = in * (size_t)batch, scratch = 0;
    size_t params = 0, buffers = 0;
    for (int i = 0; i < p->nlayers; i++) {
        const nr_layer *L = &p->layers[i];
        size_t out = (size_t)L->out_c * L->out_h * L->out_w, s = nr_layer_scratch_count(L, batch);
        if (out > widest) widest = out;
        if (s > scratch) scratch = s;
        acts += out * (size_t)batch + nr_layer_saved_count(L, batch);
        params += nr_layer_param_count(L);
        buffers += nr_layer_buffer_count(L);
    }
    acts += 2 * widest * (size_t)batch + scratch + (size_t)batch * (size_t)p->classes;
    e->activations = acts * sizeof(float) + (size_t)batch * sizeof(int32_t);
    e->parameters = (2 * params + buffers) * sizeof(float);
    e->optimizer = (optim ? nr_optim_state_count(optim, params) + (optim->sam ? params : 0) : 0) * sizeof(float);
    e->data = data_bytes;
    e->total = e->activations + e->parameters + e->optimizer + e->data;
}

/* A number of bytes from a "Key:   123 kB" line of /proc/meminfo. */
static size_t meminfo(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    size_t klen = strlen(key), kb = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen) && line[klen] == ':') {
            kb = (size_t)strtoull(line + klen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb * 1024;
}

/* cgroup v2: the limit less what the group already uses; 0 when unlimited
 * or unknown. */
static size_t cgroup_room(void)
{
    char buf[64];
    size_t limit = 0, used = 0;
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "r");
    if (!f) return 0;
    if (fgets(buf, sizeof buf, f) && buf[0] >= '0' && buf[0] <= '9') limit = (size_t)strtoull(buf, NULL, 10);
    fclose(f);
    if (!limit) return 0;
    f = fopen("/sys/fs/cgroup/memory.current", "r");
    if (f) {
        if (fgets(buf, sizeof buf, f)) used = (size_t)strtoull(buf, NULL, 10);
        fclose(f);
    }
    return limit > used ? limit - used : 1;
}

size_t nr_available_memory(const char **source)
{
    /* MemAvailable: what the kernel says can be taken without swapping
     * (free memory plus reclaimable caches), not the machine's total. */
    size_t avail = meminfo("MemAvailable");
    *source = "MemAvailable in /proc/meminfo";
    if (!avail) {
        long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
        avail = pages > 0 && size > 0 ? (size_t)pages * (size_t)size : 0;
        *source = "free physical pages (sysconf)";
    }
    size_t room = cgroup_room();
    if (room && (!avail || room < avail)) {
        avail = room;
        *source = "the room left under the cgroup's memory.max";
    }
    if (!avail) *source = "nothing";
    return avail;
}

static double mib(size_t bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

int nr_check_memory(const nr_mem_estimate *e, int batch, size_t available, const char *source, nr_error *err)
{
    size_t needed = e->total - e->data;  /* the data is in memory already */
    if (!available || needed <= available) return 0;
    return nr_fail(err,
                   "the run needs about %.0f MiB more memory than the %.0f MiB available (%s): activations for "
                   "batch %d %.0f MiB, parameters and gradients %.0f MiB, optimizer state %.0f MiB (the data, "
                   "%.0f MiB, is loaded already); use a smaller --batch",
                   mib(needed - available), mib(available), source, batch, mib(e->activations), mib(e->parameters),
                   mib(e->optimizer), mib(e->data));
}

/* ---- directory, batch, threads ---------------------------------------- */

int nr_check_writable_dir(const char *dir, nr_error *err)
{
    char path[2300];
    snprintf(path, sizeof path, "%s/.netc-write-test.%ld", dir, (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return nr_fail_errno(err, "the run directory %s cannot hold files (creating %s)", dir, path);
    int rc = 0;
    if (write(fd, "netc\n", 5) != 5) rc = nr_fail_errno(err, "the run directory %s cannot hold files (writing %s)", dir, path);
    if (close(fd) != 0 && !rc) rc = nr_fail_errno(err, "the run directory %s cannot hold files (closing %s)", dir, path);
    if (unlink(path) != 0 && !rc) rc = nr_fail_errno(err, "the run directory %s: cannot remove %s", dir, path);
    return rc;
}

int nr_cap_batch(int batch, long images, const char *what, FILE *note)
{
    if (images <= 0 || batch <= images) return batch;
    if (note) fprintf(note, "note: batch %d is more than the %ld %s; using batch %ld\n", batch, images, what, images);
    return (int)images;
}

int nr_core_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
