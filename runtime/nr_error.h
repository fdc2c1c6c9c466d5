/* Errors in the runtime are values: a function that can fail fills an
 * nr_error and returns -1, and the caller decides what to do (the runtime
 * is a library and never exits from inside). */
#ifndef NR_ERROR_H
#define NR_ERROR_H
#include <stddef.h>

typedef struct nr_error {
    char msg[1024];
} nr_error;

/* Formats the message into e (when e is not NULL) and returns -1. */
int nr_fail(nr_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* As nr_fail, and appends ": strerror(errno)". */
int nr_fail_errno(nr_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Allocations aligned to 64 bytes (for SIMD loads); NULL on failure, which
 * the caller reports. nr_zalloc zeroes. */
void *nr_alloc(size_t bytes);
void *nr_zalloc(size_t bytes);
void nr_free(void *p);
#endif
