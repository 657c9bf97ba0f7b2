#include "semiseg/ops_cutmix.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "kernels/cpu/semiseg_cutmix.h"
#include "kernels/cuda/semiseg_cutmix.h"
#include "kernels/semiseg_cutmix_math.h"

namespace c3::semiseg {
namespace {

// Validates the boxes against the batch and packs them as i32 [K, 4] on the host.
std::vector<int32_t> pack_boxes(const char* op, const Tensor& x, const std::vector<Box>& boxes, int64_t box_h,
                                int64_t box_w) {
  C3_CHECK(x.rank() == 3 || x.rank() == 4, op, ": expects [2K,H,W,C] or [2K,H,W], got ", x.desc());
  const int64_t K = static_cast<int64_t>(boxes.size());
  C3_CHECK(x.dim(0) == 2 * K, op, ": batch ", x.desc(), " must hold 2K = ", 2 * K, " images for ", K,
           " boxes (pairs k, k+K)");
  C3_CHECK(box_h > 0 && box_w > 0 && box_h <= INT32_MAX && box_w <= INT32_MAX, op, ": bad box resolution ", box_h,
           "x", box_w);
  std::vector<int32_t> packed;
  packed.reserve(4 * boxes.size());
  for (size_t k = 0; k < boxes.size(); ++k) {
    const Box& b = boxes[k];
    C3_CHECK(b.h >= 0 && b.w >= 0 && b.y0 >= 0 && b.x0 >= 0 && b.y0 + b.h <= box_h && b.x0 + b.w <= box_w, op,
             ": box ", k, " (y0 ", b.y0, ", x0 ", b.x0, ", h ", b.h, ", w ", b.w, ") does not fit in ", box_h, "x",
             box_w);
    packed.insert(packed.end(), {b.y0, b.x0, b.h, b.w});
  }
  return packed;
}

// `dev`: the packed boxes on x's device when the caller uploaded them; else they are uploaded.
Tensor route(const char* op, const Tensor& x, const std::vector<int32_t>& packed, int64_t box_h, int64_t box_w,
             const Tensor& dev) {
  const int64_t K = x.dim(0) / 2, H = x.dim(1), W = x.dim(2), C = x.rank() == 4 ? x.dim(3) : 1;
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel() == 0) return out;
  if (x.is_cuda()) {
    C3_CHECK(x.dtype() != DType::f64, op, ": f64 tensors are CPU-only, got ", x.desc());
    Tensor boxes = dev.defined() ? dev : Tensor::from_vector(packed, {K, 4}, x.device());
    C3_CUDA(op, {
      const int32_t* bp = boxes.data<int32_t>();
      if (x.dtype() == DType::bf16)
        kernels::cuda::cutmix_swap_b2(static_cast<const uint16_t*>(x.raw()), static_cast<uint16_t*>(out.raw()), bp, K,
                                      H, W, C, box_h, box_w);
      else if (x.dtype() == DType::u8)
        kernels::cuda::cutmix_swap_b1(static_cast<const uint8_t*>(x.raw()), static_cast<uint8_t*>(out.raw()), bp, K,
                                      H, W, C, box_h, box_w);
      else
        kernels::cuda::cutmix_swap_b4(static_cast<const uint32_t*>(x.raw()), static_cast<uint32_t*>(out.raw()), bp,
                                      K, H, W, C, box_h, box_w);
    });
    return out;
  }
  if (!dev.defined()) note_host_sync();  // where the GPU path uploads the boxes
  const int32_t* bp = packed.data();
  switch (dtype_size(x.dtype())) {
    case 1: kernels::cpu::cutmix_swap(static_cast<const uint8_t*>(x.raw()), static_cast<uint8_t*>(out.raw()), bp, K, H, W, C, box_h, box_w); break;
    case 2: kernels::cpu::cutmix_swap(static_cast<const uint16_t*>(x.raw()), static_cast<uint16_t*>(out.raw()), bp, K, H, W, C, box_h, box_w); break;
    case 4: kernels::cpu::cutmix_swap(static_cast<const uint32_t*>(x.raw()), static_cast<uint32_t*>(out.raw()), bp, K, H, W, C, box_h, box_w); break;
    case 8: kernels::cpu::cutmix_swap(static_cast<const uint64_t*>(x.raw()), static_cast<uint64_t*>(out.raw()), bp, K, H, W, C, box_h, box_w); break;
  }
  return out;
}

// The routing is a symmetric permutation: its adjoint is itself.
Tensor cutmix_route(const char* op, const Tensor& x, const std::vector<Box>& boxes, int64_t box_h, int64_t box_w,
                    const Tensor& dev) {
  const std::vector<int32_t> packed = pack_boxes(op, x, boxes, box_h, box_w);
  C3_CHECK(!dev.defined() || (dev.dtype() == DType::i32 && dev.numel() == int64_t(packed.size()) &&
                              dev.device() == x.device()),
           op, ": packed boxes ", dev.defined() ? dev.desc() : "", " must be i32 [", boxes.size(), ", 4] on ",
           device_name(x.device()));
  // The backward routes with the same boxes: on the device once, for both directions.
  const Tensor on_dev = dev.defined() || !x.is_cuda() ? dev
                                                      : Tensor::from_vector(packed, {int64_t(boxes.size()), 4}, x.device());
  Tensor out = route(op, x, packed, box_h, box_w, on_dev);
  if (x.dtype() == DType::f32 || x.dtype() == DType::f64 || x.dtype() == DType::bf16) {
    record(out, op, {x}, [op, packed, box_h, box_w, on_dev](const Tensor& g, const Needs&) {
      return std::vector<Tensor>{route(op, g, packed, box_h, box_w, on_dev)};
    });
  }
  return out;
}

}  // namespace

Tensor cutmix_mix(const Tensor& x, const std::vector<Box>& boxes, int64_t box_h, int64_t box_w, const Tensor& packed) {
  return cutmix_route("cutmix_mix", x, boxes, box_h, box_w, packed);
}

Tensor cutmix_unmix(const Tensor& pred, const std::vector<Box>& boxes, int64_t box_h, int64_t box_w,
                    const Tensor& packed) {
  return cutmix_route("cutmix_unmix", pred, boxes, box_h, box_w, packed);
}

Tensor cutmix_mask(const std::vector<Box>& boxes, int64_t h, int64_t w, int64_t box_h, int64_t box_w) {
  const int64_t K = static_cast<int64_t>(boxes.size());
  C3_CHECK(h > 0 && w > 0, "cutmix_mask: bad size ", h, "x", w);
  const std::vector<int32_t> packed =
      pack_boxes("cutmix_mask", Tensor::empty({2 * K, h, w}, DType::u8), boxes, box_h, box_w);
  Tensor m = Tensor::empty({K, h, w}, DType::u8);
  uint8_t* p = m.data<uint8_t>();
  for (int64_t k = 0; k < K; ++k)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        p[(k * h + y) * w + x] = kernels::cutmix_outside(packed.data() + 4 * k, y, x, h, w, box_h, box_w) ? 1 : 0;
  return m;
}

Box cutmix_box(Generator& gen, int H, int W) {
  C3_CHECK(H > 0 && W > 0, "cutmix_box: bad image size ", H, "x", W);
  const double hf = std::exp(gen.uniform_scalar() * std::log(0.5));  // (0.5, 1]
  Box b;
  b.h = std::clamp(int(std::lround(H * hf)), 1, H);
  b.w = std::clamp(int(std::lround(0.5 * H * W / b.h)), 1, W);
  b.y0 = int(gen.randint_scalar(0, H - b.h + 1));
  b.x0 = int(gen.randint_scalar(0, W - b.w + 1));
  return b;
}

std::vector<Box> cutmix_boxes(Generator& gen, int64_t K, int H, int W) {
  C3_CHECK(K >= 0, "cutmix_boxes: negative pair count ", K);
  std::vector<Box> v;
  v.reserve(size_t(K));
  for (int64_t k = 0; k < K; ++k) v.push_back(cutmix_box(gen, H, W));
  return v;
}

}  // namespace c3::semiseg
