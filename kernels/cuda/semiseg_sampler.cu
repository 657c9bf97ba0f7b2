// Anchor sampler of L_con on the GPU. Launch 1, one block per image: empties the image's rows
// and counts its positions per class and side (shared-memory histogram). Launch 2, one block
// per (image, class): finds the class's block of rows from the counts of the classes before
// it, then draws each side's positions as the smallest keys, one block-wide minimum per draw
// (a side takes at most per_class positions, and an image has a few thousand).
#include "kernels/cuda/check.h"
#include "kernels/cuda/reduce_util.h"
#include "kernels/cuda/semiseg_sampler.h"

namespace kernels::KERNELS_NS {
namespace {
constexpr int kBlock = 256;
constexpr int kMaxClasses = 256;

__global__ void sampler_count_kernel(const int32_t* labels, const int32_t* pred, SamplerParams p, int32_t* idx,
                                     int32_t* lab, int32_t* counts) {
  __shared__ int hist[2 * kMaxClasses];
  const int64_t n = blockIdx.x, S = sampler_slots_per_image(p);
  for (int k = threadIdx.x; k < 2 * p.C; k += blockDim.x) hist[k] = 0;
  for (int64_t s = threadIdx.x; s < S; s += blockDim.x) idx[n * S + s] = 0, lab[n * S + s] = -1;
  __syncthreads();
  for (int64_t i = threadIdx.x; i < p.hw; i += blockDim.x) {
    const int32_t y = labels[n * p.hw + i];
    const int c = sampler_class(y, p);
    if (c >= 0) atomicAdd(&hist[2 * c + sampler_side(y, pred[n * p.hw + i], p)], 1);
  }
  __syncthreads();
  for (int k = threadIdx.x; k < 2 * p.C; k += blockDim.x) counts[n * 2 * p.C + k] = hist[k];
}

__global__ void sampler_draw_kernel(const int32_t* labels, const int32_t* pred, SamplerParams p, int32_t* idx,
                                    int32_t* lab, const int32_t* counts) {
  __shared__ unsigned long long scratch[32];
  const int64_t n = blockIdx.x;
  const int c = int(blockIdx.y);
  if (sampler_class(c, p) < 0) return;  // the whole block: no barrier is skipped by part of it
  const int32_t* cnt = counts + n * 2 * p.C;
  int64_t th, te, block = 0;
  for (int k = 0; k < c; ++k) {  // qualifying classes before c: its block of rows
    if (sampler_class(k, p) < 0) continue;
    sampler_takes(cnt[2 * k], cnt[2 * k + 1], p, th, te);
    block += th + te > 0;
  }
  sampler_takes(cnt[2 * c], cnt[2 * c + 1], p, th, te);
  if (th + te == 0) return;
  const int64_t S = sampler_slots_per_image(p);
  int64_t j = n * S + block * p.per_class;
  for (int side = 0; side < 2; ++side) {
    const int64_t take = side == 0 ? th : te;
    unsigned long long last = 0;
    for (int64_t r = 0; r < take; ++r, ++j) {
      unsigned long long best = ~0ull;
      for (int64_t i = threadIdx.x; i < p.hw; i += blockDim.x) {
        const int32_t y = labels[n * p.hw + i];
        if (sampler_class(y, p) != c || sampler_side(y, pred[n * p.hw + i], p) != side) continue;
        const unsigned long long key = sampler_key(p.seed, n * p.hw + i);
        if ((r == 0 || key > last) && key < best) best = key;
      }
      last = ~block_max<unsigned long long>(~best, scratch, 0ull);
      if (threadIdx.x == 0) idx[j] = int32_t(uint32_t(last)), lab[j] = c;
    }
  }
}
}  // namespace

void sample_anchors(const int32_t* labels, const int32_t* pred, const SamplerParams& p, int32_t* idx, int32_t* lab,
                    int32_t* counts) {
  if (p.N == 0 || p.C == 0) return;
  if (p.C > kMaxClasses) throw std::invalid_argument("sample_anchors: at most 256 classes on the GPU");
  LAUNCH_CHECK(launch(sampler_count_kernel, dim3(unsigned(p.N)), dim3(kBlock), 0, nullptr, labels, pred, p, idx, lab,
                      counts));
  LAUNCH_CHECK(launch(sampler_draw_kernel, dim3(unsigned(p.N), unsigned(p.C)), dim3(kBlock), 0, nullptr, labels, pred,
                      p, idx, lab, counts));
}

}  // namespace kernels::KERNELS_NS
