// Optimizers, schedules, EMA, and the module tree (names, state_dict layout conversion).
// The Adam, SGD and EMA kernels' emulated-vs-CPU checks are the kernel lab's entries
// (bench/lab/k_elementwise.cpp, run by tests/test_kernel_lab.cpp).
#include "nn/module.h"
#include "nn/optim.h"
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
