/* Fibers for the emulator: one per thread of the running block, on stacks
 * from a pool that lives as long as the scheduler (no allocation per
 * launch once the pool is as large as the largest block).
 *
 * A block runs in rounds: every live thread runs, in order (or reverse
 * order), until it returns or calls __syncthreads. When a round ends with
 * every live thread waiting at the same barrier (same file and line), all of
 * them resume in the next round; when some wait and others returned, or
 * they wait at different barriers, the launch fails.
 *
 * The switch is a few instructions of assembly on x86-64 (callee-saved
 * registers and the stack pointer; ~10 ns) and ucontext elsewhere (a
 * system call per switch for the signal mask: correct, slower). Under
 * AddressSanitizer every switch is announced with
 * __sanitizer_start_switch_fiber / __sanitizer_finish_switch_fiber, and a
 * reused stack is unpoisoned, so the kernels stay instrumented: an
 * out-of-bounds access to device memory (host allocations here) is reported
 * with the kernel's source line. */
#include "fiber.h"
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define NR_EMU_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if defined(__x86_64__) && !defined(NR_EMU_UCONTEXT)
#define NR_EMU_ASM_SWITCH 1
/* Saves the callee-saved registers on the current stack, stores the stack
 * pointer in *save, loads `to` and pops the registers saved there. */
extern "C" void nr_emu_switch(void **save, void *to);
asm(".text\n"
    ".globl nr_emu_switch\n"
    ".hidden nr_emu_switch\n"
    ".type nr_emu_switch,@function\n"
    "nr_emu_switch:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    ".size nr_emu_switch, .-nr_emu_switch\n");
#else
#include <ucontext.h>
#endif

namespace {

enum fiber_state { FIBER_READY, FIBER_WAITING, FIBER_DONE };

struct context {
#ifdef NR_EMU_ASM_SWITCH
    void *sp;
#else
    ucontext_t uc;
#endif
};

struct fiber {
    context ctx;
    char *stack; /* usable stack [stack, stack + stack_bytes), a guard page below */
    unsigned tid;
    fiber_state state;
    const char *file; /* the barrier it waits at */
    int line;
#ifdef NR_EMU_ASAN
    void *fake_stack;
#endif
};

} // namespace

struct nr_emu_sched {
    nr_emu_builtins builtins;
    size_t stack_bytes, page;
    fiber *fibers; /* NR_EMU_MAX_BLOCK of them; stacks mapped on first use */
    unsigned mapped;
    context main;
    fiber *current;
    void (*run)(void **);
    void **args;
#ifdef NR_EMU_ASAN
    void *main_fake_stack;
    const void *main_bottom;
    size_t main_size;
#endif
};

/* The scheduler whose fiber is running: __syncthreads has no other way to
 * find it (a module sees only the builtins). */
static thread_local nr_emu_sched *running;

static void to_main(nr_emu_sched *s, fiber *f, bool exiting)
{
#ifdef NR_EMU_ASAN
    __sanitizer_start_switch_fiber(exiting ? nullptr : &f->fake_stack, s->main_bottom, s->main_size);
#else
    (void)exiting;
#endif
#ifdef NR_EMU_ASM_SWITCH
    nr_emu_switch(&f->ctx.sp, s->main.sp);
#else
    swapcontext(&f->ctx.uc, &s->main.uc);
#endif
#ifdef NR_EMU_ASAN
    __sanitizer_finish_switch_fiber(f->fake_stack, &s->main_bottom, &s->main_size);
#endif
}

static void to_fiber(nr_emu_sched *s, fiber *f)
{
    s->current = f;
    s->builtins.thread_idx.x = f->tid;
#ifdef NR_EMU_ASAN
    __sanitizer_start_switch_fiber(&s->main_fake_stack, f->stack, s->stack_bytes);
#endif
#ifdef NR_EMU_ASM_SWITCH
    nr_emu_switch(&s->main.sp, f->ctx.sp);
#else
    swapcontext(&s->main.uc, &f->ctx.uc);
#endif
#ifdef NR_EMU_ASAN
    __sanitizer_finish_switch_fiber(s->main_fake_stack, nullptr, nullptr);
#endif
}

/* Where every fiber starts: one thread of the kernel, then back for good. */
static void fiber_main(void)
{
    nr_emu_sched *s = running;
    fiber *f = s->current;
#ifdef NR_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &s->main_bottom, &s->main_size);
#endif
    s->run(s->args);
    f->state = FIBER_DONE;
    to_main(s, f, true);
    abort(); /* a finished fiber is never resumed */
}

static void syncthreads(const char *file, int line)
{
    nr_emu_sched *s = running;
    fiber *f = s->current;
    f->state = FIBER_WAITING;
    f->file = file;
    f->line = line;
    to_main(s, f, false);
}

/* A fresh start for fiber f on its (reused) stack. */
static void fiber_reset(nr_emu_sched *s, fiber *f)
{
#ifdef NR_EMU_ASAN
    /* Frames never returned from leave poisoned redzones behind: the whole
     * stack of a fiber abandoned at a barrier by a failed launch, and
     * otherwise only fiber_main's and to_main's frames at the top (the
     * kernel's frames returned). Unpoisoning all of every stack would cost
     * a 32 KiB shadow write per thread per launch. */
    size_t dirty = f->state == FIBER_DONE ? 4096 : s->stack_bytes;
    __asan_unpoison_memory_region(f->stack + s->stack_bytes - dirty, dirty);
    f->fake_stack = nullptr;
#endif
    f->state = FIBER_READY;
    f->file = nullptr;
    f->line = 0;
#ifdef NR_EMU_ASM_SWITCH
    /* nr_emu_switch pops six registers and returns into fiber_main with the
     * stack aligned as after a call (rsp + 8 a multiple of 16). */
    uintptr_t top = ((uintptr_t)f->stack + s->stack_bytes) & ~(uintptr_t)15;
    void **sp = (void **)(top - 64);
    for (int i = 0; i < 6; i++) sp[i] = nullptr;
    sp[6] = (void *)&fiber_main;
    sp[7] = nullptr;
    f->ctx.sp = sp;
#else
    getcontext(&f->ctx.uc);
    f->ctx.uc.uc_stack.ss_sp = f->stack;
    f->ctx.uc.uc_stack.ss_size = s->stack_bytes;
    f->ctx.uc.uc_link = nullptr;
    makecontext(&f->ctx.uc, fiber_main, 0);
#endif
}

/* Maps stacks up to fiber n - 1: each with a PROT_NONE guard page below it,
 * so a kernel overflowing its stack faults instead of writing over the next. */
static int map_stacks(nr_emu_sched *s, unsigned n, nr_error *e)
{
    for (; s->mapped < n; s->mapped++) {
        size_t bytes = s->stack_bytes + s->page;
        void *m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) return nr_fail_errno(e, "CUDA emulator: cannot map a %zu-byte fiber stack", bytes);
        if (mprotect(m, s->page, PROT_NONE)) {
            munmap(m, bytes);
            return nr_fail_errno(e, "CUDA emulator: cannot protect a fiber stack's guard page");
        }
        s->fibers[s->mapped].stack = (char *)m + s->page;
        s->fibers[s->mapped].tid = s->mapped;
    }
    return 0;
}

nr_emu_sched *nr_emu_sched_new(size_t stack_bytes)
{
    nr_emu_sched *s = new (std::nothrow) nr_emu_sched();
    if (!s) return nullptr;
    s->fibers = new (std::nothrow) fiber[NR_EMU_MAX_BLOCK]();
    if (!s->fibers) {
        delete s;
        return nullptr;
    }
    s->page = (size_t)sysconf(_SC_PAGESIZE);
    if (!stack_bytes) {
        const char *kb = getenv("NETC_EMU_STACK_KB");
        long v = kb ? strtol(kb, nullptr, 10) : 0;
        stack_bytes = v > 0 ? (size_t)v * 1024 : (size_t)256 * 1024;
    }
    s->stack_bytes = (stack_bytes + s->page - 1) / s->page * s->page;
    s->builtins.syncthreads = syncthreads;
    return s;
}

void nr_emu_sched_free(nr_emu_sched *s)
{
    if (!s) return;
    for (unsigned i = 0; i < s->mapped; i++) munmap(s->fibers[i].stack - s->page, s->stack_bytes + s->page);
    delete[] s->fibers;
    delete s;
}

nr_emu_builtins *nr_emu_sched_builtins(nr_emu_sched *s)
{
    return &s->builtins;
}

static std::string fiber_status(const fiber *f)
{
    if (f->state == FIBER_DONE) return "returned without reaching it";
    return std::string("wait at ") + f->file + ":" + std::to_string(f->line);
}

/* "threads 0-99 wait at k.cu:47; threads 100-255 returned without reaching
 * it": the threads grouped by what they did, each group as runs of ids (the
 * first few; a count says how many there are in all). */
static std::string describe_block(const nr_emu_sched *s, unsigned block)
{
    const unsigned shown_runs = 6;
    std::vector<std::string> statuses;
    for (unsigned t = 0; t < block; t++) {
        std::string st = fiber_status(&s->fibers[t]);
        bool seen = false;
        for (const std::string &known : statuses) seen = seen || known == st;
        if (!seen) statuses.push_back(st);
    }
    std::string out;
    for (const std::string &st : statuses) {
        std::string ids;
        unsigned count = 0, runs = 0;
        for (unsigned t = 0; t < block; t++) {
            if (fiber_status(&s->fibers[t]) != st) continue;
            unsigned last = t;
            while (last + 1 < block && fiber_status(&s->fibers[last + 1]) == st) last++;
            count += last - t + 1;
            if (runs++ < shown_runs) {
                if (!ids.empty()) ids += ", ";
                ids += std::to_string(t);
                if (last > t) ids += "-" + std::to_string(last);
            } else if (runs == shown_runs + 1) {
                ids += ", ...";
            }
            t = last;
        }
        if (!out.empty()) out += "; ";
        out += count == 1 ? "thread " : "threads ";
        out += ids;
        if (runs > shown_runs) out += " (" + std::to_string(count) + " threads)";
        out += " ";
        out += count == 1 && st.compare(0, 5, "wait ") == 0 ? "waits" + st.substr(4) : st;
    }
    return out;
}

/* After a round: 1 when every live thread waits at the same barrier (the
 * next round resumes them), 0 when all returned, -1 when they disagree. */
static int round_outcome(const nr_emu_sched *s, unsigned block)
{
    const fiber *waiter = nullptr;
    bool any_done = false;
    for (unsigned t = 0; t < block; t++) {
        const fiber *f = &s->fibers[t];
        if (f->state == FIBER_DONE) {
            any_done = true;
            continue;
        }
        if (!waiter) waiter = f;
        else if (f->line != waiter->line || strcmp(f->file, waiter->file)) return -1;
    }
    if (!waiter) return 0;
    return any_done ? -1 : 1;
}

static int run_block(nr_emu_sched *s, const char *name, unsigned b, unsigned block, int reverse, nr_error *e)
{
    s->builtins.block_idx.x = b;
    for (unsigned t = 0; t < block; t++) fiber_reset(s, &s->fibers[t]);
    for (unsigned barrier = 0;; barrier++) {
        for (unsigned i = 0; i < block; i++) {
            fiber *f = &s->fibers[reverse ? block - 1 - i : i];
            if (f->state == FIBER_DONE) continue;
            f->state = FIBER_READY;
            to_fiber(s, f);
        }
        int outcome = round_outcome(s, block);
        if (outcome == 0) return 0;
        if (outcome < 0)
            return nr_fail(e, "CUDA emulator: kernel %s, block %u: __syncthreads skipped by some threads "
                              "(barrier %u of the block): %s",
                           name, b, barrier + 1, describe_block(s, block).c_str());
    }
}

int nr_emu_sched_run(nr_emu_sched *s, const char *name, void (*run)(void **), void **args, unsigned grid,
                     unsigned block, int reverse, nr_error *e)
{
    if (grid == 0 || block == 0 || block > NR_EMU_MAX_BLOCK)
        return nr_fail(e, "CUDA emulator: kernel %s launched on %u blocks of %u threads (1 to %d threads a block)",
                       name, grid, block, NR_EMU_MAX_BLOCK);
    if (running) return nr_fail(e, "CUDA emulator: kernel %s launched from inside a kernel", name);
    if (map_stacks(s, block, e)) return -1;
    s->run = run;
    s->args = args;
    s->builtins.block_dim = { block, 1, 1 };
    s->builtins.grid_dim = { grid, 1, 1 };
    s->builtins.thread_idx = { 0, 0, 0 };
    s->builtins.block_idx = { 0, 0, 0 };
    running = s;
    int rc = 0;
    for (unsigned i = 0; i < grid && !rc; i++) rc = run_block(s, name, reverse ? grid - 1 - i : i, block, reverse, e);
    running = nullptr;
    return rc;
}
