// How much a trained model's predictions depend on what CutMix pastes beside them: the
// accuracy of a checkpoint's student (eval mode) on labeled training crops, clean and seen
// through the C3 step's own mixing (semiseg::Mixing: shuffle, pairs, boxes, un-mix), with the
// pixels binned by their distance to the box edge; then each crop paired with its own mirror
// image (the same scene: lighting, colours, objects) against another scene's mirror image.
// A model that labels each pixel from local evidence loses nothing; one that leans on the
// whole crop loses accuracy far from the edge. Not a timing: an analysis of a model.
//   build/bench_mixing CHECKPOINT [--batches N] [--teacher] [--set section.key=value ...]
// --help: the options; an unknown option or a bad value is an error (status 1) before any
// work (bench/lab/args.h).
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/lab/args.h"
#include "core/ops.h"
#include "semiseg/c3_step.h"
#include "semiseg/eval.h"
#include "semiseg/run_data.h"

using namespace c3;
using namespace c3::semiseg;

namespace {

struct Tally {
  double n = 0, ok = 0;
  void add(bool right) { n += 1, ok += right; }
  double acc() const { return n > 0 ? ok / n : 0.0; }
};

std::vector<int32_t> argmax_host(const Tensor& logits) { return argmax_channels(logits).cpu().to_vector<int32_t>(); }

// Distance (pixels) from (r, c) to the edge of box b: inside, to the nearest side; outside,
// to the box (Chebyshev).
int edge_distance(const data::Box& b, int64_t r, int64_t c) {
  const int64_t r1 = b.y0 + b.h - 1, c1 = b.x0 + b.w - 1;
  if (r >= b.y0 && r <= r1 && c >= b.x0 && c <= c1) return int(std::min({r - b.y0, r1 - r, c - b.x0, c1 - c}));
  return int(std::max({b.y0 - r, r - r1, b.x0 - c, c - c1}));
}

// The crops mirrored left-right; with `shift` 1, crop i becomes crop i+1's mirror image.
Tensor mirrored(const Tensor& x, int shift) {
  const int64_t N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  Tensor out = x.clone();
  const float* s = x.data<float>();
  float* d = out.data<float>();
  for (int64_t i = 0; i < N; ++i)
    for (int64_t r = 0; r < H; ++r)
      for (int64_t c = 0; c < W; ++c)
        for (int64_t k = 0; k < C; ++k)
          d[((i * H + r) * W + c) * C + k] = s[((((i + shift) % N) * H + r) * W + (W - 1 - c)) * C + k];
  return out;
}

const char* const kUsage = R"(usage: bench_mixing CHECKPOINT [--batches N] [--teacher] [--set section.key=value ...]

Pixel accuracy of a checkpoint's student on labeled training crops of its config, clean and
through the C3 step's CutMix, by distance to the box edge; then each crop paired with its own
mirror image against another scene's.
  --batches N      batches of 8 crops (default 20)
  --teacher        the checkpoint's EMA teacher instead of its student
  --set KEY=VALUE  a config override (repeatable)
)";

const std::vector<lab::Option> kOptions = {
    {"--batches", lab::Option::value}, {"--teacher"}, {"--set", lab::Option::repeated}};

}  // namespace

int main(int argc, char** argv) try {
  std::vector<std::string> positional;
  if (!lab::check_args(argc, argv, kOptions, kUsage, &positional)) return 0;
  if (positional.empty()) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
  C3_CHECK(positional.size() == 1, "one CHECKPOINT expected, got '", positional[0], "' and '", positional[1], "'");
  const std::string checkpoint = positional[0];
  const std::vector<std::string> sets = lab::arg_values(argc, argv, "--set");
  const int batches = lab::int_arg(argc, argv, "--batches", 20, 1, 100000);
  Config cfg;
  auto model = model_from_checkpoint(checkpoint, sets, cfg, nullptr, lab::has_flag(argc, argv, "--teacher"));
  model->eval();
  RunData d = load_run_data(cfg);
  cfg.train.batch_labeled = 8;
  make_labeled_loader(cfg, d, 0);
  NoGradGuard ng;
  Generator gen(123);
  auto logits_of = [&](const Tensor& x) {
    return model->upsample(model->classify(model->features(x)), x.dim(1), x.dim(2));
  };
  const int edges[] = {4, 8, 16, 32};
  const char* names[] = {"< 4 px", "4-8 px", "8-16 px", "16-32 px", ">= 32 px"};
  Tally clean_bin[5], mixed_bin[5], clean, mixed, own, other;
  for (int it = 0; it < batches; ++it) {
    data::Batch b;
    C3_CHECK(d.labeled_loader->next(b), "the labeled loader ended");
    const Tensor x = to_input(b.images, b.size(), b.h, b.w, Device::cpu);
    const Tensor y = to_labels(b.labels, b.size(), b.h, b.w, Device::cpu);
    const int64_t N = x.dim(0), H = x.dim(1), W = x.dim(2);
    const Mixing m = draw_mixing(true, N, 0, H, W, gen);
    const auto yv = y.cast(DType::i32).to_vector<int32_t>();
    const auto pc = argmax_host(logits_of(x)), pm = argmax_host(m.unmix(logits_of(m.mix(x))));
    for (int64_t i = 0; i < N; ++i) {
      const data::Box& bx = m.boxes[size_t(m.inverse[size_t(i)] % (N / 2))];
      for (int64_t r = 0; r < H; ++r)
        for (int64_t c = 0; c < W; ++c) {
          const size_t k = size_t((i * H + r) * W + c);
          if (yv[k] == 255) continue;
          const int dist = edge_distance(bx, r, c);
          const int bin = int(std::upper_bound(std::begin(edges), std::end(edges), dist) - std::begin(edges));
          clean_bin[bin].add(pc[k] == yv[k]), mixed_bin[bin].add(pm[k] == yv[k]);
          clean.add(pc[k] == yv[k]), mixed.add(pm[k] == yv[k]);
        }
    }
    // Partner = own mirror image, or another scene's: the pairs (i, N + i) of 2N sources.
    Mixing p = draw_mixing(true, N, N, H, W, gen);
    for (int64_t k = 0; k < 2 * N; ++k) p.order[size_t(k)] = k, p.inverse[size_t(k)] = k;
    for (int shift : {0, 1}) {
      const Tensor src = concat({x, mirrored(x, shift)}, 0);
      const auto pp = argmax_host(slice(p.unmix(logits_of(p.mix(src))), 0, 0, N));
      for (size_t k = 0; k < yv.size(); ++k)
        if (yv[k] != 255) (shift ? other : own).add(pp[k] == yv[k]);
    }
  }
  std::printf("%s: pixel accuracy on %d batches of 8 labeled training crops (%dx%d)\n", checkpoint.c_str(), batches,
              cfg.data.crop.h, cfg.data.crop.w);
  std::printf("| distance to the box edge | share of pixels | clean crop | mixed image |\n|---|---|---|---|\n");
  for (int i = 0; i < 5; ++i)
    std::printf("| %s | %.1f%% | %.3f | %.3f |\n", names[i], 100.0 * clean_bin[i].n / clean.n, clean_bin[i].acc(),
                mixed_bin[i].acc());
  std::printf("| all | | %.3f | %.3f |\n\n", clean.acc(), mixed.acc());
  std::printf("paired with its own mirror image %.3f, with another scene's mirror image %.3f\n", own.acc(),
              other.acc());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_mixing: error: %s\n", e.what());
  return 1;
}
