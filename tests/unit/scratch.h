/* A private scratch directory for tests that write files. */
#ifndef NETC_TEST_SCRATCH_H
#define NETC_TEST_SCRATCH_H

/* The directory made by scratch_init ($TMPDIR or /tmp, netc-TAG-XXXXXX). */
extern char scratch_root[1024];

int scratch_init(const char *tag);
/* scratch_root/name; the last 8 results stay valid. */
char *scratch(const char *name);
/* rm -r path. */
int scratch_remove_tree(const char *path);
/* Entries of dir other than . and .., or -1. */
int scratch_count_entries(const char *dir);
#endif
