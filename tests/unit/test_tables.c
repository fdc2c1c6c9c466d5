/* The tables of a generated program (runtime/netrt.h) say what the .net
 * file says, for every model of models/ and for a file full of hostile
 * strings.
 *
 * For each file the front end gives the IR and emit_c() the program's C.
 * That C is compiled into a shared object with the C compiler netc uses
 * and loaded; its main() hands the nr_program to nr_main(), which is
 * defined here and only keeps the pointer. The loaded tables and the IR
 * are then both written out field by field as "key value" lines
 * (describe_* from the tables, expect_* from the IR) and compared line by
 * line, so a mismatch names its field. The IR side reads every option by
 * its name in the .net language (find_opt, the choice's name), not through
 * the emitter's enums and switch cases; the facts[] table, read off each
 * .net file by hand, anchors both sides. A field added to netrt.h is one
 * line in describe_* and one in expect_*.
 *
 * Sweeps: every point's name, value text and tables are checked the same
 * way, and same_as must name the first earlier point whose tables are
 * equal (compared as text), sharing its nr_program. */
#include "config.h"
#include "emit_c.h"
#include "frontend.h"
#include "netrt.h"
#include "scratch.h"
#include "tap.h"
#include "util.h"
#include <dirent.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the generated program's nr_main: keeps the tables ---------------- */

static const nr_program *captured;

/* Called by the loaded program's main(); exported (-export-dynamic) so the
 * shared object binds to it. */
int nr_main(const nr_program *p, int argc, char **argv);
int nr_main(const nr_program *p, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    captured = p;
    return 0;
}

/* ---- failures with a message built at run time ------------------------ */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    CU_assertImplementation(CU_FALSE, __LINE__, msg, __FILE__, "", CU_FALSE);
}

/* ---- "key value" lines --------------------------------------------------- */

static void put_int(strbuf *o, const char *key, long long v) { sb_printf(o, "%s %lld\n", key, v); }
static void put_float(strbuf *o, const char *key, double v) { sb_printf(o, "%s %.9g\n", key, (double)(float)v); }

/* A string as visible text: every byte that is not plain printable ASCII
 * as \xHH, so that two strings compare equal exactly when their bytes do. */
static void put_str(strbuf *o, const char *key, const char *s)
{
    if (!s) {
        sb_printf(o, "%s NULL\n", key);
        return;
    }
    sb_printf(o, "%s \"", key);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c >= 0x20 && *c < 0x7f && *c != '\\') sb_putc(o, (char)*c);
        else sb_printf(o, "\\x%02x", *c);
    }
    sb_puts(o, "\"\n");
}

/* key[i] and key.field names. */
static const char *k1(char *buf, size_t n, const char *prefix, const char *field)
{
    snprintf(buf, n, "%s.%s", prefix, field);
    return buf;
}
#define KEY(field) k1(key, sizeof key, prefix, field)

/* ---- describe: the loaded tables ---------------------------------------- */

static void describe_layer(strbuf *o, const char *prefix, const nr_layer *l)
{
    char key[128];
    put_str(o, KEY("name"), l->name);
    put_int(o, KEY("kind"), l->kind);
    put_int(o, KEY("in_rank"), l->in_rank);
    put_int(o, KEY("in_c"), l->in_c);
    put_int(o, KEY("in_h"), l->in_h);
    put_int(o, KEY("in_w"), l->in_w);
    put_int(o, KEY("out_rank"), l->out_rank);
    put_int(o, KEY("out_c"), l->out_c);
    put_int(o, KEY("out_h"), l->out_h);
    put_int(o, KEY("out_w"), l->out_w);
    put_int(o, KEY("kernel"), l->kernel);
    put_int(o, KEY("stride"), l->stride);
    put_int(o, KEY("padding"), l->padding);
    put_int(o, KEY("reflect"), l->reflect);
    put_int(o, KEY("bias"), l->bias);
    put_int(o, KEY("affine"), l->affine);
    put_float(o, KEY("eps"), l->eps);
    put_float(o, KEY("momentum"), l->momentum);
    put_float(o, KEY("p"), l->p);
    put_float(o, KEY("slope"), l->slope);
    put_int(o, KEY("init"), l->init);
}

static void describe_data(strbuf *o, const nr_data_spec *d)
{
    const char *prefix = "data";
    char key[128];
    put_int(o, KEY("dataset"), d->dataset);
    put_str(o, KEY("name"), d->name);
    put_str(o, KEY("path"), d->path);
    put_int(o, KEY("validation"), d->validation);
    put_int(o, KEY("channels"), d->channels);
    put_int(o, KEY("height"), d->height);
    put_int(o, KEY("width"), d->width);
    put_int(o, KEY("classes"), d->classes);
    put_int(o, KEY("resize"), d->resize);
    put_int(o, KEY("resize_bicubic"), d->resize_bicubic);
    put_int(o, KEY("nnorm"), d->nnorm);
    for (int i = 0; i < 4; i++) {
        char field[32];
        snprintf(field, sizeof field, "mean[%d]", i);
        put_float(o, KEY(field), d->mean[i]);
        snprintf(field, sizeof field, "std[%d]", i);
        put_float(o, KEY(field), d->std[i]);
    }
}

static void describe_aug_op(strbuf *o, const char *prefix, const nr_aug_op *a)
{
    char key[128];
    put_int(o, KEY("kind"), a->kind);
    put_float(o, KEY("degrees"), a->degrees);
    put_int(o, KEY("bilinear"), a->bilinear);
    put_float(o, KEY("fill"), a->fill);
    put_float(o, KEY("p"), a->p);
    put_int(o, KEY("size"), a->size);
    put_int(o, KEY("padding"), a->padding);
    put_float(o, KEY("std"), a->std);
    put_int(o, KEY("clamp"), a->clamp);
    put_float(o, KEY("lo"), a->lo);
    put_float(o, KEY("hi"), a->hi);
    put_int(o, KEY("after_normalize"), a->after_normalize);
}

static void describe_augment(strbuf *o, const nr_augment *a)
{
    put_int(o, "augment.copies", a->copies);
    put_int(o, "augment.nops", a->nops);
    put_int(o, "augment.ops_null", a->ops == NULL);
    for (int i = 0; a->ops && i < a->nops; i++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "augment.ops[%d]", i);
        describe_aug_op(o, prefix, &a->ops[i]);
    }
}

static void describe_optim(strbuf *o, const nr_optim *m)
{
    const char *prefix = "train.optim";
    char key[128];
    put_int(o, KEY("kind"), m->kind);
    put_float(o, KEY("lr"), m->lr);
    put_float(o, KEY("momentum"), m->momentum);
    put_float(o, KEY("dampening"), m->dampening);
    put_int(o, KEY("nesterov"), m->nesterov);
    put_float(o, KEY("weight_decay"), m->weight_decay);
    put_float(o, KEY("beta1"), m->beta1);
    put_float(o, KEY("beta2"), m->beta2);
    put_float(o, KEY("eps"), m->eps);
    put_float(o, KEY("alpha"), m->alpha);
    put_int(o, KEY("sam"), m->sam);
    put_float(o, KEY("sam_rho"), m->sam_rho);
    put_int(o, KEY("sam_adaptive"), m->sam_adaptive);
}

static void describe_schedule(strbuf *o, const nr_schedule *s)
{
    const char *prefix = "train.schedule";
    char key[128];
    put_int(o, KEY("kind"), s->kind);
    put_int(o, KEY("per_iteration"), s->per_iteration);
    put_int(o, KEY("step"), s->step);
    put_float(o, KEY("gamma"), s->gamma);
    put_int(o, KEY("nmilestones"), s->milestones ? s->nmilestones : 0);
    for (int i = 0; s->milestones && i < s->nmilestones; i++) put_int(o, KEY("milestone"), s->milestones[i]);
    put_int(o, KEY("nfractions"), s->fractions ? s->nfractions : 0);
    for (int i = 0; s->fractions && i < s->nfractions; i++) put_float(o, KEY("fraction"), s->fractions[i]);
    put_int(o, KEY("t_max"), s->t_max);
    put_float(o, KEY("eta_min"), s->eta_min);
}

static void describe_loss(strbuf *o, const nr_loss *l)
{
    const char *prefix = "train.loss";
    char key[128];
    put_int(o, KEY("kind"), l->kind);
    put_float(o, KEY("label_smoothing"), l->label_smoothing);
    put_int(o, KEY("smoothing_other_classes"), l->smoothing_other_classes);
    put_int(o, KEY("mse_softmax"), l->mse_softmax);
    put_float(o, KEY("margin"), l->margin);
    put_int(o, KEY("p"), l->p);
}

static void describe_train(strbuf *o, const nr_train *t)
{
    const char *prefix = "train";
    char key[128];
    put_int(o, KEY("epochs"), t->epochs);
    put_int(o, KEY("batch"), t->batch);
    put_int(o, KEY("seed"), t->seed);
    put_int(o, KEY("shuffle"), t->shuffle);
    put_int(o, KEY("tf32"), t->tf32);
    put_int(o, KEY("threads"), t->threads);
    describe_optim(o, &t->optim);
    describe_schedule(o, &t->schedule);
    describe_loss(o, &t->loss);
}

static void describe_noise(strbuf *o, const nr_noise_test *n)
{
    const char *prefix = "noise";
    char key[128];
    put_int(o, KEY("nstd"), n->std ? n->nstd : 0);
    for (int i = 0; n->std && i < n->nstd; i++) put_float(o, KEY("std"), n->std[i]);
    put_int(o, KEY("seed"), n->seed);
    put_int(o, KEY("before_normalize"), n->before_normalize);
    put_int(o, KEY("clamp"), n->clamp);
    put_float(o, KEY("lo"), n->lo);
    put_float(o, KEY("hi"), n->hi);
    put_int(o, KEY("same_noise"), n->same_noise);
}

/* Everything but the sweep list (checked on its own). */
static void describe_program(strbuf *o, const nr_program *p)
{
    put_int(o, "abi", p->abi);
    put_str(o, "model", p->model);
    put_str(o, "source", p->source);
    put_str(o, "netc_version", p->netc_version);
    put_str(o, "overrides", p->overrides);
    put_int(o, "in_rank", p->in_rank);
    put_int(o, "in_c", p->in_c);
    put_int(o, "in_h", p->in_h);
    put_int(o, "in_w", p->in_w);
    put_int(o, "classes", p->classes);
    put_int(o, "nlayers", p->nlayers);
    for (int i = 0; i < p->nlayers; i++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "layers[%d]", i);
        describe_layer(o, prefix, &p->layers[i]);
    }
    put_int(o, "params", p->params);
    describe_data(o, &p->data);
    describe_augment(o, &p->augment);
    describe_train(o, &p->train);
    describe_noise(o, &p->noise);
}

/* ---- expect: the same lines from the IR, options by name ---------------- */

/* The option `name` of r; a missing one fails the test and reads as zero. */
static const optval *opt(const resolved *r, const char *name)
{
    static const optval none;
    int i = r ? find_opt(r->def, name) : -1;
    if (i < 0) {
        fail("%s has no option '%s'", r ? r->def->name : "(nothing)", name);
        return &none;
    }
    return &r->v[i];
}

/* The option's value, or 0 when the construct has no such option. */
static double num_or_0(const resolved *r, const char *name)
{
    int i = find_opt(r->def, name);
    return i < 0 ? 0 : r->v[i].num;
}

/* The name of an enum option's value ("reflect", "bicubic"), or "" when r has no such option. */
static const char *choice(const resolved *r, const char *name)
{
    int i = find_opt(r->def, name);
    if (i < 0 || !r->def->opts[i].choices) return "";
    return r->def->opts[i].choices[(int)r->v[i].num];
}

static int is(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* A name of the .net language -> the runtime's enum; -1 when unknown. */
typedef struct name_value {
    const char *name;
    int value;
} name_value;

static int lookup(const name_value *t, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (is(t[i].name, name)) return t[i].value;
    fail("no runtime value for '%s'", name);
    return -1;
}
#define LOOKUP(table, name) lookup(table, sizeof table / sizeof table[0], name)

static const name_value layer_kinds[] = {
    { "conv", NR_CONV },         { "dense", NR_DENSE },           { "maxpool", NR_MAXPOOL },
    { "avgpool", NR_AVGPOOL },   { "batchnorm", NR_BATCHNORM },   { "batchnorm1d", NR_BATCHNORM },
    { "batchnorm2d", NR_BATCHNORM }, { "dropout", NR_DROPOUT },  { "flatten", NR_FLATTEN },
    { "tanh", NR_TANH },         { "relu", NR_RELU },             { "leaky_relu", NR_LEAKY_RELU },
    { "sigmoid", NR_SIGMOID },   { "softmax", NR_SOFTMAX },       { "log_softmax", NR_LOG_SOFTMAX },
};
static const name_value inits[] = {
    { "pytorch", NR_INIT_PYTORCH },           { "xavier_uniform", NR_INIT_XAVIER_UNIFORM },
    { "xavier_normal", NR_INIT_XAVIER_NORMAL }, { "kaiming_uniform", NR_INIT_KAIMING_UNIFORM },
    { "kaiming_normal", NR_INIT_KAIMING_NORMAL },
};
static const name_value dataset_kinds[] = {
    { "mnist", NR_DS_MNIST },     { "fashion_mnist", NR_DS_FASHION_MNIST }, { "cifar10", NR_DS_CIFAR10 },
    { "cifar100", NR_DS_CIFAR100 }, { "folder", NR_DS_FOLDER },
};
static const name_value aug_kinds[] = {
    { "rotate", NR_AUG_ROTATE }, { "hflip", NR_AUG_HFLIP }, { "crop", NR_AUG_CROP }, { "noise", NR_AUG_NOISE },
};
static const name_value optim_kinds[] = {
    { "sgd", NR_SGD }, { "adam", NR_ADAM }, { "adamw", NR_ADAMW }, { "rmsprop", NR_RMSPROP },
};
static const name_value sched_kinds[] = {
    { "constant", NR_SCHED_CONSTANT }, { "step", NR_SCHED_STEP }, { "multistep", NR_SCHED_MULTISTEP },
    { "cosine", NR_SCHED_COSINE },
};
static const name_value loss_kinds[] = {
    { "cross_entropy", NR_LOSS_CROSS_ENTROPY }, { "nll", NR_LOSS_NLL }, { "mse", NR_LOSS_MSE },
    { "multi_margin", NR_LOSS_MULTI_MARGIN },
};

/* The image size of each data set as published (not the compiler's table). */
static const struct {
    const char *name;
    int channels, height, width;
} image_sizes[] = {
    { "mnist", 1, 28, 28 }, { "fashion_mnist", 1, 28, 28 }, { "cifar10", 3, 32, 32 }, { "cifar100", 3, 32, 32 },
};

static void expect_shape(strbuf *o, const char *prefix, const shape *s)
{
    char key[128];
    snprintf(key, sizeof key, "%s_rank", prefix);
    put_int(o, key, s->rank);
    snprintf(key, sizeof key, "%s_c", prefix);
    put_int(o, key, s->d[0]);
    snprintf(key, sizeof key, "%s_h", prefix);
    put_int(o, key, s->rank == 3 ? s->d[1] : 1);
    snprintf(key, sizeof key, "%s_w", prefix);
    put_int(o, key, s->rank == 3 ? s->d[2] : 1);
}

static void expect_layer(strbuf *o, const char *prefix, const ir_node *n, const char *model_init)
{
    char key[128], sub[160];
    const resolved *r = n->op;
    const char *kind = r->def->name;
    put_str(o, KEY("name"), n->name);
    put_int(o, KEY("kind"), LOOKUP(layer_kinds, kind));
    shape in = n->in;
    if (is(kind, "dense") && in.rank == 3) /* auto_flatten: a dense layer reads C*H*W features */
        in = (shape){ 1, { in.d[0] * in.d[1] * in.d[2], 0, 0 } };
    snprintf(sub, sizeof sub, "%s.in", prefix);
    expect_shape(o, sub, &in);
    snprintf(sub, sizeof sub, "%s.out", prefix);
    expect_shape(o, sub, &n->out);
    int pool = is(kind, "maxpool") || is(kind, "avgpool"), conv = is(kind, "conv");
    int kernel = conv || pool ? (int)opt(r, "kernel")->num : 0;
    int stride = conv ? (int)opt(r, "stride")->num : 0;
    if (pool) stride = opt(r, "stride")->given ? (int)opt(r, "stride")->num : kernel; /* default: the kernel */
    put_int(o, KEY("kernel"), kernel);
    put_int(o, KEY("stride"), stride);
    put_int(o, KEY("padding"), conv || pool ? (int)opt(r, "padding")->num : 0);
    put_int(o, KEY("reflect"), is(choice(r, "padding_mode"), "reflect"));
    put_int(o, KEY("bias"), num_or_0(r, "bias") != 0);
    put_int(o, KEY("affine"), num_or_0(r, "affine") != 0);
    put_float(o, KEY("eps"), num_or_0(r, "eps"));
    put_float(o, KEY("momentum"), num_or_0(r, "momentum"));
    put_float(o, KEY("p"), num_or_0(r, "p"));
    put_float(o, KEY("slope"), num_or_0(r, "slope"));
    const char *init = choice(r, "init");
    if (is(init, "model")) init = model_init;
    put_int(o, KEY("init"), *init ? LOOKUP(inits, init) : 0);
}

/* The data op of that name ("resize", "normalize"), or NULL. */
static const resolved *data_op(const ir_program *p, const char *name)
{
    for (int i = 0; i < p->ndata_ops; i++)
        if (is(p->data_ops[i]->def->name, name)) return p->data_ops[i];
    return NULL;
}

static void expect_data(strbuf *o, const ir_program *p)
{
    const char *prefix = "data";
    char key[128];
    const resolved *d = p->data;
    const char *ds = choice(d, "dataset");
    put_int(o, KEY("dataset"), LOOKUP(dataset_kinds, ds));
    put_str(o, KEY("name"), ds);
    const optval *path = opt(d, "path");
    put_str(o, KEY("path"), path->given ? path->str : NULL);
    put_int(o, KEY("validation"), (long long)opt(d, "validation")->num);
    /* What the model takes: the data set's images (a folder's: the model's input), resized. */
    const shape *in = &p->model.input;
    int c = (int)in->d[0], h = in->rank == 3 ? (int)in->d[1] : 1, w = in->rank == 3 ? (int)in->d[2] : 1;
    for (size_t i = 0; i < sizeof image_sizes / sizeof image_sizes[0]; i++)
        if (is(image_sizes[i].name, ds)) c = image_sizes[i].channels, h = image_sizes[i].height, w = image_sizes[i].width;
    const resolved *resize = data_op(p, "resize"), *norm = data_op(p, "normalize");
    if (resize) h = w = (int)opt(resize, "size")->num;
    put_int(o, KEY("channels"), c);
    put_int(o, KEY("height"), h);
    put_int(o, KEY("width"), w);
    put_int(o, KEY("classes"), p->model.classes);
    put_int(o, KEY("resize"), resize ? (int)opt(resize, "size")->num : 0);
    put_int(o, KEY("resize_bicubic"), resize && is(choice(resize, "mode"), "bicubic"));
    const optval *mean = norm ? opt(norm, "mean") : NULL, *std = norm ? opt(norm, "std") : NULL;
    put_int(o, KEY("nnorm"), mean ? mean->nlist : 0);
    for (int i = 0; i < 4; i++) {
        char field[32];
        snprintf(field, sizeof field, "mean[%d]", i);
        put_float(o, KEY(field), mean && i < mean->nlist ? mean->list[i] : 0);
        snprintf(field, sizeof field, "std[%d]", i);
        put_float(o, KEY(field), std && i < std->nlist ? std->list[i] : 0);
    }
}

static void expect_aug_op(strbuf *o, const char *prefix, const resolved *r)
{
    char key[128];
    const char *kind = r->def->name;
    int noise = is(kind, "noise");
    const optval *clamp = noise ? opt(r, "clamp") : NULL;
    put_int(o, KEY("kind"), LOOKUP(aug_kinds, kind));
    put_float(o, KEY("degrees"), num_or_0(r, "degrees"));
    put_int(o, KEY("bilinear"), is(choice(r, "interpolation"), "bilinear"));
    put_float(o, KEY("fill"), num_or_0(r, "fill"));
    put_float(o, KEY("p"), num_or_0(r, "p"));
    put_int(o, KEY("size"), (long long)num_or_0(r, "size"));
    put_int(o, KEY("padding"), (long long)num_or_0(r, "padding"));
    put_float(o, KEY("std"), num_or_0(r, "std"));
    put_int(o, KEY("clamp"), clamp && clamp->nlist == 2);
    put_float(o, KEY("lo"), clamp && clamp->nlist == 2 ? clamp->list[0] : 0);
    put_float(o, KEY("hi"), clamp && clamp->nlist == 2 ? clamp->list[1] : 0);
    put_int(o, KEY("after_normalize"), is(choice(r, "at"), "after_normalize"));
}

static void expect_augment(strbuf *o, const ir_program *p)
{
    put_int(o, "augment.copies", (long long)opt(p->augment, "copies")->num);
    put_int(o, "augment.nops", p->naug_ops);
    put_int(o, "augment.ops_null", p->naug_ops == 0);
    for (int i = 0; i < p->naug_ops; i++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "augment.ops[%d]", i);
        expect_aug_op(o, prefix, p->aug_ops[i]);
    }
}

static void expect_optim(strbuf *o, const resolved *r)
{
    const char *prefix = "train.optim";
    char key[128];
    int sam = is(r->def->name, "sam");
    const resolved *base = sam ? opt(r, "base")->call : r;
    put_int(o, KEY("kind"), LOOKUP(optim_kinds, base->def->name));
    put_float(o, KEY("lr"), opt(base, "lr")->num);
    put_float(o, KEY("momentum"), num_or_0(base, "momentum"));
    put_float(o, KEY("dampening"), num_or_0(base, "dampening"));
    put_int(o, KEY("nesterov"), num_or_0(base, "nesterov") != 0);
    put_float(o, KEY("weight_decay"), num_or_0(base, "weight_decay"));
    put_float(o, KEY("beta1"), num_or_0(base, "beta1"));
    put_float(o, KEY("beta2"), num_or_0(base, "beta2"));
    put_float(o, KEY("eps"), num_or_0(base, "eps"));
    put_float(o, KEY("alpha"), num_or_0(base, "alpha"));
    put_int(o, KEY("sam"), sam);
    put_float(o, KEY("sam_rho"), sam ? opt(r, "rho")->num : 0);
    put_int(o, KEY("sam_adaptive"), sam && opt(r, "adaptive")->num != 0);
}

static void expect_schedule(strbuf *o, const resolved *r)
{
    const char *prefix = "train.schedule";
    char key[128];
    put_int(o, KEY("kind"), LOOKUP(sched_kinds, r->def->name));
    put_int(o, KEY("per_iteration"), is(choice(r, "per"), "iteration"));
    put_int(o, KEY("step"), (long long)num_or_0(r, "step"));
    put_float(o, KEY("gamma"), num_or_0(r, "gamma"));
    int ms = find_opt(r->def, "milestones"), fr = find_opt(r->def, "fractions");
    put_int(o, KEY("nmilestones"), ms < 0 ? 0 : r->v[ms].nlist);
    for (int i = 0; ms >= 0 && i < r->v[ms].nlist; i++) put_int(o, KEY("milestone"), (long long)r->v[ms].list[i]);
    put_int(o, KEY("nfractions"), fr < 0 ? 0 : r->v[fr].nlist);
    for (int i = 0; fr >= 0 && i < r->v[fr].nlist; i++) put_float(o, KEY("fraction"), r->v[fr].list[i]);
    put_int(o, KEY("t_max"), (long long)num_or_0(r, "t_max")); /* 0: the whole run */
    put_float(o, KEY("eta_min"), num_or_0(r, "eta_min"));
}

static void expect_loss(strbuf *o, const resolved *r)
{
    const char *prefix = "train.loss";
    char key[128];
    put_int(o, KEY("kind"), LOOKUP(loss_kinds, r->def->name));
    put_float(o, KEY("label_smoothing"), num_or_0(r, "label_smoothing"));
    put_int(o, KEY("smoothing_other_classes"), is(choice(r, "smoothing_form"), "other_classes"));
    put_int(o, KEY("mse_softmax"), num_or_0(r, "softmax") != 0);
    put_float(o, KEY("margin"), num_or_0(r, "margin"));
    put_int(o, KEY("p"), (long long)num_or_0(r, "p"));
}

static void expect_train(strbuf *o, const resolved *t)
{
    const char *prefix = "train";
    char key[128];
    put_int(o, KEY("epochs"), (long long)opt(t, "epochs")->num);
    put_int(o, KEY("batch"), (long long)opt(t, "batch")->num);
    put_int(o, KEY("seed"), (long long)opt(t, "seed")->num);
    put_int(o, KEY("shuffle"), opt(t, "shuffle")->num != 0);
    put_int(o, KEY("tf32"), is(choice(t, "precision"), "tf32"));
    put_int(o, KEY("threads"), (long long)opt(t, "threads")->num);
    expect_optim(o, opt(t, "optimizer")->call);
    expect_schedule(o, opt(t, "schedule")->call);
    expect_loss(o, opt(t, "loss")->call);
}

static void expect_noise(strbuf *o, const resolved *n)
{
    const char *prefix = "noise";
    char key[128];
    const optval *std = n ? opt(n, "std") : NULL, *clamp = n ? opt(n, "clamp") : NULL;
    put_int(o, KEY("nstd"), std ? std->nlist : 0);
    for (int i = 0; std && i < std->nlist; i++) put_float(o, KEY("std"), std->list[i]);
    put_int(o, KEY("seed"), n ? (long long)opt(n, "seed")->num : 0);
    put_int(o, KEY("before_normalize"), n && is(choice(n, "at"), "before_normalize"));
    put_int(o, KEY("clamp"), clamp && clamp->nlist == 2);
    put_float(o, KEY("lo"), clamp && clamp->nlist == 2 ? clamp->list[0] : 0);
    put_float(o, KEY("hi"), clamp && clamp->nlist == 2 ? clamp->list[1] : 0);
    put_int(o, KEY("same_noise"), n && opt(n, "same_noise")->num != 0);
}

static void expect_program(strbuf *o, const ir_program *p, const emit_info *info)
{
    const ir_model *m = &p->model;
    put_int(o, "abi", NR_ABI_VERSION);
    put_str(o, "model", m->name);
    put_str(o, "source", info->source_name);
    put_str(o, "netc_version", info->netc_version);
    put_str(o, "overrides", info->overrides ? info->overrides : "");
    expect_shape(o, "in", &m->input);
    put_int(o, "classes", m->classes);
    put_int(o, "nlayers", m->count);
    for (int i = 0; i < m->count; i++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "layers[%d]", i);
        expect_layer(o, prefix, &m->nodes[i], init_names[m->init]);
    }
    put_int(o, "params", p->total_params);
    expect_data(o, p);
    expect_augment(o, p);
    expect_train(o, p->train);
    expect_noise(o, p->noise_test);
}

/* ---- comparing and building --------------------------------------------- */

static long fields_compared; /* shown at the end, so a run that compared nothing is seen */

/* Fails once per differing line (the first 10), naming what and the key. */
static int same_lines(const char *what, const char *want, const char *got)
{
    int shown = 0, differ = 0;
    while (*want || *got) {
        fields_compared++;
        size_t lw = strcspn(want, "\n"), lg = strcspn(got, "\n");
        if (lw != lg || memcmp(want, got, lw) != 0) {
            differ = 1;
            if (shown++ < 10) fail("%s: expected '%.*s', the tables hold '%.*s'", what, (int)lw, want, (int)lg, got);
        }
        want += lw + (want[lw] == '\n');
        got += lg + (got[lg] == '\n');
    }
    return !differ;
}

/* Every point of every sweep of the file, lowered on its own (as netc does). */
typedef struct points {
    emit_point *pt;
    int n;
} points;

static int collect_points(frontend *fe, points *ps)
{
    ps->pt = NULL;
    ps->n = 0;
    for (int s = 0; s < fe->prog->nsweeps; s++) {
        const ir_sweep *sw = &fe->prog->sweeps[s];
        for (int k = 0; k < sw->values->nitems; k++) {
            strbuf names, value;
            sb_init(&names);
            sb_init(&value);
            for (int i = 0; i < sw->nnames; i++) sb_printf(&names, "%s%s", i ? ", " : "", sw->names[i]);
            ast_value_print(sw->values->items[k], &value);
            ps->pt = xrealloc(ps->pt, (size_t)(ps->n + 1) * sizeof *ps->pt);
            ps->pt[ps->n++] = (emit_point){ sb_steal(&names), sb_steal(&value), frontend_sweep_point(fe, s, k) };
            if (!ps->pt[ps->n - 1].prog) {
                fail("sweep %s = %s does not compile", ps->pt[ps->n - 1].sweep, ps->pt[ps->n - 1].value);
                return -1;
            }
        }
    }
    return 0;
}

static void free_points(points *ps)
{
    for (int i = 0; i < ps->n; i++) {
        free((char *)ps->pt[i].sweep);
        free((char *)ps->pt[i].value);
        ir_program_free((ir_program *)ps->pt[i].prog);
    }
    free(ps->pt);
}

/* Compiles the C text into a shared object, loads it and runs its main();
 * returns the dlopen handle (captured holds the tables) or NULL. */
static void *load_program(const char *tag, const char *code)
{
    char c_file[1100], so_file[1120], log_file[1120];
    snprintf(c_file, sizeof c_file, "%s", scratch(tag));
    snprintf(so_file, sizeof so_file, "%s.so", c_file);
    snprintf(log_file, sizeof log_file, "%s.log", c_file);
    strcat(c_file, ".c");
    FILE *f = fopen(c_file, "w");
    if (!f || fputs(code, f) < 0 || fclose(f) != 0) {
        fail("cannot write %s", c_file);
        return NULL;
    }
    /* The emitted C must compile cleanly too: no warning with -Wall -Wextra. */
    const char *cc = getenv("CC");
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s -std=c11 -Wall -Wextra -Werror -fPIC -shared -Dmain=netc_tables_main -I'%s' -o '%s' '%s' > '%s' 2>&1",
             cc && *cc ? cc : NETC_CC, NETRT_INCLUDE_DIR, so_file, c_file, log_file);
    if (system(cmd) != 0) {
        size_t log_len;
        char *log = read_file(log_file, &log_len);
        fail("%s: the generated C does not compile: %.600s", tag, log ? log : "(no log)");
        free(log);
        return NULL;
    }
    void *so = dlopen(so_file, RTLD_NOW | RTLD_LOCAL);
    if (!so) {
        fail("%s: dlopen: %s", tag, dlerror());
        return NULL;
    }
    int (*program_main)(int, char **);
    *(void **)&program_main = dlsym(so, "netc_tables_main");
    char arg0[] = "prog", *argv[] = { arg0, NULL };
    captured = NULL;
    if (!program_main || program_main(1, argv) != 0 || !captured) {
        fail("%s: the program's main did not hand its tables to nr_main", tag);
        dlclose(so);
        return NULL;
    }
    return so;
}

/* Builds the file's program and checks its tables and sweep points against
 * the IR. On success *out gets the (still loaded) tables; returns the dlopen
 * handle for the caller's own checks, or NULL. */
static void *check_program(frontend *fe, const char *tag, const emit_info *info, const nr_program **out)
{
    points ps;
    void *so = NULL;
    *out = NULL;
    if (collect_points(fe, &ps) == 0) {
        strbuf code;
        sb_init(&code);
        emit_c(fe->prog, info, ps.pt, ps.n, &code);
        so = load_program(tag, code.data);
        sb_free(&code);
    }
    if (so) {
        const nr_program *p = captured;
        *out = p;
        strbuf want, got;
        sb_init(&want);
        sb_init(&got);
        expect_program(&want, fe->prog, info);
        describe_program(&got, p);
        same_lines(tag, want.data, got.data);
        if (p->nsweep != ps.n || (ps.n == 0) != (p->sweep == NULL))
            fail("%s: %d sweep points in the tables, %d in the file", tag, p->nsweep, ps.n);
        char **texts = xcalloc((size_t)ps.n + 1, sizeof *texts);
        for (int k = 0; k < ps.n && k < p->nsweep; k++) {
            const nr_sweep_point *sp = &p->sweep[k];
            char what[1200];
            snprintf(what, sizeof what, "%s point %d (%s = %s)", tag, k, ps.pt[k].sweep, ps.pt[k].value);
            if (!is(sp->sweep, ps.pt[k].sweep) || !is(sp->value, ps.pt[k].value))
                fail("%s: the tables name it '%s = %s'", what, sp->sweep ? sp->sweep : "NULL",
                     sp->value ? sp->value : "NULL");
            sb_free(&want);
            sb_free(&got);
            expect_program(&want, ps.pt[k].prog, info);
            describe_program(&got, sp->program);
            same_lines(what, want.data, got.data);
            if (sp->program->nsweep != 0) fail("%s: a point's program has sweeps of its own", what);
            texts[k] = sb_steal(&got);
            int first = -1;
            for (int j = 0; j < k && first < 0; j++)
                if (strcmp(texts[j], texts[k]) == 0) first = j;
            if (sp->same_as != first) fail("%s: same_as is %d, the first equal earlier point is %d", what, sp->same_as, first);
            else if (first >= 0 && sp->program != p->sweep[first].program)
                fail("%s: same_as %d but not that point's program", what, first);
        }
        for (int k = 0; k < ps.n; k++) free(texts[k]);
        free(texts);
        sb_free(&want);
        sb_free(&got);
    }
    free_points(&ps);
    return so;
}

/* ---- the models ----------------------------------------------------------- */

/* Read off each .net file by hand: what its tables must say whatever the IR says. */
static const struct model_facts {
    const char *file, *model;
    nr_dataset_kind dataset;
    int classes;
    long long params;         /* LeNet-5: 156 + 2,416 + 48,120 + 10,164 + 850 */
    int epochs, batch;
    nr_optim_kind optim;
    float lr;
    int sam;
    int npoints, ndistinct;   /* sweep points; those not equal to an earlier one */
} facts[] = {
    { "cifar100_cnn10.net", "cifar100_cnn10", NR_DS_CIFAR100, 100, 9721892, 30, 200, NR_SGD, 0.005f, 0, 3, 3 },
    { "cifar100_cnn6.net", "cifar100_cnn6", NR_DS_CIFAR100, 100, 5602980, 30, 200, NR_ADAM, 0.001f, 0, 3, 3 },
    { "cifar_hw02.net", "cifar_hw02", NR_DS_CIFAR10, 10, 78658, 30, 128, NR_ADAM, 0.0005f, 0, 0, 0 },
    { "fc_fashion.net", "fc_fashion", NR_DS_FASHION_MNIST, 10, 407050, 20, 100, NR_ADAM, 0.001f, 0, 0, 0 },
    { "lenet5_classic_mnist.net", "lenet5_classic_mnist", NR_DS_MNIST, 10, 61706, 10, 64, NR_SGD, 0.01f, 0, 2, 2 },
    /* W5: 39 points; the 7 equal to the base case (adam, cross_entropy, tanh, ...) are one program. */
    { "lenet5_fashion.net", "lenet5_fashion", NR_DS_FASHION_MNIST, 10, 61706, 20, 100, NR_ADAM, 0.001f, 0, 39, 33 },
    { "lenet5_mnist.net", "lenet5_mnist", NR_DS_MNIST, 10, 61706, 30, 32, NR_ADAM, 0.001f, 0, 0, 0 },
    { "lenet5_mnist_relu.net", "lenet5_mnist_relu", NR_DS_MNIST, 10, 61706, 20, 32, NR_ADAM, 0.001f, 0, 5, 5 },
    { "lenet5_mnist_sam.net", "lenet5_mnist_sam", NR_DS_MNIST, 10, 61706, 80, 128, NR_SGD, 0.1f, 1, 0, 0 },
    { "lenet5_regularized_mnist.net", "lenet5_regularized_mnist", NR_DS_MNIST, 10, 62158, 10, 32, NR_SGD, 0.01f, 0,
      0, 0 },
    { "mlp_mnist.net", "mlp_mnist", NR_DS_MNIST, 10, 61720, 10, 32, NR_SGD, 0.01f, 0, 3, 3 },
};
#define NFACTS (sizeof facts / sizeof facts[0])

static const char *src_dir(void)
{
    const char *s = getenv("srcdir");
    return s && *s ? s : ".";
}

static void check_facts(const struct model_facts *f, const nr_program *p)
{
    int distinct = 0;
    for (int k = 0; k < p->nsweep; k++) distinct += p->sweep[k].same_as < 0;
    if (strcmp(p->model, f->model) != 0 || p->data.dataset != f->dataset || p->classes != f->classes ||
        p->data.classes != f->classes || p->params != f->params || p->train.epochs != f->epochs ||
        p->train.batch != f->batch || p->train.optim.kind != f->optim || p->train.optim.lr != f->lr ||
        p->train.optim.sam != f->sam || p->nsweep != f->npoints || distinct != f->ndistinct)
        fail("%s: the tables say model %s, dataset %d, %d classes, %lld params, %d epochs, batch %d, optimizer %d "
             "lr %g sam %d, %d sweep points (%d distinct); the file says %s, %d, %d, %lld, %d, %d, %d, %g, %d, %d (%d)",
             f->file, p->model, p->data.dataset, p->classes, p->params, p->train.epochs, p->train.batch,
             p->train.optim.kind, (double)p->train.optim.lr, p->train.optim.sam, p->nsweep, distinct, f->model,
             f->dataset, f->classes, f->params, f->epochs, f->batch, f->optim, (double)f->lr, f->sam, f->npoints,
             f->ndistinct);
    /* The layers chain: each reads what the one before wrote, the last gives the classes. */
    for (int i = 1; i < p->nlayers; i++) {
        const nr_layer *a = &p->layers[i - 1], *b = &p->layers[i];
        long long wrote = (long long)a->out_c * a->out_h * a->out_w, reads = (long long)b->in_c * b->in_h * b->in_w;
        if (wrote != reads) fail("%s: layer %s reads %lld values, %s wrote %lld", f->file, b->name, reads, a->name, wrote);
    }
    const nr_layer *last = p->nlayers > 0 ? &p->layers[p->nlayers - 1] : NULL;
    if (!last || last->out_rank != 1 || last->out_c != f->classes)
        fail("%s: the last layer does not give %d class scores", f->file, f->classes);
}

static void test_every_model(void)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/models", src_dir());
    int checked = 0;
    for (size_t i = 0; i < NFACTS; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, facts[i].file);
        size_t len;
        char *text = read_file(path, &len);
        if (!text) {
            fail("cannot read %s (a model in facts[] that is gone?)", path);
            continue;
        }
        frontend fe;
        frontend_init(&fe);
        /* The name as netc would be given it, so the program's records say where it came from. */
        char source[1200];
        snprintf(source, sizeof source, "models/%s", facts[i].file);
        if (frontend_run(&fe, source, text, len) != 0) {
            fail("%s does not compile", path);
        } else {
            emit_info info = { source, PACKAGE_VERSION, "" };
            const nr_program *p;
            void *so = check_program(&fe, facts[i].file, &info, &p);
            if (so) {
                check_facts(&facts[i], p);
                checked++;
                dlclose(so);
            }
        }
        frontend_free(&fe);
        free(text);
    }
    printf("# %d of %zu models checked, %ld fields compared\n", checked, NFACTS, fields_compared);
    CU_ASSERT_EQUAL(checked, (int)NFACTS);
}

/* A model added to models/ needs its row in facts[]. */
static void test_facts_cover_models(void)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/models", src_dir());
    DIR *d = opendir(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    int nets = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".net") != 0) continue;
        nets++;
        size_t i = 0;
        while (i < NFACTS && strcmp(facts[i].file, e->d_name) != 0) i++;
        if (i == NFACTS) fail("models/%s has no row in facts[] of %s", e->d_name, __FILE__);
    }
    closedir(d);
    CU_ASSERT_EQUAL(nets, (int)NFACTS);
}

/* What models/ does not use: auto_flatten, a folder with a path, every
 * augmentation, reflect padding, layer and model inits, tf32, threads, the
 * other optimizers and schedules (through sweeps), a full noise test. */
static void test_every_feature(void)
{
    static const char text[] =
        "param opt = sgd(lr=0.05, momentum=0.8, nesterov=true, weight_decay=1e-4)\n"
        "param sched = multistep([3, 6], gamma=0.5)\n"
        "sweep opt = [adamw(lr=0.002, beta1=0.8, beta2=0.99, eps=1e-7, weight_decay=0.05),\n"
        "             rmsprop(lr=0.003, alpha=0.9, momentum=0.5), sam(adam(lr=0.001), rho=0.1),\n"
        "             sgd(lr=0.01, momentum=0.9, dampening=0.1)]\n"
        "sweep sched = [cosine(t_max=5, eta_min=1e-5, per=iteration), multistep(fractions=[0.5, 0.75], per=iteration),\n"
        "               step(2, gamma=0.3)]\n"
        "model features {\n"
        "    input = [3, 24, 24]\n"
        "    classes = 7\n"
        "    init = kaiming_normal\n"
        "    auto_flatten = true\n"
        "    c1: conv(5, kernel=3, stride=2, padding=1, padding_mode=reflect, bias=false, init=xavier_normal)\n"
        "    bn: batchnorm2d(eps=1e-3, momentum=0.2, affine=false)\n"
        "    a1: leaky_relu(0.2)\n"
        "    p1: maxpool(3, 2, padding=1)\n"
        "    d1: dropout(0.25)\n"
        "    out: dense(7, bias=false)\n"
        "}\n"
        "data {\n"
        "    dataset = folder\n"
        "    path = \"/data/features\"\n"
        "    validation = 10\n"
        "    resize(24, mode=bicubic)\n"
        "    normalize(mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3])\n"
        "}\n"
        "augment {\n"
        "    copies = 2\n"
        "    rotate(10, interpolation=bilinear, fill=0.5)\n"
        "    hflip(0.3)\n"
        "    crop(24, padding=2)\n"
        "    noise(0.1, clamp=[0, 1], at=after_normalize)\n"
        "}\n"
        "train {\n"
        "    epochs = 7\n"
        "    batch = 16\n"
        "    optimizer = $opt\n"
        "    schedule = $sched\n"
        "    loss = cross_entropy(label_smoothing=0.1, smoothing_form=other_classes)\n"
        "    seed = 42\n"
        "    shuffle = false\n"
        "    precision = tf32\n"
        "    threads = 3\n"
        "}\n"
        "noise_test {\n"
        "    std = [0.05, 0.5]\n"
        "    seed = 9\n"
        "    at = before_normalize\n"
        "    clamp = [0, 1]\n"
        "    same_noise = true\n"
        "}\n";
    frontend fe;
    frontend_init(&fe);
    if (frontend_run(&fe, "features.net", text, strlen(text)) != 0) {
        fail("the feature file does not compile");
        diag_render_all(&fe.dl, stderr, 0);
        frontend_free(&fe);
        return;
    }
    emit_info info = { "features.net", PACKAGE_VERSION, "" };
    const nr_program *p;
    void *so = check_program(&fe, "features", &info, &p);
    if (so) {
        /* A few spelled out. */
        CU_ASSERT_EQUAL_FATAL(p->nlayers, 6);
        CU_ASSERT_EQUAL(p->layers[5].in_rank, 1); /* auto_flatten: 5 x 6 x 6 features */
        CU_ASSERT_EQUAL(p->layers[5].in_c, 180);
        CU_ASSERT_EQUAL(p->layers[0].init, NR_INIT_XAVIER_NORMAL);
        CU_ASSERT_EQUAL(p->layers[5].init, NR_INIT_KAIMING_NORMAL);
        CU_ASSERT_EQUAL(p->train.optim.nesterov, 1);
        CU_ASSERT_EQUAL(p->augment.nops, 4);
        CU_ASSERT_EQUAL(p->noise.nstd, 2);
        CU_ASSERT_EQUAL(p->nsweep, 7);
        dlclose(so);
    }
    frontend_free(&fe);
}

/* Quotes, backslashes, newlines, comment ends, trigraphs and format
 * directives in the file's name, the -D text, a data path and sweep values
 * reach the tables as the very bytes written. */
static void test_hostile_strings(void)
{
    static const char text[] =
        "param tag = \"\\\"); system(\\\"touch PWNED\\\"); (\\\"*/ ?\?/ %n %s \\\\\"\n"
        "sweep tag = [\"*/ #error injected /*\", \"\\n#error injected\\n\", \"\\\"); system(\\\"touch PWNED\\\"); (\\\"*/ ?\?/ %n %s \\\\\"]\n"
        "model m {\n"
        "    input = [1, 28, 28]\n"
        "    classes = 10\n"
        "    flat: flatten\n"
        "    out: dense(10)\n"
        "}\n"
        "data {\n"
        "    dataset = folder\n"
        "    path = \"/nonexistent/\\\"); system(\\\"touch PWNED\\\"); /* ?\?= \\\\ %s\\n\"\n"
        "}\n";
    const char *source = "we\"ird \\ dir/a\"b\\c?\?=*%n%s$(touch PWNED)\nx.net";
    const char *overrides = "-D tag=\"x\\\"y\" */ ?\?= %n\n#error";
    frontend fe;
    frontend_init(&fe);
    CU_ASSERT_EQUAL(frontend_define(&fe, "tag=\"x\\\"y\""), 0);
    if (frontend_run(&fe, source, text, strlen(text)) != 0) {
        fail("the hostile file does not compile");
        frontend_free(&fe);
        return;
    }
    emit_info info = { source, "0.0-\"\\?\?=", overrides };
    const nr_program *p;
    void *so = check_program(&fe, "hostile", &info, &p);
    if (so) {
        /* Spelled out here too, not only taken from the IR. */
        CU_ASSERT(is(p->source, source));
        CU_ASSERT(is(p->overrides, overrides));
        CU_ASSERT(is(p->netc_version, "0.0-\"\\?\?="));
        CU_ASSERT(is(p->data.path, "/nonexistent/\"); system(\"touch PWNED\"); /* ?\?= \\ %s\n"));
        CU_ASSERT_EQUAL_FATAL(p->nsweep, 3);
        CU_ASSERT(is(p->sweep[0].value, "\"*/ #error injected /*\""));
        CU_ASSERT(is(p->sweep[1].value, "\"\\n#error injected\\n\""));
        /* The values differ but nothing of the model does: one program. */
        CU_ASSERT_EQUAL(p->sweep[1].same_as, 0);
        CU_ASSERT_EQUAL(p->sweep[2].same_as, 0);
        dlclose(so);
    }
    frontend_free(&fe);
}

int main(void)
{
    if (scratch_init("tables") != 0) return 1;
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_TestInfo tests[] = { { "every model's tables say what its .net file says", test_every_model },
                            { "facts[] has a row for every model", test_facts_cover_models },
                            { "every feature of the language", test_every_feature },
                            { "hostile strings reach the tables as written", test_hostile_strings },
                            CU_TEST_INFO_NULL };
    if (tap_add_suite("tables", tests)) {
        CU_cleanup_registry();
        return 1;
    }
    int failed = tap_run_all();
    scratch_remove_tree(scratch_root);
    return failed;
}
