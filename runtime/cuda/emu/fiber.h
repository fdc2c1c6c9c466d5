/* The emulator's grid runner: every block after the previous one, the
 * threads of a block as fibers on the calling OS thread, switched at
 * __syncthreads (see fiber.cc for how). */
#ifndef NR_CUDA_EMU_FIBER_H
#define NR_CUDA_EMU_FIBER_H
#include "shim.h"
extern "C" { /* nr_error.h is C without a guard of its own */
#include "../../nr_error.h"
}

/* Most threads per block, as on every GPU since sm_20. */
#define NR_EMU_MAX_BLOCK 1024

struct nr_emu_sched;

/* The scheduler: a pool of fiber stacks reused across launches. stack_bytes
 * 0 takes the default (NETC_EMU_STACK_KB, else 256 KiB). NULL when out of
 * memory. */
nr_emu_sched *nr_emu_sched_new(size_t stack_bytes);
void nr_emu_sched_free(nr_emu_sched *s);

/* The builtins the scheduler updates; modules are bound to them. */
nr_emu_builtins *nr_emu_sched_builtins(nr_emu_sched *s);

/* Runs kernel `name` (thread function run, argument values args) on grid x
 * block threads; reverse runs blocks, and threads within each block, from
 * the last to the first. A barrier that not every live thread of a block
 * reaches fails the launch with a message naming the kernel, the block and
 * which threads waited where. Not reentrant: one launch at a time. */
int nr_emu_sched_run(nr_emu_sched *s, const char *name, void (*run)(void **), void **args, unsigned grid,
                     unsigned block, int reverse, nr_error *e);
#endif
