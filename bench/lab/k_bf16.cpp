// Kernel lab: the bf16 variants of the elementwise and pooling kernels at the f32 entries'
// shapes (k_elementwise.cpp, k_pool.cpp, k_norm.cpp), so their times sit beside the f32 ones.
// The CPU run is what a CPU op does with bf16 tensors: widen the inputs, run the f32 kernel,
// narrow the outputs. The device kernels compute in f32 and round once, so they must equal it
// bit for bit, except the global average pool (the CPU sums in f64, the device in f32 in
// another order): within one bf16 step.
#include <memory>

#include "bench/lab/lab.h"
#include "kernels/bf16_math.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/pool.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/pool.h"

namespace lab {
namespace {

using kernels::Bcast;
using kernels::bf16;
using kernels::Binary;
using kernels::Unary;

int64_t features(const Scale& s) { return s.N * s.h * s.w * s.C; }
std::string feature_shape(const Scale& s) { return dims({s.N, s.h, s.w, s.C}); }

// n values uniform in [lo, hi), rounded to bf16, uploaded.
Buf<bf16> random_bf16(Backend b, int64_t n, float lo, float hi, uint64_t seed) {
  Buf<bf16> x(b, n);
  x.vec() = uniform_bf16(n, lo, hi, seed);
  x.upload();
  return x;
}
// Bit for bit, or (steps = 1) within one bf16 step: 2^-7 of the value at most.
std::string compare_steps(const std::string& what, Buf<bf16>& out, int steps = 0) {
  return steps == 0 ? compare_bf16(what, out.download(), out.vec(), 0, 0)
                    : compare_bf16(what, out.download(), out.vec(), 0x1p-7, 1e-6);
}

struct EwState {
  Buf<bf16> a, b, out;
  std::vector<float> af, bf, outf;  // the CPU run's f32 copies
};

// out = a (op) b with b the same shape or per channel; relu when `relu` (a unary op, b unused).
Case ew_case(Backend b, const Scale& s, Binary op, Bcast bc, bool relu) {
  const int64_t n = features(s), nb = relu ? 1 : bc == Bcast::channel ? s.C : n;  // relu reads no b
  auto st = std::make_shared<EwState>();
  EwState& v = *st;
  v.a = random_bf16(b, n, -1.f, 1.f, 100);
  v.b = random_bf16(b, nb, 0.5f, 1.5f, 7);
  v.out = Buf<bf16>(b, n);
  v.af.resize(size_t(n)), v.bf.resize(size_t(nb)), v.outf.resize(size_t(n));
  return make_case(
      b, feature_shape(s), double(relu ? 2 * n : n + nb + n) * 2,
      [&v, st, op, bc, relu, n, s] {
        widen_into(v.a.vec(), v.af);
        if (relu) {
          kernels::cpu::unary(Unary::relu, v.af.data(), v.outf.data(), n, 0.f, 0.f);
        } else {
          widen_into(v.b.vec(), v.bf);
          kernels::cpu::binary(op, v.af.data(), v.bf.data(), v.outf.data(), n, bc, s.C);
        }
        narrow_into(v.outf, v.out.vec());
      },
      [&v, st, op, bc, relu, n, s, b] {
        if (relu) LAB_DEV(b, unary_bf16, Unary::relu, v.a.dev(), v.out.dev(), n, 0.f, 0.f);
        else LAB_DEV(b, binary_bf16, op, v.a.dev(), v.b.dev(), v.out.dev(), n, bc, s.C);
      },
      [&v, st] { return compare_steps("out", v.out); });
}

struct AvgPoolState {
  Buf<bf16> x, y, dy, dx;
  std::vector<float> xf, yf, dyf, dxf;
};

Case avg_pool_case(Backend b, const Scale& s, bool backward) {
  const int64_t N = s.N, HW = s.h * s.w, C = s.C;
  auto st = std::make_shared<AvgPoolState>();
  AvgPoolState& v = *st;
  v.x = random_bf16(b, N * HW * C, -1.f, 3.f, 1), v.dy = random_bf16(b, N * C, -1.f, 1.f, 2);
  v.y = Buf<bf16>(b, N * C), v.dx = Buf<bf16>(b, N * HW * C);
  v.xf.resize(size_t(N * HW * C)), v.dxf.resize(v.xf.size()), v.yf.resize(size_t(N * C)), v.dyf.resize(v.yf.size());
  return make_case(
      b, dims({N, s.h, s.w, C}), double(N * HW * C + N * C) * 2,
      [&v, st, N, HW, C, backward] {
        if (backward) {
          widen_into(v.dy.vec(), v.dyf);
          kernels::cpu::global_avg_pool_backward(v.dyf.data(), N, HW, C, v.dxf.data());
          narrow_into(v.dxf, v.dx.vec());
        } else {
          widen_into(v.x.vec(), v.xf);
          kernels::cpu::global_avg_pool(v.xf.data(), N, HW, C, v.yf.data());
          narrow_into(v.yf, v.y.vec());
        }
      },
      [&v, st, N, HW, C, backward, b] {
        if (backward) LAB_DEV(b, global_avg_pool_backward_bf16, v.dy.dev(), N, HW, C, v.dx.dev());
        else LAB_DEV(b, global_avg_pool_bf16, v.x.dev(), N, HW, C, v.y.dev());
      },
      [&v, st, backward] {
        if (backward) return compare_steps("dx", v.dx, 1);
        return compare_steps("y", v.y, 1);
      });
}

// The stem's 3x3 s2 p1 ceil-mode pool, as the f32 entries (k_norm.cpp).
kernels::PoolGeom stem_pool(const Scale& s) {
  kernels::PoolGeom g{s.N, s.H / 2, s.W / 2, s.small ? 67 : 64, 0, 0, 3, 2, 1};
  g.Ho = kernels::pool_out_size(g.H, 3, 2, 1, true), g.Wo = kernels::pool_out_size(g.W, 3, 2, 1, true);
  return g;
}

struct MaxPoolState {
  Buf<bf16> x, y, dy, dx;
  Buf<int32_t> arg;
  std::vector<float> xf, yf, dyf, dxf;
};

Case max_pool_case(Backend b, const Scale& s, bool backward) {
  const kernels::PoolGeom g = stem_pool(s);
  const int64_t nin = g.N * g.H * g.W * g.C, nout = g.N * g.Ho * g.Wo * g.C;
  auto st = std::make_shared<MaxPoolState>();
  MaxPoolState& v = *st;
  v.x = random_bf16(b, nin, -1.f, 1.f, 1), v.dy = random_bf16(b, nout, -1.f, 1.f, 2);
  v.y = Buf<bf16>(b, nout), v.dx = Buf<bf16>(b, nin), v.arg = Buf<int32_t>(b, nout);
  v.xf.resize(size_t(nin)), v.dxf.resize(size_t(nin)), v.yf.resize(size_t(nout)), v.dyf.resize(size_t(nout));
  widen_into(v.x.vec(), v.xf);
  kernels::cpu::max_pool2d(v.xf.data(), g, v.yf.data(), v.arg.host());  // the argmax the backward reads
  v.arg.upload();
  const double bytes = backward ? double(nout) * 6 + double(nin) * 2 : double(nin) * 2 + double(nout) * 6;
  return make_case(
      b, dims({g.N, g.H, g.W, g.C}) + " -> " + dims({g.Ho, g.Wo}), bytes,
      [&v, st, g, backward] {
        if (backward) {
          widen_into(v.dy.vec(), v.dyf);
          kernels::cpu::max_pool2d_backward(v.dyf.data(), v.arg.host(), g, v.dxf.data());
          narrow_into(v.dxf, v.dx.vec());
        } else {
          widen_into(v.x.vec(), v.xf);
          kernels::cpu::max_pool2d(v.xf.data(), g, v.yf.data(), v.arg.host());
          narrow_into(v.yf, v.y.vec());
        }
      },
      [&v, st, g, backward, b] {
        if (backward) LAB_DEV(b, max_pool2d_backward_bf16, v.dy.dev(), v.arg.dev(), g, v.dx.dev());
        else LAB_DEV(b, max_pool2d_bf16, v.x.dev(), g, v.y.dev(), v.arg.dev());
      },
      [&v, st, backward] {
        if (backward) return compare_steps("dx", v.dx);
        return all_of({compare_steps("y", v.y),
                       compare_exact("argmax", v.arg.download(), v.arg.vec())});
      });
}

const Register r1({"elementwise", "add_relu_bf16", 1, "relu(a + b), same shapes, bf16 (binary_bf16)",
                   [](Backend b, const Scale& s) { return ew_case(b, s, Binary::add_relu, Bcast::same, false); }});
const Register r2({"elementwise", "mul_channel_bf16", 1, "a * w[c], per-channel broadcast, bf16 (binary_bf16)",
                   [](Backend b, const Scale& s) { return ew_case(b, s, Binary::mul, Bcast::channel, false); }});
const Register r3({"elementwise", "relu_bf16", 1, "unary_bf16 relu",
                   [](Backend b, const Scale& s) { return ew_case(b, s, Binary::add, Bcast::same, true); }});
const Register r4({"pool", "global_avg_pool_bf16", 1, "ASPP image pooling, bf16: f32 sums, one rounding",
                   [](Backend b, const Scale& s) { return avg_pool_case(b, s, false); }});
const Register r5({"pool", "global_avg_pool_backward_bf16", 1, "dy / HW broadcast over h x w, bf16",
                   [](Backend b, const Scale& s) { return avg_pool_case(b, s, true); }});
const Register r6({"pool", "max_pool_bf16", 1, "3x3 s2 p1 ceil, with argmax, bf16",
                   [](Backend b, const Scale& s) { return max_pool_case(b, s, false); }});
const Register r7({"pool", "max_pool_backward_bf16", 1, "gather from the argmax, f32 sums, bf16",
                   [](Backend b, const Scale& s) { return max_pool_case(b, s, true); }});

}  // namespace
}  // namespace lab
