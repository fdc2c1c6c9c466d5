/* netc's CUDA kernels compiled for the emulator: libnetemu.so's built-in
 * module (load_module with any name not ending in ".so").
 *
 * kernels_gen.cu is written at build time by gen_kernels (the source text
 * of runtime/cuda/kernels_src.c and the list of its kernels). */
#include "shim.h"
#include "kernels_gen.cu"
#include "module.h"

NR_EMU_MODULE()
NR_EMU_SOURCE_KERNELS(NR_EMU_KERNEL)
