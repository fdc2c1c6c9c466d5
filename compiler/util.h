/* Small helpers shared by every stage: allocation that fails loudly,
 * a growable string buffer and edit distance for "did you mean". */
#ifndef NETC_UTIL_H
#define NETC_UTIL_H
#include <stddef.h>
#include <stdarg.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

typedef struct {
    char *data;
    size_t len, cap;
} strbuf;

void sb_init(strbuf *sb);
void sb_free(strbuf *sb);
void sb_putc(strbuf *sb, char c);
void sb_puts(strbuf *sb, const char *s);
void sb_printf(strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vprintf(strbuf *sb, const char *fmt, va_list ap);
char *sb_steal(strbuf *sb);

/* Edit distance between two strings (transpositions count as one edit). */
size_t edit_distance(const char *a, const char *b);

/* The candidate closest to name, or NULL when none is close enough to be a
 * plausible typo. candidates is NULL-terminated. */
const char *closest_name(const char *name, const char *const *candidates);

/* 61706 -> "61,706" into buf (at least 32 bytes). */
const char *fmt_thousands(char *buf, long long v);

/* Reads a whole file; NULL with errno set on failure. */
char *read_file(const char *path, size_t *len);
#endif
