// The threaded loader: identical bytes for any number of workers, the sampling modes,
// drop_last and epochs, the decode-once cache, the prefetch bound, error propagation.
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "core/error.h"
#include "core/tensor.h"
#include "data/loader.h"
#include "semiseg/run_data.h"
#include "tests/helpers.h"

using namespace c3::data;

namespace {

// Sample i: a 30x40 image whose pixels encode (i, y, x), label = (i + y / 10) % 19.
std::pair<Image, Image> synthetic_sample(size_t i) {
  Image img(30, 40, 3), lbl(30, 40, 1);
  for (int y = 0; y < 30; ++y)
    for (int x = 0; x < 40; ++x) {
      uint8_t* p = img.at(y, x);
      p[0] = uint8_t(i * 37 + y * 5), p[1] = uint8_t(x * 6), p[2] = uint8_t((i * 11 + x * y) & 255);
      lbl.at(y, x)[0] = uint8_t((i + y / 10) % 19);
    }
  return {img, lbl};
}

LoaderConfig small_config() {
  LoaderConfig c;
  c.dataset_size = 13;
  c.batch_size = 4;
  c.seed = 42;
  c.augment.base_h = 24, c.augment.base_w = 32;
  c.augment.crop_h = 16, c.augment.crop_w = 20;
  c.augment.scales = {0.75, 1.0, 1.5};
  return c;
}

// One pass over the 13 samples in order (batches 0-3, 4-7, 8-11).
LoaderConfig sequential_config(int workers) {
  LoaderConfig c = small_config();
  c.sampling = Sampling::sequential;
  c.workers = workers;
  c.num_epochs = 1;
  return c;
}

std::vector<Batch> take(Loader& l, int n) {
  std::vector<Batch> out;
  Batch b;
  for (int i = 0; i < n && l.next(b); ++i) out.push_back(b);
  return out;
}

}  // namespace

TEST_CASE("loader: 0, 1 and 3 workers give identical batches") {
  for (auto sampling : {Sampling::with_replacement, Sampling::shuffle}) {
    std::vector<std::vector<Batch>> runs;
    for (int workers : {0, 1, 3}) {
      LoaderConfig c = small_config();
      c.sampling = sampling;
      c.samples_per_epoch = 10;
      c.strong = true;
      c.workers = workers;
      c.prefetch = 3;
      Loader l(c, synthetic_sample);
      runs.push_back(take(l, 7));  // 2 steps per epoch: crosses three epoch boundaries
    }
    for (int r = 1; r < 3; ++r) {
      REQUIRE(runs[r].size() == runs[0].size());
      for (size_t i = 0; i < runs[0].size(); ++i) {
        const Batch &a = runs[0][i], &b = runs[r][i];
        CAPTURE(i);
        CHECK(a.images == b.images);
        CHECK(a.labels == b.labels);
        CHECK(a.strong == b.strong);
        CHECK(a.indices == b.indices);
        CHECK(a.epoch == b.epoch);
        CHECK(a.step == b.step);
      }
    }
    const Batch& b = runs[0][3];  // 10 draws per epoch: 2 steps; shuffle of 13: 3 steps
    CHECK(b.epoch == 1);
    CHECK(b.step == (sampling == Sampling::with_replacement ? 1 : 0));
    CHECK(b.h == 16);
    CHECK(b.w == 20);
    CHECK(b.images.size() == 4u * 16 * 20 * 3);
    CHECK(b.labels.size() == 4u * 16 * 20);
    CHECK(b.strong.size() == b.images.size());
    CHECK(b.strong != b.images);
    CHECK(runs[0][0].images != runs[0][2].images);  // epochs differ
  }
}

TEST_CASE("loader: sampling with replacement, shuffle, drop_last and epochs") {
  LoaderConfig c = small_config();
  c.dataset_size = 10;
  c.sampling = Sampling::with_replacement;
  c.samples_per_epoch = 2000;
  std::map<int64_t, int> counts;
  bool duplicates = false;
  const auto e0 = epoch_indices(c, 0);
  CHECK(e0.size() == 2000);
  CHECK(epoch_indices(c, 0) == e0);
  CHECK(epoch_indices(c, 1) != e0);
  for (int64_t v : e0) ++counts[v];
  for (auto [k, n] : counts) {
    CHECK(k >= 0);
    CHECK(k < 10);
    CHECK(std::abs(n - 200) < 60);  // sd ~ 13.4
    duplicates |= n > 1;
  }
  CHECK(counts.size() == 10);
  CHECK(duplicates);

  c.sampling = Sampling::shuffle;
  const auto s0 = epoch_indices(c, 0), s1 = epoch_indices(c, 1);
  CHECK(std::set<int64_t>(s0.begin(), s0.end()).size() == 10);
  CHECK(s0.size() == 10);
  CHECK(s0 != s1);

  // sequential, no augmentation: batches are the base-resized samples in order
  LoaderConfig q;
  q.dataset_size = 10, q.batch_size = 4, q.sampling = Sampling::sequential;
  q.augment = AugmentConfig::none(30, 40);
  q.num_epochs = 2;
  q.drop_last = true;
  {
    Loader l(q, synthetic_sample);
    CHECK(l.steps_per_epoch() == 2);
    const auto all = take(l, 100);
    CHECK(all.size() == 4);
    CHECK(all[2].indices == std::vector<int64_t>{0, 1, 2, 3});
    CHECK(all[3].epoch == 1);
  }
  q.drop_last = false;
  q.workers = 2;
  Loader l(q, synthetic_sample);
  CHECK(l.steps_per_epoch() == 3);
  const auto all = take(l, 100);
  REQUIRE(all.size() == 6);
  CHECK(all[2].indices == std::vector<int64_t>{8, 9});
  CHECK(all[2].images.size() == 2u * 30 * 40 * 3);
  const auto s9 = synthetic_sample(9);
  CHECK(std::memcmp(all[2].images.data() + 30 * 40 * 3, s9.first.px.data(), 30 * 40 * 3) == 0);
  CHECK(std::memcmp(all[2].labels.data() + 30 * 40, s9.second.px.data(), 30 * 40) == 0);
  Batch extra;
  CHECK_FALSE(l.next(extra));

  LoaderConfig tiny = q;
  tiny.batch_size = 11, tiny.drop_last = true;
  CHECK_THROWS_WITH_AS(Loader(tiny, synthetic_sample), doctest::Contains("holds no full batch of 11"), c3::Error);
}

TEST_CASE("loader: the cache decodes each sample once") {
  for (bool cache : {true, false}) {
    auto calls = std::make_shared<std::vector<std::atomic<int>>>(13);
    LoaderConfig c = small_config();
    c.sampling = Sampling::shuffle;
    c.drop_last = false;
    c.cache = cache;
    c.workers = 3;
    c.num_epochs = 3;
    Loader l(c, [calls](size_t i) {
      ++(*calls)[i];
      return synthetic_sample(i);
    });
    const auto batches = take(l, 1000);
    CHECK(batches.size() == 12);  // 4 steps x 3 epochs
    for (auto& n : *calls) CHECK(n.load() == (cache ? 1 : 3));
  }
}

TEST_CASE("loader: prefetch bounds the work ahead of the consumer") {
  auto calls = std::make_shared<std::atomic<int>>(0);
  LoaderConfig c = small_config();
  c.workers = 3;
  c.prefetch = 2;
  Loader l(c, [calls](size_t i) {
    ++*calls;
    return synthetic_sample(i);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(calls->load() <= 2 * 4);
  Batch b;
  l.next(b);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(calls->load() <= 3 * 4);
  CHECK(calls->load() >= 4);
}

TEST_CASE("loader: an error in a sample reaches the consumer with its index") {
  for (int workers : {0, 2}) {
    Loader l(sequential_config(workers), [](size_t i) {
      if (i == 6) throw std::runtime_error("cannot decode frame_06.png");
      return synthetic_sample(i);
    });
    Batch b;
    CHECK(l.next(b));
    CHECK_THROWS_WITH_AS(l.next(b), doctest::Contains("loader: sample index 6 (epoch 0, step 1): cannot decode frame_06.png"),
                         c3::Error);
    CHECK(l.next(b));  // the failed batch is dropped, the loader goes on
    CHECK(b.indices == std::vector<int64_t>{8, 9, 10, 11});
  }
  LoaderConfig c = small_config();
  c.workers = 1;
  Loader gray(c, [](size_t) { return std::pair<Image, Image>{Image(8, 8, 1), Image(8, 8, 1)}; });
  Batch b;
  CHECK_THROWS_WITH_AS(gray.next(b), doctest::Contains("image must be RGB (3 channels), got 8x8x1"), c3::Error);
  Loader nolabel(c, [](size_t i) { return std::pair<Image, Image>{synthetic_sample(i).first, Image()}; });
  CHECK_THROWS_WITH_AS(nolabel.next(b), doctest::Contains("no label"), c3::Error);
  c.labels = false;
  Loader unlabeled(c, [](size_t i) { return std::pair<Image, Image>{synthetic_sample(i).first, Image()}; });
  CHECK(unlabeled.next(b));
  CHECK(b.labels.empty());
  CHECK(b.images.size() == 4u * 16 * 20 * 3);
}

TEST_CASE("loader: skip_bad replaces a failing sample by the next index and counts it") {
  for (int workers : {0, 2}) {
    LoaderConfig c = sequential_config(workers);
    c.skip_bad = true;
    Loader l(c, [](size_t i) {
      if (i == 5 || i == 6) throw std::runtime_error("frame_0" + std::to_string(i) + ".png: truncated PNG");
      return synthetic_sample(i);
    });
    std::vector<Batch> all = take(l, 10);
    REQUIRE(all.size() == 3);  // 13 samples, batch 4, drop_last: 3 batches, none lost
    // Slot 1 of batch 1 held index 5: 5 and 6 fail, 7 loads; slot 2 held 6, replaced by 7 too.
    CHECK(all[1].indices == std::vector<int64_t>{4, 7, 7, 7});
    const size_t npx = size_t(all[1].h) * all[1].w * 3;
    CHECK(std::memcmp(all[1].images.data() + npx, all[1].images.data() + 3 * npx, npx) != 0);  // own seeds
    const LoaderStats st = l.stats();
    CHECK(st.skipped == 3);  // 5, 6 (for slot 1) and 6 (for slot 2)
    REQUIRE(!st.examples.empty());
    CHECK(st.examples[0].find("truncated PNG") != std::string::npos);
  }
  LoaderConfig c = small_config();
  c.skip_bad = true;
  Loader broken(c, [](size_t) -> std::pair<Image, Image> { throw std::runtime_error("disk gone"); });
  Batch b;
  CHECK_THROWS_WITH_AS(broken.next(b), doctest::Contains("13 samples in a row failed to load; the last: disk gone"),
                       c3::Error);
}

TEST_CASE("loader: pinned batches hold the same bytes (pinned only where a GPU is usable)") {
  LoaderConfig c = small_config();
  c.strong = true;
  Loader plain(c, synthetic_sample);
  c.pinned = true;
  Loader pinned(c, synthetic_sample);
  Batch a, b;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(plain.next(a));
    REQUIRE(pinned.next(b));
    CHECK(a.images == b.images);
    CHECK(a.labels == b.labels);
    CHECK(a.strong == b.strong);
    CHECK_FALSE(is_pinned(a.images));
    CHECK(is_pinned(b.images) == c3::cuda_available());  // no GPU: ordinary memory, same bytes
  }
  Batch copy = b;  // a copy keeps its own block; both free correctly
  CHECK(copy.images == b.images);
}

// What the trainer does with a batch on a GPU: the pinned bytes uploaded (from_host) and
// normalized there, equal to the same batch normalized on the CPU (the same f32 operations
// in the same order: exact).
GPU_TEST_CASE("loader: pinned batches uploaded to the GPU give the CPU's inputs and labels exactly") {
  LoaderConfig c = small_config();
  c.pinned = true;
  Loader pinned(c, synthetic_sample);
  Batch b;
  for (int i = 0; i < 2; ++i) {
    REQUIRE(pinned.next(b));
    REQUIRE(is_pinned(b.images));
    const c3::Tensor xc = c3::semiseg::to_input(b.images, b.size(), b.h, b.w, c3::Device::cpu);
    const c3::Tensor xg = c3::semiseg::to_input(b.images, b.size(), b.h, b.w, c3::Device::cuda);
    CHECK(xg.device() == c3::Device::cuda);
    CHECK(xg.cpu().to_vector<float>() == xc.to_vector<float>());
    const c3::Tensor yg = c3::semiseg::to_labels(b.labels, b.size(), b.h, b.w, c3::Device::cuda);
    CHECK(yg.cpu().to_vector<uint8_t>() == std::vector<uint8_t>(b.labels.begin(), b.labels.end()));
  }
}

// More workers than the process can start ended in std::terminate (a joinable thread
// destroyed while the constructor unwound). In a child process whose address space is capped
// just above what it uses, the 8 MiB thread stacks cannot be mapped beyond the first few.
TEST_CASE("loader: workers that cannot be started are an error naming data.workers") {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    long pages = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
      std::fclose(f);
    }
    const rlim_t cap = rlim_t(pages) * rlim_t(::sysconf(_SC_PAGESIZE)) + (64u << 20);
    rlimit lim{cap, cap};
    if (pages == 0 || ::setrlimit(RLIMIT_AS, &lim) != 0) ::_exit(3);
    LoaderConfig c = small_config();
    c.workers = 200;
    try {
      Loader l(c, synthetic_sample);
      ::_exit(4);  // all 200 started: the cap did not bite
    } catch (const c3::Error& e) {
      ::_exit(std::strstr(e.what(), "data.workers: could not start loader worker") ? 0 : 5);
    } catch (...) {
      ::_exit(6);
    }
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK_MESSAGE(WIFEXITED(status), "the child died by signal ", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  CHECK(WEXITSTATUS(status) == 0);
}
