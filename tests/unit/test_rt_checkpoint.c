/* Safetensors checkpoints: what the writer produces, that a failed write
 * leaves the previous checkpoint intact, and that the reader turns every
 * kind of damaged file into an error naming the path and the offset. */
#include "checkpoint.h"
#include "scratch.h"
#include "tap.h"
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- files ---- */

static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            unsigned char *p = realloc(buf, cap);
            if (!p) break;
            buf = p;
        }
        size_t k = fread(buf + n, 1, cap - n, fp);
        n += k;
        if (k == 0) break;
    }
    fclose(fp);
    *size = n;
    return buf;
}

static int spit(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    int ok = fwrite(data, 1, n, fp) == n;
    return fclose(fp) == 0 && ok ? 0 : -1;
}

/* A file with the given header text (its length written in front) and data. */
static int write_raw(const char *path, const char *header, const void *data, size_t ndata)
{
    size_t hlen = strlen(header);
    unsigned char *buf = malloc(8 + hlen + ndata + 1);
    if (!buf) return -1;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, header, hlen);
    if (ndata) memcpy(buf + 8 + hlen, data, ndata);
    int rc = spit(path, buf, 8 + hlen + ndata);
    free(buf);
    return rc;
}

static float values[256];

static void fill_values(void)
{
    for (int i = 0; i < 256; i++) values[i] = (float)i * 0.5f - 17.25f;
}

/* ---- round trip ---- */

static const char *tricky_names[] = {
    "scalar",                       /* rank 0 */
    "quote\"d",                     /* rank 1 */
    "back\\slash/and/slash",        /* rank 2 */
    "\xc3\xbc" "n\xc3\xaf" "c\xc3\xb6" "de \xe2\x9c\x93 \xf0\x9f\x98\x80", /* rank 3: "ünïcöde ✓ 😀" */
    "ctl\001\t\n\r\b\f\037end", /* rank 4 (octal escapes stop at 3 digits) */
    "empty",                        /* a zero-size tensor */
};

static void make_tensors(nr_tensor t[6])
{
    fill_values();
    const int64_t shapes[6][4] = { { 0 }, { 5 }, { 2, 3 }, { 2, 1, 4 }, { 1, 2, 3, 4 }, { 3, 0 } };
    const int ranks[6] = { 0, 1, 2, 3, 4, 2 };
    size_t at = 0;
    for (int i = 0; i < 6; i++) {
        t[i].name = tricky_names[i];
        t[i].rank = ranks[i];
        size_t count = 1;
        for (int d = 0; d < 4; d++) {
            t[i].shape[d] = shapes[i][d];
            if (d < ranks[i]) count *= (size_t)shapes[i][d];
        }
        t[i].data = values + at;
        at += count;
    }
}

static const nr_meta tricky_meta[] = {
    { "format", "pt" },
    { "k\"e\\y\n\x01", "v\xc3\xa4l\"ue\\\t\x7f" },
    { "empty", "" },
};

static void test_round_trip(void)
{
    nr_tensor t[6];
    make_tensors(t);
    nr_error err = { { 0 } };
    const char *path = scratch("round.safetensors");
    CU_ASSERT_EQUAL_FATAL(nr_safetensors_write(path, t, 6, tricky_meta, 3, &err), 0);

    nr_st_file f;
    int rc = nr_safetensors_read(path, &f, &err);
    if (rc) printf("# %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(f.nentries, 6);
    CU_ASSERT_STRING_EQUAL(f.path, path);
    for (int i = 0; i < 6; i++) {
        const nr_st_entry *e = nr_st_find(&f, t[i].name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        CU_ASSERT_STRING_EQUAL(e->name, t[i].name);
        CU_ASSERT_EQUAL(e->rank, t[i].rank);
        size_t count = 1;
        for (int d = 0; d < e->rank; d++) {
            CU_ASSERT_EQUAL(e->shape[d], t[i].shape[d]);
            count *= (size_t)t[i].shape[d];
        }
        CU_ASSERT_EQUAL(e->count, count);
        CU_ASSERT_EQUAL((uintptr_t)e->data % 4, 0);
        if (count) CU_ASSERT_EQUAL(memcmp(e->data, t[i].data, count * 4), 0);
    }
    CU_ASSERT_PTR_NULL(nr_st_find(&f, "missing"));
    CU_ASSERT_PTR_NULL(nr_st_find(&f, "__metadata__"));
    CU_ASSERT_EQUAL(f.nmeta, 3);
    for (int i = 0; i < 3; i++) {
        const char *v = nr_st_meta(&f, tricky_meta[i].key);
        CU_ASSERT_PTR_NOT_NULL_FATAL(v);
        CU_ASSERT_STRING_EQUAL(v, tricky_meta[i].value);
    }
    CU_ASSERT_PTR_NULL(nr_st_meta(&f, "missing"));
    nr_st_free(&f);
    CU_ASSERT_PTR_NULL(f.buf);
    nr_st_free(&f); /* a freed (zeroed) file may be freed again */
}

/* The bytes on disk: length prefix, padded header, data right after it. */
static void test_exact_layout(void)
{
    const float w[6] = { 1, 2, 3, 4, 5, 6 }, b[2] = { -1, 0.5f };
    nr_tensor t[2] = { { "w", w, 2, { 2, 3 } }, { "b", b, 1, { 2 } } };
    nr_meta m[1] = { { "a\"\\\x01", "\n" } };
    nr_error err = { { 0 } };
    const char *path = scratch("layout.safetensors");
    CU_ASSERT_EQUAL_FATAL(nr_safetensors_write(path, t, 2, m, 1, &err), 0);
    size_t size = 0;
    unsigned char *buf = slurp(path, &size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    const char *json = "{\"__metadata__\":{\"a\\\"\\\\\\u0001\":\"\\n\"},"
                       "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}}";
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
    size_t jlen = strlen(json);
    CU_ASSERT_EQUAL(hlen % 8, 0);
    CU_ASSERT(hlen >= jlen && hlen < jlen + 8);
    CU_ASSERT_EQUAL_FATAL(size, 8 + hlen + 32);
    CU_ASSERT_EQUAL(memcmp(buf + 8, json, jlen), 0);
    for (size_t i = jlen; i < hlen; i++) CU_ASSERT_EQUAL(buf[8 + i], ' ');
    float back[8];
    memcpy(back, buf + 8 + hlen, 32);
    CU_ASSERT_EQUAL(memcmp(back, w, 24), 0);
    CU_ASSERT_EQUAL(memcmp(back + 6, b, 8), 0);
    /* little-endian IEEE 754: 1.0f is 00 00 80 3f */
    CU_ASSERT_EQUAL(buf[8 + hlen + 2], 0x80);
    CU_ASSERT_EQUAL(buf[8 + hlen + 3], 0x3f);
    free(buf);
}

static void test_no_tensors(void)
{
    nr_error err = { { 0 } };
    const char *path = scratch("nothing.safetensors");
    CU_ASSERT_EQUAL_FATAL(nr_safetensors_write(path, NULL, 0, NULL, 0, &err), 0);
    nr_st_file f;
    CU_ASSERT_EQUAL_FATAL(nr_safetensors_read(path, &f, &err), 0);
    CU_ASSERT_EQUAL(f.nentries, 0);
    CU_ASSERT_EQUAL(f.nmeta, 0);
    CU_ASSERT_EQUAL(f.size, 16); /* "{}" padded to 8 */
    nr_st_free(&f);
}

/* ---- atomicity ---- */

/* Writes a first checkpoint into a fresh directory; returns its bytes. */
static unsigned char *previous_checkpoint(const char *dir, const char *path, size_t *size)
{
    if (mkdir(dir, 0755) != 0) return NULL;
    const float old[3] = { 7, 8, 9 };
    nr_tensor t = { "old", old, 1, { 3 } };
    nr_error err = { { 0 } };
    if (nr_safetensors_write(path, &t, 1, NULL, 0, &err) != 0) return NULL;
    return slurp(path, size);
}

static void assert_unchanged(const char *path, const unsigned char *old, size_t old_size)
{
    size_t size = 0;
    unsigned char *now = slurp(path, &size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(now);
    CU_ASSERT_EQUAL(size, old_size);
    CU_ASSERT(size == old_size && memcmp(now, old, size) == 0);
    free(now);
}

/* The write fails after part of the data went out (the file size limit is
 * hit): the old checkpoint is untouched and the partial file is gone. */
static void test_failure_midway_keeps_old_file(void)
{
    const char *dir = scratch("midway");
    const char *path = scratch("midway/model.safetensors");
    size_t old_size = 0;
    unsigned char *old = previous_checkpoint(dir, path, &old_size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(old);

    static float big[64 * 1024];
    for (size_t i = 0; i < sizeof big / sizeof *big; i++) big[i] = (float)i;
    nr_tensor t = { "big", big, 2, { 256, 256 } };
    struct rlimit saved, small;
    CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_FSIZE, &saved), 0);
    small = saved;
    small.rlim_cur = 16 * 1024;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_FSIZE, &small), 0);
    nr_error err = { { 0 } };
    int rc = nr_safetensors_write(path, &t, 1, NULL, 0, &err);
    CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);

    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    assert_unchanged(path, old, old_size);
    CU_ASSERT_EQUAL(scratch_count_entries(dir), 1); /* no temporary file left */
    free(old);
}

/* The data is written completely but the rename fails (a directory is in
 * the way): the temporary file is removed. */
static void test_failed_rename_removes_temp(void)
{
    const char *dir = scratch("rename");
    const char *path = scratch("rename/in_the_way");
    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0755), 0);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0755), 0);
    const float x[2] = { 1, 2 };
    nr_tensor t = { "x", x, 1, { 2 } };
    nr_error err = { { 0 } };
    CU_ASSERT_EQUAL(nr_safetensors_write(path, &t, 1, NULL, 0, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    CU_ASSERT_EQUAL(scratch_count_entries(dir), 1);
    CU_ASSERT_EQUAL(scratch_count_entries(path), 0);
}

static void test_missing_directory(void)
{
    const char *path = scratch("no/such/dir/model.safetensors");
    const float x[1] = { 1 };
    nr_tensor t = { "x", x, 1, { 1 } };
    nr_error err = { { 0 } };
    CU_ASSERT_EQUAL(nr_safetensors_write(path, &t, 1, NULL, 0, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "No such file"));
}

/* A read-only directory stops the write only for an unprivileged user. */
static void test_read_only_directory(void)
{
    const char *dir = scratch("readonly");
    const char *path = scratch("readonly/model.safetensors");
    size_t old_size = 0;
    unsigned char *old = previous_checkpoint(dir, path, &old_size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(old);
    CU_ASSERT_EQUAL_FATAL(chmod(dir, 0555), 0);
    const float x[4] = { 1, 2, 3, 4 };
    nr_tensor t = { "x", x, 1, { 4 } };
    nr_error err = { { 0 } };
    int writable = access(dir, W_OK) == 0; /* root writes anyway */
    int rc = nr_safetensors_write(path, &t, 1, NULL, 0, &err);
    CU_ASSERT_EQUAL(chmod(dir, 0755), 0);
    if (!writable) {
        CU_ASSERT_EQUAL(rc, -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
        assert_unchanged(path, old, old_size);
    } else {
        CU_ASSERT_EQUAL(rc, 0);
    }
    CU_ASSERT_EQUAL(scratch_count_entries(dir), 1);
    free(old);
}

static void test_writer_rejects_bad_tensors(void)
{
    const float x[4] = { 0 };
    struct {
        nr_tensor t[2];
        int n;
        const char *needle;
    } cases[] = {
        { { { "a", x, 5, { 1, 1, 1, 1 } } }, 1, "rank 5" },
        { { { "a", x, -1, { 0 } } }, 1, "rank -1" },
        { { { "a", x, 1, { -2 } } }, 1, "negative" },
        { { { "a", x, 2, { INT64_MAX, 4 } } }, 1, "too large" },
        { { { NULL, x, 1, { 1 } } }, 1, "no name" },
        { { { "bad\xff", x, 1, { 1 } } }, 1, "UTF-8" },
        { { { "__metadata__", x, 1, { 1 } } }, 1, "reserved" },
        { { { "a", NULL, 1, { 3 } } }, 1, "no data" },
        { { { "a", x, 1, { 1 } }, { "a", x, 1, { 2 } } }, 2, "two tensors" },
    };
    const char *path = scratch("rejected.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nr_error err = { { 0 } };
        CU_ASSERT_EQUAL(nr_safetensors_write(path, cases[i].t, cases[i].n, NULL, 0, &err), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, cases[i].needle));
        if (!strstr(err.msg, cases[i].needle)) printf("# case %zu: %s\n", i, err.msg);
        CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
    }
    nr_meta dup[2] = { { "k", "1" }, { "k", "2" } };
    nr_meta null_value[1] = { { "k", NULL } };
    nr_error err = { { 0 } };
    CU_ASSERT_EQUAL(nr_safetensors_write(path, NULL, 0, dup, 2, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "twice"));
    CU_ASSERT_EQUAL(nr_safetensors_write(path, NULL, 0, null_value, 1, &err), -1);
    CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
}

/* ---- damaged files ---- */

static void assert_read_fails(const char *path, const char *needle)
{
    nr_st_file f;
    nr_error err = { { 0 } };
    int rc = nr_safetensors_read(path, &f, &err);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_PTR_NULL(f.buf);
    CU_ASSERT_EQUAL(strncmp(err.msg, path, strlen(path)), 0);
    if (needle) {
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, needle));
        if (!strstr(err.msg, needle)) printf("# wanted \"%s\" in: %s\n", needle, err.msg);
    }
    if (rc == 0) nr_st_free(&f);
}

/* Every proper prefix of a valid file is an error, never a crash. */
static void test_every_prefix_fails(void)
{
    nr_tensor t[6];
    make_tensors(t);
    nr_error err = { { 0 } };
    const char *path = scratch("whole.safetensors");
    CU_ASSERT_EQUAL_FATAL(nr_safetensors_write(path, t, 6, tricky_meta, 3, &err), 0);
    size_t size = 0;
    unsigned char *whole = slurp(path, &size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(whole);
    const char *cut = scratch("cut.safetensors");
    int failures = 0;
    for (size_t len = 0; len < size; len++) {
        CU_ASSERT_EQUAL_FATAL(spit(cut, whole, len), 0);
        nr_st_file f;
        nr_error e = { { 0 } };
        if (nr_safetensors_read(cut, &f, &e) == 0) {
            failures++;
            nr_st_free(&f);
        } else if (strncmp(e.msg, cut, strlen(cut)) != 0 || !strstr(e.msg, "offset")) {
            failures++;
            printf("# prefix %zu: %s\n", len, e.msg);
        }
    }
    CU_ASSERT_EQUAL(failures, 0);
    /* and the whole file still reads */
    nr_st_file f;
    CU_ASSERT_EQUAL(nr_safetensors_read(path, &f, &err), 0);
    nr_st_free(&f);
    free(whole);
}

static void test_header_length_out_of_range(void)
{
    const char *path = scratch("huge.safetensors");
    unsigned char buf[24] = { 0 };
    memcpy(buf + 8, "{}              ", 16);
    buf[7] = 0x80; /* 2^63 */
    CU_ASSERT_EQUAL_FATAL(spit(path, buf, 24), 0);
    assert_read_fails(path, "header length");
    memset(buf, 0xff, 8);
    CU_ASSERT_EQUAL_FATAL(spit(path, buf, 24), 0);
    assert_read_fails(path, "header length");
    buf[0] = 17; /* one more than the 16 bytes that follow */
    memset(buf + 1, 0, 7);
    CU_ASSERT_EQUAL_FATAL(spit(path, buf, 24), 0);
    assert_read_fails(path, "header length");
    buf[0] = 16; /* exactly right */
    CU_ASSERT_EQUAL_FATAL(spit(path, buf, 24), 0);
    nr_st_file f;
    nr_error err = { { 0 } };
    CU_ASSERT_EQUAL(nr_safetensors_read(path, &f, &err), 0);
    nr_st_free(&f);
}

static void test_missing_file(void)
{
    const char *path = scratch("does-not-exist.safetensors");
    assert_read_fails(path, "No such file");
}

/* Header text that is not the JSON subset, each with what the message says
 * and (for a few) the exact offset: 8 + position in the header. */
static void test_invalid_json(void)
{
    static const struct {
        const char *header, *needle;
    } cases[] = {
        { "", "must be a JSON object" },
        { "   ", "must be a JSON object" },
        { "[]", "must be a JSON object" },
        { "{", "ends inside an object" },
        { "{\"a\"", "':'" },
        { "{\"a\":}", "unexpected '}'" },
        { "{\"a\" 1}", "offset 13: expected ':'" },
        { "{\"a\":1,}", "expected a string key" },
        { "{a:1}", "expected a string key" },
        { "{} x", "offset 11: unexpected text after" },
        { "{}{}", "unexpected text after" },
        { "{\"a\":1.5}", "only integers" },
        { "{\"a\":1e3}", "only integers" },
        { "{\"a\":01}", "leading zero" },
        { "{\"a\":-}", "expected a digit" },
        { "{\"a\":99999999999999999999}", "out of range" },
        { "{\"a\":true}", "unexpected 't'" },
        { "{\"a\":null}", "unexpected 'n'" },
        { "{\"a\":[1 2]}", "in an array" },
        { "{\"a\":[1,]}", "unexpected ']'" },
        { "{\"a\":\"x}", "unterminated string" },
        { "{\"a\":\"x\ty\"}", "offset 15: control character 0x09" },
        { "{\"a\":\"\\q\"}", "invalid escape" },
        { "{\"a\":\"\\u12G4\"}", "four hex digits" },
        { "{\"a\":\"\\u12\"}", "four hex digits" },
        { "{\"a\":\"\\ud800\"}", "high surrogate" },
        { "{\"a\":\"\\ud800\\u0041\"}", "high surrogate" },
        { "{\"a\":\"\\udc00\"}", "low surrogate" },
        { "{\"a\":\"\\u0000\"}", "\\u0000" },
        { "{\"a\":\"\xff\"}", "invalid UTF-8" },
        { "{\"a\":\"\xc0\xaf\"}", "invalid UTF-8" },       /* overlong '/' */
        { "{\"a\":\"\xed\xa0\x80\"}", "invalid UTF-8" },   /* encoded surrogate */
        { "{\"a\":\"\xe2\x9c\"}", "invalid UTF-8" },       /* cut sequence */
        { "{\"a\":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]}", "nesting" },
        { "{\"a\":1,\"a\":2}", "duplicate key" },
        { "\x01{}", "must be a JSON object" },
    };
    const char *path = scratch("json.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CU_ASSERT_EQUAL_FATAL(write_raw(path, cases[i].header, NULL, 0), 0);
        assert_read_fails(path, cases[i].needle);
    }
}

/* Well-formed JSON that does not describe a valid layout. */
static void test_invalid_layout(void)
{
    fill_values();
    static const struct {
        const char *header;
        size_t ndata;
        const char *needle;
    } cases[] = {
        { "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "dtype F16" },
        { "{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "dtype F64" },
        { "{\"a\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20, "shape needs 24" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,0]}}", 0, "shape needs 4" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "rank 5" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "non-negative" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, "non-negative integer" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}", 8, "too large" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, "must be an array" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "past the end" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8, "past the end" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "not a range" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, "not a range" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "[begin, end]" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", 8, "[begin, end]" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
          12, "overlap" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
          8, "overlap" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
          16, "duplicate key \"a\"" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "belong to no tensor" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "4 bytes at the end" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "needs \"dtype\"" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "unknown field" },
        { "{\"a\":[1]}", 4, "must be an object" },
        { "{\"__metadata__\":{\"k\":1}}", 0, "must be a string" },
        { "{\"__metadata__\":[]}", 0, "must be an object" },
        { "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate key" },
    };
    const char *path = scratch("layout-bad.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CU_ASSERT_EQUAL_FATAL(write_raw(path, cases[i].header, values, cases[i].ndata), 0);
        assert_read_fails(path, cases[i].needle);
    }
}

/* What another writer may produce and is still valid: whitespace, escapes,
 * a header whose length leaves the data unaligned in the file, tensors out
 * of order. The data still comes back aligned in memory. */
static void test_foreign_but_valid(void)
{
    fill_values();
    const char *header = " { \"\\u00fc\\ud83d\\ude00\\/x\" : { \"shape\" : [ 2 ] , \"dtype\" : \"F32\","
                         " \"data_offsets\" : [ 8 , 16 ] } ,\n\t\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
                         "\"data_offsets\":[0,8]}, \"__metadata__\":{\"k\":\"v\"}}\r\n ";
    const char *path = scratch("foreign.safetensors");
    for (int pad = 0; pad < 4; pad++) {
        char h[512];
        snprintf(h, sizeof h, "%s%.*s", header, pad, "   ");
        CU_ASSERT_EQUAL_FATAL(write_raw(path, h, values, 16), 0);
        nr_st_file f;
        nr_error err = { { 0 } };
        int rc = nr_safetensors_read(path, &f, &err);
        if (rc) printf("# %s\n", err.msg);
        CU_ASSERT_EQUAL_FATAL(rc, 0);
        const nr_st_entry *a = nr_st_find(&f, "\xc3\xbc\xf0\x9f\x98\x80/x"), *b = nr_st_find(&f, "b");
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_EQUAL((uintptr_t)a->data % 4, 0);
        CU_ASSERT_EQUAL((uintptr_t)b->data % 4, 0);
        CU_ASSERT_EQUAL(memcmp(b->data, values, 8), 0);
        CU_ASSERT_EQUAL(memcmp(a->data, values + 2, 8), 0);
        CU_ASSERT_STRING_EQUAL(nr_st_meta(&f, "k"), "v");
        nr_st_free(&f);
    }
}

/* Flipping any single byte of the header gives an error or a file that
 * still passes every check; never a crash or a read outside the buffer. */
static void test_flipped_header_bytes(void)
{
    nr_tensor t[6];
    make_tensors(t);
    nr_error err = { { 0 } };
    const char *path = scratch("flip-src.safetensors");
    CU_ASSERT_EQUAL_FATAL(nr_safetensors_write(path, t, 6, tricky_meta, 3, &err), 0);
    size_t size = 0;
    unsigned char *whole = slurp(path, &size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(whole);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | whole[i];
    const char *flipped = scratch("flipped.safetensors");
    int accepted = 0;
    for (size_t at = 0; at < 8 + hlen; at++) {
        unsigned char saved = whole[at];
        whole[at] ^= 0x5a;
        CU_ASSERT_EQUAL_FATAL(spit(flipped, whole, size), 0);
        whole[at] = saved;
        nr_st_file f;
        nr_error e = { { 0 } };
        if (nr_safetensors_read(flipped, &f, &e) == 0) {
            accepted++;
            for (int k = 0; k < f.nentries; k++) /* touch every byte the reader hands out */
                for (size_t j = 0; j < f.entries[k].count; j++) CU_ASSERT(f.entries[k].data[j] == f.entries[k].data[j]);
            nr_st_free(&f);
        } else {
            CU_ASSERT_EQUAL(strncmp(e.msg, flipped, strlen(flipped)), 0);
        }
    }
    /* flips inside names and metadata text stay valid; most others must not */
    CU_ASSERT(accepted < (int)(hlen / 2));
    free(whole);
}

int main(void)
{
    if (scratch_init("ckpt") != 0) {
        perror("mkdtemp");
        return 1;
    }
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    static CU_TestInfo writer[] = {
        { "round trip of ranks 0..4, tricky names and metadata", test_round_trip },
        { "bytes on disk are the safetensors layout", test_exact_layout },
        { "a file with no tensors", test_no_tensors },
        { "invalid tensors and metadata are refused", test_writer_rejects_bad_tensors },
        CU_TEST_INFO_NULL,
    };
    static CU_TestInfo atomic[] = {
        { "failure midway keeps the previous file", test_failure_midway_keeps_old_file },
        { "failed rename removes the temporary file", test_failed_rename_removes_temp },
        { "missing directory is an error naming the path", test_missing_directory },
        { "read-only directory", test_read_only_directory },
        CU_TEST_INFO_NULL,
    };
    static CU_TestInfo reader[] = {
        { "every truncation is an error", test_every_prefix_fails },
        { "header length beyond the file", test_header_length_out_of_range },
        { "missing file", test_missing_file },
        { "malformed JSON", test_invalid_json },
        { "invalid dtype, shapes and ranges", test_invalid_layout },
        { "valid files from other writers", test_foreign_but_valid },
        { "single flipped header bytes", test_flipped_header_bytes },
        CU_TEST_INFO_NULL,
    };
    if (tap_add_suite("checkpoint writer", writer) || tap_add_suite("checkpoint atomicity", atomic) ||
        tap_add_suite("checkpoint reader", reader))
        return 1;
    int failed = tap_run_all();
    if (scratch_remove_tree(scratch_root) != 0) fprintf(stderr, "# could not remove %s\n", scratch_root);
    return failed;
}
