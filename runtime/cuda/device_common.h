/* Device code shared by the phase-1 kernel source (runtime/cuda/kernels_src.c)
 * and the sources the compiler emits per model (compiler/emit_cuda.c): the
 * integer types, the grid-stride loop, Philox4x32-10 bit for bit as
 * runtime/rng.c (nr_uniform, nr_normal, nr_below) and the fixed-tree block
 * sum. A string literal for the host: no CUDA header is needed to embed it. */
#ifndef NR_CUDA_DEVICE_COMMON_H
#define NR_CUDA_DEVICE_COMMON_H

#define NR_CUDA_DEVICE_COMMON \
    "typedef unsigned int u32;\n" \
    "typedef unsigned long long u64;\n" \
    "typedef long long i64;\n" \
    "\n" \
    "#define GRID_STRIDE(i, total) \\\n" \
    "    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (total); i += (i64)blockDim.x * gridDim.x)\n" \
    "\n" \
    "/* Block reductions assume this many threads (a power of two). */\n" \
    "#define NR_BLOCK 256\n" \
    "\n" \
    "/* ---- Philox4x32-10, bit for bit runtime/rng.c ---------------------------- */\n" \
    "\n" \
    "/* Same layout as nr_stream in runtime/rng.h: passed by value from the host. */\n" \
    "struct nr_stream {\n" \
    "    u32 key[2];\n" \
    "    u32 hi[2];\n" \
    "};\n" \
    "\n" \
    "struct nr_draw4 {\n" \
    "    u32 w[4];\n" \
    "};\n" \
    "\n" \
    "__device__ nr_draw4 nr_philox(u32 k0, u32 k1, u32 c0, u32 c1, u32 c2, u32 c3)\n" \
    "{\n" \
    "    for (int round = 0; round < 10; round++) {\n" \
    "        u32 hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;\n" \
    "        u32 hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;\n" \
    "        c0 = hi1 ^ c1 ^ k0;\n" \
    "        c1 = lo1;\n" \
    "        c2 = hi0 ^ c3 ^ k1;\n" \
    "        c3 = lo0;\n" \
    "        k0 += 0x9E3779B9u;\n" \
    "        k1 += 0xBB67AE85u;\n" \
    "    }\n" \
    "    nr_draw4 d;\n" \
    "    d.w[0] = c0;\n" \
    "    d.w[1] = c1;\n" \
    "    d.w[2] = c2;\n" \
    "    d.w[3] = c3;\n" \
    "    return d;\n" \
    "}\n" \
    "\n" \
    "__device__ nr_draw4 nr_draw(const nr_stream &s, u64 i)\n" \
    "{\n" \
    "    return nr_philox(s.key[0], s.key[1], (u32)i, (u32)(i >> 32), s.hi[0], s.hi[1]);\n" \
    "}\n" \
    "\n" \
    "/* Uniform in [0, 1) from word 0 (24 bits), as nr_uniform. */\n" \
    "__device__ float nr_uniform(const nr_stream &s, u64 i)\n" \
    "{\n" \
    "    return (float)(nr_draw(s, i).w[0] >> 8) * (1.0f / 16777216.0f);\n" \
    "}\n" \
    "\n" \
    "/* Standard normal from words 0 and 1 of draw i (Box-Muller in double), as nr_normal. */\n" \
    "__device__ float nr_normal(const nr_stream &s, u64 i)\n" \
    "{\n" \
    "    nr_draw4 d = nr_draw(s, i);\n" \
    "    double u1 = ((double)d.w[0] + 1.0) / 4294967296.0;\n" \
    "    double u2 = (double)d.w[1] / 4294967296.0;\n" \
    "    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2));\n" \
    "}\n" \
    "\n" \
    "/* Uniform integer in [0, n) from words 0 and 1 of draw i, as nr_below. */\n" \
    "__device__ u64 nr_below(const nr_stream &s, u64 i, u64 n)\n" \
    "{\n" \
    "    nr_draw4 d = nr_draw(s, i);\n" \
    "    return __umul64hi(((u64)d.w[1] << 32) | d.w[0], n);\n" \
    "}\n" \
    "\n" \
    "/* ---- block reductions (fixed tree: the result depends on the launch alone) */\n" \
    "\n" \
    "__device__ __forceinline__ double block_sum(double v, double *shared)\n" \
    "{\n" \
    "    shared[threadIdx.x] = v;\n" \
    "    __syncthreads();\n" \
    "    for (int half = NR_BLOCK / 2; half > 0; half >>= 1) {\n" \
    "        if ((int)threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];\n" \
    "        __syncthreads();\n" \
    "    }\n" \
    "    double total = shared[0];\n" \
    "    __syncthreads(); /* shared is reused by the caller's next reduction */\n" \
    "    return total;\n" \
    "}\n" \
    "\n"

#endif
