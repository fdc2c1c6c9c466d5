/* Typed option tables. Every construct that takes options (a layer, an
 * optimizer, a schedule, a loss, an augmentation, a block's settings) is a
 * call_def: a name and a table of opt_defs. resolve_call() checks what the
 * user wrote against the table: names (with "did you mean"), positions,
 * types, ranges and choices, and fills in defaults. */
#ifndef NETC_SPEC_H
#define NETC_SPEC_H
#include "ast.h"

#define MAX_OPTS 16

typedef enum {
    OPT_INT, OPT_FLOAT, OPT_BOOL, OPT_ENUM, OPT_STRING,
    OPT_FLOAT_LIST, OPT_INT_LIST, OPT_CALL
} opt_type;

struct call_table;

typedef struct opt_def {
    const char *name;
    opt_type type;
    double def;                     /* default number, bool or enum index */
    const char *def_text;           /* default as documented; NULL: required */
    double min, max;                /* inclusive range of numbers / list items */
    const char *const *choices;     /* OPT_ENUM: NULL-terminated */
    int min_len, max_len;           /* list lengths (0: any) */
    const struct call_table *calls; /* OPT_CALL: what may be called */
    int positional;                 /* may be given as the n-th positional argument; -1: keyword only */
    const char *doc;
    int max_exclusive;              /* the range is [min, max) */
    int increasing;                 /* lists: each item greater than the one before */
} opt_def;

typedef struct call_def {
    const char *name;
    const char *const *aliases;     /* NULL-terminated or NULL */
    const opt_def *opts;
    int nopts;
    const char *doc;
} call_def;

/* A table of calls. Rows may be larger structs that begin with a call_def
 * (the layer table adds shape rules), hence the stride. */
typedef struct call_table {
    const char *what;               /* "layer kind", "optimizer", ... for messages */
    const void *rows;
    size_t stride;
    int count;
} call_table;

static inline const call_def *table_def(const call_table *t, int i)
{
    return (const call_def *)(const void *)((const char *)t->rows + (size_t)i * t->stride);
}

struct resolved;

typedef struct optval {
    int given;              /* written by the user (or a parameter) */
    double num;             /* OPT_INT, OPT_FLOAT, OPT_BOOL, OPT_ENUM (index) */
    char *str;              /* OPT_STRING */
    double *list;           /* OPT_*_LIST */
    int nlist;
    struct resolved *call;  /* OPT_CALL */
    loc where;              /* of the value, when given */
} optval;

typedef struct resolved {
    const call_def *def;
    int index;              /* of def in its table */
    loc where;
    optval v[MAX_OPTS];
} resolved;

/* Looks a value up through `param` declarations. Implemented by sema. */
typedef struct param_env param_env;
const ast_value *param_env_deref(const param_env *env, const ast_value *v, diag_list *dl);

int find_call(const call_table *t, const char *name);
int find_opt(const call_def *d, const char *name);

/* Resolves `call` (a V_CALL, or a V_IDENT meaning a call without arguments)
 * against table t. Returns NULL after reporting an error. */
resolved *resolve_call(const call_table *t, const ast_value *call, const param_env *env, diag_list *dl);
/* Resolves one setting value against its option definition. */
int resolve_opt(const opt_def *od, const ast_value *v, const param_env *env, diag_list *dl, optval *out);
/* Fills every option with its default. */
void resolved_defaults(resolved *r);
void resolved_free(resolved *r);
resolved *resolved_new(const call_def *def, int index, loc where);
void optval_clear(optval *o);

/* Accessors by option index. */
static inline double ropt_num(const resolved *r, int i) { return r->v[i].num; }
static inline int ropt_int(const resolved *r, int i) { return (int)r->v[i].num; }
static inline int ropt_given(const resolved *r, int i) { return r->v[i].given; }

/* Prints the resolved call as source text, every option shown. */
void resolved_print(const resolved *r, void *strbuf_ptr);
void optval_print(const opt_def *od, const optval *o, void *strbuf_ptr);
const char *opt_type_name(const opt_def *od);
#endif
