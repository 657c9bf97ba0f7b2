// The run configuration: every setting of METHOD.md in one JSON document.
//
// default_config() holds every key with its default (the reference protocol's values where
// METHOD.md fixes them). A config file and `--set section.key=value` overrides are merged
// onto it; a key the defaults do not have, or a value of the wrong type, is an error naming
// the key and the file. Then the JSON is read into the typed Config below.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nn/deeplab.h"
#include "semiseg/ops_dcrs.h"

namespace c3::semiseg {

enum class TrainMode { c3, supervised };

struct Config {
  nlohmann::json json;  // the merged document (written to the run folder)

  // model
  nn::DeepLabConfig model;
  std::string pretrained;  // torchvision ResNet safetensors, or ""
  bool sync_bn = false;    // model.sync_bn: trainable BatchNorm statistics over all ranks (SyncBN)
  // data
  std::string data_root, train_list, val_list, labeled_list;
  int64_t labeled_count = 372;
  bool unlabeled_all = false;  // the unlabeled set is every train image (the "all labels" setting)
  uint64_t split_seed = 0;
  int base_h = 512, base_w = 1024, crop_h = 256, crop_w = 512;
  std::vector<double> scales;
  int rotate = 10;
  double flip = 0.5;
  int workers = 2;
  bool cache = false;
  bool skip_bad = false;  // data.skip_bad_samples: leave out / replace unreadable samples and count them
  // The strong view's photometric ops (METHOD.md "Augmentation"): colour jitter and RandAugment.
  // Both off = the strong view equals the weak one (an ablation).
  bool strong_jitter = true, strong_randaugment = true;
  int val_h = 512, val_w = 1024;
  int64_t val_limit = 0;  // 0 = all
  // train
  TrainMode mode = TrainMode::c3;
  int batch_labeled = 4, batch_unlabeled = 4;
  int64_t epochs = 100, steps_per_epoch = 250, warmup_epochs = 9;
  double lr_head = 1.2e-4, lr_backbone = 1.2e-5, weight_decay = 0, momentum = 0.9, poly_power = 0.9;
  std::string optimizer = "adam";
  double ema_max_decay = 0.99;
  uint64_t seed = 0;
  int64_t eval_every_epochs = 1;
  std::string device = "auto";  // auto, cpu, cuda
  int contrast_groups = 1;      // the contrastive loss per group of images (the reference: per GPU)
  // Data-parallel runs (mpirun -np N): train.batch_labeled / batch_unlabeled are the GLOBAL
  // batch of a step, split evenly over the ranks (each must divide by N). Every K steps
  // (train.dist_check_every, 0 = off) the ranks compare hashes of their parameters, buffers
  // and optimizer state, and stop with an error if they differ.
  int64_t dist_check_every = 0;
  // CPU threads (OpenMP and OpenBLAS) for this process; 0 = all cores (or OMP_NUM_THREADS).
  // Small models run faster on one thread: their ops are too short to split.
  int threads = 0;
  // cuDNN: rank each convolution's algorithms by timing them (PyTorch's cudnn.benchmark)
  // instead of by cuDNN's heuristics. No effect on the CPU.
  bool cudnn_benchmark = false;
  // cuDNN: only convolution algorithms whose result is the same on every run (no atomics),
  // so a GPU run repeats exactly with one seed. No effect on the CPU (always deterministic).
  bool cudnn_deterministic = false;
  // losses
  double w_con = 0.1, w_cons = 50, tau = 0.15, tau_b = 0.1;
  int64_t ramp_cons = 4000, ramp_con = 250;
  int samples_per_class = 20, min_pixels = 20;
  bool skip_class0 = true, contrast = true, hard_easy = true, cross_set = true;
  // false: the labeled images go through the student un-mixed, only unlabeled pairs are mixed
  // (an ablation of the cross-set mixing; METHOD.md mixes all).
  bool mix_labeled = true;
  // DCRS
  DcrsMode dcrs = DcrsMode::per_class;
  double dcrs_s = 0.8, dcrs_init = 0.9, dcrs_momentum = 0.9, global_threshold = 0.95;
  std::vector<double> dcrs_s_per_class;
  bool dcrs_contrast = true;
  // output
  std::string out_dir = "runs/default";
  int vis_images = 4;
  // latest.safetensors is written at each evaluation and also every save_every_steps steps
  // and every save_every_minutes minutes (0 = off), so that a kill loses at most that much.
  int64_t save_every_steps = 0;
  double save_every_minutes = 10;

  int64_t total_steps() const { return epochs * steps_per_epoch; }
};

nlohmann::json default_config();
// The allowed range of a numeric key ("section.key"; "section.key[]" for each element of an
// array setting), inclusive at both ends.
struct KeyRange {
  const char* key;
  double lo, hi;
};
const std::vector<KeyRange>& config_ranges();
void check_ranges(const nlohmann::json& j);  // an error naming the first key outside its range
// An error naming `where` if `j` nests deeper than max_depth (JSON from files and checkpoints;
// the merge and the messages recurse, so the depth is checked before them).
void check_depth(const nlohmann::json& j, const std::string& where, int max_depth = 32);
// Merges `overlay` onto `base`, checking every key and type against `base`. `where` names the
// source in error messages (a file path, or "--set").
void merge_checked(nlohmann::json& base, const nlohmann::json& overlay, const std::string& where,
                   const std::string& prefix = "");
// "train.epochs=3" -> sets that key (value parsed as JSON, else taken as a string).
void apply_override(nlohmann::json& cfg, const std::string& assignment);
Config load_config(const std::string& path, const std::vector<std::string>& overrides);
Config parse_config(const nlohmann::json& j);  // validates ranges and enumerations

}  // namespace c3::semiseg
