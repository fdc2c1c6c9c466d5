/* The C emitter: IR -> the C source of a program that trains and tests the
 * model by linking with libnetrt. A pure function of its inputs, so its
 * output is golden-tested. */
#ifndef NETC_EMIT_C_H
#define NETC_EMIT_C_H
#include "ir.h"
#include "util.h"

typedef struct emit_info {
    const char *source_name;   /* the .net file, as given on the command line */
    const char *netc_version;
    const char *overrides;     /* "-D a=1 -D b=2", or NULL */
} emit_info;

/* What a program needs beyond a valid model (a dataset to train on, image
 * dimensions); reports why not and returns -1. */
int emit_c_check(const ir_program *p, diag_list *dl);
/* One point of a sweep, compiled on its own. */
typedef struct emit_point {
    const char *sweep;         /* "lr", "c1, c2, c3" */
    const char *value;         /* "0.0004" */
    const ir_program *prog;
} emit_point;

void emit_c(const ir_program *p, const emit_info *info, const emit_point *points, int npoints, strbuf *out);
#endif
