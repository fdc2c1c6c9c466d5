/* Safetensors checkpoints: an atomic writer and a strict, validating reader.
 *
 * The layout is the reference one (huggingface/safetensors): u64 little-endian
 * header length N, N bytes of JSON padded with spaces so that the data section
 * starts 8-byte aligned, then the tensors back to back. The reader accepts
 * exactly what a well-formed file can contain and nothing else, so a damaged
 * checkpoint is reported (with the byte offset) instead of being trained on.
 * The header is read and written by json.c (integers only here) and the
 * file replaced by atomic_file.c, as every file the runtime writes. */
#include "checkpoint.h"
#include "atomic_file.h"
#include "json.h"
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

/* Rejects what would make an unreadable or ambiguous file; fills the byte
 * sizes of the tensors. */
static int check_tensors(const char *path, const nr_tensor *t, int n, uint64_t *bytes, nr_error *err)
{
    for (int i = 0; i < n; i++) {
        if (!t[i].name) return nr_fail(err, "%s: tensor %d has no name", path, i);
        if (!nr_utf8_valid(t[i].name)) return nr_fail(err, "%s: tensor %d: name is not valid UTF-8", path, i);
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
        if (!nr_utf8_valid(m[i].key) || !nr_utf8_valid(m[i].value))
            return nr_fail(err, "%s: metadata entry %d is not valid UTF-8", path, i);
        for (int j = 0; j < i; j++)
            if (strcmp(m[j].key, m[i].key) == 0)
                return nr_fail(err, "%s: metadata key \"%s\" appears twice", path, m[i].key);
    }
    return 0;
}

/* The JSON header (compact, as the reference implementation writes it),
 * padded with spaces to a multiple of 8 bytes so the data section is
 * 8-byte aligned. *out is malloc'd. */
static int build_header(char **out, size_t *len, const nr_tensor *t, int n, const uint64_t *bytes, const nr_meta *m,
                        int nmeta)
{
    *out = NULL;
    *len = 0;
    FILE *f = open_memstream(out, len);
    if (!f) return -1;
    nr_json j;
    nr_json_begin_compact(&j, f);
    nr_json_open(&j, '{');
    if (nmeta > 0) {
        nr_json_key(&j, METADATA_KEY);
        nr_json_open(&j, '{');
        for (int i = 0; i < nmeta; i++) nr_json_key(&j, m[i].key), nr_json_str(&j, m[i].value);
        nr_json_close(&j, '{');
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        nr_json_key(&j, t[i].name);
        nr_json_open(&j, '{');
        nr_json_key(&j, "dtype"), nr_json_str(&j, "F32");
        nr_json_key(&j, "shape");
        nr_json_open(&j, '[');
        for (int d = 0; d < t[i].rank; d++) nr_json_int(&j, t[i].shape[d]);
        nr_json_close(&j, '[');
        nr_json_key(&j, "data_offsets");
        nr_json_open(&j, '[');
        nr_json_int(&j, (long long)offset);
        offset += bytes[i];
        nr_json_int(&j, (long long)offset);
        nr_json_close(&j, '[');
        nr_json_close(&j, '{');
    }
    nr_json_close(&j, '{');
    long at = ftell(f);
    while (at >= 0 && at % 8 != 0 && fputc(' ', f) != EOF) at++;
    int bad = ferror(f) || at < 0;
    if (fclose(f) != 0 || bad) {
        free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
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

static int write_contents(FILE *fp, const char *header, size_t hlen, const nr_tensor *t, int n,
                          const uint64_t *bytes)
{
    unsigned char len_le[8];
    for (int i = 0; i < 8; i++) len_le[i] = (unsigned char)((uint64_t)hlen >> (8 * i) & 0xff);
    if (fwrite(len_le, 1, 8, fp) != 8) return -1;
    if (fwrite(header, 1, hlen, fp) != hlen) return -1;
    for (int i = 0; i < n; i++)
        if (bytes[i] && write_floats(fp, t[i].data, (size_t)(bytes[i] / 4))) return -1;
    return 0;
}

int nr_safetensors_write(const char *path, const nr_tensor *tensors, int ntensors, const nr_meta *meta,
                         int nmeta, nr_error *err)
{
    if (!path || !*path) return nr_fail(err, "safetensors: no path to write to");
    if (ntensors < 0 || nmeta < 0 || (ntensors > 0 && !tensors) || (nmeta > 0 && !meta))
        return nr_fail(err, "%s: invalid tensor or metadata list", path);
    uint64_t *bytes = calloc(ntensors > 0 ? (size_t)ntensors : 1, sizeof *bytes);
    if (!bytes) return nr_fail(err, "%s: out of memory", path);
    char *header = NULL;
    size_t hlen = 0;
    int rc = -1;
    if (check_tensors(path, tensors, ntensors, bytes, err) || check_meta(path, meta, nmeta, err)) goto done;
    if (build_header(&header, &hlen, tensors, ntensors, bytes, meta, nmeta)) {
        nr_fail(err, "%s: out of memory building the header", path);
        goto done;
    }
    nr_atomic_file af;
    if (!nr_atomic_open(&af, path, err)) goto done;
    int ok = write_contents(af.f, header, hlen, tensors, ntensors, bytes) == 0;
    if (!ok) nr_fail_errno(err, "%s: writing %s", path, af.tmp);
    rc = nr_atomic_commit(&af, ok, err);
done:
    free(header);
    free(bytes);
    return rc;
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

static int read_metadata(nr_st_file *f, const nr_json_value *m, nr_error *err)
{
    if (m->kind != NR_JSON_OBJECT) return at_fail(f->path, m->offset, err, "\"%s\" must be an object", METADATA_KEY);
    int n = m->nkids / 2;
    f->meta_keys = calloc((size_t)n + 1, sizeof *f->meta_keys);
    f->meta_values = calloc((size_t)n + 1, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values) return nr_fail(err, "%s: out of memory", f->path);
    for (int k = 0; k < n; k++) {
        const nr_json_value *key = m->kids[2 * k], *value = m->kids[2 * k + 1];
        if (value->kind != NR_JSON_STRING)
            return at_fail(f->path, value->offset, err, "metadata value of \"%s\" must be a string", key->s);
        f->meta_keys[k] = strdup(key->s);
        f->meta_values[k] = strdup(value->s);
        f->nmeta = k + 1;
        if (!f->meta_keys[k] || !f->meta_values[k]) return nr_fail(err, "%s: out of memory", f->path);
    }
    return 0;
}

static int read_shape(const char *path, const char *name, const nr_json_value *shape, nr_st_entry *e, nr_error *err)
{
    if (shape->kind != NR_JSON_ARRAY)
        return at_fail(path, shape->offset, err, "tensor \"%s\": \"shape\" must be an array", name);
    if (shape->nkids > NR_ST_MAX_RANK)
        return at_fail(path, shape->offset, err, "tensor \"%s\": rank %d is more than %d", name, shape->nkids,
                       NR_ST_MAX_RANK);
    e->rank = shape->nkids;
    for (int d = 0; d < e->rank; d++) {
        const nr_json_value *dim = shape->kids[d];
        if (dim->kind != NR_JSON_INT || dim->i < 0)
            return at_fail(path, dim->offset, err, "tensor \"%s\": dimension %d must be a non-negative integer",
                           name, d);
        e->shape[d] = dim->i;
    }
    int64_t count = shape_count(e->shape, e->rank);
    if (count < 0) return at_fail(path, shape->offset, err, "tensor \"%s\": shape is too large", name);
    e->count = (size_t)count;
    return 0;
}

static int read_offsets(const char *path, const char *name, const nr_json_value *o, const nr_st_entry *e,
                        uint64_t data_size, range *r, nr_error *err)
{
    if (o->kind != NR_JSON_ARRAY || o->nkids != 2 || o->kids[0]->kind != NR_JSON_INT || o->kids[1]->kind != NR_JSON_INT)
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

static int read_entry(nr_st_file *f, const nr_json_value *key, const nr_json_value *v, uint64_t data_size, range *r, nr_error *err)
{
    nr_st_entry *e = &f->entries[f->nentries];
    const char *name = key->s;
    if (v->kind != NR_JSON_OBJECT) return at_fail(f->path, v->offset, err, "tensor \"%s\" must be an object", name);
    for (int k = 0; k < v->nkids; k += 2) {
        const char *field = v->kids[k]->s;
        if (strcmp(field, "dtype") && strcmp(field, "shape") && strcmp(field, "data_offsets"))
            return at_fail(f->path, v->kids[k]->offset, err, "tensor \"%s\": unknown field \"%s\"", name, field);
    }
    const nr_json_value *dtype = nr_json_member(v, "dtype"), *shape = nr_json_member(v, "shape"), *offsets = nr_json_member(v, "data_offsets");
    if (!dtype || !shape || !offsets)
        return at_fail(f->path, v->offset, err, "tensor \"%s\": needs \"dtype\", \"shape\" and \"data_offsets\"",
                       name);
    if (dtype->kind != NR_JSON_STRING || strcmp(dtype->s, "F32") != 0)
        return at_fail(f->path, dtype->offset, err, "tensor \"%s\": dtype %s is not supported (only F32)", name,
                       dtype->kind == NR_JSON_STRING ? dtype->s : "(not a string)");
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

static int read_entries(nr_st_file *f, const nr_json_value *root, uint64_t hlen, nr_error *err)
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
        const nr_json_value *key = root->kids[2 * k], *value = root->kids[2 * k + 1];
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
    nr_json_value *root = NULL;
    if (load_file(path, f, &hlen, err)) goto fail;
    static const nr_json_syntax header = { "header", 1, 16 };  /* a valid header nests 3 deep */
    root = nr_json_parse(f->buf + 8, (size_t)hlen, 8, path, &header, err);
    if (!root || read_entries(f, root, hlen, err)) goto fail;
    nr_json_value_free(root);
    return 0;
fail:
    nr_json_value_free(root);
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
