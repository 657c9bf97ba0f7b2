// Kernel lab: the global average pool of DeepLabV3+'s ASPP image branch over the layer4
// features (16 x 33 x 65 x 2048 -> 16 x 2048) and its backward; nearest resizing as the
// engine uses it: the label maps (u8 ground truth, i32 pseudo-labels) brought down to the
// feature resolution (16 x 256 x 512 -> 33 x 65) for the contrastive loss, and f32 maps
// upsampled from the features to the input size (16 x 33 x 65 x 19 -> 256 x 512) with the
// backward of that upsampling.
#include <algorithm>
#include <memory>

#include "bench/lab/lab.h"
#include "kernels/cpu/pool.h"
#include "kernels/cpu/resize.h"
#include "kernels/cuda/pool.h"
#include "kernels/cuda/resize.h"

namespace lab {
namespace {

// The device sums each channel in f32 (8 strided partial sums of up to 268 terms at 33 x 65,
// then their sum), the CPU in double: with positive-mean inputs the worst-case f32 error of
// those sums is below 1e-5 of the mean (typical errors are ~1e-7).
constexpr double kPoolRtol = 1e-5, kPoolAtol = 1e-6;
// The device multiplies by 1/HW rounded to f32, the CPU divides by HW: at most two roundings.
constexpr double kPoolBackwardRtol = 1e-6;

struct AvgPoolState {
  Buf<float> x, y, dy, dx;
};

Case avg_pool_case(Backend b, const Scale& s, bool backward) {
  const int64_t N = s.N, HW = s.h * s.w, C = s.C;
  auto st = std::make_shared<AvgPoolState>();
  AvgPoolState& v = *st;
  v.x = Buf<float>(b, N * HW * C), v.y = Buf<float>(b, N * C), v.dy = Buf<float>(b, N * C), v.dx = Buf<float>(b, N * HW * C);
  fill_uniform(v.x.vec(), -1.f, 3.f, 1);  // post-ReLU-like features: a nonzero mean
  fill_uniform(v.dy.vec(), -1.f, 1.f, 2);
  v.x.upload(), v.dy.upload();
  const double bytes = double(N * HW * C + N * C) * 4;
  return make_case(
      b, dims({N, s.h, s.w, C}), bytes,
      [&v, st, N, HW, C, backward] {
        if (backward) kernels::cpu::global_avg_pool_backward(v.dy.host(), N, HW, C, v.dx.host());
        else kernels::cpu::global_avg_pool(v.x.host(), N, HW, C, v.y.host());
      },
      [&v, st, N, HW, C, backward, b] {
        if (backward) LAB_DEV(b, global_avg_pool_backward_f32, v.dy.dev(), N, HW, C, v.dx.dev());
        else LAB_DEV(b, global_avg_pool_f32, v.x.dev(), N, HW, C, v.y.dev());
      },
      [&v, st, backward] {
        if (backward) return compare("dx", v.dx.download(), v.dx.vec(), kPoolBackwardRtol, 0);
        return compare("y", v.y.download(), v.y.vec(), kPoolRtol, kPoolAtol);
      });
}

// Nearest forward reads one input element per output (a downsampling never touches the
// rest of the input) and every input at least once when upsampling: min(in, out) reads.
double nearest_bytes(int64_t nin, int64_t nout, size_t elem) { return double(std::min(nin, nout) + nout) * double(elem); }

// A label map [N, H, W] (one channel) brought down to the feature resolution.
template <class T> struct LabelPair {
  Buf<T> in, out;
};

template <class T> Case nearest_labels_case(Backend b, const Scale& s) {
  const kernels::ResizeShape r{s.N, s.H, s.W, 1, s.h, s.w};
  const int64_t nin = r.n * r.h * r.w, nout = r.n * r.oh * r.ow;
  auto st = std::make_shared<LabelPair<T>>();
  LabelPair<T>& v = *st;
  v.in = Buf<T>(b, nin), v.out = Buf<T>(b, nout);
  std::vector<uint8_t> labels(static_cast<size_t>(nin));
  fill_labels(labels, int(s.classes), 1, 37);  // the ignore label 255 on a sprinkling of pixels
  std::copy(labels.begin(), labels.end(), v.in.vec().begin());
  v.in.upload();
  return make_case(
      b, dims({r.n, r.h, r.w}) + " -> " + dims({r.oh, r.ow}), nearest_bytes(nin, nout, sizeof(T)),
      [&v, st, r] { kernels::cpu::resize_nearest(v.in.host(), v.out.host(), r); },
      [&v, st, r, b] {
        if constexpr (sizeof(T) == 1) LAB_DEV(b, resize_nearest_u8, v.in.dev(), v.out.dev(), r);
        else LAB_DEV(b, resize_nearest_i32, v.in.dev(), v.out.dev(), r);
      },
      [&v, st] { return compare_exact("labels", v.out.download(), v.out.vec()); });
}

const Register r1({"pool", "global_avg_pool", 1, "ASPP image pooling: mean over h x w per channel",
                   [](Backend b, const Scale& s) { return avg_pool_case(b, s, false); }});
const Register r2({"pool", "global_avg_pool_backward", 1, "dy / HW broadcast over h x w",
                   [](Backend b, const Scale& s) { return avg_pool_case(b, s, true); }});
const Register r3({"resize", "nearest_u8", 1, "u8 label map to the feature resolution", nearest_labels_case<uint8_t>});
const Register r4({"resize", "nearest_i32", 1, "i32 pseudo-labels to the feature resolution",
                   nearest_labels_case<int32_t>});
// The f32 nearest resize and its backward share the bilinear entries' setup (k_norm.cpp).

}  // namespace
}  // namespace lab
