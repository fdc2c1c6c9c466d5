/* Data loading: IDX (raw and gzip), CIFAR binaries, PNG/JPEG folders, the
 * search for a data set, every kind of broken file, and torchvision-style
 * resizing. Each test writes its own small files in a temporary directory. */
#include "data.h"
#include "image.h"
#include "tap.h"
#include <dirent.h>
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <jpeglib.h>

static char tmp_root[512];

/* ---- Files ---- */

static void path_of(char *out, size_t n, const char *rel)
{
    snprintf(out, n, "%s/%s", tmp_root, rel);
}

/* mkdir -p of tmp_root/rel. */
static void make_dirs(const char *rel)
{
    char path[1024];
    path_of(path, sizeof path, rel);
    for (char *p = path + strlen(tmp_root) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    mkdir(path, 0755);
}

/* Writes bytes to tmp_root/rel (creating its directory), gzip-compressed
 * when gz; returns the full path in a static buffer. */
static const char *write_file(const char *rel, const void *bytes, size_t n, int gz)
{
    static char path[1024];
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", rel);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        make_dirs(dir);
    }
    path_of(path, sizeof path, rel);
    if (gz) {
        gzFile f = gzopen(path, "wb6");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        if (n) CU_ASSERT_EQUAL(gzwrite(f, bytes, (unsigned)n), (int)n);
        CU_ASSERT_EQUAL(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT_EQUAL(fwrite(bytes, 1, n, f), n);
        CU_ASSERT_EQUAL(fclose(f), 0);
    }
    return path;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* An IDX images file: count images of rows x cols, pixel (i, k) = (7*i + k) % 256. */
static size_t idx_images(uint8_t *buf, uint32_t magic, uint32_t count, uint32_t rows, uint32_t cols)
{
    put_be32(buf, magic);
    put_be32(buf + 4, count);
    put_be32(buf + 8, rows);
    put_be32(buf + 12, cols);
    size_t per = (size_t)rows * cols;
    for (size_t i = 0; i < count; i++)
        for (size_t k = 0; k < per; k++) buf[16 + i * per + k] = (uint8_t)((7 * i + k) % 256);
    return 16 + count * per;
}

static size_t idx_labels(uint8_t *buf, uint32_t count, const uint8_t *labels)
{
    put_be32(buf, 2049);
    put_be32(buf + 4, count);
    memcpy(buf + 8, labels, count);
    return 8 + count;
}

static void remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            char child[1024];
            while ((e = readdir(d)) != NULL) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
                snprintf(child, sizeof child, "%s/%s", path, e->d_name);
                remove_tree(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Asserts that the error mentions every string given (NULL-terminated),
 * showing the message when it does not. */
static int mentions(const nr_error *e, const char *const *needles)
{
    for (int i = 0; needles[i]; i++)
        if (!strstr(e->msg, needles[i])) {
            printf("# error \"%s\"\n#   lacks \"%s\"\n", e->msg, needles[i]);
            return 0;
        }
    return 1;
}
#define MENTIONS(e, ...) CU_ASSERT(mentions((e), (const char *const[]){ __VA_ARGS__, NULL }))

/* ---- Image writers (the tests' own encoders) ---- */

static void write_png(const char *rel, const uint8_t *hwc, int w, int h, int nch)
{
    char dir[1024], path[1024];
    snprintf(dir, sizeof dir, "%s", rel);
    *strrchr(dir, '/') = '\0';
    make_dirs(dir);
    path_of(path, sizeof path, rel);
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = nch == 1 ? PNG_FORMAT_GRAY : nch == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
    CU_ASSERT_FATAL(png_image_write_to_file(&img, path, 0, hwc, 0, NULL) != 0);
}

static void write_jpeg(const char *rel, const uint8_t *hwc, int w, int h, int nch)
{
    char dir[1024], path[1024];
    snprintf(dir, sizeof dir, "%s", rel);
    *strrchr(dir, '/') = '\0';
    make_dirs(dir);
    path_of(path, sizeof path, rel);
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = nch;
    c.in_color_space = nch == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    c.comp_info[0].h_samp_factor = c.comp_info[0].v_samp_factor = 1; /* 4:4:4 */
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(hwc + (size_t)c.next_scanline * (size_t)w * (size_t)nch);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    CU_ASSERT_EQUAL(fclose(f), 0);
}

/* ---- IDX ---- */

static void load_idx_pair_ok(int gz)
{
    uint8_t buf[16 + 3 * 4 * 5], lab[8 + 3];
    const uint8_t labels[3] = { 7, 0, 9 };
    const char *sub = gz ? "idx_gz" : "idx_raw";
    char rel[128];
    snprintf(rel, sizeof rel, "%s/images", sub);
    char images[1024];
    snprintf(images, sizeof images, "%s", write_file(rel, buf, idx_images(buf, 2051, 3, 4, 5), gz));
    snprintf(rel, sizeof rel, "%s/labels", sub);
    const char *lpath = write_file(rel, lab, idx_labels(lab, 3, labels), gz);
    nr_dataset d = { 0 };
    nr_error e = { "" };
    CU_ASSERT_EQUAL_FATAL(nr_load_idx_images(images, &d, &e), 0);
    CU_ASSERT_EQUAL(d.count, 3);
    CU_ASSERT_EQUAL(d.channels, 1);
    CU_ASSERT_EQUAL(d.height, 4);
    CU_ASSERT_EQUAL(d.width, 5);
    int same = 1;
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 20; k++) same &= d.pixels[i * 20 + k] == (uint8_t)(7 * i + k);
    CU_ASSERT(same);
    d.classes = 10;
    CU_ASSERT_EQUAL_FATAL(nr_load_idx_labels(lpath, &d, &e), 0);
    CU_ASSERT_EQUAL(d.labels[0], 7);
    CU_ASSERT_EQUAL(d.labels[1], 0);
    CU_ASSERT_EQUAL(d.labels[2], 9);
    CU_ASSERT_EQUAL(d.classes, 10);
    nr_dataset_free(&d);
    /* Without a class count the largest label decides it. */
    CU_ASSERT_EQUAL_FATAL(nr_load_idx_labels(lpath, &d, &e), 0);
    CU_ASSERT_EQUAL(d.count, 3);
    CU_ASSERT_EQUAL(d.classes, 10);
    nr_dataset_free(&d);
}

static void test_idx_raw(void)
{
    load_idx_pair_ok(0);
}

static void test_idx_gzip(void)
{
    load_idx_pair_ok(1);
}

/* Loads path as images (or labels after 3 good images) and expects an
 * error naming the path and each needle. */
static void expect_idx_error(const char *path, int labels, const char *n1, const char *n2)
{
    nr_dataset d = { 0 };
    nr_error e = { "" };
    int rc;
    if (labels) {
        uint8_t buf[16 + 3 * 4 * 5];
        const char *images = write_file("err/good-images", buf, idx_images(buf, 2051, 3, 4, 5), 0);
        CU_ASSERT_EQUAL_FATAL(nr_load_idx_images(images, &d, &e), 0);
        d.classes = 10;
        rc = nr_load_idx_labels(path, &d, &e);
        CU_ASSERT_PTR_NULL(d.labels);
    } else {
        rc = nr_load_idx_images(path, &d, &e);
        CU_ASSERT_PTR_NULL(d.pixels);
    }
    CU_ASSERT_EQUAL(rc, -1);
    MENTIONS(&e, path, n1, n2 ? n2 : n1);
    nr_dataset_free(&d);
}

static void test_idx_truncated(void)
{
    uint8_t buf[16 + 3 * 4 * 5];
    size_t n = idx_images(buf, 2051, 3, 4, 5);
    char p[1024];
    /* Header cut after 10 bytes, raw and gzip. */
    snprintf(p, sizeof p, "%s", write_file("trunc/header", buf, 10, 0));
    expect_idx_error(p, 0, "byte 10", "16-byte IDX image header");
    snprintf(p, sizeof p, "%s", write_file("trunc/header.gz", buf, 10, 1));
    expect_idx_error(p, 0, "byte 10 (uncompressed)", "header");
    /* Data cut 20 bytes short: 56 of 76 bytes. */
    snprintf(p, sizeof p, "%s", write_file("trunc/data", buf, n - 20, 0));
    expect_idx_error(p, 0, "ends at byte 56", "3 images of 4x5");
    snprintf(p, sizeof p, "%s", write_file("trunc/data.gz", buf, n - 20, 1));
    expect_idx_error(p, 0, "byte 56 (uncompressed)", "expected 76 bytes (16-byte header + 3 images of 4x5)");
    /* A gzip file cut in the middle of its compressed stream. */
    uint8_t big[16 + 50 * 28 * 28];
    size_t bn = idx_images(big, 2051, 50, 28, 28);
    snprintf(p, sizeof p, "%s", write_file("trunc/stream.gz", big, bn, 1));
    struct stat sb;
    CU_ASSERT_EQUAL_FATAL(stat(p, &sb), 0);
    CU_ASSERT_EQUAL_FATAL(truncate(p, sb.st_size / 2), 0);
    expect_idx_error(p, 0, "truncated", "gzip");
    /* Labels: header cut, data cut. */
    uint8_t lab[16];
    const uint8_t l3[3] = { 1, 2, 3 };
    size_t ln = idx_labels(lab, 3, l3);
    snprintf(p, sizeof p, "%s", write_file("trunc/labels-header", lab, 6, 0));
    expect_idx_error(p, 1, "byte 6", "8-byte IDX label header");
    snprintf(p, sizeof p, "%s", write_file("trunc/labels-data.gz", lab, ln - 1, 1));
    expect_idx_error(p, 1, "byte 10", "expected 11 bytes (8-byte header + 3 labels)");
}

static void test_idx_corrupt(void)
{
    uint8_t buf[16 + 3 * 4 * 5];
    char p[1024];
    /* Bad magic; a labels file given as images. */
    snprintf(p, sizeof p, "%s", write_file("bad/magic", buf, idx_images(buf, 0x0803ffff, 3, 4, 5), 0));
    expect_idx_error(p, 0, "bad magic at byte 0", "0x00000803");
    uint8_t lab[16];
    const uint8_t l3[3] = { 1, 2, 3 };
    snprintf(p, sizeof p, "%s", write_file("bad/labels-as-images", lab, idx_labels(lab, 3, l3), 1));
    expect_idx_error(p, 0, "bad magic at byte 0", "labels file");
    /* Zero rows. */
    size_t n = idx_images(buf, 2051, 3, 4, 5);
    put_be32(buf + 8, 0);
    snprintf(p, sizeof p, "%s", write_file("bad/dims", buf, n, 0));
    expect_idx_error(p, 0, "byte 8", "bad image size 0x5");
    /* An absurd count, raw and gzip: refused from the file size, before any
     * allocation (ASan would abort on a multi-gigabyte malloc). */
    idx_images(buf, 2051, 3, 4, 5);
    put_be32(buf + 4, 0x7fffffff);
    put_be32(buf + 8, 1000);
    put_be32(buf + 12, 1000);
    snprintf(p, sizeof p, "%s", write_file("bad/huge", buf, n, 0));
    expect_idx_error(p, 0, "truncated", "2147483647 images of 1000x1000");
    snprintf(p, sizeof p, "%s", write_file("bad/huge.gz", buf, n, 1));
    expect_idx_error(p, 0, "byte 4", "truncated or its header corrupt");
    /* Garbage after the gzip magic. */
    uint8_t junk[64] = { 0x1f, 0x8b };
    for (int i = 2; i < 64; i++) junk[i] = (uint8_t)(i * 37 + 11);
    snprintf(p, sizeof p, "%s", write_file("bad/garbage.gz", junk, sizeof junk, 0));
    expect_idx_error(p, 0, "gzip", "byte 0");
    /* A good gzip stream with a damaged CRC: caught at the end. */
    uint8_t big[16 + 50 * 28 * 28];
    snprintf(p, sizeof p, "%s", write_file("bad/crc.gz", big, idx_images(big, 2051, 50, 28, 28), 1));
    FILE *f = fopen(p, "r+b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fseek(f, -8, SEEK_END), 0);
    int c = fgetc(f);
    CU_ASSERT_EQUAL(fseek(f, -8, SEEK_END), 0);
    fputc(c ^ 0x55, f);
    CU_ASSERT_EQUAL(fclose(f), 0);
    expect_idx_error(p, 0, "corrupt gzip stream", "incorrect data check");
    /* Trailing bytes after the images the header announces. */
    uint8_t longer[16 + 3 * 4 * 5 + 4];
    n = idx_images(longer, 2051, 3, 4, 5);
    snprintf(p, sizeof p, "%s", write_file("bad/trailing", longer, n + 4, 0));
    expect_idx_error(p, 0, "extra data at byte 76", "3 images of 4x5");
    /* Label count differs from the image count; a label out of range. */
    const uint8_t l2[3] = { 1, 2, 10 };
    snprintf(p, sizeof p, "%s", write_file("bad/count", lab, idx_labels(lab, 2, l2), 0));
    expect_idx_error(p, 1, "count mismatch at byte 4", "2 labels");
    snprintf(p, sizeof p, "%s", write_file("bad/range.gz", lab, idx_labels(lab, 3, l2), 1));
    expect_idx_error(p, 1, "label 10 out of range at byte 10", "0..9");
    /* A missing file. */
    path_of(p, sizeof p, "bad/nothing-here");
    expect_idx_error(p, 0, "cannot open", NULL);
}

/* Bytes appended to a gzip file: zlib's gzread ignores them, the loader
 * must not; a second gzip member glued on is valid gzip and loads. */
static void append(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "ab");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(bytes, 1, n, f), n);
    CU_ASSERT_EQUAL(fclose(f), 0);
}

static void test_idx_gzip_trailing(void)
{
    uint8_t buf[16 + 3 * 4 * 5];
    size_t n = idx_images(buf, 2051, 3, 4, 5);
    char p[1024];
    snprintf(p, sizeof p, "%s", write_file("tail/garbage.gz", buf, n, 1));
    struct stat sb;
    CU_ASSERT_EQUAL_FATAL(stat(p, &sb), 0);
    append(p, "GARBAGE!", 8);
    char at[64];
    snprintf(at, sizeof at, "8 bytes of trailing garbage at byte %lld", (long long)sb.st_size);
    expect_idx_error(p, 0, at, "after the end of the gzip data");
    /* Two members: the images file split after its header. */
    char q[1024], second[1024];
    snprintf(q, sizeof q, "%s", write_file("tail/members.gz", buf, 16, 1));
    snprintf(second, sizeof second, "%s", write_file("tail/second.gz", buf + 16, n - 16, 1));
    FILE *f = fopen(second, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    uint8_t member[512];
    size_t mn = fread(member, 1, sizeof member, f);
    fclose(f);
    append(q, member, mn);
    nr_dataset d = { 0 };
    nr_error e = { "" };
    CU_ASSERT_EQUAL(nr_load_idx_images(q, &d, &e), 0);
    CU_ASSERT_EQUAL(d.count, 3);
    nr_dataset_free(&d);
    /* A member followed by bytes that start like one but are not. */
    append(q, "\x1f" "XXXXXXXXXXXXXXXX", 17);
    expect_idx_error(q, 0, "neither a gzip member nor the end of the file", NULL);
}

/* ---- CIFAR ---- */

/* A CIFAR batch of n records: label i*3 % classes (fine; coarse i % 20),
 * pixel k of record i = (i + 3k) % 251. */
static const char *cifar_batch(const char *rel, int n, int cifar100, int first)
{
    size_t rec = 3072 + (cifar100 ? 2 : 1);
    uint8_t *buf = malloc(rec * (size_t)n);
    for (int i = 0; i < n; i++) {
        uint8_t *r = buf + (size_t)i * rec;
        int g = first + i;
        if (cifar100) {
            r[0] = (uint8_t)(g % 20);
            r[1] = (uint8_t)(g * 3 % 100);
        } else {
            r[0] = (uint8_t)(g * 3 % 10);
        }
        for (int k = 0; k < 3072; k++) r[rec - 3072 + (size_t)k] = (uint8_t)((g + 3 * k) % 251);
    }
    const char *p = write_file(rel, buf, rec * (size_t)n, 0);
    free(buf);
    return p;
}

static int cifar_values_ok(const nr_dataset *d, int cifar100)
{
    for (int g = 0; g < d->count; g++) {
        if (d->labels[g] != (cifar100 ? g * 3 % 100 : g * 3 % 10)) return 0;
        for (int k = 0; k < 3072; k++)
            if (d->pixels[(size_t)g * 3072 + (size_t)k] != (uint8_t)((g + 3 * k) % 251)) return 0;
    }
    return 1;
}

static void test_cifar_bin(void)
{
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s", cifar_batch("cifar/b1.bin", 4, 0, 0));
    snprintf(b, sizeof b, "%s", cifar_batch("cifar/b2.bin", 3, 0, 4));
    const char *paths[2] = { a, b };
    nr_dataset d = { 0 };
    nr_error e = { "" };
    CU_ASSERT_EQUAL_FATAL(nr_load_cifar_bin(paths, 2, 0, &d, &e), 0);
    CU_ASSERT_EQUAL(d.count, 7);
    CU_ASSERT_EQUAL(d.channels, 3);
    CU_ASSERT_EQUAL(d.height, 32);
    CU_ASSERT_EQUAL(d.classes, 10);
    CU_ASSERT(cifar_values_ok(&d, 0));
    nr_dataset_free(&d);
    snprintf(a, sizeof a, "%s", cifar_batch("cifar/train.bin", 40, 1, 0));
    CU_ASSERT_EQUAL_FATAL(nr_load_cifar_bin(paths, 1, 1, &d, &e), 0);
    CU_ASSERT_EQUAL(d.count, 40);
    CU_ASSERT_EQUAL(d.classes, 100);
    CU_ASSERT(cifar_values_ok(&d, 1));
    nr_dataset_free(&d);
}

static void test_cifar_corrupt(void)
{
    nr_dataset d = { 0 };
    nr_error e = { "" };
    char p[1024];
    const char *paths[1] = { p };
    /* Not a whole number of records. */
    snprintf(p, sizeof p, "%s", cifar_batch("cifarbad/short.bin", 2, 0, 0));
    CU_ASSERT_EQUAL_FATAL(truncate(p, 3073 * 2 - 5), 0);
    CU_ASSERT_EQUAL(nr_load_cifar_bin(paths, 1, 0, &d, &e), -1);
    MENTIONS(&e, p, "6141 bytes", "3073-byte records", "ends at byte 6141");
    CU_ASSERT_PTR_NULL(d.pixels);
    /* A CIFAR-10 label of 12 in record 1. */
    snprintf(p, sizeof p, "%s", cifar_batch("cifarbad/label.bin", 2, 0, 0));
    FILE *f = fopen(p, "r+b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fseek(f, 3073, SEEK_SET), 0);
    fputc(12, f);
    CU_ASSERT_EQUAL(fclose(f), 0);
    CU_ASSERT_EQUAL(nr_load_cifar_bin(paths, 1, 0, &d, &e), -1);
    MENTIONS(&e, p, "label 12 out of range at byte 3073", "0..9");
    /* A CIFAR-100 fine label of 100 in record 2. */
    snprintf(p, sizeof p, "%s", cifar_batch("cifarbad/fine.bin", 3, 1, 0));
    f = fopen(p, "r+b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fseek(f, 2 * 3074 + 1, SEEK_SET), 0);
    fputc(100, f);
    CU_ASSERT_EQUAL(fclose(f), 0);
    CU_ASSERT_EQUAL(nr_load_cifar_bin(paths, 1, 1, &d, &e), -1);
    MENTIONS(&e, p, "label 100 out of range at byte 6149", "0..99");
    /* Empty file. */
    snprintf(p, sizeof p, "%s", write_file("cifarbad/empty.bin", "", 0, 0));
    CU_ASSERT_EQUAL(nr_load_cifar_bin(paths, 1, 0, &d, &e), -1);
    MENTIONS(&e, p, "0 bytes");
}

/* ---- Image folders ---- */

static void test_png_folder(void)
{
    /* 3x2 grey images (w 3, h 2); one colour image in class "b" converted
     * with PIL's weights; files and classes deliberately out of order. */
    const uint8_t g1[6] = { 0, 10, 20, 30, 40, 255 }, g2[6] = { 5, 6, 7, 8, 9, 10 };
    const uint8_t rgb[18] = { 255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 200, 100, 50, 1, 2, 3 };
    write_png("pngs/train/b/z.png", g1, 3, 2, 1);
    write_png("pngs/train/b/a.png", rgb, 3, 2, 3);
    write_png("pngs/train/a/m.PNG", g2, 3, 2, 1);
    write_file("pngs/train/a/notes.txt", "not an image", 12, 0);
    char root[1024];
    path_of(root, sizeof root, "pngs/train");
    nr_dataset d = { 0 };
    nr_error e = { "" };
    CU_ASSERT_EQUAL_FATAL(nr_load_image_folder_as(root, 1, 0, 0, NR_RESIZE_NONE, &d, &e), 0);
    CU_ASSERT_EQUAL(d.count, 3);
    CU_ASSERT_EQUAL(d.classes, 2);
    CU_ASSERT_EQUAL(d.channels, 1);
    CU_ASSERT_EQUAL(d.height, 2);
    CU_ASSERT_EQUAL(d.width, 3);
    CU_ASSERT_EQUAL(d.labels[0], 0); /* a/m.PNG */
    CU_ASSERT_EQUAL(d.labels[1], 1); /* b/a.png */
    CU_ASSERT_EQUAL(d.labels[2], 1); /* b/z.png */
    CU_ASSERT_EQUAL(memcmp(d.pixels, g2, 6), 0);
    CU_ASSERT_EQUAL(memcmp(d.pixels + 12, g1, 6), 0);
    /* PIL: L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16. */
    const uint8_t grey[6] = { 76, 150, 29, 18, 124, 2 };
    CU_ASSERT_EQUAL(memcmp(d.pixels + 6, grey, 6), 0);
    nr_dataset_free(&d);
    /* As RGB: grey replicated, colour kept, planes in CHW order. */
    CU_ASSERT_EQUAL_FATAL(nr_load_image_folder_as(root, 3, 2, 3, NR_RESIZE_NONE, &d, &e), 0);
    CU_ASSERT_EQUAL(d.channels, 3);
    for (int c = 0; c < 3; c++) {
        CU_ASSERT_EQUAL(memcmp(d.pixels + c * 6, g2, 6), 0);
        for (int k = 0; k < 6; k++) CU_ASSERT_EQUAL(d.pixels[18 + c * 6 + k], rgb[k * 3 + c]);
    }
    nr_dataset_free(&d);
    /* Alpha is dropped, not composited (as PIL's convert("RGB")). */
    const uint8_t rgba[8] = { 200, 100, 50, 0, 1, 2, 3, 128 };
    write_png("pngs/alpha/x/a.png", rgba, 2, 1, 4);
    path_of(root, sizeof root, "pngs/alpha");
    CU_ASSERT_EQUAL_FATAL(nr_load_image_folder(root, &d, &e), 0);
    CU_ASSERT_EQUAL(d.channels, 3);
    const uint8_t want[6] = { 200, 1, 100, 2, 50, 3 };
    CU_ASSERT_EQUAL(memcmp(d.pixels, want, 6), 0);
    nr_dataset_free(&d);
}

static void test_jpeg_folder(void)
{
    /* A smooth 16x16 RGB gradient survives JPEG quality 95 within a few levels. */
    uint8_t hwc[16 * 16 * 3];
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++) {
            hwc[(y * 16 + x) * 3 + 0] = (uint8_t)(40 + 8 * x);
            hwc[(y * 16 + x) * 3 + 1] = (uint8_t)(30 + 10 * y);
            hwc[(y * 16 + x) * 3 + 2] = 128;
        }
    write_jpeg("jpgs/train/cat/0.jpg", hwc, 16, 16, 3);
    write_jpeg("jpgs/train/dog/0.jpeg", hwc, 16, 16, 3);
    char root[1024];
    path_of(root, sizeof root, "jpgs/train");
    nr_dataset d = { 0 };
    nr_error e = { "" };
    CU_ASSERT_EQUAL_FATAL(nr_load_image_folder(root, &d, &e), 0);
    CU_ASSERT_EQUAL(d.count, 2);
    CU_ASSERT_EQUAL(d.channels, 3);
    CU_ASSERT_EQUAL(d.labels[1], 1);
    int worst = 0;
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < 256; k++) {
            int diff = abs((int)d.pixels[c * 256 + k] - (int)hwc[k * 3 + c]);
            if (diff > worst) worst = diff;
        }
    printf("# JPEG q95 4:4:4 round trip: largest error %d levels\n", worst);
    CU_ASSERT(worst <= 6);
    nr_dataset_free(&d);
    /* A grey JPEG read as 1 channel. */
    uint8_t g[64];
    for (int k = 0; k < 64; k++) g[k] = (uint8_t)(100 + k);
    write_jpeg("jpgs/grey/a/0.jpg", g, 8, 8, 1);
    path_of(root, sizeof root, "jpgs/grey");
    CU_ASSERT_EQUAL_FATAL(nr_load_image_folder(root, &d, &e), 0);
    CU_ASSERT_EQUAL(d.channels, 1);
    worst = 0;
    for (int k = 0; k < 64; k++)
        if (abs((int)d.pixels[k] - (int)g[k]) > worst) worst = abs((int)d.pixels[k] - (int)g[k]);
    CU_ASSERT(worst <= 4);
    nr_dataset_free(&d);
}

static void test_folder_errors(void)
{
    nr_dataset d = { 0 };
    nr_error e = { "" };
    char root[1024], bad[1024];
    const uint8_t px[12] = { 0 };
    /* One image of another size: named in the error. */
    write_png("fold/size/train/a/0.png", px, 3, 2, 1);
    write_png("fold/size/train/a/1.png", px, 3, 3, 1);
    path_of(root, sizeof root, "fold/size/train");
    path_of(bad, sizeof bad, "fold/size/train/a/1.png");
    CU_ASSERT_EQUAL(nr_load_image_folder_as(root, 1, 2, 3, NR_RESIZE_NONE, &d, &e), -1);
    MENTIONS(&e, bad, "3x3", "expected 3x2");
    CU_ASSERT_PTR_NULL(d.pixels);
    /* The same folder resized: fine, every image 4x4. */
    CU_ASSERT_EQUAL(nr_load_image_folder_as(root, 1, 4, 4, NR_RESIZE_BILINEAR, &d, &e), 0);
    CU_ASSERT_EQUAL(d.height, 4);
    CU_ASSERT_EQUAL(d.count, 2);
    nr_dataset_free(&d);
    /* No class directories at all. */
    make_dirs("fold/empty/train");
    path_of(root, sizeof root, "fold/empty/train");
    CU_ASSERT_EQUAL(nr_load_image_folder(root, &d, &e), -1);
    MENTIONS(&e, root, "no class directories");
    /* A class directory without images. */
    make_dirs("fold/hollow/train/a");
    write_file("fold/hollow/train/a/readme", "x", 1, 0);
    path_of(root, sizeof root, "fold/hollow/train");
    CU_ASSERT_EQUAL(nr_load_image_folder(root, &d, &e), -1);
    MENTIONS(&e, "fold/hollow/train/a", "no PNG or JPEG");
    /* A corrupt PNG and a truncated JPEG are named. */
    write_png("fold/corrupt/train/a/0.png", px, 3, 2, 1);
    write_file("fold/corrupt/train/a/1.png", "\x89PNG\r\n\x1a\nnonsense", 16, 0);
    path_of(root, sizeof root, "fold/corrupt/train");
    path_of(bad, sizeof bad, "fold/corrupt/train/a/1.png");
    CU_ASSERT_EQUAL(nr_load_image_folder(root, &d, &e), -1);
    MENTIONS(&e, bad, "corrupt PNG");
    static uint8_t hwc[64 * 64 * 3];
    for (int k = 0; k < (int)sizeof hwc; k++) hwc[k] = (uint8_t)(k * 13);
    write_jpeg("fold/cutjpeg/train/a/0.jpg", hwc, 64, 64, 3);
    path_of(bad, sizeof bad, "fold/cutjpeg/train/a/0.jpg");
    struct stat sb;
    CU_ASSERT_EQUAL_FATAL(stat(bad, &sb), 0);
    CU_ASSERT_EQUAL_FATAL(truncate(bad, sb.st_size * 3 / 4), 0);
    path_of(root, sizeof root, "fold/cutjpeg/train");
    CU_ASSERT_EQUAL(nr_load_image_folder(root, &d, &e), -1);
    MENTIONS(&e, bad, "truncated");
    /* A format torchvision would read and netc does not. */
    write_png("fold/bmp/train/a/0.png", px, 3, 2, 1);
    write_file("fold/bmp/train/a/1.bmp", "BM", 2, 0);
    path_of(root, sizeof root, "fold/bmp/train");
    CU_ASSERT_EQUAL(nr_load_image_folder(root, &d, &e), -1);
    MENTIONS(&e, "1.bmp", "unsupported");
}

/* ---- Resize ---- */

static void test_resize_identity(void)
{
    nr_dataset d = { .count = 2, .channels = 3, .height = 5, .width = 7, .classes = 1 };
    d.pixels = nr_alloc(2 * 3 * 5 * 7);
    d.labels = nr_zalloc(2 * sizeof *d.labels);
    uint8_t copy[2 * 3 * 5 * 7];
    for (int k = 0; k < 210; k++) copy[k] = d.pixels[k] = (uint8_t)(k * 97 + 13);
    nr_error e;
    d.width = 5, d.height = 5; /* square, as the spec's resize makes */
    for (int bicubic = 0; bicubic < 2; bicubic++) {
        CU_ASSERT_EQUAL_FATAL(nr_dataset_resize(&d, 5, bicubic, &e), 0);
        CU_ASSERT_EQUAL(memcmp(d.pixels, copy, 150), 0);
    }
    nr_dataset_free(&d);
}

static void resize_expect(const uint8_t *src, int h, int w, int oh, int ow, int bicubic, const uint8_t *want)
{
    uint8_t out[64];
    nr_error e;
    CU_ASSERT_EQUAL_FATAL(nr_image_resize(src, 1, h, w, out, oh, ow, bicubic, &e), 0);
    int same = memcmp(out, want, (size_t)(oh * ow)) == 0;
    if (!same) {
        printf("# resize %dx%d -> %dx%d %s: got", h, w, oh, ow, bicubic ? "bicubic" : "bilinear");
        for (int k = 0; k < oh * ow; k++) printf(" %d", out[k]);
        printf("\n");
    }
    CU_ASSERT(same);
}

/* Worked out from PyTorch's formulas: src = (dst + 0.5) * in/out - 0.5;
 * bilinear clamps src at 0 and repeats the last pixel; bicubic weights for
 * t = 0.25 are (-0.10546875, 0.87890625, 0.26171875, -0.03515625), for
 * t = 0.5 (-0.09375, 0.59375, 0.59375, -0.09375), indices clamped. */
static void test_resize_bilinear(void)
{
    /* Upscale 2x2 -> 4x4: rows [0,25,75,100], 0.75/0.25 mixes (58.75, 76.25;
     * 126.25, 78.75), [200,160,80,40]. */
    const uint8_t up_in[4] = { 0, 100, 200, 40 };
    const uint8_t up_want[16] = { 0, 25, 75, 100, 50, 59, 76, 85, 150, 126, 79, 55, 200, 160, 80, 40 };
    resize_expect(up_in, 2, 2, 4, 4, 0, up_want);
    /* Downscale 4 -> 2: exact halves, rounded half to even as torch.round. */
    const uint8_t down_in[16] = { 2, 3, 4, 5, 2, 3, 4, 5, 2, 3, 4, 5, 2, 3, 4, 5 };
    const uint8_t down_want[4] = { 2, 4, 2, 4 };
    resize_expect(down_in, 4, 4, 2, 2, 0, down_want);
    /* 1x8 -> 1x4 and 1x3 -> 1x2 (scale 1.5: src 0.25 and 1.75). */
    const uint8_t row8[8] = { 10, 20, 30, 40, 50, 60, 70, 80 }, row8_want[4] = { 15, 35, 55, 75 };
    resize_expect(row8, 1, 8, 1, 4, 0, row8_want);
    const uint8_t row3[3] = { 0, 100, 200 }, row3_want[2] = { 25, 175 };
    resize_expect(row3, 1, 3, 1, 2, 0, row3_want);
}

static void test_resize_bicubic(void)
{
    /* Upscale 1x4 -> 1x8, with overshoot below 0 clamped; the same along
     * the other axis, and on a 4x4 image whose rows are all equal. */
    const uint8_t row[4] = { 0, 100, 200, 50 };
    const uint8_t want[8] = { 0, 19, 67, 138, 197, 177, 88, 34 };
    resize_expect(row, 1, 4, 1, 8, 1, want);
    resize_expect(row, 4, 1, 8, 1, 1, want);
    uint8_t sq[16], sq_want[64];
    for (int y = 0; y < 4; y++) memcpy(sq + 4 * y, row, 4);
    for (int y = 0; y < 8; y++) memcpy(sq_want + 8 * y, want, 8);
    resize_expect(sq, 4, 4, 8, 8, 1, sq_want);
    /* Downscale 1x8 -> 1x4 (t = 0.5, edges clamped): 14.0625, 35, 55, 75.9375. */
    const uint8_t row8[8] = { 10, 20, 30, 40, 50, 60, 70, 80 }, row8_want[4] = { 14, 35, 55, 76 };
    resize_expect(row8, 1, 8, 1, 4, 1, row8_want);
    /* Overshoot clamps both ways: 255 * 1.03515625 and 255 * 1.10546875
     * at 1 and 2, 255 * -0.10546875 at 5. */
    const uint8_t hi[4] = { 255, 255, 0, 0 };
    const uint8_t hi_want[8] = { 255, 255, 255, 197, 58, 0, 0, 0 };
    resize_expect(hi, 1, 4, 1, 8, 1, hi_want);
}

static void test_resize_constant(void)
{
    /* 28x28 -> 32x32 and back, both kernels: a flat image stays flat. */
    uint8_t *a = malloc(3 * 28 * 28), *b = malloc(3 * 32 * 32), *c = malloc(3 * 28 * 28);
    memset(a, 173, 3 * 28 * 28);
    nr_error e;
    for (int bicubic = 0; bicubic < 2; bicubic++) {
        CU_ASSERT_EQUAL_FATAL(nr_image_resize(a, 3, 28, 28, b, 32, 32, bicubic, &e), 0);
        CU_ASSERT_EQUAL_FATAL(nr_image_resize(b, 3, 32, 32, c, 28, 28, bicubic, &e), 0);
        int flat = 1;
        for (int k = 0; k < 3 * 32 * 32; k++) flat &= b[k] == 173;
        for (int k = 0; k < 3 * 28 * 28; k++) flat &= c[k] == 173;
        CU_ASSERT(flat);
    }
    free(a);
    free(b);
    free(c);
}

/* ---- nr_data_load ---- */

static nr_data_spec mnist_spec(nr_dataset_kind kind, int size)
{
    nr_data_spec s = { .dataset = kind, .name = "mnist", .channels = 1, .height = size, .width = size, .classes = 10 };
    return s;
}

/* An MNIST-like set of 4x4 images under tmp_root/rel: train as .gz with
 * the standard names, test raw with the dotted names. */
static void make_mini_mnist(const char *rel)
{
    uint8_t buf[16 + 5 * 16], lab[8 + 5];
    const uint8_t labels[5] = { 5, 0, 4, 1, 9 };
    char p[512];
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", rel);
    write_file(p, buf, idx_images(buf, 2051, 5, 4, 4), 1);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte.gz", rel);
    write_file(p, lab, idx_labels(lab, 5, labels), 1);
    snprintf(p, sizeof p, "%s/t10k-images.idx3-ubyte", rel);
    write_file(p, buf, idx_images(buf, 2051, 2, 4, 4), 0);
    snprintf(p, sizeof p, "%s/t10k-labels.idx1-ubyte", rel);
    write_file(p, lab, idx_labels(lab, 2, labels + 3), 0);
}

static void test_load_mnist_search(void)
{
    make_mini_mnist("root1/mnist");
    char data_dir[1024], want[1024];
    path_of(data_dir, sizeof data_dir, "root1");
    path_of(want, sizeof want, "root1/mnist");
    nr_data_spec spec = mnist_spec(NR_DS_MNIST, 4);
    nr_dataset tr, te;
    nr_error e = { "" };
    CU_ASSERT_EQUAL_FATAL(nr_data_load(&spec, data_dir, &tr, &te, &e), 0);
    CU_ASSERT_EQUAL(tr.count, 5);
    CU_ASSERT_EQUAL(te.count, 2);
    CU_ASSERT_EQUAL(tr.labels[0], 5);
    CU_ASSERT_EQUAL(te.labels[1], 9);
    CU_ASSERT_EQUAL(tr.pixels[16 + 3], 7 + 3);
    CU_ASSERT_STRING_EQUAL(tr.source, want);
    CU_ASSERT_STRING_EQUAL(te.source, want);
    nr_dataset_free(&tr);
    nr_dataset_free(&te);
    /* The same through $NETC_DATA, and through data.path (the directory itself). */
    setenv("NETC_DATA", data_dir, 1);
    CU_ASSERT_EQUAL(nr_data_load(&spec, NULL, &tr, &te, &e), 0);
    CU_ASSERT_STRING_EQUAL(tr.source, want);
    nr_dataset_free(&tr);
    nr_dataset_free(&te);
    unsetenv("NETC_DATA");
    spec.path = want;
    CU_ASSERT_EQUAL(nr_data_load(&spec, NULL, &tr, &te, &e), 0);
    CU_ASSERT_EQUAL(tr.count, 5);
    nr_dataset_free(&tr);
    nr_dataset_free(&te);
    /* --data wins over data.path: the place named on the command line is the only one. */
    CU_ASSERT_EQUAL(nr_data_load(&spec, "/nonexistent", &tr, &te, &e), -1);
    MENTIONS(&e, "/nonexistent");
    nr_dataset_free(&tr);
    nr_dataset_free(&te);
    /* Resized to 8x8 on the way in. */
    spec = mnist_spec(NR_DS_MNIST, 8);
    spec.resize = 8;
    CU_ASSERT_EQUAL_FATAL(nr_data_load(&spec, data_dir, &tr, &te, &e), 0);
    CU_ASSERT_EQUAL(tr.height, 8);
    CU_ASSERT_EQUAL(te.width, 8);
    uint8_t want8[64];
    CU_ASSERT_EQUAL(nr_image_resize((const uint8_t[]){ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 }, 1, 4,
                                    4, want8, 8, 8, 0, &e),
                    0);
    CU_ASSERT_EQUAL(memcmp(tr.pixels, want8, 64), 0);
    nr_dataset_free(&tr);
    nr_dataset_free(&te);
}

static void test_load_spec_mismatch(void)
{
    char data_dir[1024];
    path_of(data_dir, sizeof data_dir, "root1");
    nr_dataset tr, te;
    nr_error e = { "" };
    nr_data_spec spec = mnist_spec(NR_DS_MNIST, 4);
    spec.channels = 3;
    CU_ASSERT_EQUAL(nr_data_load(&spec, data_dir, &tr, &te, &e), -1);
    MENTIONS(&e, "1 channel", "takes 3");
    CU_ASSERT_PTR_NULL(tr.pixels);
    CU_ASSERT_PTR_NULL(te.pixels);
    spec = mnist_spec(NR_DS_MNIST, 28);
    CU_ASSERT_EQUAL(nr_data_load(&spec, data_dir, &tr, &te, &e), -1);
    MENTIONS(&e, "4x4", "28x28", "resize");
    spec = mnist_spec(NR_DS_MNIST, 4);
    spec.classes = 5;
    CU_ASSERT_EQUAL(nr_data_load(&spec, data_dir, &tr, &te, &e), -1);
    MENTIONS(&e, "10 classes", "model has 5");
    /* An incomplete set is an error, not a reason to keep looking. */
    make_mini_mnist("root2/mnist");
    char gone[1024];
    path_of(gone, sizeof gone, "root2/mnist/t10k-labels.idx1-ubyte");
    CU_ASSERT_EQUAL_FATAL(unlink(gone), 0);
    path_of(data_dir, sizeof data_dir, "root2");
    spec = mnist_spec(NR_DS_MNIST, 4);
    CU_ASSERT_EQUAL(nr_data_load(&spec, data_dir, &tr, &te, &e), -1);
    MENTIONS(&e, "root2/mnist", "incomplete", "t10k-labels");
}

static void test_load_missing(void)
{
    /* Run from an empty directory so that ./data is known to be absent. */
    char cwd[1024], empty[1024], env[1024], data_dir[1024];
    CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof cwd));
    make_dirs("missing/cwd");
    make_dirs("missing/env");
    make_dirs("missing/opt");
    path_of(empty, sizeof empty, "missing/cwd");
    path_of(env, sizeof env, "missing/env");
    path_of(data_dir, sizeof data_dir, "missing/opt");
    CU_ASSERT_EQUAL_FATAL(chdir(empty), 0);
    setenv("NETC_DATA", env, 1);
    nr_data_spec spec = mnist_spec(NR_DS_CIFAR100, 32);
    spec.name = "cifar100";
    spec.channels = 3;
    spec.classes = 100;
    nr_dataset tr, te;
    nr_error e = { "" };
    if (access("/usr/share/datasets/cifar100", F_OK) == 0 || access("/usr/share/datasets/cifar-100", F_OK) == 0) {
        printf("# skipped the full search check: /usr/share/datasets holds CIFAR-100\n");
    } else {
        CU_ASSERT_EQUAL(nr_data_load(&spec, NULL, &tr, &te, &e), -1);
        char b[1100];
        snprintf(b, sizeof b, "%s/cifar-100", env);
        MENTIONS(&e, "cifar100 not found", b, "./data/cifar100", "/usr/share/datasets/cifar-100",
                 "run: scripts/get-data cifar100");
        /* Shared roots are searched for the dataset's own directory only. */
        CU_ASSERT(strstr(e.msg, "./data\n") == NULL);
        CU_ASSERT(strstr(e.msg, "/usr/share/datasets\n") == NULL);
        printf("# %s\n", strstr(e.msg, "looked") ? "error lists the places" : e.msg);
    }
    /* --data is the only place looked at, as DIR/<name> and DIR itself. */
    CU_ASSERT_EQUAL(nr_data_load(&spec, data_dir, &tr, &te, &e), -1);
    char a[1100];
    snprintf(a, sizeof a, "%s/cifar100", data_dir);
    MENTIONS(&e, a, "get-data cifar100");
    CU_ASSERT(strstr(e.msg, env) == NULL);
    CU_ASSERT(strstr(e.msg, "/usr/share/datasets") == NULL);
    /* data.path is the only place looked at. */
    spec.path = data_dir;
    CU_ASSERT_EQUAL(nr_data_load(&spec, NULL, &tr, &te, &e), -1);
    MENTIONS(&e, data_dir, "get-data cifar100");
    CU_ASSERT(strstr(e.msg, "/usr/share/datasets") == NULL);
    CU_ASSERT(strstr(e.msg, env) == NULL);
    /* A folder data set needs a path. */
    spec = mnist_spec(NR_DS_FOLDER, 4);
    spec.name = "mine";
    CU_ASSERT_EQUAL(nr_data_load(&spec, data_dir, &tr, &te, &e), -1);
    MENTIONS(&e, "data.path");
    unsetenv("NETC_DATA");
    CU_ASSERT_EQUAL(chdir(cwd), 0);
}

static void test_load_cifar(void)
{
    /* CIFAR-10 binaries inside cifar-10-batches-bin/, 2 images per batch. */
    char rel[256];
    for (int i = 0; i < 5; i++) {
        snprintf(rel, sizeof rel, "croot/cifar-10/cifar-10-batches-bin/data_batch_%d.bin", i + 1);
        cifar_batch(rel, 2, 0, 2 * i);
    }
    cifar_batch("croot/cifar-10/cifar-10-batches-bin/test_batch.bin", 3, 0, 0);
    char data_dir[1024], want[1024];
    path_of(data_dir, sizeof data_dir, "croot");
    path_of(want, sizeof want, "croot/cifar-10/cifar-10-batches-bin");
    nr_data_spec spec = { .dataset = NR_DS_CIFAR10, .name = "cifar10", .channels = 3, .height = 32, .width = 32,
                          .classes = 10 };
    nr_dataset tr, te;
    nr_error e = { "" };
    CU_ASSERT_EQUAL_FATAL(nr_data_load(&spec, data_dir, &tr, &te, &e), 0);
    CU_ASSERT_EQUAL(tr.count, 10);
    CU_ASSERT_EQUAL(te.count, 3);
    CU_ASSERT(cifar_values_ok(&tr, 0));
    CU_ASSERT(cifar_values_ok(&te, 0));
    CU_ASSERT_STRING_EQUAL(tr.source, want);
    nr_dataset_free(&tr);
    nr_dataset_free(&te);
    /* CIFAR-100 binaries directly in cifar100/. */
    cifar_batch("croot/cifar100/train.bin", 6, 1, 0);
    cifar_batch("croot/cifar100/test.bin", 2, 1, 0);
    spec.dataset = NR_DS_CIFAR100;
    spec.classes = 100;
    CU_ASSERT_EQUAL_FATAL(nr_data_load(&spec, data_dir, &tr, &te, &e), 0);
    CU_ASSERT_EQUAL(tr.count, 6);
    CU_ASSERT(cifar_values_ok(&tr, 1));
    nr_dataset_free(&tr);
    nr_dataset_free(&te);
}

static void test_load_folder_dataset(void)
{
    /* root/train/<class>, root/test/<class> with a labels.tsv; grey PNGs
     * loaded as RGB and resized 2x2 -> 4x4 (bicubic). */
    const char *classes[3] = { "apple", "bee", "cat" };
    const uint8_t px[4] = { 0, 100, 200, 40 };
    char rel[256];
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 2; i++) {
            snprintf(rel, sizeof rel, "froot/train/%s/%04d.png", classes[c], i);
            write_png(rel, px, 2, 2, 1);
            snprintf(rel, sizeof rel, "froot/test/%s/%04d.png", classes[c], i);
            write_png(rel, px, 2, 2, 1);
        }
    const char *tsv = "fine_index\tfine_name\n0\tapple\n1\tbee\n2\tcat\n";
    write_file("froot/labels.tsv", tsv, strlen(tsv), 0);
    char path[1024];
    path_of(path, sizeof path, "froot");
    nr_data_spec spec = { .dataset = NR_DS_FOLDER, .name = "mine", .path = path, .channels = 3, .height = 4,
                          .width = 4, .classes = 3, .resize = 4, .resize_bicubic = 1 };
    nr_dataset tr, te;
    nr_error e = { "" };
    CU_ASSERT_EQUAL_FATAL(nr_data_load(&spec, NULL, &tr, &te, &e), 0);
    CU_ASSERT_EQUAL(tr.count, 6);
    CU_ASSERT_EQUAL(te.count, 6);
    CU_ASSERT_EQUAL(tr.labels[5], 2);
    uint8_t want[16];
    CU_ASSERT_EQUAL(nr_image_resize(px, 1, 2, 2, want, 4, 4, 1, &e), 0);
    CU_ASSERT_EQUAL(memcmp(tr.pixels + 16, want, 16), 0); /* green plane of image 0 */
    CU_ASSERT_STRING_EQUAL(tr.source, path);
    nr_dataset_free(&tr);
    nr_dataset_free(&te);
    /* Without resize the 2x2 images do not fit a 4x4 model. */
    spec.resize = 0;
    CU_ASSERT_EQUAL(nr_data_load(&spec, NULL, &tr, &te, &e), -1);
    MENTIONS(&e, "froot/train/apple/0000.png", "2x2", "4x4");
    /* labels.tsv disagreeing with the folders. */
    spec.resize = 4;
    const char *bad = "fine_index\tfine_name\n0\tapple\n1\tcat\n2\tbee\n";
    write_file("froot/labels.tsv", bad, strlen(bad), 0);
    CU_ASSERT_EQUAL(nr_data_load(&spec, NULL, &tr, &te, &e), -1);
    MENTIONS(&e, "labels.tsv:3", "'cat'", "'bee'");
    /* A test split missing a class would shift the labels: refused. */
    write_file("froot/labels.tsv", tsv, strlen(tsv), 0);
    char gone[1024];
    path_of(gone, sizeof gone, "froot/test/bee");
    remove_tree(gone);
    CU_ASSERT_EQUAL(nr_data_load(&spec, NULL, &tr, &te, &e), -1);
    MENTIONS(&e, "froot/train", "froot/test", "different classes", "'bee' against 'cat'");
}

static void test_real_fashion_mnist(void)
{
    /* NETC_FASHION_MNIST moves it (as for tests/e2e.sh), e.g. to see the skip. */
    const char *dir = getenv("NETC_FASHION_MNIST");
    if (!dir || !*dir) dir = "/usr/share/datasets/fashion-mnist";
    const char *files[] = { "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                            "t10k-labels-idx1-ubyte.gz" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[512], why[640];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (access(path, R_OK) != 0) {
            snprintf(why, sizeof why, "no %s (scripts/install-deps installs dataset-fashion-mnist)", path);
            TAP_SKIP_UNLESS_CI(why);
            return;
        }
    }
    nr_data_spec spec = { .dataset = NR_DS_FASHION_MNIST, .name = "fashion_mnist", .channels = 1, .height = 28,
                          .width = 28, .classes = 10 };
    nr_dataset tr, te;
    nr_error e = { "" };
    char root[512]; /* the directory holding fashion-mnist/, searched as --data is */
    snprintf(root, sizeof root, "%s", dir);
    char *slash = strrchr(root, '/');
    if (slash && slash != root) *slash = '\0';
    int rc = nr_data_load(&spec, root, &tr, &te, &e);
    if (rc) printf("# %s\n", e.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(tr.count, 60000);
    CU_ASSERT_EQUAL(te.count, 10000);
    CU_ASSERT_EQUAL(tr.labels[0], 9); /* ankle boot */
    CU_ASSERT_EQUAL(te.labels[0], 9);
    CU_ASSERT_STRING_EQUAL(tr.source, dir);
    nr_dataset_free(&tr);
    nr_dataset_free(&te);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmp_root, sizeof tmp_root, "%s/netc-data-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_TestInfo idx[] = { { "raw", test_idx_raw },
                          { "gzip", test_idx_gzip },
                          { "truncated", test_idx_truncated },
                          { "corrupt", test_idx_corrupt },
                          { "gzip with trailing bytes", test_idx_gzip_trailing },
                          CU_TEST_INFO_NULL };
    CU_TestInfo cifar[] = { { "binary", test_cifar_bin }, { "corrupt", test_cifar_corrupt }, CU_TEST_INFO_NULL };
    CU_TestInfo folder[] = { { "png", test_png_folder },
                             { "jpeg", test_jpeg_folder },
                             { "errors", test_folder_errors },
                             CU_TEST_INFO_NULL };
    CU_TestInfo resize[] = { { "identity", test_resize_identity },
                             { "bilinear", test_resize_bilinear },
                             { "bicubic", test_resize_bicubic },
                             { "constant", test_resize_constant },
                             CU_TEST_INFO_NULL };
    CU_TestInfo load[] = { { "mnist search", test_load_mnist_search },
                           { "spec mismatch", test_load_spec_mismatch },
                           { "missing", test_load_missing },
                           { "cifar", test_load_cifar },
                           { "folder", test_load_folder_dataset },
                           { "real fashion-mnist", test_real_fashion_mnist },
                           CU_TEST_INFO_NULL };
    int rc = tap_add_suite("idx", idx) || tap_add_suite("cifar", cifar) || tap_add_suite("folder", folder) ||
             tap_add_suite("resize", resize) || tap_add_suite("load", load);
    if (rc) {
        CU_cleanup_registry();
        return 1;
    }
    int failed = tap_run_all();
    remove_tree(tmp_root);
    return failed;
}
