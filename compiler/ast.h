/* The abstract syntax tree: what the user wrote, with locations, before any
 * name is resolved. The parser builds it; sema.c lowers it to the IR. */
#ifndef NETC_AST_H
#define NETC_AST_H
#include "diag.h"

typedef enum {
    V_INT, V_FLOAT, V_STRING, V_IDENT, V_PARAM, V_LIST, V_CALL
} value_kind;

typedef struct ast_arg ast_arg;

typedef struct ast_value {
    value_kind kind;
    loc where;
    long long i;        /* V_INT */
    double f;           /* V_FLOAT */
    char *s;            /* V_STRING text, V_IDENT/V_PARAM name, V_CALL callee */
    int callee_is_param;/* V_CALL: callee written as $name */
    struct ast_value **items; int nitems;  /* V_LIST */
    ast_arg *args; int nargs;              /* V_CALL */
} ast_value;

struct ast_arg {
    char *name;        /* NULL for a positional argument */
    loc name_loc;
    ast_value *value;
};

typedef enum { S_SETTING, S_LAYER } stmt_kind;

/* Inside a block: `key = value` (S_SETTING) or `[name:] kind[(args)]
 * [expect shape] [if [not] cond]` (S_LAYER; outside a model block an unnamed
 * S_LAYER is a directive such as an augmentation op). */
typedef struct ast_stmt {
    stmt_kind kind;
    loc where;
    char *name;        /* setting key or layer name; NULL for an unnamed layer */
    loc name_loc;
    ast_value *value;  /* setting value, or the layer expression */
    ast_value *expect; /* S_LAYER: documented output shape, or NULL */
    ast_value *cond;   /* S_LAYER: condition, or NULL */
    int cond_negated;
} ast_stmt;

typedef enum { T_PARAM, T_SWEEP, T_BLOCK } item_kind;

typedef struct ast_item {
    item_kind kind;
    loc where;
    char *kw;          /* T_BLOCK: block keyword (model, data, ...) */
    loc kw_loc;
    char *name;        /* T_PARAM name, T_BLOCK optional name */
    loc name_loc;
    char **names; loc *name_locs; int nnames;  /* T_SWEEP */
    ast_value *value;  /* T_PARAM value, T_SWEEP list of values */
    ast_stmt **stmts; int nstmts;              /* T_BLOCK */
} ast_item;

typedef struct ast_file {
    const source *src;
    ast_item **items;
    int nitems;
} ast_file;

ast_value *ast_value_new(value_kind kind, loc where);
void ast_value_free(ast_value *v);
void ast_list_push(ast_value *list, ast_value *item);
void ast_call_push(ast_value *call, char *name, loc name_loc, ast_value *value);
ast_value *ast_value_clone(const ast_value *v);

ast_stmt *ast_stmt_new(stmt_kind kind, loc where);
void ast_stmt_free(ast_stmt *s);
ast_item *ast_item_new(item_kind kind, loc where);
void ast_item_free(ast_item *it);
void ast_item_push_stmt(ast_item *block, ast_stmt *s);
void ast_file_push(ast_file *f, ast_item *it);
void ast_file_free(ast_file *f);

/* Writes a value back as source text (used by the IR dump and messages). */
void ast_value_print(const ast_value *v, void *strbuf_ptr); /* strbuf * */
const char *value_kind_name(value_kind k);
const char *value_kind_article(value_kind k);  /* "a" or "an" */

/* Parses src into *out. Diagnostics go to dl. Returns 0 when no syntax error
 * was found; *out is always set and must be freed with ast_file_free. */
int parse_source(const source *src, diag_list *dl, ast_file **out);
#endif
