// CutMix routing: one thread per output element (grid-stride), reading the element of the
// source image chosen by the pair's box. Coalesced on both sides within a pixel row.
#include "kernels/cuda/check.h"
#include "kernels/cuda/launch_util.h"
#include "kernels/cuda/semiseg_cutmix.h"
#include "kernels/semiseg_cutmix_math.h"

namespace kernels::KERNELS_NS {
namespace {
constexpr int kBlock = 256;

template <class T>
__global__ void cutmix_swap_kernel(const T* x, T* out, const int32_t* boxes, int64_t K, int64_t H, int64_t W,
                                   int64_t C, int64_t box_h, int64_t box_w) {
  const int64_t n = 2 * K * H * W * C, HW = H * W;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t pix = e / C, c = e - pix * C;
    const int64_t b = pix / HW, p = pix - b * HW;
    const int64_t y = p / W, xx = p - y * W;
    const int64_t src = cutmix_source(b, K, boxes, y, xx, H, W, box_h, box_w);
    out[e] = x[(src * HW + p) * C + c];
  }
}

template <class T>
void run(const T* x, T* out, const int32_t* boxes, int64_t K, int64_t H, int64_t W, int64_t C, int64_t box_h,
         int64_t box_w) {
  const int64_t n = 2 * K * H * W * C;
  if (n == 0) return;
  LAUNCH_CHECK(launch(cutmix_swap_kernel<T>, grid_for(n, kBlock, 4096), dim3(kBlock), 0, nullptr, x, out, boxes, K, H,
                      W, C, box_h, box_w));
}
}  // namespace

void cutmix_swap_b4(const uint32_t* x, uint32_t* out, const int32_t* boxes, int64_t K, int64_t H, int64_t W,
                    int64_t C, int64_t box_h, int64_t box_w) {
  run(x, out, boxes, K, H, W, C, box_h, box_w);
}
void cutmix_swap_b2(const uint16_t* x, uint16_t* out, const int32_t* boxes, int64_t K, int64_t H, int64_t W,
                    int64_t C, int64_t box_h, int64_t box_w) {
  run(x, out, boxes, K, H, W, C, box_h, box_w);
}
void cutmix_swap_b1(const uint8_t* x, uint8_t* out, const int32_t* boxes, int64_t K, int64_t H, int64_t W, int64_t C,
                    int64_t box_h, int64_t box_w) {
  run(x, out, boxes, K, H, W, C, box_h, box_w);
}

}  // namespace kernels::KERNELS_NS
