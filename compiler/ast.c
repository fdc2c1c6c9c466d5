#include "ast.h"
#include "util.h"
#include <stdlib.h>
#include <string.h>

ast_value *ast_value_new(value_kind kind, loc where)
{
    ast_value *v = xcalloc(1, sizeof *v);
    v->kind = kind;
    v->where = where;
    return v;
}

void ast_value_free(ast_value *v)
{
    if (!v) return;
    free(v->s);
    for (int i = 0; i < v->nitems; i++) ast_value_free(v->items[i]);
    free(v->items);
    for (int i = 0; i < v->nargs; i++) {
        free(v->args[i].name);
        ast_value_free(v->args[i].value);
    }
    free(v->args);
    free(v);
}

void ast_list_push(ast_value *list, ast_value *item)
{
    list->items = xrealloc(list->items, (size_t)(list->nitems + 1) * sizeof *list->items);
    list->items[list->nitems++] = item;
}

void ast_call_push(ast_value *call, char *name, loc name_loc, ast_value *value)
{
    call->args = xrealloc(call->args, (size_t)(call->nargs + 1) * sizeof *call->args);
    ast_arg *a = &call->args[call->nargs++];
    a->name = name;
    a->name_loc = name_loc;
    a->value = value;
}

ast_value *ast_value_clone(const ast_value *v)
{
    if (!v) return NULL;
    ast_value *c = ast_value_new(v->kind, v->where);
    c->i = v->i;
    c->f = v->f;
    c->s = v->s ? xstrdup(v->s) : NULL;
    c->callee_is_param = v->callee_is_param;
    for (int i = 0; i < v->nitems; i++) ast_list_push(c, ast_value_clone(v->items[i]));
    for (int i = 0; i < v->nargs; i++)
        ast_call_push(c, v->args[i].name ? xstrdup(v->args[i].name) : NULL,
                      v->args[i].name_loc, ast_value_clone(v->args[i].value));
    return c;
}

ast_stmt *ast_stmt_new(stmt_kind kind, loc where)
{
    ast_stmt *s = xcalloc(1, sizeof *s);
    s->kind = kind;
    s->where = where;
    return s;
}

void ast_stmt_free(ast_stmt *s)
{
    if (!s) return;
    free(s->name);
    ast_value_free(s->value);
    ast_value_free(s->expect);
    ast_value_free(s->cond);
    free(s);
}

ast_item *ast_item_new(item_kind kind, loc where)
{
    ast_item *it = xcalloc(1, sizeof *it);
    it->kind = kind;
    it->where = where;
    return it;
}

void ast_item_free(ast_item *it)
{
    if (!it) return;
    free(it->kw);
    free(it->name);
    for (int i = 0; i < it->nnames; i++) free(it->names[i]);
    free(it->names);
    free(it->name_locs);
    ast_value_free(it->value);
    for (int i = 0; i < it->nstmts; i++) ast_stmt_free(it->stmts[i]);
    free(it->stmts);
    free(it);
}

void ast_item_push_stmt(ast_item *block, ast_stmt *s)
{
    block->stmts = xrealloc(block->stmts, (size_t)(block->nstmts + 1) * sizeof *block->stmts);
    block->stmts[block->nstmts++] = s;
}

void ast_file_push(ast_file *f, ast_item *it)
{
    f->items = xrealloc(f->items, (size_t)(f->nitems + 1) * sizeof *f->items);
    f->items[f->nitems++] = it;
}

void ast_file_free(ast_file *f)
{
    if (!f) return;
    for (int i = 0; i < f->nitems; i++) ast_item_free(f->items[i]);
    free(f->items);
    free(f);
}

const char *value_kind_article(value_kind k)
{
    return k == V_INT ? "an" : "a";
}

const char *value_kind_name(value_kind k)
{
    switch (k) {
    case V_INT: return "integer";
    case V_FLOAT: return "number";
    case V_STRING: return "string";
    case V_IDENT: return "name";
    case V_PARAM: return "parameter reference";
    case V_LIST: return "list";
    case V_CALL: return "call";
    }
    return "value";
}

static void print_string_literal(strbuf *sb, const char *s)
{
    sb_putc(sb, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') { sb_putc(sb, '\\'); sb_putc(sb, (char)*p); }
        else if (*p == '\n') sb_puts(sb, "\\n");
        else if (*p == '\t') sb_puts(sb, "\\t");
        else if (*p < 32 || *p == 127) sb_printf(sb, "\\x%02x", *p);
        else sb_putc(sb, (char)*p);
    }
    sb_putc(sb, '"');
}

void ast_value_print(const ast_value *v, void *strbuf_ptr)
{
    strbuf *sb = strbuf_ptr;
    if (!v) { sb_puts(sb, "?"); return; }
    switch (v->kind) {
    case V_INT: sb_printf(sb, "%lld", v->i); break;
    case V_FLOAT: sb_printf(sb, "%g", v->f); break;
    case V_STRING: print_string_literal(sb, v->s); break;
    case V_IDENT: sb_puts(sb, v->s); break;
    case V_PARAM: sb_printf(sb, "$%s", v->s); break;
    case V_LIST:
        sb_putc(sb, '[');
        for (int i = 0; i < v->nitems; i++) {
            if (i) sb_puts(sb, ", ");
            ast_value_print(v->items[i], sb);
        }
        sb_putc(sb, ']');
        break;
    case V_CALL:
        sb_printf(sb, "%s%s(", v->callee_is_param ? "$" : "", v->s);
        for (int i = 0; i < v->nargs; i++) {
            if (i) sb_puts(sb, ", ");
            if (v->args[i].name) sb_printf(sb, "%s=", v->args[i].name);
            ast_value_print(v->args[i].value, sb);
        }
        sb_putc(sb, ')');
        break;
    }
}
