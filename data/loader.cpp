// The threaded loader: claiming samples in order, preparing (decode + base resize, cached
// or not), augmenting with per-sample seeds, assembling batches, handing them out in order.
#include "data/loader.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <system_error>

#include "core/error.h"
#include "data/rng.h"

namespace c3::data {
namespace {

constexpr uint64_t kSamplerTag = 0x73616d706c6572ULL;  // "sampler": the epoch's index draw

size_t epoch_size(const LoaderConfig& cfg) {
  if (cfg.sampling == Sampling::with_replacement && cfg.samples_per_epoch > 0) return cfg.samples_per_epoch;
  return cfg.dataset_size;
}

}  // namespace

std::vector<int64_t> epoch_indices(const LoaderConfig& cfg, int64_t epoch) {
  const int64_t n = int64_t(cfg.dataset_size);
  std::vector<int64_t> idx;
  Rng rng(seed_hash({cfg.seed, cfg.stream, uint64_t(epoch), kSamplerTag}));
  switch (cfg.sampling) {
    case Sampling::sequential:
    case Sampling::shuffle:
      idx.resize(size_t(n));
      for (int64_t i = 0; i < n; ++i) idx[size_t(i)] = i;
      if (cfg.sampling == Sampling::shuffle)
        for (int64_t i = n - 1; i > 0; --i) std::swap(idx[size_t(i)], idx[size_t(rng.uniform_int(0, i))]);
      break;
    case Sampling::with_replacement:
      idx.resize(epoch_size(cfg));
      for (auto& v : idx) v = rng.uniform_int(0, n - 1);
      break;
  }
  return idx;
}

Loader::Loader(LoaderConfig cfg, SampleLoadFn load) : cfg_(std::move(cfg)), load_(std::move(load)) {
  C3_CHECK(load_, "loader: no sample load function");
  C3_CHECK(cfg_.dataset_size > 0, "loader: the dataset is empty");
  C3_CHECK(cfg_.batch_size > 0 && cfg_.workers >= 0 && cfg_.prefetch >= 1, "loader: bad settings (batch size ",
           cfg_.batch_size, ", workers ", cfg_.workers, ", prefetch ", cfg_.prefetch, ")");
  C3_CHECK(cfg_.shards >= 1 && cfg_.shard >= 0 && cfg_.shard < cfg_.shards && cfg_.batch_size % cfg_.shards == 0 &&
               (cfg_.shards == 1 || cfg_.drop_last),
           "loader: shard ", cfg_.shard, " of ", cfg_.shards, " needs a batch size (", cfg_.batch_size,
           ") that divides by the shard count, and drop_last");
  const int64_t n = int64_t(epoch_size(cfg_)), b = cfg_.batch_size;
  steps_per_epoch_ = cfg_.drop_last ? n / b : (n + b - 1) / b;
  C3_CHECK(steps_per_epoch_ > 0, "loader: an epoch of ", n, " samples holds no full batch of ", b,
           " (drop_last is set: lower the batch size or unset drop_last)");
  if (cfg_.cache) {
    cache_.resize(cfg_.dataset_size);
    cache_mu_ = std::make_unique<std::mutex[]>(kStripes);
  }
  for (int i = 0; i < cfg_.workers; ++i) {
    try {
      threads_.emplace_back([this] { worker_loop(); });
    } catch (const std::system_error& e) {
      // Stop and join the workers already started (a joinable thread destroyed by the
      // unwinding would end the process with std::terminate).
      stop_workers();
      throw Error("data.workers: could not start loader worker " + std::to_string(i + 1) + " of " +
                  std::to_string(cfg_.workers) + " (" + e.what() + "); lower data.workers");
    }
  }
}

void Loader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

Loader::~Loader() { stop_workers(); }

int64_t Loader::total_batches() const {
  if (cfg_.num_epochs < 0) return std::numeric_limits<int64_t>::max();
  return cfg_.num_epochs * steps_per_epoch_;
}

const std::vector<int64_t>& Loader::indices_locked(int64_t epoch) {
  auto it = epochs_.find(epoch);
  if (it == epochs_.end()) it = epochs_.emplace(epoch, epoch_indices(cfg_, epoch)).first;
  return it->second;
}

void Loader::start_batch_locked(int64_t g) {
  Pending& p = pending_[g];
  p.batch.epoch = cfg_.first_epoch + g / steps_per_epoch_;
  p.batch.step = g % steps_per_epoch_;
  const auto& idx = indices_locked(p.batch.epoch);
  const size_t from = size_t(p.batch.step) * cfg_.batch_size + shard_offset();
  const size_t to = std::min(idx.size(), from + shard_size());
  p.batch.indices.assign(idx.begin() + from, idx.begin() + to);
  const HostAllocator<uint8_t> alloc(cfg_.pinned);
  p.batch.images = HostBytes(alloc), p.batch.labels = HostBytes(alloc), p.batch.strong = HostBytes(alloc);
  p.views.resize(to - from);
}

// Decode + base resize, through the cache when enabled (then the load function runs once per
// index: a worker that needs an entry being filled waits on its stripe's mutex).
std::shared_ptr<const std::pair<Image, Image>> Loader::prepared(int64_t index) {
  auto make = [&] {
    auto s = load_(size_t(index));
    C3_CHECK(s.first.c == 3 && !s.first.empty(), "image must be RGB (3 channels), got ", s.first.h, "x",
             s.first.w, "x", s.first.c);
    if (!cfg_.labels) s.second = Image();
    C3_CHECK(!cfg_.labels || !s.second.empty(), "no label, but the loader was asked for labels");
    C3_CHECK(s.second.empty() || (s.second.c == 1 && s.second.h == s.first.h && s.second.w == s.first.w),
             "label is ", s.second.h, "x", s.second.w, "x", s.second.c, " for an image of ", s.first.h, "x",
             s.first.w, " (labels must have 1 channel and the image's size)");
    const auto& a = cfg_.augment;
    if (a.base_h > 0 && a.base_w > 0) {
      s.first = resize_bilinear(s.first, a.base_h, a.base_w);
      if (!s.second.empty()) s.second = resize_nearest(s.second, a.base_h, a.base_w);
    }
    return std::make_shared<const std::pair<Image, Image>>(std::move(s));
  };
  if (!cfg_.cache) return make();
  std::lock_guard<std::mutex> lock(cache_mu_[size_t(index) % kStripes]);
  auto& entry = cache_[size_t(index)];
  if (!entry) entry = make();
  return entry;
}

void Loader::record_error(Pending& p, int64_t index, const char* what) {
  std::lock_guard<std::mutex> lock(mu_);
  if (p.error.empty())
    p.error = detail::concat("loader: sample index ", index, " (epoch ", p.batch.epoch, ", step ", p.batch.step,
                             "): ", what);
}

void Loader::record_skip(int64_t index, const char* what) {
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.skipped;
  std::string e = detail::concat("sample index ", index, ": ", what);
  if (stats_.examples.size() < 5 && std::find(stats_.examples.begin(), stats_.examples.end(), e) == stats_.examples.end())
    stats_.examples.push_back(std::move(e));
}

LoaderStats Loader::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

// Under skip_bad a failing sample is replaced by index + 1, + 2, ... (the first that loads,
// at most kMaxTries), so the batch is still the same for any thread timing.
void Loader::run_sample(Pending& p, int slot) {
  constexpr int kMaxTries = 16;
  int64_t index = p.batch.indices[size_t(slot)];
  const int tries = cfg_.skip_bad ? std::min<int>(kMaxTries, int(cfg_.dataset_size)) : 1;
  std::string why;
  for (int t = 0; t < tries; ++t) {
    try {
      const auto sample = prepared(index);
      const uint64_t position = uint64_t(p.batch.step) * cfg_.batch_size + shard_offset() + slot;
      Rng rng(seed_hash({cfg_.seed, cfg_.stream, uint64_t(p.batch.epoch), position, uint64_t(index)}));
      p.views[size_t(slot)] = make_views(sample->first, sample->second, cfg_.augment, rng, cfg_.strong);
      p.batch.indices[size_t(slot)] = index;  // only this thread writes this slot
      return;
    } catch (const std::exception& e) {
      why = e.what();
    } catch (...) {
      why = "unknown exception";
    }
    if (!cfg_.skip_bad) return record_error(p, index, why.c_str());
    record_skip(index, why.c_str());
    index = (index + 1) % int64_t(cfg_.dataset_size);
  }
  record_error(p, index, detail::concat(tries, " samples in a row failed to load; the last: ", why).c_str());
}

// Copies the views into the batch's flat buffers; sets p.error when sizes disagree.
void Loader::assemble(Pending& p) {
  Batch& b = p.batch;
  const Image& first = p.views[0].weak;
  b.h = first.h, b.w = first.w;
  const size_t npx = size_t(b.h) * b.w, n = p.views.size();
  for (const Views& v : p.views) {
    if (v.weak.h != b.h || v.weak.w != b.w) {
      p.error = detail::concat("loader: epoch ", b.epoch, " step ", b.step, " mixes image sizes ", b.h, "x", b.w,
                               " and ", v.weak.h, "x", v.weak.w, " (set a crop size or a base size)");
      return;
    }
  }
  b.images.resize(n * npx * 3);
  if (cfg_.labels) b.labels.resize(n * npx);
  if (cfg_.strong) b.strong.resize(n * npx * 3);
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(&b.images[i * npx * 3], p.views[i].weak.px.data(), npx * 3);
    if (cfg_.labels) std::memcpy(&b.labels[i * npx], p.views[i].label.px.data(), npx);
    if (cfg_.strong) std::memcpy(&b.strong[i * npx * 3], p.views[i].strong.px.data(), npx * 3);
  }
  p.views.clear();
}

void Loader::worker_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] {
      return stop_ || (next_batch_ < total_batches() && next_batch_ < consumed_ + cfg_.prefetch);
    });
    if (stop_) return;
    const int64_t g = next_batch_;
    if (!pending_.count(g)) start_batch_locked(g);
    Pending& p = pending_[g];
    const int slot = p.claimed++;
    const int n = int(p.views.size());
    if (p.claimed == n) ++next_batch_;
    lock.unlock();
    run_sample(p, slot);
    lock.lock();
    if (++p.done < n) continue;
    lock.unlock();
    if (p.error.empty()) assemble(p);  // only this thread touches p now
    lock.lock();
    p.claimed = -1;  // marks the batch ready
    ready_cv_.notify_all();
  }
}

bool Loader::next(Batch& out) {
  if (consumed_ >= total_batches()) return false;
  Pending p;
  const int64_t g = consumed_;
  if (cfg_.workers == 0) {
    start_batch_locked(g);  // single-threaded: the "lock" is trivially held
    p = std::move(pending_[g]);
    pending_.erase(g);
    for (int s = 0; s < int(p.views.size()); ++s) run_sample(p, s);
    if (p.error.empty()) assemble(p);
    ++consumed_;
  } else {
    std::unique_lock<std::mutex> lock(mu_);
    ready_cv_.wait(lock, [&] {
      auto it = pending_.find(g);
      return it != pending_.end() && it->second.claimed == -1;
    });
    p = std::move(pending_[g]);
    pending_.erase(g);
    ++consumed_;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (!epochs_.empty() && epochs_.begin()->first < p.batch.epoch) epochs_.erase(epochs_.begin());
  }
  work_cv_.notify_all();
  if (!p.error.empty()) throw Error(p.error);
  out = std::move(p.batch);
  return true;
}

}  // namespace c3::data
