/* Datasets: finding them on disk and loading them as uint8 CHW images. */
#include "data.h"
#include "image.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define PATH_LEN 4096
/* deflate never compresses better than about 1032:1, so a gzip file of n
 * bytes cannot hold more than this many: a header promising more is corrupt. */
#define GZIP_MAX_RATIO 1032u
#define IDX_MAX_SIDE 16384

void nr_dataset_free(nr_dataset *d)
{
    if (!d) return;
    nr_free(d->pixels);
    nr_free(d->labels);
    memset(d, 0, sizeof *d);
}

static int join_path(char *out, const char *dir, const char *name, nr_error *err)
{
    int n = snprintf(out, PATH_LEN, "%s/%s", dir, name);
    if (n < 0 || n >= PATH_LEN) return nr_fail(err, "path too long: %s/%s", dir, name);
    return 0;
}

static int is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* ---- IDX files: a byte stream that may be gzip, with its offset ---- */

typedef struct idx_stream {
    const char *path;
    gzFile gz;
    int gzip;
    uint64_t file_size;
    uint64_t offset;              /* bytes of the uncompressed stream consumed */
} idx_stream;

static int stream_open(idx_stream *s, const char *path, nr_error *err)
{
    memset(s, 0, sizeof *s);
    s->path = path;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return nr_fail_errno(err, "%s: cannot open", path);
    struct stat sb;
    int rc = 0;
    if (fstat(fd, &sb) != 0) rc = nr_fail_errno(err, "%s: cannot stat", path);
    else if (!S_ISREG(sb.st_mode)) rc = nr_fail(err, "%s: not a regular file", path);
    if (rc) {
        close(fd);
        return rc;
    }
    s->file_size = (uint64_t)sb.st_size;
    uint8_t magic[2];
    s->gzip = pread(fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    /* gzread reads files without the gzip magic unchanged, so one reader
     * serves both. */
    s->gz = gzdopen(fd, "rb");
    if (!s->gz) {
        close(fd);
        return nr_fail(err, "%s: cannot start reading (out of memory)", path);
    }
    gzbuffer(s->gz, 1u << 17);
    return 0;
}

static void stream_close(idx_stream *s)
{
    if (s->gz) gzclose(s->gz);
    s->gz = NULL;
}

/* Why the gzip layer stopped, or "" when it did not complain. */
static const char *gzip_reason(idx_stream *s)
{
    int code = Z_OK;
    const char *msg = gzerror(s->gz, &code);
    if (code == Z_OK || !msg) return "";
    /* zlib prefixes the name it knows the file by, "<fd:N>: " here; the
     * caller names the path itself. */
    const char *sep = msg[0] == '<' ? strstr(msg, ">: ") : NULL;
    return sep ? sep + 3 : msg;
}

/* Reads up to n bytes; *got says how many came (fewer only at the end of
 * the data). A broken gzip stream is an error naming the offset. */
static int stream_read(idx_stream *s, void *buf, size_t n, size_t *got, nr_error *err)
{
    *got = 0;
    while (*got < n) {
        size_t want = n - *got;
        if (want > (1u << 30)) want = 1u << 30;
        int r = gzread(s->gz, (uint8_t *)buf + *got, (unsigned)want);
        if (r < 0)
            return nr_fail(err, "%s: corrupt gzip stream at or after byte %llu of the uncompressed data: %s", s->path,
                           (unsigned long long)(s->offset + *got), gzip_reason(s));
        if (r == 0) break;
        *got += (size_t)r;
    }
    s->offset += *got;
    return 0;
}

/* Reads exactly n bytes or fails saying where the data ended and what was
 * expected there. */
static int stream_read_exact(idx_stream *s, void *buf, size_t n, const char *expected, nr_error *err)
{
    size_t got;
    if (stream_read(s, buf, n, &got, err)) return -1;
    if (got == n) return 0;
    const char *why = s->gzip ? gzip_reason(s) : "";
    return nr_fail(err, "%s: truncated: the data ends at byte %llu%s, expected %s%s%s", s->path,
                   (unsigned long long)s->offset, s->gzip ? " (uncompressed)" : "", expected, *why ? "; gzip: " : "",
                   why);
}

/* Where the gzip members of the file end, walked with inflate: zlib's
 * gzread stops quietly at bytes after the last member that do not start
 * another one, so a damaged file (or two glued together) would pass.
 * Anything after the last member is refused with its offset. */
static int check_gzip_end(const idx_stream *s, nr_error *err)
{
    enum { CHUNK = 1 << 16 };
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nr_fail_errno(err, "%s: cannot open", s->path);
    z_stream z;
    memset(&z, 0, sizeof z);
    unsigned char *in = malloc(CHUNK), *out = malloc(CHUNK);
    int rc = 0;
    if (!in || !out || inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        free(in);
        free(out);
        close(fd);
        return nr_fail(err, "%s: out of memory checking the gzip data", s->path);
    }
    uint64_t chunk_at = 0, chunk_len = 0;   /* file offset and length of what in[] holds */
    int in_member = 1;
    for (;;) {
        if (z.avail_in == 0) {
            ssize_t n = read(fd, in, CHUNK);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                rc = nr_fail_errno(err, "%s: cannot read", s->path);
                break;
            }
            if (n == 0) break;
            chunk_at += chunk_len;
            chunk_len = (uint64_t)n;
            z.next_in = in;
            z.avail_in = (uInt)n;
        }
        uint64_t at = chunk_at + (uint64_t)(z.next_in - in);
        if (!in_member) {
            /* Concatenated members are valid gzip; anything else is not. */
            if (z.next_in[0] != 0x1f) {
                rc = nr_fail(err, "%s: %llu bytes of trailing garbage at byte %llu, after the end of the gzip data",
                             s->path, (unsigned long long)(s->file_size - at), (unsigned long long)at);
                break;
            }
            inflateReset(&z);
            in_member = 1;
        }
        z.next_out = out;
        z.avail_out = CHUNK;
        int r = inflate(&z, Z_NO_FLUSH);
        if (r == Z_STREAM_END) in_member = 0;
        else if (r != Z_OK && r != Z_BUF_ERROR) {
            rc = nr_fail(err, "%s: the data after the gzip member ending before byte %llu is neither a gzip member "
                              "nor the end of the file: %s",
                         s->path, (unsigned long long)at, z.msg ? z.msg : "inflate failed");
            break;
        }
    }
    inflateEnd(&z);
    free(in);
    free(out);
    close(fd);
    return rc;
}

/* The data must end where the header says: trailing bytes mean the header
 * and the data disagree. Reading past the end also makes zlib check the
 * gzip trailer (CRC and length). */
static int stream_expect_end(idx_stream *s, const char *what, nr_error *err)
{
    uint8_t extra;
    size_t got;
    if (stream_read(s, &extra, 1, &got, err)) return -1;
    if (got)
        return nr_fail(err, "%s: unexpected extra data at byte %llu: expected the file to end after %s", s->path,
                       (unsigned long long)(s->offset - 1), what);
    return s->gzip ? check_gzip_end(s, err) : 0;
}

/* Refuses, before any allocation, a payload the file cannot hold. */
static int check_payload_size(const idx_stream *s, uint64_t header, uint64_t payload, const char *what,
                              nr_error *err)
{
    if (!s->gzip && header + payload > s->file_size)
        return nr_fail(err, "%s: truncated: the file ends at byte %llu, expected %llu bytes (%llu-byte header + %s)",
                       s->path, (unsigned long long)s->file_size, (unsigned long long)(header + payload),
                       (unsigned long long)header, what);
    if (s->gzip && payload > s->file_size * GZIP_MAX_RATIO + 1024)
        return nr_fail(err,
                       "%s: the header at byte 4 promises %s (%llu bytes), more than a %llu-byte gzip file can "
                       "hold: the file is truncated or its header corrupt",
                       s->path, what, (unsigned long long)payload, (unsigned long long)s->file_size);
    return 0;
}

static int check_idx_magic(const idx_stream *s, const uint8_t *hdr, uint32_t want, nr_error *err)
{
    uint32_t magic = be32(hdr);
    if (magic == want) return 0;
    const char *hint = "";
    if (magic == 2049) hint = " (that is an IDX labels file)";
    else if (magic == 2051) hint = " (that is an IDX images file)";
    else if (hdr[0] == 0x1f && hdr[1] == 0x8b) hint = " (gzip data inside gzip?)";
    return nr_fail(err, "%s: bad magic at byte 0: expected 0x%08x (%u, IDX %s), found 0x%08x%s", s->path,
                   (unsigned)want, (unsigned)want, want == 2051 ? "unsigned-byte images" : "unsigned-byte labels",
                   (unsigned)magic, hint);
}

static int load_idx_images(idx_stream *s, nr_dataset *d, nr_error *err)
{
    uint8_t hdr[16];
    if (stream_read_exact(s, hdr, 4, "a 16-byte IDX image header", err)) return -1;
    if (check_idx_magic(s, hdr, 2051, err)) return -1;
    if (stream_read_exact(s, hdr + 4, 12, "a 16-byte IDX image header", err)) return -1;
    uint32_t count = be32(hdr + 4), rows = be32(hdr + 8), cols = be32(hdr + 12);
    if (count == 0 || count > 0x7fffffffu)
        return nr_fail(err, "%s: bad image count %u at byte 4: expected 1..2147483647", s->path, (unsigned)count);
    if (rows == 0 || cols == 0 || rows > IDX_MAX_SIDE || cols > IDX_MAX_SIDE)
        return nr_fail(err, "%s: bad image size %ux%u at byte 8: expected 1..%d rows and columns", s->path,
                       (unsigned)rows, (unsigned)cols, IDX_MAX_SIDE);
    uint64_t payload = (uint64_t)count * rows * cols;
    char what[128];
    snprintf(what, sizeof what, "%u images of %ux%u", (unsigned)count, (unsigned)rows, (unsigned)cols);
    if (check_payload_size(s, 16, payload, what, err)) return -1;
    if (payload > SIZE_MAX / 2) return nr_fail(err, "%s: %s do not fit in memory", s->path, what);
    uint8_t *pixels = nr_alloc((size_t)payload);
    if (!pixels) return nr_fail(err, "%s: out of memory for %s", s->path, what);
    char expected[192];
    snprintf(expected, sizeof expected, "%llu bytes (16-byte header + %s)", (unsigned long long)(16 + payload), what);
    if (stream_read_exact(s, pixels, (size_t)payload, expected, err) || stream_expect_end(s, what, err)) {
        nr_free(pixels);
        return -1;
    }
    d->count = (int)count;
    d->channels = 1;
    d->height = (int)rows;
    d->width = (int)cols;
    d->pixels = pixels;
    return 0;
}

int nr_load_idx_images(const char *path, nr_dataset *d, nr_error *err)
{
    idx_stream s;
    if (stream_open(&s, path, err)) return -1;
    int rc = load_idx_images(&s, d, err);
    stream_close(&s);
    return rc;
}

static int check_labels(const char *path, const uint8_t *bytes, uint32_t count, uint64_t first_offset, int limit,
                        int *classes, nr_error *err)
{
    int top = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (limit > 0 && bytes[i] >= limit)
            return nr_fail(err, "%s: label %d out of range at byte %llu: expected 0..%d", path, bytes[i],
                           (unsigned long long)(first_offset + i), limit - 1);
        if (bytes[i] > top) top = bytes[i];
    }
    *classes = limit > 0 ? limit : top + 1;
    return 0;
}

static int load_idx_labels(idx_stream *s, nr_dataset *d, nr_error *err)
{
    uint8_t hdr[8];
    if (stream_read_exact(s, hdr, 4, "an 8-byte IDX label header", err)) return -1;
    if (check_idx_magic(s, hdr, 2049, err)) return -1;
    if (stream_read_exact(s, hdr + 4, 4, "an 8-byte IDX label header", err)) return -1;
    uint32_t count = be32(hdr + 4);
    if (d->labels) return nr_fail(err, "%s: the data set already has labels", s->path);
    if (count == 0 || count > 0x7fffffffu)
        return nr_fail(err, "%s: bad label count %u at byte 4: expected 1..2147483647", s->path, (unsigned)count);
    if (d->pixels && count != (uint32_t)d->count)
        return nr_fail(err, "%s: count mismatch at byte 4: %u labels, but the images file holds %d images", s->path,
                       (unsigned)count, d->count);
    char what[64];
    snprintf(what, sizeof what, "%u labels", (unsigned)count);
    if (check_payload_size(s, 8, count, what, err)) return -1;
    uint8_t *bytes = malloc(count);
    int32_t *labels = nr_alloc(sizeof *labels * count);
    int classes = 0;
    int rc = bytes && labels ? 0 : nr_fail(err, "%s: out of memory for %s", s->path, what);
    char expected[160];
    snprintf(expected, sizeof expected, "%llu bytes (8-byte header + %s)", (unsigned long long)(8 + (uint64_t)count),
             what);
    if (rc == 0) rc = stream_read_exact(s, bytes, count, expected, err);
    if (rc == 0) rc = stream_expect_end(s, what, err);
    if (rc == 0) rc = check_labels(s->path, bytes, count, 8, d->classes, &classes, err);
    if (rc == 0) {
        for (uint32_t i = 0; i < count; i++) labels[i] = bytes[i];
        d->labels = labels;
        d->classes = classes;
        if (!d->pixels) d->count = (int)count;
    } else {
        nr_free(labels);
    }
    free(bytes);
    return rc;
}

int nr_load_idx_labels(const char *path, nr_dataset *d, nr_error *err)
{
    idx_stream s;
    if (stream_open(&s, path, err)) return -1;
    int rc = load_idx_labels(&s, d, err);
    stream_close(&s);
    return rc;
}

/* ---- CIFAR binary batches ---- */

#define CIFAR_PIXELS 3072

static int cifar_file_records(const char *path, size_t record, int cifar100, int *records, nr_error *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return nr_fail_errno(err, "%s: cannot open", path);
    if (!S_ISREG(sb.st_mode)) return nr_fail(err, "%s: not a regular file", path);
    uint64_t size = (uint64_t)sb.st_size;
    if (size == 0 || size % record != 0)
        return nr_fail(err,
                       "%s: size %llu bytes is not a whole number of %zu-byte records (%s): the data ends at byte "
                       "%llu, expected %llu",
                       path, (unsigned long long)size, record,
                       cifar100 ? "CIFAR-100: coarse byte, fine byte, 3072 pixel bytes"
                                : "CIFAR-10: 1 label byte, 3072 pixel bytes",
                       (unsigned long long)size, (unsigned long long)((size / record + 1) * record));
    if (size / record > 0x7fffffffu) return nr_fail(err, "%s: too many records", path);
    *records = (int)(size / record);
    return 0;
}

/* Copies n records of buf (read from offset `base` of path) into d at image
 * `first`, checking the labels. */
static int cifar_unpack(const char *path, const uint8_t *buf, int n, uint64_t base, int cifar100, nr_dataset *d,
                        int first, nr_error *err)
{
    const size_t record = CIFAR_PIXELS + (cifar100 ? 2 : 1);
    for (int i = 0; i < n; i++) {
        const uint8_t *r = buf + (size_t)i * record;
        uint64_t at = base + (uint64_t)i * record;
        if (cifar100 && r[0] >= 20)
            return nr_fail(err, "%s: coarse label %d out of range at byte %llu: expected 0..19", path, r[0],
                           (unsigned long long)at);
        int label = cifar100 ? r[1] : r[0];
        if (label >= d->classes)
            return nr_fail(err, "%s: label %d out of range at byte %llu: expected 0..%d", path, label,
                           (unsigned long long)(at + (cifar100 ? 1 : 0)), d->classes - 1);
        d->labels[first + i] = label;
        memcpy(d->pixels + (size_t)(first + i) * CIFAR_PIXELS, r + (cifar100 ? 2 : 1), CIFAR_PIXELS);
    }
    return 0;
}

static int cifar_read_file(const char *path, int records, int cifar100, nr_dataset *d, int first, uint8_t *buf,
                           int chunk, nr_error *err)
{
    const size_t record = CIFAR_PIXELS + (cifar100 ? 2 : 1);
    FILE *f = fopen(path, "rb");
    if (!f) return nr_fail_errno(err, "%s: cannot open", path);
    int rc = 0;
    for (int done = 0; rc == 0 && done < records; done += chunk) {
        int n = records - done < chunk ? records - done : chunk;
        size_t got = fread(buf, record, (size_t)n, f);
        if (got != (size_t)n)
            rc = nr_fail(err, "%s: read error or file shrank: the data ends at byte %llu, expected %llu", path,
                         (unsigned long long)((uint64_t)(done + (int)got) * record),
                         (unsigned long long)((uint64_t)records * record));
        else rc = cifar_unpack(path, buf, n, (uint64_t)done * record, cifar100, d, first + done, err);
    }
    fclose(f);
    return rc;
}

int nr_load_cifar_bin(const char *const *paths, int npaths, int cifar100, nr_dataset *d, nr_error *err)
{
    const size_t record = CIFAR_PIXELS + (cifar100 ? 2 : 1);
    if (npaths <= 0) return nr_fail(err, "CIFAR: no batch files given");
    int *records = calloc((size_t)npaths, sizeof *records);
    if (!records) return nr_fail(err, "CIFAR: out of memory");
    long long total = 0;
    int rc = 0;
    for (int i = 0; rc == 0 && i < npaths; i++) {
        rc = cifar_file_records(paths[i], record, cifar100, &records[i], err);
        total += records[i];
        if (rc == 0 && total > 0x7fffffffLL) rc = nr_fail(err, "%s: too many CIFAR records in all", paths[i]);
    }
    nr_dataset out = { .count = (int)total, .channels = 3, .height = 32, .width = 32, .classes = cifar100 ? 100 : 10 };
    const int chunk = 1024;
    uint8_t *buf = NULL;
    if (rc == 0) {
        out.pixels = nr_alloc((size_t)total * CIFAR_PIXELS);
        out.labels = nr_alloc(sizeof *out.labels * (size_t)total);
        buf = malloc(record * (size_t)chunk);
        if (!out.pixels || !out.labels || !buf) rc = nr_fail(err, "%s: out of memory for %lld images", paths[0], total);
    }
    for (int i = 0, first = 0; rc == 0 && i < npaths; first += records[i], i++)
        rc = cifar_read_file(paths[i], records[i], cifar100, &out, first, buf, chunk, err);
    free(buf);
    free(records);
    if (rc) {
        nr_dataset_free(&out);
        return -1;
    }
    *d = out;
    return 0;
}

/* ---- Image folders ---- */

typedef struct string_list {
    char **v;
    int n, cap;
} string_list;

static int strings_add(string_list *l, const char *s)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, sizeof *v * (size_t)cap);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    char *copy = strdup(s);
    if (!copy) return -1;
    l->v[l->n++] = copy;
    return 0;
}

static void strings_free(string_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in dir (not hidden), of directories or of anything, sorted by byte
 * value as Python's sorted() orders them. */
static int list_dir(const char *dir, int dirs_only, string_list *out, nr_error *err)
{
    DIR *dp = opendir(dir);
    if (!dp) return nr_fail_errno(err, "%s: cannot open directory", dir);
    int rc = 0;
    struct dirent *e;
    char path[PATH_LEN];
    while (rc == 0 && (errno = 0, e = readdir(dp)) != NULL) {
        if (e->d_name[0] == '.') continue; /* ".", "..", and hidden entries such as .ipynb_checkpoints */
        if (dirs_only) {
            if (join_path(path, dir, e->d_name, err)) {
                rc = -1;
                break;
            }
            if (!is_dir(path)) continue;
        }
        if (strings_add(out, e->d_name)) rc = nr_fail(err, "%s: out of memory listing the directory", dir);
    }
    if (rc == 0 && !e && errno) rc = nr_fail_errno(err, "%s: cannot read directory", dir);
    closedir(dp);
    if (rc == 0 && out->n > 1) qsort(out->v, (size_t)out->n, sizeof *out->v, compare_strings);
    return rc;
}

typedef struct image_file {
    char *dir;                    /* owned by the list's dirs */
    char *name;
    int label;
} image_file;

typedef struct file_list {
    image_file *v;
    int n, cap;
    string_list dirs, names;      /* storage */
} file_list;

static void files_free(file_list *l)
{
    free(l->v);
    strings_free(&l->dirs);
    strings_free(&l->names);
    memset(l, 0, sizeof *l);
}

static int has_suffix(const char *name, const char *const *suffixes)
{
    size_t n = strlen(name);
    for (int i = 0; suffixes[i]; i++) {
        size_t k = strlen(suffixes[i]);
        if (n > k && strcasecmp(name + n - k, suffixes[i]) == 0) return 1;
    }
    return 0;
}

static const char *const decodable[] = { ".png", ".jpg", ".jpeg", NULL };
/* What torchvision's ImageFolder would also load: refusing them keeps the
 * two from silently seeing different data sets. */
static const char *const other_images[] = { ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", NULL };

/* Every image file under dir (recursively, following links, as
 * torchvision's os.walk(followlinks=True)), all labelled `label`. */
static int collect_images(const char *dir, int label, int depth, file_list *out, nr_error *err)
{
    if (depth > 32) return nr_fail(err, "%s: directories nested too deep (a link loop?)", dir);
    string_list names = { 0 };
    int rc = list_dir(dir, 0, &names, err);
    char path[PATH_LEN];
    int dir_index = -1;
    for (int i = 0; rc == 0 && i < names.n; i++) {
        if ((rc = join_path(path, dir, names.v[i], err))) break;
        if (is_dir(path)) {
            rc = collect_images(path, label, depth + 1, out, err);
        } else if (has_suffix(names.v[i], other_images)) {
            rc = nr_fail(err, "%s: unsupported image format (netc reads PNG and JPEG only)", path);
        } else if (has_suffix(names.v[i], decodable)) {
            if (dir_index < 0) {
                if (strings_add(&out->dirs, dir)) rc = nr_fail(err, "out of memory listing %s", dir);
                dir_index = out->dirs.n - 1;
            }
            if (rc == 0 && strings_add(&out->names, names.v[i])) rc = nr_fail(err, "out of memory listing %s", dir);
            if (rc == 0 && out->n == out->cap) {
                int cap = out->cap ? 2 * out->cap : 1024;
                image_file *v = realloc(out->v, sizeof *v * (size_t)cap);
                if (!v) rc = nr_fail(err, "out of memory listing %s", dir);
                else {
                    out->v = v;
                    out->cap = cap;
                }
            }
            if (rc == 0)
                out->v[out->n++] = (image_file){ out->dirs.v[dir_index], out->names.v[out->names.n - 1], label };
        }
    }
    strings_free(&names);
    return rc;
}

/* torchvision orders samples by sorted (dirpath, filename) within a class. */
static int compare_files(const void *a, const void *b)
{
    const image_file *x = a, *y = b;
    if (x->label != y->label) return x->label < y->label ? -1 : 1;
    int c = strcmp(x->dir, y->dir);
    return c ? c : strcmp(x->name, y->name);
}

typedef struct folder_target {
    int channels;                 /* 0: the first image's */
    int height, width;            /* 0: the first image's */
    nr_resize_mode resize;        /* NR_RESIZE_NONE: sizes must match */
    const char *size_origin;      /* where height and width came from, for errors */
} folder_target;

static int decode_into(const image_file *f, const folder_target *t, uint8_t *out, nr_error *err)
{
    char path[PATH_LEN];
    if (join_path(path, f->dir, f->name, err)) return -1;
    nr_image img;
    if (nr_image_read_file(path, t->channels, &img, err)) return -1;
    int rc = 0;
    if (img.height == t->height && img.width == t->width)
        memcpy(out, img.pixels, (size_t)t->channels * (size_t)t->height * (size_t)t->width);
    else if (t->resize == NR_RESIZE_NONE)
        rc = nr_fail(err, "%s: image is %dx%d (width x height), expected %dx%d (%s)", path, img.width, img.height,
                     t->width, t->height, t->size_origin);
    else
        rc = nr_image_resize(img.pixels, t->channels, img.height, img.width, out, t->height, t->width,
                             t->resize == NR_RESIZE_BICUBIC, err);
    nr_image_free(&img);
    return rc;
}

/* Fills the target's unknowns from the first image. */
static int settle_target(const image_file *first, folder_target *t, nr_error *err)
{
    if (t->channels && t->height && t->width) return 0;
    char path[PATH_LEN];
    if (join_path(path, first->dir, first->name, err)) return -1;
    nr_image img;
    if (nr_image_read_file(path, t->channels, &img, err)) return -1;
    if (!t->channels) t->channels = img.channels;
    if (!t->height || !t->width) {
        t->height = img.height;
        t->width = img.width;
        t->size_origin = "the size of the first image";
    }
    nr_image_free(&img);
    return 0;
}

/* Decodes every file in parallel; on failure reports the first failing
 * file in order, so the message does not depend on thread timing. */
static int decode_all(const file_list *files, const folder_target *t, nr_dataset *out, nr_error *err)
{
    const size_t image_bytes = (size_t)t->channels * (size_t)t->height * (size_t)t->width;
    uint8_t *failed = calloc((size_t)files->n, 1);
    if (!failed) return nr_fail(err, "out of memory");
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 64)
#endif
    for (int i = 0; i < files->n; i++) {
        nr_error local;
        failed[i] = decode_into(&files->v[i], t, out->pixels + (size_t)i * image_bytes, &local) != 0;
    }
    int rc = 0;
    for (int i = 0; i < files->n && rc == 0; i++)
        if (failed[i]) {
            rc = decode_into(&files->v[i], t, out->pixels + (size_t)i * image_bytes, err);
            if (rc == 0) rc = nr_fail(err, "%s/%s: decoding failed once and then succeeded", files->v[i].dir,
                                      files->v[i].name);
        }
    free(failed);
    return rc;
}

static int load_folder(const char *root, folder_target t, nr_dataset *d, string_list *classes_out, nr_error *err)
{
    string_list classes = { 0 };
    file_list files = { 0 };
    nr_dataset out = { 0 };
    char path[PATH_LEN];
    int rc = list_dir(root, 1, &classes, err);
    if (rc == 0 && classes.n == 0)
        rc = nr_fail(err, "%s: no class directories (expected %s/<class>/*.png|*.jpg)", root, root);
    for (int c = 0; rc == 0 && c < classes.n; c++) {
        int before = files.n;
        rc = join_path(path, root, classes.v[c], err);
        if (rc == 0) rc = collect_images(path, c, 0, &files, err);
        if (rc == 0 && files.n == before) rc = nr_fail(err, "%s: class directory has no PNG or JPEG images", path);
    }
    if (rc == 0) {
        qsort(files.v, (size_t)files.n, sizeof *files.v, compare_files);
        rc = settle_target(&files.v[0], &t, err);
    }
    if (rc == 0) {
        out = (nr_dataset){ .count = files.n, .channels = t.channels, .height = t.height, .width = t.width,
                            .classes = classes.n };
        out.pixels = nr_alloc((size_t)files.n * (size_t)t.channels * (size_t)t.height * (size_t)t.width);
        out.labels = nr_alloc(sizeof *out.labels * (size_t)files.n);
        if (!out.pixels || !out.labels) rc = nr_fail(err, "%s: out of memory for %d images", root, files.n);
    }
    if (rc == 0) {
        for (int i = 0; i < files.n; i++) out.labels[i] = files.v[i].label;
        rc = decode_all(&files, &t, &out, err);
    }
    files_free(&files);
    if (rc == 0 && classes_out) *classes_out = classes;
    else strings_free(&classes);
    if (rc) {
        nr_dataset_free(&out);
        return -1;
    }
    snprintf(out.source, sizeof out.source, "%s", root);
    *d = out;
    return 0;
}

int nr_load_image_folder_as(const char *dir, int channels, int height, int width, nr_resize_mode resize,
                            nr_dataset *d, nr_error *err)
{
    if (channels != 0 && channels != 1 && channels != 3)
        return nr_fail(err, "%s: cannot load images as %d channels (1 or 3)", dir, channels);
    if (height < 0 || width < 0 || (resize != NR_RESIZE_NONE && (height == 0 || width == 0)))
        return nr_fail(err, "%s: a resize needs the size to resize to", dir);
    folder_target t = { channels, height, width, resize, "the size asked for" };
    return load_folder(dir, t, d, NULL, err);
}

int nr_load_image_folder(const char *dir, nr_dataset *d, nr_error *err)
{
    return nr_load_image_folder_as(dir, 0, 0, 0, NR_RESIZE_NONE, d, err);
}

/* ---- Resize ---- */

int nr_dataset_resize(nr_dataset *d, int size, int bicubic, nr_error *err)
{
    if (size <= 0 || size > IDX_MAX_SIDE) return nr_fail(err, "resize: bad size %d", size);
    const size_t in_bytes = (size_t)d->channels * (size_t)d->height * (size_t)d->width;
    const size_t out_bytes = (size_t)d->channels * (size_t)size * (size_t)size;
    uint8_t *pixels = nr_alloc(out_bytes * (size_t)d->count);
    if (!pixels) return nr_fail(err, "resize: out of memory for %d images of %dx%d", d->count, size, size);
    int failures = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) reduction(+ : failures)
#endif
    for (int i = 0; i < d->count; i++) {
        nr_error local;
        failures += nr_image_resize(d->pixels + (size_t)i * in_bytes, d->channels, d->height, d->width,
                                    pixels + (size_t)i * out_bytes, size, size, bicubic, &local) != 0;
    }
    if (failures) {
        nr_free(pixels);
        return nr_fail(err, "resize of %d images to %dx%d failed (out of memory)", d->count, size, size);
    }
    nr_free(d->pixels);
    d->pixels = pixels;
    d->height = d->width = size;
    return 0;
}

/* ---- Finding a dataset ---- */

typedef enum { LAYOUT_IDX, LAYOUT_CIFAR10_BIN, LAYOUT_CIFAR100_BIN, LAYOUT_FOLDER } layout_kind;

typedef struct location {
    layout_kind layout;
    char dir[PATH_LEN];           /* where the files are */
    char files[6][PATH_LEN];      /* IDX: train images, train labels, test images, test labels; CIFAR batches */
} location;

static const char *const mnist_dirs[] = { "mnist", NULL };
static const char *const fashion_dirs[] = { "fashion-mnist", "fashion_mnist", NULL };
static const char *const cifar10_dirs[] = { "cifar10", "cifar-10", NULL };
static const char *const cifar100_dirs[] = { "cifar100", "cifar-100", NULL };
static const char *const no_dirs[] = { NULL };

static const char *const *dataset_dirs(nr_dataset_kind k)
{
    switch (k) {
    case NR_DS_MNIST: return mnist_dirs;
    case NR_DS_FASHION_MNIST: return fashion_dirs;
    case NR_DS_CIFAR10: return cifar10_dirs;
    case NR_DS_CIFAR100: return cifar100_dirs;
    default: return no_dirs;
    }
}

static const char *get_data_name(nr_dataset_kind k)
{
    switch (k) {
    case NR_DS_MNIST: return "mnist";
    case NR_DS_FASHION_MNIST: return "fashion-mnist";
    case NR_DS_CIFAR10: return "cifar10";
    case NR_DS_CIFAR100: return "cifar100";
    default: return NULL;
    }
}

static int natural_classes(nr_dataset_kind k)
{
    return k == NR_DS_CIFAR100 ? 100 : k == NR_DS_FOLDER ? 0 : 10;
}

/* The first of the usual spellings of an IDX file present in dir, or "". */
static int find_idx_file(const char *dir, const char *stem, const char *kind, char *out, nr_error *err)
{
    const char *forms[] = { "%s-%s", "%s.%s" };
    const char *suffix[] = { "", ".gz" };
    char name[128];
    for (int f = 0; f < 2; f++)
        for (int s = 0; s < 2; s++) {
            snprintf(name, sizeof name, forms[f], stem, kind);
            strcat(name, suffix[s]);
            if (join_path(out, dir, name, err)) return -1;
            if (is_file(out)) return 0;
        }
    out[0] = '\0';
    return 0;
}

/* 1 when dir holds the four IDX files, 0 when it holds none of them; an
 * incomplete set is an error rather than a reason to look elsewhere. */
static int probe_idx(const char *dir, location *loc, nr_error *err)
{
    static const char *const stems[4][2] = { { "train-images", "idx3-ubyte" }, { "train-labels", "idx1-ubyte" },
                                             { "t10k-images", "idx3-ubyte" }, { "t10k-labels", "idx1-ubyte" } };
    int present = 0;
    for (int i = 0; i < 4; i++) {
        if (find_idx_file(dir, stems[i][0], stems[i][1], loc->files[i], err)) return -1;
        present += loc->files[i][0] != '\0';
    }
    if (present == 0) return 0;
    for (int i = 0; i < 4; i++)
        if (!loc->files[i][0])
            return nr_fail(err, "%s: incomplete data set: %s-%s (or .gz) is missing", dir, stems[i][0], stems[i][1]);
    loc->layout = LAYOUT_IDX;
    snprintf(loc->dir, sizeof loc->dir, "%s", dir);
    return 1;
}

static int probe_cifar_bin(const char *dir, int cifar100, location *loc, nr_error *err)
{
    static const char *const c10[] = { "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                       "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin" };
    static const char *const c100[] = { "train.bin", "test.bin" };
    const char *const *names = cifar100 ? c100 : c10;
    int n = cifar100 ? 2 : 6, present = 0;
    for (int i = 0; i < n; i++) {
        if (join_path(loc->files[i], dir, names[i], err)) return -1;
        present += is_file(loc->files[i]);
    }
    if (present == 0) return 0;
    for (int i = 0; i < n; i++)
        if (!is_file(loc->files[i])) return nr_fail(err, "%s: incomplete data set: %s is missing", dir, names[i]);
    loc->layout = cifar100 ? LAYOUT_CIFAR100_BIN : LAYOUT_CIFAR10_BIN;
    snprintf(loc->dir, sizeof loc->dir, "%s", dir);
    return 1;
}

static int probe_folder(const char *dir, location *loc, nr_error *err)
{
    char train[PATH_LEN], test[PATH_LEN];
    if (join_path(train, dir, "train", err) || join_path(test, dir, "test", err)) return -1;
    if (!is_dir(train) || !is_dir(test)) return 0;
    loc->layout = LAYOUT_FOLDER;
    snprintf(loc->dir, sizeof loc->dir, "%s", dir);
    return 1;
}

/* 1: found in dir; 0: not there; -1: there but broken. */
static int probe(const char *dir, nr_dataset_kind kind, location *loc, nr_error *err)
{
    if (!is_dir(dir)) return 0;
    char sub[PATH_LEN];
    int rc;
    switch (kind) {
    case NR_DS_MNIST:
    case NR_DS_FASHION_MNIST: return probe_idx(dir, loc, err);
    case NR_DS_CIFAR10:
    case NR_DS_CIFAR100: {
        int c100 = kind == NR_DS_CIFAR100;
        if ((rc = probe_cifar_bin(dir, c100, loc, err)) != 0) return rc;
        if (join_path(sub, dir, c100 ? "cifar-100-binary" : "cifar-10-batches-bin", err)) return -1;
        if (is_dir(sub) && (rc = probe_cifar_bin(sub, c100, loc, err)) != 0) return rc;
        return probe_folder(dir, loc, err);
    }
    case NR_DS_FOLDER: return probe_folder(dir, loc, err);
    }
    return 0;
}

typedef struct search {
    string_list looked;           /* every place tried, for the error */
} search;

static int try_place(search *s, const char *dir, nr_dataset_kind kind, location *loc, nr_error *err)
{
    if (strings_add(&s->looked, dir)) return nr_fail(err, "out of memory");
    return probe(dir, kind, loc, err);
}

/* ROOT/<name> for each name of the dataset, then ROOT itself when the user
 * named ROOT (a shared root such as ./data may hold another dataset's files
 * loose, which must not pass for this one). */
static int try_root(search *s, const char *root, int bare, nr_dataset_kind kind, location *loc, nr_error *err)
{
    char dir[PATH_LEN];
    const char *const *names = dataset_dirs(kind);
    for (int i = 0; names[i]; i++) {
        if (join_path(dir, root, names[i], err)) return -1;
        int rc = try_place(s, dir, kind, loc, err);
        if (rc) return rc;
    }
    return bare ? try_place(s, root, kind, loc, err) : 0;
}

static int not_found(const nr_data_spec *spec, const search *s, nr_error *err)
{
    const char *name = spec->name ? spec->name : "data set";
    const char *gd = get_data_name(spec->dataset);
    char hint[256];
    if (spec->dataset == NR_DS_FOLDER)
        snprintf(hint, sizeof hint, "expected PATH/train/<class>/*.png|*.jpg and PATH/test/<class>/...");
    else snprintf(hint, sizeof hint, "run: scripts/get-data %s", gd);
    char list[1024] = "";
    size_t room = sizeof list - strlen(hint) - strlen(name) - 64;
    for (int i = 0; i < s->looked.n; i++) {
        size_t len = strlen(list), add = strlen(s->looked.v[i]) + 4;
        if (len + add >= room) {
            snprintf(list + len, sizeof list - len, "\n  ...");
            break;
        }
        snprintf(list + len, sizeof list - len, "\n  %s", s->looked.v[i]);
    }
    return nr_fail(err, "%s not found; looked in:%s\n%s", name, list, hint);
}

static int locate(const nr_data_spec *spec, const char *data_dir, location *loc, nr_error *err)
{
    if (spec->dataset == NR_DS_FOLDER && !spec->path)
        return nr_fail(err, "%s: a folder data set needs data.path (PATH/train/<class>/..., PATH/test/<class>/...)",
                       spec->name ? spec->name : "folder");
    /* A place the user named (--data, else data.path) is the only one looked at. */
    const char *roots[3];
    int nroots = 0, named = 0;
    if (data_dir && data_dir[0]) roots[nroots++] = data_dir, named = 1;
    else if (spec->path) roots[nroots++] = spec->path, named = 1;
    else {
        const char *env = getenv("NETC_DATA");
        const char *all[3] = { env, "./data", "/usr/share/datasets" };
        for (int i = 0; i < 3; i++)
            if (all[i] && all[i][0]) roots[nroots++] = all[i];
    }
    search s = { { 0 } };
    int rc = 0;
    for (int i = 0; rc == 0 && i < nroots; i++) rc = try_root(&s, roots[i], named, spec->dataset, loc, err);
    if (rc == 0) rc = not_found(spec, &s, err);
    strings_free(&s.looked);
    return rc > 0 ? 0 : -1;
}

/* ---- Loading what was found ---- */

static int load_idx_pair(const char *images, const char *labels, int classes, nr_dataset *d, nr_error *err)
{
    if (nr_load_idx_images(images, d, err)) return -1;
    d->classes = classes;
    return nr_load_idx_labels(labels, d, err);
}

/* labels.tsv (fine_index, fine_name, ...) beside the class folders, as the
 * shared CIFAR-100 copy has: the sorted folder names must give its indices. */
static int verify_labels_tsv(const char *dir, const string_list *classes, nr_error *err)
{
    char path[PATH_LEN];
    if (join_path(path, dir, "labels.tsv", err)) return -1;
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[512];
    int rc = 0, lineno = 0, rows = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        int index;
        char name[256];
        if (sscanf(line, "%d\t%255[^\t\n]", &index, name) != 2) continue; /* the header */
        rows++;
        if (index < 0 || index >= classes->n || strcmp(classes->v[index], name) != 0)
            rc = nr_fail(err, "%s:%d: class %d is '%s' there, but the sorted class directories give %s%s%s", path,
                         lineno, index, name, index >= 0 && index < classes->n ? "'" : "no class",
                         index >= 0 && index < classes->n ? classes->v[index] : "",
                         index >= 0 && index < classes->n ? "'" : "");
    }
    fclose(f);
    if (rc == 0 && rows != classes->n)
        rc = nr_fail(err, "%s: lists %d classes, but there are %d class directories", path, rows, classes->n);
    return rc;
}

static int same_classes(const char *train_dir, const string_list *a, const char *test_dir, const string_list *b,
                        nr_error *err)
{
    for (int i = 0; i < a->n && i < b->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0)
            return nr_fail(err, "%s and %s have different classes: '%s' against '%s' at index %d", train_dir,
                           test_dir, a->v[i], b->v[i], i);
    if (a->n != b->n)
        return nr_fail(err, "%s has %d classes but %s has %d", train_dir, a->n, test_dir, b->n);
    return 0;
}

static int load_folders(const nr_data_spec *spec, const location *loc, nr_dataset *train, nr_dataset *test,
                        nr_error *err)
{
    /* A user's folder is converted to the channels the model takes; CIFAR
     * is colour, and a grey model on it is a mismatch to report. */
    folder_target t = { spec->dataset == NR_DS_FOLDER ? spec->channels : 3,
                        spec->resize ? spec->resize : spec->height,
                        spec->resize ? spec->resize : spec->width,
                        !spec->resize ? NR_RESIZE_NONE : spec->resize_bicubic ? NR_RESIZE_BICUBIC : NR_RESIZE_BILINEAR,
                        "the model's input size; a resize in the data block would convert it" };
    char train_dir[PATH_LEN], test_dir[PATH_LEN];
    if (join_path(train_dir, loc->dir, "train", err) || join_path(test_dir, loc->dir, "test", err)) return -1;
    string_list train_classes = { 0 }, test_classes = { 0 };
    int rc = load_folder(train_dir, t, train, &train_classes, err);
    if (rc == 0) rc = load_folder(test_dir, t, test, &test_classes, err);
    if (rc == 0) rc = same_classes(train_dir, &train_classes, test_dir, &test_classes, err);
    if (rc == 0) rc = verify_labels_tsv(loc->dir, &train_classes, err);
    strings_free(&train_classes);
    strings_free(&test_classes);
    return rc;
}

static int load_location(const nr_data_spec *spec, const location *loc, nr_dataset *train, nr_dataset *test,
                         nr_error *err)
{
    const int classes = natural_classes(spec->dataset);
    switch (loc->layout) {
    case LAYOUT_IDX:
        if (load_idx_pair(loc->files[0], loc->files[1], classes, train, err)) return -1;
        return load_idx_pair(loc->files[2], loc->files[3], classes, test, err);
    case LAYOUT_CIFAR10_BIN: {
        const char *paths[6];
        for (int i = 0; i < 6; i++) paths[i] = loc->files[i];
        if (nr_load_cifar_bin(paths, 5, 0, train, err)) return -1;
        return nr_load_cifar_bin(paths + 5, 1, 0, test, err);
    }
    case LAYOUT_CIFAR100_BIN: {
        const char *paths[2] = { loc->files[0], loc->files[1] };
        if (nr_load_cifar_bin(paths, 1, 1, train, err)) return -1;
        return nr_load_cifar_bin(paths + 1, 1, 1, test, err);
    }
    case LAYOUT_FOLDER: return load_folders(spec, loc, train, test, err);
    }
    return nr_fail(err, "internal: unknown data layout");
}

static int check_against_spec(const nr_data_spec *spec, const char *dir, const char *split, nr_dataset *d,
                              nr_error *err)
{
    const char *name = spec->name ? spec->name : "data set";
    if (d->channels != spec->channels)
        return nr_fail(err, "%s (%s, %s): images have %d channel%s but the model takes %d", name, dir, split,
                       d->channels, d->channels == 1 ? "" : "s", spec->channels);
    if (spec->resize && (d->height != spec->resize || d->width != spec->resize)) {
        if (nr_dataset_resize(d, spec->resize, spec->resize_bicubic, err)) return -1;
    }
    if (d->height != spec->height || d->width != spec->width)
        return nr_fail(err, "%s (%s, %s): images are %dx%d but the model takes %dx%d%s", name, dir, split, d->height,
                       d->width, spec->height, spec->width, spec->resize ? "" : " (resize them in the data block)");
    if (d->classes != spec->classes)
        return nr_fail(err, "%s (%s, %s): the data set has %d classes but the model has %d", name, dir, split,
                       d->classes, spec->classes);
    snprintf(d->source, sizeof d->source, "%s", dir);
    return 0;
}

int nr_data_load(const nr_data_spec *spec, const char *data_dir, nr_dataset *train, nr_dataset *test, nr_error *err)
{
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (spec->channels <= 0 || spec->height <= 0 || spec->width <= 0 || spec->classes <= 0 || spec->resize < 0)
        return nr_fail(err, "%s: the data spec needs channels, height, width and classes (got %d, %d, %d, %d)",
                       spec->name ? spec->name : "data", spec->channels, spec->height, spec->width, spec->classes);
    location *loc = calloc(1, sizeof *loc);
    if (!loc) return nr_fail(err, "out of memory");
    int rc = locate(spec, data_dir, loc, err);
    if (rc == 0) rc = load_location(spec, loc, train, test, err);
    if (rc == 0) rc = check_against_spec(spec, loc->dir, "train", train, err);
    if (rc == 0) rc = check_against_spec(spec, loc->dir, "test", test, err);
    free(loc);
    if (rc) {
        nr_dataset_free(train);
        nr_dataset_free(test);
    }
    return rc;
}
