// Test helpers: tolerant comparison that prints the first mismatches, gradient checks in
// double, deterministic random data, and the GPU test switch.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/ops.h"

namespace c3test {
using c3::DType;
using c3::Shape;
using c3::Tensor;

inline bool has_gpu() { return c3::cuda_available(); }

// A test case that needs a GPU: reported as skipped (not failed) without one.
#define GPU_TEST_CASE(name) \
  TEST_CASE(name * doctest::test_suite("gpu") * doctest::skip(!::c3test::has_gpu()))

// |got - ref| <= atol + rtol * |ref| for every element; prints the first 5 mismatches.
template <class T, class U>
bool close_arrays(const std::string& what, const T* got, const U* ref, int64_t n, double atol, double rtol) {
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double g = double(got[i]), r = double(ref[i]);
    const bool ok = std::abs(g - r) <= atol + rtol * std::abs(r) || (std::isnan(g) && std::isnan(r));
    if (!ok) {
      if (bad < 5) std::printf("  %s: mismatch at [%lld]: got %.9g, want %.9g\n", what.c_str(), (long long)i, g, r);
      ++bad;
    }
  }
  if (bad) std::printf("  %s: %lld of %lld elements differ (atol %g, rtol %g)\n", what.c_str(), (long long)bad,
                       (long long)n, atol, rtol);
  return bad == 0;
}

inline std::vector<double> as_doubles(const Tensor& t) {
  Tensor c = t.cpu();
  switch (c.dtype()) {
    case DType::f32: { auto v = c.to_vector<float>(); return {v.begin(), v.end()}; }
    case DType::f64: return c.to_vector<double>();
    case DType::i32: { auto v = c.to_vector<int32_t>(); return {v.begin(), v.end()}; }
    case DType::u8: { auto v = c.to_vector<uint8_t>(); return {v.begin(), v.end()}; }
    case DType::bf16: return c.cast(DType::f64).to_vector<double>();
  }
  return {};
}

inline bool close_tensors(const std::string& what, const Tensor& got, const Tensor& ref, double atol, double rtol) {
  if (got.shape() != ref.shape()) {
    std::printf("  %s: shape %s, want %s\n", what.c_str(), c3::shape_str(got.shape()).c_str(),
                c3::shape_str(ref.shape()).c_str());
    return false;
  }
  auto g = as_doubles(got), r = as_doubles(ref);
  return close_arrays(what, g.data(), r.data(), (int64_t)g.size(), atol, rtol);
}

inline std::vector<float> random_floats(int64_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

inline Tensor random_tensor(const Shape& s, uint32_t seed, DType dt = DType::f32, double lo = -1, double hi = 1) {
  auto v = random_floats(c3::shape_numel(s), seed, float(lo), float(hi));
  if (dt == DType::f64) return Tensor::from_vector(std::vector<double>(v.begin(), v.end()), s);
  return Tensor::from_vector(v, s);
}

// Central-difference gradient check of a scalar function of f64 CPU tensors.
// Analytic gradients come from backward(); each element is perturbed by +-eps.
inline bool gradcheck(const std::string& what, const std::function<Tensor(const std::vector<Tensor>&)>& f,
                      std::vector<Tensor> inputs, double eps = 1e-6, double atol = 1e-7, double rtol = 1e-5) {
  for (auto& t : inputs) {
    REQUIRE(t.dtype() == DType::f64);
    t.zero_grad();
    t.set_requires_grad(true);
  }
  Tensor loss = f(inputs);
  REQUIRE(loss.numel() == 1);
  loss.backward();
  bool ok = true;
  c3::NoGradGuard ng;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    Tensor g = x.grad();
    std::vector<double> analytic = g.defined() ? g.to_vector<double>() : std::vector<double>(x.numel(), 0.0);
    std::vector<double> numeric(x.numel());
    double* p = x.data<double>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double keep = p[i];
      p[i] = keep + eps;
      const double fp = f(inputs).item();
      p[i] = keep - eps;
      const double fm = f(inputs).item();
      p[i] = keep;
      numeric[i] = (fp - fm) / (2 * eps);
    }
    ok &= close_arrays(what + " d/dinput" + std::to_string(k), analytic.data(), numeric.data(), x.numel(), atol, rtol);
  }
  return ok;
}

}  // namespace c3test
