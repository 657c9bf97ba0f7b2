// Kernel lab: BatchNorm (batch statistics, apply, backward; with a fused ReLU, the apply and the
// masked backwards; frozen BN folded into a conv's weights) on the layer4 activations (16 x 33 x 65 x 2048), the bilinear upsampling of
// the logits to the input size and its backward (16 x 33 x 65 x 19 -> 16 x 256 x 512 x 19,
// align_corners as DeepLab-v2), and the stem's max pool (16 x 128 x 256 x 64, 3x3, stride 2,
// pad 1, ceil mode) and its backward.
#include <cmath>
#include <memory>

#include "bench/lab/lab.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/pool.h"
#include "kernels/cpu/resize.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/pool.h"
#include "kernels/cuda/resize.h"

namespace lab {
namespace {

// Sums over 34k rows in a different order on each backend: f32 rounding of long sums.
constexpr double kRtol = 1e-4, kAtol = 1e-5;

struct BnState {
  Buf<float> x, dy, y, dx, weight, bias, rmean, rvar, mean, invstd, scale, dweight, dbias, ws;
  Buf<float> relu_y;  // the output of the fused BN + ReLU forward: the masked backwards' mask
};

std::shared_ptr<BnState> bn_state(Backend b, const Scale& s) {
  const int64_t M = s.N * s.h * s.w, C = s.C;
  auto st = std::make_shared<BnState>();
  BnState& v = *st;
  v.x = Buf<float>(b, M * C), v.dy = Buf<float>(b, M * C), v.y = Buf<float>(b, M * C), v.dx = Buf<float>(b, M * C);
  fill_uniform(v.x.vec(), -1.f, 3.f, 1);  // post-ReLU-like: a nonzero mean
  fill_uniform(v.dy.vec(), -1.f, 1.f, 2);
  for (Buf<float>* p : {&v.weight, &v.bias, &v.rmean, &v.rvar, &v.mean, &v.invstd, &v.scale, &v.dweight, &v.dbias})
    *p = Buf<float>(b, C);
  fill_uniform(v.weight.vec(), 0.5f, 1.5f, 3);
  fill_uniform(v.bias.vec(), -0.2f, 0.2f, 4);
  fill_uniform(v.rvar.vec(), 0.5f, 2.f, 5);
  for (Buf<float>* p : {&v.x, &v.dy, &v.weight, &v.bias, &v.rmean, &v.rvar}) p->upload();
  if (b != Backend::cpu) v.ws = Buf<float>(b, LAB_DEV(b, bn_workspace_floats, M, C));
  // mean/invstd/scale as the forward leaves them, for apply and backward
  kernels::cpu::bn_batch_stats(v.x.host(), M, C, v.weight.host(), 1e-5f, 0.f, v.rmean.host(), v.rvar.host(),
                               v.mean.host(), v.invstd.host(), v.scale.host());
  for (Buf<float>* p : {&v.mean, &v.invstd, &v.scale}) p->upload();
  v.relu_y = Buf<float>(b, M * C);  // about half of it zero
  kernels::cpu::bn_apply(v.x.host(), M, C, v.mean.host(), v.scale.host(), v.bias.host(), v.relu_y.host(), true);
  v.relu_y.upload();
  return st;
}

Case bn_stats_case(Backend b, const Scale& s) {
  const int64_t M = s.N * s.h * s.w, C = s.C;
  auto st = bn_state(b, s);
  BnState& v = *st;
  return make_case(
      b, dims({s.N, s.h, s.w, C}), double(M * C) * 4,
      [&v, st, M, C] {
        kernels::cpu::bn_batch_stats(v.x.host(), M, C, v.weight.host(), 1e-5f, 0.1f, v.rmean.host(), v.rvar.host(),
                                     v.mean.host(), v.invstd.host(), v.scale.host());
      },
      [&v, st, M, C, b] {
        LAB_DEV(b, bn_batch_stats_f32, v.x.dev(), M, C, v.weight.dev(), 1e-5f, 0.1f, v.rmean.dev(), v.rvar.dev(),
                v.mean.dev(), v.invstd.dev(), v.scale.dev(), v.ws.dev());
      },
      [&v, st] {
        return all_of({compare("mean", v.mean.download(), v.mean.vec(), kRtol, kAtol),
                       compare("invstd", v.invstd.download(), v.invstd.vec(), kRtol, kAtol),
                       compare("running_var", v.rvar.download(), v.rvar.vec(), kRtol, kAtol)});
      });
}

// relu: the fused ReLU; x then also holds a NaN in every 97th element (after the statistics),
// which must come out NaN on both backends.
Case bn_apply_case(Backend b, const Scale& s, bool relu) {
  const int64_t M = s.N * s.h * s.w, C = s.C;
  auto st = bn_state(b, s);
  BnState& v = *st;
  if (relu) {
    for (int64_t i = 0; i < M * C; i += 97) v.x.vec()[i] = NAN;
    v.x.upload();
  }
  return make_case(
      b, dims({s.N, s.h, s.w, C}), double(2 * M * C) * 4,
      [&v, st, M, C, relu] {
        kernels::cpu::bn_apply(v.x.host(), M, C, v.mean.host(), v.scale.host(), v.bias.host(), v.y.host(), relu);
      },
      [&v, st, M, C, b, relu] {
        LAB_DEV(b, bn_apply_f32, v.x.dev(), M, C, v.mean.dev(), v.scale.dev(), v.bias.dev(), v.y.dev(), relu);
      },
      [&v, st] { return compare("y", v.y.download(), v.y.vec(), 1e-5, 1e-6); });
}

// Trainable BatchNorm's backward: reads dy and x twice in principle; counted once each (and
// the fused ReLU's output, masking dy in both passes, when relu).
Case bn_backward_case(Backend b, const Scale& s, bool relu) {
  const int64_t M = s.N * s.h * s.w, C = s.C;
  auto st = bn_state(b, s);
  BnState& v = *st;
  return make_case(
      b, dims({s.N, s.h, s.w, C}), double((relu ? 4 : 3) * M * C) * 4,
      [&v, st, M, C, relu] {
        kernels::cpu::bn_backward(v.dy.host(), v.x.host(), M, C, v.mean.host(), v.invstd.host(), v.scale.host(), true,
                                  v.dx.host(), v.dweight.host(), v.dbias.host(), relu ? v.relu_y.host() : nullptr);
      },
      [&v, st, M, C, b, relu] {
        LAB_DEV(b, bn_backward_f32, v.dy.dev(), v.x.dev(), M, C, v.mean.dev(), v.invstd.dev(), v.scale.dev(), true,
                v.dx.dev(), v.dweight.dev(), v.dbias.dev(), v.ws.dev(), relu ? v.relu_y.dev() : nullptr);
      },
      [&v, st] {
        return all_of({compare("dx", v.dx.download(), v.dx.vec(), kRtol, kAtol),
                       compare("dweight", v.dweight.download(), v.dweight.vec(), kRtol, 1e-3),
                       compare("dbias", v.dbias.download(), v.dbias.vec(), kRtol, 1e-3)});
      });
}

// Frozen BatchNorm + ReLU's backward (fixed statistics, dx only): dx = scale * dy where the
// forward's output is > 0, else 0 (the apply kernel, dy masked by relu_y).
Case bn_frozen_backward_relu_case(Backend b, const Scale& s) {
  const int64_t M = s.N * s.h * s.w, C = s.C;
  auto st = bn_state(b, s);
  BnState& v = *st;
  return make_case(
      b, dims({s.N, s.h, s.w, C}), double(3 * M * C) * 4,
      [&v, st, M, C] {
        kernels::cpu::bn_apply(v.dy.host(), M, C, (const float*)nullptr, v.scale.host(), (const float*)nullptr,
                               v.dx.host(), false, v.relu_y.host());
      },
      [&v, st, M, C, b] {
        LAB_DEV(b, bn_apply_f32, v.dy.dev(), M, C, nullptr, v.scale.dev(), nullptr, v.dx.dev(), false, v.relu_y.dev());
      },
      [&v, st] { return compare("dx", v.dx.download(), v.dx.vec(), 1e-6, 1e-7); });
}

// Frozen BatchNorm folded into the conv before it, at the largest 3x3 conv of layer4
// (ResNet-101: 512 filters of 3x3x512): w' = w * scale per output channel, b' from the BN and
// the conv's bias (when with_bias), the scale. Products of the same scale: 1e-6 covers an FMA in
// the GPU's bias.
struct FoldState {
  Buf<float> w, cb, weight, bias, rmean, rvar, w_out, b_out, scale;
};
Case bn_fold_case(Backend b, const Scale& s, bool with_bias) {
  const int64_t K = s.C / 4, taps = 9 * (s.C / 4);
  auto st = std::make_shared<FoldState>();
  FoldState& v = *st;
  v.w = Buf<float>(b, K * taps), v.w_out = Buf<float>(b, K * taps);
  for (Buf<float>* p : {&v.cb, &v.weight, &v.bias, &v.rmean, &v.rvar, &v.b_out, &v.scale}) *p = Buf<float>(b, K);
  fill_uniform(v.w.vec(), -0.1f, 0.1f, 1);
  fill_uniform(v.cb.vec(), -0.5f, 0.5f, 2);
  fill_uniform(v.weight.vec(), 0.5f, 1.5f, 3);
  fill_uniform(v.bias.vec(), -0.2f, 0.2f, 4);
  fill_uniform(v.rmean.vec(), -1.f, 1.f, 5);
  fill_uniform(v.rvar.vec(), 0.01f, 2.f, 6);
  for (Buf<float>* p : {&v.w, &v.cb, &v.weight, &v.bias, &v.rmean, &v.rvar}) p->upload();
  return make_case(
      b, dims({K, 3, 3, K}), double(2 * K * taps + 7 * K) * 4,
      [&v, st, K, taps, with_bias] {
        kernels::cpu::bn_fold(v.w.host(), K, taps, with_bias ? v.cb.host() : nullptr, v.weight.host(),
                              v.bias.host(), v.rmean.host(), v.rvar.host(), 1e-5f, v.w_out.host(), v.b_out.host(),
                              v.scale.host());
      },
      [&v, st, K, taps, with_bias, b] {
        LAB_DEV(b, bn_fold_f32, v.w.dev(), K, taps, with_bias ? v.cb.dev() : nullptr, v.weight.dev(), v.bias.dev(),
                v.rmean.dev(), v.rvar.dev(), 1e-5f, v.w_out.dev(), v.b_out.dev(), v.scale.dev());
      },
      [&v, st] {
        return all_of({compare("w'", v.w_out.download(), v.w_out.vec(), 1e-6, 0),
                       compare("b'", v.b_out.download(), v.b_out.vec(), 1e-6, 1e-7),
                       compare("scale", v.scale.download(), v.scale.vec(), 1e-6, 0)});
      });
}

struct Pair {
  Buf<float> in, out;
};

// Class maps at the feature resolution to the input size (bilinear, align_corners, as the
// logits; or nearest), and the backward.
Case resize_case(Backend b, const Scale& s, bool backward, bool nearest) {
  const kernels::ResizeShape r{s.N, s.h, s.w, s.classes, s.H, s.W};
  const int64_t small = r.n * r.h * r.w * r.c, big = r.n * r.oh * r.ow * r.c;
  auto st = std::make_shared<Pair>();
  Pair& v = *st;
  v.in = Buf<float>(b, backward ? big : small), v.out = Buf<float>(b, backward ? small : big);
  fill_uniform(v.in.vec(), -1.f, 1.f, 1);
  v.in.upload();
  const std::string shape = dims({r.n, r.h, r.w, r.c}) + " -> " + dims({r.oh, r.ow});
  return make_case(
      b, shape, double(small + big) * 4,
      [&v, st, r, backward, nearest] {
        if (nearest && backward) kernels::cpu::resize_nearest_backward(v.in.host(), v.out.host(), r);
        else if (nearest) kernels::cpu::resize_nearest(v.in.host(), v.out.host(), r);
        else if (backward) kernels::cpu::resize_bilinear_backward(v.in.host(), v.out.host(), r, true);
        else kernels::cpu::resize_bilinear(v.in.host(), v.out.host(), r, true);
      },
      [&v, st, r, backward, nearest, b] {
        if (nearest && backward) LAB_DEV(b, resize_nearest_backward_f32, v.in.dev(), v.out.dev(), r);
        else if (nearest) LAB_DEV(b, resize_nearest_f32, v.in.dev(), v.out.dev(), r);
        else if (backward) LAB_DEV(b, resize_bilinear_backward_f32, v.in.dev(), v.out.dev(), r, true);
        else LAB_DEV(b, resize_bilinear_f32, v.in.dev(), v.out.dev(), r, true);
      },
      // Nearest: a copy forward; backward, both add the same gradients in the same order (rows,
      // then columns of the output range), so the sums agree bit for bit.
      [&v, st, nearest] {
        return nearest ? compare_exact("out", v.out.download(), v.out.vec())
                       : compare("out", v.out.download(), v.out.vec(), 1e-5, 1e-5);
      });
}

struct PoolState {
  Buf<float> x, y, dy, dx;
  Buf<int32_t> arg;
};

kernels::PoolGeom stem_pool(const Scale& s) {
  kernels::PoolGeom g{s.N, s.H / 2, s.W / 2, s.small ? 67 : 64, 0, 0, 3, 2, 1};
  g.Ho = kernels::pool_out_size(g.H, 3, 2, 1, true), g.Wo = kernels::pool_out_size(g.W, 3, 2, 1, true);
  return g;
}

Case max_pool_case(Backend b, const Scale& s, bool backward) {
  const kernels::PoolGeom g = stem_pool(s);
  const int64_t nin = g.N * g.H * g.W * g.C, nout = g.N * g.Ho * g.Wo * g.C;
  auto st = std::make_shared<PoolState>();
  PoolState& v = *st;
  v.x = Buf<float>(b, nin), v.y = Buf<float>(b, nout), v.dy = Buf<float>(b, nout), v.dx = Buf<float>(b, nin);
  v.arg = Buf<int32_t>(b, nout);
  fill_uniform(v.x.vec(), -1.f, 1.f, 1);
  fill_uniform(v.dy.vec(), -1.f, 1.f, 2);
  kernels::cpu::max_pool2d(v.x.host(), g, v.y.host(), v.arg.host());  // the argmax backward reads
  for (Buf<float>* p : {&v.x, &v.dy}) p->upload();
  v.arg.upload();
  const double bytes = backward ? double(nout) * 8 + double(nin) * 4 : double(nin) * 4 + double(nout) * 8;
  return make_case(
      b, dims({g.N, g.H, g.W, g.C}) + " -> " + dims({g.Ho, g.Wo}), bytes,
      [&v, st, g, backward] {
        if (backward) kernels::cpu::max_pool2d_backward(v.dy.host(), v.arg.host(), g, v.dx.host());
        else kernels::cpu::max_pool2d(v.x.host(), g, v.y.host(), v.arg.host());
      },
      [&v, st, g, backward, b] {
        if (backward) LAB_DEV(b, max_pool2d_backward_f32, v.dy.dev(), v.arg.dev(), g, v.dx.dev());
        else LAB_DEV(b, max_pool2d_f32, v.x.dev(), g, v.y.dev(), v.arg.dev());
      },
      [&v, st, backward] {
        if (backward) return compare("dx", v.dx.download(), v.dx.vec(), 1e-6, 1e-7);
        return all_of({compare("y", v.y.download(), v.y.vec(), 0, 0), compare_exact("argmax", v.arg.download(), v.arg.vec())});
      });
}

const Register r1({"batchnorm", "bn_batch_stats", 1, "per-channel mean/var, running stats", bn_stats_case});
const Register r2({"batchnorm", "bn_apply", 1, "y = (x - mean) * scale + bias",
                   [](Backend b, const Scale& s) { return bn_apply_case(b, s, false); }});
const Register r3({"batchnorm", "bn_backward", 1, "dx, dweight, dbias (batch statistics)",
                   [](Backend b, const Scale& s) { return bn_backward_case(b, s, false); }});
const Register r2r({"batchnorm", "bn_apply_relu", 1, "y = relu((x - mean) * scale + bias), NaN kept (fused ReLU)",
                    [](Backend b, const Scale& s) { return bn_apply_case(b, s, true); }});
const Register r3r({"batchnorm", "bn_backward_relu", 1, "dx, dweight, dbias with dy masked by the fused ReLU's output",
                    [](Backend b, const Scale& s) { return bn_backward_case(b, s, true); }});
const Register r3f({"batchnorm", "bn_frozen_bwd_relu", 1, "frozen BN + ReLU: dx = scale * dy masked by the output",
                    bn_frozen_backward_relu_case});
const Register r3fold({"batchnorm", "bn_fold", 1, "frozen BN folded into the conv: w' = w * scale, b', scale",
                       [](Backend b, const Scale& s) { return bn_fold_case(b, s, false); }});
const Register r3foldb({"batchnorm", "bn_fold_bias", 1, "the same with the conv's own bias folded in",
                        [](Backend b, const Scale& s) { return bn_fold_case(b, s, true); }});
const Register r4({"resize", "bilinear", 1, "logits to input size, align_corners",
                   [](Backend b, const Scale& s) { return resize_case(b, s, false, false); }});
const Register r5({"resize", "bilinear_backward", 1, "gather over the output ranges (no atomics)",
                   [](Backend b, const Scale& s) { return resize_case(b, s, true, false); }});
const Register r5n({"resize", "nearest", 1, "f32 maps to the input size",
                    [](Backend b, const Scale& s) { return resize_case(b, s, false, true); }});
const Register r5nb({"resize", "nearest_backward", 1, "gather over the output ranges (no atomics)",
                     [](Backend b, const Scale& s) { return resize_case(b, s, true, true); }});
const Register r6({"pool", "max_pool", 1, "3x3 s2 p1 ceil, with argmax",
                   [](Backend b, const Scale& s) { return max_pool_case(b, s, false); }});
const Register r7({"pool", "max_pool_backward", 1, "gather from the argmax",
                   [](Backend b, const Scale& s) { return max_pool_case(b, s, true); }});

}  // namespace
}  // namespace lab
