/* Atomic, durable replacement of a file (see atomic_file.h). */
#include "atomic_file.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

FILE *nr_atomic_open(nr_atomic_file *a, const char *path, nr_error *err)
{
    memset(a, 0, sizeof *a);
    if (!path || !*path) {
        nr_fail(err, "no path to write to");
        return NULL;
    }
    size_t n = strlen(path) + 32;
    a->path = strdup(path);
    a->tmp = malloc(n);
    if (!a->path || !a->tmp) {
        nr_fail(err, "%s: out of memory", path);
        goto fail;
    }
    snprintf(a->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(a->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        nr_fail_errno(err, "%s: cannot create %s", path, a->tmp);
        goto fail;
    }
    a->f = fdopen(fd, "wb");
    if (!a->f) {
        nr_fail_errno(err, "%s: cannot open %s", path, a->tmp);
        close(fd);
        unlink(a->tmp);
        goto fail;
    }
    return a->f;
fail:
    free(a->path);
    free(a->tmp);
    memset(a, 0, sizeof *a);
    return NULL;
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
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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

int nr_atomic_commit(nr_atomic_file *a, int ok, nr_error *err)
{
    if (!a->f) return -1;
    int rc = ok ? 0 : -1;
    if (rc == 0 && (fflush(a->f) != 0 || ferror(a->f))) rc = nr_fail_errno(err, "%s: cannot write %s", a->path, a->tmp);
    if (rc == 0 && fsync(fileno(a->f)) != 0) rc = nr_fail_errno(err, "%s: cannot sync %s", a->path, a->tmp);
    if (fclose(a->f) != 0 && rc == 0) rc = nr_fail_errno(err, "%s: cannot close %s", a->path, a->tmp);
    if (rc == 0 && rename(a->tmp, a->path) != 0) rc = nr_fail_errno(err, "%s: cannot rename %s over it", a->path, a->tmp);
    if (rc != 0) unlink(a->tmp);
    else rc = sync_directory(a->path, err);
    free(a->path);
    free(a->tmp);
    memset(a, 0, sizeof *a);
    return rc;
}

int nr_write_atomic(const char *path, void (*fn)(FILE *f, void *arg), void *arg, nr_error *err)
{
    nr_atomic_file a;
    if (!nr_atomic_open(&a, path, err)) return -1;
    fn(a.f, arg);
    return nr_atomic_commit(&a, 1, err);
}
