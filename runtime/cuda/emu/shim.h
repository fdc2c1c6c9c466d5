/* The CUDA emulator's shim: what CUDA device code needs to compile as host
 * C++17 with g++, so that the very source NVRTC compiles for the GPU runs on
 * the CPU (runtime/cuda/emu/emu.cc drives it; runtime/cuda/dev.h is the
 * contract).
 *
 * How a kernel runs here: every block of the grid runs after the previous
 * one, its threads as fibers on one OS thread (runtime/cuda/emu/fiber.cc).
 * So:
 * - __shared__ is `static`: one copy, shared by all threads of the block
 *   that is running (and, unlike a GPU, left over from the previous block;
 *   do not rely on either);
 * - threadIdx, blockIdx, blockDim, gridDim read the running fiber's values
 *   through nr_emu_builtins (set by the scheduler before each switch);
 * - __syncthreads() switches back to the block's scheduler, which resumes
 *   the threads once all live ones wait at the same barrier (same file and
 *   line), and fails the launch otherwise;
 * - atomics are plain read-modify-writes: only one thread runs at a time;
 * - there are no warp intrinsics (__shfl*, __ballot*, ...): fibers do not
 *   run in lockstep, so they are left undefined (a compile error, not a
 *   wrong answer).
 *
 * NR_EMU and __CUDACC_EMU__ are defined, so shared headers can tell they are
 * compiled for the emulator (runtime/nr_math.h gives __host__ __device__
 * functions under NR_EMU, __CUDACC__ or __CUDACC_RTC__).
 *
 * A module (a set of kernels the emulator can launch) is a C++ file that
 * includes this header, then the kernel source, then runtime/cuda/emu/module.h
 * and one NR_EMU_KERNEL(name) per kernel. Build it with -fvisibility=hidden
 * -ffp-contract=off (see Makefile.am: libnetemu.so for netc's kernels,
 * tests/emu/libemutest.so for the emulator's own tests). */
#ifndef NR_CUDA_EMU_SHIM_H
#define NR_CUDA_EMU_SHIM_H

#ifndef __cplusplus
#error "runtime/cuda/emu/shim.h is for C++ (g++ -std=c++17)"
#endif

#define NR_EMU 1
#define __CUDACC_EMU__ 1

#include <math.h> /* libstdc++'s: the float overloads of sqrt, exp, ... in the global namespace too */
#include <cmath>
#include <cstdint>
#include <cstring>


#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __shared__ static
#define __constant__
#define __launch_bounds__(...)

struct dim3 {
    unsigned x, y, z;
};
typedef dim3 uint3;

/* What the scheduler sets for the running fiber. One instance lives in
 * libnetemu.so; every module holds a pointer to it (bound at load time by
 * nr_emu_module_bind, which NR_EMU_MODULE() defines). */
struct nr_emu_builtins {
    uint3 thread_idx, block_idx;
    dim3 block_dim, grid_dim;
    void (*syncthreads)(const char *file, int line);
};
#define NR_EMU_BUILTINS_ABI 1

/* This module's pointer to the emulator's builtins (hidden: each shared
 * object has its own, bound when the emulator loads it). */
inline __attribute__((visibility("hidden"))) nr_emu_builtins *nr_emu_state = nullptr;

#define threadIdx (nr_emu_state->thread_idx)
#define blockIdx (nr_emu_state->block_idx)
#define blockDim (nr_emu_state->block_dim)
#define gridDim (nr_emu_state->grid_dim)
#define __syncthreads() (nr_emu_state->syncthreads(__FILE__, __LINE__))
#define warpSize 32

/* ---- memory fences: one thread at a time, nothing to order ---------------- */
inline void __threadfence(void) {}
inline void __threadfence_block(void) {}
template <typename T> inline T __ldg(const T *p) { return *p; }

/* ---- integer and bit intrinsics ------------------------------------------- */
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b)
{
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
inline int __float_as_int(float v) { int i; std::memcpy(&i, &v, sizeof i); return i; }
inline unsigned __float_as_uint(float v) { unsigned i; std::memcpy(&i, &v, sizeof i); return i; }
inline float __int_as_float(int i) { float v; std::memcpy(&v, &i, sizeof v); return v; }
inline float __uint_as_float(unsigned i) { float v; std::memcpy(&v, &i, sizeof v); return v; }
inline long long __double_as_longlong(double v) { long long i; std::memcpy(&i, &v, sizeof i); return i; }
inline double __longlong_as_double(long long i) { double v; std::memcpy(&v, &i, sizeof v); return v; }
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
inline int __clz(int v) { return v ? __builtin_clz((unsigned)v) : 32; }
inline int __ffs(int v) { return __builtin_ffs(v); }

/* ---- math: CUDA's global min/max and the fast intrinsics ------------------- */
/* The fast versions are the accurate ones here: the emulator checks logic,
 * not the last bits of __expf. */
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
using std::isfinite;
using std::isinf;
using std::isnan;

/* ---- atomics: fibers never run at the same time, so a plain update is atomic */
template <typename T> inline T nr_emu_atomic_add(T *p, T v) { T old = *p; *p = old + v; return old; }
inline int atomicAdd(int *p, int v) { return nr_emu_atomic_add(p, v); }
inline unsigned atomicAdd(unsigned *p, unsigned v) { return nr_emu_atomic_add(p, v); }
inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) { return nr_emu_atomic_add(p, v); }
inline float atomicAdd(float *p, float v) { return nr_emu_atomic_add(p, v); }
inline double atomicAdd(double *p, double v) { return nr_emu_atomic_add(p, v); }
inline int atomicSub(int *p, int v) { int old = *p; *p = old - v; return old; }
inline unsigned atomicSub(unsigned *p, unsigned v) { unsigned old = *p; *p = old - v; return old; }
template <typename T> inline T nr_emu_atomic_min(T *p, T v) { T old = *p; if (v < old) *p = v; return old; }
template <typename T> inline T nr_emu_atomic_max(T *p, T v) { T old = *p; if (v > old) *p = v; return old; }
inline int atomicMin(int *p, int v) { return nr_emu_atomic_min(p, v); }
inline unsigned atomicMin(unsigned *p, unsigned v) { return nr_emu_atomic_min(p, v); }
inline long long atomicMin(long long *p, long long v) { return nr_emu_atomic_min(p, v); }
inline unsigned long long atomicMin(unsigned long long *p, unsigned long long v) { return nr_emu_atomic_min(p, v); }
inline int atomicMax(int *p, int v) { return nr_emu_atomic_max(p, v); }
inline unsigned atomicMax(unsigned *p, unsigned v) { return nr_emu_atomic_max(p, v); }
inline long long atomicMax(long long *p, long long v) { return nr_emu_atomic_max(p, v); }
inline unsigned long long atomicMax(unsigned long long *p, unsigned long long v) { return nr_emu_atomic_max(p, v); }
template <typename T> inline T atomicExch(T *p, T v) { T old = *p; *p = v; return old; }
template <typename T> inline T atomicCAS(T *p, T cmp, T v) { T old = *p; if (old == cmp) *p = v; return old; }
#endif
