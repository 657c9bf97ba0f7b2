// Indexing ops (concat, slice, gather_rows, scatter_add_rows) and l2_normalize: hand values,
// coordinate-wise references along every dim, gradient checks in double, errors, the
// emulated CUDA kernels against the CPU kernels, and the GPU against the CPU.
//
// CUDA kernels run here in emulation, through their kernels::emu entry points, against
// the CPU kernels:
//   copy_rows_kernel, gather_rows_kernel, scatter_add_rows_kernel (each for f32 and bf16),
//   l2_normalize_kernel, l2_normalize_backward_kernel.
#include <cmath>

#include "core/deferred_checks.h"
#include "kernels/cpu/index.h"
#include "kernels/cuda/index.h"
#include "tests/bf16_helpers.h"
#include "tests/emu_helpers.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3test;

namespace {
template <class T> std::vector<T> vec(const Tensor& t) { return t.cpu().to_vector<T>(); }

// Row-major coordinates of flat index i in shape s.
std::vector<int64_t> coords(int64_t i, const Shape& s) {
  std::vector<int64_t> c(s.size());
  for (int k = int(s.size()) - 1; k >= 0; --k) { c[k] = i % s[k]; i /= s[k]; }
  return c;
}
int64_t flat(const std::vector<int64_t>& c, const Shape& s) {
  int64_t i = 0;
  for (size_t k = 0; k < s.size(); ++k) i = i * s[k] + c[k];
  return i;
}
// concat by its definition: output element at coordinate c comes from the input whose range
// along d contains c[d], at c[d] minus that range's start.
std::vector<double> ref_concat(const std::vector<Tensor>& xs, int d, const Shape& out) {
  std::vector<double> r(shape_numel(out));
  for (int64_t i = 0; i < shape_numel(out); ++i) {
    auto c = coords(i, out);
    size_t k = 0;
    while (c[d] >= xs[k].shape()[d]) c[d] -= xs[k++].shape()[d];
    r[i] = as_doubles(xs[k])[flat(c, xs[k].shape())];
  }
  return r;
}
std::vector<double> ref_slice(const Tensor& x, int d, int64_t start, const Shape& out) {
  std::vector<double> r(shape_numel(out));
  auto xv = as_doubles(x);
  for (int64_t i = 0; i < shape_numel(out); ++i) {
    auto c = coords(i, out);
    c[d] += start;
    r[i] = xv[flat(c, x.shape())];
  }
  return r;
}
}  // namespace

TEST_CASE("index: concat and slice, values computed by hand") {
  Tensor a = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  CHECK(vec<float>(concat({a, Tensor::from_vector<float>({5, 6}, {1, 2})}, 0)) == std::vector<float>{1, 2, 3, 4, 5, 6});
  Tensor c = concat({a, Tensor::from_vector<float>({5, 6}, {2, 1})}, 1);
  CHECK(c.shape() == Shape{2, 3});
  CHECK(vec<float>(c) == std::vector<float>{1, 2, 5, 3, 4, 6});
  CHECK(vec<float>(concat({a, Tensor::from_vector<float>({5, 6}, {2, 1})}, -1)) == std::vector<float>{1, 2, 5, 3, 4, 6});
  // NHWC channels (the decoder's concat): two pixels with 2 + 1 channels.
  Tensor ch = concat({Tensor::from_vector<float>({1, 2, 3, 4}, {1, 1, 2, 2}), Tensor::from_vector<float>({9, 8}, {1, 1, 2, 1})}, 3);
  CHECK(ch.shape() == Shape{1, 1, 2, 3});
  CHECK(vec<float>(ch) == std::vector<float>{1, 2, 9, 3, 4, 8});
  // H of a batch of 2: rows of each sample interleave.
  Tensor h = concat({Tensor::from_vector<float>({1, 2}, {2, 1, 1, 1}), Tensor::from_vector<float>({3, 4}, {2, 1, 1, 1})}, 1);
  CHECK(h.shape() == Shape{2, 2, 1, 1});
  CHECK(vec<float>(h) == std::vector<float>{1, 3, 2, 4});
  CHECK(vec<int32_t>(concat({Tensor::from_vector<int32_t>({7}, {1}), Tensor::from_vector<int32_t>({-1, 5}, {2})}, 0)) ==
        std::vector<int32_t>{7, -1, 5});
  CHECK(vec<uint8_t>(concat({Tensor::from_vector<uint8_t>({1, 2}, {2, 1}), Tensor::from_vector<uint8_t>({3, 4}, {2, 1})}, 1)) ==
        std::vector<uint8_t>{1, 3, 2, 4});

  Tensor x = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3});
  CHECK(vec<float>(slice(x, 1, 1, 2)) == std::vector<float>{1, 2, 4, 5});
  CHECK(vec<float>(slice(x, 0, 1, 1)) == std::vector<float>{3, 4, 5});
  CHECK(vec<float>(slice(x, -1, 2, 1)) == std::vector<float>{2, 5});
  CHECK(slice(x, 1, 3, 0).shape() == Shape{2, 0});
  // The backward of a slice pads with zeros.
  Tensor xd = x.cast(DType::f64).set_requires_grad();
  sum(slice(xd, 1, 1, 1)).backward();
  CHECK(xd.grad().to_vector<double>() == std::vector<double>{0, 1, 0, 0, 1, 0});
}

TEST_CASE("index: concat and slice along every dim match a coordinate-wise reference") {
  const Shape base{2, 3, 4, 5};
  for (int d = 0; d < 4; ++d) {
    std::vector<Tensor> xs;
    for (int k = 0; k < 3; ++k) {
      Shape s = base;
      s[d] = k + 1;  // pieces of 1, 2 and 3 entries along d
      xs.push_back(random_tensor(s, 40 + 10 * d + k));
    }
    Tensor c = concat(xs, d);
    Shape want_shape = base;
    want_shape[d] = 6;
    REQUIRE(c.shape() == want_shape);
    auto want = ref_concat(xs, d, want_shape);
    CHECK(close_arrays("concat dim " + std::to_string(d), as_doubles(c).data(), want.data(), c.numel(), 0, 0));
    for (int64_t start = 0; start < 6; ++start)
      for (int64_t len = 0; start + len <= 6; ++len) {
        Tensor s = slice(c, d, start, len);
        auto ws = ref_slice(c, d, start, s.shape());
        CHECK(s.shape()[d] == len);
        CHECK(close_arrays("slice dim " + std::to_string(d), as_doubles(s).data(), ws.data(), s.numel(), 0, 0));
      }
    // Slicing the pieces back out undoes the concat.
    CHECK(close_tensors("round trip", slice(c, d, 1, 2), xs[1], 0, 0));
  }
}

TEST_CASE("index: concat and slice gradient checks in double, every dim") {
  const Shape base{2, 3, 2, 3};
  for (int d = 0; d < 4; ++d) {
    Shape s1 = base, s2 = base;
    s2[d] = 1;
    Tensor a = random_tensor(s1, 60 + d, DType::f64), b = random_tensor(s2, 70 + d, DType::f64);
    Shape so = base;
    so[d] += 1;
    Tensor w = random_tensor(so, 80 + d, DType::f64);
    CHECK(gradcheck("concat dim " + std::to_string(d), [&](auto& in) { return sum(mul(concat({in[0], in[1]}, d), w)); },
                    {a, b}));
    Tensor ws = random_tensor([&] { Shape t = base; t[d] = 1; return t; }(), 90 + d, DType::f64);
    CHECK(gradcheck("slice dim " + std::to_string(d), [&](auto& in) { return sum(mul(slice(in[0], d, 1, 1), ws)); }, {a}));
  }
  // A tensor used twice in one concat gets both gradients.
  Tensor a = random_tensor({2, 3}, 99, DType::f64), w = random_tensor({2, 6}, 98, DType::f64);
  CHECK(gradcheck("concat twice", [&](auto& in) { return sum(mul(concat({in[0], in[0]}, 1), w)); }, {a}));
}

TEST_CASE("index: concat and slice errors name the op and the shapes") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({3, 3});
  CHECK_THROWS_WITH_AS(concat({a, b}, 1), doctest::Contains("concat along dim 1: tensors differ outside that dim: f32[2,3] cpu, f32[3,3] cpu"), Error);
  CHECK(concat({a, b}, 0).shape() == Shape{5, 3});
  CHECK_THROWS_WITH_AS(concat({a, Tensor::zeros({2, 3}, DType::f64)}, 0), doctest::Contains("concat along dim 0"), Error);
  CHECK_THROWS_WITH_AS(concat({a, Tensor::zeros({2, 3, 1})}, 0), doctest::Contains("tensors differ"), Error);
  CHECK_THROWS_WITH_AS(concat({a}, 2), doctest::Contains("concat: dim 2 out of range for f32[2,3] cpu"), Error);
  CHECK_THROWS_WITH_AS(concat({}, 0), doctest::Contains("concat: no tensors"), Error);
  CHECK_THROWS_WITH_AS(slice(a, 1, 2, 2), doctest::Contains("slice(dim 1, start 2, length 2): out of range for f32[2,3] cpu"), Error);
  CHECK_THROWS_WITH_AS(slice(a, -3, 0, 1), doctest::Contains("slice: dim -3 out of range"), Error);
  CHECK_THROWS_WITH_AS(slice(Tensor::scalar(1), 0, 0, 1), doctest::Contains("slice: dim 0 out of range"), Error);
}

TEST_CASE("index: gather_rows and scatter_add_rows, values by hand with duplicate indices") {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor idx = Tensor::from_vector<int32_t>({2, 0, 2}, {3});
  Tensor g = gather_rows(x, idx);
  CHECK(g.shape() == Shape{3, 2});
  CHECK(vec<float>(g) == std::vector<float>{5, 6, 1, 2, 5, 6});
  // Rows of an NHWC map: [1,2,2,1] is 4 pixels of 1 channel.
  CHECK(vec<float>(gather_rows(Tensor::from_vector<float>({7, 8, 9, 10}, {1, 2, 2, 1}), Tensor::from_vector<int32_t>({3, 1}, {2}))) ==
        std::vector<float>{10, 8});
  Tensor src = Tensor::from_vector<float>({1, 1, 2, 2, 3, 3}, {3, 2});
  Tensor s = scatter_add_rows(src, idx, 4);
  CHECK(s.shape() == Shape{4, 2});
  CHECK(vec<float>(s) == std::vector<float>{2, 2, 0, 0, 4, 4, 0, 0});  // row 2 = [1,1] + [3,3]
  CHECK(gather_rows(x, Tensor::zeros({0}, DType::i32)).shape() == Shape{0, 2});
  // Backward of a gather with a repeated index: row 2 collects two gradients.
  Tensor xd = x.cast(DType::f64).set_requires_grad();
  sum(gather_rows(xd, idx)).backward();
  CHECK(xd.grad().to_vector<double>() == std::vector<double>{1, 1, 0, 0, 2, 2});
}

TEST_CASE("index: gather_rows and scatter_add_rows gradient checks in double") {
  Tensor x = random_tensor({2, 3, 4}, 120, DType::f64);  // 6 rows of 4
  Tensor idx = Tensor::from_vector<int32_t>({5, 0, 5, 3, 3, 3, 1}, {7});
  Tensor w = random_tensor({7, 4}, 121, DType::f64), w2 = random_tensor({6, 4}, 122, DType::f64);
  CHECK(gradcheck("gather_rows", [&](auto& in) { return sum(mul(gather_rows(in[0], idx), w)); }, {x}));
  CHECK(gradcheck("scatter_add_rows", [&](auto& in) { return sum(mul(scatter_add_rows(in[0], idx, 6), w2)); }, {w}));
}

TEST_CASE("index: gather_rows and scatter_add_rows reject bad indices and shapes") {
  Tensor x = Tensor::zeros({3, 2});
  CHECK_THROWS_WITH_AS(gather_rows(x, Tensor::from_vector<int32_t>({0, 3}, {2})),
                       doctest::Contains("gather_rows: index idx[1] = 3 outside [0, 3) for f32[3,2] cpu"), Error);
  CHECK_THROWS_WITH_AS(gather_rows(x, Tensor::from_vector<int32_t>({-1}, {1})), doctest::Contains("idx[0] = -1 outside"), Error);
  CHECK_THROWS_WITH_AS(scatter_add_rows(x, Tensor::from_vector<int32_t>({0, 1, 5}, {3}), 5),
                       doctest::Contains("scatter_add_rows: index idx[2] = 5 outside [0, 5)"), Error);
  CHECK_THROWS_WITH_AS(gather_rows(x, Tensor::zeros({2}, DType::f32)), doctest::Contains("gather_rows"), Error);
  CHECK_THROWS_WITH_AS(gather_rows(x, Tensor::zeros({2, 1}, DType::i32)), doctest::Contains("indices must be 1-D"), Error);
  CHECK_THROWS_WITH_AS(scatter_add_rows(x, Tensor::zeros({2}, DType::i32), 4),
                       doctest::Contains("src must be [K, C] with K = 2 (the number of indices)"), Error);
}

// On a GPU each gather/scatter and each cross_entropy reads its flag back (a host sync), and
// the CPU path counts the same point; inside a DeferChecks scope (the trainer's step) neither
// waits, and the flags are read with the logged values.
TEST_CASE("deferred checks: gather, scatter and cross_entropy count their flag read, not inside DeferChecks") {
  Tensor x = Tensor::zeros({3, 2}), idx = Tensor::from_vector<int32_t>({2, 0}, {2});
  Tensor logits = Tensor::zeros({1, 1, 2, 3}), labels = Tensor::from_vector<uint8_t>({1, 255}, {1, 1, 2});
  uint64_t before = host_syncs();
  Tensor g = gather_rows(x, idx);
  Tensor s = scatter_add_rows(g, idx, 3);
  cross_entropy(logits, labels);
  CHECK(host_syncs() - before == 3);
  {
    DeferChecks defer;
    before = host_syncs();
    gather_rows(x, idx);
    scatter_add_rows(g, idx, 3);
    cross_entropy(logits, labels);
    CHECK(host_syncs() - before == 0);
    // The CPU still checks every call on the host: a bad index or label is an error at once.
    CHECK_THROWS_WITH_AS(gather_rows(x, Tensor::from_vector<int32_t>({3}, {1})), doctest::Contains("idx[0] = 3"), Error);
    CHECK_THROWS_WITH_AS(cross_entropy(logits, Tensor::from_vector<uint8_t>({7, 0}, {1, 1, 2})),
                         doctest::Contains("label 7 at [0,0,0]"), Error);
  }
  before = host_syncs();
  gather_rows(x, idx);
  CHECK(host_syncs() - before == 1);  // the scope ended
  CHECK_NOTHROW(check_deferred(Device::cpu, "at step 3"));
  CHECK_NOTHROW(check_deferred(Device::cpu, {0, 0, -1, -1}, "at step 3"));
  CHECK_THROWS_WITH_AS(check_deferred(Device::cpu, {1, 0, -1, -1}, "at a step from 2 to 5"),
                       doctest::Contains("an index was outside its range at a step from 2 to 5"), Error);
  CHECK_THROWS_WITH_AS(check_deferred(Device::cpu, {0, 0, 17, 0}, "at step 4"),
                       doctest::Contains("cross_entropy: a label that is neither a class nor ignore_index, at step 4"),
                       Error);
}

GPU_TEST_CASE("gpu: a bad index or label inside DeferChecks is reported by the next check, then cleared") {
  Tensor x = Tensor::zeros({3, 2}, DType::f32, Device::cuda);
  Tensor logits = Tensor::zeros({1, 1, 2, 3}, DType::f32, Device::cuda);
  {
    DeferChecks defer;
    CHECK_NOTHROW(gather_rows(x, Tensor::from_vector<int32_t>({0, 7}, {2}, Device::cuda)));
  }
  CHECK_THROWS_WITH_AS(check_deferred(Device::cuda, "at step 4"),
                       doctest::Contains("an index was outside its range at step 4"), Error);
  CHECK_NOTHROW(check_deferred(Device::cuda, "at step 5"));  // cleared by the report
  {
    DeferChecks defer;
    CHECK_NOTHROW(cross_entropy(logits, Tensor::from_vector<uint8_t>({9, 0}, {1, 1, 2}, Device::cuda)));
  }
  CHECK_THROWS_WITH_AS(check_deferred(Device::cuda, "at step 6"), doctest::Contains("cross_entropy: a label"), Error);
  CHECK_NOTHROW(check_deferred(Device::cuda, "at step 7"));
  CHECK_THROWS_WITH_AS(gather_rows(x, Tensor::from_vector<int32_t>({9}, {1}, Device::cuda)),
                       doctest::Contains("outside [0, 3)"), Error);  // immediate outside the scope
}

TEST_CASE("normalize: values computed by hand") {
  // [3,4] has norm 5; a zero row stays zero (divided by eps); [0.3,0.4] has norm 0.5.
  Tensor y = l2_normalize(Tensor::from_vector<float>({3, 4, 0, 0}, {2, 2}));
  CHECK(vec<float>(y) == std::vector<float>{0.6f, 0.8f, 0, 0});
  auto z = vec<double>(l2_normalize(Tensor::from_vector<double>({0.3, 0.4, 6, 8}, {1, 2, 1, 2}), 1.0));
  // eps = 1: the first row's norm 0.5 is clamped to 1; the second (10) is not.
  CHECK(z[0] == doctest::Approx(0.3).epsilon(1e-15));
  CHECK(z[1] == doctest::Approx(0.4).epsilon(1e-15));
  CHECK(z[2] == doctest::Approx(0.6).epsilon(1e-15));
  CHECK(z[3] == doctest::Approx(0.8).epsilon(1e-15));
  // Gradient by hand at x = [3,4], loss = y0: d(x0/n)/dx = (1/n - x0^2/n^3, -x0 x1/n^3) = (16/125, -12/125).
  Tensor x = Tensor::from_vector<double>({3, 4}, {2}).set_requires_grad();
  slice(l2_normalize(x), 0, 0, 1).reshape({}).backward();
  auto gx = x.grad().to_vector<double>();
  CHECK(gx[0] == doctest::Approx(16.0 / 125).epsilon(1e-14));
  CHECK(gx[1] == doctest::Approx(-12.0 / 125).epsilon(1e-14));
}

TEST_CASE("normalize: gradient checks in double, above and below eps") {
  Tensor x = random_tensor({2, 3, 2, 5}, 130, DType::f64), w = random_tensor({2, 3, 2, 5}, 131, DType::f64);
  CHECK(gradcheck("l2_normalize", [&](auto& in) { return sum(mul(l2_normalize(in[0]), w)); }, {x}));
  // Row norms: 0.05 (below eps 0.2: the denominator is the constant eps) and ~1 (above).
  Tensor m = Tensor::from_vector<double>({0.03, -0.04, 0.6, 0.8}, {2, 2}), wm = random_tensor({2, 2}, 132, DType::f64);
  CHECK(gradcheck("l2_normalize eps", [&](auto& in) { return sum(mul(l2_normalize(in[0], 0.2), wm)); }, {m}));
}

TEST_CASE("normalize: errors") {
  CHECK_THROWS_WITH_AS(l2_normalize(Tensor::scalar(1)), doctest::Contains("l2_normalize: needs at least one dim"), Error);
  CHECK_THROWS_WITH_AS(l2_normalize(Tensor::zeros({2}), 0), doctest::Contains("eps must be positive"), Error);
  CHECK_THROWS_WITH_AS(l2_normalize(Tensor::zeros({2}, DType::i32)), doctest::Contains("l2_normalize"), Error);
}

// The common configurations (the layer4 channel concat, the anchors' gather and scatter with
// valid indices, l2_normalize of embedding rows) are the kernel lab's index and normalize
// entries (bench/lab/k_index.cpp, run by test_kernel_lab.cpp); the cases below are the ones
// its scales miss.

TEST_CASE("index kernels: emulated copy_rows edge cases match the CPU (one element, a slice out of wider rows)") {
  struct Copy { int64_t rows, len, src_stride, dst_stride, src_off; };
  // One element; a slice out of wider rows (src_stride > len, at an offset).
  const Copy cases[] = {{1, 1, 1, 1, 0}, {257, 19, 40, 19, 3}};
  for_each_fiber_order([&](const char* order) {
    for (const Copy& c : cases) {
      const std::string tag = std::string(order) + " rows=" + std::to_string(c.rows) + " len=" + std::to_string(c.len);
      auto src = random_floats(c.rows * c.src_stride + c.src_off, 140);
      std::vector<float> want(c.rows * c.dst_stride, -7.f), got(want);
      kernels::cpu::copy_rows(src.data() + c.src_off, c.src_stride, want.data(), c.dst_stride, c.rows, c.len);
      kernels::emu::copy_rows_f32(src.data() + c.src_off, c.src_stride, got.data(), c.dst_stride, c.rows, c.len);
      CHECK(close_arrays("copy_rows " + tag, got.data(), want.data(), int64_t(want.size()), 0, 0));
    }
  });
}

TEST_CASE("index kernels: emulated gather and scatter edge cases match the CPU (bad and repeated indices, one row)") {
  struct G { int64_t R, K, C; };
  // One element; 300 indices into 7 rows (~43 additions to each row of the scatter).
  const G cases[] = {{1, 1, 1}, {7, 300, 19}};
  for_each_fiber_order([&](const char* order) {
    for (const G& c : cases) {
      const std::string tag = std::string(order) + " R=" + std::to_string(c.R) + " K=" + std::to_string(c.K) +
                              " C=" + std::to_string(c.C);
      auto x = random_floats(c.R * c.C, 150);
      std::vector<int32_t> idx(c.K);
      for (int64_t k = 0; k < c.K; ++k) idx[k] = int32_t((k * 7919) % c.R);
      std::vector<float> want(c.K * c.C), got(c.K * c.C, -7.f);
      int32_t bad = 0;
      kernels::cpu::gather_rows(x.data(), idx.data(), want.data(), c.K, c.C);
      kernels::emu::gather_rows_f32(x.data(), idx.data(), got.data(), c.R, c.K, c.C, &bad);
      CHECK(bad == 0);
      CHECK(close_arrays("gather_rows " + tag, got.data(), want.data(), c.K * c.C, 0, 0));
      std::vector<float> sw(c.R * c.C, 0.f), sg(sw);
      kernels::cpu::scatter_add_rows(want.data(), idx.data(), sw.data(), c.K, c.C);
      kernels::emu::scatter_add_rows_f32(want.data(), idx.data(), sg.data(), c.R, c.K, c.C, &bad);
      CHECK(bad == 0);
      // ~43 values of magnitude <= 1 summed into a row in another order: a few roundings of
      // partial sums up to ~10 apart.
      CHECK(close_arrays("scatter_add_rows " + tag, sg.data(), sw.data(), c.R * c.C, 1e-5, 1e-5));
    }
  });
  // Bad indices (-1 and R): the device kernels flag them; gather writes their rows as zeros,
  // scatter skips them.
  const int64_t R = 4, C = 3;
  auto x = random_floats(R * C, 160);
  std::vector<int32_t> idx{1, -1, 4, 3};
  std::vector<float> out(4 * C, -7.f);
  int32_t bad = 0;
  kernels::emu::gather_rows_f32(x.data(), idx.data(), out.data(), R, 4, C, &bad);
  CHECK(bad == 1);
  for (int64_t c = 0; c < C; ++c) {
    CHECK(out[c] == x[1 * C + c]);
    CHECK(out[1 * C + c] == 0.f);
    CHECK(out[2 * C + c] == 0.f);
    CHECK(out[3 * C + c] == x[3 * C + c]);
  }
  std::vector<float> acc(R * C, 0.f);
  bad = 0;
  kernels::emu::scatter_add_rows_f32(out.data(), idx.data(), acc.data(), R, 4, C, &bad);
  CHECK(bad == 1);
  for (int64_t c = 0; c < C; ++c) {
    CHECK(acc[1 * C + c] == x[1 * C + c]);
    CHECK(acc[0 * C + c] == 0.f);
  }
}

// bf16: the reference is the CPU f32 kernel on the widened inputs, narrowed once. copy and
// gather move bits, so they must match it bit for bit (the inputs hold quiet NaNs, +-0 and
// +-Inf, which a narrow of a widened bf16 keeps as they are).
TEST_CASE("index kernels: emulated bf16 copy_rows and gather_rows equal the CPU f32 kernels on widened inputs") {
  struct Copy { int64_t rows, len, src_stride, dst_stride, src_off; };
  // One element; a slice out of wider rows; rows written into wider rows (the gaps untouched).
  const Copy copies[] = {{1, 1, 1, 1, 0}, {257, 19, 40, 19, 3}, {5, 3, 7, 6, 1}};
  struct G { int64_t R, K, C; };
  const G gathers[] = {{1, 1, 1}, {7, 300, 19}};
  for_each_fiber_order([&](const char* order) {
    for (const Copy& c : copies) {
      const std::string tag = std::string(order) + " rows=" + std::to_string(c.rows) + " len=" + std::to_string(c.len);
      const auto src = random_bf16s(c.rows * c.src_stride + c.src_off, 240, -2.f, 2.f, true);
      const auto srcf = widened(src);
      std::vector<float> want(c.rows * c.dst_stride, -7.f);
      std::vector<bf16> got(want.size(), kernels::to_bf16(-7.f));
      kernels::cpu::copy_rows(srcf.data() + c.src_off, c.src_stride, want.data(), c.dst_stride, c.rows, c.len);
      kernels::emu::copy_rows_bf16(src.data() + c.src_off, c.src_stride, got.data(), c.dst_stride, c.rows, c.len);
      CHECK(same_bf16("copy_rows bf16 " + tag, got, ref_narrow(want)));
    }
    for (const G& c : gathers) {
      const std::string tag = std::string(order) + " R=" + std::to_string(c.R) + " K=" + std::to_string(c.K);
      const auto x = random_bf16s(c.R * c.C, 250, -2.f, 2.f, true);
      const auto xf = widened(x);
      std::vector<int32_t> idx(c.K);
      for (int64_t k = 0; k < c.K; ++k) idx[k] = int32_t((k * 7919) % c.R);
      std::vector<float> want(c.K * c.C);
      std::vector<bf16> got(want.size(), kernels::to_bf16(-7.f));
      int32_t bad = 0;
      kernels::cpu::gather_rows(xf.data(), idx.data(), want.data(), c.K, c.C);
      kernels::emu::gather_rows_bf16(x.data(), idx.data(), got.data(), c.R, c.K, c.C, &bad);
      CHECK(bad == 0);
      CHECK(same_bf16("gather_rows bf16 " + tag, got, ref_narrow(want)));
    }
  });
  // Bad indices (-1 and R): flagged, their rows written as +0 (bits 0).
  const int64_t R = 4, C = 3;
  const auto x = random_bf16s(R * C, 260, -2.f, 2.f, false);
  const std::vector<int32_t> idx{1, -1, 4, 3};
  std::vector<bf16> out(4 * C, kernels::to_bf16(-7.f));
  int32_t bad = 0;
  kernels::emu::gather_rows_bf16(x.data(), idx.data(), out.data(), R, 4, C, &bad);
  CHECK(bad == 1);
  for (int64_t c = 0; c < C; ++c) {
    CHECK(out[c].bits == x[1 * C + c].bits);
    CHECK(out[1 * C + c].bits == 0);
    CHECK(out[2 * C + c].bits == 0);
    CHECK(out[3 * C + c].bits == x[3 * C + c].bits);
  }
}

// scatter_add_rows_bf16 adds bf16 rows into an f32 accumulator (rounded to bf16 once, by the
// caller, after the last addition). 300 rows into 7 (~43 additions to each), in the atomic
// adds' order, which differs from the CPU's (and between the fiber orders):
//  - values k/64 with |k| <= 64: every partial sum is a multiple of 1/64 below 2^6, exact in
//    f32, so the accumulator and its rounding to bf16 must equal the CPU's bit for bit (and
//    need up to 12 significant bits: the rounding to bf16 is exercised);
//  - arbitrary bf16 values: the f32 sums differ by a few roundings of partial sums up to ~10
//    (1e-5, as the f32 kernel's check), so their roundings to bf16 are at most 1 step apart.
TEST_CASE("index kernels: emulated bf16 scatter_add_rows accumulates in f32 like the CPU f32 kernel") {
  struct G { int64_t R, K, C; };
  const G cases[] = {{1, 1, 1}, {7, 300, 19}};
  for_each_fiber_order([&](const char* order) {
    for (const G& c : cases)
      for (bool dyadic : {true, false}) {
        const std::string tag = std::string(order) + " R=" + std::to_string(c.R) + " K=" + std::to_string(c.K) +
                                (dyadic ? " k/64 values" : " arbitrary values");
        std::vector<float> v = random_floats(c.K * c.C, 270, -1.f, 1.f);
        if (dyadic)
          for (float& f : v) f = std::round(f * 64) / 64;
        const auto src = ref_narrow(v);
        const auto srcf = widened(src);
        std::vector<int32_t> idx(c.K);
        for (int64_t k = 0; k < c.K; ++k) idx[k] = int32_t((k * 7919) % c.R);
        std::vector<float> want(c.R * c.C, 0.f), got(want);
        int32_t bad = 0;
        kernels::cpu::scatter_add_rows(srcf.data(), idx.data(), want.data(), c.K, c.C);
        kernels::emu::scatter_add_rows_bf16(src.data(), idx.data(), got.data(), c.R, c.K, c.C, &bad);
        CHECK(bad == 0);
        CHECK(close_arrays("scatter_add_rows bf16 (f32 sums) " + tag, got.data(), want.data(), c.R * c.C,
                           dyadic ? 0 : 1e-5, dyadic ? 0 : 1e-5));
        CHECK(within_bf16_ulps("scatter_add_rows bf16 (rounded) " + tag, ref_narrow(got), ref_narrow(want),
                               dyadic ? 0 : 1));
      }
  });
  // Bad indices (R and -1) are flagged and their rows skipped.
  const auto src = ref_narrow({1.f, 2.f, 3.f});
  const std::vector<int32_t> idx{0, 2, -1};
  std::vector<float> acc(2, 0.f);
  int32_t bad = 0;
  kernels::emu::scatter_add_rows_bf16(src.data(), idx.data(), acc.data(), 2, 3, 1, &bad);
  CHECK(bad == 1);
  CHECK(acc == std::vector<float>{1.f, 0.f});
}

TEST_CASE("normalize kernels: emulated l2_normalize edge cases match the CPU (one element, short rows, a zero row, norms near eps)") {
  struct N { int64_t rows, C; double eps; };
  // One element; a row shorter than a warp; and eps = 3.6, near the typical norm of 40 values
  // in [-1, 1] (sqrt(40 / 3)), so rows fall on both sides. With more than one row, the first
  // is zero: y = 0, gx = g / eps.
  const N cases[] = {{1, 1, 1e-12}, {1, 19, 1e-12}, {64, 40, 3.6}};
  for_each_fiber_order([&](const char* order) {
    for (const N& c : cases) {
      const std::string tag = std::string(order) + " rows=" + std::to_string(c.rows) + " C=" + std::to_string(c.C);
      const int64_t n = c.rows * c.C;
      auto x = random_floats(n, 170), g = random_floats(n, 171);
      if (c.rows > 1) std::fill(x.begin(), x.begin() + c.C, 0.f);
      std::vector<float> want(n), got(n, -7.f);
      kernels::cpu::l2_normalize_rows(x.data(), want.data(), c.rows, c.C, c.eps);
      kernels::emu::l2_normalize_rows_f32(x.data(), got.data(), c.rows, c.C, float(c.eps));
      CHECK(close_arrays("l2_normalize " + tag, got.data(), want.data(), n, 1e-6, 1e-5));
      std::vector<float> gw(n), gg(n, -7.f);
      kernels::cpu::l2_normalize_rows_backward(x.data(), g.data(), gw.data(), c.rows, c.C, c.eps);
      kernels::emu::l2_normalize_rows_backward_f32(x.data(), g.data(), gg.data(), c.rows, c.C, float(c.eps));
      CHECK(close_arrays("l2_normalize backward " + tag, gg.data(), gw.data(), n, 1e-5, 1e-4));
    }
  });
}

GPU_TEST_CASE("gpu: concat, slice, gather, scatter and l2_normalize match the CPU") {
  Tensor a = random_tensor({2, 33, 65, 256}, 180), b = random_tensor({2, 33, 65, 48}, 181);
  Tensor c = concat({a, b}, 3);
  CHECK(close_tensors("concat channels", concat({a.cuda(), b.cuda()}, 3), c, 0, 0));
  CHECK(close_tensors("concat H", concat({a.cuda(), a.cuda()}, 1), concat({a, a}, 1), 0, 0));
  CHECK(close_tensors("slice channels", slice(c.cuda(), 3, 200, 80), slice(c, 3, 200, 80), 0, 0));
  CHECK(close_tensors("slice W", slice(c.cuda(), 2, 3, 31), slice(c, 2, 3, 31), 0, 0));
  std::vector<int32_t> iv(1000);
  for (int k = 0; k < 1000; ++k) iv[k] = (k * 7919) % 4290 / 3;
  Tensor idx = Tensor::from_vector(iv, {1000});
  CHECK(close_tensors("gather_rows", gather_rows(a.cuda(), idx.cuda()), gather_rows(a, idx), 0, 0));
  Tensor src = random_tensor({1000, 256}, 182);
  CHECK(close_tensors("scatter_add_rows", scatter_add_rows(src.cuda(), idx.cuda(), 4290), scatter_add_rows(src, idx, 4290),
                      1e-5, 1e-5));
  CHECK_THROWS_WITH_AS(gather_rows(a.cuda(), Tensor::from_vector<int32_t>({0, 5000}, {2}).cuda()),
                       doctest::Contains("gather_rows: an index of i32[2] cuda is outside [0, 4290)"), Error);
  Tensor x = a.clone().set_requires_grad(), gx = a.cuda().set_requires_grad();
  Tensor w = random_tensor(a.shape(), 183);
  Tensor y = l2_normalize(x), gy = l2_normalize(gx);
  CHECK(close_tensors("l2_normalize", gy, y, 1e-6, 1e-5));
  sum(mul(y, w)).backward();
  sum(mul(gy, w.cuda())).backward();
  CHECK(close_tensors("l2_normalize grad", gx.grad(), x.grad(), 1e-5, 1e-4));
}
