#include "frontend.h"
#include "util.h"
#include <stdlib.h>
#include <string.h>

void frontend_init(frontend *fe)
{
    memset(fe, 0, sizeof *fe);
    diag_init(&fe->dl);
}

void frontend_free(frontend *fe)
{
    ir_program_free(fe->prog);
    ast_file_free(fe->ast);
    source_free(fe->src);
    for (int i = 0; i < fe->nov; i++) {
        ast_file_free(fe->ov_ast[i]);
        source_free(fe->ov_src[i]);
    }
    free(fe->ov);
    free(fe->ov_ast);
    free(fe->ov_src);
    for (int i = 0; i < fe->nsw; i++) {
        ast_file_free(fe->sw_ast[i]);
        source_free(fe->sw_src[i]);
    }
    free(fe->sw_ast);
    free(fe->sw_src);
    diag_free(&fe->dl);
}

int frontend_define(frontend *fe, const char *text)
{
    fe->ov = xrealloc(fe->ov, (size_t)(fe->nov + 1) * sizeof *fe->ov);
    fe->ov_ast = xrealloc(fe->ov_ast, (size_t)(fe->nov + 1) * sizeof *fe->ov_ast);
    fe->ov_src = xrealloc(fe->ov_src, (size_t)(fe->nov + 1) * sizeof *fe->ov_src);
    fe->ov_ast[fe->nov] = NULL;
    fe->ov_src[fe->nov] = NULL;
    int rc = parse_override(text, &fe->dl, &fe->ov[fe->nov], &fe->ov_ast[fe->nov], &fe->ov_src[fe->nov]);
    fe->nov++;  /* kept even when malformed, so frontend_free releases it */
    if (rc) fe->ov[fe->nov - 1].name = NULL;
    return rc;
}

int frontend_sweep(frontend *fe, const char *text)
{
    fe->sw_ast = xrealloc(fe->sw_ast, (size_t)(fe->nsw + 1) * sizeof *fe->sw_ast);
    fe->sw_src = xrealloc(fe->sw_src, (size_t)(fe->nsw + 1) * sizeof *fe->sw_src);
    strbuf sb;
    sb_init(&sb);
    sb_printf(&sb, "sweep %s\n", text);
    source *src = source_new("<command line>", sb.data, sb.len);
    sb_free(&sb);
    ast_file *f = NULL;
    int errors_before = fe->dl.errors;
    parse_source(src, &fe->dl, &f);
    fe->sw_ast[fe->nsw] = f;
    fe->sw_src[fe->nsw] = src;
    fe->nsw++;
    if (fe->dl.errors > errors_before || !f || f->nitems != 1 || f->items[0]->kind != T_SWEEP) {
        if (fe->dl.errors == errors_before) {
            loc w = { src, 1, 1, 1, 1 };
            diag *d = diag_add(&fe->dl, DIAG_ERROR, w, "--sweep %s: expected NAME=[VALUE, ...]", text);
            diag_hint(d, "for example --sweep 'lr=[0.001, 0.01]' or --sweep 'w1, w2=[[6, 16], [32, 64]]'");
        }
        return -1;
    }
    return 0;
}

/* Command-line sweeps replace the file's: the file's sweep items are
 * dropped and the command line's move into the file's tree. */
static void apply_command_line_sweeps(frontend *fe)
{
    if (!fe->nsw) return;
    ast_file *f = fe->ast;
    int kept = 0;
    for (int i = 0; i < f->nitems; i++) {
        if (f->items[i]->kind == T_SWEEP) ast_item_free(f->items[i]);
        else f->items[kept++] = f->items[i];
    }
    f->items = xrealloc(f->items, (size_t)(kept + fe->nsw) * sizeof *f->items);
    for (int i = 0; i < fe->nsw; i++) {
        f->items[kept++] = fe->sw_ast[i]->items[0];
        fe->sw_ast[i]->nitems = 0;  /* the item now belongs to the file's tree */
    }
    f->nitems = kept;
}

/* The IR with the -D overrides and one sweep point applied; diagnostics go to dl. */
static ir_program *lower_point(frontend *fe, const ir_sweep *sw, const ast_value *point, diag_list *dl)
{
    int n = fe->nov + sw->nnames;
    override *ov = xcalloc((size_t)n, sizeof *ov);
    if (fe->nov) memcpy(ov, fe->ov, (size_t)fe->nov * sizeof *ov);
    for (int i = 0; i < sw->nnames; i++) {
        ov[fe->nov + i].name = sw->names[i];
        ov[fe->nov + i].name_loc = sw->where;
        ov[fe->nov + i].value = sw->nnames == 1 ? point : point->items[i];
    }
    ir_program *p = NULL;
    sema_lower_point(fe->ast, ov, n, dl, &p);
    free(ov);
    return p;
}

ir_program *frontend_sweep_point(frontend *fe, int sweep, int k)
{
    const ir_sweep *sw = &fe->prog->sweeps[sweep];
    diag_list dl;
    diag_init(&dl);
    ir_program *p = lower_point(fe, sw, sw->values->items[k], &dl);
    int bad = dl.errors > 0;
    diag_free(&dl);
    if (bad) {
        ir_program_free(p);
        return NULL;
    }
    return p;
}

static int same_loc(loc a, loc b)
{
    return a.src == b.src && a.line == b.line && a.col == b.col && a.end_line == b.end_line &&
           a.end_col == b.end_col;
}

/* 1 when the base model reported this diagnostic already (among its first
 * nbase): a sweep point repeats every warning its value does not touch. */
static int reported_by_base(const diag_list *base, int nbase, const diag *d)
{
    for (int i = 0; i < nbase; i++) {
        const diag *b = &base->items[i];
        if (b->severity == d->severity && same_loc(b->where, d->where) && !strcmp(b->message, d->message))
            return 1;
    }
    return 0;
}

/* Lowers once more with one sweep point applied; its errors and its own
 * warnings (those the base model does not give) are reported under a
 * diagnostic naming the point: an error when the point does not compile,
 * else a note. -Werror holds at sweep points too. */
static void check_sweep_point(frontend *fe, const ir_sweep *sw, const ast_value *point, int nbase)
{
    diag_list dl;
    diag_init(&dl);
    dl.warnings_are_errors = fe->dl.warnings_are_errors;
    ir_program *p = lower_point(fe, sw, point, &dl);
    int fresh = 0;
    for (int i = 0; i < dl.count; i++) fresh += !reported_by_base(&fe->dl, nbase, &dl.items[i]);
    if (fresh) {
        strbuf sb;
        sb_init(&sb);
        ast_value_print(point, &sb);
        diag *d;
        if (dl.errors) {
            d = diag_add(&fe->dl, DIAG_ERROR, point->where, "the model does not compile with this sweep value %s",
                         sb.data);
            diag_hint(d, "the errors below are those of this sweep point");
        } else {
            d = diag_add(&fe->dl, DIAG_NOTE, point->where, "with this sweep value %s:", sb.data);
            diag_hint(d, "the warnings below are those of this sweep point");
        }
        sb_free(&sb);
        for (int i = 0; i < dl.count; i++) {
            if (reported_by_base(&fe->dl, nbase, &dl.items[i])) continue;
            diag *c = diag_add(&fe->dl, dl.items[i].severity, dl.items[i].where, "%s", dl.items[i].message);
            if (dl.items[i].hint) diag_hint(c, "%s", dl.items[i].hint);
        }
    }
    ir_program_free(p);
    diag_free(&dl);
}

int frontend_run(frontend *fe, const char *name, const char *text, size_t len)
{
    fe->src = source_new(name, text, len);
    int syntax = parse_source(fe->src, &fe->dl, &fe->ast);
    /* Resolution on a tree with syntax errors would report their echoes. */
    if (syntax || diag_has_errors(&fe->dl)) return 1;
    apply_command_line_sweeps(fe);
    int valid_ov = 0;
    for (int i = 0; i < fe->nov; i++)
        if (fe->ov[i].name) fe->ov[valid_ov++] = fe->ov[i];
    /* The sweep points are checked even when the base model has errors:
     * they repeat its errors (left out as reported already) and may have
     * their own. */
    sema_lower(fe->ast, fe->ov, valid_ov, &fe->dl, &fe->prog);
    int nbase = fe->dl.count;
    for (int s = 0; s < fe->prog->nsweeps; s++) {
        const ir_sweep *sw = &fe->prog->sweeps[s];
        for (int k = 0; k < sw->values->nitems; k++) check_sweep_point(fe, sw, sw->values->items[k], nbase);
    }
    return diag_has_errors(&fe->dl);
}
