#include "helpers.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

frontend *fe_run(const char *text, const char *const *defines)
{
    frontend *fe = xmalloc(sizeof *fe);
    frontend_init(fe);
    for (const char *const *d = defines; d && *d; d++) frontend_define(fe, *d);
    frontend_run(fe, "test.net", text, strlen(text));
    return fe;
}

void fe_done(frontend *fe)
{
    frontend_free(fe);
    free(fe);
}

int fe_count(const frontend *fe, diag_severity sev, const char *needle)
{
    int n = 0;
    for (int i = 0; i < fe->dl.count; i++)
        if (fe->dl.items[i].severity == sev && strstr(fe->dl.items[i].message, needle)) n++;
    return n;
}

int fe_hint(const frontend *fe, const char *needle)
{
    for (int i = 0; i < fe->dl.count; i++)
        if (fe->dl.items[i].hint && strstr(fe->dl.items[i].hint, needle)) return 1;
    return 0;
}

int fe_line(const frontend *fe, const char *needle)
{
    for (int i = 0; i < fe->dl.count; i++)
        if (strstr(fe->dl.items[i].message, needle)) return fe->dl.items[i].where.line;
    return -1;
}

void fe_show(const frontend *fe)
{
    for (int i = 0; i < fe->dl.count; i++)
        printf("# %d:%d: %s%s%s\n", fe->dl.items[i].where.line, fe->dl.items[i].where.col,
               fe->dl.items[i].message, fe->dl.items[i].hint ? " | hint: " : "",
               fe->dl.items[i].hint ? fe->dl.items[i].hint : "");
}

const ir_node *fe_node(const frontend *fe, const char *name)
{
    if (!fe->prog) return NULL;
    for (int i = 0; i < fe->prog->model.count; i++)
        if (strcmp(fe->prog->model.nodes[i].name, name) == 0) return &fe->prog->model.nodes[i];
    return NULL;
}

char *wrap_model(const char *input, const char *layers)
{
    strbuf sb;
    sb_init(&sb);
    sb_printf(&sb, "model m {\n    input = %s\n    classes = 10\n%s\n}\n", input, layers);
    return sb_steal(&sb);
}
