/* The CUDA emitter: the fusion plan of a model and the CUDA C source of its
 * kernels, both pure functions of the IR.
 *
 * Fusion (the groups): a producer (conv or dense) with the BatchNorm,
 * activation, pooling and dropout that follow it, in that order; pooling
 * joins a group only when its windows tile the producer's output exactly
 * (so every activation the backward pass needs is written once). A conv
 * whose multiply-adds per sample are few is computed inside the group's
 * kernel (implicit GEMM); a larger one goes through im2col and cuBLAS, the
 * group's kernel being the GEMM's epilogue. Dense layers always use cuBLAS
 * with the group as epilogue. BatchNorm in training splits the group: the
 * producer, a statistics kernel, then normalize-activate-pool-dropout; at
 * inference it is folded into the producer's weights. The model's final
 * dense layer (its bias) and softmax go into the loss kernel, which also
 * computes the gradient and counts correct answers. The backward pass
 * mirrors every group. The source holds one __global__ per kernel, each a
 * two-line wrapper that instantiates a template over the group's constants
 * (a struct of constexpr members), so shapes are compile-time constants
 * and the code is written once: the templates are runtime/cuda/fused.cuh
 * and data.cuh (their per-element math runtime/nr_math.h's, the CPU
 * backend's own), embedded at build time and put before the model's part.
 *
 * IR names reach the source only as identifiers made of [A-Za-z0-9_]. */
#include "emit_cuda.h"
#include "../runtime/cuda/block.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Multiply-adds per sample up to which a conv is an implicit GEMM (one
 * kernel, no im2col buffer); above it im2col + cuBLAS is expected faster.
 * To be tuned on a GPU. */
#define IMPLICIT_GEMM_MAX_MACS (1LL << 20)
#define BLOCK NR_CUDA_BLOCK

/* ---- the plan ---------------------------------------------------------------- */

static int kind_of(const ir_program *p, int i)
{
    return i >= 0 && i < p->model.count ? (int)layer_kind_of(p->model.nodes[i].op) : -1;
}

static int is_bn(int k) { return k == L_BATCHNORM || k == L_BATCHNORM1D || k == L_BATCHNORM2D; }
static int is_act(int k) { return k == L_TANH || k == L_RELU || k == L_LEAKY_RELU || k == L_SIGMOID; }
static int is_softmax(int k) { return k == L_SOFTMAX || k == L_LOG_SOFTMAX; }

/* The node's name as an identifier piece. */
static void ident(strbuf *out, const char *s)
{
    for (; *s; s++) {
        char c = *s;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        sb_putc(out, ok ? c : '_');
    }
}

static int pool_kernel(const resolved *o) { return ropt_int(o, POOL_KERNEL); }
static int pool_stride(const resolved *o)
{
    return ropt_given(o, POOL_STRIDE) ? ropt_int(o, POOL_STRIDE) : ropt_int(o, POOL_KERNEL);
}

/* Pooling whose windows cover each input position exactly once. */
static int pool_tiles(const ir_node *n)
{
    int k = pool_kernel(n->op), s = pool_stride(n->op);
    return n->in.rank == 3 && k == s && ropt_int(n->op, POOL_PADDING) == 0 && n->out.d[1] * k == n->in.d[1] &&
           n->out.d[2] * k == n->in.d[2];
}

static void group_name(const ir_program *p, cuda_group *g)
{
    strbuf sb;
    sb_init(&sb);
    for (int i = g->first; i < g->first + g->count; i++) {
        if (i > g->first) sb_putc(&sb, '_');
        ident(&sb, p->model.nodes[i].name);
    }
    snprintf(g->name, sizeof g->name, "%s", sb.data ? sb.data : "");
    sb_free(&sb);
}

/* Groups the nodes from i on into *g; returns the next node. */
static int take_group(const ir_program *p, int i, cuda_group *g)
{
    const ir_model *m = &p->model;
    *g = (cuda_group){ i, 0, -1, -1, -1, -1, -1, -1, -1, 0, 0, "" };
    int k = kind_of(p, i);
    if (k == L_FLATTEN) {
        g->view = i++;
    } else if (is_softmax(k)) {
        g->softmax = i++;
    } else {
        if (k == L_CONV || k == L_DENSE) {
            g->producer = i++;
            if (k == L_CONV) g->implicit = m->nodes[g->producer].macs <= IMPLICIT_GEMM_MAX_MACS;
        }
        if (is_bn(kind_of(p, i))) g->bn = i++;
        if (is_act(kind_of(p, i))) g->act = i++;
        int pk = kind_of(p, i);
        if ((pk == L_MAXPOOL || pk == L_AVGPOOL) && (i == g->first || pool_tiles(&m->nodes[i]))) g->pool = i++;
        if (kind_of(p, i) == L_DROPOUT) g->drop = i++;
    }
    g->count = i - g->first;
    group_name(p, g);
    return i;
}

/* The names of the group's nodes after its producer, joined with '_'. */
static void chain_name_of(const ir_program *p, const cuda_group *g, char *buf, size_t cap)
{
    strbuf sb;
    sb_init(&sb);
    int chain[4] = { g->bn, g->act, g->pool, g->drop };
    for (int i = 0; i < 4; i++)
        if (chain[i] >= 0) {
            if (sb.len) sb_putc(&sb, '_');
            ident(&sb, p->model.nodes[chain[i]].name);
        }
    snprintf(buf, cap, "%s", sb.data ? sb.data : "");
    sb_free(&sb);
}

static cuda_launch *add_launch(cuda_plan *pl, cuda_pass pass, const char *kind, int has_kernel)
{
    if (pl->nlaunches == pl->cap) {
        pl->cap = pl->cap ? 2 * pl->cap : 32;
        pl->launches = xrealloc(pl->launches, (size_t)pl->cap * sizeof *pl->launches);
    }
    cuda_launch *l = &pl->launches[pl->nlaunches++];
    memset(l, 0, sizeof *l);
    l->pass = pass;
    l->kind = kind;
    l->has_kernel = has_kernel;
    return l;
}

static void set_covers(const ir_program *p, cuda_launch *l, const int *nodes, int n, const char *extra)
{
    strbuf sb;
    sb_init(&sb);
    for (int i = 0; i < n; i++)
        if (nodes[i] >= 0) sb_printf(&sb, "%s%s", sb.len ? " " : "", p->model.nodes[nodes[i]].name);
    if (extra) sb_printf(&sb, "%s%s", sb.len ? " " : "", extra);
    snprintf(l->covers, sizeof l->covers, "%s", sb.data ? sb.data : "");
    sb_free(&sb);
}

static long long per_sample(const shape *s) { return shape_elems(s); }

/* Dimensions as [C, H, W] for any rank (flat: [F, 1, 1]); a dense layer reads its input flat. */
static void dims3(const shape *s, long long *c, long long *h, long long *w)
{
    *c = s->rank == 3 ? s->d[0] : shape_elems(s);
    *h = s->rank == 3 ? s->d[1] : 1;
    *w = s->rank == 3 ? s->d[2] : 1;
}

/* The plan's launches for group g: forward (training), backward, evaluation. */
static void plan_group(const ir_program *p, cuda_plan *pl, const cuda_group *g, int first_layer, cuda_pass pass)
{
    const ir_node *nodes = p->model.nodes;
    const ir_node *last = &nodes[g->first + g->count - 1];
    cuda_launch *l;
    int chain[4] = { g->bn, g->act, g->pool, g->drop };
    int all[5] = { g->producer, g->bn, g->act, g->pool, g->drop };
    int has_chain = g->bn >= 0 || g->act >= 0 || g->pool >= 0 || g->drop >= 0;
    if (g->view >= 0) {
        if (pass == CP_BACKWARD) return;
        l = add_launch(pl, pass, "view", 0);
        snprintf(l->name, sizeof l->name, "(no kernel)");
        set_covers(p, l, &g->view, 1, NULL);
        snprintf(l->shape, sizeof l->shape, "-");
        return;
    }
    if (g->softmax >= 0) {
        l = add_launch(pl, pass, "softmax", pass != CP_EVAL);
        snprintf(l->name, sizeof l->name, "%s_%s", pass == CP_BACKWARD ? "bwd" : "fwd", g->name);
        set_covers(p, l, &g->softmax, 1, NULL);
        snprintf(l->shape, sizeof l->shape, "N*%lld threads", nodes[g->softmax].out.rank == 3 ?
                 nodes[g->softmax].out.d[1] * nodes[g->softmax].out.d[2] : 1LL);
        return;
    }
    const ir_node *prod = g->producer >= 0 ? &nodes[g->producer] : NULL;
    int conv = prod && kind_of(p, g->producer) == L_CONV, dense = prod && !conv;
    long long pc, ph, pw;
    if (prod) dims3(&prod->out, &pc, &ph, &pw);
    else dims3(&nodes[g->first].in, &pc, &ph, &pw);
    long long plane = ph * pw;
    long long fan_in = prod ? shape_elems(&prod->in) / (conv ? prod->in.d[1] * prod->in.d[2] : 1) *
                                  (conv ? (long long)ropt_int(prod->op, CONV_KERNEL) * ropt_int(prod->op, CONV_KERNEL) : 1)
                            : 0;
    char chain_name[128];
    chain_name_of(p, g, chain_name, sizeof chain_name);
    int bn_split = g->bn >= 0 && pass != CP_EVAL;   /* training: the producer stands alone */
    int folded = g->bn >= 0 && pass == CP_EVAL && prod;
    if (pass == CP_FORWARD || pass == CP_EVAL) {
        const char *pre = pass == CP_EVAL && g->bn >= 0 ? "inf" : "fwd";
        if (folded) {
            l = add_launch(pl, pass, "bn fold", 1);
            snprintf(l->name, sizeof l->name, "inf_fold_%s", g->name);
            set_covers(p, l, (int[]){ g->producer, g->bn }, 2, NULL);
            snprintf(l->shape, sizeof l->shape, "%lld threads (once per evaluation)", pc);
        } else if (g->bn >= 0 && !prod && pass == CP_EVAL) {
            l = add_launch(pl, pass, "bn stats", 0);
            snprintf(l->name, sizeof l->name, "fwd_%s_stats", nodes[g->bn].name);
            set_covers(p, l, &g->bn, 1, "(running statistics)");
            snprintf(l->shape, sizeof l->shape, "%lld blocks x %d", pc, BLOCK);
        }
        if (prod && !g->implicit) {
            if (conv) {
                l = add_launch(pl, pass, "im2col", pass != CP_EVAL);
                snprintf(l->name, sizeof l->name, "fwd_%s_im2col", nodes[g->producer].name);
                set_covers(p, l, &g->producer, 1, NULL);
                snprintf(l->shape, sizeof l->shape, "N*%lld threads", fan_in * plane);
            }
            l = add_launch(pl, pass, "cublas sgemm", 0);
            snprintf(l->name, sizeof l->name, "cublasSgemm%s", folded ? " (folded weights)" : "");
            set_covers(p, l, &g->producer, 1, conv ? "(im2col GEMM)" : NULL);
            if (conv) snprintf(l->shape, sizeof l->shape, "M=%lld N=N*%lld K=%lld", pc, plane, fan_in);
            else snprintf(l->shape, sizeof l->shape, "M=N N=%lld K=%lld", pc, fan_in);
        }
        if (g->to_loss) return;
        if (bn_split && prod) {
            l = add_launch(pl, pass, conv ? (g->implicit ? "conv (implicit GEMM)" : "conv epilogue") : "dense epilogue",
                           1);
            snprintf(l->name, sizeof l->name, "fwd_%s", nodes[g->producer].name);
            set_covers(p, l, &g->producer, 1, NULL);
            snprintf(l->shape, sizeof l->shape, "N*%lld threads", pc * plane);
        }
        if (bn_split) {
            l = add_launch(pl, pass, "bn stats", 1);
            snprintf(l->name, sizeof l->name, "fwd_%s_stats", nodes[g->bn].name);
            set_covers(p, l, &g->bn, 1, "(batch statistics)");
            snprintf(l->shape, sizeof l->shape, "%lld blocks x %d", pc, BLOCK);
        }
        if (!bn_split || has_chain) {
            /* evaluation reuses the training's kernel, except where BatchNorm is
             * folded into a producer; without one, that kernel normalizes with
             * the running statistics (no dropout: no mask) */
            int reuse = pass == CP_EVAL && !folded;
            l = add_launch(pl, pass,
                           bn_split || g->bn >= 0 ? "bn normalize" : conv ? "conv" : dense ? "dense epilogue" : "pointwise",
                           !reuse);
            if (bn_split || (reuse && g->bn >= 0)) snprintf(l->name, sizeof l->name, "fwd_%s", chain_name);
            else snprintf(l->name, sizeof l->name, "%s_%s", reuse ? "fwd" : pre, g->name);
            if (bn_split) set_covers(p, l, chain, 4, NULL);
            else set_covers(p, l, all, 5, NULL);
            if (conv && !bn_split && g->implicit) l->kind = "conv (implicit GEMM)";
            else if (conv && !bn_split) l->kind = "conv epilogue";
            snprintf(l->shape, sizeof l->shape, "N*%lld threads", per_sample(&last->out));
            if (reuse) snprintf(l->shape + strlen(l->shape), sizeof l->shape - strlen(l->shape), " (training's)");
        }
        return;
    }
    /* backward: the mirror (BatchNorm alone needs nothing before its own kernels: dz = dy) */
    int bn_alone = g->bn >= 0 && g->act < 0 && g->pool < 0 && g->drop < 0;
    if (has_chain && !g->to_loss && !bn_alone) {
        int writes = g->act >= 0 || g->pool >= 0 || g->drop >= 0 || (conv && !g->implicit);
        l = add_launch(pl, pass, g->bn >= 0 ? "pointwise grad" : dense ? "epilogue grad + bias grad" : "pointwise grad", 1);
        snprintf(l->name, sizeof l->name, "bwd_%s", g->name);
        if (g->bn >= 0) set_covers(p, l, (int[]){ g->act, g->pool, g->drop }, 3, NULL);
        else set_covers(p, l, chain, 4, dense ? "(bias)" : NULL);
        if (dense && g->bn < 0) {
            char extra[140];
            snprintf(extra, sizeof extra, "%s (bias)", nodes[g->producer].name);
            set_covers(p, l, (int[]){ g->act, g->pool, g->drop }, 3, extra);
        }
        snprintf(l->shape, sizeof l->shape, "%lld threads, batch looped%s", pc * plane, writes ? "" : ", dz = dy");
    } else if (dense && !g->to_loss) {
        l = add_launch(pl, pass, "bias grad", 1);
        snprintf(l->name, sizeof l->name, "bwd_%s", g->name);
        set_covers(p, l, &g->producer, 1, "(bias)");
        snprintf(l->shape, sizeof l->shape, "%lld threads, batch looped", pc);
    }
    if (g->bn >= 0) {
        l = add_launch(pl, pass, "bn grad reduce", 1);
        snprintf(l->name, sizeof l->name, "bwd_%s_reduce", nodes[g->bn].name);
        set_covers(p, l, &g->bn, 1, NULL);
        snprintf(l->shape, sizeof l->shape, "%lld blocks x %d", pc, BLOCK);
        l = add_launch(pl, pass, dense ? "bn grad dx + bias grad" : "bn grad dx", 1);
        snprintf(l->name, sizeof l->name, "bwd_%s_dx", nodes[g->bn].name);
        set_covers(p, l, (int[]){ g->bn, dense ? g->producer : -1 }, 2, dense ? "(bias)" : NULL);
        snprintf(l->shape, sizeof l->shape, "%lld threads, batch looped", pc * plane);
    }
    if (!prod) return;
    const char *pname = nodes[g->producer].name;
    if (conv && g->implicit) {
        l = add_launch(pl, pass, "conv weight+bias grad", 1);
        snprintf(l->name, sizeof l->name, "bwd_%s_dw", pname);
        set_covers(p, l, &g->producer, 1, NULL);
        snprintf(l->shape, sizeof l->shape, "%lld blocks x %d", prod->params, BLOCK);
        if (!first_layer) {
            l = add_launch(pl, pass, "conv input grad", 1);
            snprintf(l->name, sizeof l->name, "bwd_%s_dx", pname);
            set_covers(p, l, &g->producer, 1, NULL);
            snprintf(l->shape, sizeof l->shape, "N*%lld threads", shape_elems(&prod->in));
        }
        return;
    }
    if (conv && ropt_int(prod->op, CONV_BIAS)) {
        l = add_launch(pl, pass, "conv bias grad", 1);
        snprintf(l->name, sizeof l->name, "bwd_%s_db", pname);
        set_covers(p, l, &g->producer, 1, "(bias)");
        snprintf(l->shape, sizeof l->shape, "%lld blocks x %d", pc, BLOCK);
    }
    l = add_launch(pl, pass, "cublas sgemm", 0);
    snprintf(l->name, sizeof l->name, "cublasSgemm");
    set_covers(p, l, &g->producer, 1, "(weight grad)");
    if (conv) snprintf(l->shape, sizeof l->shape, "M=%lld N=%lld K=N*%lld", pc, fan_in, plane);
    else snprintf(l->shape, sizeof l->shape, "M=%lld N=%lld K=N", pc, fan_in);
    if (first_layer) return;
    l = add_launch(pl, pass, "cublas sgemm", 0);
    snprintf(l->name, sizeof l->name, "cublasSgemm");
    set_covers(p, l, &g->producer, 1, "(input grad)");
    if (conv) snprintf(l->shape, sizeof l->shape, "M=%lld N=N*%lld K=%lld", fan_in, plane, pc);
    else snprintf(l->shape, sizeof l->shape, "M=N N=%lld K=%lld", fan_in, pc);
    if (conv) {
        l = add_launch(pl, pass, "col2im", 1);
        snprintf(l->name, sizeof l->name, "bwd_%s_col2im", pname);
        set_covers(p, l, &g->producer, 1, NULL);
        snprintf(l->shape, sizeof l->shape, "N*%lld threads", shape_elems(&prod->in));
    }
}

static const char *optimizer_name(const ir_program *p, int *sam)
{
    static const char *const names[] = { "sgd", "adam", "adamw", "rmsprop" };
    const resolved *o = p->train->v[TRAIN_OPTIMIZER].call;
    *sam = o->index == O_SAM;
    const resolved *base = *sam ? o->v[SAM_BASE].call : o;
    return names[base->index];
}

static void loss_covers(const ir_program *p, const cuda_plan *pl, cuda_launch *l)
{
    int nodes[2] = { -1, -1 }, n = 0;
    for (int i = 0; i < pl->ngroups; i++) {
        const cuda_group *g = &pl->groups[i];
        if (g->to_loss) nodes[n++] = g->producer;
        if (g->softmax >= 0 && g->first + g->count == p->model.count) nodes[n++] = g->softmax;
    }
    const resolved *loss = p->train->v[TRAIN_LOSS].call;
    char extra[96];
    snprintf(extra, sizeof extra, "%s%s", loss->def->name, l->pass == CP_LOSS ? " grad accuracy" : " accuracy");
    set_covers(p, l, nodes, n, extra);
}

void cuda_plan_build(const ir_program *p, cuda_plan *pl)
{
    const ir_model *m = &p->model;
    memset(pl, 0, sizeof *pl);
    pl->groups = xcalloc((size_t)m->count + 1, sizeof *pl->groups);
    for (int i = 0; i < m->count;) i = take_group(p, i, &pl->groups[pl->ngroups++]);
    /* the last dense layer, bare, before an optional final softmax: into the loss */
    int last = pl->ngroups - 1;
    if (last >= 0 && pl->groups[last].softmax >= 0) last--;
    if (last >= 0 && kind_of(p, pl->groups[last].producer) == L_DENSE && pl->groups[last].count == 1)
        pl->groups[last].to_loss = 1;
    int tail = pl->ngroups;  /* a final softmax is the loss kernel's */
    if (tail > 0 && pl->groups[tail - 1].softmax >= 0) tail--;

    cuda_launch *l = add_launch(pl, CP_DATA, "data gather", 1);
    snprintf(l->name, sizeof l->name, "data_train");
    snprintf(l->covers, sizeof l->covers, "input: uint8 -> float%s%s", p->naug_ops ? ", augment" : "",
             p->ndata_ops ? ", normalize" : "");
    snprintf(l->shape, sizeof l->shape, "N blocks x %d", BLOCK);
    for (int i = 0; i < tail; i++) plan_group(p, pl, &pl->groups[i], i == 0, CP_FORWARD);
    l = add_launch(pl, CP_LOSS, "loss", 1);
    snprintf(l->name, sizeof l->name, "loss_train");
    loss_covers(p, pl, l);
    snprintf(l->shape, sizeof l->shape, "1 block x %d", BLOCK);
    int first_compute = 0;
    while (first_compute < tail && pl->groups[first_compute].view >= 0) first_compute++;
    for (int i = tail - 1; i >= 0; i--) plan_group(p, pl, &pl->groups[i], i == first_compute, CP_BACKWARD);
    int sam;
    const char *opt = optimizer_name(p, &sam);
    if (sam) {
        l = add_launch(pl, CP_UPDATE, "sam", 1);
        snprintf(l->name, sizeof l->name, "sam_sumsq");
        snprintf(l->covers, sizeof l->covers, "sam: gradient norm (partial sums)");
        snprintf(l->shape, sizeof l->shape, "%d blocks x %d", BLOCK, BLOCK);
        l = add_launch(pl, CP_UPDATE, "sam", 1);
        snprintf(l->name, sizeof l->name, "sam_ascend");
        snprintf(l->covers, sizeof l->covers, "sam: norm, save w, w += e(w); forward and backward again");
        snprintf(l->shape, sizeof l->shape, "%lld threads", p->total_params);
    }
    l = add_launch(pl, CP_UPDATE, "optimizer", 1);
    snprintf(l->name, sizeof l->name, "update_%s%s", sam ? "sam_" : "", opt);
    snprintf(l->covers, sizeof l->covers, "%s%s step over all %lld parameters", sam ? "restore w, " : "", opt,
             p->total_params);
    snprintf(l->shape, sizeof l->shape, "%lld threads", p->total_params);
    l = add_launch(pl, CP_EVAL, "data gather", 1);
    snprintf(l->name, sizeof l->name, "data_eval");
    snprintf(l->covers, sizeof l->covers, "input: uint8 -> float%s", p->ndata_ops ? ", normalize" : "");
    snprintf(l->shape, sizeof l->shape, "N*%lld threads", per_sample(&m->input));
    if (p->noise_test) {
        l = add_launch(pl, CP_EVAL, "data gather", 1);
        snprintf(l->name, sizeof l->name, "data_noisy");
        snprintf(l->covers, sizeof l->covers, "input: uint8 -> float, normalize, noise test");
        snprintf(l->shape, sizeof l->shape, "N*%lld threads", per_sample(&m->input));
    }
    for (int i = 0; i < tail; i++) plan_group(p, pl, &pl->groups[i], i == 0, CP_EVAL);
    l = add_launch(pl, CP_EVAL, "loss", 1);
    snprintf(l->name, sizeof l->name, "loss_eval");
    loss_covers(p, pl, l);
    snprintf(l->shape, sizeof l->shape, "1 block x %d", BLOCK);
}

void cuda_plan_free(cuda_plan *pl)
{
    free(pl->groups);
    free(pl->launches);
    memset(pl, 0, sizeof *pl);
}

void cuda_plan_print(const ir_program *p, const cuda_plan *pl, strbuf *out)
{
    static const char *const pass_names[] = { "data", "forward", "loss", "backward", "update", "eval" };
    int wn = 6, wk = 4, wc = 6;
    for (int i = 0; i < pl->nlaunches; i++) {
        const cuda_launch *l = &pl->launches[i];
        if ((int)strlen(l->name) > wn) wn = (int)strlen(l->name);
        if ((int)strlen(l->kind) > wk) wk = (int)strlen(l->kind);
        if ((int)strlen(l->covers) > wc) wc = (int)strlen(l->covers);
    }
    int kernels = 0, step = 0;
    for (int i = 0; i < pl->nlaunches; i++) {
        kernels += pl->launches[i].has_kernel;
        step += pl->launches[i].pass != CP_EVAL && strcmp(pl->launches[i].kind, "view") != 0;
    }
    sb_printf(out, "model %s: %d kernels in the CUDA source, %d launches per training step, batch N = %d\n",
              p->model.name, kernels, step, ropt_int(p->train, TRAIN_BATCH));
    sb_printf(out, "%-8s  %-*s  %-*s  %-*s  %s\n", "pass", wn, "kernel", wk, "kind", wc, "covers", "launch");
    for (int i = 0; i < pl->nlaunches; i++) {
        const cuda_launch *l = &pl->launches[i];
        sb_printf(out, "%-8s  %-*s  %-*s  %-*s  %s\n", pass_names[l->pass], wn, l->name, wk, l->kind, wc, l->covers,
                  l->shape);
    }
}

/* ---- the source ---------------------------------------------------------------- */

/* A group's constants (the members of its struct in the source). */
typedef struct kconst {
    int src, c, h, w, o, ks, stride, pad, reflect, bias, oh, ow;
    int bn, bn_affine;
    double bn_eps, bn_momentum;
    int act;
    double slope;
    int pool, pk, ps, pp, ph, pw;
    int drop;
    double drop_p;
    int saves, writes_dz, log;
    long long fan_in;
} kconst;

static const char *const src_names[] = { "SRC_CONV", "SRC_GEMM_CONV", "SRC_GEMM_DENSE", "SRC_INPUT" };
static const char *const act_names[] = { "ACT_NONE", "ACT_TANH", "ACT_RELU", "ACT_LEAKY", "ACT_SIGMOID" };
static const char *const pool_names[] = { "POOL_NONE", "POOL_MAX", "POOL_AVG" };

/* The shortest float literal that reads back as v. */
static void cu_float(strbuf *out, double v)
{
    char buf[40];
    float f = (float)v;
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
        if ((float)strtod(buf, NULL) == f) break;
    }
    sb_puts(out, buf);
    if (!strpbrk(buf, ".e")) sb_puts(out, ".0");
    sb_putc(out, 'f');
}

static void emit_struct(strbuf *out, const char *name, const char *what, const kconst *k)
{
    sb_printf(out, "/* %s */\nstruct %s {\n", what, name);
    sb_printf(out, "    static constexpr int SRC = %s;\n", src_names[k->src]);
    sb_printf(out, "    static constexpr int C = %d, H = %d, W = %d;  /* input */\n", k->c, k->h, k->w);
    sb_printf(out, "    static constexpr int O = %d, KS = %d, STRIDE = %d, PAD = %d, OH = %d, OW = %d;\n", k->o, k->ks,
              k->stride, k->pad, k->oh, k->ow);
    sb_printf(out, "    static constexpr bool REFLECT = %s, BIAS = %s;\n", k->reflect ? "true" : "false",
              k->bias ? "true" : "false");
    sb_printf(out, "    static constexpr long long FAN_IN = %lld;\n", k->fan_in);
    sb_printf(out, "    static constexpr bool BN = %s, BN_AFFINE = %s;\n", k->bn ? "true" : "false",
              k->bn_affine ? "true" : "false");
    sb_puts(out, "    static constexpr float BN_EPS = ");
    cu_float(out, k->bn_eps);
    sb_puts(out, ", BN_MOMENTUM = ");
    cu_float(out, k->bn_momentum);
    sb_printf(out, ";\n    static constexpr int ACT = %s;\n    static constexpr float SLOPE = ", act_names[k->act]);
    cu_float(out, k->slope);
    sb_printf(out, ";\n    static constexpr int POOL = %s, PK = %d, PS = %d, PP = %d, PH = %d, PW = %d;\n",
              pool_names[k->pool], k->pk, k->ps, k->pp, k->ph, k->pw);
    sb_printf(out, "    static constexpr bool DROP = %s;\n    static constexpr float DROP_P = ", k->drop ? "true" : "false");
    cu_float(out, k->drop_p);
    sb_printf(out, ";\n    static constexpr bool SAVES = %s, WRITES_DZ = %s, LOG = %s;\n};\n\n", k->saves ? "true" : "false",
              k->writes_dz ? "true" : "false", k->log ? "true" : "false");
}

static void emit_wrapper(strbuf *out, const char *kernel, const char *params, const char *call)
{
    sb_printf(out, "extern \"C\" __global__ void __launch_bounds__(NR_CUDA_BLOCK) %s(%s)\n{\n    %s;\n}\n\n", kernel, params,
              call);
}

static int act_code(int k)
{
    switch (k) {
    case L_TANH: return 1;
    case L_RELU: return 2;
    case L_LEAKY_RELU: return 3;
    case L_SIGMOID: return 4;
    default: return 0;
    }
}

/* The constants of: the producer alone (part PRODUCER), the chain after it
 * reading the producer's output (CHAIN), or the whole group (WHOLE: no
 * BatchNorm in training, or BatchNorm folded at inference). */
enum part { PRODUCER, CHAIN, WHOLE };

static void group_consts(const ir_program *p, const cuda_group *g, enum part part, kconst *k)
{
    const ir_node *nodes = p->model.nodes;
    memset(k, 0, sizeof *k);
    k->ks = k->stride = 1;
    k->bn_eps = 1e-5;
    k->bn_momentum = 0.1;
    const ir_node *prod = g->producer >= 0 ? &nodes[g->producer] : NULL;
    long long c, h, w;
    if (prod && part != CHAIN) {
        int conv = kind_of(p, g->producer) == L_CONV;
        dims3(&prod->in, &c, &h, &w);
        if (!conv) c = shape_elems(&prod->in), h = w = 1;
        k->src = conv ? (g->implicit ? 0 : 1) : 2;
        if (conv) {
            k->ks = ropt_int(prod->op, CONV_KERNEL);
            k->stride = ropt_int(prod->op, CONV_STRIDE);
            k->pad = ropt_int(prod->op, CONV_PADDING);
            k->reflect = ropt_int(prod->op, CONV_PADDING_MODE) == PAD_REFLECT;
        }
        k->bias = ropt_int(prod->op, conv ? CONV_BIAS : DENSE_BIAS) != 0;
        k->fan_in = c * k->ks * k->ks;
        long long oc, oh, ow;
        dims3(&prod->out, &oc, &oh, &ow);
        k->o = (int)oc, k->oh = (int)oh, k->ow = (int)ow;
    } else {
        const ir_node *in = prod ? prod : &nodes[g->first];
        dims3(prod ? &in->out : &in->in, &c, &h, &w);
        k->src = 3;
        k->o = (int)c, k->oh = (int)h, k->ow = (int)w;
    }
    k->c = (int)c, k->h = (int)h, k->w = (int)w;
    k->ph = k->oh, k->pw = k->ow;
    if (g->bn >= 0) {
        const resolved *o = nodes[g->bn].op;
        k->bn = part == CHAIN;
        k->bn_affine = ropt_int(o, BN_AFFINE) != 0;
        k->bn_eps = ropt_num(o, BN_EPS);
        k->bn_momentum = ropt_num(o, BN_MOMENTUM);
    }
    if (part == PRODUCER) {
        k->writes_dz = k->src == 1;
        return;
    }
    if (g->act >= 0) {
        k->act = act_code(kind_of(p, g->act));
        if (kind_of(p, g->act) == L_LEAKY_RELU) k->slope = ropt_num(nodes[g->act].op, LEAKY_SLOPE);
    }
    if (g->pool >= 0) {
        const ir_node *pn = &nodes[g->pool];
        k->pool = kind_of(p, g->pool) == L_MAXPOOL ? 1 : 2;
        k->pk = pool_kernel(pn->op), k->ps = pool_stride(pn->op), k->pp = ropt_int(pn->op, POOL_PADDING);
        k->ph = (int)pn->out.d[1], k->pw = (int)pn->out.d[2];
    }
    if (g->drop >= 0) {
        k->drop = 1;
        k->drop_p = ropt_num(nodes[g->drop].op, DROPOUT_P);
    }
    k->saves = k->act != 0 || k->pool == 1;
    k->writes_dz = k->act != 0 || k->pool != 0 || k->drop || (k->src == 1 && !k->bn);
}

static const char *const CHAIN_FWD = "chain_args a";
static const char *const CHAIN_BWD = "chain_grad_args a";

/* Kernels of one group (training, then the inference variants). */
static void emit_group(const ir_program *p, const cuda_group *g, int first_layer, strbuf *out)
{
    const ir_node *nodes = p->model.nodes;
    char sname[160], kname[192], call[256];
    kconst k;
    if (g->view >= 0 || g->to_loss) return;
    if (g->softmax >= 0) {
        group_consts(p, g, CHAIN, &k);
        k.log = kind_of(p, g->softmax) == L_LOG_SOFTMAX;
        snprintf(sname, sizeof sname, "G_%s", g->name);
        emit_struct(out, sname, "softmax over channels", &k);
        snprintf(kname, sizeof kname, "fwd_%s", g->name);
        snprintf(call, sizeof call, "softmax_forward<%s>(x, y, n)", sname);
        emit_wrapper(out, kname, "const float *x, float *y, int n", call);
        snprintf(kname, sizeof kname, "bwd_%s", g->name);
        snprintf(call, sizeof call, "softmax_backward<%s>(y, dy, dx, n)", sname);
        emit_wrapper(out, kname, "const float *y, const float *dy, float *dx, int n", call);
        return;
    }
    const char *pname = g->producer >= 0 ? nodes[g->producer].name : NULL;
    int conv = kind_of(p, g->producer) == L_CONV, dense = kind_of(p, g->producer) == L_DENSE;
    char prod_struct[160] = "";
    sb_printf(out, "/* ==== group %s ==== */\n\n", g->name);
    if (g->bn >= 0) {
        char chain_name[128];
        chain_name_of(p, g, chain_name, sizeof chain_name);
        if (pname) {
            group_consts(p, g, PRODUCER, &k);
            snprintf(prod_struct, sizeof prod_struct, "G_%s", pname);
            emit_struct(out, prod_struct, "the producer alone (BatchNorm in training follows)", &k);
            snprintf(kname, sizeof kname, "fwd_%s", pname);
            snprintf(call, sizeof call, "chain_forward<%s>(a)", prod_struct);
            emit_wrapper(out, kname, CHAIN_FWD, call);
        }
        group_consts(p, g, CHAIN, &k);
        snprintf(sname, sizeof sname, "G_%s", chain_name);
        emit_struct(out, sname, "BatchNorm (batch statistics), activation, pooling, dropout", &k);
        snprintf(kname, sizeof kname, "fwd_%s_stats", nodes[g->bn].name);
        snprintf(call, sizeof call, "bn_stats<%s>(x, saved, running_mean, running_var, n, training, update)", sname);
        emit_wrapper(out, kname,
                     "const float *x, float *saved, float *running_mean, float *running_var, int n, int training, "
                     "int update",
                     call);
        snprintf(kname, sizeof kname, "fwd_%s", chain_name);
        snprintf(call, sizeof call, "chain_forward<%s>(a)", sname);
        emit_wrapper(out, kname, CHAIN_FWD, call);
        if (k.writes_dz) {
            snprintf(kname, sizeof kname, "bwd_%s", g->name);
            snprintf(call, sizeof call, "chain_backward<%s>(a)", sname);
            emit_wrapper(out, kname, CHAIN_BWD, call);
        }
        snprintf(kname, sizeof kname, "bwd_%s_reduce", nodes[g->bn].name);
        snprintf(call, sizeof call, "bn_reduce<%s>(x, dy, saved, dparams, coef, n)", sname);
        emit_wrapper(out, kname, "const float *x, const float *dy, const float *saved, float *dparams, float *coef, int n",
                     call);
        snprintf(kname, sizeof kname, "bwd_%s_dx", nodes[g->bn].name);
        snprintf(call, sizeof call, "bn_dx<%s>(x, dy, dx, saved, gamma, coef, db, n)", pname ? prod_struct : sname);
        emit_wrapper(out, kname,
                     "const float *x, const float *dy, float *dx, const float *saved, const float *gamma, "
                     "const float *coef, float *db, int n",
                     call);
        if (pname) {
            group_consts(p, g, WHOLE, &k);
            k.drop = 0;
            snprintf(sname, sizeof sname, "G_%s", g->name);
            emit_struct(out, sname, "inference: BatchNorm folded into the producer", &k);
            snprintf(kname, sizeof kname, "inf_fold_%s", g->name);
            snprintf(call, sizeof call, "bn_fold<%s>(w, b, gamma, beta, running_mean, running_var, wf, bf)", sname);
            emit_wrapper(out, kname,
                         "const float *w, const float *b, const float *gamma, const float *beta, "
                         "const float *running_mean, const float *running_var, float *wf, float *bf",
                         call);
            snprintf(kname, sizeof kname, "inf_%s", g->name);
            snprintf(call, sizeof call, "chain_forward<%s>(a)", sname);
            emit_wrapper(out, kname, CHAIN_FWD, call);
        }
    } else {
        group_consts(p, g, WHOLE, &k);
        snprintf(sname, sizeof sname, "G_%s", g->name);
        snprintf(prod_struct, sizeof prod_struct, "%s", sname);
        emit_struct(out, sname, conv ? (g->implicit ? "conv as an implicit GEMM, then the rest of the group"
                                                    : "epilogue of the im2col GEMM: bias and the rest of the group")
                                     : dense ? "epilogue of the dense GEMM: bias and the rest of the group"
                                             : "pointwise group",
                    &k);
        snprintf(kname, sizeof kname, "fwd_%s", g->name);
        snprintf(call, sizeof call, "chain_forward<%s>(a)", sname);
        emit_wrapper(out, kname, CHAIN_FWD, call);
        if (k.writes_dz || dense) {
            snprintf(kname, sizeof kname, "bwd_%s", g->name);
            snprintf(call, sizeof call, "chain_backward<%s>(a)", sname);
            emit_wrapper(out, kname, CHAIN_BWD, call);
        }
    }
    if (!conv) return;
    if (g->implicit) {
        snprintf(kname, sizeof kname, "bwd_%s_dw", pname);
        snprintf(call, sizeof call, "conv_param_grad<%s>(x, dz, dw, db, n)", prod_struct);
        emit_wrapper(out, kname, "const float *x, const float *dz, float *dw, float *db, int n", call);
        if (!first_layer) {
            snprintf(kname, sizeof kname, "bwd_%s_dx", pname);
            snprintf(call, sizeof call, "conv_input_grad<%s>(dz, w, dx, n)", prod_struct);
            emit_wrapper(out, kname, "const float *dz, const float *w, float *dx, int n", call);
        }
        return;
    }
    snprintf(kname, sizeof kname, "fwd_%s_im2col", pname);
    snprintf(call, sizeof call, "conv_im2col<%s>(x, cols, n)", prod_struct);
    emit_wrapper(out, kname, "const float *x, float *cols, int n", call);
    if (ropt_int(nodes[g->producer].op, CONV_BIAS)) {
        snprintf(kname, sizeof kname, "bwd_%s_db", pname);
        snprintf(call, sizeof call, "conv_bias_grad_rows<%s>(dz, db, n)", prod_struct);
        emit_wrapper(out, kname, "const float *dz, float *db, int n", call);
    }
    if (!first_layer) {
        snprintf(kname, sizeof kname, "bwd_%s_col2im", pname);
        snprintf(call, sizeof call, "conv_input_grad<%s>(dcols, 0, dx, n)", prod_struct);
        emit_wrapper(out, kname, "const float *dcols, float *dx, int n", call);
    }
}

static void emit_loss(const ir_program *p, const cuda_plan *pl, strbuf *out)
{
    const resolved *l = p->train->v[TRAIN_LOSS].call;
    int bias = 0, fused = 0, softmax = 0;
    for (int i = 0; i < pl->ngroups; i++) {
        const cuda_group *g = &pl->groups[i];
        if (g->to_loss) fused = 1, bias = ropt_int(p->model.nodes[g->producer].op, DENSE_BIAS) != 0;
        if (g->softmax >= 0 && g->first + g->count == p->model.count)
            softmax = kind_of(p, g->softmax) == L_LOG_SOFTMAX ? 2 : 1;
    }
    static const char *const kinds[] = { "LOSS_CROSS_ENTROPY", "LOSS_NLL", "LOSS_MSE", "LOSS_MULTI_MARGIN" };
    sb_printf(out, "/* ==== the loss: %s ==== */\nstruct G_loss {\n", l->def->name);
    sb_printf(out, "    static constexpr int CLASSES = %d, KIND = %s, SOFTMAX = %d;  /* 1 softmax, 2 log_softmax */\n",
              p->model.classes, kinds[l->index], softmax);
    sb_printf(out, "    static constexpr bool COMPUTES_OUT = %s, BIAS = %s;\n", fused || softmax ? "true" : "false",
              bias ? "true" : "false");
    sb_puts(out, "    static constexpr float SMOOTHING = ");
    cu_float(out, l->index == LOSS_CROSS_ENTROPY ? ropt_num(l, CE_LABEL_SMOOTHING) : 0.0);
    sb_printf(out, ";\n    static constexpr bool SMOOTH_OTHER = %s, MSE_SOFTMAX = %s;\n    static constexpr float MARGIN = ",
              l->index == LOSS_CROSS_ENTROPY && ropt_int(l, CE_SMOOTHING_FORM) == SMOOTH_OTHER_CLASSES ? "true" : "false",
              l->index == LOSS_MSE && ropt_int(l, MSE_SOFTMAX) ? "true" : "false");
    cu_float(out, l->index == LOSS_MULTI_MARGIN ? ropt_num(l, MM_MARGIN) : 1.0);
    sb_printf(out, ";\n    static constexpr int P = %d;\n};\n\n", l->index == LOSS_MULTI_MARGIN ? ropt_int(l, MM_P) : 1);
    emit_wrapper(out, "loss_train", "loss_args a", "loss_step<G_loss>(a)");
    emit_wrapper(out, "loss_eval", "loss_args a", "loss_step<G_loss>(a)");
}

static void emit_optimizer(const ir_program *p, strbuf *out)
{
    const resolved *o = p->train->v[TRAIN_OPTIMIZER].call;
    int sam = o->index == O_SAM;
    const resolved *b = sam ? o->v[SAM_BASE].call : o;
    int dummy;
    const char *name = optimizer_name(p, &dummy);
    sb_printf(out, "/* ==== the optimizer: %s%s over the flat parameter buffer ==== */\nstruct G_optim {\n",
              sam ? "sam over " : "", name);
    sb_printf(out, "    static constexpr long long PARAMS = %lld;\n", p->total_params);
    const call_def *def = b->def;
    for (int i = 0; i < def->nopts; i++) {
        if (!strcmp(def->opts[i].name, "lr")) continue;  /* scheduled: step_scalars */
        char up[40];
        size_t j = 0;
        for (; def->opts[i].name[j] && j < sizeof up - 1; j++) {
            char c = def->opts[i].name[j];
            up[j] = c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
        }
        up[j] = 0;
        if (def->opts[i].type == OPT_BOOL) {
            sb_printf(out, "    static constexpr bool %s = %s;\n", up, ropt_int(b, i) ? "true" : "false");
        } else {
            sb_printf(out, "    static constexpr float %s = ", up);
            cu_float(out, ropt_num(b, i));
            sb_puts(out, ";\n");
        }
    }
    sb_printf(out, "    static constexpr bool SAM = %s, SAM_ADAPTIVE = %s;\n    static constexpr float SAM_RHO = ",
              sam ? "true" : "false", sam && ropt_int(o, SAM_ADAPTIVE) ? "true" : "false");
    cu_float(out, sam ? ropt_num(o, SAM_RHO) : 0.0);
    sb_puts(out, ";\n};\n\n");
    if (sam) {
        emit_wrapper(out, "sam_sumsq", "const float *w, const float *g, double *partial",
                     "sam_sumsq<G_optim>(w, g, partial)");
        emit_wrapper(out, "sam_ascend", "float *w, const float *g, float *saved, const double *partial, int nparts",
                     "sam_ascend<G_optim>(w, g, saved, partial, nparts)");
    }
    /* the template: runtime/cuda/fused.cuh's update_* (SAM starts from the saved weights) */
    char kname[64], call[128];
    snprintf(kname, sizeof kname, "update_%s%s", sam ? "sam_" : "", name);
    snprintf(call, sizeof call, "%s(w, g, state, saved, sc)",
             b->index == O_SGD       ? "sgd_update<G_optim>"
             : b->index == O_ADAM    ? "adam_update<G_optim, false>"
             : b->index == O_ADAMW   ? "adam_update<G_optim, true>"
                                     : "rmsprop_update<G_optim>");
    emit_wrapper(out, kname, "float *w, const float *g, float *state, const float *saved, const step_scalars *sc", call);
}

/* The image size once loaded and resized (as emit_c.c's data_dims). */
static void data_dims(const ir_program *p, int *c, int *h, int *w)
{
    const dataset_info *ds = ir_dataset(p);
    long long lc, lh, lw;
    dims3(&p->model.input, &lc, &lh, &lw);
    *c = ds ? ds->channels : (int)lc;
    *h = ds ? ds->height : (int)lh;
    *w = ds ? ds->width : (int)lw;
    for (int i = 0; i < p->ndata_ops; i++)
        if (p->data_ops[i]->index == D_RESIZE) *h = *w = ropt_int(p->data_ops[i], RESIZE_SIZE);
}

static void emit_normalize_consts(const ir_program *p, int channels, strbuf *out)
{
    const resolved *norm = NULL;
    for (int i = 0; i < p->ndata_ops; i++)
        if (p->data_ops[i]->index == D_NORMALIZE) norm = p->data_ops[i];
    sb_printf(out, "    static constexpr bool NORMALIZE = %s;\n", norm ? "true" : "false");
    for (int pass = 0; pass < 2; pass++) {
        sb_printf(out, "    static constexpr float %s[%d] = {", pass ? "STD" : "MEAN", channels);
        for (int ch = 0; ch < channels; ch++) {
            double v = pass ? 1.0 : 0.0;
            if (norm) {
                const optval *o = &norm->v[pass ? NORM_STD : NORM_MEAN];
                int k = ch < o->nlist ? ch : o->nlist - 1;
                v = o->list[k];
            }
            sb_puts(out, ch ? ", " : " ");
            cu_float(out, v);
        }
        sb_puts(out, " };\n");
    }
}

/* Straight-line code for augmentation op j on the block's image in cur (C x h x w). */
static void emit_aug_op(strbuf *out, const resolved *op, int j, int c, int *h, int *w)
{
    switch ((augment_op_id)op->index) {
    case A_ROTATE:
        sb_printf(out, "    { /* op %d: rotate */\n        float u = nr_stream_uniform(st, op_draw(%d, 0));\n", j, j);
        sb_puts(out, "        float deg = ");
        cu_float(out, ropt_num(op, ROT_DEGREES));
        sb_printf(out, ";\n        rotate_image(cur, spare, %d, %d, %d, -deg + 2.0f * deg * u, %s, ", c, *h, *w,
                  ropt_int(op, ROT_INTERPOLATION) == 1 ? "true" : "false");
        cu_float(out, ropt_num(op, ROT_FILL));
        sb_puts(out, ");\n        float *t = cur; cur = spare; spare = t;\n        __syncthreads();\n    }\n");
        break;
    case A_HFLIP:
        sb_printf(out, "    /* op %d: hflip */\n    if (nr_stream_uniform(st, op_draw(%d, 0)) < ", j, j);
        cu_float(out, ropt_num(op, HFLIP_P));
        sb_printf(out, ") {\n        for (int k = threadIdx.x; k < %d; k += blockDim.x) spare[k] = cur[k - k %% %d + %d - 1 - k %% %d];\n"
                       "        float *t = cur; cur = spare; spare = t;\n        __syncthreads();\n    }\n",
                  c * *h * *w, *w, *w, *w);
        break;
    case A_CROP: {
        int size = ropt_int(op, CROP_SIZE) > 0 ? ropt_int(op, CROP_SIZE) : *h, pad = ropt_int(op, CROP_PADDING);
        sb_printf(out, "    { /* op %d: crop(%d, padding=%d) */\n", j, size, pad);
        sb_printf(out, "        int top = nr_window_start(%d, %d, st, op_draw(%d, 0)), left = nr_window_start(%d, %d, st, op_draw(%d, 1));\n",
                  *h + 2 * pad, size, j, *w + 2 * pad, size, j);
        sb_printf(out, "        for (int k = threadIdx.x; k < %d; k += blockDim.x) {\n"
                       "            int x = k %% %d, y = k / %d %% %d, ch = k / %d;\n"
                       "            int sy = top + y - %d, sx = left + x - %d;\n"
                       "            spare[k] = sy >= 0 && sy < %d && sx >= 0 && sx < %d ? cur[(ch * %d + sy) * %d + sx] : 0.0f;\n"
                       "        }\n        float *t = cur; cur = spare; spare = t;\n        __syncthreads();\n    }\n",
                  c * size * size, size, size, size, size * size, pad, pad, *h, *w, *h, *w);
        *h = *w = size;
        break;
    }
    case A_NOISE:
        sb_printf(out, "    /* op %d: noise%s */\n    for (int k = threadIdx.x; k < %d; k += blockDim.x) {\n", j,
                  ropt_int(op, ANOISE_AT) == 1 ? " after normalize" : "", c * *h * *w);
        sb_printf(out, "        float v = %s[k] + nr_stream_normal(st, op_draw(%d, 1) + k) * ",
                  ropt_int(op, ANOISE_AT) == 1 ? "x" : "cur", j);
        cu_float(out, ropt_num(op, ANOISE_STD));
        sb_puts(out, ";\n");
        if (op->v[ANOISE_CLAMP].nlist == 2) {
            sb_puts(out, "        v = v < ");
            cu_float(out, op->v[ANOISE_CLAMP].list[0]);
            sb_puts(out, " ? ");
            cu_float(out, op->v[ANOISE_CLAMP].list[0]);
            sb_puts(out, " : v > ");
            cu_float(out, op->v[ANOISE_CLAMP].list[1]);
            sb_puts(out, " ? ");
            cu_float(out, op->v[ANOISE_CLAMP].list[1]);
            sb_puts(out, " : v;\n");
        }
        sb_printf(out, "        %s[k] = v;\n    }\n%s", ropt_int(op, ANOISE_AT) == 1 ? "x" : "cur",
                  ropt_int(op, ANOISE_AT) == 1 ? "" : "    __syncthreads();\n");
        break;
    }
}

/* The noise test's own normalize (none: nothing), applied to v of channel ch. */
static void emit_noise_normalize(strbuf *out, const resolved *op)
{
    if (!op) return;
    const optval *mean = &op->v[NORM_MEAN], *std = &op->v[NORM_STD];
    sb_puts(out, "        {\n            const float m[] = {");
    for (int j = 0; j < mean->nlist; j++) {
        sb_puts(out, j ? ", " : " ");
        cu_float(out, mean->list[j]);
    }
    sb_puts(out, " }, s[] = {");
    for (int j = 0; j < std->nlist; j++) {
        sb_puts(out, j ? ", " : " ");
        cu_float(out, std->list[j]);
    }
    sb_printf(out, " };\n            v = (v - m[%s]) / s[%s];\n        }\n", mean->nlist == 1 ? "0" : "ch",
              std->nlist == 1 ? "0" : "ch");
}

static void emit_data(const ir_program *p, strbuf *out)
{
    int c, h, w;
    data_dims(p, &c, &h, &w);
    int img = c * h * w, most = img, oh = h, ow = w;
    for (int j = 0; j < p->naug_ops; j++)
        if (p->aug_ops[j]->index == A_CROP) {
            int s = ropt_int(p->aug_ops[j], CROP_SIZE) > 0 ? ropt_int(p->aug_ops[j], CROP_SIZE) : oh;
            oh = ow = s;
            if (c * s * s > most) most = c * s * s;
        }
    sb_puts(out, "/* ==== data: the uint8 set stays on the GPU; a batch is gathered through the\n"
                 " * shuffled order with runtime/preprocess.c's arithmetic and Philox draws ==== */\n");
    sb_printf(out, "struct G_data {\n    static constexpr int C = %d, H = %d, W = %d, IMAGE = %d;\n", c, h, w, img);
    sb_printf(out, "    static constexpr int OUT_H = %d, OUT_W = %d, SCRATCH = %d;  /* floats per image, twice */\n", oh, ow,
              most);
    sb_printf(out, "    static constexpr int COPIES = %d, OPS = %d;\n", ropt_int(p->augment, AUG_COPIES), p->naug_ops);
    emit_normalize_consts(p, c, out);
    sb_puts(out, "};\n\n");
    sb_puts(out, "/* One block per image of the batch: sample s of the epoch is augmented copy s / ntrain\n"
                 " * of training image train_idx[s % ntrain]; scratch holds 2 * SCRATCH floats per image. */\n"
                 "extern \"C\" __global__ void __launch_bounds__(NR_CUDA_BLOCK) data_train(const unsigned char *pixels, "
                 "const unsigned char *labels_in, const u32 *order, const u32 *train_idx, i64 first, int n, u32 ntrain, "
                 "u32 epoch, u64 seed, float *x, int *labels, float *scratch)\n{\n");
    sb_puts(out, "    int j = blockIdx.x;\n    if (j >= n) return;\n"
                 "    u32 s = order[first + j], copy = s / ntrain, img = train_idx[s % ntrain];\n"
                 "    const unsigned char *px = pixels + (i64)img * G_data::IMAGE;\n"
                 "    float *out = x + (i64)j * G_data::C * G_data::OUT_H * G_data::OUT_W;\n"
                 "    if (threadIdx.x == 0) labels[j] = labels_in[img];\n"
                 "    bool augment = G_data::OPS > 0 && (G_data::COPIES == 0 || copy > 0);\n"
                 "    if (!augment) {\n"
                 "        for (int k = threadIdx.x; k < G_data::IMAGE; k += blockDim.x)\n"
                 "            out[k] = normalized<G_data>(k / (G_data::H * G_data::W), (float)px[k] / 255.0f);\n"
                 "        return;\n    }\n");
    if (p->naug_ops) {
        sb_puts(out, "    nr_stream st = nr_stream_of(seed, NR_RNG_AUGMENT, G_data::COPIES ? 0x80000000u | copy : epoch, img);\n"
                     "    float *cur = scratch + (i64)j * 2 * G_data::SCRATCH, *spare = cur + G_data::SCRATCH;\n"
                     "    for (int k = threadIdx.x; k < G_data::IMAGE; k += blockDim.x) cur[k] = (float)px[k] / 255.0f;\n"
                     "    __syncthreads();\n");
        int ch = h, cw = w;
        for (int j = 0; j < p->naug_ops; j++)
            if (!(p->aug_ops[j]->index == A_NOISE && ropt_int(p->aug_ops[j], ANOISE_AT) == 1))
                emit_aug_op(out, p->aug_ops[j], j, c, &ch, &cw);
        sb_printf(out, "    for (int k = threadIdx.x; k < %d; k += blockDim.x) out[k] = normalized<G_data>(k / %d, cur[k]);\n",
                  c * ch * cw, ch * cw);
        sb_puts(out, "    float *xo = out;\n    (void)xo;\n");
        for (int j = 0; j < p->naug_ops; j++)
            if (p->aug_ops[j]->index == A_NOISE && ropt_int(p->aug_ops[j], ANOISE_AT) == 1) {
                sb_puts(out, "    {\n        float *x = out;\n");
                emit_aug_op(out, p->aug_ops[j], j, c, &ch, &cw);
                sb_puts(out, "    }\n");
            }
    } else {
        sb_puts(out, "    (void)seed;\n    (void)epoch;\n    (void)scratch;\n");
    }
    sb_puts(out, "}\n\n");
    sb_puts(out, "/* Evaluation: images idx[first + j] (idx NULL: first + j), no augmentation. */\n"
                 "extern \"C\" __global__ void __launch_bounds__(NR_CUDA_BLOCK) data_eval(const unsigned char *pixels, "
                 "const unsigned char *labels_in, const u32 *idx, i64 first, int n, float *x, int *labels)\n{\n"
                 "    gather_eval<G_data>(pixels, labels_in, idx, first, n, x, labels);\n}\n\n");
    if (!p->noise_test) return;
    const resolved *nt = p->noise_test;
    int before = ropt_int(nt, NT_AT) == NT_BEFORE_NORMALIZE, same = ropt_int(nt, NT_SAME_NOISE) != 0;
    sb_printf(out, "/* The noise test: level `level` of std, draw k of the image's stream per pixel, %s normalize. */\n"
                   "extern \"C\" __global__ void __launch_bounds__(NR_CUDA_BLOCK) data_noisy(const unsigned char *pixels, "
                   "const unsigned char *labels_in, i64 first, int n, int level, float std, float *x, int *labels)\n{\n"
                   "    GRID_STRIDE(i, (i64)n * G_data::IMAGE) {\n"
                   "        i64 j = i / G_data::IMAGE;\n        int k = (int)(i %% G_data::IMAGE), ch = k / (G_data::H * G_data::W);\n"
                   "        u32 img = (u32)(first + j);\n",
              before ? "before" : "after");
    sb_printf(out, "        nr_stream st = nr_stream_of(%uull, NR_RNG_NOISE_TEST, %s, %s);\n", (unsigned)ropt_num(nt, NT_SEED),
              same ? "0" : "(u32)level", same ? "0" : "img + 1");
    sb_puts(out, "        float v = (float)pixels[(i64)img * G_data::IMAGE + k] / 255.0f;\n");
    if (!before) {
        sb_puts(out, "        v = normalized<G_data>(ch, v);\n");
        emit_noise_normalize(out, p->noise_normalize);
    }
    sb_puts(out, "        v = v + nr_stream_normal(st, (u64)k) * std;\n");
    if (nt->v[NT_CLAMP].nlist == 2) {
        sb_puts(out, "        v = v < ");
        cu_float(out, nt->v[NT_CLAMP].list[0]);
        sb_puts(out, " ? ");
        cu_float(out, nt->v[NT_CLAMP].list[0]);
        sb_puts(out, " : v > ");
        cu_float(out, nt->v[NT_CLAMP].list[1]);
        sb_puts(out, " ? ");
        cu_float(out, nt->v[NT_CLAMP].list[1]);
        sb_puts(out, " : v;\n");
    }
    if (before) {
        sb_puts(out, "        v = normalized<G_data>(ch, v);\n");
        emit_noise_normalize(out, p->noise_normalize);
    }
    sb_puts(out, "        x[i] = v;\n        if (k == 0) labels[j] = labels_in[img];\n    }\n}\n\n");
}

void emit_cuda(const ir_program *p, strbuf *out)
{
    cuda_plan pl;
    cuda_plan_build(p, &pl);
    sb_printf(out, "/* Generated by netc: the CUDA kernels of model %s", "");
    ident(out, p->model.name);
    sb_puts(out, ", compiled at run time by NVRTC\n"
                 " * (with --fmad=false, as the CPU reference is C without contraction).\n"
                 " * Shapes, strides and options are compile-time constants; N (the batch) is an argument,\n"
                 " * as the last batch of an epoch is smaller. netc --print-kernels lists the plan. */\n\n");
    sb_puts(out, nr_cuda_model_prelude);
    /* NVRTC's messages about the model's part name the lines of this output */
    size_t lines = 1;
    for (size_t i = 0; i < out->len; i++) lines += out->data[i] == '\n';
    sb_printf(out, "\n/* ==== the model's part ==== */\n#line %zu \"", lines + 3);
    ident(out, p->model.name);
    sb_puts(out, ".cu\"\n\n");
    emit_data(p, out);
    int first_compute = 1;
    /* a final softmax is the loss kernel's (as in cuda_plan_build) */
    int tail = pl.ngroups > 0 && pl.groups[pl.ngroups - 1].softmax >= 0 ? pl.ngroups - 1 : pl.ngroups;
    for (int i = 0; i < tail; i++) {
        emit_group(p, &pl.groups[i], first_compute && pl.groups[i].view < 0, out);
        if (pl.groups[i].view < 0) first_compute = 0;
    }
    emit_loss(p, &pl, out);
    emit_optimizer(p, out);
    cuda_plan_free(&pl);
}
