// Softmax, log-softmax and the fused cross-entropy losses: G lanes per row (pixel).
//
// A row is one pixel's C logits, contiguous (NHWC). A warp holds 32/G rows: G = 8 lanes
// for C <= 64 (C = 19 classes: 2-3 elements a lane, 3 shuffle rounds per reduction),
// a full warp for wider rows (C = 256 features). Shuffles with width G give each row its
// max and sums, with no shared memory. Warps walk their rows with a grid stride; a row past
// the end gets length 0 (no loads, no stores) so that every lane of the warp takes part in
// every full-mask shuffle. Outputs are written, never accumulated.
//
// The losses are deterministic: each block adds its rows' losses with the fixed tree of
// reduce_util.h into its own slot of `partials`; a second one-block kernel adds the slots in
// a fixed order (in double) and writes [loss, 1/count]. The grid depends only on the shape,
// so the same input gives the same bits. No float atomics.
#include "kernels/cuda/check.h"
#include "kernels/cuda/launch_util.h"
#include "kernels/cuda/reduce_util.h"
#include "kernels/cuda/softmax.h"
#include "kernels/softmax_math.h"

namespace kernels::KERNELS_NS {
namespace {
constexpr int kWarps = 8;
constexpr int kBlock = 32 * kWarps;
constexpr int64_t kMaxBlocks = 1024;

template <int G> __device__ float group_max(float v) {
  for (int d = G / 2; d > 0; d >>= 1) {
    const float o = __shfl_xor_sync(0xffffffffu, v, d, G);
    v = o > v ? o : v;
  }
  return v;
}
template <int G> __device__ float group_sum(float v) {
  for (int d = G / 2; d > 0; d >>= 1) v += __shfl_xor_sync(0xffffffffu, v, d, G);
  return v;
}

// The rows of this thread's group: r = first, first + stride, ... (a grid stride).
template <int G> struct Rows {
  static constexpr int kPerWarp = 32 / G;
  int lane, group;  // lane within the row's group; the group within the warp
  int64_t first, stride;
  __device__ Rows()
      : lane(threadIdx.x % G),
        group((threadIdx.x % 32) / G),
        first((blockIdx.x * (int64_t)kWarps + threadIdx.x / 32) * kPerWarp + group),
        stride((int64_t)gridDim.x * kWarps * kPerWarp) {}
  // True while ANY row of the warp is in range: the same in all 32 lanes.
  __device__ bool warp_in_range(int64_t r, int64_t rows) const { return r - group < rows; }
};
dim3 row_grid(int64_t rows, int G) { return grid_for(rows, kWarps * (32 / G), kMaxBlocks); }
int lanes_for(int64_t C) { return C <= 64 ? 8 : 32; }

// Max and sum of exp over a row of n elements (n = 0 for a row past the end or skipped).
template <int G> __device__ float row_max(const float* z, int64_t n, int lane) {
  float m = -INFINITY;
  for (int64_t c = lane; c < n; c += G) m = z[c] > m ? z[c] : m;
  return group_max<G>(m);
}
template <int G> __device__ float row_sum_exp(const float* z, int64_t n, float m, int lane) {
  float s = 0.f;
  for (int64_t c = lane; c < n; c += G) s += c3_exp(z[c] - m);
  return group_sum<G>(s);
}

template <int G> __global__ void softmax_kernel(const float* x, float* y, int64_t rows, int64_t C, bool log) {
  const Rows<G> it;
  for (int64_t r = it.first; it.warp_in_range(r, rows); r += it.stride) {
    const int64_t n = r < rows ? C : 0;
    const float* z = x + r * C;
    float* q = y + r * C;
    const float m = row_max<G>(z, n, it.lane), s = row_sum_exp<G>(z, n, m, it.lane);
    if (log) {
      const float log_s = c3_log(s);
      for (int64_t c = it.lane; c < n; c += G) q[c] = log_softmax_of(z[c], m, log_s);
    } else {
      const float inv_s = 1.f / s;
      for (int64_t c = it.lane; c < n; c += G) q[c] = softmax_prob(z[c], m, inv_s);
    }
  }
}

template <int G>
__global__ void softmax_backward_kernel(const float* y, const float* g, float* gx, int64_t rows, int64_t C, bool log) {
  const Rows<G> it;
  for (int64_t r = it.first; it.warp_in_range(r, rows); r += it.stride) {
    const int64_t n = r < rows ? C : 0;
    const float *yr = y + r * C, *gr = g + r * C;
    float* q = gx + r * C;
    float acc = 0.f;  // log: sum_k g_k;  softmax: sum_k g_k y_k
    for (int64_t c = it.lane; c < n; c += G) acc += log ? gr[c] : gr[c] * yr[c];
    acc = group_sum<G>(acc);
    for (int64_t c = it.lane; c < n; c += G)
      q[c] = log ? log_softmax_grad(yr[c], gr[c], acc) : softmax_grad(yr[c], gr[c], acc);
  }
}

// Every thread calls this once at the end of a loss kernel (it contains barriers).
__device__ void write_partials(float sum, float count, float* partials) {
  __shared__ float scratch[32];
  sum = block_sum(sum, scratch);
  count = block_sum(count, scratch);
  if (threadIdx.x == 0) {
    partials[2 * blockIdx.x] = sum;
    partials[2 * blockIdx.x + 1] = count;
  }
}
__device__ void zero_row(float* g, int64_t n, int lane, int G) {
  for (int64_t c = lane; c < n; c += G) g[c] = 0.f;
}

// first_invalid starts at ~0; atomicMin on an integer is order-independent.
template <class L, int G>
__global__ void cross_entropy_kernel(const float* logits, const L* labels, const float* weight, int64_t ignore_index,
                                     int64_t npix, int64_t C, float* grad, float* partials,
                                     unsigned long long* first_invalid) {
  const Rows<G> it;
  float sum = 0.f, count = 0.f;  // kept by lane 0 of each row group
  for (int64_t i = it.first; it.warp_in_range(i, npix); i += it.stride) {
    const int64_t y = i < npix ? static_cast<int64_t>(labels[i]) : ignore_index;
    const LabelKind kind = label_kind(y, C, ignore_index);
    const int64_t n = kind == LabelKind::valid ? C : 0;
    const float* z = logits + i * C;
    float* gi = grad ? grad + i * C : nullptr;
    if (kind == LabelKind::invalid && it.lane == 0) atomicMin(first_invalid, static_cast<unsigned long long>(i));
    if (gi && i < npix && n == 0) zero_row(gi, C, it.lane, G);  // ignored or invalid: zero gradient
    const float m = row_max<G>(z, n, it.lane), s = row_sum_exp<G>(z, n, m, it.lane);
    if (n == 0) continue;  // no shuffles below
    const float w = weight ? weight[y] : 1.f;
    if (it.lane == 0) sum += ce_pixel_loss(z[y], m, s, w), count += 1.f;
    if (gi) {
      const float inv_s = 1.f / s;
      for (int64_t c = it.lane; c < n; c += G) gi[c] = ce_grad(softmax_prob(z[c], m, inv_s), c == y, w);
    }
  }
  write_partials(sum, count, partials);
}

template <class M, int G>
__global__ void soft_cross_entropy_kernel(const float* logits, const float* target, const M* mask, int64_t npix,
                                          int64_t C, float* grad, float* partials) {
  const Rows<G> it;
  float sum = 0.f, msum = 0.f;  // kept by lane 0 of each row group
  for (int64_t i = it.first; it.warp_in_range(i, npix); i += it.stride) {
    const float mi = i >= npix ? 0.f : (mask ? static_cast<float>(mask[i]) : 1.f);
    const int64_t n = mi != 0.f ? C : 0;  // a zero-mask pixel is skipped, as on the CPU
    const float *z = logits + i * C, *t = target + i * C;
    float* gi = grad ? grad + i * C : nullptr;
    if (gi && i < npix && n == 0) zero_row(gi, C, it.lane, G);
    const float m = row_max<G>(z, n, it.lane), s = row_sum_exp<G>(z, n, m, it.lane);
    const float log_s = c3_log(s);
    float loss = 0.f, tsum = 0.f;
    for (int64_t c = it.lane; c < n; c += G) loss += soft_ce_term(t[c], z[c], m, log_s), tsum += t[c];
    loss = group_sum<G>(loss);
    tsum = group_sum<G>(tsum);
    if (n == 0) continue;
    if (it.lane == 0) sum += mi * loss, msum += mi;
    if (gi) {
      const float inv_s = 1.f / s;
      for (int64_t c = it.lane; c < n; c += G) gi[c] = mi * soft_ce_grad(softmax_prob(z[c], m, inv_s), t[c], tsum);
    }
  }
  write_partials(sum, msum, partials);
}

// One block: adds the per-block partials in a fixed order, in double.
__global__ void finish_mean_kernel(const float* partials, int nblocks, float* out) {
  __shared__ double scratch[32];
  double sum = 0, count = 0;
  for (int k = threadIdx.x; k < nblocks; k += blockDim.x) sum += partials[2 * k], count += partials[2 * k + 1];
  sum = block_sum(sum, scratch);
  count = block_sum(count, scratch);
  if (threadIdx.x == 0) {
    out[0] = safe_mean<float>(sum, count);
    out[1] = safe_inverse<float>(count);
  }
}

// Scratch layout: partials [kMaxBlocks][2] floats, then the 8-byte invalid-label flag.
float* partials_of(void* scratch) { return static_cast<float*>(scratch); }
unsigned long long* flag_of(void* scratch) {
  return reinterpret_cast<unsigned long long*>(static_cast<char*>(scratch) + 8 * kMaxBlocks);
}
void finish_mean(void* scratch, dim3 grid, float* out) {
  LAUNCH_CHECK(launch(finish_mean_kernel, dim3(1), dim3(256), 0, nullptr, partials_of(scratch), (int)grid.x, out));
}

template <class L>
int64_t cross_entropy_impl(const float* logits, const L* labels, const float* weight, int64_t ignore_index,
                           int64_t npix, int64_t C, float* grad, float* out, void* scratch,
                           unsigned long long* defer) {
  const int G = lanes_for(C);
  const dim3 grid = row_grid(npix, G);
  unsigned long long* flag = defer ? defer : flag_of(scratch);
  if (!defer) memset_device(flag, 0xff, sizeof(*flag));
  auto kernel = G == 8 ? cross_entropy_kernel<L, 8> : cross_entropy_kernel<L, 32>;
  LAUNCH_CHECK(launch(kernel, grid, dim3(kBlock), 0, nullptr, logits, labels, weight, ignore_index, npix, C, grad,
                      partials_of(scratch), flag));
  finish_mean(scratch, grid, out);
  if (defer) return -1;  // checked later, with other values
  unsigned long long first = 0;
  memcpy_d2h(&first, flag, sizeof(first));  // the one synchronization: invalid labels must throw
  return first == ~0ull ? -1 : static_cast<int64_t>(first);
}

template <class M>
void soft_cross_entropy_impl(const float* logits, const float* target, const M* mask, int64_t npix, int64_t C,
                             float* grad, float* out, void* scratch) {
  const int G = lanes_for(C);
  const dim3 grid = row_grid(npix, G);
  auto kernel = G == 8 ? soft_cross_entropy_kernel<M, 8> : soft_cross_entropy_kernel<M, 32>;
  LAUNCH_CHECK(launch(kernel, grid, dim3(kBlock), 0, nullptr, logits, target, mask, npix, C, grad,
                      partials_of(scratch)));
  finish_mean(scratch, grid, out);
}
}  // namespace

void softmax_f32(const float* x, float* y, int64_t rows, int64_t C, bool log) {
  if (rows * C == 0) return;
  const int G = lanes_for(C);
  auto kernel = G == 8 ? softmax_kernel<8> : softmax_kernel<32>;
  LAUNCH_CHECK(launch(kernel, row_grid(rows, G), dim3(kBlock), 0, nullptr, x, y, rows, C, log));
}
void softmax_backward_f32(const float* y, const float* g, float* gx, int64_t rows, int64_t C, bool log) {
  if (rows * C == 0) return;
  const int G = lanes_for(C);
  auto kernel = G == 8 ? softmax_backward_kernel<8> : softmax_backward_kernel<32>;
  LAUNCH_CHECK(launch(kernel, row_grid(rows, G), dim3(kBlock), 0, nullptr, y, g, gx, rows, C, log));
}

size_t loss_scratch_bytes() { return 8 * kMaxBlocks + 8; }

int64_t cross_entropy_f32(const float* logits, const uint8_t* labels, const float* weight, int64_t ignore_index,
                          int64_t npix, int64_t C, float* grad, float* out, void* scratch,
                          unsigned long long* defer) {
  return cross_entropy_impl(logits, labels, weight, ignore_index, npix, C, grad, out, scratch, defer);
}
int64_t cross_entropy_f32(const float* logits, const int32_t* labels, const float* weight, int64_t ignore_index,
                          int64_t npix, int64_t C, float* grad, float* out, void* scratch,
                          unsigned long long* defer) {
  return cross_entropy_impl(logits, labels, weight, ignore_index, npix, C, grad, out, scratch, defer);
}
void soft_cross_entropy_f32(const float* logits, const float* target, const uint8_t* mask, int64_t npix, int64_t C,
                            float* grad, float* out, void* scratch) {
  soft_cross_entropy_impl(logits, target, mask, npix, C, grad, out, scratch);
}
void soft_cross_entropy_f32(const float* logits, const float* target, const float* mask, int64_t npix, int64_t C,
                            float* grad, float* out, void* scratch) {
  soft_cross_entropy_impl(logits, target, mask, npix, C, grad, out, scratch);
}

}  // namespace kernels::KERNELS_NS
