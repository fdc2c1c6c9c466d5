/* The whole front end as one call: file text -> checked IR, with -D
 * overrides and every sweep point checked too. Used by netc and the tests. */
#ifndef NETC_FRONTEND_H
#define NETC_FRONTEND_H
#include "sema.h"

typedef struct frontend {
    diag_list dl;
    source *src;
    ast_file *ast;
    ir_program *prog;
    /* parsed -D overrides and what they point into */
    override *ov;
    int nov;
    ast_file **ov_ast;
    source **ov_src;
    /* --sweep NAME=[...] from the command line: they replace the file's sweeps */
    ast_file **sw_ast;
    source **sw_src;
    int nsw;
} frontend;

void frontend_init(frontend *fe);
void frontend_free(frontend *fe);
/* Adds a -D NAME=VALUE override; returns -1 (with a diagnostic) when malformed. */
int frontend_define(frontend *fe, const char *text);
/* Adds a --sweep "NAME = [VALUES]" (or "A, B = [[..], ..]"); returns -1
 * (with a diagnostic) when malformed. */
int frontend_sweep(frontend *fe, const char *text);
/* Parses and checks text named `name`. Returns 0 when no error was found. */
int frontend_run(frontend *fe, const char *name, const char *text, size_t len);
/* After a successful frontend_run: the IR of value k of sweep `sweep`
 * (with the -D overrides), or NULL if that point has errors. The caller
 * frees it, before frontend_free. */
ir_program *frontend_sweep_point(frontend *fe, int sweep, int k);
#endif
