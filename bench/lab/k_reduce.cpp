// Kernel lab: reductions of the reference protocol. sum_mid over the N*h*w pixels of the
// layer4 features per channel (BatchNorm's statistics, [1, 16*33*65, 2048]) and its adjoint
// broadcast_mid; sum_mid with inner 1 over the H*W pixels of each image (the kept fraction of
// the DCRS mask is such a sum); max_channels, the per-pixel max and argmax over the 19 classes
// of the upsampled logits (16 x 256 x 512), and its backward.
#include <algorithm>
#include <cmath>
#include <memory>

#include "bench/lab/lab.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cuda/reduce.h"

namespace lab {
namespace {

// The CPU accumulates in double, the kernels in f32 (per-thread running sums over a split of
// mid, then a tree, then the splits' partials in order: kernels/reduce_math.h sum_splits). On
// non-negative inputs the relative error grows like sqrt(terms) * 2^-24, about 1e-6 at worst.
// A dropped or doubled term moves a sum by ~1 / mid relative (3e-5 at the full shape, more at
// the small ones), above the tolerance.
constexpr double kSumRtol = 1e-5, kSumAtol = 0;

struct SumState {
  Buf<float> x, out, scratch;  // scratch: the CUDA sum's partials (kernels::sum_mid_scratch)
  int64_t outer = 0, mid = 0, inner = 0;
};

// x [outer, mid, inner] uniform in [0, 1) (post-ReLU activations, confidences): sums do not
// cancel, so the tolerance is relative.
std::shared_ptr<SumState> sum_state(Backend b, int64_t outer, int64_t mid, int64_t inner) {
  auto st = std::make_shared<SumState>();
  SumState& v = *st;
  v.outer = outer, v.mid = mid, v.inner = inner;
  v.x = Buf<float>(b, outer * mid * inner);
  fill_uniform(v.x.vec(), 0.f, 1.f, 1);
  v.x.upload();
  v.out = Buf<float>(b, outer * inner);
  v.scratch = Buf<float>(b, std::max<int64_t>(kernels::sum_mid_scratch(outer, mid, inner), 1));
  return st;
}

Case sum_case(Backend b, std::shared_ptr<SumState> st) {
  SumState& v = *st;
  return make_case(
      b, dims({v.outer, v.mid, v.inner}), double(v.outer * v.mid * v.inner + v.outer * v.inner) * 4,
      [&v, st] { kernels::cpu::sum_mid(v.x.host(), v.out.host(), v.outer, v.mid, v.inner); },
      [&v, st, b] { LAB_DEV(b, sum_mid_f32, v.x.dev(), v.out.dev(), v.outer, v.mid, v.inner, v.scratch.dev()); },
      [&v, st] { return compare("out", v.out.download(), v.out.vec(), kSumRtol, kSumAtol); });
}

// Per-channel sums over every pixel: [1, N*h*w, C] (sum_cols_kernel).
Case sum_mid_case(Backend b, const Scale& s) { return sum_case(b, sum_state(b, 1, s.N * s.h * s.w, s.C)); }
// Per-class sums over every pixel: [1, N*h*w, classes], the bias gradient of an ASPP branch
// (few columns: the sum is split over blocks along the pixels, then the splits added).
Case sum_mid_classes_case(Backend b, const Scale& s) {
  return sum_case(b, sum_state(b, 1, s.N * s.h * s.w, s.classes));
}
// Per-image sums over H*W pixels: [N, H*W, 1] (sum_rows_kernel, one block an image).
Case sum_mid_rows_case(Backend b, const Scale& s) { return sum_case(b, sum_state(b, s.N, s.H * s.W, 1)); }

// The adjoint of the per-channel sum: the [C] gradient copied to each of the N*h*w pixels.
// A copy: bit-exact.
Case broadcast_mid_case(Backend b, const Scale& s) {
  const int64_t mid = s.N * s.h * s.w, C = s.C;
  auto st = std::make_shared<SumState>();
  SumState& v = *st;
  v.x = Buf<float>(b, C);
  fill_uniform(v.x.vec(), -1.f, 1.f, 2);
  v.x.upload();
  v.out = Buf<float>(b, mid * C);
  return make_case(
      b, dims({1, mid, C}), double(C + mid * C) * 4,
      [&v, st, mid, C] { kernels::cpu::broadcast_mid(v.x.host(), v.out.host(), 1, mid, C); },
      [&v, st, mid, C, b] { LAB_DEV(b, broadcast_mid_f32, v.x.dev(), v.out.dev(), 1, mid, C); },
      [&v, st] { return compare_exact("out", v.out.download(), v.out.vec()); });
}

struct MaxState {
  Buf<float> x, vals, g;
  Buf<int32_t> idx;
  int64_t rows = 0, C = 0;
};

// Logits of every pixel, [N*H*W, classes], in [-4, 4) rounded to multiples of 1/8: many rows
// hold a tie for their maximum, so the first-index rule is compared too. Max and argmax are
// selections: bit-exact.
Case max_channels_case(Backend b, const Scale& s) {
  auto st = std::make_shared<MaxState>();
  MaxState& v = *st;
  v.rows = s.N * s.H * s.W, v.C = s.classes;
  v.x = Buf<float>(b, v.rows * v.C);
  fill_uniform(v.x.vec(), -4.f, 4.f, 3);
  for (float& e : v.x.vec()) e = std::round(e * 8.f) / 8.f;
  v.x.upload();
  v.vals = Buf<float>(b, v.rows), v.idx = Buf<int32_t>(b, v.rows);
  return make_case(
      b, dims({s.N, s.H, s.W, v.C}), double(v.rows * v.C + 2 * v.rows) * 4,
      [&v, st] { kernels::cpu::max_channels(v.x.host(), v.vals.host(), v.idx.host(), v.rows, v.C); },
      [&v, st, b] { LAB_DEV(b, max_channels_f32, v.x.dev(), v.vals.dev(), v.idx.dev(), v.rows, v.C); },
      [&v, st] {
        return all_of({compare_exact("vals", v.vals.download(), v.vals.vec()),
                       compare_exact("idx", v.idx.download(), v.idx.vec())});
      });
}

// gx [N*H*W, classes] from g [N*H*W] and the argmax idx: one value a row, zeros elsewhere.
Case max_channels_backward_case(Backend b, const Scale& s) {
  auto st = std::make_shared<MaxState>();
  MaxState& v = *st;
  v.rows = s.N * s.H * s.W, v.C = s.classes;
  v.g = Buf<float>(b, v.rows);
  fill_uniform(v.g.vec(), -1.f, 1.f, 4);
  v.idx = Buf<int32_t>(b, v.rows);
  std::vector<float> u(static_cast<size_t>(v.rows));
  fill_uniform(u, 0.f, 1.f, 5);
  for (int64_t r = 0; r < v.rows; ++r) v.idx.vec()[size_t(r)] = int32_t(u[size_t(r)] * float(v.C)) % int32_t(v.C);
  v.g.upload(), v.idx.upload();
  v.x = Buf<float>(b, v.rows * v.C);  // gx
  return make_case(
      b, dims({s.N, s.H, s.W, v.C}), double(2 * v.rows + v.rows * v.C) * 4,
      [&v, st] { kernels::cpu::max_channels_backward(v.g.host(), v.idx.host(), v.x.host(), v.rows, v.C); },
      [&v, st, b] { LAB_DEV(b, max_channels_backward_f32, v.g.dev(), v.idx.dev(), v.x.dev(), v.rows, v.C); },
      [&v, st] { return compare_exact("gx", v.x.download(), v.x.vec()); });
}

const Register r1({"reduce", "sum_mid", 1, "per-channel sums over N*h*w pixels, [1, M, C] (sum_cols_kernel)",
                   sum_mid_case});
const Register r1b({"reduce", "sum_mid_classes", 1,
                    "per-class sums over N*h*w pixels, [1, M, 19]: an ASPP bias gradient (split sums)",
                    sum_mid_classes_case});
const Register r2({"reduce", "sum_mid_rows", 1, "per-image sums over H*W pixels, [N, H*W, 1] (sum_rows_kernel)",
                   sum_mid_rows_case});
const Register r3({"reduce", "broadcast_mid", 1, "[C] to [1, N*h*w, C], the adjoint of sum_mid", broadcast_mid_case});
const Register r4({"reduce", "max_channels", 1, "max and argmax over 19 classes per pixel, one warp a row",
                   max_channels_case});
const Register r5({"reduce", "max_channels_backward", 1, "g[r] to the argmax channel, zeros elsewhere",
                   max_channels_backward_case});

}  // namespace
}  // namespace lab
