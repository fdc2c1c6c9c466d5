/* Turning generated C into a program: finds libnetrt (the build tree netc
 * was built in, or where it was installed) and runs the C compiler. */
#ifndef NETC_BUILD_H
#define NETC_BUILD_H

typedef struct build_opts {
    const char *output;        /* the program to write */
    int keep_c;                /* keep the generated C as OUTPUT.c */
    int verbose;               /* print the compiler command */
} build_opts;

/* Compiles c_text into opts->output. Reports failures on stderr and
 * returns -1. */
int build_program(const char *c_text, const build_opts *opts);
#endif
