// Reductions over dims, means and channel maxima: hand-computed values, errors, gradient
// checks in double, emulated CUDA kernels against the CPU kernels, and the GPU against the CPU.
//
// CUDA kernels run here in emulation, through their kernels::emu entry points, against
// the CPU kernels:
//   max_channels_kernel, max_channels_backward_kernel.
#include <limits>

#include "kernels/cpu/reduce.h"
#include "kernels/cuda/reduce.h"
#include "tests/emu_helpers.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3test;

namespace {
std::vector<float> iota_floats(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = float(i);
  return v;
}
}  // namespace

TEST_CASE("reduce: sum and mean over dims, values computed by hand") {
  // x[i][j][k] = 6i + 2j + k, shape [2,3,2]
  Tensor x = Tensor::from_vector(iota_floats(12), {2, 3, 2});
  CHECK(sum(x, {0}).shape() == Shape{3, 2});
  CHECK(sum(x, {0}).to_vector<float>() == std::vector<float>{6, 8, 10, 12, 14, 16});
  CHECK(sum(x, {1}).to_vector<float>() == std::vector<float>{6, 9, 24, 27});
  CHECK(sum(x, {-1}).to_vector<float>() == std::vector<float>{1, 5, 9, 13, 17, 21});
  // A set with a gap (dims 0 and 2) takes two passes.
  CHECK(sum(x, {0, 2}).to_vector<float>() == std::vector<float>{14, 22, 30});
  CHECK(sum(x, {2, 0}, true).shape() == Shape{1, 3, 1});
  CHECK(sum(x, {1, 2}).to_vector<float>() == std::vector<float>{15, 51});
  Tensor all = sum(x, {0, 1, 2});
  CHECK(all.rank() == 0);
  CHECK(all.item() == 66);
  CHECK(sum(x, {0, -2, 2}, true).shape() == Shape{1, 1, 1});
  CHECK(mean(x).item() == doctest::Approx(5.5).epsilon(1e-7));
  CHECK(mean(x, {0, 2}).to_vector<float>() == std::vector<float>{3.5f, 5.5f, 7.5f});
  CHECK(mean(x, {1}, true).shape() == Shape{2, 1, 2});
  CHECK(mean(x, {1}, true).to_vector<float>() == std::vector<float>{2, 3, 8, 9});
}

TEST_CASE("reduce: max_channels and argmax_channels by hand; ties take the first index") {
  Tensor x = Tensor::from_vector<float>({1, 5, 2,  /**/ 3, 3, -1,  /**/ -4, -2, -2,  /**/ 0, 0, 7}, {2, 2, 3});
  CHECK(max_channels(x).shape() == Shape{2, 2});
  CHECK(max_channels(x).to_vector<float>() == std::vector<float>{5, 3, -2, 7});
  CHECK(argmax_channels(x).dtype() == DType::i32);
  CHECK(argmax_channels(x).to_vector<int32_t>() == std::vector<int32_t>{1, 0, 1, 2});
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor n = Tensor::from_vector<float>({1, nan, 9}, {3});
  CHECK(argmax_channels(n).item() == 1);  // NaN propagates, as in PyTorch
  CHECK(std::isnan(max_channels(n).item()));
  // The gradient goes to the first maximal index only.
  Tensor t = Tensor::from_vector<double>({2, 7, 7, 1}, {1, 4}).set_requires_grad();
  sum(mul(max_channels(t), 3.0)).backward();
  CHECK(t.grad().to_vector<double>() == std::vector<double>{0, 3, 0, 0});
}

TEST_CASE("reduce: bad dims and shapes name the op and the tensor") {
  Tensor x = Tensor::zeros({2, 3});
  CHECK_THROWS_WITH_AS(sum(x, {2}), doctest::Contains("sum: dim 2 out of range for f32[2,3] cpu"), Error);
  CHECK_THROWS_WITH_AS(sum(x, {1, -1}), doctest::Contains("sum: dim -1 given twice"), Error);
  CHECK_THROWS_WITH_AS(mean(x, {}), doctest::Contains("mean: no dims given"), Error);
  CHECK_THROWS_WITH_AS(max_channels(Tensor::scalar(1)), doctest::Contains("max_channels: needs a last"), Error);
  CHECK_THROWS_WITH_AS(argmax_channels(Tensor::zeros({4, 0})), doctest::Contains("argmax_channels"), Error);
  CHECK_THROWS_WITH_AS(argmax_channels(Tensor::zeros({4}, DType::i32)), doctest::Contains("expected a float"), Error);
}

TEST_CASE("reduce: gradient checks in double") {
  const Shape s{2, 3, 4, 5};
  Tensor x = random_tensor(s, 41, DType::f64);
  auto weighted = [](const Tensor& t, uint32_t seed) {
    return sum(mul(t, random_tensor(t.shape(), seed, DType::f64)));
  };
  for (const std::vector<int>& dims : std::vector<std::vector<int>>{{1, 2}, {0, 2}, {-1}, {0, 3}, {0, 1, 2, 3}}) {
    CHECK(gradcheck("sum dims", [&](auto& in) { return weighted(sum(in[0], dims), 42); }, {x}));
    CHECK(gradcheck("mean dims keepdim", [&](auto& in) { return weighted(mean(in[0], dims, true), 43); }, {x}));
  }
  CHECK(gradcheck("mean all", [&](auto& in) { return mul(mean(in[0]), 2.5); }, {x}));
  // Distinct values at least 1e-3 apart, so +-eps never changes the maximal index.
  std::vector<double> v(static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) v[i] = double((i * 37) % x.numel()) * 1e-2;
  CHECK(gradcheck("max_channels", [&](auto& in) { return weighted(max_channels(in[0]), 44); },
                  {Tensor::from_vector(v, s)}));
}

namespace {
// Rows with ties and a NaN, so the first-index rule and NaN propagation are compared too.
std::vector<float> rows_with_ties(int64_t rows, int64_t C, uint32_t seed) {
  auto x = random_floats(rows * C, seed);
  for (int64_t r = 0; r < rows; ++r) {
    float* p = x.data() + r * C;
    if (r % 3 == 1 && C > 2) p[C - 1] = p[C / 2] = 2.f;  // tie between two positions
    if (r % 11 == 5) p[r % C] = std::numeric_limits<float>::quiet_NaN();
  }
  return x;
}
}  // namespace

// The per-pixel argmax over 19 (tiny) and 3 (edge) classes, with ties, is the kernel lab's
// reduce/max_channels entry (bench/lab/k_reduce.cpp); below, what its scales miss.
TEST_CASE("reduce kernels: emulated max_channels and its backward edge cases match the CPU (NaN, one channel, a warp of channels or more, argmax only)") {
  struct R { int64_t rows, C; };
  for_each_fiber_order([](const char* order) {
    // One element; C at, just above and far above a warp (32, 33, 256 features); rows not a
    // multiple of 8 rows per block. Rows hold ties and NaNs.
    for (R r : {R{1, 1}, R{13, 32}, R{9, 33}, R{300, 256}}) {
      const std::string tag = std::string(order) + " [" + std::to_string(r.rows) + "," + std::to_string(r.C) + "]";
      auto x = rows_with_ties(r.rows, r.C, 51);
      std::vector<float> vw(r.rows), vg(r.rows, -99.f);
      std::vector<int32_t> iw(r.rows), ig(r.rows, -1);
      kernels::cpu::max_channels(x.data(), vw.data(), iw.data(), r.rows, r.C);
      kernels::emu::max_channels_f32(x.data(), vg.data(), ig.data(), r.rows, r.C);
      CHECK(close_arrays("max " + tag, vg.data(), vw.data(), r.rows, 0, 0));
      CHECK(close_arrays("argmax " + tag, ig.data(), iw.data(), r.rows, 0, 0));
      std::vector<int32_t> only(r.rows, -1);  // argmax alone (vals null)
      kernels::emu::max_channels_f32(x.data(), nullptr, only.data(), r.rows, r.C);
      CHECK(only == iw);
      auto g = random_floats(r.rows, 52);
      std::vector<float> gw(r.rows * r.C), gg(r.rows * r.C, -99.f);
      kernels::cpu::max_channels_backward(g.data(), iw.data(), gw.data(), r.rows, r.C);
      kernels::emu::max_channels_backward_f32(g.data(), iw.data(), gg.data(), r.rows, r.C);
      CHECK(close_arrays("max backward " + tag, gg.data(), gw.data(), r.rows * r.C, 0, 0));
    }
  });
}

GPU_TEST_CASE("gpu: reductions over dims and channel maxima match the CPU") {
  const Shape s{2, 33, 65, 19};
  Tensor a = Tensor::from_vector(rows_with_ties(2 * 33 * 65, 19, 61), s), ga = a.cuda();
  CHECK(close_tensors("sum {1,2}", sum(ga, {1, 2}), sum(a, {1, 2}), 1e-3, 1e-5));
  CHECK(close_tensors("sum {0,2}", sum(ga, {0, 2}), sum(a, {0, 2}), 1e-3, 1e-5));
  CHECK(close_tensors("mean {-1}", mean(ga, {-1}, true), mean(a, {-1}, true), 1e-5, 1e-5));
  CHECK(close_tensors("max_channels", max_channels(ga), max_channels(a), 0, 0));
  CHECK(close_tensors("argmax_channels", argmax_channels(ga), argmax_channels(a), 0, 0));
  Tensor x = random_tensor(s, 62), w = random_tensor({2, 33, 65}, 63);
  Tensor gx = x.cuda().set_requires_grad(), cx = x.clone().set_requires_grad();
  sum(mul(max_channels(gx), w.cuda())).backward();
  sum(mul(max_channels(cx), w)).backward();
  CHECK(close_tensors("max_channels grad", gx.grad(), cx.grad(), 0, 0));
}
