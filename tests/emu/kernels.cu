/* Kernels for the emulator's own tests (tests/unit/test_emu.c), compiled
 * with runtime/cuda/emu/shim.h into tests/emu/libemutest.so by
 * tests/emu/module.cc. Plain CUDA: nvcc or NVRTC would take them too. */

#define TEST_BLOCK 256

/* Each block sums its grid-stride share of x with a shared-memory tree;
 * out[blockIdx.x] gets the block's sum. Needs blockDim.x == TEST_BLOCK. */
extern "C" __global__ void emu_block_sum(const float *x, double *out, int n)
{
    __shared__ double shared[TEST_BLOCK];
    double v = 0.0;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) v += x[i];
    shared[threadIdx.x] = v;
    __syncthreads();
    for (int half = TEST_BLOCK / 2; half > 0; half >>= 1) {
        if ((int)threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = shared[0];
}

/* A race: every thread writes its slot, then reads its neighbour's with no
 * __syncthreads between. The result depends on the order threads run. */
extern "C" __global__ void emu_racy_neighbour(int *out)
{
    __shared__ int slot[TEST_BLOCK];
    unsigned t = threadIdx.x;
    slot[t] = (int)(blockIdx.x * blockDim.x + t);
    out[blockIdx.x * blockDim.x + t] = slot[(t + 1) % blockDim.x];
}

/* The same with the barrier: no race. */
extern "C" __global__ void emu_synced_neighbour(int *out)
{
    __shared__ int slot[TEST_BLOCK];
    unsigned t = threadIdx.x;
    slot[t] = (int)(blockIdx.x * blockDim.x + t);
    __syncthreads();
    out[blockIdx.x * blockDim.x + t] = slot[(t + 1) % blockDim.x];
}

/* Threads from `from` on return before the barrier the others wait at. */
extern "C" __global__ void emu_skip_barrier(int *out, int from)
{
    if ((int)threadIdx.x >= from) return;
    __syncthreads();
    out[threadIdx.x] = 1;
}

/* Odd and even threads wait at two different barriers. */
extern "C" __global__ void emu_split_barrier(int *out)
{
    if (threadIdx.x % 2) {
        __syncthreads();
        out[threadIdx.x] = 1;
    } else {
        __syncthreads();
        out[threadIdx.x] = 2;
    }
}

/* y[i] += a (for graphs: a is the value at capture). */
extern "C" __global__ void emu_add(float *y, float a, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) y[i] += a;
}

/* Writes each thread's global index: the launch-overhead benchmark. */
extern "C" __global__ void emu_iota(int *out)
{
    out[blockIdx.x * blockDim.x + threadIdx.x] = (int)(blockIdx.x * blockDim.x + threadIdx.x);
}

/* Parameters of mixed sizes and a struct by value: the trampoline must
 * unpack each from its own pointer. */
struct emu_pair {
    unsigned a;
    unsigned long long b;
};

extern "C" __global__ void emu_params(char c, emu_pair p, double d, short s, unsigned long long *out)
{
    if (threadIdx.x || blockIdx.x) return;
    out[0] = (unsigned long long)c;
    out[1] = p.a;
    out[2] = p.b;
    out[3] = (unsigned long long)(d * 4.0);
    out[4] = (unsigned long long)s;
    out[5] = __umulhi(0xD2511F53u, 0x12345678u);
    out[6] = __umul64hi(0xfedcba9876543210ull, 0x0123456789abcdefull);
    out[7] = (unsigned long long)__float_as_int(__int_as_float(0x3f800000));
}
