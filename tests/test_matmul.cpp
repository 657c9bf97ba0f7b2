// matmul: hand values, every transpose combination against a naive triple loop, gradient
// checks in double, the gemm wrapper's leading dimensions and beta, errors, and cuBLAS on a GPU.
#include "kernels/cpu/blas.h"
#include "kernels/cuda/blas.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3test;

namespace {
// op(A) op(B) in double by the definition; A stored [M,K] or [K,M], B [K,N] or [N,K].
std::vector<double> naive_matmul(const std::vector<double>& A, const std::vector<double>& B, int64_t M, int64_t N,
                                 int64_t K, bool ta, bool tb) {
  std::vector<double> C(M * N, 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += (ta ? A[k * M + m] : A[m * K + k]) * (tb ? B[n * K + k] : B[k * N + n]);
      C[m * N + n] = s;
    }
  return C;
}
Shape stored(int64_t rows, int64_t cols, bool trans) { return trans ? Shape{cols, rows} : Shape{rows, cols}; }
}  // namespace

TEST_CASE("matmul: values computed by hand") {
  // [[1,2,3],[4,5,6]] @ [[7,8],[9,10],[11,12]] = [[1*7+2*9+3*11, 1*8+2*10+3*12], [4*7+5*9+6*11, 4*8+5*10+6*12]]
  const std::vector<float> want{58, 64, 139, 154};
  Tensor a = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::from_vector<float>({7, 8, 9, 10, 11, 12}, {3, 2});
  CHECK(matmul(a, b).to_vector<float>() == want);
  // The same operands stored transposed.
  Tensor at = Tensor::from_vector<float>({1, 4, 2, 5, 3, 6}, {3, 2});
  Tensor bt = Tensor::from_vector<float>({7, 9, 11, 8, 10, 12}, {2, 3});
  CHECK(matmul(at, b, true, false).to_vector<float>() == want);
  CHECK(matmul(a, bt, false, true).to_vector<float>() == want);
  CHECK(matmul(at, bt, true, true).to_vector<float>() == want);
  Tensor c = matmul(a.cast(DType::f64), b.cast(DType::f64));
  CHECK(c.dtype() == DType::f64);
  CHECK(c.to_vector<double>() == std::vector<double>{58, 64, 139, 154});
  // [3,2] @ [2,3]: an outer-product-like case with a different output shape.
  CHECK(matmul(b, a).shape() == Shape{3, 3});
  CHECK(matmul(b, a).to_vector<float>() == std::vector<float>{39, 54, 69, 49, 68, 87, 59, 82, 105});
}

TEST_CASE("matmul: every transpose combination matches a naive triple loop") {
  struct Dims { int64_t M, N, K; };
  for (Dims d : {Dims{1, 1, 1}, Dims{5, 7, 3}, Dims{33, 19, 65}, Dims{64, 48, 256}}) {
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      const std::string tag = "M=" + std::to_string(d.M) + " N=" + std::to_string(d.N) + " K=" + std::to_string(d.K) +
                              " ta=" + std::to_string(ta) + " tb=" + std::to_string(tb);
      Tensor a = random_tensor(stored(d.M, d.K, ta), 100 + t, DType::f64);
      Tensor b = random_tensor(stored(d.K, d.N, tb), 200 + t, DType::f64);
      auto want = naive_matmul(a.to_vector<double>(), b.to_vector<double>(), d.M, d.N, d.K, ta, tb);
      Tensor c64 = matmul(a, b, ta, tb);
      REQUIRE(c64.shape() == Shape{d.M, d.N});
      CHECK(close_arrays("f64 " + tag, c64.to_vector<double>().data(), want.data(), d.M * d.N, 1e-12, 1e-12));
      // f32: inputs in [-1, 1], sums of K terms: error ~ K * 6e-8 in absolute terms.
      Tensor c32 = matmul(a.cast(DType::f32), b.cast(DType::f32), ta, tb);
      CHECK(close_arrays("f32 " + tag, c32.to_vector<float>().data(), want.data(), d.M * d.N, 2e-5, 1e-5));
    }
  }
}

TEST_CASE("matmul: gradient checks in double, all four transpose combinations") {
  const int64_t M = 3, N = 4, K = 5;
  Tensor w = random_tensor({M, N}, 7, DType::f64);  // weights make the loss depend on every output
  for (int t = 0; t < 4; ++t) {
    const bool ta = t & 1, tb = t & 2;
    Tensor a = random_tensor(stored(M, K, ta), 10 + t, DType::f64), b = random_tensor(stored(K, N, tb), 20 + t, DType::f64);
    CHECK(gradcheck("matmul ta=" + std::to_string(ta) + " tb=" + std::to_string(tb),
                    [&](auto& in) { return sum(mul(matmul(in[0], in[1], ta, tb), w)); }, {a, b}));
  }
  // A product of products (x W1) W2^T: the gradient flows through two matmuls.
  Tensor x = random_tensor({2, 3}, 30, DType::f64), w1 = random_tensor({3, 4}, 31, DType::f64);
  Tensor w2 = random_tensor({5, 4}, 32, DType::f64), w3 = random_tensor({2, 5}, 33, DType::f64);
  CHECK(gradcheck("matmul chain", [&](auto& in) { return sum(mul(matmul(matmul(in[0], in[1]), in[2], false, true), w3)); },
                  {x, w1, w2}));
  // Only one operand requiring grad still gets the right gradient.
  Tensor a = random_tensor({3, 5}, 40, DType::f64), b = random_tensor({5, 4}, 41, DType::f64);
  CHECK(gradcheck("matmul b only", [&](auto& in) { return sum(mul(matmul(a, in[0]), w)); }, {b}));
}

TEST_CASE("matmul: kernels::cpu::gemm honours leading dimensions, alpha and beta") {
  // A = [[1,2],[3,4]] inside a 2x3 buffer (lda 3), B = I, C starts at [[10,20],[30,40]] (ldc 3):
  // C = 2 * A @ I + 1 * C.
  std::vector<float> A{1, 2, -99, 3, 4, -99}, B{1, 0, 0, 1}, C{10, 20, 7, 30, 40, 7};
  kernels::cpu::gemm(false, false, 2, 2, 2, 2.f, A.data(), 3, B.data(), 2, 1.f, C.data(), 3);
  CHECK(C == std::vector<float>{12, 24, 7, 36, 48, 7});
  // K == 0: the product is the zero matrix; beta 0 clears C even where it held NaN.
  std::vector<double> D{NAN, 5, 6, 7};
  kernels::cpu::gemm(false, false, 2, 2, 0, 1.0, nullptr, 1, nullptr, 2, 0.0, D.data(), 2);
  CHECK(D == std::vector<double>{0, 0, 0, 0});
  Tensor z = matmul(Tensor::zeros({3, 0}), Tensor::zeros({0, 2}));
  CHECK(z.to_vector<float>() == std::vector<float>(6, 0.f));
}

TEST_CASE("matmul: mismatches name the op and the shapes") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 2});
  CHECK_THROWS_WITH_AS(matmul(a, b), doctest::Contains("matmul(f32[2,3] cpu, f32[4,2] cpu): inner dimensions differ (3 vs 4)"), Error);
  CHECK(matmul(a, b, true, true).shape() == Shape{3, 4});  // [3,2] @ [2,4]: the transposes make it fit
  CHECK_THROWS_WITH_AS(matmul(a, b, false, true), doctest::Contains("inner dimensions differ (3 vs 2)"), Error);
  CHECK_THROWS_WITH_AS(matmul(Tensor::zeros({2, 3, 1}), b), doctest::Contains("both operands must be 2-D"), Error);
  CHECK_THROWS_WITH_AS(matmul(a, Tensor::zeros({3, 2}, DType::f64)), doctest::Contains("dtype mismatch"), Error);
  CHECK_THROWS_WITH_AS(matmul(Tensor::zeros({2, 3}, DType::i32), Tensor::zeros({3, 2}, DType::i32)),
                       doctest::Contains("matmul"), Error);
}

TEST_CASE("matmul: cuBLAS is not emulated, and says so") {
  std::vector<float> x(4, 1.f), y(4);
  CHECK_THROWS_WITH(kernels::emu::gemm_f32(false, false, 2, 2, 2, 1.f, x.data(), 2, x.data(), 2, 0.f, y.data(), 2, true),
                    doctest::Contains("cuBLAS is not emulated"));
}

GPU_TEST_CASE("gpu: cuBLAS matmul matches the CPU, all transpose combinations, with and without TF32") {
  const bool keep = allow_tf32();
  const int64_t M = 129, N = 67, K = 300;
  for (int t = 0; t < 4; ++t) {
    const bool ta = t & 1, tb = t & 2;
    Tensor a = random_tensor(stored(M, K, ta), 50 + t), b = random_tensor(stored(K, N, tb), 60 + t);
    Tensor want = matmul(a, b, ta, tb);
    set_allow_tf32(false);
    CHECK(close_tensors("fp32 t=" + std::to_string(t), matmul(a.cuda(), b.cuda(), ta, tb), want, 1e-4, 1e-5));
    // TF32 rounds each input to 10 mantissa bits (relative 2^-11): sums of 300 products of
    // values in [-1, 1] are off by a few 1e-3 at most.
    set_allow_tf32(true);
    CHECK(close_tensors("tf32 t=" + std::to_string(t), matmul(a.cuda(), b.cuda(), ta, tb), want, 2e-2, 1e-2));
  }
  set_allow_tf32(false);
  Tensor a = random_tensor({M, K}, 70), b = random_tensor({N, K}, 71), w = random_tensor({M, N}, 72);
  Tensor x = a.clone().set_requires_grad(), y = b.clone().set_requires_grad();
  Tensor gx = a.cuda().set_requires_grad(), gy = b.cuda().set_requires_grad();
  sum(mul(matmul(x, y, false, true), w)).backward();
  sum(mul(matmul(gx, gy, false, true), w.cuda())).backward();
  CHECK(close_tensors("grad a", gx.grad(), x.grad(), 1e-4, 1e-5));
  CHECK(close_tensors("grad b", gy.grad(), y.grad(), 1e-4, 1e-5));
  set_allow_tf32(keep);
}
