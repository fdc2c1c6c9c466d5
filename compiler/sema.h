/* Semantic analysis: AST -> IR. Resolves parameters (with -D overrides),
 * conditions, layer kinds and every option against the tables, then runs the
 * shape pass. */
#ifndef NETC_SEMA_H
#define NETC_SEMA_H
#include "ir.h"

typedef struct override {
    char *name;
    loc name_loc;
    const ast_value *value;  /* owned by the caller's parsed override file */
} override;

/* Lowers f to *out (always set; free with ir_program_free). Returns 0 when
 * no error was reported. */
int sema_lower(const ast_file *f, const override *ov, int nov, diag_list *dl, ir_program **out);
/* The same for one sweep point, whose values are among the overrides: the
 * IR it gives has no sweeps, and the sweeps are not checked again. */
int sema_lower_point(const ast_file *f, const override *ov, int nov, diag_list *dl, ir_program **out);

/* Parses "-D name=value" text into an override; the parsed AST is appended
 * to *keep (free with ast_file_free) and its source to *keep_src. */
int parse_override(const char *text, diag_list *dl, override *ov, ast_file **keep, source **keep_src);

/* The shape pass (shapes.c): infers shapes, counts parameters, checks
 * expectations and the model against its data, and lints. */
int infer_shapes(ir_program *p, diag_list *dl);
#endif
