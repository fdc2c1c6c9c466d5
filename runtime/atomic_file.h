/* The one way the runtime replaces a file: write a temporary file in the
 * same directory, flush and fsync it, rename it over the file, fsync the
 * directory. A reader (a browser refreshing report.html, a resumed run)
 * sees the old file or the new one, never half of one, and after a crash
 * the new one is either complete or absent. */
#ifndef NR_ATOMIC_FILE_H
#define NR_ATOMIC_FILE_H
#include "nr_error.h"
#include <stdio.h>

typedef struct nr_atomic_file {
    FILE *f;                      /* write the contents here */
    char *path, *tmp;
} nr_atomic_file;

/* Creates "PATH.tmp.<pid>"; returns a->f, or NULL with err filled. */
FILE *nr_atomic_open(nr_atomic_file *a, const char *path, nr_error *err);
/* ok: makes the contents durable and puts them at the path. !ok (the
 * caller failed, err already says why) or any failure here: removes the
 * temporary file. Frees a in every case; returns 0 or -1. */
int nr_atomic_commit(nr_atomic_file *a, int ok, nr_error *err);
/* Writes path atomically: fn writes the contents. */
int nr_write_atomic(const char *path, void (*fn)(FILE *f, void *arg), void *arg, nr_error *err);
#endif
