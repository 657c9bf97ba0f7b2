// Batch normalization kernels over x viewed as [M, C] (NHWC, channels last).
//
// Reductions (statistics; backward sums): a block of 32 x 8 threads covers 32 consecutive
// channels (coalesced) of one fixed range of rows; each thread accumulates every 8th row of
// that range, the 8 rows of threads are combined in order through shared memory, and the
// block writes one partial per channel. A second kernel (one thread per channel) combines the
// partials in range order. No atomics: the same input gives the same bits.
// Statistics use Welford's update per thread and Chan's pairwise combine (kernels/norm_math.h).
// A fused ReLU costs no pass of its own: apply_kernel applies it, and the backward kernels
// (grad_partial_kernel, dx_kernel, apply_kernel for frozen statistics) mask dy by the saved output.
//
// The kernels that read or write activations (x, y, dy, dx, relu_y) are templates over their
// element type T: float, or bf16 with everything else in float (statistics, weight, bias,
// running stats, mean/invstd/scale, the dx coefficients, every partial sum), as PyTorch and
// cuDNN run BatchNorm on bf16 input with f32 parameters. Each element is widened on load
// (kernels/bf16_math.h), the arithmetic is the f32 kernel's, and each output is narrowed once
// on store; for float widen and narrow are the identity, so the f32 kernels are unchanged.
#include "kernels/cuda/check.h"
#include "kernels/cuda/launch_util.h"
#include "kernels/cuda/norm.h"
#include "kernels/norm_math.h"

namespace kernels::KERNELS_NS {
namespace {
constexpr int kCols = 32, kRows = 8;  // reduction block: channels x rows of threads

// Row ranges of the reductions: enough blocks to fill the GPU (about 1024 in all), at least
// 64 rows per block. A function of (M, C) only, so the partition, and the bits, are fixed.
struct Partition {
  int64_t blocks_x, ranges, rows_per_range;
};
Partition partition(int64_t M, int64_t C) {
  Partition p;
  p.blocks_x = (C + kCols - 1) / kCols;
  int64_t want = (1024 + p.blocks_x - 1) / p.blocks_x;
  const int64_t most = (M + 63) / 64;
  if (want > most) want = most;
  if (want < 1) want = 1;
  p.rows_per_range = (M + want - 1) / want;
  p.ranges = (M + p.rows_per_range - 1) / p.rows_per_range;
  return p;
}

// Element i of the incoming gradient dy (or of x in the apply pass), widened, and masked by the
// fused forward's output relu_y when there is one: bn_relu_dy (kernels/norm_math.h) over T.
// (Masking the widened value is masking the bf16 one: widening keeps the sign and zero.)
template <class T> __device__ __forceinline__ acc_t<T> relu_dy(const T* dy, const T* relu_y, int64_t i) {
  return relu_y ? bn_relu_grad(widen(relu_y[i]), widen(dy[i])) : widen(dy[i]);
}

// Partial statistics of rows [r0, r1) per channel -> part[range][3][C] (count, mean, M2).
template <class T>
__global__ void stats_partial_kernel(const T* x, int64_t M, int64_t C, int64_t rows_per_range, float* part) {
  __shared__ float sn[kRows][kCols], smean[kRows][kCols], sm2[kRows][kCols];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = blockIdx.x * (int64_t)kCols + tx, range = blockIdx.y;
  const int64_t r0 = range * rows_per_range, r1 = r0 + rows_per_range < M ? r0 + rows_per_range : M;
  MeanM2<float> s{0.f, 0.f, 0.f};
  if (c < C)
    for (int64_t r = r0 + ty; r < r1; r += kRows) mean_m2_push(s, widen(x[r * C + c]));
  sn[ty][tx] = s.n;
  smean[ty][tx] = s.mean;
  sm2[ty][tx] = s.m2;
  __syncthreads();
  if (ty == 0 && c < C) {
    for (int k = 1; k < kRows; ++k) s = mean_m2_combine(s, MeanM2<float>{sn[k][tx], smean[k][tx], sm2[k][tx]});
    float* out = part + range * 3 * C;
    out[c] = s.n;
    out[C + c] = s.mean;
    out[2 * C + c] = s.m2;
  }
}

__global__ void stats_final_kernel(const float* part, int64_t ranges, int64_t M, int64_t C, const float* weight,
                                   float eps, float momentum, float* running_mean, float* running_var, float* mean,
                                   float* invstd, float* scale) {
  for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < C; c += (int64_t)gridDim.x * blockDim.x) {
    MeanM2<float> s{0.f, 0.f, 0.f};
    for (int64_t k = 0; k < ranges; ++k) {
      const float* p = part + k * 3 * C;
      s = mean_m2_combine(s, MeanM2<float>{p[c], p[C + c], p[2 * C + c]});
    }
    const float var = s.m2 / float(M);
    mean[c] = s.mean;
    invstd[c] = bn_invstd(var, eps);
    scale[c] = weight[c] * invstd[c];
    if (running_mean) bn_running_update(running_mean[c], running_var[c], s.mean, var, float(M), momentum);
  }
}

__global__ void running_stats_kernel(const float* running_mean, const float* running_var, const float* weight,
                                     int64_t C, float eps, float* mean, float* invstd, float* scale) {
  for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < C; c += (int64_t)gridDim.x * blockDim.x) {
    mean[c] = running_mean[c];
    invstd[c] = bn_invstd(running_var[c], eps);
    scale[c] = weight[c] * invstd[c];
  }
}

// Frozen BN folded into a conv weight [K, taps]: one block per output channel (grid-stride
// over channels). Every thread computes its channel's scale (no shared memory, no barrier) and
// scales a strided part of the row; thread 0 writes the scale and the folded bias.
__global__ void fold_kernel(const float* w, int64_t K, int64_t taps, const float* conv_bias, const float* weight,
                            const float* bias, const float* mean, const float* var, float eps, float* w_out,
                            float* b_out, float* scale) {
  for (int64_t k = blockIdx.x; k < K; k += gridDim.x) {
    const float s = bn_fold_scale(weight[k], var[k], eps);
    const float* src = w + k * taps;
    float* dst = w_out + k * taps;
    for (int64_t t = threadIdx.x; t < taps; t += blockDim.x) dst[t] = src[t] * s;
    if (threadIdx.x == 0) {
      scale[k] = s;
      b_out[k] = bn_fold_bias(conv_bias ? conv_bias[k] : 0.f, mean[k], s, bias[k]);
    }
  }
}

// Grid-stride over the M*C elements; the channel index advances by stride mod C instead of a
// 64-bit division per element.
#define C3_CHANNEL_LOOP(i, c, n, C)                                                        \
  const int64_t stride_ = (int64_t)gridDim.x * blockDim.x, cstep_ = stride_ % (C);         \
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, c = i % (C);                 \
  for (; i < (n); i += stride_, c = c + cstep_ >= (C) ? c + cstep_ - (C) : c + cstep_)

// relu: ReLU on the output; relu_y (or null): the fused forward's output, masking x.
template <class T>
__global__ void apply_kernel(const T* x, int64_t n, int64_t C, const float* mean, const float* scale,
                             const float* bias, bool relu, const T* relu_y, T* y) {
  C3_CHANNEL_LOOP(i, c, n, C)
    y[i] = narrow<T>(bn_apply_one(relu_dy(x, relu_y, i), mean ? mean[c] : 0.f, scale[c], bias ? bias[c] : 0.f, relu));
}

// apply_kernel 16 bytes at a time: V = lanes16<T> elements (4 float, 8 bf16), for C a multiple
// of V and every pointer 16-byte aligned (apply() checks). Element group iv covers elements
// V iv .. V iv + V-1 of channels V cv .. V cv + V-1, taken 4 lanes at a time with one float4 of
// each parameter. Each lane is apply_kernel's bn_apply_one, so the bits are the same.
template <class T>
__global__ void apply4_kernel(const T* x, int64_t nv, int64_t Cv, const float* mean, const float* scale,
                              const float* bias, bool relu, const T* relu_y, T* y) {
  constexpr int V = lanes16<T>;
  using Vec = decltype(ld16(x));
  C3_CHANNEL_LOOP(iv, cv, nv, Cv) {
    const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
    const Vec vzero{};
    Vec xv = ld16(x + V * iv), out = vzero, rv = relu_y ? ld16(relu_y + V * iv) : vzero;
#pragma unroll
    for (int h = 0; h < V; h += 4) {
      float4 mv = mean ? ld4(mean + V * cv + h) : zero, sv = ld4(scale + V * cv + h),
             bv = bias ? ld4(bias + V * cv + h) : zero;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float xk = relu_dy(&lane(xv, h + k), relu_y ? &lane(rv, h + k) : nullptr, 0);
        lane(out, h + k) = narrow<T>(bn_apply_one(xk, lane(mv, k), lane(sv, k), lane(bv, k), relu));
      }
    }
    st16(y + V * iv, out);
  }
}

// Partial sums of dy and dy*(x - mean) over rows [r0, r1) -> part[range][2][C]; dy masked by
// relu_y when not null.
template <class T>
__global__ void grad_partial_kernel(const T* dy, const T* x, const float* mean, const T* relu_y, int64_t M,
                                    int64_t C, int64_t rows_per_range, float* part) {
  __shared__ float sg[kRows][kCols], sgx[kRows][kCols];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = blockIdx.x * (int64_t)kCols + tx, range = blockIdx.y;
  const int64_t r0 = range * rows_per_range, r1 = r0 + rows_per_range < M ? r0 + rows_per_range : M;
  float g = 0.f, gx = 0.f;
  if (c < C) {
    const float mu = mean[c];
    for (int64_t r = r0 + ty; r < r1; r += kRows) {
      const float d = relu_dy(dy, relu_y, r * C + c);
      g += d;
      gx += d * (widen(x[r * C + c]) - mu);
    }
  }
  sg[ty][tx] = g;
  sgx[ty][tx] = gx;
  __syncthreads();
  if (ty == 0 && c < C) {
    for (int k = 1; k < kRows; ++k) {
      g += sg[k][tx];
      gx += sgx[k][tx];
    }
    part[range * 2 * C + c] = g;
    part[range * 2 * C + C + c] = gx;
  }
}

// Combines the partials in range order; writes dweight, dbias and the dx coefficients
// coef[3][C] = (A, B, D) of kernels/norm_math.h.
__global__ void grad_final_kernel(const float* part, int64_t ranges, int64_t M, int64_t C, const float* invstd,
                                  const float* scale, bool batch_stats, float* dweight, float* dbias, float* coef) {
  for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < C; c += (int64_t)gridDim.x * blockDim.x) {
    float g = 0.f, gx = 0.f;
    for (int64_t k = 0; k < ranges; ++k) {
      g += part[k * 2 * C + c];
      gx += part[k * 2 * C + C + c];
    }
    if (dbias) dbias[c] = g;
    if (dweight) dweight[c] = gx * invstd[c];
    bn_dx_coeffs(scale[c], invstd[c], g, gx, float(M), batch_stats, coef[c], coef[C + c], coef[2 * C + c]);
  }
}

template <class T>
__global__ void dx_kernel(const T* dy, const T* x, const float* mean, const T* relu_y, const float* coef, int64_t n,
                          int64_t C, T* dx) {
  C3_CHANNEL_LOOP(i, c, n, C)
    dx[i] = narrow<T>(coef[c] * relu_dy(dy, relu_y, i) + coef[C + c] * (widen(x[i]) - mean[c]) + coef[2 * C + c]);
}
#undef C3_CHANNEL_LOOP

template <class T>
void batch_stats(const T* x, int64_t M, int64_t C, const float* weight, float eps, float momentum,
                 float* running_mean, float* running_var, float* mean, float* invstd, float* scale, float* workspace) {
  if (M * C == 0) return;
  const Partition p = partition(M, C);
  LAUNCH_CHECK(launch(stats_partial_kernel<T>, dim3((unsigned)p.blocks_x, (unsigned)p.ranges), dim3(kCols, kRows), 0,
                      nullptr, x, M, C, p.rows_per_range, workspace));
  LAUNCH_CHECK(launch(stats_final_kernel, grid_for(C, 256), dim3(256), 0, nullptr, workspace, p.ranges, M, C, weight,
                      eps, momentum, running_mean, running_var, mean, invstd, scale));
}

template <class T>
void apply(const T* x, int64_t M, int64_t C, const float* mean, const float* scale, const float* bias, T* y,
           bool relu, const T* relu_y) {
  const int64_t n = M * C;
  if (n == 0) return;
  constexpr int V = lanes16<T>;
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  if (C % V == 0 && aligned(x) && aligned(y) && aligned(scale) && aligned(mean) && aligned(bias) && aligned(relu_y)) {
    LAUNCH_CHECK(launch(apply4_kernel<T>, grid_for(n / V, 256), dim3(256), 0, nullptr, x, n / V, C / V, mean, scale,
                        bias, relu, relu_y, y));
    return;
  }
  LAUNCH_CHECK(launch(apply_kernel<T>, grid_for(n, 256), dim3(256), 0, nullptr, x, n, C, mean, scale, bias, relu,
                      relu_y, y));
}

template <class T>
void backward(const T* dy, const T* x, int64_t M, int64_t C, const float* mean, const float* invstd,
              const float* scale, bool batch_stats, T* dx, float* dweight, float* dbias, float* workspace,
              const T* relu_y) {
  if (M * C == 0) return;
  if (!batch_stats && !dweight && !dbias) {  // fixed statistics, dx only: dx = scale * dy
    if (dx) apply<T>(dy, M, C, nullptr, scale, nullptr, dx, false, relu_y);
    return;
  }
  const Partition p = partition(M, C);
  float* coef = workspace + 2 * p.ranges * C;
  LAUNCH_CHECK(launch(grad_partial_kernel<T>, dim3((unsigned)p.blocks_x, (unsigned)p.ranges), dim3(kCols, kRows), 0,
                      nullptr, dy, x, mean, relu_y, M, C, p.rows_per_range, workspace));
  LAUNCH_CHECK(launch(grad_final_kernel, grid_for(C, 256), dim3(256), 0, nullptr, workspace, p.ranges, M, C, invstd,
                      scale, batch_stats, dweight, dbias, coef));
  if (dx)
    LAUNCH_CHECK(
        launch(dx_kernel<T>, grid_for(M * C, 256), dim3(256), 0, nullptr, dy, x, mean, relu_y, coef, M * C, C, dx));
}

}  // namespace

int64_t bn_workspace_floats(int64_t M, int64_t C) {
  const Partition p = partition(M, C);
  const int64_t stats = 3 * p.ranges * C, grads = 2 * p.ranges * C + 3 * C;
  return stats > grads ? stats : grads;
}

void bn_batch_stats_f32(const float* x, int64_t M, int64_t C, const float* weight, float eps, float momentum,
                        float* running_mean, float* running_var, float* mean, float* invstd, float* scale,
                        float* workspace) {
  batch_stats(x, M, C, weight, eps, momentum, running_mean, running_var, mean, invstd, scale, workspace);
}
void bn_batch_stats_bf16(const bf16* x, int64_t M, int64_t C, const float* weight, float eps, float momentum,
                         float* running_mean, float* running_var, float* mean, float* invstd, float* scale,
                         float* workspace) {
  batch_stats(x, M, C, weight, eps, momentum, running_mean, running_var, mean, invstd, scale, workspace);
}

void bn_running_stats_f32(const float* running_mean, const float* running_var, const float* weight, int64_t C,
                          float eps, float* mean, float* invstd, float* scale) {
  if (C == 0) return;
  LAUNCH_CHECK(launch(running_stats_kernel, grid_for(C, 256), dim3(256), 0, nullptr, running_mean, running_var,
                      weight, C, eps, mean, invstd, scale));
}

void bn_fold_f32(const float* w, int64_t K, int64_t taps, const float* conv_bias, const float* weight,
                 const float* bias, const float* running_mean, const float* running_var, float eps, float* w_out,
                 float* b_out, float* scale) {
  if (K == 0) return;
  LAUNCH_CHECK(launch(fold_kernel, dim3(unsigned(K < 4096 ? K : 4096)), dim3(128), 0, nullptr, w, K, taps, conv_bias,
                      weight, bias, running_mean, running_var, eps, w_out, b_out, scale));
}

void bn_apply_f32(const float* x, int64_t M, int64_t C, const float* mean, const float* scale, const float* bias,
                  float* y, bool relu, const float* relu_y) {
  apply(x, M, C, mean, scale, bias, y, relu, relu_y);
}
void bn_apply_bf16(const bf16* x, int64_t M, int64_t C, const float* mean, const float* scale, const float* bias,
                   bf16* y, bool relu, const bf16* relu_y) {
  apply(x, M, C, mean, scale, bias, y, relu, relu_y);
}

void bn_backward_f32(const float* dy, const float* x, int64_t M, int64_t C, const float* mean, const float* invstd,
                     const float* scale, bool batch_stats, float* dx, float* dweight, float* dbias, float* workspace,
                     const float* relu_y) {
  backward(dy, x, M, C, mean, invstd, scale, batch_stats, dx, dweight, dbias, workspace, relu_y);
}
void bn_backward_bf16(const bf16* dy, const bf16* x, int64_t M, int64_t C, const float* mean, const float* invstd,
                      const float* scale, bool batch_stats, bf16* dx, float* dweight, float* dbias, float* workspace,
                      const bf16* relu_y) {
  backward(dy, x, M, C, mean, invstd, scale, batch_stats, dx, dweight, dbias, workspace, relu_y);
}

}  // namespace kernels::KERNELS_NS
