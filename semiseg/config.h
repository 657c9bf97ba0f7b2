// The run configuration: every setting of METHOD.md, one section struct per JSON section.
//
// Every key is written once, in the table of config.cpp (config_keys): its name, its default
// (the reference protocol's value where METHOD.md fixes it), its allowed values and a line of
// documentation. The defaults (`Config{}`), the JSON default document, the reading and checking
// of a config file with `--set section.key=value` overrides, the config.json written into the
// run folder and `c3semiseg config --list` are all made from that table. A key the table does
// not have, a value of the wrong type or outside its range is an error naming the key and the
// file (or `--set`).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/precision.h"
#include "nn/deeplab.h"
#include "semiseg/ops_dcrs.h"

namespace c3::semiseg {

enum class TrainMode { c3, supervised };
enum class Optimizer { adam, sgd };

struct Size2 {  // [height, width] in the JSON
  int h = 0, w = 0;
};

// model.*: the network (nn::DeepLabConfig: head, backbone, ASPP, projection head) and where its
// weights come from.
struct ModelConfig : nn::DeepLabConfig {
  std::string pretrained;
  bool sync_bn = false;
};

struct DataConfig {  // data.*
  std::string root, train_list, val_list, labeled_list;
  int64_t labeled_count = 0;
  bool unlabeled_all = false;
  uint64_t split_seed = 0;
  Size2 base_size, crop, val_size;
  std::vector<double> scales;
  int rotate = 0;
  double flip = 0;
  int workers = 0;
  bool cache = false;
  int64_t val_limit = 0;
  bool skip_bad_samples = false;
  bool strong_jitter = false, strong_randaugment = false;
};

struct TrainConfig {  // train.*
  TrainMode mode = TrainMode::c3;
  int batch_labeled = 0, batch_unlabeled = 0;
  int64_t epochs = 0, steps_per_epoch = 0, warmup_epochs = 0;
  Optimizer optimizer = Optimizer::adam;
  double lr_head = 0, lr_backbone = 0, weight_decay = 0, momentum = 0, poly_power = 0;
  double ema_max_decay = 0;
  uint64_t seed = 0;
  int64_t eval_every_epochs = 0;
  std::string device;
  int contrast_groups = 0;
  int64_t dist_check_every = 0;
  int threads = 0;
  bool cudnn_benchmark = false, cudnn_deterministic = false;
  std::string cpu_conv;  // "onednn" or "im2col"
  Precision precision = Precision::tf32;

  int64_t total_steps() const { return epochs * steps_per_epoch; }
};

struct LossConfig {  // loss.*
  double w_con = 0, w_cons = 0;
  int64_t ramp_cons = 0, ramp_con = 0;
  double tau = 0, tau_b = 0;
  int samples_per_class = 0, min_pixels = 0;
  bool skip_class0 = false, contrast = false, hard_easy = false, cross_set = false, mix_labeled = false;
};

struct DcrsConfig {  // dcrs.*
  DcrsMode mode = DcrsMode::per_class;
  double s = 0;
  std::vector<double> s_per_class;
  double init = 0, momentum = 0, global_threshold = 0;
  bool apply_to_contrast = false;
};

struct OutputConfig {  // output.*
  std::string dir;
  int vis_images = 0;
  int64_t log_every = 0;
  int64_t save_every_steps = 0;
  double save_every_minutes = 0;
};

struct Config {
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
  LossConfig loss;
  DcrsConfig dcrs;
  OutputConfig output;

  Config();  // every key at its default (the table's)
};

// The device a run uses: train.device cpu or cuda (an error when no GPU is usable), or auto
// (the GPU when one is usable).
Device device_for(const TrainConfig& t);
// Sets what train.precision, train.cudnn_benchmark, train.cudnn_deterministic and
// train.cpu_conv choose for this process's convolutions and matmuls (training, eval and
// predict alike).
void apply_numerics(const TrainConfig& t);

// The config as a JSON document (every key; what config.json in the run folder holds and what
// checkpoints carry in their metadata). parse_config(config_json(c)) gives c back.
nlohmann::json config_json(const Config& c);
nlohmann::json default_config();  // config_json(Config{})
// One line per key: name, default, allowed values, doc (`c3semiseg config --list`).
std::string config_list();

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

// The embedded default (configs/synthetic.json: synthetic data, a small model sized for 2 CPU
// cores) in train.mode `mode`, its run folder runs/synthetic_<mode>, then `sets`.
Config default_run_config(const std::string& mode, const std::vector<std::string>& sets);
// The two runs of `c3semiseg compare`: supervised and C3, in their own folders (a set
// output.dir=D gives D_supervised and D_c3); a set train.mode is an error.
std::pair<Config, Config> compare_run_configs(const std::vector<std::string>& sets);
// Reads a complete document (default_config() with files and overrides merged onto it):
// checks every value against its range or its allowed names, then the rules between keys.
Config parse_config(const nlohmann::json& j);

}  // namespace c3::semiseg
