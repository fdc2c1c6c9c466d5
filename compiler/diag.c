#include "diag.h"
#include "util.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

source *source_new(const char *name, const char *text, size_t len)
{
    source *s = xcalloc(1, sizeof *s);
    s->name = xstrdup(name);
    s->text = xmalloc(len + 1);
    memcpy(s->text, text, len);
    s->text[len] = '\0';
    s->len = len;
    return s;
}

void source_free(source *s)
{
    if (!s) return;
    free(s->name);
    free(s->text);
    free(s);
}

void diag_init(diag_list *dl)
{
    memset(dl, 0, sizeof *dl);
    dl->max_errors = 50;
}

void diag_free(diag_list *dl)
{
    for (int i = 0; i < dl->count; i++) {
        free(dl->items[i].message);
        free(dl->items[i].hint);
    }
    free(dl->items);
    memset(dl, 0, sizeof *dl);
}

/* Messages echo what the user wrote; a token of a megabyte (a long
 * literal, a pasted blob) would drown the message. Each run of more than
 * LONG_WORD characters without a space keeps its first KEPT_HEAD, then
 * "...", then its closing quote or bracket if it had one. In place: the
 * result is never longer. */
enum { LONG_WORD = 80, KEPT_HEAD = 60 };

static void shorten_long_words(char *msg)
{
    char *in = msg, *out = msg;
    while (*in) {
        size_t run = strcspn(in, " \n");
        if (run > LONG_WORD) {
            char last = in[run - 1];
            memmove(out, in, KEPT_HEAD);
            out += KEPT_HEAD;
            memcpy(out, "...", 3);
            out += 3;
            if (strchr("'\")]", last)) *out++ = last;
        } else {
            memmove(out, in, run);
            out += run;
        }
        in += run;
        if (*in) *out++ = *in++;
    }
    *out = '\0';
}

diag *diag_add(diag_list *dl, diag_severity sev, loc where, const char *fmt, ...)
{
    if (sev == DIAG_WARNING && dl->warnings_are_errors) sev = DIAG_ERROR;
    if (sev == DIAG_ERROR) {
        dl->errors++;
        if (dl->max_errors && dl->errors > dl->max_errors) return NULL;
    } else if (sev == DIAG_WARNING) {
        dl->warnings++;
    }
    if (dl->count == dl->cap) {
        dl->cap = dl->cap ? dl->cap * 2 : 16;
        dl->items = xrealloc(dl->items, (size_t)dl->cap * sizeof *dl->items);
    }
    diag *d = &dl->items[dl->count++];
    strbuf sb;
    sb_init(&sb);
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&sb, fmt, ap);
    va_end(ap);
    d->where = where;
    d->severity = sev;
    d->message = sb_steal(&sb);
    shorten_long_words(d->message);
    d->hint = NULL;
    return d;
}

void diag_hint(diag *d, const char *fmt, ...)
{
    if (!d) return;
    strbuf sb;
    sb_init(&sb);
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&sb, fmt, ap);
    va_end(ap);
    free(d->hint);
    d->hint = sb_steal(&sb);
    shorten_long_words(d->hint);
}

int diag_has_errors(const diag_list *dl) { return dl->errors > 0; }

static int diag_before(const diag *a, const diag *b)
{
    return a->where.line < b->where.line || (a->where.line == b->where.line && a->where.col < b->where.col);
}

void diag_sort_from(diag_list *dl, int from)
{
    /* Insertion sort: stable, and lists are short. */
    for (int i = from + 1; i < dl->count; i++) {
        diag d = dl->items[i];
        int j = i;
        while (j > from && diag_before(&d, &dl->items[j - 1])) {
            dl->items[j] = dl->items[j - 1];
            j--;
        }
        dl->items[j] = d;
    }
}

static const char *severity_name(diag_severity s)
{
    switch (s) {
    case DIAG_ERROR: return "error";
    case DIAG_WARNING: return "warning";
    default: return "note";
    }
}

static const char *severity_color(diag_severity s)
{
    switch (s) {
    case DIAG_ERROR: return "\033[1;31m";
    case DIAG_WARNING: return "\033[1;35m";
    default: return "\033[1;36m";
    }
}

/* Start of 1-based line number `line` in src, or NULL. */
static const char *line_start(const source *src, int line)
{
    const char *p = src->text, *end = src->text + src->len;
    for (int l = 1; l < line; l++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) return NULL;
        p = nl + 1;
    }
    return p;
}

enum { QUOTE_WIDTH = 160 };

/* Prints the quoted line with tabs shown as one space and unprintable bytes
 * as '?', so the caret line below stays aligned column for column. */
static void render_quote(const diag *d, FILE *out, int color)
{
    const loc *w = &d->where;
    if (!w->src || w->line <= 0) return;
    const char *p = line_start(w->src, w->line);
    if (!p) return;
    const char *end = w->src->text + w->src->len;
    const char *eol = p;
    while (eol < end && *eol != '\n') eol++;
    long width = (long)(eol - p);
    if (width > 0 && p[width - 1] == '\r') width--;
    long col = w->col > 0 ? w->col : 1;
    long last = (w->end_line == w->line && w->end_col >= col) ? w->end_col : col;
    if (last > width) last = width > col ? width : col;
    /* A very long line is quoted as a window around the caret, its cuts
     * marked "...", so that the caret line stays short and aligned. */
    long from = 0, to = width;
    if (width > QUOTE_WIDTH) {
        from = col - 1 > QUOTE_WIDTH / 4 ? col - 1 - QUOTE_WIDTH / 4 : 0;
        to = from + QUOTE_WIDTH < width ? from + QUOTE_WIDTH : width;
        if (last > to) last = to;
    }
    fprintf(out, "%5d | ", w->line);
    int lead = from > 0 ? 3 : 0;
    if (lead) fputs("...", out);
    for (long i = from; i < to; i++) {
        unsigned char c = (unsigned char)p[i];
        fputc(c == '\t' ? ' ' : (c < 32 || c == 127) ? '?' : c, out);
    }
    if (to < width) fputs("...", out);
    fputs("\n      | ", out);
    for (long i = 1; i < col - from + lead; i++) fputc(' ', out);
    if (color) fputs("\033[1;32m", out);
    fputc('^', out);
    for (long i = col; i < last; i++) fputc('~', out);
    if (color) fputs("\033[0m", out);
    fputc('\n', out);
}

void diag_render(const diag *d, FILE *out, int color)
{
    const loc *w = &d->where;
    if (color) fputs("\033[1m", out);
    if (w->src && w->line > 0)
        fprintf(out, "%s:%d:%d: ", w->src->name, w->line, w->col);
    else if (w->src)
        fprintf(out, "%s: ", w->src->name);
    else
        fputs("netc: ", out);
    if (color) fprintf(out, "%s", severity_color(d->severity));
    fprintf(out, "%s:", severity_name(d->severity));
    if (color) fputs("\033[0m\033[1m", out);
    fprintf(out, " %s\n", d->message);
    if (color) fputs("\033[0m", out);
    render_quote(d, out, color);
    if (d->hint) fprintf(out, "      = hint: %s\n", d->hint);
}

void diag_render_all(const diag_list *dl, FILE *out, int color)
{
    for (int i = 0; i < dl->count; i++) diag_render(&dl->items[i], out, color);
    if (dl->max_errors && dl->errors > dl->max_errors)
        fprintf(out, "netc: too many errors (%d), stopped after %d\n", dl->errors, dl->max_errors);
}
