/* tests/emu/kernels.cu as an emulator module (tests/emu/libemutest.so),
 * built the way libnetemu.so builds netc's kernels. */
#include "cuda/emu/shim.h"
#include "kernels.cu"
#include "cuda/emu/module.h"

NR_EMU_MODULE()
NR_EMU_KERNEL(emu_block_sum)
NR_EMU_KERNEL(emu_racy_neighbour)
NR_EMU_KERNEL(emu_synced_neighbour)
NR_EMU_KERNEL(emu_skip_barrier)
NR_EMU_KERNEL(emu_split_barrier)
NR_EMU_KERNEL(emu_add)
NR_EMU_KERNEL(emu_iota)
NR_EMU_KERNEL(emu_params)
