/* Finding the CUDA emulator (runtime/cuda/emu/, libnetemu.so) at run time.
 *
 * The runtime uses the emulator instead of a GPU when NETC_CUDA=emu. The
 * shared object is looked for, in order:
 *   1. $NETC_EMU_LIB (a path to libnetemu.so), when set;
 *   2. the build tree netc was built in (compiled in: NETC_EMU_BUILD_LIB),
 *      so that `make check` and uninstalled builds need no setting;
 *   3. $(pkglibdir)/libnetemu.so, beside the installed libnetrt.a.
 * It is loaded with dlopen: nothing links with it, and programs built
 * without it run unchanged. */
#ifndef NR_CUDA_EMU_LOAD_H
#define NR_CUDA_EMU_LOAD_H
#include "../nr_error.h"
#include "dev.h"

/* The emulator's device layer, or NULL and e says which paths were tried
 * and why each failed. The shared object stays loaded for the process's life. */
const nr_dev_ops *nr_emu_load(nr_error *e);
#endif
