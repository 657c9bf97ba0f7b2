#include "semiseg/run_data.h"

#include <sched.h>

#include <algorithm>
#include <mutex>
#include <thread>

#include "core/dist.h"
#include "core/ops.h"

namespace c3::semiseg {

namespace {
std::vector<data::Sample> samples_for(const Config& cfg, const std::string& list, const std::string& split,
                                      data::LoadStats* stats) {
  data::LoadOptions opt;
  if (cfg.data.skip_bad_samples) opt.on_missing = data::OnMissing::skip;
  if (!list.empty()) return data::load_split_list(list, cfg.data.root, opt, stats);
  C3_CHECK(!cfg.data.root.empty(), "config: set data.root (a Cityscapes-layout folder) or data.", split, "_list");
  return data::load_cityscapes(cfg.data.root, split, opt, stats);
}

data::AugmentConfig augment_for(const Config& cfg) {
  data::AugmentConfig a;
  a.base_h = cfg.data.base_size.h;
  a.base_w = cfg.data.base_size.w;
  a.crop_h = cfg.data.crop.h;
  a.crop_w = cfg.data.crop.w;
  a.scales = cfg.data.scales;
  a.rotate_max = cfg.data.rotate;
  a.flip_p = cfg.data.flip;
  a.jitter = cfg.data.strong_jitter;
  a.randaugment = cfg.data.strong_randaugment;
  return a;
}
}  // namespace

std::vector<data::Sample> load_val_samples(const Config& cfg, data::LoadStats* stats) {
  std::vector<data::Sample> val = samples_for(cfg, cfg.data.val_list, "val", stats);
  if (cfg.data.val_limit > 0 && int64_t(val.size()) > cfg.data.val_limit) val.resize(size_t(cfg.data.val_limit));
  return val;
}

RunData load_run_data(const Config& cfg) {
  RunData d;
  std::vector<data::Sample> train = samples_for(cfg, cfg.data.train_list, "train", &d.listing);
  C3_CHECK(!train.empty(), "no training samples found (data.root = '", cfg.data.root, "')");
  const DataConfig& dc = cfg.data;
  data::LabeledSplit split = dc.labeled_list.empty() ? data::split_labeled(train, dc.labeled_count, dc.split_seed)
                                                     : data::split_labeled_from_list(train, dc.labeled_list, dc.root);
  d.labeled = std::move(split.labeled);
  d.unlabeled = cfg.data.unlabeled_all ? train : std::move(split.unlabeled);
  d.val = load_val_samples(cfg, &d.listing);
  C3_CHECK(!d.labeled.empty(), "the labeled subset is empty (data.labeled_count = ", cfg.data.labeled_count, ")");
  C3_CHECK(cfg.train.mode == TrainMode::supervised || !d.unlabeled.empty(),
           "C3 training needs unlabeled images, but every training image is labeled");
  return d;
}

int loader_workers(const Config& cfg, int loaders) {
  if (cfg.data.workers >= 0) return cfg.data.workers;
  cpu_set_t set;
  CPU_ZERO(&set);
  int cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : int(std::thread::hardware_concurrency());
  cores = std::clamp(cores, 1, 16);
  return std::max(1, cores / std::max(1, loaders));
}

namespace {
data::LoaderConfig train_loader_config(const Config& cfg, int64_t epoch, const dist::Comm& comm) {
  data::LoaderConfig lc;
  lc.batch_size = cfg.train.batch_labeled;
  lc.sampling = data::Sampling::with_replacement;  // the reference protocol: a fixed number of draws
  lc.samples_per_epoch = size_t(cfg.train.steps_per_epoch) * size_t(cfg.train.batch_labeled);
  lc.workers = loader_workers(cfg, cfg.train.mode == TrainMode::c3 ? 2 : 1);  // labeled and unlabeled at once
  lc.cache = cfg.data.cache;
  lc.seed = cfg.train.seed;
  lc.stream = 1;
  lc.first_epoch = epoch;
  lc.augment = augment_for(cfg);
  lc.shard = comm.rank();  // data-parallel: this rank's part of the global batch
  lc.shards = comm.size();
  lc.skip_bad = cfg.data.skip_bad_samples;
  lc.pinned = device_for(cfg.train) == Device::cuda;  // batches go to the GPU: DMA from pinned memory
  return lc;
}
}  // namespace

void make_labeled_loader(const Config& cfg, RunData& d, int64_t epoch, const dist::Comm& comm) {
  data::LoaderConfig lc = train_loader_config(cfg, epoch, comm);
  lc.dataset_size = d.labeled.size();
  auto lab = d.labeled;
  const int nc = int(cfg.model.num_classes);
  d.labeled_loader = std::make_unique<data::Loader>(lc, [lab, nc](size_t i) { return data::load_sample(lab[i], nc); });
}

void make_unlabeled_loader(const Config& cfg, RunData& d, int64_t epoch, const dist::Comm& comm) {
  data::LoaderConfig lc = train_loader_config(cfg, epoch, comm);
  lc.dataset_size = d.unlabeled.size();
  lc.batch_size = cfg.train.batch_unlabeled;
  lc.samples_per_epoch = size_t(cfg.train.steps_per_epoch) * size_t(cfg.train.batch_unlabeled);
  lc.stream = 2;
  lc.labels = false;
  lc.strong = true;
  auto unl = d.unlabeled;
  d.unlabeled_loader = std::make_unique<data::Loader>(lc, [unl](size_t i) {
    data::Sample s = unl[i];
    s.label.clear();  // unlabeled: never read its label, even when the file exists
    return data::load_sample(s);
  });
}

std::unique_ptr<data::Loader> make_val_loader(const Config& cfg, const RunData& d, const dist::Comm& comm) {
  // Data-parallel: rank r evaluates the r-th contiguous part of the val set (rank 0 the
  // first images, so its pictures are those of a single process); the trainer sums the
  // confusion matrices.
  const size_t n = size_t(comm.size()), r = size_t(comm.rank()), N = d.val.size();
  C3_CHECK(N >= n, "the val set has ", N, " images, fewer than the ", n, " ranks");
  const std::vector<data::Sample> val(d.val.begin() + r * N / n, d.val.begin() + (r + 1) * N / n);
  data::LoaderConfig lc;
  lc.dataset_size = val.size();
  lc.batch_size = 1;
  lc.sampling = data::Sampling::sequential;
  lc.drop_last = false;
  lc.workers = loader_workers(cfg, 1);
  lc.num_epochs = 1;
  lc.augment = data::AugmentConfig{};
  lc.augment.base_h = cfg.data.val_size.h;
  lc.augment.base_w = cfg.data.val_size.w;
  lc.augment.crop_h = 0;
  lc.augment.crop_w = 0;
  lc.augment.scales = {1.0};
  lc.augment.rotate_max = 0;
  lc.augment.flip_p = 0;
  lc.pinned = device_for(cfg.train) == Device::cuda;
  const int nc = int(cfg.model.num_classes);
  return std::make_unique<data::Loader>(lc, [val, nc](size_t i) { return data::load_sample(val[i], nc); });
}

int64_t RunData::skipped() const {
  int64_t n = listing.skipped;
  for (const auto* l : {labeled_loader.get(), unlabeled_loader.get()})
    if (l) n += l->stats().skipped;
  return n;
}

std::vector<std::string> RunData::skip_examples() const {
  std::vector<std::string> out = listing.examples;
  for (const auto* l : {labeled_loader.get(), unlabeled_loader.get()})
    if (l)
      for (const auto& e : l->stats().examples) out.push_back(e);
  return out;
}

namespace {
// ImageNet normalisation as one multiply-add per channel; the two [3] constants are uploaded
// once per device (not once per batch: an upload is a host synchronisation point).
struct Norm {
  Tensor scale, shift;
};
Norm input_norm(Device dev) {
  // Never destroyed: a device tensor must not be freed after the CUDA runtime shut down at exit.
  static Norm* const norms = new Norm[2];
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  Norm& nm = norms[dev == Device::cpu ? 0 : 1];
  if (!nm.scale.defined()) {
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    std::vector<float> scale(3), shift(3);
    for (int c = 0; c < 3; ++c) {
      scale[c] = 1.0f / (255.0f * std[c]);
      shift[c] = -mean[c] / std[c];
    }
    nm = {Tensor::from_vector(scale, {3}, dev), Tensor::from_vector(shift, {3}, dev)};
  }
  return nm;
}
}  // namespace

void prepare_to_input(Device dev) { input_norm(dev); }

Tensor to_input(std::span<const uint8_t> images, int64_t n, int h, int w, Device dev) {
  C3_CHECK(int64_t(images.size()) == n * h * w * 3, "to_input: ", images.size(), " bytes for ", n, "x", h, "x", w, "x3");
  Tensor u8 = Tensor::from_pinned(images, {n, h, w, 3}, dev);
  const Norm use = input_norm(dev);
  return add(mul(cast(u8, DType::f32), use.scale), use.shift);
}

Tensor to_labels(std::span<const uint8_t> labels, int64_t n, int h, int w, Device dev) {
  C3_CHECK(int64_t(labels.size()) == n * h * w, "to_labels: ", labels.size(), " bytes for ", n, "x", h, "x", w);
  return Tensor::from_pinned(labels, {n, h, w}, dev);
}

}  // namespace c3::semiseg
