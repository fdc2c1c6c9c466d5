/* The C emitter: checked IR -> one C translation unit holding the model's
 * tables (runtime/netrt.h) and a main() that hands them to libnetrt.
 *
 * Every piece of text that comes from the .net file (names, paths) lands in
 * the output only inside string literals written by c_string(), which
 * escapes every byte that is not plainly safe: no model can inject code
 * into the program it compiles to. */
#include "emit_c.h"
#include "util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A C string literal for s: printable ASCII except " \ ? is kept, the rest
 * becomes a three-digit octal escape (never ambiguous with what follows;
 * '?' is escaped so no trigraph can form). */
static void c_string(strbuf *out, const char *s)
{
    if (!s) {
        sb_puts(out, "NULL");
        return;
    }
    sb_putc(out, '"');
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c >= 0x20 && *c < 0x7f && *c != '"' && *c != '\\' && *c != '?')
            sb_putc(out, (char)*c);
        else
            sb_printf(out, "\\%03o", *c);
    }
    sb_putc(out, '"');
}

/* The shortest decimal that reads back as exactly v, as the .net file
 * most likely wrote it (0.001, not 0.00100000005). */
static void c_float(strbuf *out, double v)
{
    char buf[40];
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) break;
    }
    sb_puts(out, buf);
}

/* "{ a, b, c }": n values of a list option; a list of one value stands
 * for every one. */
static void c_float_array(strbuf *out, const optval *o, int n)
{
    sb_putc(out, '{');
    for (int j = 0; j < n; j++) {
        sb_puts(out, j ? ", " : " ");
        c_float(out, o->list[o->nlist == 1 ? 0 : j]);
    }
    sb_puts(out, " }");
}

/* The runtime's names of its layer kinds, from the list it declares them with. */
#define KIND_NAME(k) "NR_" #k,
static const char *const runtime_kind_names[NR_KIND_COUNT] = { NR_LAYER_KINDS(KIND_NAME) };
#undef KIND_NAME

static const char *const init_enums[] = {
    [INIT_PYTORCH] = "NR_INIT_PYTORCH", [INIT_XAVIER_UNIFORM] = "NR_INIT_XAVIER_UNIFORM",
    [INIT_XAVIER_NORMAL] = "NR_INIT_XAVIER_NORMAL", [INIT_KAIMING_UNIFORM] = "NR_INIT_KAIMING_UNIFORM",
    [INIT_KAIMING_NORMAL] = "NR_INIT_KAIMING_NORMAL",
};

/* rank, c, h, w of a shape as the runtime describes it (flat: c = F). */
static void emit_shape(strbuf *out, const char *prefix, const shape *s)
{
    long long h = s->rank == 3 ? s->d[1] : 1, w = s->rank == 3 ? s->d[2] : 1;
    sb_printf(out, ".%s_rank = %d, .%s_c = %lld, .%s_h = %lld, .%s_w = %lld", prefix, s->rank, prefix, s->d[0],
              prefix, h, prefix, w);
}

static void emit_layer(strbuf *out, const ir_node *n, int model_init)
{
    const resolved *o = n->op;
    layer_id k = layer_kind_of(o);
    sb_puts(out, "    {\n        .name = ");
    c_string(out, n->name);
    sb_printf(out, ", .kind = %s,\n        ", runtime_kind_names[layer_table[k].runtime_kind]);
    /* A dense layer under auto_flatten reads its image input as flat features. */
    shape in = n->in;
    if (k == L_DENSE && in.rank == 3) in = (shape){ 1, { shape_elems(&n->in), 0, 0 } };
    emit_shape(out, "in", &in);
    sb_puts(out, ",\n        ");
    emit_shape(out, "out", &n->out);
    switch (k) {
    case L_CONV: {
        int init = ropt_int(o, CONV_INIT) == INIT_MODEL ? model_init : ropt_int(o, CONV_INIT);
        sb_printf(out, ",\n        .kernel = %d, .stride = %d, .padding = %d, .reflect = %d, .bias = %d, .init = %s",
                  ropt_int(o, CONV_KERNEL), ropt_int(o, CONV_STRIDE), ropt_int(o, CONV_PADDING),
                  ropt_int(o, CONV_PADDING_MODE) == PAD_REFLECT, ropt_int(o, CONV_BIAS) != 0, init_enums[init]);
        break;
    }
    case L_DENSE: {
        int init = ropt_int(o, DENSE_INIT) == INIT_MODEL ? model_init : ropt_int(o, DENSE_INIT);
        sb_printf(out, ",\n        .bias = %d, .init = %s", ropt_int(o, DENSE_BIAS) != 0, init_enums[init]);
        break;
    }
    case L_MAXPOOL:
    case L_AVGPOOL: {
        int kernel = ropt_int(o, POOL_KERNEL);
        int stride = ropt_given(o, POOL_STRIDE) ? ropt_int(o, POOL_STRIDE) : kernel;
        sb_printf(out, ",\n        .kernel = %d, .stride = %d, .padding = %d", kernel, stride,
                  ropt_int(o, POOL_PADDING));
        break;
    }
    case L_BATCHNORM:
    case L_BATCHNORM1D:
    case L_BATCHNORM2D:
        sb_puts(out, ",\n        .eps = ");
        c_float(out, ropt_num(o, BN_EPS));
        sb_puts(out, ", .momentum = ");
        c_float(out, ropt_num(o, BN_MOMENTUM));
        sb_printf(out, ", .affine = %d", ropt_int(o, BN_AFFINE) != 0);
        break;
    case L_DROPOUT:
        sb_puts(out, ",\n        .p = ");
        c_float(out, ropt_num(o, DROPOUT_P));
        break;
    case L_LEAKY_RELU:
        sb_puts(out, ",\n        .slope = ");
        c_float(out, ropt_num(o, LEAKY_SLOPE));
        break;
    default:
        break;
    }
    sb_puts(out, ",\n    },\n");
}

static void emit_float_array(strbuf *out, const char *name, const char *sfx, const double *v, int n)
{
    sb_printf(out, "static const float %s%s[] = {", name, sfx);
    for (int i = 0; i < n; i++) {
        sb_puts(out, i ? ", " : " ");
        c_float(out, v[i]);
    }
    sb_puts(out, " };\n");
}

static void emit_int_array(strbuf *out, const char *name, const char *sfx, const double *v, int n)
{
    sb_printf(out, "static const int %s%s[] = {", name, sfx);
    for (int i = 0; i < n; i++) sb_printf(out, "%s%d", i ? ", " : " ", (int)v[i]);
    sb_puts(out, " };\n");
}

static void emit_aug_op(strbuf *out, const resolved *op)
{
    switch ((augment_op_id)op->index) {
    case A_ROTATE:
        sb_puts(out, "    { .kind = NR_AUG_ROTATE, .degrees = ");
        c_float(out, ropt_num(op, ROT_DEGREES));
        sb_printf(out, ", .bilinear = %d, .fill = ", ropt_int(op, ROT_INTERPOLATION) == 1);
        c_float(out, ropt_num(op, ROT_FILL));
        break;
    case A_HFLIP:
        sb_puts(out, "    { .kind = NR_AUG_HFLIP, .p = ");
        c_float(out, ropt_num(op, HFLIP_P));
        break;
    case A_CROP:
        sb_printf(out, "    { .kind = NR_AUG_CROP, .size = %d, .padding = %d", ropt_int(op, CROP_SIZE),
                  ropt_int(op, CROP_PADDING));
        break;
    case A_NOISE:
        sb_puts(out, "    { .kind = NR_AUG_NOISE, .std = ");
        c_float(out, ropt_num(op, ANOISE_STD));
        if (op->v[ANOISE_CLAMP].nlist == 2) {
            sb_puts(out, ", .clamp = 1, .lo = ");
            c_float(out, op->v[ANOISE_CLAMP].list[0]);
            sb_puts(out, ", .hi = ");
            c_float(out, op->v[ANOISE_CLAMP].list[1]);
        }
        sb_printf(out, ", .after_normalize = %d", ropt_int(op, ANOISE_AT) == 1);
        break;
    }
    sb_puts(out, " },\n");
}

/* Arrays the program struct points to: schedule milestones, augmentation
 * ops, noise levels. */
static void emit_arrays(strbuf *out, const ir_program *p, const char *sfx)
{
    const resolved *sched = p->train->v[TRAIN_SCHEDULE].call;
    if (sched && sched->index == S_MULTISTEP) {
        const optval *ms = &sched->v[MS_MILESTONES], *fr = &sched->v[MS_FRACTIONS];
        if (ms->nlist) emit_int_array(out, "milestones", sfx, ms->list, ms->nlist);
        if (fr->nlist) emit_float_array(out, "fractions", sfx, fr->list, fr->nlist);
    }
    if (p->naug_ops) {
        sb_printf(out, "static const nr_aug_op augment_ops%s[] = {\n", sfx);
        for (int i = 0; i < p->naug_ops; i++) emit_aug_op(out, p->aug_ops[i]);
        sb_puts(out, "};\n");
    }
    if (p->noise_test) {
        const optval *std = &p->noise_test->v[NT_STD];
        emit_float_array(out, "noise_std", sfx, std->list, std->nlist);
    }
}

/* The image size the data has once loaded and resized. */
static void data_dims(const ir_program *p, int *c, int *h, int *w)
{
    const dataset_info *ds = ir_dataset(p);
    const shape *in = &p->model.input;
    if (ds) {
        *c = ds->channels;
        *h = ds->height;
        *w = ds->width;
    } else {
        *c = (int)in->d[0];
        *h = in->rank == 3 ? (int)in->d[1] : 1;
        *w = in->rank == 3 ? (int)in->d[2] : 1;
    }
    for (int i = 0; i < p->ndata_ops; i++)
        if (p->data_ops[i]->index == D_RESIZE) *h = *w = ropt_int(p->data_ops[i], RESIZE_SIZE);
}

static void emit_data(strbuf *out, const ir_program *p)
{
    static const char *const ds_enums[] = { "NR_DS_MNIST", "NR_DS_FASHION_MNIST", "NR_DS_CIFAR10",
                                            "NR_DS_CIFAR100", "NR_DS_FOLDER" };
    const resolved *d = p->data;
    int c, h, w;
    data_dims(p, &c, &h, &w);
    sb_printf(out, "    .data = {\n        .dataset = %s, .name = ", ds_enums[ropt_int(d, DATA_DATASET)]);
    c_string(out, table_def(&block_settings, B_DATA)->opts[DATA_DATASET].choices[ropt_int(d, DATA_DATASET)]);
    sb_puts(out, ", .path = ");
    c_string(out, d->v[DATA_PATH].given ? d->v[DATA_PATH].str : NULL);
    sb_printf(out, ",\n        .validation = %d, .channels = %d, .height = %d, .width = %d, .classes = %d",
              ropt_int(d, DATA_VALIDATION), c, h, w, p->model.classes);
    for (int i = 0; i < p->ndata_ops; i++) {
        const resolved *op = p->data_ops[i];
        if (op->index == D_RESIZE) {
            sb_printf(out, ",\n        .resize = %d, .resize_bicubic = %d", ropt_int(op, RESIZE_SIZE),
                      ropt_int(op, RESIZE_MODE) == 1);
        } else {
            /* The runtime reads both lists with one count: one mean for
             * every channel and a std per channel is written out as
             * per-channel lists. */
            const optval *mean = &op->v[NORM_MEAN], *std = &op->v[NORM_STD];
            int n = mean->nlist > std->nlist ? mean->nlist : std->nlist;
            sb_printf(out, ",\n        .nnorm = %d, .mean = ", n);
            c_float_array(out, mean, n);
            sb_puts(out, ", .std = ");
            c_float_array(out, std, n);
        }
    }
    sb_puts(out, ",\n    },\n");
}

static void emit_optimizer(strbuf *out, const resolved *o)
{
    int sam = o->index == O_SAM;
    const resolved *base = sam ? o->v[SAM_BASE].call : o;
    static const char *const enums[] = { "NR_SGD", "NR_ADAM", "NR_ADAMW", "NR_RMSPROP" };
    sb_printf(out, "        .optim = {\n            .kind = %s", enums[base->index]);
    const call_def *def = base->def;
    for (int i = 0; i < def->nopts; i++) {
        const char *name = def->opts[i].name;
        if (def->opts[i].type == OPT_BOOL) sb_printf(out, ", .%s = %d", name, ropt_int(base, i) != 0);
        else {
            sb_printf(out, ", .%s = ", name);
            c_float(out, ropt_num(base, i));
        }
    }
    if (sam) {
        sb_puts(out, ",\n            .sam = 1, .sam_rho = ");
        c_float(out, ropt_num(o, SAM_RHO));
        sb_printf(out, ", .sam_adaptive = %d", ropt_int(o, SAM_ADAPTIVE) != 0);
    }
    sb_puts(out, ",\n        },\n");
}

static void emit_schedule(strbuf *out, const resolved *s, const char *sfx)
{
    static const char *const enums[] = { "NR_SCHED_CONSTANT", "NR_SCHED_STEP", "NR_SCHED_MULTISTEP",
                                         "NR_SCHED_COSINE" };
    sb_printf(out, "        .schedule = { .kind = %s", enums[s->index]);
    switch ((schedule_id)s->index) {
    case S_CONSTANT:
        break;
    case S_STEP:
        sb_printf(out, ", .step = %d, .gamma = ", ropt_int(s, STEP_STEP));
        c_float(out, ropt_num(s, STEP_GAMMA));
        sb_printf(out, ", .per_iteration = %d", ropt_int(s, STEP_PER) == PER_ITERATION);
        break;
    case S_MULTISTEP:
        if (s->v[MS_MILESTONES].nlist)
            sb_printf(out, ", .milestones = milestones%s, .nmilestones = %d", sfx, s->v[MS_MILESTONES].nlist);
        if (s->v[MS_FRACTIONS].nlist)
            sb_printf(out, ", .fractions = fractions%s, .nfractions = %d", sfx, s->v[MS_FRACTIONS].nlist);
        sb_puts(out, ", .gamma = ");
        c_float(out, ropt_num(s, MS_GAMMA));
        sb_printf(out, ", .per_iteration = %d", ropt_int(s, MS_PER) == PER_ITERATION);
        break;
    case S_COSINE:
        sb_printf(out, ", .t_max = %d, .eta_min = ", ropt_given(s, COS_T_MAX) ? ropt_int(s, COS_T_MAX) : 0);
        c_float(out, ropt_num(s, COS_ETA_MIN));
        sb_printf(out, ", .per_iteration = %d", ropt_int(s, COS_PER) == PER_ITERATION);
        break;
    }
    sb_puts(out, " },\n");
}

static void emit_loss(strbuf *out, const resolved *l)
{
    static const char *const enums[] = { "NR_LOSS_CROSS_ENTROPY", "NR_LOSS_NLL", "NR_LOSS_MSE",
                                         "NR_LOSS_MULTI_MARGIN" };
    sb_printf(out, "        .loss = { .kind = %s", enums[l->index]);
    switch ((loss_id)l->index) {
    case LOSS_CROSS_ENTROPY:
        sb_puts(out, ", .label_smoothing = ");
        c_float(out, ropt_num(l, CE_LABEL_SMOOTHING));
        sb_printf(out, ", .smoothing_other_classes = %d", ropt_int(l, CE_SMOOTHING_FORM) == SMOOTH_OTHER_CLASSES);
        break;
    case LOSS_MSE:
        sb_printf(out, ", .mse_softmax = %d", ropt_int(l, MSE_SOFTMAX) != 0);
        break;
    case LOSS_MULTI_MARGIN:
        sb_puts(out, ", .margin = ");
        c_float(out, ropt_num(l, MM_MARGIN));
        sb_printf(out, ", .p = %d", ropt_int(l, MM_P));
        break;
    case LOSS_NLL:
        break;
    }
    sb_puts(out, " },\n");
}

static void emit_train(strbuf *out, const ir_program *p, const char *sfx)
{
    const resolved *t = p->train;
    sb_printf(out, "    .train = {\n        .epochs = %d, .batch = %d, .seed = %uu, .shuffle = %d, .tf32 = %d, "
                   ".threads = %d,\n",
              ropt_int(t, TRAIN_EPOCHS), ropt_int(t, TRAIN_BATCH), (unsigned)ropt_num(t, TRAIN_SEED),
              ropt_int(t, TRAIN_SHUFFLE) != 0, ropt_int(t, TRAIN_PRECISION) == 1, ropt_int(t, TRAIN_THREADS));
    emit_optimizer(out, t->v[TRAIN_OPTIMIZER].call);
    emit_schedule(out, t->v[TRAIN_SCHEDULE].call, sfx);
    emit_loss(out, t->v[TRAIN_LOSS].call);
    sb_puts(out, "    },\n");
}

/* The noise test's normalize, both lists written out to the same count (one
 * value stands for every channel). */
static void emit_noise_normalize(strbuf *out, const resolved *op)
{
    const optval *mean = &op->v[NORM_MEAN], *std = &op->v[NORM_STD];
    int n = mean->nlist > std->nlist ? mean->nlist : std->nlist;
    sb_printf(out, ",\n        .nnorm = %d, .norm_mean = ", n);
    c_float_array(out, mean, n);
    sb_puts(out, ", .norm_std = ");
    c_float_array(out, std, n);
}

static void emit_noise(strbuf *out, const ir_program *p, const char *sfx)
{
    const resolved *n = p->noise_test;
    if (!n) return;
    sb_printf(out, "    .noise = {\n        .std = noise_std%s, .nstd = %d, .seed = %uu, .before_normalize = %d, "
                   ".same_noise = %d",
              sfx, n->v[NT_STD].nlist, (unsigned)ropt_num(n, NT_SEED), ropt_int(n, NT_AT) == NT_BEFORE_NORMALIZE,
              ropt_int(n, NT_SAME_NOISE) != 0);
    if (n->v[NT_CLAMP].nlist == 2) {
        sb_puts(out, ",\n        .clamp = 1, .lo = ");
        c_float(out, n->v[NT_CLAMP].list[0]);
        sb_puts(out, ", .hi = ");
        c_float(out, n->v[NT_CLAMP].list[1]);
    }
    if (p->noise_normalize) emit_noise_normalize(out, p->noise_normalize);
    sb_puts(out, ",\n    },\n");
}

static void emit_layers(strbuf *out, const ir_program *p, const char *sfx)
{
    sb_printf(out, "static const nr_layer layers%s[] = {\n", sfx);
    for (int i = 0; i < p->model.count; i++) emit_layer(out, &p->model.nodes[i], p->model.init);
    sb_puts(out, "};\n");
}

/* The tables of one program but its layers (layers_name, emitted apart);
 * every other name ends in sfx ("" for the base model, "_p3" for sweep
 * point 3). */
static void emit_program(strbuf *out, const ir_program *p, const emit_info *info, const char *sfx,
                         const char *layers_name, int with_sweep)
{
    const ir_model *m = &p->model;
    emit_arrays(out, p, sfx);
    sb_printf(out, "static const nr_program program%s = {\n    .abi = NR_ABI_VERSION,\n    .model = ", sfx);
    c_string(out, m->name);
    sb_puts(out, ",\n    .source = ");
    c_string(out, info->source_name);
    sb_puts(out, ",\n    .netc_version = ");
    c_string(out, info->netc_version);
    sb_puts(out, ",\n    .overrides = ");
    c_string(out, info->overrides ? info->overrides : "");
    sb_puts(out, ",\n    ");
    emit_shape(out, "in", &m->input);
    sb_printf(out, ",\n    .classes = %d,\n    .layers = %s, .nlayers = %d, .params = %lld,\n", m->classes,
              layers_name, m->count, p->total_params);
    emit_data(out, p);
    sb_printf(out, "    .augment = { .copies = %d, .ops = %s%s, .nops = %d },\n", ropt_int(p->augment, AUG_COPIES),
              p->naug_ops ? "augment_ops" : "NULL", p->naug_ops ? sfx : "", p->naug_ops);
    emit_train(out, p, sfx);
    emit_noise(out, p, sfx);
    if (with_sweep) sb_puts(out, "    .sweep = sweep_points, .nsweep = sizeof sweep_points / sizeof sweep_points[0],\n");
    sb_puts(out, "};\n");
}

/* Index of the first of texts[0..k) equal to texts[k], or -1: sweep points
 * (and layer tables) that are the same are emitted, and trained, once. */
static int first_equal(char *const *texts, int k)
{
    for (int j = 0; j < k; j++)
        if (strcmp(texts[j], texts[k]) == 0) return j;
    return -1;
}

static char *text_of_program(const ir_program *p, const emit_info *info)
{
    strbuf t;
    sb_init(&t);
    emit_layers(&t, p, "");
    emit_program(&t, p, info, "", "layers", 0);
    return sb_steal(&t);
}

static char *text_of_layers(const ir_program *p)
{
    strbuf t;
    sb_init(&t);
    emit_layers(&t, p, "");
    return sb_steal(&t);
}

/* Entry 0 of the arrays is the base model, entry k + 1 sweep point k. */
void emit_c(const ir_program *p, const emit_info *info, const emit_point *points, int npoints, strbuf *out)
{
    sb_puts(out, "/* Generated by netc from a model description: the model's tables for\n"
                 " * libnetrt. Do not edit; change the .net file and run netc again. */\n"
                 "#include \"netrt.h\"\n#include <stddef.h>\n\n");
    int n = npoints + 1;
    char **programs = xcalloc((size_t)n, sizeof *programs), **layers = xcalloc((size_t)n, sizeof *layers);
    for (int k = 0; k < n; k++) {
        const ir_program *pk = k ? points[k - 1].prog : p;
        programs[k] = text_of_program(pk, info);
        layers[k] = text_of_layers(pk);
    }
    emit_layers(out, p, "");
    for (int k = 1; k < n; k++) {
        if (first_equal(programs + 1, k - 1) >= 0) continue;
        char sfx[32], lname[48];
        snprintf(sfx, sizeof sfx, "_p%d", k - 1);
        int same_layers = first_equal(layers, k);
        if (same_layers < 0) {
            snprintf(lname, sizeof lname, "layers%s", sfx);
        } else if (same_layers == 0) {
            snprintf(lname, sizeof lname, "layers");
        } else {
            snprintf(lname, sizeof lname, "layers_p%d", same_layers - 1);
        }
        /* The point's name and value go only into sweep_points' string
         * literals: a value may hold any text, never safe in a comment. */
        sb_printf(out, "\n/* sweep point %d (see sweep_points) */\n", k - 1);
        if (same_layers < 0) emit_layers(out, points[k - 1].prog, sfx);
        emit_program(out, points[k - 1].prog, info, sfx, lname, 0);
    }
    if (npoints) {
        sb_puts(out, "\nstatic const nr_sweep_point sweep_points[] = {\n");
        for (int k = 0; k < npoints; k++) {
            int same = first_equal(programs + 1, k);
            sb_puts(out, "    { ");
            c_string(out, points[k].sweep);
            sb_puts(out, ", ");
            c_string(out, points[k].value);
            sb_printf(out, ", &program_p%d, %d },\n", same >= 0 ? same : k, same);
        }
        sb_puts(out, "};\n");
    }
    for (int k = 0; k < n; k++) {
        free(programs[k]);
        free(layers[k]);
    }
    free(programs);
    free(layers);
    sb_puts(out, "\n/* the model as written (every parameter at its base value) */\n");
    emit_program(out, p, info, "", "layers", npoints > 0);
    sb_puts(out, "\nint main(int argc, char **argv)\n{\n    return nr_main(&program, argc, argv);\n}\n");
}

int emit_c_check(const ir_program *p, diag_list *dl)
{
    if (!p->has_data || !p->data->v[DATA_DATASET].given) {
        diag *d = diag_add(dl, DIAG_ERROR, p->model.where,
                           "model '%s' has no data to train on", p->model.name);
        diag_hint(d, "add a data block, e.g. 'data { dataset = fashion_mnist }'");
        return -1;
    }
    if (ropt_int(p->data, DATA_DATASET) == DS_FOLDER && p->model.input.rank != 3) {
        diag *d = diag_add(dl, DIAG_ERROR, p->model.input_loc,
                           "a folder dataset needs the model's input as [C, H, W] to know the image size");
        diag_hint(d, "write input = [3, 32, 32] (channels, height, width) and flatten inside the model");
        return -1;
    }
    return 0;
}
