/* Diagnostics are data: a location, a severity, a message and an optional
 * hint. Stages append them to a list; the driver renders them GCC-style with
 * the source line and a caret. */
#ifndef NETC_DIAG_H
#define NETC_DIAG_H
#include <stdio.h>

/* A source file kept in memory so diagnostics can quote its lines. */
typedef struct source {
    char *name;   /* as the user wrote it, e.g. models/lenet5_mnist.net */
    char *text;   /* NUL-terminated; may contain other NULs (binary input) */
    size_t len;
} source;

typedef struct loc {
    const source *src;
    int line, col;          /* 1-based; 0 when unknown */
    int end_line, end_col;  /* last column covered, inclusive */
} loc;

typedef enum { DIAG_NOTE, DIAG_WARNING, DIAG_ERROR } diag_severity;

typedef struct diag {
    loc where;
    diag_severity severity;
    char *message;
    char *hint;  /* may be NULL */
} diag;

typedef struct diag_list {
    diag *items;
    int count, cap;
    int errors, warnings;
    int max_errors;      /* stop recording errors after this many (0: no limit) */
    int warnings_are_errors;
} diag_list;

source *source_new(const char *name, const char *text, size_t len);
void source_free(source *s);

void diag_init(diag_list *dl);
void diag_free(diag_list *dl);
diag *diag_add(diag_list *dl, diag_severity sev, loc where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Attaches a hint to the diagnostic just added (d may be NULL: ignored). */
void diag_hint(diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int diag_has_errors(const diag_list *dl);
/* Orders diagnostics from index `from` on by position, stably. */
void diag_sort_from(diag_list *dl, int from);

/* Renders every diagnostic in order. color: use ANSI colours. */
void diag_render_all(const diag_list *dl, FILE *out, int color);
void diag_render(const diag *d, FILE *out, int color);
#endif
