/* Shared by the unit tests: run the front end on a string and look for
 * diagnostics. */
#ifndef NETC_TEST_HELPERS_H
#define NETC_TEST_HELPERS_H
#include "frontend.h"

/* Runs the front end on text; -D overrides may be given as "name=value"
 * strings, NULL-terminated. The result must be freed with fe_done(). */
frontend *fe_run(const char *text, const char *const *defines);
void fe_done(frontend *fe);
/* Number of diagnostics of this severity whose message contains needle. */
int fe_count(const frontend *fe, diag_severity sev, const char *needle);
/* 1 when some diagnostic's hint contains needle. */
int fe_hint(const frontend *fe, const char *needle);
/* Line of the first diagnostic whose message contains needle, or -1. */
int fe_line(const frontend *fe, const char *needle);
/* Prints the diagnostics as TAP comments (to explain a failure). */
void fe_show(const frontend *fe);
/* The IR node named name, or NULL. */
const ir_node *fe_node(const frontend *fe, const char *name);
/* A minimal model around `layers` with the given input, classes 10. */
char *wrap_model(const char *input, const char *layers);
#endif
