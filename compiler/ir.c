#include "ir.h"
#include "util.h"
#include <stdlib.h>
#include <string.h>

void ir_program_free(ir_program *p)
{
    if (!p) return;
    for (int i = 0; i < p->model.count; i++) {
        free(p->model.nodes[i].name);
        resolved_free(p->model.nodes[i].op);
    }
    free(p->model.nodes);
    free(p->model.name);
    resolved_free(p->data);
    for (int i = 0; i < p->ndata_ops; i++) resolved_free(p->data_ops[i]);
    free(p->data_ops);
    resolved_free(p->augment);
    resolved_free(p->noise_normalize);
    for (int i = 0; i < p->naug_ops; i++) resolved_free(p->aug_ops[i]);
    free(p->aug_ops);
    resolved_free(p->train);
    resolved_free(p->noise_test);
    for (int i = 0; i < p->nsweeps; i++) {
        for (int n = 0; n < p->sweeps[i].nnames; n++) free(p->sweeps[i].names[n]);
        free(p->sweeps[i].names);
        ast_value_free(p->sweeps[i].values);
    }
    free(p->sweeps);
    for (int i = 0; i < p->nparams; i++) {
        free(p->params[i].name);
        free(p->params[i].value_text);
    }
    free(p->params);
    free(p);
}

static void dump_resolved(FILE *out, const char *label, const resolved *r)
{
    strbuf sb;
    sb_init(&sb);
    resolved_print(r, &sb);
    fprintf(out, "  %s %s\n", label, sb.data);
    sb_free(&sb);
}

/* Settings of a block, one per line, defaults marked. */
static void dump_settings(FILE *out, const char *name, const resolved *r)
{
    fprintf(out, "%s {\n", name);
    for (int i = 0; i < r->def->nopts; i++) {
        const opt_def *od = &r->def->opts[i];
        const optval *o = &r->v[i];
        if (!o->given && (od->type == OPT_STRING || od->type == OPT_FLOAT_LIST ||
                          od->type == OPT_INT_LIST || (od->type == OPT_CALL && !o->call)))
            continue;
        strbuf sb;
        sb_init(&sb);
        optval_print(od, o, &sb);
        fprintf(out, "  %s = %s%s\n", od->name, sb.data, o->given ? "" : "  # default");
        sb_free(&sb);
    }
}

/* The layer's options with the defaults that follow from elsewhere (in=,
 * a pooling stride, batchnorm's features, init=model) shown as the values
 * they resolve to, not as the 0 that stands for "derived". */
static void print_node_op(const ir_model *m, const ir_node *n, strbuf *sb)
{
    resolved shown = *n->op;  /* shallow: the copy only changes numbers */
    int shaped = n->id < m->shaped;
    switch (layer_kind_of(n->op)) {
    case L_CONV:
        if (!ropt_given(n->op, CONV_IN) && shaped) shown.v[CONV_IN].num = (double)n->in.d[0];
        if (ropt_int(n->op, CONV_INIT) == INIT_MODEL) shown.v[CONV_INIT].num = m->init;
        break;
    case L_DENSE:
        if (!ropt_given(n->op, DENSE_IN) && shaped)
            shown.v[DENSE_IN].num = (double)(n->in.rank == 3 ? shape_elems(&n->in) : n->in.d[0]);
        if (ropt_int(n->op, DENSE_INIT) == INIT_MODEL) shown.v[DENSE_INIT].num = m->init;
        break;
    case L_MAXPOOL:
    case L_AVGPOOL:
        if (!ropt_given(n->op, POOL_STRIDE)) shown.v[POOL_STRIDE].num = ropt_num(n->op, POOL_KERNEL);
        break;
    case L_BATCHNORM:
    case L_BATCHNORM1D:
    case L_BATCHNORM2D:
        if (!ropt_given(n->op, BN_FEATURES) && shaped) shown.v[BN_FEATURES].num = (double)n->in.d[0];
        break;
    default:
        break;
    }
    resolved_print(&shown, sb);
}

void ir_dump(const ir_program *p, FILE *out)
{
    const ir_model *m = &p->model;
    char b[64];
    fprintf(out, "# netc IR of %s\n", p->src ? p->src->name : "?");
    for (int i = 0; i < p->nparams; i++)
        fprintf(out, "param %s = %s%s\n", p->params[i].name, p->params[i].value_text,
                p->params[i].overridden ? "  # from -D" : "");
    for (int i = 0; i < p->nsweeps; i++) {
        strbuf sb;
        sb_init(&sb);
        ast_value_print(p->sweeps[i].values, &sb);
        fprintf(out, "sweep ");
        for (int n = 0; n < p->sweeps[i].nnames; n++) fprintf(out, "%s%s", n ? ", " : "", p->sweeps[i].names[n]);
        fprintf(out, " = %s\n", sb.data);
        sb_free(&sb);
    }
    shape_format(&m->input, b, sizeof b);
    fprintf(out, "model %s {\n  input %s\n  classes %d\n  init %s\n", m->name, b, m->classes,
            init_names[m->init]);
    for (int i = 0; i < m->count; i++) {
        const ir_node *n = &m->nodes[i];
        strbuf sb;
        sb_init(&sb);
        print_node_op(m, n, &sb);
        shape_format(&n->out, b, sizeof b);
        char from[16];
        if (n->inputs[0] < 0) snprintf(from, sizeof from, "input");
        else snprintf(from, sizeof from, "%%%d", n->inputs[0]);
        fprintf(out, "  %%%d %s = %s(%s) -> %s  params %lld\n", n->id, n->name, sb.data, from, b, n->params);
        sb_free(&sb);
    }
    fprintf(out, "}\n");
    dump_settings(out, "data", p->data);
    for (int i = 0; i < p->ndata_ops; i++) dump_resolved(out, "transform", p->data_ops[i]);
    fprintf(out, "}\n");
    dump_settings(out, "augment", p->augment);
    for (int i = 0; i < p->naug_ops; i++) dump_resolved(out, "op", p->aug_ops[i]);
    fprintf(out, "}\n");
    dump_settings(out, "train", p->train);
    fprintf(out, "}\n");
    if (p->noise_test) {
        dump_settings(out, "noise_test", p->noise_test);
        if (p->noise_normalize) dump_resolved(out, "transform", p->noise_normalize);
        fprintf(out, "}\n");
    }
}

static void human_bytes(char *buf, size_t n, long long bytes)
{
    if (bytes >= 1LL << 30) snprintf(buf, n, "%.2f GiB", (double)bytes / (1 << 30));
    else if (bytes >= 1 << 20) snprintf(buf, n, "%.2f MiB", (double)bytes / (1 << 20));
    else if (bytes >= 1 << 10) snprintf(buf, n, "%.1f KiB", (double)bytes / (1 << 10));
    else snprintf(buf, n, "%lld B", bytes);
}

void ir_print_shapes(const ir_program *p, FILE *out)
{
    const ir_model *m = &p->model;
    char shp[64], num[32];
    int wname = 5, wkind = 4;
    for (int i = 0; i < m->count; i++) {
        int ln = (int)strlen(m->nodes[i].name), lk = (int)strlen(m->nodes[i].op->def->name);
        if (ln > wname) wname = ln;
        if (lk > wkind) wkind = lk;
    }
    fprintf(out, "model %s\n", m->name);
    fprintf(out, "%-*s  %-*s  %-20s %12s\n", wname, "layer", wkind, "kind", "output", "params");
    shape_format(&m->input, shp, sizeof shp);
    fprintf(out, "%-*s  %-*s  %-20s %12s\n", wname, "input", wkind, "", shp, "0");
    for (int i = 0; i < m->count; i++) {
        const ir_node *n = &m->nodes[i];
        shape_format(&n->out, shp, sizeof shp);
        fprintf(out, "%-*s  %-*s  %-20s %12s\n", wname, n->name, wkind, n->op->def->name, shp,
                fmt_thousands(num, n->params));
    }
    int batch = ropt_int(p->train, TRAIN_BATCH);
    char mem[32];
    human_bytes(mem, sizeof mem, count_mul(p->activation_floats, 4));
    fprintf(out, "\ntotal parameters         %s\n", fmt_thousands(num, p->total_params));
    fprintf(out, "trainable parameters     %s\n", fmt_thousands(num, p->trainable_params));
    fprintf(out, "multiply-adds per sample %s\n", fmt_thousands(num, p->total_macs));
    fprintf(out, "activation memory        %s (batch %d, fp32, forward outputs)\n", mem, batch);
}
