// Whole-model timing on the CPU: forward + backward of a DeepLab model, with peak memory.
//   build/bench_model_cpu [--depth 101] [--width 1] [--batch 1] [--size 256x512] [--reps 2]
// Default: DeepLab-v2 ResNet-101 (frozen BN, OS8) on 1x3x256x512, the size the README quotes.
// --help: the options; an unknown option or a bad value is an error (status 1) before any
// work (bench/lab/args.h).
#include <omp.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>

#include "bench/lab/args.h"
#include "core/error.h"
#include "core/ops_loss.h"
#include "core/rng.h"
#include "kernels/cpu/blas.h"
#include "nn/deeplab.h"
#include "semiseg/infer.h"

using namespace c3;

namespace {

const char* const kUsage = R"(usage: bench_model_cpu [--depth 101] [--width 1] [--batch 1] [--size 256x512] [--reps 2]

Forward + backward (CE loss on random labels) of a DeepLab-v2 ResNet (frozen BN, OS8) on the
CPU: the best time of the repeats and the peak resident memory.
  --depth D    ResNet depth: 18, 34, 50 or 101 (default 101)
  --width X    channel multiplier in [0.01, 4] (default 1)
  --batch N    images per batch (default 1)
  --size HxW   image size (default 256x512)
  --reps N     repeats, the best reported (default 2)
)";

const std::vector<lab::Option> kOptions = {{"--depth", lab::Option::value}, {"--width", lab::Option::value},
                                           {"--batch", lab::Option::value}, {"--size", lab::Option::value},
                                           {"--reps", lab::Option::value}};

}  // namespace

int main(int argc, char** argv) try {
  if (!lab::check_args(argc, argv, kOptions, kUsage)) return 0;
  const int depth = lab::int_arg(argc, argv, "--depth", 101, 1, 1000);
  C3_CHECK(depth == 18 || depth == 34 || depth == 50 || depth == 101, "--depth needs 18, 34, 50 or 101, got '",
           depth, "'");  // the depths nn::ResNet builds
  const double width = lab::number_arg(argc, argv, "--width", 1.0, 0.01, 4);
  const int n = lab::int_arg(argc, argv, "--batch", 1, 1, 1024), reps = lab::int_arg(argc, argv, "--reps", 2, 1, 1000);
  int h = 256, w = 512;
  semiseg::parse_window("--size", lab::arg_value(argc, argv, "--size", "256x512"), h, w);
  nn::DeepLabConfig cfg;
  cfg.backbone.depth = depth;
  cfg.backbone.width = width;
  cfg.projection_head = false;
  nn::DeepLab model(cfg, 0);
  model.train();
  Generator g(1);
  Tensor x = g.normal({n, h, w, 3}, 0, 1);
  Tensor labels = cast(g.randint({n, h, w}, 0, cfg.num_classes), DType::u8);
  double best_f = 1e30, best_b = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    Tensor loss = cross_entropy(model.forward(x), labels);
    auto t1 = std::chrono::steady_clock::now();
    loss.backward();
    auto t2 = std::chrono::steady_clock::now();
    model.zero_grad();
    best_f = std::min(best_f, std::chrono::duration<double>(t1 - t0).count());
    best_b = std::min(best_b, std::chrono::duration<double>(t2 - t1).count());
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("DeepLab-v2 ResNet-%d width %.3g, input %dx3x%dx%d, CPU, %d threads: forward %.2f s, backward %.2f s, "
              "forward+backward %.2f s (best of %d), peak RSS %.2f GiB\n",
              depth, width, n, h, w, omp_get_max_threads(),
              best_f, best_b, best_f + best_b, reps, ru.ru_maxrss / 1048576.0);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_model_cpu: error: %s\n", e.what());
  return 1;
}
