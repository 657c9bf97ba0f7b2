// Kernel lab: the bf16 BatchNorm and resize kernels (bf16 activations; statistics, parameters
// and sums in f32) at the shapes of k_norm.cpp. The CPU side is what a CPU op does with bf16:
// widen the activations, run the f32 kernel, round each output once.
#include <cmath>
#include <memory>

#include "bench/lab/lab.h"
#include "kernels/bf16_math.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/resize.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/resize.h"

namespace lab {
namespace {
using kernels::bf16;

// Emulated, the kernels give the reference's bits except where a reduction sums in another
// order (tests/test_norm.cpp, test_resize.cpp check that). On a GPU, FMA contraction moves an
// f32 result by about an f32 ulp too; rounding can then pick the neighbouring bf16, 1 bf16 ulp
// (at most 2^-7 relative), and near zero the f32 difference itself (atol).
constexpr double kBf16Rtol = 1.0 / 128, kBf16Atol = 1e-5;
// The f32 outputs (statistics, dweight, dbias): as the f32 entries.
constexpr double kRtol = 1e-4, kAtol = 1e-5;

// The device output against the CPU side's, within kBf16Rtol / kBf16Atol.
std::string compare_out(const std::string& what, Buf<bf16>& b) {
  return compare_bf16(what, b.download(), b.vec(), kBf16Rtol, kBf16Atol);
}

struct BnState {
  Buf<bf16> x, dy, y, dx, relu_y;
  Buf<float> weight, bias, rmean, rvar, mean, invstd, scale, dweight, dbias, ws;
  std::vector<float> xw, dyw, relu_yw, out;  // the CPU side's widened inputs and f32 output
};

// As k_norm.cpp's bn_state, the activations rounded to bf16.
std::shared_ptr<BnState> bn_state(Backend b, const Scale& s) {
  const int64_t M = s.N * s.h * s.w, C = s.C;
  auto st = std::make_shared<BnState>();
  BnState& v = *st;
  for (Buf<bf16>* p : {&v.x, &v.dy, &v.y, &v.dx, &v.relu_y}) *p = Buf<bf16>(b, M * C);
  v.x.vec() = uniform_bf16(M * C, -1.f, 3.f, 1);
  v.dy.vec() = uniform_bf16(M * C, -1.f, 1.f, 2);
  for (Buf<float>* p : {&v.weight, &v.bias, &v.rmean, &v.rvar, &v.mean, &v.invstd, &v.scale, &v.dweight, &v.dbias})
    *p = Buf<float>(b, C);
  fill_uniform(v.weight.vec(), 0.5f, 1.5f, 3);
  fill_uniform(v.bias.vec(), -0.2f, 0.2f, 4);
  fill_uniform(v.rvar.vec(), 0.5f, 2.f, 5);
  if (b != Backend::cpu) v.ws = Buf<float>(b, LAB_DEV(b, bn_workspace_floats, M, C));
  v.xw = widened(v.x.vec()), v.dyw = widened(v.dy.vec()), v.out.resize(size_t(M * C));
  kernels::cpu::bn_batch_stats(v.xw.data(), M, C, v.weight.host(), 1e-5f, 0.f, v.rmean.host(), v.rvar.host(),
                               v.mean.host(), v.invstd.host(), v.scale.host());
  kernels::cpu::bn_apply(v.xw.data(), M, C, v.mean.host(), v.scale.host(), v.bias.host(), v.out.data(), true);
  narrow_into(v.out, v.relu_y.vec());  // the fused forward's output: the masked backwards' mask
  v.relu_yw = widened(v.relu_y.vec());
  for (Buf<bf16>* p : {&v.x, &v.dy, &v.relu_y}) p->upload();
  for (Buf<float>* p : {&v.weight, &v.bias, &v.rmean, &v.rvar, &v.mean, &v.invstd, &v.scale}) p->upload();
  return st;
}

Case bn_stats_case(Backend b, const Scale& s) {
  const int64_t M = s.N * s.h * s.w, C = s.C;
  auto st = bn_state(b, s);
  BnState& v = *st;
  return make_case(
      b, dims({s.N, s.h, s.w, C}), double(M * C) * 2,
      [&v, st, M, C] {
        widen_into(v.x.vec(), v.xw);
        kernels::cpu::bn_batch_stats(v.xw.data(), M, C, v.weight.host(), 1e-5f, 0.1f, v.rmean.host(), v.rvar.host(),
                                     v.mean.host(), v.invstd.host(), v.scale.host());
      },
      [&v, st, M, C, b] {
        LAB_DEV(b, bn_batch_stats_bf16, v.x.dev(), M, C, v.weight.dev(), 1e-5f, 0.1f, v.rmean.dev(), v.rvar.dev(),
                v.mean.dev(), v.invstd.dev(), v.scale.dev(), v.ws.dev());
      },
      [&v, st] {
        return all_of({compare("mean", v.mean.download(), v.mean.vec(), kRtol, kAtol),
                       compare("invstd", v.invstd.download(), v.invstd.vec(), kRtol, kAtol),
                       compare("running_var", v.rvar.download(), v.rvar.vec(), kRtol, kAtol)});
      });
}

// With the fused ReLU; x also holds a NaN in every 97th element, which must stay NaN.
Case bn_apply_relu_case(Backend b, const Scale& s) {
  const int64_t M = s.N * s.h * s.w, C = s.C;
  auto st = bn_state(b, s);
  BnState& v = *st;
  for (int64_t i = 0; i < M * C; i += 97) v.x.vec()[i] = kernels::narrow<bf16>(NAN);
  v.x.upload();
  return make_case(
      b, dims({s.N, s.h, s.w, C}), double(2 * M * C) * 2,
      [&v, st, M, C] {
        widen_into(v.x.vec(), v.xw);
        kernels::cpu::bn_apply(v.xw.data(), M, C, v.mean.host(), v.scale.host(), v.bias.host(), v.out.data(), true);
        narrow_into(v.out, v.y.vec());
      },
      [&v, st, M, C, b] {
        LAB_DEV(b, bn_apply_bf16, v.x.dev(), M, C, v.mean.dev(), v.scale.dev(), v.bias.dev(), v.y.dev(), true);
      },
      [&v, st] { return compare_out("y", v.y); });
}

// Trainable BatchNorm + ReLU's backward (batch statistics; dy masked by the forward's output).
Case bn_backward_relu_case(Backend b, const Scale& s) {
  const int64_t M = s.N * s.h * s.w, C = s.C;
  auto st = bn_state(b, s);
  BnState& v = *st;
  return make_case(
      b, dims({s.N, s.h, s.w, C}), double(4 * M * C) * 2,
      [&v, st, M, C] {
        widen_into(v.dy.vec(), v.dyw), widen_into(v.x.vec(), v.xw), widen_into(v.relu_y.vec(), v.relu_yw);
        kernels::cpu::bn_backward(v.dyw.data(), v.xw.data(), M, C, v.mean.host(), v.invstd.host(), v.scale.host(),
                                  true, v.out.data(), v.dweight.host(), v.dbias.host(), v.relu_yw.data());
        narrow_into(v.out, v.dx.vec());
      },
      [&v, st, M, C, b] {
        LAB_DEV(b, bn_backward_bf16, v.dy.dev(), v.x.dev(), M, C, v.mean.dev(), v.invstd.dev(), v.scale.dev(), true,
                v.dx.dev(), v.dweight.dev(), v.dbias.dev(), v.ws.dev(), v.relu_y.dev());
      },
      [&v, st] {
        return all_of({compare_out("dx", v.dx), compare("dweight", v.dweight.download(), v.dweight.vec(), kRtol, 1e-3),
                       compare("dbias", v.dbias.download(), v.dbias.vec(), kRtol, 1e-3)});
      });
}

// Frozen BatchNorm + ReLU's backward: dx = scale * dy where the forward's output is > 0.
Case bn_frozen_backward_relu_case(Backend b, const Scale& s) {
  const int64_t M = s.N * s.h * s.w, C = s.C;
  auto st = bn_state(b, s);
  BnState& v = *st;
  return make_case(
      b, dims({s.N, s.h, s.w, C}), double(3 * M * C) * 2,
      [&v, st, M, C] {
        widen_into(v.dy.vec(), v.dyw), widen_into(v.relu_y.vec(), v.relu_yw);
        kernels::cpu::bn_apply(v.dyw.data(), M, C, (const float*)nullptr, v.scale.host(), (const float*)nullptr,
                               v.out.data(), false, v.relu_yw.data());
        narrow_into(v.out, v.dx.vec());
      },
      [&v, st, M, C, b] {
        LAB_DEV(b, bn_backward_bf16, v.dy.dev(), v.x.dev(), M, C, v.mean.dev(), v.invstd.dev(), v.scale.dev(), false,
                v.dx.dev(), nullptr, nullptr, v.ws.dev(), v.relu_y.dev());
      },
      [&v, st] { return compare_out("dx", v.dx); });
}

struct Pair {
  Buf<bf16> in, out;
  std::vector<float> inw, outw;
};

// As k_norm.cpp's resize_case: class maps at the feature resolution to the input size
// (bilinear with aligned corners), and the backward.
Case resize_case(Backend b, const Scale& s, bool backward) {
  const kernels::ResizeShape r{s.N, s.h, s.w, s.classes, s.H, s.W};
  const int64_t small = r.n * r.h * r.w * r.c, big = r.n * r.oh * r.ow * r.c;
  auto st = std::make_shared<Pair>();
  Pair& v = *st;
  v.in = Buf<bf16>(b, backward ? big : small), v.out = Buf<bf16>(b, backward ? small : big);
  v.in.vec() = uniform_bf16(v.in.size(), -1.f, 1.f, 1);
  v.in.upload();
  v.outw.resize(size_t(v.out.size()));
  const std::string shape = dims({r.n, r.h, r.w, r.c}) + " -> " + dims({r.oh, r.ow});
  return make_case(
      b, shape, double(small + big) * 2,
      [&v, st, r, backward] {
        widen_into(v.in.vec(), v.inw);
        if (backward) kernels::cpu::resize_bilinear_backward(v.inw.data(), v.outw.data(), r, true);
        else kernels::cpu::resize_bilinear(v.inw.data(), v.outw.data(), r, true);
        narrow_into(v.outw, v.out.vec());
      },
      [&v, st, r, backward, b] {
        if (backward) LAB_DEV(b, resize_bilinear_backward_bf16, v.in.dev(), v.out.dev(), r, true);
        else LAB_DEV(b, resize_bilinear_bf16, v.in.dev(), v.out.dev(), r, true);
      },
      [&v, st] { return compare_out("out", v.out); });
}

const Register r1({"batchnorm", "bn_batch_stats_bf16", 1, "bf16 x: per-channel mean/var in f32, running stats",
                   bn_stats_case});
const Register r2({"batchnorm", "bn_apply_relu_bf16", 1, "bf16 y = relu((x - mean) * scale + bias), f32 parameters",
                   bn_apply_relu_case});
const Register r3({"batchnorm", "bn_bwd_relu_bf16", 1, "bf16 dx; f32 dweight, dbias; dy masked by the output",
                   bn_backward_relu_case});
const Register r3f({"batchnorm", "bn_frozen_bwd_bf16", 1, "frozen BN + ReLU, bf16: dx = scale * dy masked",
                    bn_frozen_backward_relu_case});
const Register r4({"resize", "bilinear_bf16", 1, "bf16 logits to input size, align_corners",
                   [](Backend b, const Scale& s) { return resize_case(b, s, false); }});
const Register r5({"resize", "bilinear_bwd_bf16", 1, "gather summed in f32, rounded once",
                   [](Backend b, const Scale& s) { return resize_case(b, s, true); }});

}  // namespace
}  // namespace lab
