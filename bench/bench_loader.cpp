// Loader throughput: the strong (C3 unlabeled) pipeline cropping 256x512 from 1024x2048 PNGs,
// per worker count, without and with the in-memory cache of decoded, base-resized samples.
//   build/bench_loader [--images 8] [--batches 12]
// --help: the options; an unknown option or a bad value is an error (status 1) before any
// work (bench/lab/args.h).
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/lab/args.h"
#include "data/image_io.h"
#include "data/loader.h"
#include "data/synthetic.h"

using namespace c3::data;

namespace {

const char* const kUsage = R"(usage: bench_loader [--images 8] [--batches 12]

Loader throughput (images/s) of the strong pipeline on synthetic 1024x2048 PNGs written to a
temporary folder, with 1 and 2 workers, without and with the sample cache.
  --images N   PNG pairs written and sampled from (default 8)
  --batches N  batches of 4 images per epoch, two epochs (default 12)
)";

const std::vector<lab::Option> kOptions = {{"--images", lab::Option::value}, {"--batches", lab::Option::value}};

}  // namespace

int main(int argc, char** argv) try {
  if (!lab::check_args(argc, argv, kOptions, kUsage)) return 0;
  const int n = lab::int_arg(argc, argv, "--images", 8, 1, 10000);
  const int batches = lab::int_arg(argc, argv, "--batches", 12, 1, 100000);
  char tmpl[] = "/tmp/c3benchXXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  std::vector<std::string> images, labels;
  for (int i = 0; i < n; ++i) {  // 1024x2048 street scenes, as Cityscapes frames
    SyntheticScene s = render_scene(uint64_t(i), 1024, 2048);
    images.push_back(dir + "/img" + std::to_string(i) + ".png");
    labels.push_back(dir + "/lab" + std::to_string(i) + ".png");
    write_png(images.back(), s.image);
    write_png(labels.back(), s.label);
  }
  auto load = [&](size_t i) { return std::make_pair(read_image(images[i]), read_label(labels[i])); };
  std::printf("loader: strong views + labels, 1024x2048 PNG -> base 512x1024 -> crop 256x512, batch 4\n");
  for (bool cache : {false, true})
    for (int workers : {1, 2}) {
      LoaderConfig lc;
      lc.dataset_size = size_t(n);
      lc.batch_size = 4;
      lc.sampling = Sampling::with_replacement;
      lc.samples_per_epoch = size_t(4 * batches);
      lc.workers = workers;
      lc.cache = cache;
      lc.strong = true;
      lc.num_epochs = 2;
      Loader loader(lc, load);
      Batch b;
      int64_t count = 0;
      auto t0 = std::chrono::steady_clock::now();
      // With the cache, the first epoch fills it; time the second.
      for (int k = 0; k < batches && cache; ++k) loader.next(b);
      t0 = std::chrono::steady_clock::now();
      while (loader.next(b)) count += b.size();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("  workers %d, cache %-3s: %6.1f images/s (%lld images in %.2f s)\n", workers, cache ? "on" : "off",
                  count / s, (long long)count, s);
    }
  for (int i = 0; i < n; ++i) std::remove(images[i].c_str()), std::remove(labels[i].c_str());
  ::rmdir(dir.c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_loader: error: %s\n", e.what());
  return 1;
}
