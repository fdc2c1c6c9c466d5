/* Safetensors checkpoints: an atomic writer and a strict, validating reader.
 *
 * The layout is the reference one (huggingface/safetensors): u64 little-endian
 * header length N, N bytes of JSON padded with spaces so that the data section
 * starts 8-byte aligned, then the tensors back to back. The reader accepts
 * exactly what a well-formed file can contain and nothing else, so a damaged
 * checkpoint is reported (with the byte offset) instead of being trained on. */
#include "checkpoint.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NR_ST_MAX_RANK 4
#define NR_ST_DATA_ALIGN 64 /* where the reader places the data section in memory */
#define JSON_MAX_DEPTH 16   /* a valid header nests 3 deep; this stops stack exhaustion */
static const char METADATA_KEY[] = "__metadata__";

static int host_is_little_endian(void)
{
    const uint32_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

static void swap_bytes4(void *p, size_t count)
{
    unsigned char *b = p;
    for (size_t i = 0; i < count; i++, b += 4) {
        unsigned char t0 = b[0], t1 = b[1];
        b[0] = b[3];
        b[1] = b[2];
        b[2] = t1;
        b[3] = t0;
    }
}

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

static int utf8_valid(const char *s)
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

/* Element count of a shape, or -1 when a dimension is negative or the byte
 * size would not fit in a size_t. */
static int64_t shape_count(const int64_t *shape, int rank)
{
    const uint64_t max_count = (uint64_t)SIZE_MAX / 4 < (uint64_t)INT64_MAX ? (uint64_t)SIZE_MAX / 4
                                                                              : (uint64_t)INT64_MAX / 4;
    uint64_t count = 1;
    for (int d = 0; d < rank; d++) {
        if (shape[d] < 0) return -1;
        if (shape[d] != 0 && count > max_count / (uint64_t)shape[d]) return -1;
        count *= (uint64_t)shape[d];
    }
    return (int64_t)count;
}

/* ======================================================================
 * Writer
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

static void sb_puts(strbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_int(strbuf *b, int64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    sb_put(b, tmp, (size_t)n);
}

/* A JSON string literal; s is valid UTF-8 (checked by the caller), so only
 * the quote, the backslash and control characters need escapes. */
static void sb_json_string(strbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        switch (*c) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        default:
            if (*c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *c);
                sb_put(b, esc, 6);
            } else {
                sb_put(b, (const char *)c, 1);
            }
        }
    }
    sb_put(b, "\"", 1);
}

/* Rejects what would make an unreadable or ambiguous file; fills the byte
 * sizes of the tensors. */
static int check_tensors(const char *path, const nr_tensor *t, int n, uint64_t *bytes, nr_error *err)
{
    for (int i = 0; i < n; i++) {
        if (!t[i].name) return nr_fail(err, "%s: tensor %d has no name", path, i);
        if (!utf8_valid(t[i].name)) return nr_fail(err, "%s: tensor %d: name is not valid UTF-8", path, i);
        if (strcmp(t[i].name, METADATA_KEY) == 0)
            return nr_fail(err, "%s: tensor %d: the name \"%s\" is reserved", path, i, METADATA_KEY);
        if (t[i].rank < 0 || t[i].rank > NR_ST_MAX_RANK)
            return nr_fail(err, "%s: tensor \"%s\": rank %d is outside 0..%d", path, t[i].name, t[i].rank,
                           NR_ST_MAX_RANK);
        int64_t count = shape_count(t[i].shape, t[i].rank);
        if (count < 0)
            return nr_fail(err, "%s: tensor \"%s\": shape has a negative or too large dimension", path, t[i].name);
        if (count > 0 && !t[i].data) return nr_fail(err, "%s: tensor \"%s\" has no data", path, t[i].name);
        bytes[i] = (uint64_t)count * 4;
        for (int j = 0; j < i; j++)
            if (strcmp(t[j].name, t[i].name) == 0)
                return nr_fail(err, "%s: two tensors are named \"%s\"", path, t[i].name);
    }
    return 0;
}

static int check_meta(const char *path, const nr_meta *m, int n, nr_error *err)
{
    for (int i = 0; i < n; i++) {
        if (!m[i].key || !m[i].value) return nr_fail(err, "%s: metadata entry %d has no key or value", path, i);
        if (!utf8_valid(m[i].key) || !utf8_valid(m[i].value))
            return nr_fail(err, "%s: metadata entry %d is not valid UTF-8", path, i);
        for (int j = 0; j < i; j++)
            if (strcmp(m[j].key, m[i].key) == 0)
                return nr_fail(err, "%s: metadata key \"%s\" appears twice", path, m[i].key);
    }
    return 0;
}

/* The JSON header, padded with spaces to a multiple of 8 bytes as the
 * reference implementation does, so the data section is 8-byte aligned. */
static int build_header(strbuf *h, const nr_tensor *t, int n, const uint64_t *bytes, const nr_meta *m, int nmeta)
{
    sb_put(h, "{", 1);
    if (nmeta > 0) {
        sb_json_string(h, METADATA_KEY);
        sb_put(h, ":{", 2);
        for (int i = 0; i < nmeta; i++) {
            if (i) sb_put(h, ",", 1);
            sb_json_string(h, m[i].key);
            sb_put(h, ":", 1);
            sb_json_string(h, m[i].value);
        }
        sb_put(h, "}", 1);
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        if (i || nmeta > 0) sb_put(h, ",", 1);
        sb_json_string(h, t[i].name);
        sb_puts(h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t[i].rank; d++) {
            if (d) sb_put(h, ",", 1);
            sb_int(h, t[i].shape[d]);
        }
        sb_puts(h, "],\"data_offsets\":[");
        sb_int(h, (int64_t)offset);
        sb_put(h, ",", 1);
        offset += bytes[i];
        sb_int(h, (int64_t)offset);
        sb_puts(h, "]}");
    }
    sb_put(h, "}", 1);
    while (!h->out_of_memory && h->len % 8 != 0) sb_put(h, " ", 1);
    return h->out_of_memory ? -1 : 0;
}

/* Tensor data in little-endian order; on a big-endian host through a small
 * swapped copy so the caller's floats stay untouched. */
static int write_floats(FILE *fp, const float *data, size_t count)
{
    if (host_is_little_endian()) return fwrite(data, 4, count, fp) == count ? 0 : -1;
    float chunk[1024];
    for (size_t done = 0; done < count;) {
        size_t k = count - done < 1024 ? count - done : 1024;
        memcpy(chunk, data + done, k * 4);
        swap_bytes4(chunk, k);
        if (fwrite(chunk, 4, k, fp) != k) return -1;
        done += k;
    }
    return 0;
}

static int write_contents(FILE *fp, const strbuf *h, const nr_tensor *t, int n, const uint64_t *bytes)
{
    unsigned char len_le[8];
    uint64_t hlen = h->len;
    for (int i = 0; i < 8; i++) len_le[i] = (unsigned char)(hlen >> (8 * i) & 0xff);
    if (fwrite(len_le, 1, 8, fp) != 8) return -1;
    if (fwrite(h->p, 1, h->len, fp) != h->len) return -1;
    for (int i = 0; i < n; i++)
        if (bytes[i] && write_floats(fp, t[i].data, (size_t)(bytes[i] / 4))) return -1;
    return 0;
}

/* The directory holding path ("." when it names none); malloc'd. */
static char *directory_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    char *dir = malloc(len + 1);
    if (!dir) return NULL;
    memcpy(dir, path, len);
    dir[len] = '\0';
    return dir;
}

/* Makes the rename durable. Some file systems cannot fsync a directory and
 * say so with EINVAL; the rename has happened there all the same. */
static int sync_directory(const char *path, nr_error *err)
{
    char *dir = directory_of(path);
    if (!dir) return nr_fail(err, "%s: out of memory", path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        int rc = nr_fail_errno(err, "%s: opening directory %s to sync it", path, dir);
        free(dir);
        return rc;
    }
    int rc = 0;
    if (fsync(fd) != 0 && errno != EINVAL) rc = nr_fail_errno(err, "%s: syncing directory %s", path, dir);
    if (close(fd) != 0 && rc == 0) rc = nr_fail_errno(err, "%s: closing directory %s", path, dir);
    free(dir);
    return rc;
}

/* Writes the temporary file completely and durably; on failure it is removed. */
static int write_temp_file(const char *path, const char *tmp, const strbuf *h, const nr_tensor *t, int n,
                           const uint64_t *bytes, nr_error *err)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return nr_fail_errno(err, "%s: creating temporary file %s", path, tmp);
    FILE *fp = fdopen(fd, "wb");
    if (!fp) {
        nr_fail_errno(err, "%s: opening temporary file %s", path, tmp);
        close(fd);
        unlink(tmp);
        return -1;
    }
    int rc = 0;
    if (write_contents(fp, h, t, n, bytes) != 0) rc = nr_fail_errno(err, "%s: writing %s", path, tmp);
    else if (fflush(fp) != 0) rc = nr_fail_errno(err, "%s: writing %s", path, tmp);
    else if (fsync(fileno(fp)) != 0) rc = nr_fail_errno(err, "%s: syncing %s", path, tmp);
    if (fclose(fp) != 0 && rc == 0) rc = nr_fail_errno(err, "%s: closing %s", path, tmp);
    if (rc != 0) unlink(tmp);
    return rc;
}

int nr_safetensors_write(const char *path, const nr_tensor *tensors, int ntensors, const nr_meta *meta,
                         int nmeta, nr_error *err)
{
    if (!path || !*path) return nr_fail(err, "safetensors: no path to write to");
    if (ntensors < 0 || nmeta < 0 || (ntensors > 0 && !tensors) || (nmeta > 0 && !meta))
        return nr_fail(err, "%s: invalid tensor or metadata list", path);
    uint64_t *bytes = calloc(ntensors > 0 ? (size_t)ntensors : 1, sizeof *bytes);
    if (!bytes) return nr_fail(err, "%s: out of memory", path);
    strbuf header = { 0 };
    char *tmp = NULL;
    int rc = -1;
    if (check_tensors(path, tensors, ntensors, bytes, err) || check_meta(path, meta, nmeta, err)) goto done;
    if (build_header(&header, tensors, ntensors, bytes, meta, nmeta)) {
        nr_fail(err, "%s: out of memory building the header", path);
        goto done;
    }
    size_t tmp_size = strlen(path) + 32;
    tmp = malloc(tmp_size);
    if (!tmp) {
        nr_fail(err, "%s: out of memory", path);
        goto done;
    }
    snprintf(tmp, tmp_size, "%s.tmp.%ld", path, (long)getpid());
    if (write_temp_file(path, tmp, &header, tensors, ntensors, bytes, err)) goto done;
    if (rename(tmp, path) != 0) {
        nr_fail_errno(err, "%s: renaming %s over it", path, tmp);
        unlink(tmp);
        goto done;
    }
    rc = sync_directory(path, err);
done:
    free(tmp);
    free(header.p);
    free(bytes);
    return rc;
}

/* ======================================================================
 * Reader: a strict parser for the JSON subset a header uses (objects,
 * arrays, strings, integers), then the checks of the safetensors layout.
 * ====================================================================== */

typedef enum { J_OBJECT, J_ARRAY, J_STRING, J_INT } json_kind;

typedef struct json {
    json_kind kind;
    size_t offset;      /* in the file, for messages */
    int64_t i;          /* J_INT */
    char *s;            /* J_STRING: decoded, NUL-terminated */
    struct json **kids; /* J_ARRAY: items; J_OBJECT: key, value, key, value... */
    int nkids, cap;
} json;

typedef struct jparser {
    const unsigned char *p;
    size_t n, pos;
    size_t base; /* file offset of p[0] */
    const char *path;
    nr_error *err;
    int depth;
} jparser;

static void json_free(json *v)
{
    if (!v) return;
    for (int k = 0; k < v->nkids; k++) json_free(v->kids[k]);
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

static json *json_new(jparser *jp, json_kind kind)
{
    json *v = calloc(1, sizeof *v);
    if (!v) {
        jfail(jp, jp->pos, "out of memory");
        return NULL;
    }
    v->kind = kind;
    v->offset = jp->base + jp->pos;
    return v;
}

static int json_add(jparser *jp, json *parent, json *kid)
{
    if (parent->nkids == parent->cap) {
        int cap = parent->cap ? parent->cap * 2 : 4;
        json **kids = realloc(parent->kids, (size_t)cap * sizeof *kids);
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
    if (peek(jp) < 0) return jfail(jp, jp->pos, "header ends where '%c' %s was expected", c, context);
    return jfail(jp, jp->pos, "expected '%c' %s", c, context);
}

static json *parse_value(jparser *jp);

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

static json *parse_string(jparser *jp)
{
    json *v = json_new(jp, J_STRING);
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
    json_free(v);
    return NULL;
}

/* JSON integers only (no fraction, no exponent: nothing in a header needs
 * them), within int64. */
static json *parse_integer(jparser *jp)
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
    const uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    while (peek(jp) >= '0' && peek(jp) <= '9') {
        unsigned d = (unsigned)(peek(jp) - '0');
        if (mag > (limit - d) / 10) {
            jfail(jp, start, "integer out of range");
            return NULL;
        }
        mag = mag * 10 + d;
        jp->pos++;
    }
    if (peek(jp) == '.' || peek(jp) == 'e' || peek(jp) == 'E') {
        jfail(jp, start, "only integers are allowed here, not fractions or exponents");
        return NULL;
    }
    size_t save = jp->pos;
    jp->pos = start;
    json *v = json_new(jp, J_INT);
    jp->pos = save;
    if (!v) return NULL;
    v->i = negative ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
    return v;
}

static int has_key(const json *obj, const char *key)
{
    for (int k = 0; k < obj->nkids; k += 2)
        if (strcmp(obj->kids[k]->s, key) == 0) return 1;
    return 0;
}

static json *parse_object(jparser *jp)
{
    json *v = json_new(jp, J_OBJECT);
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
            if (peek(jp) < 0) jfail(jp, jp->pos, "header ends inside an object");
            else jfail(jp, jp->pos, "expected a string key");
            goto fail;
        }
        json *key = parse_string(jp);
        if (!key) goto fail;
        if (has_key(v, key->s)) {
            jfail(jp, key->offset - jp->base, "duplicate key \"%s\"", key->s);
            json_free(key);
            goto fail;
        }
        if (json_add(jp, v, key)) {
            json_free(key);
            goto fail;
        }
        if (expect_char(jp, ':', "after a key")) goto fail;
        json *value = parse_value(jp);
        if (!value) goto fail;
        if (json_add(jp, v, value)) {
            json_free(value);
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
    json_free(v);
    return NULL;
}

static json *parse_array(jparser *jp)
{
    json *v = json_new(jp, J_ARRAY);
    if (!v) return NULL;
    jp->pos++;
    skip_space(jp);
    if (peek(jp) == ']') {
        jp->pos++;
        return v;
    }
    for (;;) {
        json *item = parse_value(jp);
        if (!item) goto fail;
        if (json_add(jp, v, item)) {
            json_free(item);
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
    json_free(v);
    return NULL;
}

static json *parse_value(jparser *jp)
{
    skip_space(jp);
    int c = peek(jp);
    if (c < 0) {
        jfail(jp, jp->pos, "header ends where a value was expected");
        return NULL;
    }
    if (c == '"') return parse_string(jp);
    if (c == '-' || (c >= '0' && c <= '9')) return parse_integer(jp);
    if (c == '{' || c == '[') {
        if (jp->depth >= JSON_MAX_DEPTH) {
            jfail(jp, jp->pos, "nesting deeper than %d levels", JSON_MAX_DEPTH);
            return NULL;
        }
        jp->depth++;
        json *v = c == '{' ? parse_object(jp) : parse_array(jp);
        jp->depth--;
        return v;
    }
    if (c >= 0x20 && c < 0x7f)
        jfail(jp, jp->pos, "unexpected '%c': only objects, arrays, strings and integers are allowed", c);
    else jfail(jp, jp->pos, "unexpected byte 0x%02x", (unsigned)c);
    return NULL;
}

/* The whole header: one object, then nothing but whitespace (the padding). */
static json *parse_header(const unsigned char *text, size_t n, size_t base, const char *path, nr_error *err)
{
    jparser jp = { .p = text, .n = n, .pos = 0, .base = base, .path = path, .err = err, .depth = 0 };
    skip_space(&jp);
    if (peek(&jp) != '{') {
        jfail(&jp, jp.pos, "the header must be a JSON object");
        return NULL;
    }
    json *root = parse_value(&jp);
    if (!root) return NULL;
    skip_space(&jp);
    if (jp.pos != jp.n) {
        jfail(&jp, jp.pos, "unexpected text after the header object");
        json_free(root);
        return NULL;
    }
    return root;
}

/* ---- the layout checks ---- */

typedef struct range {
    uint64_t begin, end;
    size_t offset; /* of the data_offsets value, for messages */
    int entry;
} range;

static int at_fail(const char *path, size_t offset, nr_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int at_fail(const char *path, size_t offset, nr_error *err, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return nr_fail(err, "%s: offset %zu: %s", path, offset, what);
}

static const json *member(const json *obj, const char *key)
{
    for (int k = 0; k < obj->nkids; k += 2)
        if (strcmp(obj->kids[k]->s, key) == 0) return obj->kids[k + 1];
    return NULL;
}

static int read_metadata(nr_st_file *f, const json *m, nr_error *err)
{
    if (m->kind != J_OBJECT) return at_fail(f->path, m->offset, err, "\"%s\" must be an object", METADATA_KEY);
    int n = m->nkids / 2;
    f->meta_keys = calloc((size_t)n + 1, sizeof *f->meta_keys);
    f->meta_values = calloc((size_t)n + 1, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values) return nr_fail(err, "%s: out of memory", f->path);
    for (int k = 0; k < n; k++) {
        const json *key = m->kids[2 * k], *value = m->kids[2 * k + 1];
        if (value->kind != J_STRING)
            return at_fail(f->path, value->offset, err, "metadata value of \"%s\" must be a string", key->s);
        f->meta_keys[k] = strdup(key->s);
        f->meta_values[k] = strdup(value->s);
        f->nmeta = k + 1;
        if (!f->meta_keys[k] || !f->meta_values[k]) return nr_fail(err, "%s: out of memory", f->path);
    }
    return 0;
}

static int read_shape(const char *path, const char *name, const json *shape, nr_st_entry *e, nr_error *err)
{
    if (shape->kind != J_ARRAY)
        return at_fail(path, shape->offset, err, "tensor \"%s\": \"shape\" must be an array", name);
    if (shape->nkids > NR_ST_MAX_RANK)
        return at_fail(path, shape->offset, err, "tensor \"%s\": rank %d is more than %d", name, shape->nkids,
                       NR_ST_MAX_RANK);
    e->rank = shape->nkids;
    for (int d = 0; d < e->rank; d++) {
        const json *dim = shape->kids[d];
        if (dim->kind != J_INT || dim->i < 0)
            return at_fail(path, dim->offset, err, "tensor \"%s\": dimension %d must be a non-negative integer",
                           name, d);
        e->shape[d] = dim->i;
    }
    int64_t count = shape_count(e->shape, e->rank);
    if (count < 0) return at_fail(path, shape->offset, err, "tensor \"%s\": shape is too large", name);
    e->count = (size_t)count;
    return 0;
}

static int read_offsets(const char *path, const char *name, const json *o, const nr_st_entry *e,
                        uint64_t data_size, range *r, nr_error *err)
{
    if (o->kind != J_ARRAY || o->nkids != 2 || o->kids[0]->kind != J_INT || o->kids[1]->kind != J_INT)
        return at_fail(path, o->offset, err, "tensor \"%s\": \"data_offsets\" must be [begin, end]", name);
    int64_t b = o->kids[0]->i, end = o->kids[1]->i;
    if (b < 0 || end < b)
        return at_fail(path, o->offset, err, "tensor \"%s\": data_offsets [%lld, %lld] is not a range", name,
                       (long long)b, (long long)end);
    if ((uint64_t)end > data_size)
        return at_fail(path, o->offset, err,
                       "tensor \"%s\": data_offsets [%lld, %lld] go past the end of the data (%llu bytes)", name,
                       (long long)b, (long long)end, (unsigned long long)data_size);
    if ((uint64_t)(end - b) != (uint64_t)e->count * 4)
        return at_fail(path, o->offset, err,
                       "tensor \"%s\": data_offsets [%lld, %lld] hold %lld bytes but the shape needs %llu", name,
                       (long long)b, (long long)end, (long long)(end - b), (unsigned long long)e->count * 4);
    r->begin = (uint64_t)b;
    r->end = (uint64_t)end;
    r->offset = o->offset;
    return 0;
}

static int read_entry(nr_st_file *f, const json *key, const json *v, uint64_t data_size, range *r, nr_error *err)
{
    nr_st_entry *e = &f->entries[f->nentries];
    const char *name = key->s;
    if (v->kind != J_OBJECT) return at_fail(f->path, v->offset, err, "tensor \"%s\" must be an object", name);
    for (int k = 0; k < v->nkids; k += 2) {
        const char *field = v->kids[k]->s;
        if (strcmp(field, "dtype") && strcmp(field, "shape") && strcmp(field, "data_offsets"))
            return at_fail(f->path, v->kids[k]->offset, err, "tensor \"%s\": unknown field \"%s\"", name, field);
    }
    const json *dtype = member(v, "dtype"), *shape = member(v, "shape"), *offsets = member(v, "data_offsets");
    if (!dtype || !shape || !offsets)
        return at_fail(f->path, v->offset, err, "tensor \"%s\": needs \"dtype\", \"shape\" and \"data_offsets\"",
                       name);
    if (dtype->kind != J_STRING || strcmp(dtype->s, "F32") != 0)
        return at_fail(f->path, dtype->offset, err, "tensor \"%s\": dtype %s is not supported (only F32)", name,
                       dtype->kind == J_STRING ? dtype->s : "(not a string)");
    if (read_shape(f->path, name, shape, e, err) || read_offsets(f->path, name, offsets, e, data_size, r, err))
        return -1;
    r->entry = f->nentries;
    e->name = strdup(name);
    if (!e->name) return nr_fail(err, "%s: out of memory", f->path);
    f->nentries++;
    return 0;
}

static int compare_ranges(const void *a, const void *b)
{
    const range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* As the reference implementation requires, the tensors tile the data
 * section exactly: no overlaps, no unexplained bytes. */
static int check_tiling(const nr_st_file *f, range *r, int n, uint64_t data_size, size_t data_start, nr_error *err)
{
    qsort(r, (size_t)n, sizeof *r, compare_ranges);
    uint64_t covered = 0;
    for (int k = 0; k < n; k++) {
        if (r[k].begin < covered)
            return at_fail(f->path, r[k].offset, err, "tensor \"%s\" bytes [%llu, %llu) overlap tensor \"%s\"",
                           f->entries[r[k].entry].name, (unsigned long long)r[k].begin,
                           (unsigned long long)r[k].end, f->entries[r[k - 1].entry].name);
        if (r[k].begin > covered)
            return at_fail(f->path, r[k].offset, err,
                           "data bytes [%llu, %llu) before tensor \"%s\" belong to no tensor",
                           (unsigned long long)covered, (unsigned long long)r[k].begin,
                           f->entries[r[k].entry].name);
        covered = r[k].end;
    }
    if (covered != data_size)
        return at_fail(f->path, data_start + (size_t)covered, err, "%llu bytes at the end belong to no tensor",
                       (unsigned long long)(data_size - covered));
    return 0;
}

static int read_fully(int fd, unsigned char *buf, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n) {
        ssize_t k = pread(fd, buf + *got, n - *got, (off_t)*got);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) break;
        *got += (size_t)k;
    }
    return 0;
}

/* The raw allocation behind f->buf: the file is placed less than
 * NR_ST_DATA_ALIGN bytes into an nr_alloc block (itself 64-aligned) so that
 * its data section lands aligned; rounding down recovers the block. */
static void *allocation_of(unsigned char *buf)
{
    return (void *)((uintptr_t)buf & ~(uintptr_t)(NR_ST_DATA_ALIGN - 1));
}

/* Reads the file into f->buf, placed so its data section is 64-aligned;
 * fills *header_len after checking it against the size. */
static int load_file(const char *path, nr_st_file *f, uint64_t *header_len, nr_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nr_fail_errno(err, "%s: cannot open", path);
    int rc = -1;
    struct stat st;
    unsigned char len_le[8];
    size_t got;
    if (fstat(fd, &st) != 0) {
        nr_fail_errno(err, "%s: cannot stat", path);
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        nr_fail(err, "%s: not a regular file", path);
        goto done;
    }
    if ((uint64_t)st.st_size > SIZE_MAX - NR_ST_DATA_ALIGN) {
        nr_fail(err, "%s: file too large", path);
        goto done;
    }
    size_t size = (size_t)st.st_size;
    if (size < 8) {
        nr_fail(err, "%s: offset 0: file is %zu bytes, too short for the 8-byte header length", path, size);
        goto done;
    }
    if (read_fully(fd, len_le, 8, &got) != 0 || got != 8) {
        nr_fail_errno(err, "%s: cannot read", path);
        goto done;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len_le[i];
    if (hlen > size - 8) {
        nr_fail(err, "%s: offset 0: header length %llu is more than the %zu bytes after it", path,
                (unsigned long long)hlen, size - 8);
        goto done;
    }
    size_t shift = (NR_ST_DATA_ALIGN - (size_t)((8 + hlen) % NR_ST_DATA_ALIGN)) % NR_ST_DATA_ALIGN;
    unsigned char *block = nr_alloc(size + NR_ST_DATA_ALIGN);
    if (!block) {
        nr_fail(err, "%s: out of memory for %zu bytes", path, size);
        goto done;
    }
    f->buf = block + shift;
    f->size = size;
    if (read_fully(fd, f->buf, size, &got) != 0) {
        nr_fail_errno(err, "%s: cannot read", path);
        goto done;
    }
    if (got != size) {
        nr_fail(err, "%s: file shrank while being read (%zu of %zu bytes)", path, got, size);
        goto done;
    }
    *header_len = hlen;
    rc = 0;
done:
    close(fd);
    return rc;
}

static int read_entries(nr_st_file *f, const json *root, uint64_t hlen, nr_error *err)
{
    uint64_t data_size = f->size - 8 - hlen;
    int members = root->nkids / 2;
    f->entries = calloc((size_t)members + 1, sizeof *f->entries);
    range *ranges = calloc((size_t)members + 1, sizeof *ranges);
    int rc = -1;
    if (!f->entries || !ranges) {
        nr_fail(err, "%s: out of memory", f->path);
        goto done;
    }
    for (int k = 0; k < members; k++) {
        const json *key = root->kids[2 * k], *value = root->kids[2 * k + 1];
        int bad = strcmp(key->s, METADATA_KEY) == 0
                      ? read_metadata(f, value, err)
                      : read_entry(f, key, value, data_size, &ranges[f->nentries], err);
        if (bad) goto done;
    }
    if (check_tiling(f, ranges, f->nentries, data_size, (size_t)(8 + hlen), err)) goto done;
    unsigned char *data = f->buf + 8 + hlen;
    for (int k = 0; k < f->nentries; k++) {
        nr_st_entry *e = &f->entries[ranges[k].entry];
        unsigned char *p = data + ranges[k].begin;
        if (!host_is_little_endian()) swap_bytes4(p, e->count);
        e->data = (const float *)(void *)p;
    }
    rc = 0;
done:
    free(ranges);
    return rc;
}

int nr_safetensors_read(const char *path, nr_st_file *f, nr_error *err)
{
    if (!f) return nr_fail(err, "safetensors: no file structure to read into");
    memset(f, 0, sizeof *f);
    if (!path) return nr_fail(err, "safetensors: no path to read");
    f->path = strdup(path);
    if (!f->path) return nr_fail(err, "%s: out of memory", path);
    uint64_t hlen = 0;
    json *root = NULL;
    if (load_file(path, f, &hlen, err)) goto fail;
    root = parse_header(f->buf + 8, (size_t)hlen, 8, path, err);
    if (!root || read_entries(f, root, hlen, err)) goto fail;
    json_free(root);
    return 0;
fail:
    json_free(root);
    nr_st_free(f);
    return -1;
}

const nr_st_entry *nr_st_find(const nr_st_file *f, const char *name)
{
    if (!f || !name) return NULL;
    for (int k = 0; k < f->nentries; k++)
        if (strcmp(f->entries[k].name, name) == 0) return &f->entries[k];
    return NULL;
}

const char *nr_st_meta(const nr_st_file *f, const char *key)
{
    if (!f || !key) return NULL;
    for (int k = 0; k < f->nmeta; k++)
        if (strcmp(f->meta_keys[k], key) == 0) return f->meta_values[k];
    return NULL;
}

void nr_st_free(nr_st_file *f)
{
    if (!f) return;
    if (f->entries)
        for (int k = 0; k < f->nentries; k++) free(f->entries[k].name);
    free(f->entries);
    if (f->meta_keys)
        for (int k = 0; k < f->nmeta; k++) free(f->meta_keys[k]);
    if (f->meta_values)
        for (int k = 0; k < f->nmeta; k++) free(f->meta_values[k]);
    free(f->meta_keys);
    free(f->meta_values);
    if (f->buf) nr_free(allocation_of(f->buf));
    free(f->path);
    memset(f, 0, sizeof *f);
}
