#include "spec.h"
#include "util.h"
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int find_call(const call_table *t, const char *name)
{
    for (int i = 0; i < t->count; i++) {
        const call_def *d = table_def(t, i);
        if (strcmp(d->name, name) == 0) return i;
        for (const char *const *a = d->aliases; a && *a; a++)
            if (strcmp(*a, name) == 0) return i;
    }
    return -1;
}

int find_opt(const call_def *d, const char *name)
{
    for (int i = 0; i < d->nopts; i++)
        if (strcmp(d->opts[i].name, name) == 0) return i;
    return -1;
}

resolved *resolved_new(const call_def *def, int index, loc where)
{
    resolved *r = xcalloc(1, sizeof *r);
    r->def = def;
    r->index = index;
    r->where = where;
    resolved_defaults(r);
    return r;
}

void optval_clear(optval *o)
{
    free(o->str);
    free(o->list);
    resolved_free(o->call);
    memset(o, 0, sizeof *o);
}

void resolved_defaults(resolved *r)
{
    for (int i = 0; i < r->def->nopts; i++) {
        const opt_def *od = &r->def->opts[i];
        optval_clear(&r->v[i]);
        r->v[i].num = od->def;
        /* A call-valued option's default is written as the callee's name. */
        if (od->type == OPT_CALL && od->def_text && od->calls) {
            int idx = find_call(od->calls, od->def_text);
            if (idx >= 0) r->v[i].call = resolved_new(table_def(od->calls, idx), idx, r->where);
        }
    }
}

void resolved_free(resolved *r)
{
    if (!r) return;
    for (int i = 0; i < MAX_OPTS; i++) optval_clear(&r->v[i]);
    free(r);
}

const char *opt_type_name(const opt_def *od)
{
    switch (od->type) {
    case OPT_INT: return "an integer";
    case OPT_FLOAT: return "a number";
    case OPT_BOOL: return "true or false";
    case OPT_ENUM: return "one of the listed names";
    case OPT_STRING: return "a string";
    case OPT_FLOAT_LIST: return "a number or a list of numbers";
    case OPT_INT_LIST: return "an integer or a list of integers";
    case OPT_CALL: return od->calls ? od->calls->what : "a call";
    }
    return "a value";
}

/* "a, b or c" into sb */
static void list_names(strbuf *sb, const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        if (i) sb_puts(sb, i == n - 1 ? " or " : ", ");
        sb_puts(sb, names[i]);
    }
}

/* "did you mean X? expected one of: ..." where X is the candidate closest to
 * name (NULL: no suggestion). suggest, when not NULL, is a NULL-terminated
 * list to pick X from that may hold more names (aliases) than those listed. */
static void hint_choices_from(diag *d, const char *name, const char *const *choices, int n,
                              const char *const *suggest)
{
    if (!d) return;  /* past the error limit */
    const char **cands = xmalloc((size_t)(n + 1) * sizeof *cands);
    for (int i = 0; i < n; i++) cands[i] = choices[i];
    cands[n] = NULL;
    const char *near = name ? closest_name(name, suggest ? suggest : cands) : NULL;
    strbuf sb;
    sb_init(&sb);
    if (near) sb_printf(&sb, "did you mean '%s'? ", near);
    sb_puts(&sb, n <= 2 ? "expected " : "expected one of: ");
    list_names(&sb, cands, n);
    diag_hint(d, "%s", sb.data);
    sb_free(&sb);
    free(cands);
}

static void hint_choices(diag *d, const char *name, const char *const *choices, int n)
{
    hint_choices_from(d, name, choices, n, NULL);
}

static int count_choices(const char *const *c)
{
    int n = 0;
    while (c && c[n]) n++;
    return n;
}

/* A number as the user would write it: integers in full (1048576, not
 * 1.04858e+06), others in %g. */
typedef struct { char s[40]; } numtext;

static numtext num(double x)
{
    numtext t;
    if (x == floor(x) && fabs(x) < 1e18) snprintf(t.s, sizeof t.s, "%.0f", x);
    else snprintf(t.s, sizeof t.s, "%g", x);
    return t;
}

/* Values beyond what the generated program stores: an int for integer
 * options left unbounded by their table, a float32 for numbers. */
static int check_representable(const opt_def *od, double x, loc where, diag_list *dl)
{
    int is_int = od->type == OPT_INT || od->type == OPT_INT_LIST;
    if (is_int && od->max >= 1e300 && x > INT_MAX) {
        diag_add(dl, DIAG_ERROR, where, "'%s' must be at most %d, got %s", od->name, INT_MAX, num(x).s);
        return -1;
    }
    if (!is_int && fabs(x) > FLT_MAX) {
        diag_add(dl, DIAG_ERROR, where, "'%s' is %g, beyond the largest 32-bit float (%g)", od->name, x,
                 (double)FLT_MAX);
        return -1;
    }
    return 0;
}

static int check_range(const opt_def *od, double x, loc where, diag_list *dl)
{
    if (check_representable(od, x, where, dl)) return -1;
    if (x >= od->min && (od->max_exclusive ? x < od->max : x <= od->max)) return 0;
    if (od->max_exclusive) {
        diag_add(dl, DIAG_ERROR, where, "'%s' must be at least %s and less than %s, got %s", od->name,
                 num(od->min).s, num(od->max).s, num(x).s);
        return -1;
    }
    /* Upper bounds this large only guard against nonsense: not worth quoting. */
    if (x < od->min && od->min == 1e-300)
        diag_add(dl, DIAG_ERROR, where, "'%s' must be greater than 0, got %s", od->name, num(x).s);
    else if (x < od->min && od->max >= 1e5)
        diag_add(dl, DIAG_ERROR, where, "'%s' must be at least %s, got %s", od->name, num(od->min).s, num(x).s);
    else if (od->max >= 1e5)
        diag_add(dl, DIAG_ERROR, where, "'%s' must be at most %s, got %s", od->name, num(od->max).s, num(x).s);
    else
        diag_add(dl, DIAG_ERROR, where, "'%s' must be between %s and %s, got %s", od->name, num(od->min).s,
                 num(od->max).s, num(x).s);
    return -1;
}

static int number_of(const ast_value *v, double *x)
{
    if (v->kind == V_INT) { *x = (double)v->i; return 0; }
    if (v->kind == V_FLOAT) { *x = v->f; return 0; }
    return -1;
}

static int wrong_type(const opt_def *od, const ast_value *v, diag_list *dl)
{
    diag *d = diag_add(dl, DIAG_ERROR, v->where, "'%s' must be %s, not %s %s",
                       od->name, opt_type_name(od), value_kind_article(v->kind), value_kind_name(v->kind));
    if (od->type == OPT_ENUM) hint_choices(d, NULL, od->choices, count_choices(od->choices));
    else if (od->type == OPT_BOOL && (v->kind == V_INT || v->kind == V_IDENT)) diag_hint(d, "write true or false");
    return -1;
}

/* Milestones, fractions and [low, high] ranges: out of order or repeated
 * values are a slip (PyTorch would silently skip or repeat a decay). */
static int check_increasing(const opt_def *od, const ast_value *v, const ast_value *const *items,
                            const double *list, int n, diag_list *dl)
{
    for (int i = 1; i < n; i++) {
        if (list[i] > list[i - 1]) continue;
        if (od->min_len == 2 && od->max_len == 2) {
            diag *d = diag_add(dl, DIAG_ERROR, v->where, "'%s' is [low, high], but %s is not below %s",
                               od->name, num(list[0]).s, num(list[1]).s);
            diag_hint(d, "write the lower bound first, e.g. %s=[0, 1]", od->name);
        } else if (list[i] == list[i - 1]) {
            diag *d = diag_add(dl, DIAG_ERROR, items[i]->where, "'%s' holds %s twice", od->name, num(list[i]).s);
            diag_hint(d, "each value counts once; remove the repeated one");
        } else {
            diag *d = diag_add(dl, DIAG_ERROR, items[i]->where, "'%s' must increase, but %s comes after %s",
                               od->name, num(list[i]).s, num(list[i - 1]).s);
            diag_hint(d, "list them in increasing order");
        }
        return -1;
    }
    return 0;
}

static int resolve_list(const opt_def *od, const ast_value *v, const param_env *env,
                        diag_list *dl, optval *out)
{
    const ast_value *const *items = &v;
    int n = 1;
    if (v->kind == V_LIST) { items = (const ast_value *const *)v->items; n = v->nitems; }
    if ((od->min_len && n < od->min_len) || (od->max_len && n > od->max_len)) {
        if (od->min_len == od->max_len)
            diag_add(dl, DIAG_ERROR, v->where, "'%s' takes %d value%s, got %d",
                     od->name, od->min_len, od->min_len == 1 ? "" : "s", n);
        else
            diag_add(dl, DIAG_ERROR, v->where, "'%s' takes %d to %d values, got %d",
                     od->name, od->min_len, od->max_len ? od->max_len : 1 << 30, n);
        return -1;
    }
    double *list = xmalloc((size_t)(n ? n : 1) * sizeof *list);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        const ast_value *it = param_env_deref(env, items[i], dl);
        if (!it) { bad = 1; continue; }
        double x;
        if (number_of(it, &x) != 0 || (od->type == OPT_INT_LIST && it->kind != V_INT)) {
            diag_add(dl, DIAG_ERROR, it->where, "'%s' must hold %s, not %s %s", od->name,
                     od->type == OPT_INT_LIST ? "integers" : "numbers", value_kind_article(it->kind), value_kind_name(it->kind));
            bad = 1;
            continue;
        }
        if (check_range(od, x, it->where, dl)) bad = 1;
        list[i] = x;
    }
    if (!bad && od->increasing && check_increasing(od, v, items, list, n, dl)) bad = 1;
    if (bad) { free(list); return -1; }
    out->list = list;
    out->nlist = n;
    return 0;
}

int resolve_opt(const opt_def *od, const ast_value *v0, const param_env *env, diag_list *dl, optval *out)
{
    const ast_value *v = param_env_deref(env, v0, dl);
    if (!v) return -1;
    double x;
    optval_clear(out);
    out->num = od->def;
    switch (od->type) {
    case OPT_INT:
        if (v->kind != V_INT) return wrong_type(od, v, dl);
        if (check_range(od, (double)v->i, v->where, dl)) return -1;
        out->num = (double)v->i;
        break;
    case OPT_FLOAT:
        if (number_of(v, &x)) return wrong_type(od, v, dl);
        if (check_range(od, x, v->where, dl)) return -1;
        out->num = x;
        break;
    case OPT_BOOL:
        if (v->kind != V_IDENT || (strcmp(v->s, "true") && strcmp(v->s, "false")))
            return wrong_type(od, v, dl);
        out->num = strcmp(v->s, "true") == 0;
        break;
    case OPT_ENUM: {
        if (v->kind != V_IDENT) return wrong_type(od, v, dl);
        int n = count_choices(od->choices), found = -1;
        for (int i = 0; i < n; i++)
            if (strcmp(od->choices[i], v->s) == 0) found = i;
        if (found < 0) {
            diag *d = diag_add(dl, DIAG_ERROR, v->where, "unknown value '%s' for '%s'", v->s, od->name);
            hint_choices(d, v->s, od->choices, n);
            return -1;
        }
        out->num = found;
        break;
    }
    case OPT_STRING:
        if (v->kind != V_STRING) return wrong_type(od, v, dl);
        out->str = xstrdup(v->s);
        break;
    case OPT_FLOAT_LIST:
    case OPT_INT_LIST:
        if (v->kind != V_LIST && number_of(v, &x)) return wrong_type(od, v, dl);
        if (resolve_list(od, v, env, dl, out)) return -1;
        break;
    case OPT_CALL:
        out->call = resolve_call(od->calls, v, env, dl);
        if (!out->call) return -1;
        break;
    }
    out->given = 1;
    out->where = v0->where;
    return 0;
}

static void unknown_call(const call_table *t, const char *name, loc where, diag_list *dl)
{
    diag *d = diag_add(dl, DIAG_ERROR, where, "unknown %s '%s'", t->what, name);
    /* Aliases are suggested too (linaer -> linear) but not listed. */
    int n = 0, cap = 2 * t->count + 1;
    const char **names = xmalloc((size_t)cap * sizeof *names);
    for (int i = 0; i < t->count; i++) names[n++] = table_def(t, i)->name;
    for (int i = 0; i < t->count; i++)
        for (const char *const *a = table_def(t, i)->aliases; a && *a && n < cap - 1; a++) names[n++] = *a;
    names[n] = NULL;
    hint_choices_from(d, name, names, t->count, names);
    free(names);
}

static int positional_opt(const call_def *def, int pos)
{
    for (int i = 0; i < def->nopts; i++)
        if (def->opts[i].positional == pos) return i;
    return -1;
}

static void hint_option_names(diag *d, const call_def *def, const char *name)
{
    if (def->nopts == 0) { diag_hint(d, "'%s' takes no options", def->name); return; }
    const char **names = xmalloc((size_t)(def->nopts + 1) * sizeof *names);
    for (int i = 0; i < def->nopts; i++) names[i] = def->opts[i].name;
    names[def->nopts] = NULL;
    hint_choices(d, name, names, def->nopts);
    free(names);
}

resolved *resolve_call(const call_table *t, const ast_value *call0, const param_env *env, diag_list *dl)
{
    const ast_value *call = param_env_deref(env, call0, dl);
    if (!call) return NULL;
    const char *name;
    if (call->kind == V_IDENT) {
        name = call->s;
    } else if (call->kind == V_CALL && !call->callee_is_param) {
        name = call->s;
    } else if (call->kind == V_CALL) {
        ast_value ref = { .kind = V_PARAM, .where = call->where, .s = call->s };
        const ast_value *callee = param_env_deref(env, &ref, dl);
        if (!callee) return NULL;
        if (callee->kind != V_IDENT) {
            diag_add(dl, DIAG_ERROR, call->where, "$%s must name a %s to be called, not %s %s",
                     call->s, t->what, value_kind_article(callee->kind), value_kind_name(callee->kind));
            return NULL;
        }
        name = callee->s;
    } else {
        diag *d = diag_add(dl, DIAG_ERROR, call->where, "expected a %s, got a %s",
                           t->what, value_kind_name(call->kind));
        diag_hint(d, "for example %s", table_def(t, 0)->name);
        return NULL;
    }
    int idx = find_call(t, name);
    if (idx < 0) { unknown_call(t, name, call->where, dl); return NULL; }
    const call_def *def = table_def(t, idx);
    resolved *r = resolved_new(def, idx, call->where);
    int ok = 1, pos = 0;
    for (int a = 0; call->kind == V_CALL && a < call->nargs; a++) {
        const ast_arg *arg = &call->args[a];
        int oi;
        if (arg->name) {
            oi = find_opt(def, arg->name);
            if (oi < 0) {
                diag *d = diag_add(dl, DIAG_ERROR, arg->name_loc, "%s '%s' has no option '%s'",
                                   t->what, def->name, arg->name);
                hint_option_names(d, def, arg->name);
                ok = 0;
                continue;
            }
        } else {
            oi = positional_opt(def, pos++);
            if (oi < 0) {
                diag *d = diag_add(dl, DIAG_ERROR, arg->value->where,
                                   "too many positional arguments to '%s'", def->name);
                if (def->nopts)
                    diag_hint(d, "name the option, e.g. %s(%s=...)", def->name, def->opts[0].name);
                else
                    diag_hint(d, "'%s' takes no options", def->name);
                ok = 0;
                continue;
            }
        }
        if (r->v[oi].given) {
            diag_add(dl, DIAG_ERROR, arg->name ? arg->name_loc : arg->value->where,
                     "option '%s' of '%s' is given twice", def->opts[oi].name, def->name);
            ok = 0;
            continue;
        }
        if (resolve_opt(&def->opts[oi], arg->value, env, dl, &r->v[oi])) ok = 0;
    }
    for (int i = 0; ok && i < def->nopts; i++) {
        if (!r->v[i].given && def->opts[i].def_text == NULL) {
            diag *d = diag_add(dl, DIAG_ERROR, call->where, "%s '%s' needs option '%s'",
                               t->what, def->name, def->opts[i].name);
            if (def->opts[i].doc) diag_hint(d, "%s: %s", def->opts[i].name, def->opts[i].doc);
            ok = 0;
        }
    }
    if (!ok) { resolved_free(r); return NULL; }
    return r;
}

void optval_print(const opt_def *od, const optval *o, void *strbuf_ptr)
{
    strbuf *sb = strbuf_ptr;
    switch (od->type) {
    case OPT_INT: sb_printf(sb, "%lld", (long long)o->num); break;
    case OPT_FLOAT: sb_printf(sb, "%g", o->num); break;
    case OPT_BOOL: sb_puts(sb, o->num ? "true" : "false"); break;
    case OPT_ENUM: sb_puts(sb, od->choices[(int)o->num]); break;
    case OPT_STRING: sb_printf(sb, "\"%s\"", o->str ? o->str : ""); break;
    case OPT_FLOAT_LIST:
    case OPT_INT_LIST:
        sb_putc(sb, '[');
        for (int i = 0; i < o->nlist; i++) sb_printf(sb, "%s%g", i ? ", " : "", o->list[i]);
        sb_putc(sb, ']');
        break;
    case OPT_CALL:
        if (o->call) resolved_print(o->call, sb);
        else sb_puts(sb, "none");
        break;
    }
}

void resolved_print(const resolved *r, void *strbuf_ptr)
{
    strbuf *sb = strbuf_ptr;
    sb_printf(sb, "%s(", r->def->name);
    int first = 1;
    for (int i = 0; i < r->def->nopts; i++) {
        const opt_def *od = &r->def->opts[i];
        /* Unset optional lists, strings and calls have no value to show. */
        if (!r->v[i].given && (od->type == OPT_STRING || od->type == OPT_CALL ||
                               ((od->type == OPT_FLOAT_LIST || od->type == OPT_INT_LIST) && !r->v[i].nlist)))
            continue;
        sb_printf(sb, "%s%s=", first ? "" : ", ", od->name);
        optval_print(od, &r->v[i], sb);
        first = 0;
    }
    sb_putc(sb, ')');
}
