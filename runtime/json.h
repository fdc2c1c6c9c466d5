/* JSON in the runtime: one strict reader (RFC 8259, UTF-8 checked, errors
 * with the byte offset) and one writer. The reader serves the safetensors
 * header (integers only there) and summary.json; the writer serves
 * summary.json (indented) and the safetensors header (compact). */
#ifndef NR_JSON_H
#define NR_JSON_H
#include "nr_error.h"
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- reader ------------------------------------------------------------ */

typedef enum {
    NR_JSON_OBJECT, NR_JSON_ARRAY, NR_JSON_STRING, NR_JSON_INT, NR_JSON_REAL, NR_JSON_TRUE, NR_JSON_FALSE,
    NR_JSON_NULL
} nr_json_kind;

typedef struct nr_json_value {
    nr_json_kind kind;
    size_t offset;                /* in the file, for messages */
    int64_t i;                    /* NR_JSON_INT */
    double num;                   /* NR_JSON_INT and NR_JSON_REAL */
    char *s;                      /* NR_JSON_STRING: decoded, NUL-terminated */
    struct nr_json_value **kids;  /* NR_JSON_ARRAY: items; NR_JSON_OBJECT: key, value, key, value... */
    int nkids, cap;
} nr_json_value;

typedef struct nr_json_syntax {
    const char *what;             /* the text's name in messages: "header", "file" */
    int integers_only;            /* numbers must be integers; true, false and null are refused */
    int max_depth;                /* nesting limit (stops stack exhaustion) */
} nr_json_syntax;

/* Parses text[0..n) as one JSON object followed only by whitespace; base
 * is the file offset of text[0]. Errors are "PATH: offset N: what". */
nr_json_value *nr_json_parse(const unsigned char *text, size_t n, size_t base, const char *path,
                             const nr_json_syntax *syntax, nr_error *err);
/* Reads and parses a whole file (at most max_bytes) as above. */
nr_json_value *nr_json_read_file(const char *path, size_t max_bytes, nr_error *err);
void nr_json_value_free(nr_json_value *v);
/* The value of key in an object, or NULL. */
const nr_json_value *nr_json_member(const nr_json_value *obj, const char *key);
/* A number member as a double: NaN when absent, null or not a number. */
double nr_json_number(const nr_json_value *obj, const char *key);

/* 1 when s is valid UTF-8 (no overlong forms, surrogates or values past U+10FFFF). */
int nr_utf8_valid(const char *s);

/* ---- writer ------------------------------------------------------------ */

typedef struct nr_json {
    FILE *f;
    int depth;
    int first[16];                /* no comma needed yet at this depth */
    int after_key;                /* the next value follows a key on its line */
    int compact;                  /* no spaces or line breaks */
} nr_json;
/* Indented, for files people read. */
void nr_json_begin(nr_json *j, FILE *f);
/* Without any whitespace, for headers. */
void nr_json_begin_compact(nr_json *j, FILE *f);
void nr_json_key(nr_json *j, const char *key);
void nr_json_open(nr_json *j, char bracket);      /* '{' or '[' as a value */
void nr_json_close(nr_json *j, char bracket);
void nr_json_str(nr_json *j, const char *s);
void nr_json_num(nr_json *j, double v);           /* null when not finite */
void nr_json_int(nr_json *j, long long v);
void nr_json_bool(nr_json *j, int v);
void nr_json_null(nr_json *j);
#endif
