// Optimizers, schedules, EMA, and the module tree (names, state_dict layout conversion).
// The Adam, SGD and EMA kernels' emulated-vs-CPU checks are the kernel lab's entries
// (bench/lab/k_elementwise.cpp, run by tests/test_kernel_lab.cpp): adam_kernel, sgd_kernel and
// ema_kernel (version 1), adam_arena_kernel, sgd_arena_kernel and ema_spans_kernel (version 2).
// Their 16-byte (float4) path's heads and tails (buffers 1-3 floats past a 16-byte boundary,
// spans with odd begins and counts, buffers of different alignment) are checked here, bit for
// bit against the CPU kernels, as is norm.cu's apply4_kernel (BatchNorm apply 4 channels wide).
#include <cstring>

#include "kernels/cpu/norm.h"
#include "kernels/cpu/optim.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/optim.h"
#include "kernels/launch_counter.h"
#include "nn/deeplab.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "tests/emu_helpers.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3::nn;
using namespace c3test;

namespace {
// One step with a given gradient value on a one-element parameter.
void set_grad_and_step(Optimizer& opt, Tensor& p, double g) {
  p.zero_grad();
  sum(mul(p, g)).backward();  // d/dp (g * p) = g
  opt.step();
}
}  // namespace

TEST_CASE("optim: Adam matches two steps computed by hand") {
  Tensor p = Tensor::from_vector<double>({1.0}, {1}).set_requires_grad();
  Adam adam({{"all", {p}, 0.1, 0.0}});
  set_grad_and_step(adam, p, 2.0);
  // m = 0.2, v = 0.004, mhat = 2, vhat = 4: p = 1 - 0.1 * 2 / (2 + 1e-8)
  CHECK(p.item() == doctest::Approx(0.9).epsilon(1e-6));  // hyper-parameters are passed as f32
  set_grad_and_step(adam, p, 2.0);
  // m = 0.38, v = 0.007996; mhat = 0.38/0.19 = 2, vhat = 0.007996/0.001999 = 4: p = 0.9 - 0.1
  CHECK(p.item() == doctest::Approx(0.8).epsilon(1e-6));
  CHECK(adam.steps() == 2);
}

TEST_CASE("optim: SGD momentum, nesterov and weight decay by hand") {
  Tensor p = Tensor::from_vector<double>({1.0}, {1}).set_requires_grad();
  SGD sgd({{"all", {p}, 0.1, 0.0}}, 0.9);
  set_grad_and_step(sgd, p, 1.0);  // buf = 1: p = 0.9
  CHECK(p.item() == doctest::Approx(0.9));
  set_grad_and_step(sgd, p, 1.0);  // buf = 0.9 + 1 = 1.9: p = 0.9 - 0.19
  CHECK(p.item() == doctest::Approx(0.71));

  Tensor q = Tensor::from_vector<double>({1.0}, {1}).set_requires_grad();
  SGD nes({{"all", {q}, 0.1, 0.0}}, 0.9, true);
  set_grad_and_step(nes, q, 1.0);  // g = 1 + 0.9 * 1 = 1.9: q = 0.81
  CHECK(q.item() == doctest::Approx(0.81));
  set_grad_and_step(nes, q, 1.0);  // buf = 1.9, g = 1 + 0.9 * 1.9 = 2.71: q = 0.539
  CHECK(q.item() == doctest::Approx(0.539));

  Tensor r = Tensor::from_vector<double>({1.0}, {1}).set_requires_grad();
  SGD wd({{"all", {r}, 0.1, 0.5}}, 0.0);
  set_grad_and_step(wd, r, 1.0);  // g = 1 + 0.5 * 1: r = 1 - 0.15
  CHECK(r.item() == doctest::Approx(0.85));
}

TEST_CASE("optim: per-group learning rates, lr factor, parameters without grad are skipped") {
  Tensor a = Tensor::from_vector<double>({1.0}, {1}).set_requires_grad();
  Tensor b = Tensor::from_vector<double>({1.0}, {1}).set_requires_grad();
  Tensor c = Tensor::from_vector<double>({1.0}, {1}).set_requires_grad();
  SGD sgd({{"backbone", {a}, 0.01, 0.0}, {"head", {b, c}, 0.1, 0.0}}, 0.0);
  sgd.set_lr_factor(0.5);
  CHECK(sgd.lr(1) == doctest::Approx(0.05));
  sum(add(a, b)).backward();  // c gets no gradient
  sgd.step();
  CHECK(a.item() == doctest::Approx(1 - 0.005));
  CHECK(b.item() == doctest::Approx(1 - 0.05));
  CHECK(c.item() == 1.0);
  CHECK_THROWS_WITH_AS(SGD({{"x", {Tensor::zeros({1})}, 0.1, 0}}), doctest::Contains("does not require grad"), Error);
}

TEST_CASE("optim: poly schedule with warm-up, EMA decay and update") {
  PolySchedule s{100, 0.9, 0, 0};
  CHECK(s.factor(0) == 1.0);
  CHECK(s.factor(50) == doctest::Approx(std::pow(0.5, 0.9)));
  CHECK(s.factor(100) == 0.0);
  PolySchedule w{100, 0.9, 10, 0.1};
  CHECK(w.factor(0) == doctest::Approx(0.1));
  CHECK(w.factor(5) == doctest::Approx(0.55));
  CHECK(w.factor(10) == doctest::Approx(std::pow(0.9, 0.9)));
  CHECK(ema_decay(0) == 0.0);
  CHECK(ema_decay(1) == 0.5);
  CHECK(ema_decay(9) == doctest::Approx(0.9));
  CHECK(ema_decay(1000) == 0.99);
  Tensor t = Tensor::from_vector<float>({1, 2}, {2}), st = Tensor::from_vector<float>({3, 6}, {2});
  ema_update({t}, {st}, 0.75);  // 0.75 * t + 0.25 * s
  CHECK(t.to_vector<float>() == std::vector<float>{1.5f, 3.0f});
}

namespace {
struct TinyConv : Module {
  Tensor weight, bias, running_mean;
  TinyConv(int64_t out, int64_t k, int64_t in) {
    weight = Tensor::zeros({out, k, k, in}).set_requires_grad();
    bias = Tensor::zeros({out}).set_requires_grad();
    running_mean = Tensor::zeros({out});
    register_parameter("weight", &weight, ParamLayout::conv_ohwi);
    register_parameter("bias", &bias);
    register_buffer("running_mean", &running_mean);
  }
};
struct Net : Module {
  std::shared_ptr<TinyConv> conv1;
  std::shared_ptr<ModuleList> layer1;
  Net() {
    conv1 = register_module("conv1", std::make_shared<TinyConv>(2, 2, 3));
    layer1 = register_module("layer1", std::make_shared<ModuleList>());
    layer1->push_back(std::make_shared<TinyConv>(1, 1, 2));
  }
};
}  // namespace

TEST_CASE("module: PyTorch names, OIHW conversion, strict and non-strict loading") {
  Net net;
  auto names = [](const std::vector<NamedTensor>& v) {
    std::vector<std::string> out;
    for (auto& p : v) out.push_back(p.name);
    return out;
  };
  CHECK(names(net.named_parameters()) == std::vector<std::string>{"conv1.weight", "conv1.bias", "layer1.0.weight", "layer1.0.bias"});
  CHECK(names(net.named_buffers()) == std::vector<std::string>{"conv1.running_mean", "layer1.0.running_mean"});
  CHECK(net.num_parameters() == 2 * 2 * 2 * 3 + 2 + 2 + 1);
  // Our weight [O=2, kh=2, kw=2, I=3]: value = 1000*o + 100*y + 10*x + i.
  std::vector<float> w(24);
  for (int o = 0; o < 2; ++o)
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 2; ++x)
        for (int i = 0; i < 3; ++i) w[((o * 2 + y) * 2 + x) * 3 + i] = 1000 * o + 100 * y + 10 * x + i;
  net.conv1->weight.copy_(Tensor::from_vector(w, {2, 2, 2, 3}));
  auto sd = net.state_dict();
  REQUIRE(sd[0].first == "conv1.weight");
  CHECK(sd[0].second.shape() == Shape{2, 3, 2, 2});  // PyTorch [O, I, kh, kw]
  auto pt = sd[0].second.to_vector<float>();
  CHECK(pt[((1 * 3 + 2) * 2 + 1) * 2 + 0] == 1000 + 100 + 0 + 2);  // [o=1, i=2, y=1, x=0]
  Net other;
  CHECK(other.load_state_dict(sd).loaded == 6);
  CHECK(other.conv1->weight.to_vector<float>() == w);

  auto broken = sd;
  broken.erase(broken.begin() + 1);                                   // conv1.bias missing
  broken.emplace_back("fc.weight", Tensor::zeros({3}));               // unexpected
  broken[1].second = Tensor::zeros({5, 2, 1, 1});                     // layer1.0.weight wrong shape
  CHECK_THROWS_WITH_AS(other.load_state_dict(broken), doctest::Contains("conv1.bias"), Error);
  CHECK_THROWS_WITH_AS(other.load_state_dict(broken), doctest::Contains("layer1.0.weight: file [5,2,1,1] vs model [1,2,1,1]"), Error);
  LoadReport rep = other.load_state_dict(broken, false);
  CHECK(rep.missing == std::vector<std::string>{"conv1.bias"});
  CHECK(rep.unexpected == std::vector<std::string>{"fc.weight"});
  CHECK(rep.mismatched.size() == 1);
  CHECK(rep.loaded == 4);
  // A dtype other than the parameter's is an error, not a silent cast (F16/BF16 files are
  // widened to F32 when read, so half-precision weights still load).
  auto wrong_dtype = sd;
  wrong_dtype[1].second = wrong_dtype[1].second.cast(DType::f64);
  CHECK_THROWS_WITH_AS(other.load_state_dict(wrong_dtype), doctest::Contains("conv1.bias: file f64 vs model f32"), Error);
}

namespace {
DeepLabConfig tiny_deeplab() {
  DeepLabConfig cfg;
  cfg.head = HeadKind::deeplab_v3plus;
  cfg.num_classes = 4;
  cfg.backbone.depth = 18;
  cfg.backbone.width = 0.125;
  cfg.backbone.output_stride = 16;
  cfg.aspp_channels = 8;
  cfg.low_level_channels = 4;
  cfg.proj_dim = 4;
  cfg.dropout = 0;
  return cfg;
}
// A loss over the logits and, when `contrast`, the projection head too (which otherwise gets
// no gradient, as in the warm-up phase).
Tensor tiny_loss(DeepLab& m, const Tensor& x, bool contrast) {
  ResNetFeatures f = m.features(x);
  Tensor loss = sum(mul(m.classify(f), m.classify(f)));
  if (contrast) loss = add(loss, sum(m.project(f.layer4)));
  return loss;
}
std::unique_ptr<Optimizer> make_opt(DeepLab& m, bool adam) {
  std::vector<ParamGroup> g = {{"backbone", m.backbone_parameters(), 0.01, 1e-4}, {"head", m.head_parameters(), 0.1, 1e-4}};
  if (adam) return std::make_unique<Adam>(g);
  return std::make_unique<SGD>(g, 0.9);
}
double max_diff(const std::vector<std::pair<std::string, Tensor>>& a, const std::vector<std::pair<std::string, Tensor>>& b) {
  REQUIRE(a.size() == b.size());
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE(a[i].first == b[i].first);
    const auto x = a[i].second.cast(DType::f64).to_vector<double>(), y = b[i].second.cast(DType::f64).to_vector<double>();
    REQUIRE(x.size() == y.size());
    for (size_t k = 0; k < x.size(); ++k) d = std::max(d, std::abs(x[k] - y[k]));
  }
  return d;
}
}  // namespace

TEST_CASE("arena: pack_parameters makes views of one buffer, keeps names and values, gradients land in the slots") {
  DeepLab m(tiny_deeplab(), 5);
  const auto before = m.state_dict();
  std::vector<bool> trainable;
  for (const NamedTensor& p : m.named_parameters()) trainable.push_back(p.tensor->requires_grad());
  m.pack_parameters();
  const Arena& a = m.arena();
  REQUIRE(a.defined());
  CHECK(max_diff(before, m.state_dict()) == 0);
  size_t k = 0;
  for (const NamedTensor& p : m.named_parameters()) {
    CHECK(p.tensor->same_storage(a.params));
    CHECK(p.tensor->requires_grad() == trainable[k++]);
    CHECK(p.tensor->impl().offset % (kArenaAlign * 4) == 0);
  }
  for (const NamedTensor& b : m.named_buffers())
    CHECK(b.tensor->same_storage(a.buffers) == (b.tensor->dtype() == DType::f32));
  // The arenas hold the parameters (and zeros in the gaps) and nothing else.
  int64_t n = 0;
  for (const NamedTensor& p : m.named_parameters()) n += (p.tensor->numel() + kArenaAlign - 1) / kArenaAlign * kArenaAlign;
  CHECK(a.params.numel() == n);
  CHECK(a.grads.numel() == n);

  Tensor x = random_tensor({2, 33, 33, 3}, 2);
  tiny_loss(m, x, false).backward();
  Tensor w = m.head_parameters()[0];
  REQUIRE(w.grad().defined());
  CHECK(w.grad().same_storage(a.grads));
  const auto g1 = w.grad().to_vector<float>();
  tiny_loss(m, x, false).backward();  // accumulates in place: twice the gradient
  const auto g2 = w.grad().to_vector<float>();
  for (size_t i = 0; i < g1.size(); i += 7) CHECK(g2[i] == doctest::Approx(2 * g1[i]).epsilon(1e-5));
  for (const Tensor& p : m.proj_head->parameters()) CHECK_FALSE(p.grad().defined());
  m.zero_grad();
  CHECK_FALSE(w.grad().defined());
  tiny_loss(m, x, false).backward();  // after zero_grad the slot is overwritten, not added to
  const auto g3 = w.grad().to_vector<float>();
  for (size_t i = 0; i < g1.size(); i += 7) CHECK(g3[i] == g1[i]);
}

TEST_CASE("arena: Adam and SGD over a packed model give the unpacked model's numbers exactly, in one launch a step") {
  for (bool adam : {true, false}) {
    CAPTURE(adam);
    DeepLab plain(tiny_deeplab(), 5), packed(tiny_deeplab(), 5);
    packed.pack_parameters();
    auto op = make_opt(plain, adam), ok = make_opt(packed, adam);
    for (int step = 0; step < 4; ++step) {
      // Steps 0-1 leave the projection head without a gradient (skipped: its state starts at
      // step 2, SGD's momentum buffer then starts from its gradient while the rest continue).
      const bool contrast = step >= 2;
      Tensor x = random_tensor({2, 33, 33, 3}, 10 + step);
      for (DeepLab* m : {&plain, &packed}) m->zero_grad();
      tiny_loss(plain, x, contrast).backward();
      tiny_loss(packed, x, contrast).backward();
      op->set_lr_factor(1.0 - 0.2 * step);  // 0.4 at the last step
      ok->set_lr_factor(1.0 - 0.2 * step);
      op->step();
      const uint64_t l0 = kernels::launches();
      ok->step();
      CHECK(kernels::launches() - l0 == 1);
      CHECK(max_diff(plain.state_dict(), packed.state_dict()) == 0);
    }
    const auto so = op->state(), sk = ok->state();
    CHECK(max_diff(so, sk) == 0);
    CHECK(so.size() == (adam ? 2 : 1) * (plain.backbone_parameters().size() + plain.head_parameters().size()));

    // A checkpoint's state loads into a packed optimizer and continues identically.
    DeepLab resumed(tiny_deeplab(), 5);
    resumed.load_state_dict(packed.state_dict());
    resumed.pack_parameters();
    auto orr = make_opt(resumed, adam);
    orr->load_state(sk, ok->steps());
    orr->set_lr_factor(0.4);
    Tensor x = random_tensor({2, 33, 33, 3}, 99);
    for (DeepLab* m : {&plain, &resumed}) {
      m->zero_grad();
      tiny_loss(*m, x, true).backward();
    }
    op->step();
    orr->step();
    CHECK(max_diff(plain.state_dict(), resumed.state_dict()) == 0);
  }
}

TEST_CASE("arena: the EMA of a packed teacher is one launch and equals the tensor-by-tensor update") {
  DeepLab s1(tiny_deeplab(), 1), t1(tiny_deeplab(), 2), s2(tiny_deeplab(), 1), t2(tiny_deeplab(), 2);
  s2.pack_parameters();
  t2.pack_parameters();
  const uint64_t l0 = kernels::launches();
  ema_update(t2, s2, 0.9);
  CHECK(kernels::launches() - l0 == 1);
  ema_update(t1, s1, 0.9);
  CHECK(max_diff(t1.state_dict(), t2.state_dict()) == 0);
  CHECK(max_diff(t1.state_dict(), s1.state_dict()) > 0);
}

TEST_CASE("arena: the optimizer step and the EMA of ResNet-101 DeepLab-v3+ are at most 3 launches") {
  DeepLabConfig cfg;
  cfg.head = HeadKind::deeplab_v3plus;
  cfg.backbone.depth = 101;
  cfg.backbone.output_stride = 16;
  DeepLab student(cfg, 1), teacher(cfg, 1);
  student.pack_parameters();
  teacher.pack_parameters();
  SGD opt({{"backbone", student.backbone_parameters(), 0.01, 1e-4}, {"head", student.head_parameters(), 0.1, 1e-4}}, 0.9);
  tiny_loss(student, random_tensor({2, 33, 33, 3}, 3), true).backward();
  const uint64_t l0 = kernels::launches();
  opt.step();
  const uint64_t l1 = kernels::launches();
  ema_update(teacher, student, 0.99);
  const uint64_t n = kernels::launches() - l0;
  MESSAGE("ResNet-101 DeepLab-v3+ (", student.num_parameters(), " parameters): optimizer step ", l1 - l0, " + EMA ",
          n - (l1 - l0), " launches");
  CHECK(n <= 3);
  CHECK(l1 - l0 == 1);  // every trainable parameter has a gradient: two spans (two groups), one launch
  CHECK(n - (l1 - l0) == 1);
}

TEST_CASE("arena: an empty parameter group does not stop the arena path") {
  DeepLab m(tiny_deeplab(), 5);
  m.pack_parameters();
  SGD opt({{"none", {}, 0.1, 0.0}, {"all", m.head_parameters(), 0.1, 0.0}}, 0.9);
  tiny_loss(m, random_tensor({2, 33, 33, 3}, 4), false).backward();
  const Tensor w = m.head_parameters()[0];
  const std::vector<float> before = w.to_vector<float>(), g = w.grad().to_vector<float>();
  const uint64_t l0 = kernels::launches();
  opt.step();
  CHECK(kernels::launches() - l0 == 1);
  const std::vector<float> after = w.to_vector<float>();
  for (size_t i = 0; i < after.size(); i += 5) CHECK(after[i] == doctest::Approx(before[i] - 0.1f * g[i]).epsilon(1e-6));
}

namespace {
// A buffer of n floats starting `offset` floats (0-3) past a 16-byte boundary, filled from seed.
struct OffsetBuf {
  std::vector<float> store;
  int64_t n;
  int offset;
  float* p;
  OffsetBuf(int64_t n_, int offset_, uint32_t seed, float lo = -1.f, float hi = 1.f)
      : store(n_ + 8), n(n_), offset(offset_), p(place()) {
    const auto v = random_floats(n, seed, lo, hi);
    std::copy(v.begin(), v.end(), p);
  }
  OffsetBuf(const OffsetBuf& o) : store(o.n + 8), n(o.n), offset(o.offset), p(place()) { std::copy(o.p, o.p + n, p); }
  float* place() {
    const auto a = reinterpret_cast<uintptr_t>(store.data());
    return reinterpret_cast<float*>((a + 15) / 16 * 16) + offset;
  }
};
bool same_bits(const float* a, const float* b, int64_t n) { return std::memcmp(a, b, size_t(n) * sizeof(float)) == 0; }
}  // namespace

TEST_CASE("optim kernels: emulated 16-byte updates equal the CPU bit for bit at any alignment and count") {
  const kernels::AdamParams a{1e-2f, 0.9f, 0.999f, 1e-8f, 1e-3f, 1 - 0.9f * 0.9f, 1 - 0.999f * 0.999f};
  const int kOffsets[][4] = {{0, 0, 0, 0}, {1, 1, 1, 1}, {2, 2, 2, 2}, {3, 3, 3, 3}, {0, 1, 2, 3}, {1, 1, 1, 3}};
  for_each_fiber_order([&](const char* order) {
    for (const auto& off : kOffsets) {
      for (int64_t n : {1, 2, 3, 4, 5, 6, 7, 8, 13, 67, 258}) {
        CAPTURE(order); CAPTURE(n); CAPTURE(off[0]); CAPTURE(off[1]); CAPTURE(off[2]); CAPTURE(off[3]);
        OffsetBuf p(n, off[0], 1), g(n, off[1], 2), m(n, off[2], 3), v(n, off[3], 4, 0.f, 1.f);
        OffsetBuf pe = p, ge = g, me = m, ve = v;  // the same values at the same offsets
        kernels::cpu::adam_step(p.p, g.p, m.p, v.p, n, a);
        kernels::emu::adam_step_f32(pe.p, ge.p, me.p, ve.p, n, a);
        CHECK(same_bits(pe.p, p.p, p.n));
        CHECK(same_bits(me.p, m.p, m.n));
        CHECK(same_bits(ve.p, v.p, v.n));
        for (bool momentum : {true, false}) {
          const kernels::SgdParams sp{1e-2f, momentum ? 0.9f : 0.f, 0.f, 1e-3f, true, false};
          kernels::cpu::sgd_step(p.p, g.p, momentum ? m.p : nullptr, n, sp);
          kernels::emu::sgd_step_f32(pe.p, ge.p, momentum ? me.p : nullptr, n, sp);
          CHECK(same_bits(pe.p, p.p, p.n));
          CHECK(same_bits(me.p, m.p, m.n));
        }
        kernels::cpu::ema_step(p.p, g.p, n, 0.9f);
        kernels::emu::ema_step_f32(pe.p, ge.p, n, 0.9f);
        CHECK(same_bits(pe.p, p.p, p.n));
      }
    }
  });
}

TEST_CASE("optim kernels: emulated arena and EMA-span updates, odd span begins and counts, equal the CPU bit for bit") {
  const int64_t n = 300;
  // Odd begins and counts, empty and one-element spans, a long span, gaps left alone.
  const kernels::ArenaSpan spans[] = {{1, 5, 0, 0}, {9, 2, 1, 1}, {13, 130, 1, 0}, {143, 0, 0, 0},
                                      {150, 1, 0, 1}, {152, 3, 1, 0}, {157, 140, 0, 0}};
  kernels::ArenaSpans s{};
  for (const auto& sp : spans) s.span[s.n++] = sp, s.total += sp.count;
  s.lr[0] = 1e-2f, s.lr[1] = 3e-2f, s.weight_decay[0] = 1e-3f, s.weight_decay[1] = 0.f;
  const kernels::AdamParams a{0.f, 0.9f, 0.999f, 1e-8f, 0.f, 1 - 0.9f * 0.9f, 1 - 0.999f * 0.999f};
  const int kOffsets[][4] = {{0, 0, 0, 0}, {1, 1, 1, 1}, {3, 3, 3, 3}, {0, 2, 0, 0}};
  for_each_fiber_order([&](const char* order) {
    for (const auto& off : kOffsets) {
      CAPTURE(order); CAPTURE(off[0]); CAPTURE(off[1]); CAPTURE(off[2]); CAPTURE(off[3]);
      OffsetBuf p(n, off[0], 11), g(n, off[1], 12), m(n, off[2], 13), v(n, off[3], 14, 0.f, 1.f);
      OffsetBuf pe = p, ge = g, me = m, ve = v;
      kernels::cpu::adam_arena(p.p, g.p, m.p, v.p, s, a);
      kernels::emu::adam_arena_f32(pe.p, ge.p, me.p, ve.p, s, a);
      CHECK(same_bits(pe.p, p.p, p.n));
      CHECK(same_bits(me.p, m.p, m.n));
      CHECK(same_bits(ve.p, v.p, v.n));
      for (bool momentum : {true, false}) {  // no buffer: no momentum
        const kernels::SgdParams sgd{0.f, momentum ? 0.9f : 0.f, 0.1f, 0.f, false, false};
        kernels::cpu::sgd_arena(p.p, g.p, momentum ? v.p : nullptr, s, sgd);
        kernels::emu::sgd_arena_f32(pe.p, ge.p, momentum ? ve.p : nullptr, s, sgd);
        CHECK(same_bits(pe.p, p.p, p.n));
        CHECK(same_bits(ve.p, v.p, v.n));
      }
      // EMA spans: (teacher, student) pairs of their own alignments (span 1: student one float
      // off the teacher, scalar), odd lengths.
      auto ema = [&](bool emu) {
        kernels::EmaSpans<float> e{};
        OffsetBuf& t = emu ? pe : p;
        const OffsetBuf& st = emu ? ge : g;
        const int64_t begins[] = {0, 5, 100, 103}, counts[] = {3, 90, 2, 190};
        for (int k = 0; k < 4; ++k)
          e.teacher[k] = t.p + begins[k], e.student[k] = st.p + begins[k] + (k == 1 ? 1 : k == 3 ? 4 : 0), e.count[k] = counts[k];
        e.n = 4, e.total = 3 + 90 + 2 + 190;
        emu ? kernels::emu::ema_spans_f32(e, 0.9f) : kernels::cpu::ema_spans(e, 0.9f);
      };
      ema(false);
      ema(true);
      CHECK(same_bits(pe.p, p.p, p.n));
    }
  });
}

TEST_CASE("norm kernels: emulated BatchNorm apply 4 channels wide equals the CPU bit for bit (apply4_kernel)") {
  const int64_t M = 7;
  for (int64_t C : {4, 8, 12, 9}) {   // 9: not a multiple of 4, the scalar apply_kernel
    for (int offset : {0, 1}) {        // 1: unaligned x and y, the scalar apply_kernel
      for (int mode = 0; mode < 3; ++mode) {  // plain, fused ReLU, frozen backward's masked dy * scale
        CAPTURE(C); CAPTURE(offset); CAPTURE(mode);
        OffsetBuf x(M * C, offset, 21, -2.f, 2.f), mean(C, 0, 22), scale(C, 0, 23), bias(C, 0, 24);
        OffsetBuf relu_y(M * C, offset, 25), y(M * C, offset, 26), ye(M * C, offset, 26);
        const bool relu = mode == 1, masked = mode == 2;
        for (int64_t i = 0; i < M * C; i += 3) relu_y.p[i] = 0.f;
        kernels::cpu::bn_apply(x.p, M, C, masked ? nullptr : mean.p, scale.p, masked ? nullptr : bias.p, y.p, relu,
                               masked ? relu_y.p : nullptr);
        kernels::emu::bn_apply_f32(x.p, M, C, masked ? nullptr : mean.p, scale.p, masked ? nullptr : bias.p, ye.p,
                                   relu, masked ? relu_y.p : nullptr);
        CHECK(same_bits(ye.p, y.p, y.n));
      }
    }
  }
}
