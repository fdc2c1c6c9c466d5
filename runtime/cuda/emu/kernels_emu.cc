/* netc's CUDA kernels compiled for the emulator: libnetemu.so's built-in
 * module (load_module with any name not ending in ".so"). The very file
 * NVRTC compiles (runtime/cuda/kernels.cu, before embedding), and its list
 * of kernels (runtime/cuda/kernels.h). */
#include "shim.h"
#include "../kernels.cu"
#include "../kernels.h"
#include "module.h"

NR_EMU_MODULE()
#define NR_EMU_KERNEL_OF(id, name) NR_EMU_KERNEL(name)
NR_CUDA_KERNELS(NR_EMU_KERNEL_OF)
