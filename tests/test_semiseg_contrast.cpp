// Pixel contrastive loss: tiny cases computed by hand (values and gradients), anchors that
// do not qualify, a direct double-precision computation from the formula, gradient checks
// in double, errors, the emulated row kernel against the CPU kernel, and the GPU.
//
// CUDA kernels run here in emulation, through their kernels::emu entry points, against
// the CPU kernels:
//   contrast_rows_kernel, contrast_finalize_kernel.
#include <cmath>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/semiseg_contrast.h"
#include "kernels/cuda/semiseg_contrast.h"
#include "semiseg/ops_contrast.h"
#include "tests/emu_helpers.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3test;
using semiseg::contrastive_loss;

namespace {
template <class T> std::vector<T> vec(const Tensor& t) { return t.cpu().to_vector<T>(); }
Tensor labels_of(const std::vector<int32_t>& y) { return Tensor::from_vector(y, {int64_t(y.size())}); }

// Rows of unit length, [M, D].
std::vector<float> unit_rows(int64_t M, int64_t D, uint32_t seed) {
  auto v = random_floats(M * D, seed);
  for (int64_t i = 0; i < M; ++i) {
    double n = 0;
    for (int64_t d = 0; d < D; ++d) n += double(v[i * D + d]) * v[i * D + d];
    for (int64_t d = 0; d < D; ++d) v[i * D + d] = float(v[i * D + d] / std::sqrt(n));
  }
  return v;
}
Tensor unit_rows_f64(int64_t M, int64_t D, uint32_t seed) {
  auto v = unit_rows(M, D, seed);
  return Tensor::from_vector(std::vector<double>(v.begin(), v.end()), {M, D});
}

// The loss exactly as METHOD.md writes it, in double, no stabilisation.
double direct_loss(const std::vector<double>& z, const std::vector<double>& zc, const std::vector<int32_t>& y,
                   int64_t D, double tau, double tau_b) {
  const int64_t M = int64_t(y.size());
  auto s = [&](int64_t i, int64_t j) {
    double d = 0;
    for (int64_t k = 0; k < D; ++k) d += z[i * D + k] * zc[j * D + k];
    return d / tau;
  };
  double total = 0;
  int64_t count = 0;
  for (int64_t i = 0; i < M; ++i) {
    double neg = 0, sum = 0;
    int64_t np = 0, nn = 0;
    for (int64_t j = 0; j < M; ++j)
      if (y[j] != y[i]) neg += std::exp(s(i, j)), ++nn;
    for (int64_t p = 0; p < M; ++p)
      if (p != i && y[p] == y[i]) sum += std::log(std::exp(s(i, p)) / (std::exp(s(i, p)) + neg)), ++np;
    if (np == 0 || nn == 0) continue;
    total += sum / double(np);
    ++count;
  }
  return count ? -(tau / tau_b) * total / double(count) : 0.0;
}
}  // namespace

TEST_CASE("contrast: tiny cases computed by hand, values and gradient") {
  // z = z' = (1,0), (1,0), (0,1); labels 0, 0, 1; tau = tau_b = 1. Anchor 2 has no positive
  // and is left out. Anchors 0, 1: s_pos = 1, s_neg = 0: loss = log(1 + e) - 1 = log(1 + 1/e).
  Tensor z = Tensor::from_vector<double>({1, 0, 1, 0, 0, 1}, {3, 2}).set_requires_grad();
  Tensor zc = Tensor::from_vector<double>({1, 0, 1, 0, 0, 1}, {3, 2}).set_requires_grad();
  Tensor loss = contrastive_loss(z, zc, labels_of({0, 0, 1}), 1.0, 1.0);
  CHECK(loss.rank() == 0);
  CHECK(loss.item() == doctest::Approx(std::log(1 + std::exp(-1.0))).epsilon(1e-12));
  loss.backward();
  // d row_0 / d z_0 = z'_1 - (e z'_1 + z'_2) / (e + 1) = (1, -1) / (e + 1); loss = -(row_0 + row_1) / 2.
  const double g = 1 / (2 * (std::exp(1.0) + 1));
  CHECK(close_arrays("dz", vec<double>(z.grad()).data(), std::vector<double>{-g, g, -g, g, 0, 0}.data(), 6, 1e-12, 0));
  CHECK(!zc.grad().defined());  // stop-gradient on the contrast side

  // Defaults tau = 0.15, tau_b = 0.1: z = z' = (1,0), (0.6,0.8), (0,1); labels 0, 0, 1.
  // Anchor 0: s_pos = 0.6/0.15 = 4, s_neg = 0: term -log(1 + e^-4).
  // Anchor 1: s_pos = 4, s_neg = 0.8/0.15 = 16/3: term -log(1 + e^(4/3)). Anchor 2 left out.
  // loss = -(0.15/0.1) * mean = 0.75 * (log(1 + e^-4) + log(1 + e^(4/3))).
  Tensor z2 = Tensor::from_vector<float>({1, 0, 0.6f, 0.8f, 0, 1}, {3, 2});
  const double want = 0.75 * (std::log(1 + std::exp(-4.0)) + std::log(1 + std::exp(4.0 / 3)));
  CHECK(contrastive_loss(z2, z2, labels_of({0, 0, 1})).item() == doctest::Approx(want).epsilon(1e-6));
  // Three positives for anchor 0: the 1/|P| average. z = (1,0) x3 and (0,1); labels 0,0,0,1;
  // tau = tau_b = 1: every qualifying anchor has 2 positives with s = 1 and one negative s = 0.
  Tensor z3 = Tensor::from_vector<float>({1, 0, 1, 0, 1, 0, 0, 1}, {4, 2});
  CHECK(contrastive_loss(z3, z3, labels_of({0, 0, 0, 1}), 1, 1).item() ==
        doctest::Approx(std::log(1 + std::exp(-1.0))).epsilon(1e-6));
}

TEST_CASE("contrast: no qualifying anchor gives 0 and a zero gradient") {
  Tensor z = random_tensor({4, 3}, 5, DType::f64).set_requires_grad();
  Tensor loss = contrastive_loss(z, z, labels_of({2, 2, 2, 2}));  // no negatives
  CHECK(loss.item() == 0.0);
  loss.backward();
  CHECK(vec<double>(z.grad()) == std::vector<double>(12, 0.0));
  CHECK(contrastive_loss(random_tensor({3, 3}, 6), random_tensor({3, 3}, 7), labels_of({0, 1, 2})).item() == 0.0);
  CHECK(contrastive_loss(random_tensor({1, 3}, 6), random_tensor({1, 3}, 7), labels_of({0})).item() == 0.0);
  Tensor empty = Tensor::zeros({0, 8}, DType::f64).set_requires_grad();
  Tensor l0 = contrastive_loss(empty, empty, Tensor::zeros({0}, DType::i32));
  CHECK(l0.item() == 0.0);
  l0.backward();  // backward through an empty sample works
}

TEST_CASE("contrast: equals the formula computed directly in double") {
  const int64_t M = 60, D = 16;
  std::vector<int32_t> y(M);
  for (int64_t i = 0; i < M; ++i) y[i] = int32_t(i % 5 == 4 && i > 40 ? 7 + i : i % 4);  // a few singletons
  auto zf = unit_rows(M, D, 11), zcf = unit_rows(M, D, 12);
  std::vector<double> z(zf.begin(), zf.end()), zc(zcf.begin(), zcf.end());
  for (auto [tau, tau_b] : {std::pair{0.15, 0.1}, std::pair{0.5, 0.07}}) {
    const double want = direct_loss(z, zc, y, D, tau, tau_b);
    const double got64 = contrastive_loss(Tensor::from_vector(z, {M, D}), Tensor::from_vector(zc, {M, D}),
                                          labels_of(y), tau, tau_b).item();
    const double got32 = contrastive_loss(Tensor::from_vector(zf, {M, D}), Tensor::from_vector(zcf, {M, D}),
                                          labels_of(y), tau, tau_b).item();
    CHECK(got64 == doctest::Approx(want).epsilon(1e-12));
    CHECK(got32 == doctest::Approx(want).epsilon(2e-6));
  }
}

// A fixed-size anchor sample marks its empty rows with label -1: they take no part, so the
// loss and the gradient of the kept rows are those of the sample without them, and the empty
// rows get no gradient.
TEST_CASE("contrast: rows labeled -1 are left out (loss and gradient of the rest unchanged)") {
  const int64_t M = 40, D = 8;
  std::vector<int32_t> y(M);
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < M; ++i) {
    y[size_t(i)] = i % 5 == 2 ? -1 : int32_t(i % 3);
    if (y[size_t(i)] >= 0) kept.push_back(i);
  }
  auto zv = unit_rows(M, D, 21), cv = unit_rows(M, D, 22);
  std::vector<double> z(zv.begin(), zv.end()), zc(cv.begin(), cv.end()), zs, cs;
  std::vector<int32_t> ys;
  for (int64_t i : kept) {
    zs.insert(zs.end(), z.begin() + i * D, z.begin() + (i + 1) * D);
    cs.insert(cs.end(), zc.begin() + i * D, zc.begin() + (i + 1) * D);
    ys.push_back(y[size_t(i)]);
  }
  const int64_t K = int64_t(kept.size());
  Tensor a = Tensor::from_vector(z, {M, D}).set_requires_grad(), b = Tensor::from_vector(zs, {K, D}).set_requires_grad();
  Tensor la = contrastive_loss(a, Tensor::from_vector(zc, {M, D}), labels_of(y));
  Tensor lb = contrastive_loss(b, Tensor::from_vector(cs, {K, D}), labels_of(ys));
  CHECK(la.item() == doctest::Approx(lb.item()).epsilon(1e-12));
  CHECK(la.item() > 0);
  la.backward();
  lb.backward();
  const auto ga = vec<double>(a.grad()), gb = vec<double>(b.grad());
  for (int64_t k = 0; k < K; ++k)
    for (int64_t d = 0; d < D; ++d) CHECK(ga[size_t(kept[size_t(k)] * D + d)] == doctest::Approx(gb[size_t(k * D + d)]).epsilon(1e-10));
  for (int64_t i = 0; i < M; ++i)
    if (y[size_t(i)] < 0)
      for (int64_t d = 0; d < D; ++d) CHECK(ga[size_t(i * D + d)] == 0.0);
  // The emulated kernels agree with the CPU's on such rows (f32).
  std::vector<float> S(size_t(M * M));
  kernels::cpu::gemm(false, true, M, M, D, zv.data(), cv.data(), S.data());
  std::vector<float> lw(M), lg(M), gw(M * M), gg(M * M);
  std::vector<int32_t> ow(M), og(M);
  kernels::cpu::contrast_rows(S.data(), y.data(), M, 1 / 0.15, lw.data(), ow.data(), gw.data());
  kernels::emu::contrast_rows_f32(S.data(), y.data(), M, float(1 / 0.15), lg.data(), og.data(), gg.data());
  CHECK(og == ow);
  for (int64_t i = 0; i < M; ++i) CHECK((y[size_t(i)] >= 0 || ow[size_t(i)] == 0));
  CHECK(close_arrays("row loss", lg.data(), lw.data(), M, 1e-6, 1e-5));
  CHECK(close_arrays("dS", gg.data(), gw.data(), M * M, 1e-7, 1e-5));
}

TEST_CASE("contrast: gradient checks in double") {
  const int64_t M = 9, D = 4;
  Tensor zc = unit_rows_f64(M, D, 21);
  Tensor y = labels_of({0, 1, 0, 2, 1, 0, 3, 1, 2});  // class 3 a singleton: left out
  Tensor z0 = unit_rows_f64(M, D, 22);
  CHECK(gradcheck("contrastive_loss dz", [&](auto& in) { return contrastive_loss(in[0], zc, y); }, {z0}));
  CHECK(gradcheck("contrastive_loss dz tau 0.5", [&](auto& in) { return contrastive_loss(in[0], zc, y, 0.5, 0.2); }, {z0}));
  // Through l2_normalize, as the trainer uses it.
  CHECK(gradcheck("normalized", [&](auto& in) { return contrastive_loss(l2_normalize(in[0]), zc, y); },
                  {random_tensor({M, D}, 23, DType::f64)}));
  CHECK(gradcheck("from similarity", [&](auto& in) { return semiseg::contrastive_loss_from_similarity(in[0], y); },
                  {random_tensor({M, M}, 24, DType::f64)}));
}

TEST_CASE("contrast: errors name the op and the shapes") {
  Tensor z = Tensor::zeros({3, 2});
  CHECK_THROWS_WITH_AS(contrastive_loss(z, Tensor::zeros({3, 4}), labels_of({0, 1, 2})),
                       doctest::Contains("contrastive_loss: shape mismatch"), Error);
  CHECK_THROWS_WITH_AS(contrastive_loss(z, z, labels_of({0, 1})),
                       doctest::Contains("contrastive_loss: labels must be [3] (one per anchor), got i32[2] cpu"), Error);
  CHECK_THROWS_WITH_AS(contrastive_loss(z, z, labels_of({0, 1, 2}), 0.0),
                       doctest::Contains("temperatures must be positive"), Error);
  CHECK_THROWS_WITH_AS(contrastive_loss(Tensor::zeros({3}), Tensor::zeros({3}), labels_of({0, 1, 2})),
                       doctest::Contains("anchors must be [M, D]"), Error);
  CHECK_THROWS_WITH_AS(semiseg::contrastive_loss_from_similarity(Tensor::zeros({3, 2}), labels_of({0, 1, 2})),
                       doctest::Contains("similarities must be square"), Error);
}

// The lab's contrast_rows entry checks 403 and 7 anchors of random similarities; here the
// edge cases on real cosine similarities: one anchor (no positive), and 37 anchors with a
// singleton class (a row with no positive; not a multiple of the block size).
TEST_CASE("contrast kernels: emulated row kernel and finalize edge cases match the CPU (one anchor, singleton class)") {
  const int64_t D = 256;
  for_each_fiber_order([&](const char* order) {
    for (int64_t M : {1, 37}) {
      const std::string tag = std::string(order) + " M" + std::to_string(M);
      std::vector<int32_t> y(M);
      for (int64_t i = 0; i < M; ++i) y[i] = int32_t(i % 5);
      if (M == 37) y[36] = 9;
      auto z = unit_rows(M, D, uint32_t(31 + M)), zc = unit_rows(M, D, uint32_t(32 + M));
      std::vector<float> S(M * M);
      kernels::cpu::gemm(false, true, M, M, D, z.data(), zc.data(), S.data());
      std::vector<float> lw(M), lg(M, -9.f), gw(M * M), gg(M * M, -9.f);
      std::vector<int32_t> ow(M), og(M, -9);
      const float inv_tau = float(1 / 0.15);
      kernels::cpu::contrast_rows(S.data(), y.data(), M, double(inv_tau), lw.data(), ow.data(), gw.data());
      kernels::emu::contrast_rows_f32(S.data(), y.data(), M, inv_tau, lg.data(), og.data(), gg.data());
      CHECK_MESSAGE(og == ow, tag);
      CHECK(close_arrays("row loss " + tag, lg.data(), lw.data(), M, 1e-6, 1e-5));
      CHECK(close_arrays("dS " + tag, gg.data(), gw.data(), M * M, 1e-7, 1e-5));
      float loss_w, coef_w, loss_g = -9.f, coef_g = -9.f;
      kernels::cpu::contrast_finalize(lw.data(), ow.data(), M, -1.5, &loss_w, &coef_w);
      kernels::emu::contrast_finalize_f32(lw.data(), ow.data(), M, -1.5f, &loss_g, &coef_g);
      CHECK(close_arrays("loss " + tag, &loss_g, &loss_w, 1, 1e-6, 1e-5));
      CHECK(close_arrays("coef " + tag, &coef_g, &coef_w, 1, 0, 1e-6));
      if (M > 1) CHECK(loss_w > 0.f);
    }
  });
}

GPU_TEST_CASE("gpu: contrastive loss and its gradient match the CPU") {
  const int64_t M = 16 * 19 * 20, D = 256;  // a full batch of anchors
  std::vector<int32_t> yv(M);
  for (int64_t i = 0; i < M; ++i) yv[i] = int32_t((i / 20) % 19);
  Tensor y = labels_of(yv), z = Tensor::from_vector(unit_rows(M, D, 41), {M, D});
  Tensor zc = Tensor::from_vector(unit_rows(M, D, 42), {M, D});
  const bool tf32 = allow_tf32();
  for (bool fast : {false, true}) {
    set_allow_tf32(fast);
    Tensor gz = z.cuda().set_requires_grad(), cz = z.clone().set_requires_grad();
    Tensor lg = contrastive_loss(gz, zc.cuda(), y.cuda()), lc = contrastive_loss(cz, zc, y);
    lg.backward();
    lc.backward();
    // TF32 rounds the inputs of the dot products to 10-bit mantissas: ~1e-3 relative in S.
    const double tol = fast ? 2e-2 : 1e-4;
    CHECK(close_tensors(fast ? "loss tf32" : "loss", lg, lc, tol, tol));
    double gmax = 0;
    for (double v : as_doubles(cz.grad())) gmax = std::max(gmax, std::abs(v));
    CHECK(gmax > 0);
    CHECK(close_tensors(fast ? "dz tf32" : "dz", gz.grad(), cz.grad(), tol * gmax, tol));
  }
  set_allow_tf32(tf32);
}
