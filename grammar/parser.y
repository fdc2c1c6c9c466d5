/* Grammar of the .net language (man 5 netc.net). It only builds the AST;
 * names, types and shapes are checked later, in sema.c and shapes.c, so that
 * this file stays small and conflict-free. */
%define api.pure full
%define parse.error detailed
%locations
%expect 0
%param {yyscan_t scanner}
%parse-param {parse_ctx *ctx}

%code requires {
#include "ast.h"
typedef void *yyscan_t;
typedef struct parse_ctx {
    const source *src;
    diag_list *dl;
    ast_file *file;
    int last_syntax_error;  /* index in dl->items, -1 if none */
} parse_ctx;
}

%code {
#include "lexer_state.h"
#include "util.h"
#include <stdlib.h>
#include <string.h>
int yylex(YYSTYPE *yylval, YYLTYPE *yylloc, yyscan_t scanner);
lex_state *yyget_extra(yyscan_t scanner);
static void yyerror(YYLTYPE *l, yyscan_t scanner, parse_ctx *ctx, const char *msg);
static loc L(parse_ctx *ctx, YYLTYPE l);
static loc span(parse_ctx *ctx, YYLTYPE a, YYLTYPE b);
static void hint_last(parse_ctx *ctx, const char *hint);
}

%union {
    char *str;
    long long ival;
    double fval;
    ast_value *value;
    ast_stmt *stmt;
    ast_item *item;
    int flag;
}

%token <str> IDENT "name"
%token <str> PARAMREF "parameter reference"
%token <ival> INT "integer"
%token <fval> FLOAT "number"
%token <str> STRING "string"
%token NEWLINE "end of line"
%token KW_PARAM "'param'"
%token KW_SWEEP "'sweep'"
%token KW_EXPECT "'expect'"
%token KW_IF "'if'"
%token KW_NOT "'not'"

%type <value> value list values valuelist args arglist callee_args layer_expr opt_expect cond
%type <stmt> stmt layer_tail
%type <item> block stmts sweep_names
%type <str> opt_name
%type <flag> opt_not

%destructor { free($$); } <str>
%destructor { ast_value_free($$); } <value>
%destructor { ast_stmt_free($$); } <stmt>
%destructor { ast_item_free($$); } <item>

%%

file
    : %empty
    | file item
    ;

item
    : NEWLINE
    | KW_PARAM IDENT '=' value NEWLINE {
          ast_item *it = ast_item_new(T_PARAM, span(ctx, @1, @4));
          it->name = $2; it->name_loc = L(ctx, @2); it->value = $4;
          ast_file_push(ctx->file, it);
      }
    | KW_SWEEP sweep_names '=' value NEWLINE {
          $2->where = span(ctx, @1, @4);
          $2->value = $4;
          ast_file_push(ctx->file, $2);
      }
    | block NEWLINE { ast_file_push(ctx->file, $1); }
    | error NEWLINE {
          yyerrok;
          hint_last(ctx, "at the top level a file holds 'param NAME = VALUE', "
                         "'sweep NAME = [VALUES]' and blocks such as 'model NAME { ... }'");
      }
    ;

sweep_names
    : IDENT {
          $$ = ast_item_new(T_SWEEP, L(ctx, @1));
          $$->names = xmalloc(sizeof *$$->names);
          $$->name_locs = xmalloc(sizeof *$$->name_locs);
          $$->names[0] = $1; $$->name_locs[0] = L(ctx, @1); $$->nnames = 1;
      }
    | sweep_names ',' IDENT {
          $$ = $1;
          $$->names = xrealloc($$->names, (size_t)($$->nnames + 1) * sizeof *$$->names);
          $$->name_locs = xrealloc($$->name_locs, (size_t)($$->nnames + 1) * sizeof *$$->name_locs);
          $$->names[$$->nnames] = $3; $$->name_locs[$$->nnames] = L(ctx, @3); $$->nnames++;
      }
    ;

/* The '{' may open the block's first line or the next one (Allman style). */
block
    : IDENT opt_name nls '{' stmts '}' {
          $$ = $5;
          $$->where = span(ctx, @1, @6);
          $$->kw = $1; $$->kw_loc = L(ctx, @1);
          $$->name = $2; $$->name_loc = L(ctx, @2);
      }
    | IDENT opt_name nls '{' stmts stmt '}' {
          $$ = $5;
          ast_item_push_stmt($$, $6);
          $$->where = span(ctx, @1, @7);
          $$->kw = $1; $$->kw_loc = L(ctx, @1);
          $$->name = $2; $$->name_loc = L(ctx, @2);
      }
    ;

opt_name
    : %empty { $$ = NULL; }
    | IDENT { $$ = $1; }
    ;

stmts
    : %empty { $$ = ast_item_new(T_BLOCK, L(ctx, @$)); }
    | stmts NEWLINE { $$ = $1; }
    | stmts stmt NEWLINE { $$ = $1; ast_item_push_stmt($$, $2); }
    | stmts error NEWLINE {
          $$ = $1;
          yyerrok;
          hint_last(ctx, "a statement is 'key = value' or a layer 'name: kind(options)'");
      }
    ;

stmt
    : IDENT '=' value {
          $$ = ast_stmt_new(S_SETTING, span(ctx, @1, @3));
          $$->name = $1; $$->name_loc = L(ctx, @1); $$->value = $3;
      }
    | IDENT ':' layer_expr layer_tail {
          $$ = $4;
          $$->where = span(ctx, @1, @3);
          $$->name = $1; $$->name_loc = L(ctx, @1); $$->value = $3;
      }
    | layer_expr layer_tail {
          $$ = $2;
          $$->where = L(ctx, @1);
          $$->name_loc = L(ctx, @1); $$->value = $1;
      }
    ;

layer_expr
    : IDENT { $$ = ast_value_new(V_IDENT, L(ctx, @1)); $$->s = $1; }
    | PARAMREF { $$ = ast_value_new(V_PARAM, L(ctx, @1)); $$->s = $1; }
    | IDENT callee_args { $$ = $2; $$->where = span(ctx, @1, @2); $$->s = $1; }
    | PARAMREF callee_args {
          $$ = $2; $$->where = span(ctx, @1, @2); $$->s = $1; $$->callee_is_param = 1;
      }
    ;

layer_tail
    : opt_expect {
          $$ = ast_stmt_new(S_LAYER, L(ctx, @$));
          $$->expect = $1;
      }
    | opt_expect KW_IF opt_not cond {
          $$ = ast_stmt_new(S_LAYER, L(ctx, @$));
          $$->expect = $1; $$->cond = $4; $$->cond_negated = $3;
      }
    ;

opt_expect
    : %empty { $$ = NULL; }
    | KW_EXPECT value { $$ = $2; }
    ;

opt_not
    : %empty { $$ = 0; }
    | KW_NOT { $$ = 1; }
    ;

cond
    : value { $$ = $1; }
    ;

callee_args
    : '(' args ')' { $$ = $2; }
    ;

/* Newlines may appear anywhere between the items of a call or a list. */
nls
    : %empty
    | nls NEWLINE
    ;

args
    : nls { $$ = ast_value_new(V_CALL, L(ctx, @$)); }
    | nls arglist nls { $$ = $2; }
    | nls arglist ',' nls { $$ = $2; }
    ;

arglist
    : value {
          $$ = ast_value_new(V_CALL, L(ctx, @1));
          ast_call_push($$, NULL, L(ctx, @1), $1);
      }
    | IDENT '=' value {
          $$ = ast_value_new(V_CALL, L(ctx, @1));
          ast_call_push($$, $1, L(ctx, @1), $3);
      }
    | arglist ',' nls value { $$ = $1; ast_call_push($$, NULL, L(ctx, @4), $4); }
    | arglist ',' nls IDENT '=' value { $$ = $1; ast_call_push($$, $4, L(ctx, @4), $6); }
    ;

value
    : INT { $$ = ast_value_new(V_INT, L(ctx, @1)); $$->i = $1; }
    | FLOAT { $$ = ast_value_new(V_FLOAT, L(ctx, @1)); $$->f = $1; }
    | '-' INT { $$ = ast_value_new(V_INT, span(ctx, @1, @2)); $$->i = -$2; }
    | '-' FLOAT { $$ = ast_value_new(V_FLOAT, span(ctx, @1, @2)); $$->f = -$2; }
    | STRING { $$ = ast_value_new(V_STRING, L(ctx, @1)); $$->s = $1; }
    | list { $$ = $1; }
    | layer_expr { $$ = $1; }
    ;

list
    : '[' values ']' { $$ = $2; $$->where = span(ctx, @1, @3); }
    ;

values
    : nls { $$ = ast_value_new(V_LIST, L(ctx, @$)); }
    | nls valuelist nls { $$ = $2; }
    | nls valuelist ',' nls { $$ = $2; }
    ;

valuelist
    : value { $$ = ast_value_new(V_LIST, L(ctx, @1)); ast_list_push($$, $1); }
    | valuelist ',' nls value { $$ = $1; ast_list_push($$, $4); }
    ;

%%

static loc L(parse_ctx *ctx, YYLTYPE l)
{
    loc w = { ctx->src, l.first_line, l.first_column, l.last_line, l.last_column };
    return w;
}

static loc span(parse_ctx *ctx, YYLTYPE a, YYLTYPE b)
{
    loc w = { ctx->src, a.first_line, a.first_column, b.last_line, b.last_column };
    return w;
}

static void hint_last(parse_ctx *ctx, const char *hint)
{
    int i = ctx->last_syntax_error;
    if (i >= 0 && i < ctx->dl->count && !ctx->dl->items[i].hint)
        diag_hint(&ctx->dl->items[i], "%s", hint);
}

static int starts_value(int t)
{
    return t == INT || t == FLOAT || t == STRING || t == IDENT || t == PARAMREF || t == '[' || t == '-';
}

/* A hint for the commonest slips, from the tokens around the error. */
static const char *syntax_hint(const lex_state *st, const char *msg)
{
    if (strstr(msg, "unexpected ')'") || strstr(msg, "unexpected ']'"))
        return "this bracket closes nothing: is there one too many?";
    if (strstr(msg, "unexpected '}'") && st->prev != NEWLINE)
        return "this '}' closes nothing, or a statement before it is incomplete";
    if (strstr(msg, "expecting ')'") || strstr(msg, "expecting ',' or ')'"))
        return "separate arguments with ',' and close the call with ')'";
    if (strstr(msg, "expecting ']'") || strstr(msg, "expecting ',' or ']'"))
        return "separate list items with ',' and close the list with ']'";
    if (st->prev == IDENT && starts_value(st->last))
        return "settings are written 'key = value', layers 'name: kind(options)'";
    if (strstr(msg, "unexpected end of file"))
        return "a block or bracket is not closed";
    return NULL;
}

static void yyerror(YYLTYPE *l, yyscan_t scanner, parse_ctx *ctx, const char *msg)
{
    const lex_state *st = yyget_extra(scanner);
    const char *prefix = "syntax error, ";
    if (strncmp(msg, prefix, strlen(prefix)) == 0) msg += strlen(prefix);
    diag *d = diag_add(ctx->dl, DIAG_ERROR, L(ctx, *l), "syntax error: %s", msg);
    if (!d) return;
    ctx->last_syntax_error = ctx->dl->count - 1;
    const char *hint = syntax_hint(st, msg);
    if (hint) diag_hint(d, "%s", hint);
}

struct yy_buffer_state;
int yylex_init_extra(lex_state *extra, yyscan_t *scanner);
struct yy_buffer_state *yy_scan_bytes(const char *bytes, int len, yyscan_t scanner);
int yylex_destroy(yyscan_t scanner);

int parse_source(const source *src, diag_list *dl, ast_file **out)
{
    ast_file *file = xcalloc(1, sizeof *file);
    file->src = src;
    *out = file;
    if (src->len > 64u * 1024 * 1024) {
        loc w = { src, 0, 0, 0, 0 };
        diag_add(dl, DIAG_ERROR, w, "file is too large (%zu bytes) to be a model description", src->len);
        return 1;
    }
    lex_state st = { src, dl, 1, 1, 0, 0, 0 };
    yyscan_t scanner;
    if (yylex_init_extra(&st, &scanner) != 0) {
        loc w = { src, 0, 0, 0, 0 };
        diag_add(dl, DIAG_ERROR, w, "cannot start the scanner");
        return 1;
    }
    yy_scan_bytes(src->text, (int)src->len, scanner);
    parse_ctx ctx = { src, dl, file, -1 };
    int errors_before = dl->errors;
    int rc = yyparse(scanner, &ctx);
    yylex_destroy(scanner);
    return rc != 0 || dl->errors > errors_before;
}
