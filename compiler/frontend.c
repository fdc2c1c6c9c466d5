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
    sema_lower(fe->ast, ov, n, dl, &p);
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

/* Lowers once more with one sweep point applied; its errors are reported
 * under a note naming the point. */
static void check_sweep_point(frontend *fe, const ir_sweep *sw, const ast_value *point)
{
    diag_list dl;
    diag_init(&dl);
    ir_program *p = lower_point(fe, sw, point, &dl);
    if (dl.errors) {
        strbuf sb;
        sb_init(&sb);
        ast_value_print(point, &sb);
        diag *d = diag_add(&fe->dl, DIAG_ERROR, point->where, "the model does not compile with this sweep value %s",
                           sb.data);
        diag_hint(d, "the errors below are those of this sweep point");
        sb_free(&sb);
        for (int i = 0; i < dl.count; i++) {
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
    int valid_ov = 0;
    for (int i = 0; i < fe->nov; i++)
        if (fe->ov[i].name) fe->ov[valid_ov++] = fe->ov[i];
    if (sema_lower(fe->ast, fe->ov, valid_ov, &fe->dl, &fe->prog)) return 1;
    for (int s = 0; s < fe->prog->nsweeps; s++) {
        const ir_sweep *sw = &fe->prog->sweeps[s];
        for (int k = 0; k < sw->values->nitems; k++) check_sweep_point(fe, sw, sw->values->items[k]);
    }
    return diag_has_errors(&fe->dl);
}
