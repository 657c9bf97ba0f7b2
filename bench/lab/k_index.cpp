// Kernel lab: the indexing kernels on the contrastive branch of the reference protocol
// (16 images, OS8 features 33 x 65): the channel concat of the layer4 features (copy_rows),
// the gather of the sampled anchors' 256-d embeddings out of the N*h*w pixel rows and its
// backward scatter-add, and the l2 normalization of the projection head's rows (forward and
// backward).
#include <algorithm>
#include <memory>

#include "bench/lab/lab.h"
#include "kernels/cpu/index.h"
#include "kernels/cuda/index.h"

namespace lab {
namespace {

// Width of the projection head's embeddings (model.proj_dim) at the reference shapes; the
// small scales use their channel count instead (131: not a multiple of a warp; 257: one past
// a block of 256).
int64_t proj_dim(const Scale& s) { return s.small ? s.C : 256; }
int64_t pixels(const Scale& s) { return s.N * s.h * s.w; }  // rows of the flattened layer4 maps

// The sampled anchors: K pseudo-random pixel rows out of R. Distinct while K <= R (7919 is a
// prime not dividing R), as the sampler's are at the reference shapes; the small scales have
// more anchors than pixels, so some rows repeat there.
std::vector<int32_t> anchor_rows(int64_t K, int64_t R) {
  std::vector<int32_t> idx(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) idx[size_t(k)] = int32_t((k * 7919 + 13) % R);
  return idx;
}

// Concat along channels: each pixel's C layer4 channels written into rows 2C wide, at
// channel C (the second piece of the concat). The row gaps keep their values; the check
// compares the whole destination, gaps included, bit for bit.
Case copy_rows_case(Backend b, const Scale& s) {
  const int64_t rows = pixels(s), len = s.C, dst_stride = 2 * s.C;
  struct State {
    Buf<float> src, dst;
  };
  auto st = std::make_shared<State>();
  State& v = *st;
  v.src = Buf<float>(b, rows * len);
  fill_uniform(v.src.vec(), -1.f, 1.f, 1);
  v.dst = Buf<float>(b, rows * dst_stride);
  fill_uniform(v.dst.vec(), -1.f, 1.f, 2);
  v.src.upload(), v.dst.upload();
  return make_case(
      b, dims({s.N, s.h, s.w, len}) + " -> " + dims({s.N, s.h, s.w, dst_stride}), double(2 * rows * len) * 4,
      [&v, st, rows, len, dst_stride] {
        kernels::cpu::copy_rows(v.src.host(), len, v.dst.host() + len, dst_stride, rows, len);
      },
      [&v, st, rows, len, dst_stride, b] {
        LAB_DEV(b, copy_rows_f32, v.src.dev(), len, v.dst.dev() + len, dst_stride, rows, len);
      },
      [&v, st] { return compare_exact("dst", v.dst.download(), v.dst.vec()); });
}

// Gather and scatter share the shapes: x [R, D] (the embeddings of every pixel), idx [K],
// rows [K, D] (the anchors' embeddings), and the device's bad-index flag, zeroed once here:
// the indices are valid, so it must stay 0.
struct RowsState {
  Buf<float> x, rows;
  Buf<int32_t> idx, bad;
  int64_t R = 0, K = 0, D = 0;
};

std::shared_ptr<RowsState> rows_state(Backend b, const Scale& s) {
  auto st = std::make_shared<RowsState>();
  RowsState& v = *st;
  v.R = pixels(s), v.K = s.anchors, v.D = proj_dim(s);
  v.x = Buf<float>(b, v.R * v.D);
  fill_uniform(v.x.vec(), -1.f, 1.f, 3);
  v.rows = Buf<float>(b, v.K * v.D);
  fill_uniform(v.rows.vec(), -1.f, 1.f, 4);
  v.idx = Buf<int32_t>(b, v.K);
  v.idx.vec() = anchor_rows(v.K, v.R);
  v.bad = Buf<int32_t>(b, 1);
  v.x.upload(), v.rows.upload(), v.idx.upload(), v.bad.upload();
  return st;
}

std::string bad_cmp(RowsState& v) { return compare_exact("bad", v.bad.download(), std::vector<int32_t>{0}); }

// Reads the K gathered rows of x and the indices, writes rows.
Case gather_rows_case(Backend b, const Scale& s) {
  auto st = rows_state(b, s);
  RowsState& v = *st;
  return make_case(
      b, dims({v.R, v.D}) + " [" + std::to_string(v.K) + "]", double(2 * v.K * v.D + v.K) * 4,
      [&v, st] { kernels::cpu::gather_rows(v.x.host(), v.idx.host(), v.rows.host(), v.K, v.D); },
      [&v, st, b] { LAB_DEV(b, gather_rows_f32, v.x.dev(), v.idx.dev(), v.rows.dev(), v.R, v.K, v.D, v.bad.dev()); },
      [&v, st] { return all_of({compare_exact("out", v.rows.download(), v.rows.vec()), bad_cmp(v)}); });
}

// The gather's backward: the anchors' gradients added into zeroed [R, D] rows, as the op does
// (zeros, then the kernel): both are part of a run. Reads rows and idx, writes x.
Case scatter_add_rows_case(Backend b, const Scale& s) {
  auto st = rows_state(b, s);
  RowsState& v = *st;
  // A row indexed by several anchors sums them with atomicAdd in any order: with three or
  // more addends of magnitude <= 1 the result can differ in its last bits.
  constexpr double kRtol = 1e-6, kAtol = 1e-6;
  return make_case(
      b, dims({v.K, v.D}) + " -> " + dims({v.R, v.D}), double(v.K * v.D + v.K + v.R * v.D) * 4,
      [&v, st] {
        std::fill(v.x.vec().begin(), v.x.vec().end(), 0.f);
        kernels::cpu::scatter_add_rows(v.rows.host(), v.idx.host(), v.x.host(), v.K, v.D);
      },
      [&v, st, b] {
        dev_memset(b, v.x.dev(), 0, v.x.bytes());
        LAB_DEV(b, scatter_add_rows_f32, v.rows.dev(), v.idx.dev(), v.x.dev(), v.R, v.K, v.D, v.bad.dev());
      },
      [&v, st] { return all_of({compare("out", v.x.download(), v.x.vec(), kRtol, kAtol), bad_cmp(v)}); });
}

// The CPU sums a row's squares (and g . x) in double, the kernel in f32 across a warp in
// another order: ~sqrt(D) * 2^-24 relative in the norm. Outputs are ~1 / sqrt(D) (forward)
// and ~0.1 (backward, g / n - x p / n^3 cancels), so the bound is mostly absolute: at the
// full shape the worst differences are 1.5e-8 (forward) and 3e-8 (backward).
constexpr double kNormRtol = 1e-5, kNormAtol = 1e-6;
constexpr float kNormEps = 1e-12f;  // l2_normalize's default

struct NormState {
  Buf<float> x, g, y;
  int64_t rows = 0, D = 0;
};

// Embeddings of every pixel, [N*h*w, D]; g is the upstream gradient (backward only).
std::shared_ptr<NormState> norm_state(Backend b, const Scale& s, bool backward) {
  auto st = std::make_shared<NormState>();
  NormState& v = *st;
  v.rows = pixels(s), v.D = proj_dim(s);
  v.x = Buf<float>(b, v.rows * v.D);
  fill_uniform(v.x.vec(), -1.f, 1.f, 5);
  v.x.upload();
  if (backward) {
    v.g = Buf<float>(b, v.rows * v.D);
    fill_uniform(v.g.vec(), -1.f, 1.f, 6);
    v.g.upload();
  }
  v.y = Buf<float>(b, v.rows * v.D);
  return st;
}

Case l2_normalize_case(Backend b, const Scale& s) {
  auto st = norm_state(b, s, false);
  NormState& v = *st;
  return make_case(
      b, dims({s.N, s.h, s.w, v.D}), double(2 * v.rows * v.D) * 4,
      [&v, st] { kernels::cpu::l2_normalize_rows(v.x.host(), v.y.host(), v.rows, v.D, double(kNormEps)); },
      [&v, st, b] { LAB_DEV(b, l2_normalize_rows_f32, v.x.dev(), v.y.dev(), v.rows, v.D, kNormEps); },
      [&v, st] { return compare("y", v.y.download(), v.y.vec(), kNormRtol, kNormAtol); });
}

// Reads x and g, writes gx.
Case l2_normalize_backward_case(Backend b, const Scale& s) {
  auto st = norm_state(b, s, true);
  NormState& v = *st;
  return make_case(
      b, dims({s.N, s.h, s.w, v.D}), double(3 * v.rows * v.D) * 4,
      [&v, st] {
        kernels::cpu::l2_normalize_rows_backward(v.x.host(), v.g.host(), v.y.host(), v.rows, v.D, double(kNormEps));
      },
      [&v, st, b] { LAB_DEV(b, l2_normalize_rows_backward_f32, v.x.dev(), v.g.dev(), v.y.dev(), v.rows, v.D, kNormEps); },
      [&v, st] { return compare("gx", v.y.download(), v.y.vec(), kNormRtol, kNormAtol); });
}

const Register r1({"index", "copy_rows", 1, "strided row copy: layer4 channels into a concat 2C wide", copy_rows_case});
const Register r2({"index", "gather_rows", 1, "the anchors' 256-d embeddings out of N*h*w pixel rows, bad flag",
                   gather_rows_case});
const Register r3({"index", "scatter_add_rows", 1, "zero, then atomic add of the anchors' rows (gather's backward)",
                   scatter_add_rows_case});
const Register r4({"normalize", "l2_normalize", 1, "projection head rows / ||row||, one warp a row", l2_normalize_case});
const Register r5({"normalize", "l2_normalize_backward", 1, "gradient of l2_normalize, one warp a row",
                   l2_normalize_backward_case});

}  // namespace
}  // namespace lab
