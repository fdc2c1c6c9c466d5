#include "sema.h"
#include "util.h"
#include <stdlib.h>
#include <string.h>

struct param_env {
    const ast_item **params;
    int nparams;
    const override *ov;
    int nov;
};

static const ast_value *lookup_param(const param_env *env, const char *name)
{
    for (int i = env->nov - 1; i >= 0; i--)
        if (strcmp(env->ov[i].name, name) == 0) return env->ov[i].value;
    for (int i = 0; i < env->nparams; i++)
        if (strcmp(env->params[i]->name, name) == 0) return env->params[i]->value;
    return NULL;
}

/* sigil: "$" where the user writes a reference, "" where a bare name (sweep, -D). */
static void hint_param_names(diag *d, const param_env *env, const char *name, const char *sigil)
{
    const char **names = xmalloc((size_t)(env->nparams + 1) * sizeof *names);
    for (int i = 0; i < env->nparams; i++) names[i] = env->params[i]->name;
    names[env->nparams] = NULL;
    const char *near = closest_name(name, names);
    if (near) diag_hint(d, "did you mean '%s%s'?", sigil, near);
    else if (env->nparams == 0) diag_hint(d, "declare it at the top of the file: param %s = VALUE", name);
    else diag_hint(d, "declare it with 'param %s = VALUE'", name);
    free(names);
}

const ast_value *param_env_deref(const param_env *env, const ast_value *v, diag_list *dl)
{
    const ast_value *start = v;
    for (int depth = 0; v && v->kind == V_PARAM; depth++) {
        if (depth > 32) {
            diag_add(dl, DIAG_ERROR, start->where, "parameter $%s refers to itself", start->s);
            return NULL;
        }
        const ast_value *next = env ? lookup_param(env, v->s) : NULL;
        if (!next) {
            diag *d = diag_add(dl, DIAG_ERROR, v->where, "unknown parameter '$%s'", v->s);
            if (env) hint_param_names(d, env, v->s, "$");
            return NULL;
        }
        v = next;
    }
    return v;
}

/* ---- small helpers ---------------------------------------------------- */

typedef struct sema {
    const ast_file *file;
    diag_list *dl;
    param_env env;
    ir_program *prog;
    const ast_item *blocks[B_COUNT];
    int gap;                 /* an enabled layer since the last node did not resolve */
    int layer_errors;        /* errors of layer statements: they leave the other layers checkable */
} sema;

static int eval_bool(sema *s, const ast_value *v0, int *out)
{
    const ast_value *v = param_env_deref(&s->env, v0, s->dl);
    if (!v) return -1;
    if (v->kind == V_IDENT && (!strcmp(v->s, "true") || !strcmp(v->s, "false"))) {
        *out = !strcmp(v->s, "true");
        return 0;
    }
    diag *d = diag_add(s->dl, DIAG_ERROR, v0->where, "a condition must be true or false, not %s %s",
                       value_kind_article(v->kind), value_kind_name(v->kind));
    diag_hint(d, "declare it as 'param NAME = true' and write 'if $NAME'");
    return -1;
}

static char *value_text(const ast_value *v)
{
    strbuf sb;
    sb_init(&sb);
    ast_value_print(v, &sb);
    return sb_steal(&sb);
}

/* ---- parameters and sweeps -------------------------------------------- */

static void collect_params(sema *s)
{
    const ast_file *f = s->file;
    for (int i = 0; i < f->nitems; i++) {
        const ast_item *it = f->items[i];
        if (it->kind != T_PARAM) continue;
        for (int j = 0; j < s->env.nparams; j++) {
            if (strcmp(s->env.params[j]->name, it->name) == 0) {
                diag *d = diag_add(s->dl, DIAG_ERROR, it->name_loc, "parameter '%s' is declared twice",
                                   it->name);
                diag_hint(d, "the first declaration is on line %d", s->env.params[j]->name_loc.line);
            }
        }
        s->env.params = xrealloc(s->env.params, (size_t)(s->env.nparams + 1) * sizeof *s->env.params);
        s->env.params[s->env.nparams++] = it;
    }
    for (int i = 0; i < s->env.nov; i++) {
        const override *o = &s->env.ov[i];
        int known = 0;
        for (int j = 0; j < s->env.nparams; j++) known |= !strcmp(s->env.params[j]->name, o->name);
        if (!known) {
            diag *d = diag_add(s->dl, DIAG_ERROR, o->name_loc, "-D %s: the file declares no parameter '%s'",
                               o->name, o->name);
            hint_param_names(d, &s->env, o->name, "");
        }
    }
    ir_program *p = s->prog;
    p->params = xcalloc((size_t)s->env.nparams + 1, sizeof *p->params);
    for (int i = 0; i < s->env.nparams; i++) {
        const char *name = s->env.params[i]->name;
        const ast_value *v = lookup_param(&s->env, name);
        p->params[i].name = xstrdup(name);
        p->params[i].value_text = value_text(v);
        p->params[i].overridden = v != s->env.params[i]->value;
    }
    p->nparams = s->env.nparams;
}

static void collect_sweeps(sema *s)
{
    const ast_file *f = s->file;
    ir_program *p = s->prog;
    for (int i = 0; i < f->nitems; i++) {
        const ast_item *it = f->items[i];
        if (it->kind != T_SWEEP) continue;
        int ok = 1;
        for (int n = 0; n < it->nnames; n++) {
            if (!lookup_param(&s->env, it->names[n])) {
                diag *d = diag_add(s->dl, DIAG_ERROR, it->name_locs[n], "sweep over '%s', which is not a parameter",
                                   it->names[n]);
                hint_param_names(d, &s->env, it->names[n], "");
                ok = 0;
            }
        }
        const ast_value *vals = it->value;
        if (vals->kind != V_LIST || vals->nitems == 0) {
            diag *d = diag_add(s->dl, DIAG_ERROR, vals->where, "a sweep needs a non-empty list of values");
            diag_hint(d, "for example: sweep lr = [0.001, 0.01]");
            continue;
        }
        if (it->nnames > 1) {
            for (int k = 0; k < vals->nitems; k++) {
                const ast_value *pt = vals->items[k];
                if (pt->kind != V_LIST || pt->nitems != it->nnames) {
                    diag *d = diag_add(s->dl, DIAG_ERROR, pt->where,
                                       "each value of this sweep must be a list of %d values, one per name",
                                       it->nnames);
                    diag_hint(d, "for example: sweep a, b = [[1, 2], [3, 4]]");
                    ok = 0;
                }
            }
        }
        if (!ok) continue;
        p->sweeps = xrealloc(p->sweeps, (size_t)(p->nsweeps + 1) * sizeof *p->sweeps);
        ir_sweep *sw = &p->sweeps[p->nsweeps++];
        sw->nnames = it->nnames;
        sw->names = xmalloc((size_t)it->nnames * sizeof *sw->names);
        for (int n = 0; n < it->nnames; n++) sw->names[n] = xstrdup(it->names[n]);
        sw->values = ast_value_clone(vals);
        sw->where = it->where;
    }
}

/* ---- blocks ----------------------------------------------------------- */

static void find_blocks(sema *s)
{
    const ast_file *f = s->file;
    for (int i = 0; i < f->nitems; i++) {
        const ast_item *it = f->items[i];
        if (it->kind != T_BLOCK) continue;
        int b = find_call(&block_settings, it->kw);
        if (b < 0) {
            diag *d = diag_add(s->dl, DIAG_ERROR, it->kw_loc, "unknown block '%s'", it->kw);
            const char *names[B_COUNT + 1];
            for (int k = 0; k < B_COUNT; k++) names[k] = table_def(&block_settings, k)->name;
            names[B_COUNT] = NULL;
            const char *near = closest_name(it->kw, names);
            if (near) diag_hint(d, "did you mean '%s'?", near);
            else diag_hint(d, "blocks are model, data, augment, train and noise_test");
            continue;
        }
        if (s->blocks[b]) {
            diag *d = diag_add(s->dl, DIAG_ERROR, it->kw_loc, "a second '%s' block", it->kw);
            diag_hint(d, "the first is on line %d; a file describes one model", s->blocks[b]->kw_loc.line);
            continue;
        }
        if (b != B_MODEL && it->name) {
            diag *d = diag_add(s->dl, DIAG_ERROR, it->name_loc, "a '%s' block takes no name", it->kw);
            diag_hint(d, "write '%s { ... }'", it->kw);
        }
        s->blocks[b] = it;
    }
    if (!s->blocks[B_MODEL]) {
        loc w = { s->file->src, 0, 0, 0, 0 };
        diag *d = diag_add(s->dl, DIAG_ERROR, w, "no model block");
        diag_hint(d, "a file needs 'model NAME { input = [1, 28, 28] ... }'");
    }
}

/* Applies one `key = value` of block b to r; special keys are left to the caller. */
static void apply_setting(sema *s, block_id b, const ast_stmt *st, resolved *r)
{
    const call_def *def = table_def(&block_settings, b);
    int oi = find_opt(def, st->name);
    if (oi < 0) {
        diag *d = diag_add(s->dl, DIAG_ERROR, st->name_loc, "unknown setting '%s' in %s block", st->name,
                           def->name);
        const char **names = xmalloc((size_t)(def->nopts + 1) * sizeof *names);
        for (int i = 0; i < def->nopts; i++) names[i] = def->opts[i].name;
        names[def->nopts] = NULL;
        const char *near = closest_name(st->name, names);
        if (near) diag_hint(d, "did you mean '%s'?", near);
        else {
            strbuf sb;
            sb_init(&sb);
            for (int i = 0; i < def->nopts; i++) sb_printf(&sb, "%s%s", i ? ", " : "", names[i]);
            diag_hint(d, "the %s block's settings are: %s", def->name, sb.data ? sb.data : "none");
            sb_free(&sb);
        }
        free(names);
        return;
    }
    if (r->v[oi].given) {
        diag_add(s->dl, DIAG_ERROR, st->name_loc, "'%s' is set twice", st->name);
        return;
    }
    optval tmp = { 0 };
    if (resolve_opt(&def->opts[oi], st->value, &s->env, s->dl, &tmp) == 0) {
        optval_clear(&r->v[oi]);
        r->v[oi] = tmp;
    }
}

/* Bare call statements of a data or augment block. */
static void apply_op(sema *s, const call_table *ops, const ast_stmt *st, resolved ***list, int *n)
{
    if (st->name || st->expect) {
        diag *d = diag_add(s->dl, DIAG_ERROR, st->where, "layers belong in the model block");
        diag_hint(d, "here write settings 'key = value' or %ss such as %s(...)", ops->what,
                  table_def(ops, 0)->name);
        return;
    }
    int on = 1;
    if (st->cond) {
        if (eval_bool(s, st->cond, &on)) return;
        if (st->cond_negated) on = !on;
    }
    resolved *r = resolve_call(ops, st->value, &s->env, s->dl);
    if (!r) return;
    if (!on) {  /* checked all the same, as a disabled layer is */
        resolved_free(r);
        return;
    }
    *list = xrealloc(*list, (size_t)(*n + 1) * sizeof **list);
    (*list)[(*n)++] = r;
}

static void lower_settings_block(sema *s, block_id b, resolved *r, const call_table *ops,
                                 resolved ***list, int *n)
{
    const ast_item *blk = s->blocks[b];
    if (!blk) return;
    for (int i = 0; i < blk->nstmts; i++) {
        const ast_stmt *st = blk->stmts[i];
        if (st->kind == S_SETTING) {
            apply_setting(s, b, st, r);
        } else if (ops) {
            apply_op(s, ops, st, list, n);
        } else {
            diag *d = diag_add(s->dl, DIAG_ERROR, st->where, "the %s block holds only settings 'key = value'",
                               blk->kw);
            if (!st->name && st->value && (st->value->kind == V_IDENT || st->value->kind == V_CALL))
                diag_hint(d, "did you mean '%s = ...'?", st->value->s);
        }
    }
}

static void require_setting(sema *s, block_id b, const resolved *r, int oi)
{
    if (!s->blocks[b] || r->v[oi].given) return;
    const call_def *def = table_def(&block_settings, b);
    /* Written but invalid: that error was reported already. */
    for (int i = 0; i < s->blocks[b]->nstmts; i++) {
        const ast_stmt *st = s->blocks[b]->stmts[i];
        if (st->kind == S_SETTING && strcmp(st->name, def->opts[oi].name) == 0) return;
    }
    diag *d = diag_add(s->dl, DIAG_ERROR, s->blocks[b]->kw_loc, "the %s block needs '%s'", def->name,
                       def->opts[oi].name);
    diag_hint(d, "%s: %s", def->opts[oi].name, def->opts[oi].doc);
}

/* ---- the model block -------------------------------------------------- */

static int is_batch_dim(const ast_value *v)
{
    return v->kind == V_IDENT && strcmp(v->s, "N") == 0;
}

static void lower_input(sema *s, const ast_stmt *st)
{
    ir_model *m = &s->prog->model;
    const ast_value *v = param_env_deref(&s->env, st->value, s->dl);
    if (!v) return;
    if (v->kind != V_LIST || v->nitems < 1 || v->nitems > 4) {
        diag *d = diag_add(s->dl, DIAG_ERROR, st->value->where, "input must be a shape such as [1, 28, 28]");
        diag_hint(d, "write [C, H, W] for images or [F] for feature vectors; a leading N is allowed");
        return;
    }
    int first = (v->nitems == 4 || v->nitems == 2) ? 1 : 0;
    const ast_value *b = first ? param_env_deref(&s->env, v->items[0], s->dl) : NULL;
    if (first && !b) return;
    if (first && (b->kind != V_INT || b->i < 1) && !is_batch_dim(b)) {
        diag_add(s->dl, DIAG_ERROR, v->items[0]->where, "the batch dimension must be N or a positive number");
        return;
    }
    /* [28, 28] reads as an image size to anyone coming from a 28x28
     * dataset, and as [batch, features] by the rule for two items: only
     * N says which. */
    if (v->nitems == 2 && !is_batch_dim(b)) {
        char *text = value_text(v), *second = value_text(v->items[1]);
        diag *d = diag_add(s->dl, DIAG_ERROR, st->value->where, "input %s is ambiguous", text);
        diag_hint(d, "write [1, %lld, %s] for images of one channel, or [N, %s] for %s features",
                  b->i, second, second, second);
        free(text);
        free(second);
        return;
    }
    int rank = v->nitems - first;
    if (rank != 1 && rank != 3) {
        diag *d = diag_add(s->dl, DIAG_ERROR, v->where, "input has %d dimensions", rank);
        diag_hint(d, "write [C, H, W] for images or [F] for feature vectors");
        return;
    }
    shape sh = { rank, { 0, 0, 0 } };
    for (int i = 0; i < rank; i++) {
        const ast_value *d = param_env_deref(&s->env, v->items[first + i], s->dl);
        if (!d) return;
        if (d->kind != V_INT || d->i < 1 || d->i > (1 << 20)) {
            diag_add(s->dl, DIAG_ERROR, v->items[first + i]->where,
                     "input dimensions must be positive integers");
            return;
        }
        sh.d[i] = d->i;
    }
    m->input = sh;
    m->input_batch = first && b->kind == V_INT ? b->i : 0;
    m->input_batch_loc = v->items[0]->where;
    m->input_loc = st->value->where;
    m->input_given = 1;
}

static void add_node(ir_model *m, ir_node *n)
{
    m->nodes = xrealloc(m->nodes, (size_t)(m->count + 1) * sizeof *m->nodes);
    n->id = m->count;
    n->inputs[0] = m->count - 1;
    n->ninputs = 1;
    m->nodes[m->count++] = *n;
}

/* Resolves `expect [N, C, H, W]` (parameters allowed) into the node. */
static void lower_expect(sema *s, const ast_value *v0, ir_node *n)
{
    const ast_value *v = param_env_deref(&s->env, v0, s->dl);
    if (!v) return;
    if (v->kind != V_LIST || v->nitems < 2 || v->nitems > 4) {
        diag *d = diag_add(s->dl, DIAG_ERROR, v0->where, "expect needs a shape such as [N, 6, 28, 28] or [N, 10]");
        diag_hint(d, "the first dimension is the batch: N or a number");
        return;
    }
    const ast_value *b = param_env_deref(&s->env, v->items[0], s->dl);
    if (!b) return;
    if (!is_batch_dim(b) && (b->kind != V_INT || b->i < 1)) {
        diag_add(s->dl, DIAG_ERROR, v->items[0]->where, "the batch dimension must be N or a positive number");
        return;
    }
    n->expect_batch = b->kind == V_INT ? b->i : 0;
    n->expect_batch_loc = v->items[0]->where;
    n->expect_rank = v->nitems - 1;
    for (int i = 1; i < v->nitems; i++) {
        const ast_value *e = param_env_deref(&s->env, v->items[i], s->dl);
        if (!e) return;
        if (e->kind != V_INT) {
            diag_add(s->dl, DIAG_ERROR, v->items[i]->where, "a shape holds integers, not %s %s",
                     value_kind_article(e->kind), value_kind_name(e->kind));
            return;
        }
        n->expect_dims[i - 1] = e->i;
    }
    n->has_expect = 1;
    n->expect_loc = v0->where;
}

static void lower_layer_node(sema *s, const ast_stmt *st, int *kind_counts);

/* A layer statement's errors are counted apart: the shapes of the layers
 * before a layer that does not resolve are still checked. */
static void lower_layer(sema *s, const ast_stmt *st, int *kind_counts)
{
    int before = s->dl->errors;
    lower_layer_node(s, st, kind_counts);
    s->layer_errors += s->dl->errors - before;
}

static void lower_layer_node(sema *s, const ast_stmt *st, int *kind_counts)
{
    ir_model *m = &s->prog->model;
    int on = 1;
    if (st->cond) {
        if (eval_bool(s, st->cond, &on)) {
            s->gap = 1;
            return;
        }
        if (st->cond_negated) on = !on;
    }
    /* A disabled layer's kind and options are checked all the same, so a
     * typo does not wait for the run that enables it. Its shape is not:
     * the model without it may be the only one its author means to build. */
    resolved *op = resolve_call(&layer_calls, st->value, &s->env, s->dl);
    if (!op) {
        s->gap |= on;
        return;
    }
    if (!on) {
        resolved_free(op);
        return;
    }
    ir_node n = { 0 };
    n.after_gap = s->gap;
    s->gap = 0;
    n.op = op;
    n.where = st->where;
    if (st->expect) lower_expect(s, st->expect, &n);
    int k = op->index;
    kind_counts[k]++;
    if (st->name) {
        n.name = xstrdup(st->name);
    } else {
        strbuf sb;
        sb_init(&sb);
        sb_printf(&sb, "%s_%d", op->def->name, kind_counts[k]);
        n.name = sb_steal(&sb);
        n.auto_named = 1;
    }
    for (int i = 0; i < m->count; i++) {
        if (strcmp(m->nodes[i].name, n.name) == 0) {
            diag *d = diag_add(s->dl, DIAG_ERROR, st->name ? st->name_loc : st->where,
                               "layer name '%s' is used twice", n.name);
            diag_hint(d, "the first '%s' is on line %d", n.name, m->nodes[i].where.line);
            break;
        }
    }
    add_node(m, &n);
}

/* `conv1 = conv(6)` is a common slip for `conv1: conv(6)`. */
static int looks_like_layer(const ast_value *v)
{
    if (v->kind == V_CALL) return v->callee_is_param || find_call(&layer_calls, v->s) >= 0;
    return v->kind == V_IDENT && find_call(&layer_calls, v->s) >= 0;
}

static void lower_model(sema *s)
{
    const ast_item *blk = s->blocks[B_MODEL];
    if (!blk) return;
    ir_model *m = &s->prog->model;
    m->name = xstrdup(blk->name ? blk->name : "model");
    m->where = blk->where;
    if (!blk->name) {
        diag *d = diag_add(s->dl, DIAG_ERROR, blk->kw_loc, "the model needs a name");
        diag_hint(d, "write 'model NAME { ... }'; the name is used for the program and its run directory");
    }
    resolved *settings = resolved_new(table_def(&block_settings, B_MODEL), B_MODEL, blk->where);
    int kind_counts[L_COUNT] = { 0 };
    for (int i = 0; i < blk->nstmts; i++) {
        const ast_stmt *st = blk->stmts[i];
        if (st->kind == S_LAYER) { lower_layer(s, st, kind_counts); continue; }
        if (strcmp(st->name, "input") == 0) {
            if (m->input_given) diag_add(s->dl, DIAG_ERROR, st->name_loc, "'input' is set twice");
            else lower_input(s, st);
            continue;
        }
        if (find_opt(settings->def, st->name) < 0 && looks_like_layer(st->value)) {
            diag *d = diag_add(s->dl, DIAG_ERROR, st->name_loc,
                               "'%s = ...' is a setting; layers are written 'name: kind(...)'", st->name);
            diag_hint(d, "write '%s: ...'", st->name);
            continue;
        }
        apply_setting(s, B_MODEL, st, settings);
    }
    m->tail_gap = s->gap;
    if (settings->v[MODEL_CLASSES].given) m->classes = ropt_int(settings, MODEL_CLASSES);
    m->init = ropt_int(settings, MODEL_INIT) + INIT_PYTORCH;
    m->auto_flatten = ropt_int(settings, MODEL_AUTO_FLATTEN);
    resolved_free(settings);
    int written = 0;
    for (int i = 0; i < blk->nstmts; i++) written |= blk->stmts[i]->kind == S_LAYER;
    if (!written) {
        diag *d = diag_add(s->dl, DIAG_ERROR, blk->kw_loc, "model '%s' has no layers", m->name);
        diag_hint(d, "add layers such as 'fc: dense(10)'");
    }
}

/* The noise test's own normalize(): at most one. */
static void keep_noise_normalize(sema *s, resolved **ops, int nops)
{
    for (int i = 0; i < nops; i++) {
        if (!s->prog->noise_normalize) {
            s->prog->noise_normalize = ops[i];
            continue;
        }
        diag *d = diag_add(s->dl, DIAG_ERROR, ops[i]->where, "a second normalize in the noise_test block");
        diag_hint(d, "the first is on line %d; one normalize takes a value per channel",
                  s->prog->noise_normalize->where.line);
        resolved_free(ops[i]);
    }
    free(ops);
}

static void check_schedule(sema *s)
{
    const resolved *train = s->prog->train, *sch = train->v[TRAIN_SCHEDULE].call;
    /* Left out, t_max is the whole run in what 'per' counts. Given with
     * per=iteration, a t_max no larger than the epochs was written in
     * epochs: the cosine would end within the first epoch. */
    if (sch && sch->index == S_COSINE && ropt_int(sch, COS_PER) == PER_ITERATION && ropt_given(sch, COS_T_MAX) &&
        ropt_int(sch, COS_T_MAX) <= ropt_int(train, TRAIN_EPOCHS)) {
        diag *d = diag_add(s->dl, DIAG_WARNING, sch->v[COS_T_MAX].where,
                           "t_max = %d counts iterations (per=iteration), no more than train.epochs (%d)",
                           ropt_int(sch, COS_T_MAX), ropt_int(train, TRAIN_EPOCHS));
        diag_hint(d, "write per=epoch to count epochs, or leave t_max out for the whole run");
    }
    if (!sch || sch->index != S_MULTISTEP) return;
    int ms = sch->v[MS_MILESTONES].given, fr = sch->v[MS_FRACTIONS].given;
    if (ms && ropt_int(sch, MS_PER) == PER_EPOCH) {
        const optval *m = &sch->v[MS_MILESTONES];
        int epochs = ropt_int(train, TRAIN_EPOCHS);
        if (m->list[m->nlist - 1] >= epochs) {
            diag *d = diag_add(s->dl, DIAG_WARNING, m->where,
                               "milestone %.0f is never reached: training runs %d epochs (0 to %d)",
                               m->list[m->nlist - 1], epochs, epochs - 1);
            diag_hint(d, "milestones count epochs from 0; use fractions=[...] to follow train.epochs");
        }
    }
    if (ms == fr) {
        diag *d = diag_add(s->dl, DIAG_ERROR, sch->where, "multistep needs either milestones or fractions");
        diag_hint(d, "for example multistep(fractions=[0.3, 0.6, 0.8], gamma=0.2)");
    }
}

static void check_optimizer(sema *s)
{
    const resolved *opt = s->prog->train->v[TRAIN_OPTIMIZER].call;
    if (!opt) return;
    if (opt->index == O_SAM && opt->v[SAM_BASE].call && opt->v[SAM_BASE].call->index == O_SAM)
        diag_add(s->dl, DIAG_ERROR, opt->v[SAM_BASE].where, "SAM cannot wrap SAM");
    if (opt->index == O_SGD && ropt_num(opt, SGD_NESTEROV) &&
        (ropt_num(opt, SGD_MOMENTUM) <= 0 || ropt_num(opt, SGD_DAMPENING) != 0)) {
        diag *d = diag_add(s->dl, DIAG_ERROR, opt->where, "Nesterov momentum needs momentum > 0 and no dampening");
        diag_hint(d, "for example sgd(lr=0.01, momentum=0.9, nesterov=true)");
    }
}

static int lower(const ast_file *f, const override *ov, int nov, int with_sweeps, diag_list *dl,
                 ir_program **out)
{
    ir_program *p = xcalloc(1, sizeof *p);
    p->src = f->src;
    *out = p;
    int errors_before = dl->errors, first_diag = dl->count;
    sema s = { .file = f, .dl = dl, .env = { NULL, 0, ov, nov }, .prog = p };
    collect_params(&s);
    /* A sweep point's IR is that one point: collecting (and checking) every
     * point again at each point made checking a sweep quadratic. */
    if (with_sweeps) collect_sweeps(&s);
    int errors_before_model = dl->errors;
    find_blocks(&s);
    lower_model(&s);

    p->data = resolved_new(table_def(&block_settings, B_DATA), B_DATA, f->src ? (loc){ f->src, 0, 0, 0, 0 } : (loc){ 0 });
    p->augment = resolved_new(table_def(&block_settings, B_AUGMENT), B_AUGMENT, p->data->where);
    p->train = resolved_new(table_def(&block_settings, B_TRAIN), B_TRAIN, p->data->where);
    p->has_data = s.blocks[B_DATA] != NULL;
    lower_settings_block(&s, B_DATA, p->data, &data_ops, &p->data_ops, &p->ndata_ops);
    require_setting(&s, B_DATA, p->data, DATA_DATASET);
    /* The shapes follow from the model and its data; a mistake elsewhere
     * (train, augment, noise_test, parameters) does not stop their checks. */
    int shapes_checkable = dl->errors - s.layer_errors == errors_before_model;
    lower_settings_block(&s, B_AUGMENT, p->augment, &augment_ops, &p->aug_ops, &p->naug_ops);
    lower_settings_block(&s, B_TRAIN, p->train, NULL, NULL, NULL);
    if (s.blocks[B_NOISE_TEST]) {
        p->noise_test = resolved_new(table_def(&block_settings, B_NOISE_TEST), B_NOISE_TEST,
                                     s.blocks[B_NOISE_TEST]->where);
        resolved **ops = NULL;
        int nops = 0;
        lower_settings_block(&s, B_NOISE_TEST, p->noise_test, &noise_test_ops, &ops, &nops);
        require_setting(&s, B_NOISE_TEST, p->noise_test, NT_STD);
        keep_noise_normalize(&s, ops, nops);
    }
    check_schedule(&s);
    check_optimizer(&s);
    free(s.env.params);
    if (shapes_checkable) infer_shapes(p, dl);
    diag_sort_from(dl, first_diag);
    return dl->errors > errors_before;
}

int sema_lower(const ast_file *f, const override *ov, int nov, diag_list *dl, ir_program **out)
{
    return lower(f, ov, nov, 1, dl, out);
}

int sema_lower_point(const ast_file *f, const override *ov, int nov, diag_list *dl, ir_program **out)
{
    return lower(f, ov, nov, 0, dl, out);
}

int parse_override(const char *text, diag_list *dl, override *ov, ast_file **keep, source **keep_src)
{
    const char *eq = strchr(text, '=');
    memset(ov, 0, sizeof *ov);
    if (!eq || eq == text) {
        loc w = { 0 };
        diag *d = diag_add(dl, DIAG_ERROR, w, "-D %s: expected NAME=VALUE", text);
        diag_hint(d, "for example -D act=relu or -D widths=[32, 64, 256]");
        return -1;
    }
    strbuf sb;
    sb_init(&sb);
    sb_printf(&sb, "param %.*s = %s\n", (int)(eq - text), text, eq + 1);
    *keep_src = source_new("<command line>", sb.data, sb.len);
    sb_free(&sb);
    int errors_before = dl->errors;
    parse_source(*keep_src, dl, keep);
    ast_file *f = *keep;
    if (dl->errors > errors_before || f->nitems != 1 || f->items[0]->kind != T_PARAM) {
        if (dl->errors == errors_before) {
            loc w = { *keep_src, 1, 1, 1, 1 };
            diag_add(dl, DIAG_ERROR, w, "-D %s: expected NAME=VALUE", text);
        }
        return -1;
    }
    ov->name = f->items[0]->name;
    ov->name_loc = f->items[0]->name_loc;
    ov->value = f->items[0]->value;
    return 0;
}
