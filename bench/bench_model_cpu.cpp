// Whole-model timing on the CPU: forward + backward of a DeepLab model, with peak memory.
//   build/bench_model_cpu [depth] [width] [batch] [height] [width_px] [repeats]
// Default: DeepLab-v2 ResNet-101 (frozen BN, OS8) on 1x3x256x512, the size the README quotes.
#include <omp.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "core/ops_loss.h"
#include "core/rng.h"
#include "kernels/cpu/blas.h"
#include "nn/deeplab.h"

using namespace c3;

int main(int argc, char** argv) {
  const int depth = argc > 1 ? std::atoi(argv[1]) : 101;
  const double width = argc > 2 ? std::atof(argv[2]) : 1.0;
  const int n = argc > 3 ? std::atoi(argv[3]) : 1, h = argc > 4 ? std::atoi(argv[4]) : 256,
            w = argc > 5 ? std::atoi(argv[5]) : 512, reps = argc > 6 ? std::atoi(argv[6]) : 2;
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
}
