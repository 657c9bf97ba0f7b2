// Kernel lab: elementwise kernels and the optimizer updates (Adam, SGD, EMA), on the
// layer4 activations of the reference protocol (16 x 33 x 65 x 2048) and on the parameters
// of DeepLab-v2 ResNet-101 with the projection head (44.5 M floats).
#include <algorithm>
#include <memory>

#include "bench/lab/lab.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/optim.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/optim.h"

namespace lab {
namespace {

using kernels::Bcast;
using kernels::Binary;
using kernels::Unary;

constexpr double kRtol = 1e-5, kAtol = 1e-6;  // one rounding of f32 arithmetic, FMA contraction

int64_t features(const Scale& s) { return s.N * s.h * s.w * s.C; }
std::string feature_shape(const Scale& s) { return dims({s.N, s.h, s.w, s.C}); }

// n floats per buffer, `count` buffers, uniform in [-1, 1) with distinct seeds, uploaded.
std::vector<Buf<float>> inputs(Backend b, int64_t n, int count) {
  std::vector<Buf<float>> v;
  for (int i = 0; i < count; ++i) {
    v.emplace_back(b, n);
    fill_uniform(v.back().vec(), -1.f, 1.f, 100 + uint64_t(i));
    v.back().upload();
  }
  return v;
}

// out = a (op) b, same shapes or b broadcast. `off` > 0: every buffer is used from element
// `off` on, so one element past a 16-byte boundary takes the scalar kernel (binary_kernel)
// instead of the 16-byte one (binary16_kernel) that aligned buffers get.
Case binary_case(Backend b, const Scale& s, Binary op, Bcast bc, int64_t off = 0) {
  const int64_t n = features(s), nb = bc == Bcast::channel ? s.C : n;
  auto st = std::make_shared<std::vector<Buf<float>>>(inputs(b, n + off, 2));
  (*st)[1] = Buf<float>(b, nb + off);
  fill_uniform((*st)[1].vec(), 0.5f, 1.5f, 7);
  (*st)[1].upload();
  st->emplace_back(b, n + off);
  st->back().upload();  // the `off` elements before the output are left as they are on both sides
  auto& v = *st;
  return make_case(
      b, feature_shape(s), double(n + nb + n) * 4,
      [&v, st, op, bc, n, s, off] {
        kernels::cpu::binary(op, v[0].host() + off, v[1].host() + off, v[2].host() + off, n, bc, s.C);
      },
      [&v, st, op, bc, n, s, off, b] {
        LAB_DEV(b, binary_f32, op, v[0].dev() + off, v[1].dev() + off, v[2].dev() + off, n, bc, s.C);
      },
      [&v, st] { return compare("out", v[2].download(), v[2].vec(), kRtol, kAtol); });
}

// Version 2 of mul_channel: the same x * w[c] through the BatchNorm apply kernel (mean and
// bias null), which walks rows x channels instead of taking i % C per element. Checked on
// both backends against version 1's CPU kernel.
Case mul_channel_bn_case(Backend b, const Scale& s) {
  const int64_t n = features(s), M = n / s.C;
  auto st = std::make_shared<std::vector<Buf<float>>>(inputs(b, n, 1));
  st->emplace_back(b, s.C);
  fill_uniform((*st)[1].vec(), 0.5f, 1.5f, 7);
  (*st)[1].upload();
  st->emplace_back(b, n);
  auto& v = *st;
  return make_case(
      b, feature_shape(s), double(2 * n + s.C) * 4,
      [&v, st, M, s] { kernels::cpu::bn_apply(v[0].host(), M, s.C, (const float*)nullptr, v[1].host(), (const float*)nullptr, v[2].host()); },
      [&v, st, M, s, b] { LAB_DEV(b, bn_apply_f32, v[0].dev(), M, s.C, nullptr, v[1].dev(), nullptr, v[2].dev()); },
      [&v, st, n, s] {
        std::vector<float> ref(static_cast<size_t>(n));
        kernels::cpu::binary(Binary::mul, v[0].host(), v[1].host(), ref.data(), n, Bcast::channel, s.C);
        return all_of({compare("out vs v1", v[2].vec(), ref, kRtol, kAtol),
                       compare("out", v[2].download(), v[2].vec(), kRtol, kAtol)});
      });
}

Case relu_case(Backend b, const Scale& s) {
  const int64_t n = features(s);
  auto st = std::make_shared<std::vector<Buf<float>>>(inputs(b, n, 2));
  auto& v = *st;
  return make_case(
      b, feature_shape(s), double(2 * n) * 4,
      [&v, st, n] { kernels::cpu::unary(Unary::relu, v[0].host(), v[1].host(), n, 0.f, 0.f); },
      [&v, st, n, b] { LAB_DEV(b, unary_f32, Unary::relu, v[0].dev(), v[1].dev(), n, 0.f, 0.f); },
      [&v, st] { return compare("y", v[1].download(), v[1].vec(), 0, 0); });
}

// The ReLU gradient reads x and the upstream gradient, writes gx (y is not needed).
Case relu_backward_case(Backend b, const Scale& s) {
  const int64_t n = features(s);
  auto st = std::make_shared<std::vector<Buf<float>>>(inputs(b, n, 3));
  auto& v = *st;
  return make_case(
      b, feature_shape(s), double(3 * n) * 4,
      [&v, st, n] {
        kernels::cpu::unary_backward(Unary::relu, v[0].host(), v[0].host(), v[1].host(), v[2].host(), n, 0.f, 0.f);
      },
      [&v, st, n, b] {
        LAB_DEV(b, unary_backward_f32, Unary::relu, v[0].dev(), v[0].dev(), v[1].dev(), v[2].dev(), n, 0.f, 0.f);
      },
      [&v, st] { return compare("gx", v[2].download(), v[2].vec(), 0, 0); });
}

Case axpy_case(Backend b, const Scale& s) {
  const int64_t n = features(s);
  auto st = std::make_shared<std::vector<Buf<float>>>(inputs(b, n, 2));
  auto& v = *st;
  return make_case(
      b, feature_shape(s), double(3 * n) * 4, [&v, st, n] { kernels::cpu::axpy(0.5f, v[0].host(), v[1].host(), n); },
      [&v, st, n, b] { LAB_DEV(b, axpy_f32, 0.5f, v[0].dev(), v[1].dev(), n); },
      [&v, st] { return compare("y", v[1].download(), v[1].vec(), kRtol, kAtol); });
}

// Optimizer updates run in place: check() starts both backends from the same uploaded state.
Case adam_case(Backend b, const Scale& s) {
  const int64_t n = s.params;
  auto st = std::make_shared<std::vector<Buf<float>>>(inputs(b, n, 4));  // p, g, m, v
  auto& v = *st;
  for (float& x : v[3].vec()) x = x * x;  // the second moment is non-negative
  v[3].upload();
  const kernels::AdamParams a{1e-4f, 0.9f, 0.999f, 1e-8f, 1e-4f, 1 - 0.9f * 0.9f, 1 - 0.999f * 0.999f};
  return make_case(
      b, dims({n}), double(7 * n) * 4,
      [&v, st, n, a] { kernels::cpu::adam_step(v[0].host(), v[1].host(), v[2].host(), v[3].host(), n, a); },
      [&v, st, n, a, b] { LAB_DEV(b, adam_step_f32, v[0].dev(), v[1].dev(), v[2].dev(), v[3].dev(), n, a); },
      [&v, st] {
        return all_of({compare("p", v[0].download(), v[0].vec(), kRtol, kAtol),
                       compare("m", v[2].download(), v[2].vec(), kRtol, kAtol),
                       compare("v", v[3].download(), v[3].vec(), kRtol, kAtol)});
      });
}

Case sgd_case(Backend b, const Scale& s) {
  const int64_t n = s.params;
  auto st = std::make_shared<std::vector<Buf<float>>>(inputs(b, n, 3));  // p, g, momentum buffer
  auto& v = *st;
  const kernels::SgdParams p{1e-3f, 0.9f, 0.f, 1e-4f, false, false};
  return make_case(
      b, dims({n}), double(5 * n) * 4, [&v, st, n, p] { kernels::cpu::sgd_step(v[0].host(), v[1].host(), v[2].host(), n, p); },
      [&v, st, n, p, b] { LAB_DEV(b, sgd_step_f32, v[0].dev(), v[1].dev(), v[2].dev(), n, p); },
      [&v, st] {
        return all_of({compare("p", v[0].download(), v[0].vec(), kRtol, kAtol),
                       compare("buf", v[2].download(), v[2].vec(), kRtol, kAtol)});
      });
}

Case ema_case(Backend b, const Scale& s) {
  const int64_t n = s.params;
  auto st = std::make_shared<std::vector<Buf<float>>>(inputs(b, n, 2));  // teacher, student
  auto& v = *st;
  return make_case(
      b, dims({n}), double(3 * n) * 4, [&v, st, n] { kernels::cpu::ema_step(v[0].host(), v[1].host(), n, 0.99f); },
      [&v, st, n, b] { LAB_DEV(b, ema_step_f32, v[0].dev(), v[1].dev(), n, 0.99f); },
      [&v, st] { return compare("teacher", v[0].download(), v[0].vec(), kRtol, kAtol); });
}

// Version 2 of the optimizer updates: one launch over an arena of n floats with three spans
// in two groups, gaps between them left alone (checked: they must come back unchanged), and
// SGD's first-step flag on one span.
kernels::ArenaSpans arena_spans(int64_t n) {
  kernels::ArenaSpans sp{};
  const int64_t q = n / 4, b1 = std::min(q + 16, n), b2 = std::min(2 * q + 40, n);
  sp.span[0] = {0, q, 0, 0};
  sp.span[1] = {b1, std::min(q, n - b1), 1, 1};
  sp.span[2] = {b2, std::max<int64_t>(n - b2 - 3, 0), 0, 0};
  sp.n = 3;
  sp.total = sp.span[0].count + sp.span[1].count + sp.span[2].count;
  sp.lr[0] = 1e-4f, sp.lr[1] = 1e-3f;
  sp.weight_decay[0] = 1e-4f, sp.weight_decay[1] = 0.f;
  return sp;
}

Case adam_arena_case(Backend b, const Scale& s) {
  const int64_t n = s.params;
  auto st = std::make_shared<std::vector<Buf<float>>>(inputs(b, n, 4));  // p, g, m, v
  auto& v = *st;
  for (float& x : v[3].vec()) x = x * x;
  v[3].upload();
  const kernels::AdamParams a{0.f, 0.9f, 0.999f, 1e-8f, 0.f, 1 - 0.9f * 0.9f, 1 - 0.999f * 0.999f};
  const kernels::ArenaSpans sp = arena_spans(n);
  return make_case(
      b, dims({n}), double(7 * sp.total) * 4,
      [&v, st, sp, a] { kernels::cpu::adam_arena(v[0].host(), v[1].host(), v[2].host(), v[3].host(), sp, a); },
      [&v, st, sp, a, b] { LAB_DEV(b, adam_arena_f32, v[0].dev(), v[1].dev(), v[2].dev(), v[3].dev(), sp, a); },
      [&v, st] {
        return all_of({compare("p", v[0].download(), v[0].vec(), kRtol, kAtol),
                       compare("m", v[2].download(), v[2].vec(), kRtol, kAtol),
                       compare("v", v[3].download(), v[3].vec(), kRtol, kAtol)});
      });
}

Case sgd_arena_case(Backend b, const Scale& s) {
  const int64_t n = s.params;
  auto st = std::make_shared<std::vector<Buf<float>>>(inputs(b, n, 3));
  auto& v = *st;
  const kernels::SgdParams p{0.f, 0.9f, 0.f, 0.f, false, false};
  const kernels::ArenaSpans sp = arena_spans(n);
  return make_case(
      b, dims({n}), double(5 * sp.total) * 4,
      [&v, st, sp, p] { kernels::cpu::sgd_arena(v[0].host(), v[1].host(), v[2].host(), sp, p); },
      [&v, st, sp, p, b] { LAB_DEV(b, sgd_arena_f32, v[0].dev(), v[1].dev(), v[2].dev(), sp, p); },
      [&v, st] {
        return all_of({compare("p", v[0].download(), v[0].vec(), kRtol, kAtol),
                       compare("buf", v[2].download(), v[2].vec(), kRtol, kAtol)});
      });
}

// The teacher's parameter and buffer arenas as two spans of one launch (a tenth of n for the
// buffers), two separate allocations each.
Case ema_spans_case(Backend b, const Scale& s) {
  const int64_t n = s.params, nb = n / 10 + 1;
  auto st = std::make_shared<std::vector<Buf<float>>>(inputs(b, n, 2));  // teacher, student
  for (int i = 0; i < 2; ++i) {
    st->emplace_back(b, nb);
    fill_uniform(st->back().vec(), -1.f, 1.f, 200 + uint64_t(i));
    st->back().upload();
  }
  auto& v = *st;
  auto spans = [&v, n, nb](bool dev) {
    kernels::EmaSpans<float> e{};
    e.n = 2;
    e.total = n + nb;
    e.teacher[0] = dev ? v[0].dev() : v[0].host(), e.student[0] = dev ? v[1].dev() : v[1].host(), e.count[0] = n;
    e.teacher[1] = dev ? v[2].dev() : v[2].host(), e.student[1] = dev ? v[3].dev() : v[3].host(), e.count[1] = nb;
    return e;
  };
  return make_case(
      b, dims({n}) + "+" + dims({nb}), double(3 * (n + nb)) * 4, [&v, st, spans] { kernels::cpu::ema_spans(spans(false), 0.99f); },
      [&v, st, spans, b] { LAB_DEV(b, ema_spans_f32, spans(true), 0.99f); },
      [&v, st] {
        return all_of({compare("teacher", v[0].download(), v[0].vec(), kRtol, kAtol),
                       compare("teacher buffers", v[2].download(), v[2].vec(), kRtol, kAtol)});
      });
}

const Register r1({"elementwise", "add", 1, "a + b, same shapes (binary_f32; aligned: 16-byte accesses)",
                   [](Backend b, const Scale& s) { return binary_case(b, s, Binary::add, Bcast::same); }});
const Register r1u({"elementwise", "add", 2,
                    "a + b on buffers one element off 16-byte alignment: the scalar kernel (binary_f32)",
                    [](Backend b, const Scale& s) { return binary_case(b, s, Binary::add, Bcast::same, 1); }});
const Register r1b({"elementwise", "add_relu", 1, "relu(a + b), same shapes: a residual block's end (binary_f32)",
                    [](Backend b, const Scale& s) { return binary_case(b, s, Binary::add_relu, Bcast::same); }});
const Register r2({"elementwise", "mul_channel", 1, "a * w[c], per-channel broadcast (binary_f32)",
                   [](Backend b, const Scale& s) { return binary_case(b, s, Binary::mul, Bcast::channel); }});
const Register r2b({"elementwise", "mul_channel", 2, "x * w[c] through bn_apply (rows x channels, no modulo)",
                    mul_channel_bn_case});
const Register r3({"elementwise", "relu", 1, "unary_f32 relu", relu_case});
const Register r4({"elementwise", "relu_backward", 1, "unary_backward_f32 relu", relu_backward_case});
const Register r5({"elementwise", "axpy", 1, "y += a x (gradient accumulation)", axpy_case});
const Register r6({"optim", "adam", 1, "fused Adam step, L2 weight decay", adam_case});
const Register r7({"optim", "sgd", 1, "fused SGD step, momentum 0.9", sgd_case});
const Register r8({"optim", "ema", 1, "teacher EMA update", ema_case});
const Register r6b({"optim", "adam", 2, "one launch over a parameter arena: 3 spans, 2 groups (adam_arena)", adam_arena_case});
const Register r7b({"optim", "sgd", 2, "one launch over a parameter arena, first-step span (sgd_arena)", sgd_arena_case});
const Register r8b({"optim", "ema", 2, "parameter and buffer arenas in one launch (ema_spans)", ema_spans_case});

}  // namespace
}  // namespace lab
