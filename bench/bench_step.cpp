// Whole-step benchmark: the student forward, backward and optimizer step (with the EMA
// update), the teacher forward, and the full C3 step (semiseg/c3_step.h) as the trainer runs
// it, per batch size.
//
//   build/bench_step [--cpu | --gpu] [--config F] [--batches 4+4,2+2] [--crop HxW]
//                    [--threads 1,0] [--precision fp32,bf16] [--phase TEXT] [--reps N] [--out DIR]
//                    [--cpu-conv onednn|im2col]
//
// --cpu: the embedded default model (configs/synthetic.json: DeepLab-v2 ResNet-18 at 1/4
//   width, 64x128 crops), batches 4+4 and 2+2. --gpu: the reference protocol
//   (configs/cityscapes_372.json: DeepLab-v2 ResNet-101, OS8, frozen BN, 256x512), batches
//   16+16, 8+8, 4+4, 2+2 (a batch that runs out of memory is reported as such).
// Timing: wall clock around each phase with a device synchronize, one warm-up step, median
// of the repeats. --precision: train.precision values, one set of rows each (default tf32 and
// bf16 on a GPU, fp32 and bf16 on the CPU, where tf32 computes as fp32). Peak memory: the GPU
// caching allocator's high-water mark, or on the CPU that of tensor memory (host_tensor_stats),
// during the phase. --phase TEXT: only the phases whose name contains TEXT (e.g. "full").
// FLOPs are counted from the autograd graph of the step (see count_flops).
// Writes <out>/step-cpu.{json,md} or step-gpu.{json,md}. --help: the options; an unknown option
// or a bad value is an error (status 1) before any work (bench/lab/args.h).

#include <cstdio>
#include <cstring>
#include <functional>
#include <unordered_map>
#include <unordered_set>

#include "bench/lab/args.h"
#include "bench/lab/report.h"
#include "bench/lab/timing.h"
#include "core/alloc.h"
#include "core/autograd.h"
#include "core/ops.h"
#include "core/ops_loss.h"
#include "kernels/cpu/blas.h"
#include "nn/optim.h"
#include "semiseg/c3_step.h"
#include "semiseg/config.h"
#include "semiseg/infer.h"

using namespace c3;
using lab::Row;

namespace {

struct Flops {
  double fwd = 0, bwd = 0;
  int convs = 0, matmuls = 0;
};

// Multiply-adds x 2 of every conv2d and matmul node in the graph behind `loss`: a conv's
// output shape is the shape its consumer recorded for that input; FLOPs = 2 * |out| * kh*kw*Cin
// (weight [K,kh,kw,Cin]); a matmul's = 2 * |out| * K with K = |a| / rows(out). Backward:
// the same amount again for each of the input and weight gradients the node needs (the
// first conv, on the images, needs no input gradient). Elementwise work is not counted.
Flops count_flops(const Tensor& loss) {
  std::unordered_map<const Node*, Shape> out_shape;
  std::unordered_set<const Node*> seen;
  std::vector<const Node*> stack = {loss.impl().grad_fn.get()};
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    if (!n || !seen.insert(n).second) continue;
    for (size_t i = 0; i < n->next.size(); ++i)
      if (const Node* c = n->next[i].get()) {
        if (!out_shape.count(c)) out_shape[c] = n->input_shapes[i];
        stack.push_back(c);
      }
  }
  Flops f;
  for (const auto& [n, out] : out_shape) {
    const bool conv = !std::strcmp(n->name, "conv2d"), mm = !std::strcmp(n->name, "matmul");
    if (!conv && !mm) continue;
    const double o = double(shape_numel(out)), a = double(shape_numel(n->input_shapes[0]));
    const Shape& w = n->input_shapes[1];
    const double F = conv ? 2.0 * o * double(w[1] * w[2] * w[3]) : 2.0 * o * (a / double(out[0]));
    f.fwd += F;
    f.bwd += (n->next[0] ? F : 0) + (n->next[1] ? F : 0);
    (conv ? f.convs : f.matmuls)++;
  }
  return f;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  for (size_t pos = 0; pos <= s.size();) {
    const size_t comma = std::min(s.find(',', pos), s.size());
    if (comma > pos) out.push_back(s.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

void sync(Device d) {
  if (d == Device::cuda) (void)Tensor::zeros({1}, DType::f32, d).item();  // waits for the device
}

struct Setup {
  semiseg::Config cfg;
  Device dev;
  std::unique_ptr<nn::DeepLab> student, teacher;
  std::unique_ptr<nn::Optimizer> opt;
  std::unique_ptr<semiseg::C3Step> step;
  semiseg::StepInputs in;
  int64_t ema_updates = 0;

  Setup(semiseg::Config c, Device d) : cfg(std::move(c)), dev(d) {
    student = std::make_unique<nn::DeepLab>(cfg.model, cfg.train.seed);
    student->to(dev);
    student->pack_parameters();  // as the trainer: the optimizer step and the EMA over the arenas
    student->train();
    teacher = std::make_unique<nn::DeepLab>(cfg.model, cfg.train.seed);  // as the trainer: a copy, detached
    teacher->to(dev);
    teacher->pack_parameters();
    teacher->load_state_dict(student->state_dict());
    teacher->eval();
    for (const nn::NamedTensor& p : teacher->named_parameters()) *p.tensor = p.tensor->detach();
    std::vector<nn::ParamGroup> groups = {{"backbone", student->backbone_parameters(), cfg.train.lr_backbone, 0},
                                          {"head", student->head_parameters(), cfg.train.lr_head, 0}};
    opt = std::make_unique<nn::Adam>(groups);
    step = std::make_unique<semiseg::C3Step>(cfg, dev);
    Generator g(7);
    const int64_t Bl = cfg.train.batch_labeled, Bu = cfg.train.batch_unlabeled, H = cfg.data.crop.h, W = cfg.data.crop.w;
    in.x_l = g.normal({Bl, H, W, 3}, 0, 1, dev), in.u_w = g.normal({Bu, H, W, 3}, 0, 1, dev);
    in.u_s = g.normal({Bu, H, W, 3}, 0, 1, dev);
    // Vertical bands of 4 classes per image, so every class present has more than 20 pixels
    // at the feature resolution and the contrastive sampler finds anchors, as on real data.
    std::vector<uint8_t> lab(size_t(Bl * H * W));
    for (int64_t i = 0; i < Bl * H * W; ++i) {
      const int64_t n = i / (H * W), x = i % W;
      lab[size_t(i)] = uint8_t((n * 4 + x * 4 / W) % cfg.model.num_classes);
    }
    in.y_l = Tensor::from_vector(lab, {Bl, H, W}, dev);
  }

  void optimizer_and_ema() {
    opt->step();
    nn::ema_update(*teacher, *student, nn::ema_decay(ema_updates++, cfg.train.ema_max_decay));
  }
  Tensor student_loss() {  // the student's forward over all Bl + Bu images, with L_sup
    AutocastScope autocast(cfg.train.precision);  // (the bf16 weights are cast again per call)
    Tensor x = concat({in.x_l, in.u_s}, 0);
    Tensor logits = student->forward(x);
    return cross_entropy(slice(logits, 0, 0, in.x_l.dim(0)), in.y_l);
  }
  semiseg::StepOutput c3_step(Generator& gen) {  // loss of the full step (ramps at 1)
    return step->semi(*student, *teacher, in, 100000, 100000, gen);
  }
  void teacher_forward() {
    NoGradGuard ng;
    AutocastScope autocast(cfg.train.precision);
    nn::ResNetFeatures ft = teacher->features(in.u_w);
    Tensor p = softmax(teacher->upsample(teacher->classify(ft), in.u_w.dim(1), in.u_w.dim(2)));
    if (cfg.loss.contrast) Tensor e = l2_normalize(teacher->project(ft.layer4));
  }
};

double peak_bytes(Device d) { return double(d == Device::cuda ? cuda_allocator().stats().peak : host_tensor_stats().peak); }
void reset_peak(Device d) {
  if (d == Device::cuda) cuda_allocator().reset_peak();
  else reset_host_tensor_peak();
}

const char* const kUsage = R"(usage: bench_step [--cpu | --gpu] [--config F] [--batches 4+4,2+2] [--crop HxW]
                  [--threads 1,0] [--precision fp32,bf16] [--phase TEXT] [--reps N] [--out DIR]
                  [--cpu-conv onednn|im2col]

Times the student forward, backward, optimizer step + EMA, teacher forward and the full C3
step per batch size and precision; writes <out>/step-cpu.{json,md} or step-gpu.{json,md}.
  --cpu | --gpu      where to run (default: the GPU when there is one)
  --config F         the model and data (default configs/synthetic.json on the CPU,
                     configs/cityscapes_372.json on the GPU)
  --batches L+U,...  labeled+unlabeled images per step (default 4+4,2+2; GPU 16+16,8+8,4+4,2+2)
  --crop HxW         crop size instead of the config's
  --threads N,...    CPU threads per set of rows, 0 = all cores (default 1,0)
  --precision P,...  train.precision values (default fp32,bf16; GPU tf32,bf16)
  --phase TEXT       only the phases whose name contains TEXT
  --reps N           timed repeats after one warm-up, median reported (default 5)
  --out DIR          results folder (default bench/results)
  --cpu-conv C       train.cpu_conv: CPU f32 convolutions by oneDNN (default) or im2col + GEMM
)";

const std::vector<lab::Option> kOptions = {
    {"--cpu"}, {"--gpu"}, {"--config", lab::Option::value}, {"--batches", lab::Option::value},
    {"--crop", lab::Option::value}, {"--threads", lab::Option::value}, {"--precision", lab::Option::value},
    {"--phase", lab::Option::value}, {"--reps", lab::Option::value}, {"--out", lab::Option::value},
    {"--cpu-conv", lab::Option::value}};

// The phases, in the order they run; --phase selects by part of the name.
const char* const kPhases[] = {"student forward (all images, L_sup)", "student backward", "optimizer step + EMA",
                               "teacher forward (unlabeled, no grad)", "full C3 step"};

}  // namespace

int main(int argc, char** argv) try {
  if (!lab::check_args(argc, argv, kOptions, kUsage)) return 0;
  C3_CHECK(!lab::has_flag(argc, argv, "--cpu") || !lab::has_flag(argc, argv, "--gpu"),
           "--cpu and --gpu exclude each other");
  const bool gpu = lab::has_flag(argc, argv, "--gpu") || (!lab::has_flag(argc, argv, "--cpu") && lab::cuda_present());
  const Device dev = gpu ? Device::cuda : Device::cpu;
  C3_CHECK(!gpu || cuda_available(), "bench_step --gpu: no usable GPU (or a CUDA=0 build)");
  const std::string config = lab::arg_value(argc, argv, "--config", gpu ? "configs/cityscapes_372.json" : "configs/synthetic.json");
  const std::string batches = lab::arg_value(argc, argv, "--batches", gpu ? "16+16,8+8,4+4,2+2" : "4+4,2+2");
  const std::vector<std::string> batch_list = split(batches);
  C3_CHECK(!batch_list.empty(), "--batches needs labeled+unlabeled pairs (e.g. 4+4,2+2), got '", batches, "'");
  for (const std::string& b : batch_list) {
    const size_t plus = b.find('+');
    C3_CHECK(plus != std::string::npos, "--batches needs labeled+unlabeled pairs (e.g. 4+4,2+2), got '", batches, "'");
    lab::int_value("--batches", b.substr(0, plus), 1, 4096), lab::int_value("--batches", b.substr(plus + 1), 1, 4096);
  }
  const int reps = lab::int_arg(argc, argv, "--reps", 5, 1, 1000);
  const std::string out = lab::arg_value(argc, argv, "--out", "bench/results");
  const std::string crop = lab::arg_value(argc, argv, "--crop", "");
  int crop_h = 0, crop_w = 0;
  if (!crop.empty()) semiseg::parse_window("--crop", crop, crop_h, crop_w);
  std::vector<std::string> precisions = split(lab::arg_value(argc, argv, "--precision", gpu ? "tf32,bf16" : "fp32,bf16"));
  C3_CHECK(!precisions.empty(), "--precision needs train.precision values (e.g. fp32,bf16)");
  const std::string only = lab::arg_value(argc, argv, "--phase", "");
  bool phase_found = false;
  std::string phase_names;
  for (const char* p : kPhases) {
    phase_found |= std::string(p).find(only) != std::string::npos;
    phase_names += std::string(phase_names.empty() ? "" : "; ") + p;
  }
  C3_CHECK(phase_found, "--phase '", only, "' is part of no phase's name (", phase_names, ")");
  const std::string cpu_conv = lab::arg_value(argc, argv, "--cpu-conv", "onednn");
  C3_CHECK(cpu_conv == "onednn" || cpu_conv == "im2col", "--cpu-conv needs onednn or im2col, got '", cpu_conv, "'");
  const std::vector<int> threads = lab::int_list_arg(argc, argv, "--threads", gpu ? "0" : "1,0", 0, 1024);
  lab::set_threads(0);
  lab::Meta meta = lab::make_meta("whole-step benchmark (bench/bench_step)", gpu ? lab::cuda_device() : lab::cpu_device(),
                                  gpu ? 1 : lab::max_threads());
  nlohmann::json js;
  std::vector<Row> rows;
  std::string model_desc;
  for (const std::string& b : batch_list)
  for (const std::string& prec : precisions) {
    std::vector<std::string> ov = {"train.batch_labeled=" + b.substr(0, b.find('+')),
                                   "train.batch_unlabeled=" + b.substr(b.find('+') + 1), "model.pretrained=\"\"",
                                   "train.precision=\"" + prec + "\"", "train.cpu_conv=\"" + cpu_conv + "\""};
    if (!crop.empty()) ov.push_back("data.crop=[" + std::to_string(crop_h) + "," + std::to_string(crop_w) + "]");
    semiseg::Config cfg = semiseg::load_config(config, ov);
    semiseg::apply_numerics(cfg.train);  // the config's train.precision and cuDNN choices
    const int64_t images = cfg.train.batch_labeled + cfg.train.batch_unlabeled;
    char desc[256];
    std::snprintf(desc, sizeof desc, "DeepLab-%s ResNet-%d width %.3g, OS%d, %s BN, %dx%d crops, %d classes",
                  cfg.model.head == nn::HeadKind::deeplab_v2 ? "v2" : "V3+", cfg.model.backbone.depth,
                  cfg.model.backbone.width, cfg.model.backbone.output_stride,
                  cfg.model.backbone.frozen_bn ? "frozen" : "trainable", cfg.data.crop.h, cfg.data.crop.w,
                  int(cfg.model.num_classes));
    model_desc = std::string(desc) + (gpu ? "" : ", CPU convs " + cpu_conv);
    std::printf("%s, batch %s, %s (%s)\n", desc, b.c_str(), prec.c_str(), config.c_str());
    try {
      Setup s(cfg, dev);
      Generator gen(11);
      // FLOPs: the full step's graph (student), and the teacher as the student's forward
      // FLOPs per image (same model) times the unlabeled images.
      Flops step_f, stud_f;
      {
        AutocastScope autocast(cfg.train.precision);
        step_f = count_flops(s.c3_step(gen).loss);
      }
      stud_f = count_flops(s.student_loss());
      const double teacher_f = stud_f.fwd / double(images) * double(cfg.train.batch_unlabeled);
      s.opt->zero_grad();
      struct Phase {
        const char* name;
        std::function<void()> fn;
        double flops;
        std::function<void()> before = nullptr;
      };
      Tensor loss;
      const std::vector<Phase> phases = {
          {kPhases[0], [&] { loss = s.student_loss(); sync(dev); }, stud_f.fwd},
          {kPhases[1], nullptr, stud_f.bwd, [&] {
             s.opt->zero_grad();
             loss = s.student_loss();
             sync(dev);
           }},
          {kPhases[2], [&] { s.optimizer_and_ema(); sync(dev); }, 0},
          {kPhases[3], [&] { s.teacher_forward(); sync(dev); }, teacher_f},
          {kPhases[4], [&] {
             {
               AutocastScope autocast(cfg.train.precision);  // as the trainer: forwards and backward
               semiseg::StepOutput o = s.c3_step(gen);
               s.opt->zero_grad();
               o.loss.backward();
             }
             s.optimizer_and_ema();
             sync(dev);
           }, step_f.fwd + step_f.bwd + teacher_f}};
      for (int th : threads)
      for (const Phase& p : phases) {
        if (std::string(p.name).find(only) == std::string::npos) continue;
        if (!gpu) lab::set_threads(th);
        const std::string ths = gpu ? "-" : std::to_string(th > 0 ? th : lab::max_threads());
        reset_peak(dev);
        // The backward phase times loss.backward() after an untimed forward.
        const bool bwd = p.before != nullptr;
        const lab::Timing t = lab::time_host(bwd ? std::function<void()>([&] { loss.backward(); sync(dev); }) : p.fn,
                                             reps, 0, p.before);
        loss = Tensor();
        // Images through the phase: the unlabeled ones for the teacher, none for the optimizer.
        const bool opt_phase = p.flops == 0, teacher = std::string(p.name).rfind("teacher", 0) == 0;
        const double peak = peak_bytes(dev), ips = double(teacher ? cfg.train.batch_unlabeled : images) / t.median;
        const double tf = p.flops / t.median / 1e12;
        std::printf("  %3s thr %-38s %9.2f ms  %7s img/s  %8.1f GFLOP  %6.3f TFLOP/s  peak %.2f GiB\n", ths.c_str(), p.name,
                    t.median * 1e3, opt_phase ? "-" : lab::fmt("%.1f", ips).c_str(), p.flops / 1e9, tf,
                    peak / (1 << 30));
        std::fflush(stdout);
        rows.push_back({b, prec, ths, p.name, lab::fmt("%.2f", t.median * 1e3), lab::fmt("%.2f", t.best * 1e3), opt_phase ? "-" : lab::fmt("%.1f", ips),
                        p.flops > 0 ? lab::fmt("%.1f", p.flops / 1e9) : "-", p.flops > 0 ? lab::fmt("%.3f", tf) : "-",
                        lab::fmt("%.2f", peak / (1 << 30))});
        js.push_back({{"batch", b}, {"precision", prec}, {"threads", ths}, {"phase", p.name}, {"median_ms", t.median * 1e3}, {"best_ms", t.best * 1e3},
                      {"reps", t.reps}, {"images", images}, {"images_per_s", opt_phase ? 0.0 : ips}, {"flops", p.flops},
                      {"tflops", tf}, {"peak_bytes", peak}, {"model", model_desc}, {"config", config},
                      {"convs", step_f.convs}, {"matmuls", step_f.matmuls}});
      }
    } catch (const Error& e) {
      const bool oom = std::string(e.what()).find("out of memory") != std::string::npos;
      std::printf("  batch %s: %s\n", b.c_str(), oom ? "out of memory" : e.what());
      if (!oom) throw;
      rows.push_back({b, prec, "-", "out of memory", "-", "-", "-", "-", "-", "-"});
      js.push_back({{"batch", b}, {"precision", prec}, {"phase", "out of memory"}});
      if (gpu) cuda_allocator().empty_cache();
    }
  }
  const std::string md =
      "Model: " + model_desc + " (" + config + "), random initialisation, random images; labels in bands of 4 "
      "classes per image. Wall clock around each phase with a device synchronize, after one warm-up; peak: " +
      (gpu ? std::string("the caching allocator's high-water mark during the phase")
           : "the high-water mark of tensor memory during the phase") +
      ". FLOPs: conv2d and matmul nodes of the autograd graph (2 x multiply-adds; backward: the input and weight "
      "gradients each node needs; the teacher: the student's forward FLOPs per image x unlabeled images); "
      "elementwise work not counted.\n\n" +
      lab::md_table({"batch (l+u)", "precision", "threads", "phase", "median ms", "best ms", "images/s", "GFLOP", "TFLOP/s", "peak GiB"}, rows);
  std::printf("wrote %s\n", lab::write_results(out, gpu ? "step-gpu" : "step-cpu", meta, js, md).c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_step: error: %s\n", e.what());
  return 1;
}
