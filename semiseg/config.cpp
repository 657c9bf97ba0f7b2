#include "semiseg/config.h"

#include <cmath>
#include <fstream>
#include <cstdio>
#include <initializer_list>

#include "core/error.h"

namespace c3::semiseg {
using nlohmann::json;

json default_config() {
  return json::parse(R"({
  "model": {"head": "deeplab_v2", "depth": 101, "width": 1.0, "output_stride": 8, "stride_on_1x1": true,
            "frozen_bn": true, "aspp_two_branches": false, "aspp_dilations": [], "num_classes": 19, "proj_dim": 256,
            "aspp_channels": 256, "dropout": 0.1, "pretrained": "", "sync_bn": false},
  "data": {"root": "", "train_list": "", "val_list": "", "labeled_list": "", "labeled_count": 372, "unlabeled_all": false,
           "split_seed": 0, "base_size": [512, 1024], "crop": [256, 512], "scales": [1.0], "rotate": 10,
           "flip": 0.5, "workers": 2, "cache": false, "val_size": [512, 1024], "val_limit": 0,
           "skip_bad_samples": false, "strong_jitter": true, "strong_randaugment": true},
  "train": {"mode": "c3", "batch_labeled": 4, "batch_unlabeled": 4, "epochs": 100, "steps_per_epoch": 250,
            "warmup_epochs": 9, "optimizer": "adam", "lr_head": 1.2e-4, "lr_backbone": 1.2e-5,
            "weight_decay": 0.0, "momentum": 0.9, "poly_power": 0.9, "ema_max_decay": 0.99, "seed": 0,
            "eval_every_epochs": 1, "device": "auto", "contrast_groups": 1, "dist_check_every": 0,
            "threads": 0, "cudnn_benchmark": false, "cudnn_deterministic": false},
  "loss": {"w_con": 0.1, "w_cons": 50.0, "ramp_cons": 4000, "ramp_con": 250, "tau": 0.15, "tau_b": 0.1,
           "samples_per_class": 20, "min_pixels": 20, "skip_class0": true, "contrast": true,
           "hard_easy": true, "cross_set": true, "mix_labeled": true},
  "dcrs": {"mode": "dcrs", "s": 0.8, "s_per_class": [], "init": 0.9, "momentum": 0.9,
           "global_threshold": 0.95, "apply_to_contrast": true},
  "output": {"dir": "runs/default", "vis_images": 4, "save_every_steps": 0, "save_every_minutes": 10}
})");
}

namespace {
const char* type_name(const json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}
bool compatible(const json& want, const json& got) {
  if (want.is_number_float()) return got.is_number();  // 1 is a fine learning-rate factor
  if (want.is_number_integer()) return got.is_number_integer();
  if (want.is_array()) return got.is_array();
  return want.type() == got.type();
}
}  // namespace

// The allowed range of every numeric setting, next to its default above: parse_config checks
// each one (finite, inside [lo, hi]) before reading it, so that no value is cast, wrapped or
// divided by silently. Upper bounds are where a value stops making sense or starts to exhaust
// the machine, not where the method's protocol is. A test checks that every numeric key of
// default_config() is here and that every default is inside its range.
const std::vector<KeyRange>& config_ranges() {
  static const std::vector<KeyRange> r = {
      {"model.depth", 18, 152},  // 18, 34, 50, 101 or 152 (the model says which)
      {"model.width", 0.0625, 4},
      {"model.output_stride", 8, 32},
      {"model.num_classes", 2, 254},  // labels are 8-bit and 255 is "ignore"
      {"model.proj_dim", 1, 4096},
      {"model.aspp_channels", 1, 4096},
      {"model.dropout", 0, 0.99},
      {"data.labeled_count", 0, 1e8},
      {"data.split_seed", 0, 1.8e19},
      {"data.rotate", 0, 180},
      {"data.flip", 0, 1},
      {"data.workers", 0, 256},
      {"data.val_limit", 0, 1e9},
      {"train.batch_labeled", 1, 4096},
      {"train.batch_unlabeled", 0, 4096},
      {"train.epochs", 1, 1e6},
      {"train.steps_per_epoch", 1, 1e7},
      {"train.warmup_epochs", 0, 1e6},
      {"train.lr_head", 0, 10},
      {"train.lr_backbone", 0, 10},
      {"train.weight_decay", 0, 1},
      {"train.momentum", 0, 0.9999},
      {"train.poly_power", 0, 100},
      {"train.ema_max_decay", 0, 1},
      {"train.seed", 0, 1.8e19},
      {"train.eval_every_epochs", 1, 1e6},
      {"train.contrast_groups", 1, 4096},
      {"train.dist_check_every", 0, 1e9},
      {"train.threads", 0, 1024},
      {"loss.w_con", 0, 1e6},
      {"loss.w_cons", 0, 1e6},
      {"loss.ramp_cons", 0, 1e9},
      {"loss.ramp_con", 0, 1e9},
      {"loss.tau", 1e-4, 100},
      {"loss.tau_b", 1e-4, 100},
      {"loss.samples_per_class", 1, 100000},
      {"loss.min_pixels", 0, 1e9},
      {"dcrs.s", 0, 1},
      {"dcrs.init", 0, 1},
      {"dcrs.momentum", 0, 1},
      {"dcrs.global_threshold", 0, 1},
      {"output.vis_images", 0, 1000},
      {"output.save_every_steps", 0, 1e9},
      {"output.save_every_minutes", 0, 1e6},
      // The elements of array settings.
      {"data.base_size[]", 1, 16384},
      {"data.crop[]", 1, 16384},
      {"data.val_size[]", 1, 16384},
      {"data.scales[]", 0.05, 8},
      {"model.aspp_dilations[]", 1, 64},
      {"dcrs.s_per_class[]", 0, 1},
  };
  return r;
}

namespace {
const json* find_key(const json& j, const std::string& dotted) {
  const json* v = &j;
  size_t start = 0;
  while (true) {
    const size_t dot = dotted.find('.', start);
    const std::string part = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!v->is_object() || !v->contains(part)) return nullptr;
    v = &(*v)[part];
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}
std::string number_text(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%.10g", x);
  return b;
}
void check_range(const json& v, const KeyRange& r, const std::string& key) {
  const std::string range = "[" + number_text(r.lo) + ", " + number_text(r.hi) + "]";
  C3_CHECK(v.is_number(), "config key '", key, "': must be a number in ", range, ", got ", v.dump());
  const double x = v.get<double>();
  C3_CHECK(std::isfinite(x) && x >= r.lo && x <= r.hi, "config key '", key, "': must be in ", range, ", got ",
           v.dump());
}
}  // namespace

void check_ranges(const json& j) {
  for (const KeyRange& r : config_ranges()) {
    std::string key = r.key;
    const bool elements = key.size() > 2 && key.compare(key.size() - 2, 2, "[]") == 0;
    if (elements) key.resize(key.size() - 2);
    const json* v = find_key(j, key);
    if (v == nullptr) continue;  // a missing key is the merge's error, not ours
    if (!elements) {
      check_range(*v, r, key);
      continue;
    }
    C3_CHECK(v->is_array(), "config key '", key, "': must be an array, got ", v->dump());
    for (size_t i = 0; i < v->size(); ++i) check_range((*v)[i], r, key + "[" + std::to_string(i) + "]");
  }
}

void check_depth(const json& j, const std::string& where, int max_depth) {
  // Iterative: a document nested 10^5 levels deep must not overflow the stack here either.
  std::vector<std::pair<const json*, int>> todo = {{&j, 1}};
  while (!todo.empty()) {
    auto [v, depth] = todo.back();
    todo.pop_back();
    if (!v->is_structured()) continue;
    C3_CHECK(depth <= max_depth, where, ": JSON nested deeper than ", max_depth, " levels");
    for (const json& child : *v) todo.push_back({&child, depth + 1});
  }
}

void merge_checked(json& base, const json& overlay, const std::string& where, const std::string& prefix) {
  C3_CHECK(overlay.is_object(), where, ": ", prefix.empty() ? "the config" : prefix, " must be a JSON object");
  for (auto it = overlay.begin(); it != overlay.end(); ++it) {
    const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    C3_CHECK(base.contains(it.key()), where, ": unknown config key '", key, "'");
    json& slot = base[it.key()];
    if (slot.is_object()) {
      merge_checked(slot, it.value(), where, key);
      continue;
    }
    C3_CHECK(compatible(slot, it.value()), where, ": config key '", key, "' must be ", type_name(slot), ", got ",
             type_name(it.value()), " (", it.value().dump(), ")");
    slot = it.value();
  }
}

void apply_override(json& cfg, const std::string& a) {
  const size_t eq = a.find('=');
  C3_CHECK(eq != std::string::npos && eq > 0, "--set ", a, ": expected section.key=value");
  const std::string path = a.substr(0, eq), text = a.substr(eq + 1);
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    C3_CHECK(!parts.back().empty(), "--set ", a, ": '", path, "' is not a key (expected section.key=value)");
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  json value;
  try {
    value = json::parse(text);
  } catch (const json::exception&) {
    value = text;  // a bare word is a string
    try {
      (void)value.dump();  // JSON text parsed above is valid UTF-8; a bare word may not be
    } catch (const json::exception&) {
      throw Error("--set " + path + "=...: the value is not valid UTF-8");
    }
  }
  check_depth(value, "--set " + path);
  // Build {"section": {"key": value}} and merge it with the same checks as a file.
  json overlay = value;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) overlay = json{{*it, overlay}};
  merge_checked(cfg, overlay, "--set " + a);
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  json j = default_config();
  if (!path.empty()) {
    std::ifstream f(path);
    C3_CHECK(f, path, ": cannot open the config file");
    json file;
    try {
      file = json::parse(f, nullptr, true, true);  // comments allowed
    } catch (const json::exception& e) {
      throw Error(path + ": not valid JSON: " + e.what());
    }
    check_depth(file, path);
    merge_checked(j, file, path);
  }
  for (const std::string& o : overrides) apply_override(j, o);
  return parse_config(j);
}

Config parse_config(const json& j) {
  check_ranges(j);
  Config c;
  c.json = j;
  auto bad = [](const std::string& key, const std::string& why) { return Error("config key '" + key + "': " + why); };
  const json &m = j["model"], &d = j["data"], &t = j["train"], &l = j["loss"], &r = j["dcrs"], &o = j["output"];
  // The position of a string setting among its allowed values; an error listing them otherwise.
  auto choice = [&](const json& v, const std::string& key, std::initializer_list<const char*> names) {
    const std::string got = v;
    std::string list;
    int i = 0;
    for (const char* n : names) {
      if (got == n) return i;
      list += (i == 0 ? "" : i + 1 == int(names.size()) ? " or " : ", ") + std::string(n);
      ++i;
    }
    throw bad(key, "must be " + list + ", got '" + got + "'");
  };
  const nn::HeadKind heads[] = {nn::HeadKind::deeplab_v2, nn::HeadKind::deeplab_v3plus};
  c.model.head = heads[choice(m["head"], "model.head", {"deeplab_v2", "deeplab_v3plus"})];
  c.model.backbone.depth = m["depth"];
  if (c.model.backbone.depth != 18 && c.model.backbone.depth != 34 && c.model.backbone.depth != 50 &&
      c.model.backbone.depth != 101 && c.model.backbone.depth != 152)
    throw bad("model.depth", "must be 18, 34, 50, 101 or 152, got " + m["depth"].dump());
  c.model.backbone.width = m["width"];
  c.model.backbone.output_stride = m["output_stride"];
  if (c.model.backbone.output_stride != 8 && c.model.backbone.output_stride != 16 && c.model.backbone.output_stride != 32)
    throw bad("model.output_stride", "must be 8, 16 or 32, got " + m["output_stride"].dump());
  c.model.backbone.stride_on_1x1 = m["stride_on_1x1"];
  c.model.backbone.frozen_bn = m["frozen_bn"];
  c.model.aspp_two_branches = m["aspp_two_branches"];
  for (const json& v : m["aspp_dilations"]) {
    if (!v.is_number_integer()) throw bad("model.aspp_dilations", "must list integers in 1..64, got " + v.dump());
    c.model.aspp_dilations.push_back(int(v));
  }
  if (c.model.aspp_two_branches && c.model.aspp_dilations.size() == 1)
    throw bad("model.aspp_dilations", "model.aspp_two_branches needs at least two dilations");
  c.model.num_classes = m["num_classes"];
  c.model.proj_dim = m["proj_dim"];
  c.model.aspp_channels = m["aspp_channels"];
  c.model.dropout = m["dropout"];
  c.model.align_corners = c.model.head == nn::HeadKind::deeplab_v2;
  c.pretrained = m["pretrained"];
  c.sync_bn = m["sync_bn"];
  if (c.model.num_classes < 2 || c.model.num_classes > 254) throw bad("model.num_classes", "must be in 2..254");

  c.data_root = d["root"];
  c.train_list = d["train_list"];
  c.val_list = d["val_list"];
  c.labeled_list = d["labeled_list"];
  c.labeled_count = d["labeled_count"];
  c.unlabeled_all = d["unlabeled_all"];
  c.split_seed = d["split_seed"];
  auto pair = [&](const json& v, const char* key, int& a, int& b) {
    if (!v.is_array() || v.size() != 2 || !v[0].is_number_integer() || !v[1].is_number_integer() || v[0] <= 0 || v[1] <= 0)
      throw bad(key, "must be [height, width] with positive integers, got " + v.dump());
    a = v[0];
    b = v[1];
  };
  pair(d["base_size"], "data.base_size", c.base_h, c.base_w);
  pair(d["crop"], "data.crop", c.crop_h, c.crop_w);
  pair(d["val_size"], "data.val_size", c.val_h, c.val_w);
  c.scales = d["scales"].get<std::vector<double>>();
  if (c.scales.empty()) throw bad("data.scales", "must list at least one scale factor");
  c.rotate = d["rotate"];
  c.flip = d["flip"];
  c.workers = d["workers"];
  c.cache = d["cache"];
  c.skip_bad = d["skip_bad_samples"];
  c.strong_jitter = d["strong_jitter"];
  c.strong_randaugment = d["strong_randaugment"];
  c.val_limit = d["val_limit"];

  const TrainMode modes[] = {TrainMode::c3, TrainMode::supervised};
  c.mode = modes[choice(t["mode"], "train.mode", {"c3", "supervised"})];
  c.batch_labeled = t["batch_labeled"];
  c.batch_unlabeled = t["batch_unlabeled"];
  if (c.batch_labeled < 1) throw bad("train.batch_labeled", "must be at least 1");
  if (c.mode == TrainMode::c3 && c.batch_unlabeled < 1) throw bad("train.batch_unlabeled", "must be at least 1");
  c.epochs = t["epochs"];
  c.steps_per_epoch = t["steps_per_epoch"];
  c.warmup_epochs = t["warmup_epochs"];
  if (c.epochs < 1 || c.steps_per_epoch < 1) throw bad("train.epochs", "epochs and steps_per_epoch must be positive");
  c.optimizer = t["optimizer"];
  choice(t["optimizer"], "train.optimizer", {"adam", "sgd"});
  c.lr_head = t["lr_head"];
  c.lr_backbone = t["lr_backbone"];
  c.weight_decay = t["weight_decay"];
  c.momentum = t["momentum"];
  c.poly_power = t["poly_power"];
  c.ema_max_decay = t["ema_max_decay"];
  c.seed = t["seed"];
  c.eval_every_epochs = t["eval_every_epochs"];
  c.device = t["device"];
  choice(t["device"], "train.device", {"auto", "cpu", "cuda"});
  c.contrast_groups = t["contrast_groups"];
  c.dist_check_every = t["dist_check_every"];
  if (c.dist_check_every < 0) throw bad("train.dist_check_every", "must be 0 (off) or a positive step count");
  c.threads = t["threads"];
  if (c.threads < 0) throw bad("train.threads", "must be 0 (all cores, or OMP_NUM_THREADS) or a thread count");
  c.cudnn_benchmark = t["cudnn_benchmark"];
  c.cudnn_deterministic = t["cudnn_deterministic"];

  c.w_con = l["w_con"];
  c.w_cons = l["w_cons"];
  c.ramp_cons = l["ramp_cons"];
  c.ramp_con = l["ramp_con"];
  c.tau = l["tau"];
  c.tau_b = l["tau_b"];
  c.samples_per_class = l["samples_per_class"];
  c.min_pixels = l["min_pixels"];
  c.skip_class0 = l["skip_class0"];
  c.contrast = l["contrast"];
  c.hard_easy = l["hard_easy"];
  c.cross_set = l["cross_set"];
  c.mix_labeled = l["mix_labeled"];

  const DcrsMode dcrs_modes[] = {DcrsMode::per_class, DcrsMode::global, DcrsMode::off};
  c.dcrs = dcrs_modes[choice(r["mode"], "dcrs.mode", {"dcrs", "global", "off"})];
  c.dcrs_s = r["s"];
  c.dcrs_s_per_class = r["s_per_class"].get<std::vector<double>>();
  if (!c.dcrs_s_per_class.empty() && int64_t(c.dcrs_s_per_class.size()) != c.model.num_classes)
    throw bad("dcrs.s_per_class", "must be empty or list one value per class");
  c.dcrs_init = r["init"];
  c.dcrs_momentum = r["momentum"];
  c.global_threshold = r["global_threshold"];
  c.dcrs_contrast = r["apply_to_contrast"];
  c.out_dir = o["dir"];
  if (c.out_dir.empty() || c.out_dir.find_first_not_of('/') == std::string::npos)
    throw bad("output.dir", "must name a folder for the run, not '" + c.out_dir + "'");
  c.vis_images = o["vis_images"];
  c.save_every_steps = o["save_every_steps"];
  c.save_every_minutes = o["save_every_minutes"];
  return c;
}

}  // namespace c3::semiseg
