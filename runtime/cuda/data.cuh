/* The data kernels' helpers for the sources netc emits per model: the
 * uint8 set stays on the GPU and a batch is gathered through the shuffled
 * order with runtime/preprocess.c's arithmetic and Philox draws
 * (runtime/nr_math.h). The model's augmentation is emitted as straight-line
 * code calling these (compiler/emit_cuda.c, emit_data). */
#ifndef NR_CUDA_DATA_CUH
#define NR_CUDA_DATA_CUH
#include "common.cuh"

/* Channel ch's value v normalized with the model's mean and std (D: the
 * model's G_data). */
template <class D> __device__ __forceinline__ float normalized(int ch, float v)
{
    return D::NORMALIZE ? (v - D::MEAN[ch]) / D::STD[ch] : v;
}

/* Stream index of augmentation op j's draw k (runtime/preprocess.c). */
__device__ __forceinline__ u64 op_draw(int j, u64 k) { return ((u64)(u32)j << 32) + k; }

/* torchvision's rotate, as runtime/preprocess.c computes it step by step. */
__device__ void rotate_image(const float *in, float *out, int C, int H, int W, float degrees, bool bilinear,
                             float fill)
{
    double r = (double)(-degrees) * (3.14159265358979323846 / 180.0);
    float sw = (float)(0.5 * W), sh = (float)(0.5 * H);
    float c00 = (float)cos(r) / sw, c01 = (float)sin(r) / sw, c10 = (float)-sin(r) / sh, c11 = (float)cos(r) / sh;
    float half_w = (float)W / 2.0f, half_h = (float)H / 2.0f;
    for (int k = threadIdx.x; k < H * W; k += blockDim.x) {
        int x = k % W, y = k / W;
        float bx = (float)x - (float)(0.5 * W) + 0.5f, by = (float)y - (float)(0.5 * H) + 0.5f;
        float gx = 0.0f + bx * c00 + by * c01, gy = 0.0f + bx * c10 + by * c11;
        float sx = (gx + 1.0f) * half_w - 0.5f, sy = (gy + 1.0f) * half_h - 0.5f;
        if (!bilinear) {
            float rx = rintf(sx), ry = rintf(sy);
            bool inside = rx >= 0.0f && rx < (float)W && ry >= 0.0f && ry < (float)H;
            int src = inside ? (int)ry * W + (int)rx : 0;
            for (int ch = 0; ch < C; ch++) out[ch * H * W + k] = inside ? in[ch * H * W + src] : fill;
            continue;
        }
        float x0 = floorf(sx), y0 = floorf(sy);
        float we = sx - x0, ww = 1.0f - we, ws = sy - y0, wn = 1.0f - ws;
        float tx[4] = { x0, x0 + 1.0f, x0, x0 + 1.0f }, ty[4] = { y0, y0, y0 + 1.0f, y0 + 1.0f };
        float tw[4] = { wn * ww, wn * we, ws * ww, ws * we };
        float mask = 0.0f;
        for (int t = 0; t < 4; t++)
            mask = mask + (tx[t] >= 0.0f && tx[t] < (float)W && ty[t] >= 0.0f && ty[t] < (float)H ? tw[t] : 0.0f);
        for (int ch = 0; ch < C; ch++) {
            float v = 0.0f;
            for (int t = 0; t < 4; t++) {
                bool inside = tx[t] >= 0.0f && tx[t] < (float)W && ty[t] >= 0.0f && ty[t] < (float)H;
                v = v + (inside ? in[ch * H * W + (int)ty[t] * W + (int)tx[t]] * tw[t] : 0.0f);
            }
            out[ch * H * W + k] = v * mask + (1.0f - mask) * fill;
        }
    }
}

/* Evaluation: images idx[first + j] (idx NULL: first + j), no augmentation. */
template <class D> __device__ void gather_eval(const unsigned char *pixels, const unsigned char *labels_in,
                                               const u32 *idx, i64 first, int n, float *x, int *labels)
{
    GRID_STRIDE(i, (i64)n * D::IMAGE) {
        i64 j = i / D::IMAGE;
        int k = (int)(i % D::IMAGE);
        u32 img = idx ? idx[first + j] : (u32)(first + j);
        x[i] = normalized<D>(k / (D::H * D::W), (float)pixels[(i64)img * D::IMAGE + k] / 255.0f);
        if (k == 0) labels[j] = labels_in[img];
    }
}

#endif
