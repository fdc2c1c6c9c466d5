/* The runtime's JSON: a strict reader and a writer (see json.h).
 *
 * The reader accepts exactly RFC 8259 text (with integers_only, the subset a
 * safetensors header uses) and nothing else, so a damaged file is reported
 * with its byte offset instead of being half-read. */
#include "json.h"
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Length of the UTF-8 sequence at s (at most n bytes) with its code point in
 * *cp, or 0 when it is malformed: overlong, a surrogate, past U+10FFFF. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (n == 0) return 0;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len;
    uint32_t c, min;
    if ((s[0] & 0xe0) == 0xc0) len = 2, c = s[0] & 0x1f, min = 0x80;
    else if ((s[0] & 0xf0) == 0xe0) len = 3, c = s[0] & 0x0f, min = 0x800;
    else if ((s[0] & 0xf8) == 0xf0) len = 4, c = s[0] & 0x07, min = 0x10000;
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
    *cp = c;
    return len;
}

int nr_utf8_valid(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_decode(u + i, n - i, &cp);
        if (!len) return 0;
        i += len;
    }
    return 1;
}

static size_t utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}


/* ======================================================================
 * Reader
 * ====================================================================== */

typedef struct strbuf {
    char *p;
    size_t len, cap;
    int out_of_memory;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n)
{
    if (b->out_of_memory) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->out_of_memory = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

typedef struct jparser {
    const unsigned char *p;
    size_t n, pos;
    size_t base; /* file offset of p[0] */
    const char *path;
    nr_error *err;
    int depth;
    const nr_json_syntax *syntax;
} jparser;

void nr_json_value_free(nr_json_value *v)
{
    if (!v) return;
    for (int k = 0; k < v->nkids; k++) nr_json_value_free(v->kids[k]);
    free(v->kids);
    free(v->s);
    free(v);
}

static int jfail(const jparser *jp, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int jfail(const jparser *jp, size_t pos, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return nr_fail(jp->err, "%s: offset %zu: %s", jp->path, jp->base + pos, what);
}

static nr_json_value *json_new(jparser *jp, nr_json_kind kind)
{
    nr_json_value *v = calloc(1, sizeof *v);
    if (!v) {
        jfail(jp, jp->pos, "out of memory");
        return NULL;
    }
    v->kind = kind;
    v->offset = jp->base + jp->pos;
    return v;
}

static int json_add(jparser *jp, nr_json_value *parent, nr_json_value *kid)
{
    if (parent->nkids == parent->cap) {
        int cap = parent->cap ? parent->cap * 2 : 4;
        nr_json_value **kids = realloc(parent->kids, (size_t)cap * sizeof *kids);
        if (!kids) return jfail(jp, jp->pos, "out of memory");
        parent->kids = kids;
        parent->cap = cap;
    }
    parent->kids[parent->nkids++] = kid;
    return 0;
}

static void skip_space(jparser *jp)
{
    while (jp->pos < jp->n) {
        unsigned char c = jp->p[jp->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        jp->pos++;
    }
}

static int peek(const jparser *jp)
{
    return jp->pos < jp->n ? jp->p[jp->pos] : -1;
}

static int expect_char(jparser *jp, char c, const char *context)
{
    skip_space(jp);
    if (peek(jp) == c) {
        jp->pos++;
        return 0;
    }
    if (peek(jp) < 0) return jfail(jp, jp->pos, "%s ends where '%c' %s was expected", jp->syntax->what, c, context);
    return jfail(jp, jp->pos, "expected '%c' %s", c, context);
}

static nr_json_value *parse_value(jparser *jp);

static int hex4(jparser *jp, uint32_t *out)
{
    if (jp->n - jp->pos < 4) return jfail(jp, jp->pos, "\\u escape needs four hex digits");
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        int c = jp->p[jp->pos + k], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return jfail(jp, jp->pos + k, "\\u escape needs four hex digits");
        v = v << 4 | (uint32_t)d;
    }
    jp->pos += 4;
    *out = v;
    return 0;
}

/* \uXXXX, with surrogate pairs joined; NUL is refused because names and
 * metadata are C strings. */
static int unicode_escape(jparser *jp, size_t start, uint32_t *cp)
{
    uint32_t hi;
    if (hex4(jp, &hi)) return -1;
    if (hi >= 0xdc00 && hi <= 0xdfff) return jfail(jp, start, "lone low surrogate in \\u escape");
    if (hi >= 0xd800 && hi <= 0xdbff) {
        uint32_t lo;
        if (jp->n - jp->pos < 2 || jp->p[jp->pos] != '\\' || jp->p[jp->pos + 1] != 'u')
            return jfail(jp, start, "high surrogate without a low surrogate in \\u escape");
        jp->pos += 2;
        if (hex4(jp, &lo)) return -1;
        if (lo < 0xdc00 || lo > 0xdfff) return jfail(jp, start, "high surrogate without a low surrogate in \\u escape");
        hi = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
    }
    if (hi == 0) return jfail(jp, start, "\\u0000 is not allowed in a string");
    *cp = hi;
    return 0;
}

static nr_json_value *parse_string(jparser *jp)
{
    nr_json_value *v = json_new(jp, NR_JSON_STRING);
    if (!v) return NULL;
    jp->pos++; /* the opening quote */
    strbuf out = { 0 };
    for (;;) {
        if (jp->pos >= jp->n) {
            jfail(jp, v->offset - jp->base, "unterminated string");
            goto fail;
        }
        size_t at = jp->pos;
        unsigned char c = jp->p[at];
        if (c == '"') {
            jp->pos++;
            break;
        }
        if (c < 0x20) {
            jfail(jp, at, "control character 0x%02x in a string must be escaped", c);
            goto fail;
        }
        if (c == '\\') {
            if (at + 1 >= jp->n) {
                jfail(jp, at, "unterminated escape");
                goto fail;
            }
            char e = (char)jp->p[at + 1], ch;
            jp->pos += 2;
            switch (e) {
            case '"': ch = '"'; break;
            case '\\': ch = '\\'; break;
            case '/': ch = '/'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'u': {
                uint32_t cp = 0;
                char enc[4];
                if (unicode_escape(jp, at, &cp)) goto fail;
                sb_put(&out, enc, utf8_encode(cp, enc));
                continue;
            }
            default:
                jfail(jp, at, "invalid escape '\\%c'", e >= 0x20 && e < 0x7f ? e : '?');
                goto fail;
            }
            sb_put(&out, &ch, 1);
            continue;
        }
        uint32_t cp;
        size_t len = utf8_decode(jp->p + at, jp->n - at, &cp);
        if (!len) {
            jfail(jp, at, "invalid UTF-8 in a string");
            goto fail;
        }
        sb_put(&out, (const char *)jp->p + at, len);
        jp->pos += len;
    }
    if (!out.p && !out.out_of_memory) sb_put(&out, "", 0);
    if (out.out_of_memory) {
        jfail(jp, v->offset - jp->base, "out of memory");
        goto fail;
    }
    v->s = out.p;
    return v;
fail:
    free(out.p);
    nr_json_value_free(v);
    return NULL;
}

/* After the integer part: [. digits] [e|E [+|-] digits]. */
static int skip_fraction_and_exponent(jparser *jp)
{
    if (peek(jp) == '.') {
        jp->pos++;
        if (peek(jp) < '0' || peek(jp) > '9') return jfail(jp, jp->pos, "expected a digit after '.'");
        while (peek(jp) >= '0' && peek(jp) <= '9') jp->pos++;
    }
    if (peek(jp) == 'e' || peek(jp) == 'E') {
        jp->pos++;
        if (peek(jp) == '+' || peek(jp) == '-') jp->pos++;
        if (peek(jp) < '0' || peek(jp) > '9') return jfail(jp, jp->pos, "expected a digit in the exponent");
        while (peek(jp) >= '0' && peek(jp) <= '9') jp->pos++;
    }
    return 0;
}

/* A JSON number. Integers within int64 keep their exact value; with
 * integers_only (a safetensors header: nothing there needs more) a fraction
 * or exponent is an error, else the number is read as a double. */
static nr_json_value *parse_number(jparser *jp)
{
    size_t start = jp->pos;
    int negative = peek(jp) == '-';
    if (negative) jp->pos++;
    if (peek(jp) < '0' || peek(jp) > '9') {
        jfail(jp, start, "expected a digit");
        return NULL;
    }
    if (peek(jp) == '0' && jp->pos + 1 < jp->n && jp->p[jp->pos + 1] >= '0' && jp->p[jp->pos + 1] <= '9') {
        jfail(jp, start, "number with a leading zero");
        return NULL;
    }
    uint64_t mag = 0;
    int too_big = 0;
    const uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    while (peek(jp) >= '0' && peek(jp) <= '9') {
        unsigned d = (unsigned)(peek(jp) - '0');
        if (mag > (limit - d) / 10) too_big = 1;
        else mag = mag * 10 + d;
        jp->pos++;
    }
    int real = peek(jp) == '.' || peek(jp) == 'e' || peek(jp) == 'E';
    if (jp->syntax->integers_only && too_big) {
        jfail(jp, start, "integer out of range");
        return NULL;
    }
    if (jp->syntax->integers_only && real) {
        jfail(jp, start, "only integers are allowed here, not fractions or exponents");
        return NULL;
    }
    if (real && skip_fraction_and_exponent(jp)) return NULL;
    size_t end = jp->pos;
    jp->pos = start;
    nr_json_value *v = json_new(jp, real || too_big ? NR_JSON_REAL : NR_JSON_INT);
    jp->pos = end;
    if (!v) return NULL;
    if (v->kind == NR_JSON_INT) {
        v->i = negative ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
        v->num = (double)v->i;
    } else {
        /* The text was checked above, so strtod reads exactly it. */
        char buf[512];
        size_t len = end - start < sizeof buf ? end - start : sizeof buf - 1;
        memcpy(buf, jp->p + start, len);
        buf[len] = '\0';
        v->num = strtod(buf, NULL);
    }
    return v;
}

static int has_key(const nr_json_value *obj, const char *key)
{
    for (int k = 0; k < obj->nkids; k += 2)
        if (strcmp(obj->kids[k]->s, key) == 0) return 1;
    return 0;
}

static nr_json_value *parse_object(jparser *jp)
{
    nr_json_value *v = json_new(jp, NR_JSON_OBJECT);
    if (!v) return NULL;
    jp->pos++;
    skip_space(jp);
    if (peek(jp) == '}') {
        jp->pos++;
        return v;
    }
    for (;;) {
        skip_space(jp);
        if (peek(jp) != '"') {
            if (peek(jp) < 0) jfail(jp, jp->pos, "%s ends inside an object", jp->syntax->what);
            else jfail(jp, jp->pos, "expected a string key");
            goto fail;
        }
        nr_json_value *key = parse_string(jp);
        if (!key) goto fail;
        if (has_key(v, key->s)) {
            jfail(jp, key->offset - jp->base, "duplicate key \"%s\"", key->s);
            nr_json_value_free(key);
            goto fail;
        }
        if (json_add(jp, v, key)) {
            nr_json_value_free(key);
            goto fail;
        }
        if (expect_char(jp, ':', "after a key")) goto fail;
        nr_json_value *value = parse_value(jp);
        if (!value) goto fail;
        if (json_add(jp, v, value)) {
            nr_json_value_free(value);
            goto fail;
        }
        skip_space(jp);
        if (peek(jp) == ',') {
            jp->pos++;
            continue;
        }
        if (expect_char(jp, '}', "or ',' in an object")) goto fail;
        return v;
    }
fail:
    nr_json_value_free(v);
    return NULL;
}

static nr_json_value *parse_array(jparser *jp)
{
    nr_json_value *v = json_new(jp, NR_JSON_ARRAY);
    if (!v) return NULL;
    jp->pos++;
    skip_space(jp);
    if (peek(jp) == ']') {
        jp->pos++;
        return v;
    }
    for (;;) {
        nr_json_value *item = parse_value(jp);
        if (!item) goto fail;
        if (json_add(jp, v, item)) {
            nr_json_value_free(item);
            goto fail;
        }
        skip_space(jp);
        if (peek(jp) == ',') {
            jp->pos++;
            continue;
        }
        if (expect_char(jp, ']', "or ',' in an array")) goto fail;
        return v;
    }
fail:
    nr_json_value_free(v);
    return NULL;
}

static nr_json_value *parse_literal(jparser *jp)
{
    static const struct { const char *text; nr_json_kind kind; } literals[] = {
        { "true", NR_JSON_TRUE }, { "false", NR_JSON_FALSE }, { "null", NR_JSON_NULL },
    };
    for (size_t k = 0; k < sizeof literals / sizeof *literals; k++) {
        size_t len = strlen(literals[k].text);
        if (jp->n - jp->pos >= len && !memcmp(jp->p + jp->pos, literals[k].text, len)) {
            nr_json_value *v = json_new(jp, literals[k].kind);
            if (v) jp->pos += len;
            return v;
        }
    }
    jfail(jp, jp->pos, "unexpected '%c'", jp->p[jp->pos]);
    return NULL;
}

static nr_json_value *parse_value(jparser *jp)
{
    skip_space(jp);
    int c = peek(jp);
    if (c < 0) {
        jfail(jp, jp->pos, "%s ends where a value was expected", jp->syntax->what);
        return NULL;
    }
    if (c == '"') return parse_string(jp);
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(jp);
    if (!jp->syntax->integers_only && (c == 't' || c == 'f' || c == 'n')) return parse_literal(jp);
    if (c == '{' || c == '[') {
        if (jp->depth >= jp->syntax->max_depth) {
            jfail(jp, jp->pos, "nesting deeper than %d levels", jp->syntax->max_depth);
            return NULL;
        }
        jp->depth++;
        nr_json_value *v = c == '{' ? parse_object(jp) : parse_array(jp);
        jp->depth--;
        return v;
    }
    if (c >= 0x20 && c < 0x7f)
        jfail(jp, jp->pos, "unexpected '%c'%s", c,
              jp->syntax->integers_only ? ": only objects, arrays, strings and integers are allowed" : "");
    else jfail(jp, jp->pos, "unexpected byte 0x%02x", (unsigned)c);
    return NULL;
}

nr_json_value *nr_json_parse(const unsigned char *text, size_t n, size_t base, const char *path,
                             const nr_json_syntax *syntax, nr_error *err)
{
    jparser jp = { .p = text, .n = n, .pos = 0, .base = base, .path = path, .err = err, .depth = 0, .syntax = syntax };
    skip_space(&jp);
    if (peek(&jp) != '{') {
        jfail(&jp, jp.pos, "the %s must be a JSON object", syntax->what);
        return NULL;
    }
    nr_json_value *root = parse_value(&jp);
    if (!root) return NULL;
    skip_space(&jp);
    if (jp.pos != jp.n) {
        jfail(&jp, jp.pos, "unexpected text after the %s object", syntax->what);
        nr_json_value_free(root);
        return NULL;
    }
    return root;
}

nr_json_value *nr_json_read_file(const char *path, size_t max_bytes, nr_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        nr_fail_errno(err, "%s: cannot open", path);
        return NULL;
    }
    unsigned char *buf = malloc(max_bytes + 1);
    size_t n = buf ? fread(buf, 1, max_bytes + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    nr_json_value *v = NULL;
    if (!buf) nr_fail(err, "%s: out of memory", path);
    else if (bad) nr_fail(err, "%s: cannot read", path);
    else if (n > max_bytes) nr_fail(err, "%s: more than %zu bytes: not a file this program wrote", path, max_bytes);
    else {
        static const nr_json_syntax file = { "file", 0, 64 };
        v = nr_json_parse(buf, n, 0, path, &file, err);
    }
    free(buf);
    return v;
}

const nr_json_value *nr_json_member(const nr_json_value *obj, const char *key)
{
    if (!obj || obj->kind != NR_JSON_OBJECT) return NULL;
    for (int k = 0; k < obj->nkids; k += 2)
        if (strcmp(obj->kids[k]->s, key) == 0) return obj->kids[k + 1];
    return NULL;
}

double nr_json_number(const nr_json_value *obj, const char *key)
{
    const nr_json_value *v = nr_json_member(obj, key);
    return v && (v->kind == NR_JSON_INT || v->kind == NR_JSON_REAL) ? v->num : NAN;
}

/* ======================================================================
 * Writer
 * ====================================================================== */

static void json_sep(nr_json *j)
{
    if (!j->first[j->depth]) fputc(',', j->f);
    j->first[j->depth] = 0;
}

static void json_indent(nr_json *j)
{
    if (j->compact) return;
    fputc('\n', j->f);
    for (int i = 0; i < j->depth; i++) fputs("  ", j->f);
}

void nr_json_begin(nr_json *j, FILE *f)
{
    memset(j, 0, sizeof *j);
    j->f = f;
    j->first[0] = 1;
}

void nr_json_begin_compact(nr_json *j, FILE *f)
{
    nr_json_begin(j, f);
    j->compact = 1;
}

static void json_value_start(nr_json *j)
{
    if (j->after_key) {
        j->after_key = 0;
        return;
    }
    json_sep(j);
    if (j->depth) json_indent(j);
}

/* A string literal; s is valid UTF-8 (the callers' data, or checked by
 * them), so only the quote, the backslash and control characters need
 * escapes. */
static void json_escaped(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        switch (*c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*c < 0x20) fprintf(f, "\\u%04x", *c);
            else fputc(*c, f);
        }
    }
    fputc('"', f);
}

void nr_json_key(nr_json *j, const char *key)
{
    json_sep(j);
    json_indent(j);
    json_escaped(j->f, key);
    fputs(j->compact ? ":" : ": ", j->f);
    j->after_key = 1;
}

void nr_json_open(nr_json *j, char bracket)
{
    json_value_start(j);
    fputc(bracket, j->f);
    if (j->depth < 15) j->depth++;
    j->first[j->depth] = 1;
}

void nr_json_close(nr_json *j, char bracket)
{
    int empty = j->first[j->depth];
    if (j->depth > 0) j->depth--;
    if (!empty) json_indent(j);
    fputc(bracket == '{' ? '}' : bracket == '[' ? ']' : bracket, j->f);
    if (j->depth == 0 && !j->compact) fputc('\n', j->f);
}

void nr_json_str(nr_json *j, const char *s)
{
    json_value_start(j);
    json_escaped(j->f, s ? s : "");
}

void nr_json_num(nr_json *j, double v)
{
    json_value_start(j);
    if (isfinite(v)) fprintf(j->f, "%.10g", v);
    else fputs("null", j->f);
}

void nr_json_int(nr_json *j, long long v)
{
    json_value_start(j);
    fprintf(j->f, "%lld", v);
}

void nr_json_bool(nr_json *j, int v)
{
    json_value_start(j);
    fputs(v ? "true" : "false", j->f);
}

void nr_json_null(nr_json *j)
{
    json_value_start(j);
    fputs("null", j->f);
}
