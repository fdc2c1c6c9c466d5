/* The shape pass: infers every layer's output shape, counts parameters and
 * multiply-adds, checks documented shapes (`expect`), checks the model
 * against its data and loss, and warns about known mistakes. */
#include "sema.h"
#include "util.h"
#include <stdio.h>
#include <string.h>

const dataset_info *ir_dataset(const ir_program *p)
{
    if (!p->has_data || !p->data->v[DATA_DATASET].given) return NULL;
    int id = ropt_int(p->data, DATA_DATASET);
    return id == DS_FOLDER ? NULL : &datasets[id];
}

/* The image size the model sees: the dataset's, after any resize. */
static void data_shape(const ir_program *p, const dataset_info *ds, shape *out)
{
    out->rank = 3;
    out->d[0] = ds->channels;
    out->d[1] = ds->height;
    out->d[2] = ds->width;
    for (int i = 0; i < p->ndata_ops; i++)
        if (p->data_ops[i]->index == D_RESIZE)
            out->d[1] = out->d[2] = ropt_int(p->data_ops[i], RESIZE_SIZE);
}

static void check_input(ir_program *p, diag_list *dl)
{
    ir_model *m = &p->model;
    const dataset_info *ds = ir_dataset(p);
    shape want = { 0, { 0, 0, 0 } };
    if (ds) data_shape(p, ds, &want);
    int batch = ropt_int(p->train, TRAIN_BATCH);
    if (m->input_batch && m->input_batch != batch) {
        diag *d = diag_add(dl, DIAG_WARNING, m->input_batch_loc,
                           "input's batch dimension is %lld, but train.batch is %d", m->input_batch, batch);
        diag_hint(d, "write N for 'any batch size'");
    }
    if (!m->input_given) {
        if (ds) { m->input = want; return; }
        diag *d = diag_add(dl, DIAG_ERROR, m->where, "model '%s' does not say its input shape", m->name);
        diag_hint(d, "add 'input = [C, H, W]' to the model, or a data block naming a known dataset");
        return;
    }
    if (!ds) return;
    char a[64], b[64];
    shape_format(&m->input, a, sizeof a);
    shape_format(&want, b, sizeof b);
    if (m->input.rank == 1) {
        if (m->input.d[0] != shape_elems(&want)) {
            diag *d = diag_add(dl, DIAG_ERROR, m->input_loc, "input %s does not match %s images %s", a, ds->name, b);
            diag_hint(d, "a flat input takes C*H*W = %lld features", shape_elems(&want));
        }
        return;
    }
    if (m->input.d[0] != want.d[0]) {
        diag *d = diag_add(dl, DIAG_ERROR, m->input_loc, "input %s has %lld channel%s, but %s images have %lld",
                           a, m->input.d[0], m->input.d[0] == 1 ? "" : "s", ds->name, want.d[0]);
        diag_hint(d, "the input shape of this data is %s", b);
    } else if (m->input.d[1] != want.d[1] || m->input.d[2] != want.d[2]) {
        diag *d = diag_add(dl, DIAG_ERROR, m->input_loc, "input %s does not match %s images %s", a, ds->name, b);
        diag_hint(d, "resize the data in the data block, e.g. resize(%lld), or fix the input", m->input.d[1]);
    }
}

static void check_classes(ir_program *p, diag_list *dl)
{
    ir_model *m = &p->model;
    const dataset_info *ds = ir_dataset(p);
    if (m->classes == 0) {
        if (ds) { m->classes = ds->classes; return; }
        diag *d = diag_add(dl, DIAG_ERROR, m->where, "model '%s' does not say how many classes it has", m->name);
        diag_hint(d, "add 'classes = 10' to the model, or a data block naming a known dataset");
        return;
    }
    if (ds && m->classes != ds->classes)
        diag_add(dl, DIAG_ERROR, m->where, "model '%s' has classes = %d, but %s has %d classes",
                 m->name, m->classes, ds->name, ds->classes);
}

static void format_expect(const ir_node *n, char *buf, size_t len)
{
    strbuf sb;
    sb_init(&sb);
    if (n->expect_batch) sb_printf(&sb, "[%lld", n->expect_batch);
    else sb_puts(&sb, "[N");
    for (int i = 0; i < n->expect_rank; i++) sb_printf(&sb, ", %lld", n->expect_dims[i]);
    sb_putc(&sb, ']');
    snprintf(buf, len, "%s", sb.data);
    sb_free(&sb);
}

/* Compares a node's output with its `expect`. */
static void check_expect(const ir_program *p, const ir_node *n, diag_list *dl)
{
    if (!n->has_expect) return;
    int same = n->expect_rank == n->out.rank;
    for (int i = 0; same && i < n->out.rank; i++) same = n->expect_dims[i] == n->out.d[i];
    if (!same) {
        char got[64], want[80];
        shape_format(&n->out, got, sizeof got);
        format_expect(n, want, sizeof want);
        diag *d = diag_add(dl, DIAG_ERROR, n->expect_loc, "'%s' outputs %s, but its expect says %s",
                           n->name, got, want);
        if (n->expect_rank != n->out.rank)
            diag_hint(d, "expect has %d dimensions after the batch, the output has %d", n->expect_rank, n->out.rank);
        else
            diag_hint(d, "the documented shape is wrong, or a layer before this one is");
        return;
    }
    int batch = ropt_int(p->train, TRAIN_BATCH);
    if (n->expect_batch && n->expect_batch != batch) {
        diag *d = diag_add(dl, DIAG_WARNING, n->expect_batch_loc,
                           "expect's batch dimension is %lld, but train.batch is %d", n->expect_batch, batch);
        diag_hint(d, "write N for 'any batch size'");
    }
}

static void check_output(const ir_program *p, diag_list *dl)
{
    const ir_model *m = &p->model;
    if (m->count == 0 || m->classes == 0) return;
    const ir_node *last = &m->nodes[m->count - 1];
    if (last->out.rank == 1 && last->out.d[0] == m->classes) return;
    char got[64];
    shape_format(&last->out, got, sizeof got);
    diag *d = diag_add(dl, DIAG_ERROR, last->where, "the model outputs %s, but it has %d classes", got, m->classes);
    if (last->out.rank == 3) diag_hint(d, "end the model with flatten and dense(%d)", m->classes);
    else diag_hint(d, "the last layer should produce %d features, e.g. dense(%d)", m->classes, m->classes);
}

static const ir_node *last_layer(const ir_model *m)
{
    return m->count ? &m->nodes[m->count - 1] : NULL;
}

static void lint_loss(const ir_program *p, diag_list *dl)
{
    const resolved *loss = p->train->v[TRAIN_LOSS].call;
    const ir_node *last = last_layer(&p->model);
    if (!loss || !last) return;
    layer_id k = layer_kind_of(last->op);
    loc where = p->train->v[TRAIN_LOSS].given ? p->train->v[TRAIN_LOSS].where : last->where;
    if (loss->index == LOSS_CROSS_ENTROPY && k == L_SOFTMAX) {
        diag *d = diag_add(dl, DIAG_WARNING, last->where,
                           "'%s' applies softmax before cross_entropy, which applies its own", last->name);
        diag_hint(d, "remove the softmax layer: cross_entropy takes logits (a double softmax flattens the gradients)");
    } else if (loss->index == LOSS_CROSS_ENTROPY && k == L_LOG_SOFTMAX) {
        diag *d = diag_add(dl, DIAG_WARNING, last->where,
                           "'%s' applies log_softmax before cross_entropy, which applies its own", last->name);
        diag_hint(d, "use loss = nll after log_softmax, or remove the log_softmax layer");
    } else if (loss->index == LOSS_NLL && k != L_LOG_SOFTMAX) {
        diag *d = diag_add(dl, DIAG_WARNING, where, "nll expects log-probabilities, but the model ends with %s",
                           last->op->def->name);
        diag_hint(d, "end the model with log_softmax, or use loss = cross_entropy on logits");
    } else if (loss->index == LOSS_MSE && ropt_num(loss, MSE_SOFTMAX) && k == L_SOFTMAX) {
        diag *d = diag_add(dl, DIAG_WARNING, last->where, "'%s' applies softmax and mse applies another", last->name);
        diag_hint(d, "remove the softmax layer, or write mse(softmax=false)");
    }
}

static void lint_bias_before_batchnorm(const ir_model *m, diag_list *dl)
{
    for (int i = 0; i + 1 < m->count; i++) {
        const ir_node *a = &m->nodes[i], *b = &m->nodes[i + 1];
        if (b->after_gap) continue;
        layer_id ka = layer_kind_of(a->op);
        if (!layer_table[layer_kind_of(b->op)].is_normalization) continue;
        int bias_idx = ka == L_CONV ? CONV_BIAS : ka == L_DENSE ? DENSE_BIAS : -1;
        /* Only a defaulted bias: writing bias=true says the user wants it. */
        if (bias_idx < 0 || !ropt_num(a->op, bias_idx) || ropt_given(a->op, bias_idx)) continue;
        diag *d = diag_add(dl, DIAG_WARNING, a->where,
                           "the bias of '%s' is redundant: '%s' right after it subtracts the mean", a->name, b->name);
        diag_hint(d, "write bias=false to save %d parameters, or bias=true to keep it silently",
                  ropt_int(a->op, ka == L_CONV ? CONV_OUT : DENSE_OUT));
    }
}

static void check_normalize_counts(const resolved *op, long long channels, diag_list *dl)
{
    int nm = op->v[NORM_MEAN].nlist, ns = op->v[NORM_STD].nlist;
    if ((nm != 1 && nm != channels) || (ns != 1 && ns != channels))
        diag_add(dl, DIAG_ERROR, op->where, "normalize needs 1 or %lld values for mean and std, got %d and %d",
                 channels, nm, ns);
}

static void check_data(const ir_program *p, diag_list *dl)
{
    long long channels = p->model.input.rank == 3 ? p->model.input.d[0] : 1;
    const dataset_info *ds = ir_dataset(p);
    if (ds) channels = ds->channels;
    for (int i = 0; i < p->ndata_ops; i++)
        if (p->data_ops[i]->index == D_NORMALIZE) check_normalize_counts(p->data_ops[i], channels, dl);
    if (p->noise_normalize) check_normalize_counts(p->noise_normalize, channels, dl);
    if (ds && ropt_num(p->data, DATA_VALIDATION) >= ds->train_count) {
        /* validation has no upper bound: it may not fit in an int */
        diag *d = diag_add(dl, DIAG_ERROR, p->data->v[DATA_VALIDATION].where,
                           "validation = %.0f leaves no training images (%s has %d)",
                           ropt_num(p->data, DATA_VALIDATION), ds->name, ds->train_count);
        diag_hint(d, "hold out fewer images, e.g. validation = %d", ds->train_count / 5);
    }
    for (int i = 0; i < p->naug_ops; i++) {
        const resolved *op = p->aug_ops[i];
        if (op->index == A_CROP && ropt_given(op, CROP_SIZE) && p->model.input.rank == 3 &&
            ropt_int(op, CROP_SIZE) != p->model.input.d[1])
            diag_add(dl, DIAG_ERROR, op->where, "crop to %d pixels, but the model's input is %lldx%lld",
                     ropt_int(op, CROP_SIZE), p->model.input.d[1], p->model.input.d[2]);
    }
}

/* Infers the shapes of the nodes in order. A layer whose rule reports a
 * mistake but still gives an output (a wrong 'in=') lets the next ones be
 * checked, as a C compiler carries on after a type error; the pass stops
 * only where no output shape can be inferred. Returns the nodes shaped. */
static int infer_nodes(ir_program *p, diag_list *dl)
{
    ir_model *m = &p->model;
    shape cur = m->input;
    int batch = ropt_int(p->train, TRAIN_BATCH);
    p->activation_floats = count_mul(shape_elems(&cur), batch);
    for (int i = 0; i < m->count; i++) {
        ir_node *n = &m->nodes[i];
        if (n->after_gap) return i;  /* a layer before it is unknown, and so is its input */
        const layer_row *row = &layer_table[layer_kind_of(n->op)];
        shape_ctx cx = { dl, n->where, n->name, m->auto_flatten };
        n->in = cur;
        memset(&n->out, 0, sizeof n->out);
        if (row->infer(n->op, &n->in, &n->out, &cx) && n->out.rank == 0) return i;
        n->params = row->params ? row->params(n->op, &n->in, &n->out) : 0;
        n->macs = row->macs ? row->macs(n->op, &n->in, &n->out) : 0;
        p->total_params = count_add(p->total_params, n->params);
        p->total_macs = count_add(p->total_macs, n->macs);
        p->activation_floats = count_add(p->activation_floats, count_mul(shape_elems(&n->out), batch));
        check_expect(p, n, dl);
        cur = n->out;
    }
    return m->count;
}

int infer_shapes(ir_program *p, diag_list *dl)
{
    int errors_before = dl->errors;
    ir_model *m = &p->model;
    check_input(p, dl);
    check_classes(p, dl);
    check_data(p, dl);
    /* A mismatch with the data is reported; the layers are still checked
     * from the input the model states. */
    m->shaped = m->input.rank ? infer_nodes(p, dl) : 0;
    p->trainable_params = p->total_params;
    if (m->shaped == m->count && !m->tail_gap) check_output(p, dl);
    /* The lints read the layers' kinds and options, not their shapes; a
     * layer that did not resolve hides what follows it. */
    if (!m->tail_gap) lint_loss(p, dl);
    lint_bias_before_batchnorm(m, dl);
    return dl->errors > errors_before ? -1 : 0;
}
