// The data side of a run: datasets from the config, loaders, and batches turned into
// device tensors (uint8 NHWC in, normalized f32 out, on the device).
#pragma once
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dist.h"
#include "core/tensor.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "semiseg/config.h"

namespace c3::semiseg {

struct RunData {
  std::vector<data::Sample> labeled, unlabeled, val;
  std::unique_ptr<data::Loader> labeled_loader, unlabeled_loader;
  // Under data.skip_bad_samples: samples left out when listing (missing files), and the
  // loaders' replaced draws (unreadable images, bad labels), with the first few reasons.
  data::LoadStats listing;
  int64_t skipped() const;
  std::vector<std::string> skip_examples() const;
};

// Train samples from data.train_list (or the Cityscapes layout under data.root, split
// "train"), split into labeled / unlabeled by data.labeled_list or data.labeled_count and
// data.split_seed; val samples from data.val_list or split "val".
RunData load_run_data(const Config& cfg);
// The val samples alone (data.val_list or split "val"), the first data.val_limit of them: what
// the trainer evaluates on, and `c3semiseg eval`.
std::vector<data::Sample> load_val_samples(const Config& cfg, data::LoadStats* stats = nullptr);
// The labeled loader, starting at `epoch` (for resume), and the unlabeled loader (weak and
// strong views), started separately when the semi phase begins.
void make_labeled_loader(const Config& cfg, RunData& d, int64_t epoch, const dist::Comm& comm = dist::Comm::self());
void make_unlabeled_loader(const Config& cfg, RunData& d, int64_t epoch, const dist::Comm& comm = dist::Comm::self());
// A val loader: sequential, resized to data.val_size, no augmentation.
std::unique_ptr<data::Loader> make_val_loader(const Config& cfg, const RunData& d, const dist::Comm& comm = dist::Comm::self());

// data.workers, with -1 resolved: the cores this process may use (at most 16) shared by
// `loaders` loaders running at once.
int loader_workers(const Config& cfg, int loaders);

// u8 NHWC -> f32 NHWC normalized with the ImageNet mean and std (RGB in [0,1]), on `dev`.
Tensor to_input(std::span<const uint8_t> images, int64_t n, int h, int w, Device dev);
// Makes to_input's normalisation constants on `dev` now (two small uploads, once per process),
// so that a training loop's first step does not wait for them.
void prepare_to_input(Device dev);
Tensor to_labels(std::span<const uint8_t> labels, int64_t n, int h, int w, Device dev);

}  // namespace c3::semiseg
