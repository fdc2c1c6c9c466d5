/* Finds and loads libnetemu.so (see emu_load.h for the search order). */
#include "emu_load.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef NETC_EMU_BUILD_LIB
#define NETC_EMU_BUILD_LIB ""
#endif
#ifndef NETC_EMU_PKGLIB
#define NETC_EMU_PKGLIB ""
#endif

/* Opens path and checks its table; NULL with the reason appended to why. */
static const nr_dev_ops *open_emulator(const char *path, char *why, size_t cap)
{
    size_t len = strlen(why);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(why + len, cap - len, "%s%s", len ? "; " : "", dlerror());
        return NULL;
    }
    /* POSIX's way to turn a data pointer from dlsym into a function pointer */
    nr_emu_entry_fn entry;
    void *sym = dlsym(h, "nr_emu_dev_ops");
    memcpy(&entry, &sym, sizeof entry);
    const nr_dev_ops *ops = sym ? entry() : NULL;
    if (!ops || ops->abi != NR_DEV_ABI) {
        snprintf(why + len, cap - len, "%s%s: %s", len ? "; " : "", path,
                 !sym ? "no nr_emu_dev_ops (not the netc CUDA emulator)" : "built for another device-layer ABI");
        dlclose(h);
        return NULL;
    }
    return ops;
}

const nr_dev_ops *nr_emu_load(nr_error *e)
{
    char why[768] = "";
    const char *env = getenv("NETC_EMU_LIB");
    if (env && *env) {
        const nr_dev_ops *ops = open_emulator(env, why, sizeof why);
        if (!ops) nr_fail(e, "CUDA emulator: NETC_EMU_LIB=%s: %s", env, why);
        return ops;
    }
    const char *paths[] = { NETC_EMU_BUILD_LIB, NETC_EMU_PKGLIB };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        if (!*paths[i]) continue;
        if (access(paths[i], R_OK)) {
            size_t len = strlen(why);
            snprintf(why + len, sizeof why - len, "%s%s: not found", len ? "; " : "", paths[i]);
            continue;
        }
        const nr_dev_ops *ops = open_emulator(paths[i], why, sizeof why);
        if (ops) return ops;
    }
    nr_fail(e, "CUDA emulator not found (set NETC_EMU_LIB to libnetemu.so's path; netc builds it when a C++ "
               "compiler is present): %s", *why ? why : "no path compiled in");
    return NULL;
}
