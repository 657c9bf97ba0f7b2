// The convolution's fused epilogue, conv2d(..., relu = true) = relu(conv2d(...) + bias) in one
// pass over the output: bit for bit the unfused composition on the CPU (f32, f64, bf16; every
// path of the CPU kernel: the 1x1 GEMM, im2col in chunks), the same gradients, a gradient check
// in double, the launches it stands for; on a GPU, cuDNN's fused conv + bias + ReLU against the
// unfused ops and the CPU.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/ops_conv.h"
#include "core/precision.h"
#include "kernels/cpu/conv.h"
#include "kernels/cuda/conv_cudnn.h"
#include "kernels/launch_counter.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3test;

namespace {

struct Geom {  // x [N,H,W,C], w [K,k,k,C], square stride, padding, dilation
  int64_t N, H, W, C, K;
  int k, s, p, d;
  std::string str() const {
    return "x[" + std::to_string(N) + "," + std::to_string(H) + "," + std::to_string(W) + "," + std::to_string(C) +
           "] w[" + std::to_string(K) + "," + std::to_string(k) + "," + std::to_string(k) + "] s" + std::to_string(s) +
           " p" + std::to_string(p) + " d" + std::to_string(d);
  }
};
// The 1x1 GEMM path, im2col with padding and dilation, stride 2, one output pixel.
const Geom kGeoms[] = {{2, 5, 7, 6, 5, 1, 1, 0, 1}, {2, 9, 8, 3, 4, 3, 1, 2, 2}, {1, 7, 9, 5, 3, 3, 2, 1, 1},
                       {1, 3, 3, 2, 3, 3, 1, 0, 1}};

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor ca = a.cpu(), cb = b.cpu();
  return std::memcmp(ca.raw(), cb.raw(), size_t(ca.numel()) * dtype_size(ca.dtype())) == 0;
}

// Forward and backward (loss = sum(y * r)) of the fused op and of relu(conv2d(...)), from the
// same inputs: {y, dx, dw, db} each.
std::vector<Tensor> run(const Geom& g, const Tensor& x0, const Tensor& w0, const Tensor& b0, const Tensor& r,
                        bool fused) {
  Tensor x = x0.detach().set_requires_grad(), w = w0.detach().set_requires_grad();
  Tensor b = b0.defined() ? b0.detach().set_requires_grad() : Tensor();
  Tensor y = fused ? conv2d(x, w, b, g.s, g.p, g.d, true) : relu(conv2d(x, w, b, g.s, g.p, g.d));
  sum(mul(y, r)).backward();
  return {y, x.grad(), w.grad(), b.defined() ? b.grad() : Tensor()};
}

}  // namespace

TEST_CASE("conv fused ReLU: equals relu(conv2d + bias) bit for bit on the CPU, values and gradients") {
  uint32_t seed = 300;
  for (const Geom& g : kGeoms)
    for (DType dt : {DType::f32, DType::f64})
      for (bool with_bias : {true, false}) {
        Tensor x = random_tensor({g.N, g.H, g.W, g.C}, seed++, dt), w = random_tensor({g.K, g.k, g.k, g.C}, seed++, dt);
        Tensor b = with_bias ? random_tensor({g.K}, seed++, dt) : Tensor();
        Tensor y0 = conv2d(x, w, b, g.s, g.p, g.d);
        Tensor r = random_tensor(y0.shape(), seed++, dt);
        const std::vector<Tensor> fused = run(g, x, w, b, r, true), plain = run(g, x, w, b, r, false);
        const std::string tag = g.str() + (dt == DType::f32 ? " f32" : " f64") + (with_bias ? " bias" : "");
        INFO(tag);
        // About half the outputs are clipped, so the mask matters.
        int64_t zeros = 0;
        for (double v : as_doubles(fused[0])) zeros += v == 0;
        CHECK(zeros > 0);
        CHECK(zeros < fused[0].numel());
        CHECK(same_bits(fused[0], relu(y0)));
        for (int i = 0; i < 4; ++i)
          if (plain[i].defined()) CHECK_MESSAGE(same_bits(fused[i], plain[i]), "result ", i);
      }
}

TEST_CASE("conv fused ReLU: the CPU kernel's epilogue per chunk of rows, NaN kept") {
  // Budgets of one row and of 7 rows (chunks straddling images) against the default; a NaN in
  // x makes NaN outputs, which the ReLU keeps (as the relu op).
  const Geom g{2, 6, 5, 3, 4, 3, 1, 1, 1};
  const kernels::ConvGeom cg = kernels::make_conv_geom(g.N, g.H, g.W, g.C, g.K, 3, 3, 1, 1, 1, 1, 1, 1);
  std::vector<float> x = random_floats(g.N * g.H * g.W * g.C, 11), w = random_floats(g.K * cg.taps(), 12),
                     b = random_floats(g.K, 13);
  x[17] = NAN;
  std::vector<float> plain(cg.out_pixels() * g.K);
  kernels::cpu::conv2d_forward(x.data(), w.data(), b.data(), plain.data(), cg);
  int64_t nans = 0;
  for (float& v : plain) {
    nans += std::isnan(v);
    v = !(v <= 0.f) ? v : 0.f;
  }
  CHECK(nans > 0);
  for (size_t budget : {size_t(1), size_t(7 * cg.taps()) * sizeof(float), kernels::cpu::kConvColsBudget}) {
    std::vector<float> y(plain.size(), -7.f);
    kernels::cpu::conv2d_forward(x.data(), w.data(), b.data(), y.data(), cg, true, budget);
    CHECK(std::memcmp(y.data(), plain.data(), y.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("conv fused ReLU: gradient check in double") {
  Tensor x = random_tensor({2, 5, 6, 3}, 41, DType::f64), b = random_tensor({4}, 42, DType::f64);
  Tensor w3 = random_tensor({4, 3, 3, 3}, 43, DType::f64), w1 = random_tensor({4, 1, 1, 3}, 44, DType::f64);
  Tensor r = random_tensor({2, 5, 6, 4}, 45, DType::f64);
  auto loss = [](const Tensor& y, const Tensor& r) { return sum(mul(y, r)); };
  CHECK(gradcheck("conv relu 3x3", [&](auto& in) { return loss(conv2d(in[0], in[1], in[2], 1, 1, 1, true), r); },
                  {x, w3, b}));
  CHECK(gradcheck("conv relu 1x1", [&](auto& in) { return loss(conv2d(in[0], in[1], in[2], 1, 0, 1, true), r); },
                  {x, w1, b}));
}

TEST_CASE("conv fused ReLU: bf16 on the CPU widens, computes, rounds once: the unfused ops' bits") {
  const Geom g{2, 7, 6, 5, 4, 3, 1, 2, 2};
  Tensor x = random_tensor({g.N, g.H, g.W, g.C}, 51), w = random_tensor({g.K, 3, 3, g.C}, 52);
  Tensor b = random_tensor({g.K}, 53);
  // bf16 tensors: relu(round(v)) == round(relu(v)), so one rounding equals the unfused two.
  // Gradients reach f32 leaves through the casts (a bf16 tensor cannot be a leaf).
  Tensor r = random_tensor({g.N, g.H, g.W, g.K}, 54).cast(DType::bf16);
  auto run_bf16 = [&](bool fused) {
    Tensor xl = x.detach().set_requires_grad(), wl = w.detach().set_requires_grad(), bl = b.detach().set_requires_grad();
    Tensor xb = cast(xl, DType::bf16), wb = cast(wl, DType::bf16), bb = cast(bl, DType::bf16);
    Tensor y = fused ? conv2d(xb, wb, bb, 1, 2, 2, true) : relu(conv2d(xb, wb, bb, 1, 2, 2));
    sum(mul(y, r)).backward();
    return std::vector<Tensor>{y, xl.grad(), wl.grad(), bl.grad()};
  };
  const std::vector<Tensor> fused = run_bf16(true), plain = run_bf16(false);
  // Under autocast the f32 inputs are lowered to bf16 (precision table: conv2d is a lower op).
  AutocastScope autocast(Precision::bf16);
  Tensor ya = conv2d(x, w, b, 1, 2, 2, true);
  CHECK(ya.dtype() == DType::bf16);
  CHECK(same_bits(ya, fused[0]));
}

// A CPU run counts the launches the same ops make on a GPU (kernels/launch_counter.h).
TEST_CASE("conv fused ReLU: the CPU counts the GPU's launches: one with a bias (cuDNN's fused call)") {
  Tensor x = random_tensor({1, 5, 5, 2}, 1), w = random_tensor({3, 3, 3, 2}, 2), b = random_tensor({3}, 3);
  uint64_t before = kernels::launches();
  (void)conv2d(x, w, b, 1, 1, 1, true);
  CHECK(kernels::launches() - before == 1);  // cudnnConvolutionBiasActivationForward
  before = kernels::launches();
  (void)conv2d(x, w, Tensor(), 1, 1, 1, true);
  CHECK(kernels::launches() - before == 2);  // the convolution, then the ReLU
  before = kernels::launches();
  (void)relu(conv2d(x, w, b, 1, 1));
  CHECK(kernels::launches() - before == 3);  // unfused: the convolution, the bias add, the ReLU
}

TEST_CASE("conv fused ReLU: the emulated cuDNN entry point refuses to run") {
  const kernels::ConvGeom g = kernels::make_conv_geom(1, 3, 3, 1, 1, 2, 2, 1, 1, 0, 0, 1, 1);
  std::vector<float> x(9), w(4), b(1), y(4);
  auto ws = [](size_t) -> void* { return nullptr; };
  CHECK_THROWS_WITH(kernels::emu::conv2d_forward_bias_relu_f32(x.data(), w.data(), b.data(), y.data(), g, {}, ws),
                    doctest::Contains("conv2d_forward_bias_relu_f32: cuDNN is not emulated"));
}

namespace {
// On the GPU: the fused op (cuDNN's fused call, f32) against the unfused ops on the GPU and
// against the CPU in double. Forward: 1e-4 of the largest value (FP32 sums of up to 7*7*3
// products, two different cuDNN algorithms). Gradients: the GPU's own forward decides the
// mask (an output within rounding of 0 may fall either way between two algorithms), so the
// reference is the CPU's plain convolution backward in double with dy masked by the GPU's y.
void check_gpu_fused(const Geom& g, uint32_t seed, bool expect_fused_call) {
  Tensor x = random_tensor({g.N, g.H, g.W, g.C}, seed), w = random_tensor({g.K, g.k, g.k, g.C}, seed + 1);
  Tensor b = random_tensor({g.K}, seed + 2);
  Tensor y_plain = conv2d(x.cuda(), w.cuda(), b.cuda(), g.s, g.p, g.d);
  Tensor r = random_tensor(y_plain.shape(), seed + 3);
  const uint64_t before = kernels::launches();
  Tensor xg = x.cuda().set_requires_grad(), wg = w.cuda().set_requires_grad(), bg = b.cuda().set_requires_grad();
  Tensor y = conv2d(xg, wg, bg, g.s, g.p, g.d, true);
  const uint64_t forward_launches = kernels::launches() - before;
  if (expect_fused_call) CHECK_MESSAGE(forward_launches == 1, g.str(), ": cuDNN's fused call did not run");
  else CHECK((forward_launches == 1 || forward_launches == 2));  // fused, or the conv and add_relu
  sum(mul(y, r.cuda())).backward();
  auto scale_of = [](const Tensor& t) {
    double s = 0;
    for (double v : as_doubles(t)) s = std::max(s, std::abs(v));
    return s;
  };
  const double sy = scale_of(y_plain);
  CHECK(close_tensors("fused vs unfused " + g.str(), y, relu(y_plain), 1e-4 * sy, 1e-4));
  Tensor x64 = x.cast(DType::f64).set_requires_grad(), w64 = w.cast(DType::f64).set_requires_grad();
  Tensor b64 = b.cast(DType::f64).set_requires_grad();
  Tensor yc = conv2d(x64, w64, b64, g.s, g.p, g.d);
  CHECK(close_tensors("fused vs CPU " + g.str(), y, relu(yc.detach()), 1e-4 * sy, 1e-4));
  std::vector<double> m = as_doubles(y);
  for (double& v : m) v = v > 0 ? 1.0 : 0.0;
  Tensor mask = Tensor::from_vector(m, y.shape());
  sum(mul(yc, mul(r.cast(DType::f64), mask))).backward();
  const Tensor got[] = {xg.grad(), wg.grad(), bg.grad()}, want[] = {x64.grad(), w64.grad(), b64.grad()};
  const char* names[] = {"dx", "dw", "db"};
  for (int i = 0; i < 3; ++i)
    CHECK(close_tensors(std::string(names[i]) + " " + g.str(), got[i], want[i], 1e-4 * scale_of(want[i]), 1e-4));
}
}  // namespace

GPU_TEST_CASE("conv fused ReLU (cuDNN): the fused conv + bias + ReLU matches the unfused ops and the CPU") {
  set_conv_allow_tf32(false);
  check_gpu_fused({2, 33, 65, 16, 24, 3, 1, 2, 2}, 71, true);   // dilated 3x3, channels multiples of 8
  check_gpu_fused({1, 33, 33, 64, 32, 1, 1, 0, 1}, 72, true);   // 1x1
  check_gpu_fused({2, 65, 97, 3, 64, 7, 2, 3, 1}, 73, false);   // ResNet stem
  check_gpu_fused({3, 17, 9, 5, 7, 3, 2, 1, 1}, 74, false);     // odd sizes, stride 2
  set_conv_allow_tf32(true);
  // bf16: the bf16 convolution, then one bf16 add_relu kernel: the unfused bf16 ops' bits (the
  // same cached algorithm; relu(round(v)) == round(relu(v))).
  Tensor x = random_tensor({2, 17, 19, 16}, 81).cuda().cast(DType::bf16);
  Tensor w = random_tensor({24, 3, 3, 16}, 82).cuda().cast(DType::bf16);
  Tensor b = random_tensor({24}, 83).cuda().cast(DType::bf16);
  Tensor y0 = relu(conv2d(x, w, b, 1, 2, 2));
  const uint64_t before = kernels::launches();
  Tensor y = conv2d(x, w, b, 1, 2, 2, true);
  CHECK(kernels::launches() - before == 2);
  CHECK(y.dtype() == DType::bf16);
  CHECK(same_bits(y, y0));
}
