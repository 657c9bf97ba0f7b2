// A threaded, deterministic batch loader.
//
// The loader turns a sample callback (dataset index -> decoded image + trainId label) into an
// endless sequence of batches: epoch e, steps 0..steps_per_epoch()-1, then epoch e+1, ...
// (or num_epochs epochs). Each sample is base-resized, then augmented (data/augment.h) with
// its own Rng seeded by seed_hash(seed, stream, epoch, position in the epoch, dataset index),
// so the bytes of every batch depend only on the configuration, never on the number of
// worker threads or their timing.
//
// Threads: `workers` threads (0 = everything runs inside next()) take samples one at a time
// from the batches that are not yet consumed, at most `prefetch` batches ahead of the
// consumer (the bounded queue). Batches come out in order. An exception while loading or
// augmenting a sample is rethrown by next() as c3::Error naming the sample index (and the
// file, from the load function); that batch is dropped and the loader stays usable. With
// skip_bad set, a sample that fails is replaced by the next dataset index that loads
// (deterministically) and counted instead (stats()). The destructor stops and joins the workers.
//
// Batch bytes live in page-locked memory when LoaderConfig::pinned is set and a GPU is
// usable (data/host_buffer.h), so the copy to the device runs by DMA at full speed.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "data/augment.h"
#include "data/host_buffer.h"
#include "data/image.h"

namespace c3::data {

// Returns the decoded RGB image and its trainId label (1 channel, same size; empty when the
// sample has none). Called from worker threads, concurrently: it must be thread-safe.
using SampleLoadFn = std::function<std::pair<Image, Image>(size_t index)>;

enum class Sampling {
  with_replacement,  // samples_per_epoch indices drawn uniformly with replacement (reference protocol)
  shuffle,           // a permutation of the dataset each epoch
  sequential,        // 0, 1, ..., n-1 (evaluation)
};

struct LoaderConfig {
  size_t dataset_size = 0;
  int batch_size = 1;
  Sampling sampling = Sampling::shuffle;
  size_t samples_per_epoch = 0;  // with_replacement: draws per epoch (0 = dataset_size)
  bool drop_last = true;         // drop the last partial batch of an epoch
  int workers = 0;               // 0 = synchronous
  int prefetch = 2;              // batches prepared ahead of the consumer (>= 1)
  bool cache = false;            // keep decoded + base-resized samples in memory
  uint64_t seed = 0;             // run seed
  uint64_t stream = 0;           // separates loaders sharing a seed (labeled vs unlabeled)
  int64_t first_epoch = 0;
  int64_t num_epochs = -1;       // -1 = endless
  bool labels = true;            // require and return labels
  bool strong = false;           // also return the strong view (unlabeled pipeline)
  bool pinned = false;           // batch bytes in page-locked memory (when a GPU is usable)
  bool skip_bad = false;         // replace a sample that fails to load, and count it
  // Data-parallel ranks: this loader delivers only part `shard` of `shards` equal parts of
  // every batch of batch_size (positions shard*b/shards ...), each sample with the seed of
  // its position in the whole batch, so all ranks' parts together are the batch one process
  // loads. batch_size must divide by shards; drop_last must be set.
  int shard = 0, shards = 1;
  AugmentConfig augment;
};

struct Batch {
  int h = 0, w = 0;               // every image of the batch has this size
  HostBytes images;               // B*H*W*3, NHWC (the weak view for unlabeled data)
  HostBytes labels;               // B*H*W trainIds, 255 = ignore; empty without labels
  HostBytes strong;               // B*H*W*3 strong view; empty unless LoaderConfig::strong
  int64_t epoch = 0, step = 0;    // step = batch number within the epoch
  std::vector<int64_t> indices;   // dataset index of each sample
  int64_t size() const { return int64_t(indices.size()); }
};

// Samples replaced under LoaderConfig::skip_bad.
struct LoaderStats {
  int64_t skipped = 0;                // draws replaced by another sample
  std::vector<std::string> examples;  // the first few distinct failures: "sample index i: why"
};

// The indices of one epoch (deterministic in seed, stream and epoch).
std::vector<int64_t> epoch_indices(const LoaderConfig& cfg, int64_t epoch);

class Loader {
 public:
  Loader(LoaderConfig cfg, SampleLoadFn load);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // The next batch in order; false once num_epochs epochs have been delivered.
  bool next(Batch& out);
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  const LoaderConfig& config() const { return cfg_; }
  LoaderStats stats() const;

 private:
  struct Pending {
    Batch batch;
    std::vector<Views> views;  // per sample, assembled into `batch` when the last one is done
    int claimed = 0, done = 0;
    std::string error;         // the first failure, with the sample index
  };

  int64_t total_batches() const;
  size_t shard_size() const { return size_t(cfg_.batch_size / cfg_.shards); }
  size_t shard_offset() const { return size_t(cfg_.shard) * shard_size(); }
  void start_batch_locked(int64_t g);
  const std::vector<int64_t>& indices_locked(int64_t epoch);
  void run_sample(Pending& p, int slot);
  void record_error(Pending& p, int64_t index, const char* what);
  void record_skip(int64_t index, const char* what);
  std::shared_ptr<const std::pair<Image, Image>> prepared(int64_t index);
  void assemble(Pending& p);
  void worker_loop();
  void stop_workers();  // sets stop_, wakes and joins every worker

  LoaderConfig cfg_;
  SampleLoadFn load_;
  int64_t steps_per_epoch_ = 0;

  mutable std::mutex mu_;
  LoaderStats stats_;
  std::condition_variable work_cv_, ready_cv_;
  bool stop_ = false;
  int64_t consumed_ = 0;   // batches handed out (or dropped on error)
  int64_t next_batch_ = 0; // the batch whose samples are being claimed
  std::map<int64_t, Pending> pending_;
  std::map<int64_t, std::vector<int64_t>> epochs_;
  std::vector<std::thread> threads_;

  // Cache of base-resized samples; entry i is guarded by cache_mu_[i % kStripes].
  static constexpr int kStripes = 64;
  std::vector<std::shared_ptr<const std::pair<Image, Image>>> cache_;
  std::unique_ptr<std::mutex[]> cache_mu_;
};

}  // namespace c3::data
