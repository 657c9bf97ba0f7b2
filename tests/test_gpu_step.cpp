// The GPU path at the scale of a training step (GPU_TEST_CASEs: reported as skipped without a
// GPU; make gpu-check runs them first when one is at hand): cuBLAS at the contrastive shapes,
// one whole C3 step against the CPU step, the caching allocator on the device, and a few
// trainer steps twice with one seed. TF32 is off in the comparisons (FP32 both sides: only
// the summation order differs). The tolerances are estimates not yet checked on a GPU: the
// first make gpu-check run confirms or corrects them.

#include <cmath>
#include <fstream>
#include <optional>

#include "core/alloc.h"
#include "core/ops_conv.h"
#include "core/ops_matmul.h"
#include "core/precision.h"
#include "core/rng.h"
#include "data/synthetic.h"
#include "nn/deeplab.h"
#include "semiseg/c3_step.h"
#include "semiseg/config.h"
#include "semiseg/trainer.h"
#include "tests/data_helpers.h"
#include "tests/helpers.h"
#include "tests/step_helpers.h"

using namespace c3;

namespace {
// Relative L2 distance of two tensors (any devices).
double rel_l2(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = c3test::as_doubles(a.cpu()), y = c3test::as_doubles(b.cpu());
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) num += (x[i] - y[i]) * (x[i] - y[i]), den += y[i] * y[i];
  return std::sqrt(num / std::max(den, 1e-30));
}
// The largest relative L2 difference between the f32 gradients of two models' parameters (the
// same model on two devices), and the parameter where it is; both must have the same gradients.
struct GradDiff {
  double worst = 0;
  std::string where;
};
GradDiff grad_diff(const nn::DeepLab& a, const nn::DeepLab& b) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  REQUIRE(pa.size() == pb.size());
  GradDiff r;
  for (size_t i = 0; i < pa.size(); ++i) {
    const Tensor ga = pa[i].tensor->grad(), gb = pb[i].tensor->grad();
    REQUIRE_MESSAGE(ga.defined() == gb.defined(), pa[i].name);
    if (!ga.defined()) continue;
    CHECK_MESSAGE((ga.dtype() == DType::f32 && gb.dtype() == DType::f32), pa[i].name);
    const double d = rel_l2(gb, ga);
    if (d > r.worst) r.worst = d, r.where = pa[i].name;
  }
  return r;
}

struct NoTf32 {
  NoTf32() { set_allow_tf32(false), set_conv_allow_tf32(false); }
  ~NoTf32() { set_allow_tf32(true), set_conv_allow_tf32(true); }
};

// The same model (cfg, seed 7) on the CPU and the GPU, forward and backward of the CE loss on
// a 2 x 65 x 97 batch drawn from `data_seed`, under `precision`: the logits (relative L2), the
// loss (relative) and every gradient (worst relative L2) within the given bounds. `packed`:
// the GPU model's parameters in one arena, as the trainer has them.
struct StepBounds {
  double logits, loss, grads;
};
void check_cpu_gpu_step(const semiseg::Config& cfg, uint64_t data_seed, Precision precision, bool packed,
                        const StepBounds& bound) {
  nn::DeepLab cpu(cfg.model, 7), gpu(cfg.model, 7);
  gpu.load_state_dict(cpu.state_dict());
  gpu.to(Device::cuda);
  if (packed) gpu.pack_parameters();
  Generator gen(data_seed);
  const Tensor x = gen.normal({2, 65, 97, 3}, 0, 1), y = gen.randint({2, 65, 97}, 0, 19);
  std::optional<AutocastScope> ac;
  if (precision == Precision::bf16) ac.emplace(Precision::bf16);
  const Tensor lc = cpu.forward(x), lg = gpu.forward(x.cuda());
  REQUIRE(lg.shape() == lc.shape());
  const DType want = precision == Precision::bf16 ? DType::bf16 : DType::f32;
  REQUIRE(lg.dtype() == want);
  REQUIRE(lc.dtype() == want);
  CHECK_MESSAGE(rel_l2(lg, lc) < bound.logits, "logits differ by ", rel_l2(lg, lc), " (relative L2)");
  Tensor loss_c = cross_entropy(lc, y), loss_g = cross_entropy(lg, y.cuda());
  CHECK(loss_g.item() == doctest::Approx(loss_c.item()).epsilon(bound.loss));
  loss_c.backward();
  loss_g.backward();
  const GradDiff d = grad_diff(cpu, gpu);
  CHECK_MESSAGE(d.worst < bound.grads, "largest gradient difference ", d.worst, " (relative L2) at ", d.where);
}
}  // namespace

// K = 0 is a product over nothing: zeros, on the CPU as on the GPU (cuBLAS leaves C untouched
// when k = 0 with beta = 0 only if the caller zeroes it).
TEST_CASE("matmul: an inner dimension of 0 gives zeros") {
  Tensor z = matmul(Tensor::zeros({5, 0}), Tensor::zeros({0, 7}));
  REQUIRE(z.shape() == Shape{5, 7});
  for (float v : z.to_vector<float>()) CHECK(v == 0.0f);
}

GPU_TEST_CASE("gpu: cuBLAS at the contrastive shapes (3000 x 256 by 600 x 256) and with K = 0") {
  NoTf32 fp32;
  Generator gen(1);
  Tensor a = gen.normal({3000, 256}, 0, 1), b = gen.normal({600, 256}, 0, 1);
  const Tensor want = matmul(a, b, false, true);
  const Tensor got = matmul(a.cuda(), b.cuda(), false, true).cpu();
  CHECK(c3test::close_arrays("A B^T", got.data<float>(), want.data<float>(), want.numel(), 1e-4, 1e-4));
  const Tensor z = matmul(Tensor::zeros({5, 0}).cuda(), Tensor::zeros({0, 7}).cuda()).cpu();
  REQUIRE(z.shape() == Shape{5, 7});
  for (float v : z.to_vector<float>()) CHECK(v == 0.0f);
}

GPU_TEST_CASE("gpu: one C3 step, supervised and semi, matches the CPU step (losses, gradients, DCRS)") {
  NoTf32 fp32;
  const semiseg::Config cfg = semiseg::load_config(
      "", {"model.depth=18", "model.width=0.125", "model.num_classes=5", "model.proj_dim=8", "model.frozen_bn=false",
           "dcrs.init=0.0", "loss.samples_per_class=4", "loss.min_pixels=4", "loss.ramp_cons=0", "loss.ramp_con=0"});
  const int64_t Bl = 2, Bu = 2, H = 32, W = 48, C = 5;
  nn::DeepLab s_cpu(cfg.model, 3), t_cpu(cfg.model, 3), s_gpu(cfg.model, 3), t_gpu(cfg.model, 3);
  t_cpu.load_state_dict(s_cpu.state_dict());
  s_gpu.load_state_dict(s_cpu.state_dict());
  t_gpu.load_state_dict(s_cpu.state_dict());
  s_gpu.to(Device::cuda);
  t_gpu.to(Device::cuda);
  t_cpu.eval();
  t_gpu.eval();
  Generator gen(5);
  const semiseg::StepInputs in = c3test::random_step_inputs(gen, Bl, Bu, H, W, int(C));
  semiseg::StepInputs in_gpu{in.x_l.cuda(), in.y_l.cuda(), in.u_w.cuda(), in.u_s.cuda()};
  for (const bool semi : {false, true}) {
    CAPTURE(semi);
    semiseg::C3Step step_cpu(cfg, Device::cpu), step_gpu(cfg, Device::cuda);
    Generator g_cpu(11), g_gpu(11);
    semiseg::StepOutput oc = semi ? step_cpu.semi(s_cpu, t_cpu, in, 0, 0, g_cpu) : step_cpu.supervised(s_cpu, in, 0, g_cpu);
    semiseg::StepOutput og =
        semi ? step_gpu.semi(s_gpu, t_gpu, in_gpu, 0, 0, g_gpu) : step_gpu.supervised(s_gpu, in_gpu, 0, g_gpu);
    CHECK(og.loss.item() == doctest::Approx(oc.loss.item()).epsilon(1e-4));
    CHECK(og.value("sup") == doctest::Approx(oc.value("sup", NAN)).epsilon(1e-4));
    CHECK(og.value("cons") == doctest::Approx(oc.value("cons", NAN)).epsilon(1e-4));
    CHECK(og.value("con") == doctest::Approx(oc.value("con", NAN)).epsilon(1e-4));
    REQUIRE(og.thresholds.size() == oc.thresholds.size());
    for (size_t c = 0; c < oc.thresholds.size(); ++c) CHECK(og.thresholds[c] == doctest::Approx(oc.thresholds[c]).epsilon(1e-5));
    for (nn::DeepLab* m : {&s_cpu, &s_gpu})
      for (const nn::NamedTensor& p : m->named_parameters()) p.tensor->zero_grad();
    oc.loss.backward();
    og.loss.backward();
    const GradDiff d = grad_diff(s_cpu, s_gpu);
    CHECK_MESSAGE(d.worst < 1e-3, "largest gradient difference ", d.worst, " at ", d.where);
  }
}

// The reference model itself: DeepLab-v2 on ResNet-101 (output stride 8, frozen BatchNorm,
// 2048-channel layer4, ASPP dilations 6-24) on a small crop, forward and backward on both
// devices from the same weights. FP32 both sides; the tolerances are estimates (the first
// make gpu-check run confirms or corrects them): 101 layers of f32 sums in different orders.
GPU_TEST_CASE("gpu: DeepLab-v2 ResNet-101 forward and backward match the CPU (logits, loss, every gradient)") {
  NoTf32 fp32;
  const semiseg::Config cfg = semiseg::load_config("", {"model.depth=101", "model.frozen_bn=true"});
  check_cpu_gpu_step(cfg, 8, Precision::fp32, false, {1e-4, 1e-5, 1e-3});
}

// bf16 on both devices: the same roundings up to f32 summation order (cuDNN's vs im2col GEMM),
// which flips a bf16 rounding (2^-9 relative) here and there; over the network's ~60 rounded
// layers those add up to about 1% relative L2, so the bounds are 3% (logits) and 5% (gradients).
GPU_TEST_CASE("gpu: bf16 autocast DeepLabV3+ forward and backward match the CPU's bf16 (logits, loss, gradients)") {
  const semiseg::Config cfg = semiseg::load_config("", {"model.depth=50", "model.head=deeplab_v3plus",
                                                        "model.output_stride=16", "model.frozen_bn=false"});
  // Packed, as the trainer: the weights are cast once per step over the arena.
  check_cpu_gpu_step(cfg, 9, Precision::bf16, true, {3e-2, 1e-2, 5e-2});
}

GPU_TEST_CASE("gpu: the caching allocator reuses blocks, and out of memory empties the cache and says so") {
  CachingAllocator& a = cuda_allocator();
  a.empty_cache();
  void* p = a.allocate(3 << 20);
  a.release(p);
  const AllocStats before = a.stats();
  void* q = a.allocate(3 << 20);
  CHECK(q == p);  // the cached block, no new cudaMalloc
  CHECK(a.stats().hits == before.hits + 1);
  a.release(q);
  CHECK_THROWS_WITH_AS(a.allocate(size_t(1) << 46), doctest::Contains("out of memory"), OutOfMemory);  // 64 TiB
  void* r = a.allocate(1 << 20);  // and it goes on working
  CHECK(r != nullptr);
  a.release(r);
}

GPU_TEST_CASE("gpu: uploads from the page-locked pool are queued, and their buffers are not reused before they finish") {
  const size_t n = size_t(16) << 20;  // 64 MiB of floats: the DMA takes milliseconds
  for (int round = 0; round < 3; ++round) {
    float* buf = static_cast<float*>(host_alloc_pinned(n * sizeof(float)));
    REQUIRE(buf != nullptr);
    CHECK(pinned_allocator().owns(buf));
    for (size_t i = 0; i < n; ++i) buf[i] = float(i % 1000);
    const uint64_t syncs = host_syncs();
    Tensor t = Tensor::from_pinned(std::span<const float>(buf, n), {int64_t(n)}, Device::cuda);
    CHECK(host_syncs() == syncs);  // not a host sync: queued
    host_free_pinned(buf);
    // A new buffer of the same size right away: not the one the upload still reads.
    float* next = static_cast<float*>(host_alloc_pinned(n * sizeof(float)));
    REQUIRE(next != nullptr);
    std::fill(next, next + n, -1.f);
    const std::vector<float> got = t.to_vector<float>();
    size_t bad = 0;
    for (size_t i = 0; i < n; ++i) bad += got[i] != float(i % 1000);
    CHECK_MESSAGE(bad == 0, bad, " elements overwritten before the upload read them");
    host_free_pinned(next);
  }
}

// A few trainer steps on the GPU, twice with one seed: finite losses, the same both times
// with train.cudnn_deterministic (float atomics in a kernel would show here as differences;
// scatter_add_rows adds with atomics, one per row, since the step's indices are distinct).
GPU_TEST_CASE("gpu: trainer steps on the GPU are finite and repeat with the same seed") {
  const c3test::TempDir tmp;
  const std::string& dir = tmp.path;
  data::make_synthetic(dir + "/data", 3, 24, 4, 64, 128);
  std::vector<std::vector<double>> runs;
  for (int k = 0; k < 2; ++k) {
    const std::string out = dir + "/run" + std::to_string(k);
    semiseg::Config c = semiseg::load_config(
        "", {"model.depth=18", "model.width=0.125", "model.frozen_bn=false", "model.proj_dim=16",
             "data.root=\"" + dir + "/data\"", "data.labeled_count=8", "data.base_size=[64,128]", "data.crop=[32,64]",
             "data.val_size=[64,128]", "data.val_limit=2", "train.batch_labeled=2", "train.batch_unlabeled=2",
             "train.epochs=3", "train.steps_per_epoch=2", "train.warmup_epochs=1", "train.eval_every_epochs=3",
             "train.device=cuda", "train.cudnn_deterministic=true", "loss.ramp_cons=2", "loss.samples_per_class=4", "loss.min_pixels=4",
             "dcrs.init=0.2", "output.dir=\"" + out + "\"", "output.vis_images=0"});
    semiseg::Trainer t(c, false);
    REQUIRE(t.run().steps_done == 6);
    std::vector<double> losses;
    std::ifstream f(out + "/metrics.jsonl");
    for (std::string line; std::getline(f, line);) {
      auto j = nlohmann::json::parse(line);
      if (j.contains("loss")) losses.push_back(j["loss"].get<double>());
    }
    REQUIRE(losses.size() == 6);
    for (double l : losses) CHECK(std::isfinite(l));
    runs.push_back(losses);
  }
  for (size_t i = 0; i < runs[0].size(); ++i) CHECK_MESSAGE(runs[1][i] == runs[0][i], "step ", i + 1);
}
