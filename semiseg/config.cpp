#include "semiseg/config.h"

#include <cmath>
#include <fstream>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <type_traits>
#include <utility>

#include "core/error.h"
#include "core/ops_conv.h"
#include "core/ops_matmul.h"

namespace c3::semiseg {
using nlohmann::json;

namespace {

template <class E>
using Names = std::initializer_list<std::pair<const char*, E>>;

// ---- The table: every key once ---------------------------------------------------------------
// number(key, member, default, lo, hi, doc): a number in [lo, hi] (inclusive; an integer member
//   takes JSON integers only); flag: a boolean; text: a string; choice: one of the named values;
//   numbers: a list, each element in [lo, hi]; size: [height, width], each in [lo, hi].
// Upper bounds are where a value stops making sense or starts to exhaust the machine, not where
// the method's protocol is. The visitors below make the defaults, read, write and list.
template <class C, class V>
void config_keys(C& c, V& v) {
  auto& m = c.model;
  v.choice("model.head", m.head, nn::HeadKind::deeplab_v2,
           {{"deeplab_v2", nn::HeadKind::deeplab_v2}, {"deeplab_v3plus", nn::HeadKind::deeplab_v3plus}},
           "the decoder: DeepLab-v2 (ASPP-v2, logits upsampled with align_corners) or DeepLabV3+");
  v.number("model.depth", m.backbone.depth, 101, 18, 152, "ResNet depth: 18, 34, 50, 101 or 152");
  v.number("model.width", m.backbone.width, 1.0, 0.0625, 4, "ResNet channel multiplier (1 = torchvision's)");
  v.number("model.output_stride", m.backbone.output_stride, 8, 8, 32,
           "8, 16 or 32: layer3/layer4 dilated instead of strided below 32");
  v.flag("model.stride_on_1x1", m.backbone.stride_on_1x1, true,
         "bottleneck stride on the first 1x1 conv (DeepLab-v2's reference), else on the 3x3");
  v.flag("model.frozen_bn", m.backbone.frozen_bn, true, "BatchNorm in eval mode with its affine not trained");
  v.flag("model.aspp_two_branches", m.aspp_two_branches, false,
         "ASPP-v2 sums only its first two branches (a quirk of the reference code)");
  v.numbers("model.aspp_dilations", m.aspp_dilations, {}, 1, 64,
            "dilations of the ASPP's 3x3 branches; empty: the head's own (v2 6,12,18,24; v3+ 6,12,18)");
  v.number("model.num_classes", m.num_classes, 19, 2, 254, "classes (labels are 8-bit and 255 is ignore)");
  v.number("model.proj_dim", m.proj_dim, 256, 1, 4096, "width of the contrastive projection head's embeddings");
  v.number("model.aspp_channels", m.aspp_channels, 256, 1, 4096, "DeepLabV3+: channels of the ASPP branches");
  v.number("model.dropout", m.dropout, 0.1, 0, 0.99, "DeepLabV3+: dropout before the classifier");
  v.text("model.pretrained", m.pretrained, "", "torchvision ResNet weights (safetensors) for the backbone, or empty");
  v.flag("model.sync_bn", m.sync_bn, false, "trainable BatchNorm statistics over all ranks (SyncBN)");

  auto& d = c.data;
  v.text("data.root", d.root, "", "dataset folder (leftImg8bit/ and gtFine/, Cityscapes layout)");
  v.text("data.train_list", d.train_list, "", "file listing the training images; empty: every image of train/");
  v.text("data.val_list", d.val_list, "", "file listing the validation images; empty: every image of val/");
  v.text("data.labeled_list", d.labeled_list, "", "file naming the labeled images; empty: a seeded random subset");
  v.number("data.labeled_count", d.labeled_count, 372, 0, 1e8, "size of the random labeled subset");
  v.flag("data.unlabeled_all", d.unlabeled_all, false,
         "the unlabeled set is every training image, the labeled ones too (the all-labels setting)");
  v.number("data.split_seed", d.split_seed, 0, 0, 1.8e19, "seed of the labeled subset");
  v.size("data.base_size", d.base_size, {512, 1024}, 1, 16384, "training images resized to this before the crop");
  v.size("data.crop", d.crop, {256, 512}, 1, 16384, "random crop of the training images");
  v.numbers("data.scales", d.scales, {1.0}, 0.05, 8, "random rescale factors applied before the crop");
  v.number("data.rotate", d.rotate, 10, 0, 180, "random rotation by an integer angle in [-rotate, rotate] degrees");
  v.number("data.flip", d.flip, 0.5, 0, 1, "probability of a horizontal flip");
  v.number("data.workers", d.workers, -1, -1, 256,
           "loader threads per loader (0: load in the training thread; -1: the cores available, at most 16, "
           "shared by the labeled and unlabeled loaders)");
  v.flag("data.cache", d.cache, false, "keep the decoded, base-resized images in memory after their first use");
  v.size("data.val_size", d.val_size, {512, 1024}, 1, 16384, "validation images and labels resized to this");
  v.number("data.val_limit", d.val_limit, 0, 0, 1e9, "evaluate on the first N validation images (0: all)");
  v.flag("data.skip_bad_samples", d.skip_bad_samples, false,
         "leave out or replace unreadable samples and count them, instead of stopping with an error");
  v.flag("data.strong_jitter", d.strong_jitter, true, "strong view: colour jitter");
  v.flag("data.strong_randaugment", d.strong_randaugment, true, "strong view: RandAugment (2 photometric ops, m 10)");

  auto& t = c.train;
  v.choice("train.mode", t.mode, TrainMode::c3, {{"c3", TrainMode::c3}, {"supervised", TrainMode::supervised}},
           "c3: the semi-supervised method; supervised: labeled images only (the baseline)");
  v.number("train.batch_labeled", t.batch_labeled, 4, 1, 4096, "labeled images per step (all ranks together)");
  v.number("train.batch_unlabeled", t.batch_unlabeled, 4, 0, 4096, "unlabeled images per step (all ranks together)");
  v.number("train.epochs", t.epochs, 100, 1, 1e6, "epochs of steps_per_epoch steps");
  v.number("train.steps_per_epoch", t.steps_per_epoch, 250, 1, 1e7, "steps per epoch");
  v.number("train.warmup_epochs", t.warmup_epochs, 9, 0, 1e6, "labeled-only epochs before the semi phase");
  v.choice("train.optimizer", t.optimizer, Optimizer::adam, {{"adam", Optimizer::adam}, {"sgd", Optimizer::sgd}},
           "Adam (0.9, 0.999, eps 1e-8) or SGD with momentum");
  v.number("train.lr_head", t.lr_head, 1.2e-4, 0, 10, "learning rate of the heads (ASPP, decoder, projection)");
  v.number("train.lr_backbone", t.lr_backbone, 1.2e-5, 0, 10, "learning rate of the backbone");
  v.number("train.weight_decay", t.weight_decay, 0.0, 0, 1, "L2 weight decay");
  v.number("train.momentum", t.momentum, 0.9, 0, 0.9999, "SGD momentum");
  v.number("train.poly_power", t.poly_power, 0.9, 0, 100, "learning rates decay as (1 - step/total)^poly_power");
  v.number("train.ema_max_decay", t.ema_max_decay, 0.99, 0, 1, "teacher EMA decay: min(1 - 1/(k+1), this)");
  v.number("train.seed", t.seed, 0, 0, 1.8e19, "seed of the initial weights, the data order and every random draw");
  v.number("train.eval_every_epochs", t.eval_every_epochs, 1, 1, 1e6, "evaluate and save every N epochs");
  v.choice("train.device", t.device, std::string("auto"),
           {{"auto", "auto"}, {"cpu", "cpu"}, {"cuda", "cuda"}}, "auto: the GPU when one is usable, else the CPU");
  v.number("train.contrast_groups", t.contrast_groups, 1, 1, 4096,
           "the contrastive loss per group of images (the reference: one group per GPU)");
  v.number("train.dist_check_every", t.dist_check_every, 0, 0, 1e9,
           "data-parallel: compare the ranks' parameter hashes every N steps (0: off)");
  v.number("train.threads", t.threads, 0, 0, 1024, "CPU threads (OpenMP, OpenBLAS); 0: all cores or OMP_NUM_THREADS");
  v.flag("train.cudnn_benchmark", t.cudnn_benchmark, false,
         "cuDNN: rank convolution algorithms by timing them (cudnn.benchmark), not by heuristics");
  v.flag("train.cudnn_deterministic", t.cudnn_deterministic, false,
         "cuDNN: only algorithms whose results repeat exactly from run to run");
  v.choice("train.cpu_conv", t.cpu_conv, std::string("onednn"), {{"onednn", "onednn"}, {"im2col", "im2col"}},
           "CPU f32 convolutions: oneDNN's kernels, or im2col + OpenBLAS GEMM (the reference they are tested "
           "against)");
  v.choice("train.precision", t.precision, Precision::tf32,
           {{"tf32", Precision::tf32}, {"fp32", Precision::fp32}, {"bf16", Precision::bf16}},
           "tf32: f32 tensors, GPU convolutions on tensor cores with inputs rounded to 10 mantissa bits; fp32: "
           "f32 throughout; bf16: mixed precision (convolutions in bf16 with f32 accumulation, bf16 activations, "
           "f32 losses, statistics and master weights; core/precision.cpp holds the table), on the CPU too");

  auto& l = c.loss;
  v.number("loss.w_con", l.w_con, 0.1, 0, 1e6, "weight of the contrastive loss L_con");
  v.number("loss.w_cons", l.w_cons, 50.0, 0, 1e6, "weight of the consistency loss L_cons");
  v.number("loss.ramp_cons", l.ramp_cons, 4000, 0, 1e9, "steps of the L_cons ramp-up, from the start of the semi phase");
  v.number("loss.ramp_con", l.ramp_con, 250, 0, 1e9, "steps of the L_con ramp-up, from step 0");
  v.number("loss.tau", l.tau, 0.15, 1e-4, 100, "temperature of the contrastive similarities");
  v.number("loss.tau_b", l.tau_b, 0.1, 1e-4, 100, "base temperature: L_con is scaled by tau / tau_b");
  v.number("loss.samples_per_class", l.samples_per_class, 20, 1, 100000, "anchors per image and class (half hard)");
  v.number("loss.min_pixels", l.min_pixels, 20, 0, 1e9, "a class is sampled in an image when it has more pixels");
  v.flag("loss.skip_class0", l.skip_class0, true, "no anchors of class 0");
  v.flag("loss.contrast", l.contrast, true, "use the contrastive loss at all");
  v.flag("loss.hard_easy", l.hard_easy, true, "half the anchors mispredicted (hard), half right; else uniform");
  v.flag("loss.cross_set", l.cross_set, true, "CutMix across the labeled and the unlabeled set; else within each");
  v.flag("loss.mix_labeled", l.mix_labeled, true,
         "the labeled images are mixed too; false: they go through the student un-mixed");

  auto& r = c.dcrs;
  v.choice("dcrs.mode", r.mode, DcrsMode::per_class,
           {{"dcrs", DcrsMode::per_class}, {"global", DcrsMode::global}, {"off", DcrsMode::off}},
           "per-class dynamic thresholds, one fixed threshold, or every pixel kept");
  v.number("dcrs.s", r.s, 0.8, 0, 1, "each class keeps about this fraction of its pixels");
  v.numbers("dcrs.s_per_class", r.s_per_class, {}, 0, 1, "s per class (one value per class), or empty: s for all");
  v.number("dcrs.init", r.init, 0.9, 0, 1, "thresholds when the semi phase starts");
  v.number("dcrs.momentum", r.momentum, 0.9, 0, 1, "thresholds move as thr = momentum thr + (1 - momentum) cur");
  v.number("dcrs.global_threshold", r.global_threshold, 0.95, 0, 1, "the threshold of dcrs.mode=global");
  v.flag("dcrs.apply_to_contrast", r.apply_to_contrast, true, "the mask also removes unlabeled pixels from L_con");

  auto& o = c.output;
  v.text("output.dir", o.dir, "runs/default", "the run folder");
  v.number("output.vis_images", o.vis_images, 4, 0, 1000, "validation images drawn as predictions at each evaluation");
  v.number("output.log_every", o.log_every, 20, 1, 1e9,
           "a progress line and a metrics.jsonl line every N steps; the host reads the step's values only then");
  v.number("output.save_every_steps", o.save_every_steps, 0, 0, 1e9, "also write latest.safetensors every N steps (0: off)");
  v.number("output.save_every_minutes", o.save_every_minutes, 10.0, 0, 1e6,
           "also write latest.safetensors every N minutes (0: off)");
}

json& slot(json& j, const char* key) {  // "section.key" -> j[section][key]
  const char* dot = std::strchr(key, '.');
  return j[std::string(key, dot)][dot + 1];
}
std::string number_text(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%.10g", x);
  return b;
}
std::string range_text(double lo, double hi) { return "[" + number_text(lo) + ", " + number_text(hi) + "]"; }
template <class E>
std::string names_text(Names<E> names) {
  std::string list;
  size_t i = 0;
  for (const auto& n : names) {
    list += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + std::string(n.first);
    ++i;
  }
  return list;
}

// Each key at its default.
struct SetDefaults {
  template <class T>
  void number(const char*, T& m, std::type_identity_t<T> def, double, double, const char*) { m = def; }
  void flag(const char*, bool& m, bool def, const char*) { m = def; }
  void text(const char*, std::string& m, const char* def, const char*) { m = def; }
  template <class E>
  void choice(const char*, E& m, std::type_identity_t<E> def, Names<std::type_identity_t<E>>, const char*) { m = def; }
  template <class T>
  void numbers(const char*, std::vector<T>& m, std::vector<std::type_identity_t<T>> def, double, double, const char*) {
    m = def;
  }
  void size(const char*, Size2& m, Size2 def, double, double, const char*) { m = def; }
};

// Each key's value into a JSON document.
struct ToJson {
  json out = json::object();
  template <class T>
  void number(const char* k, const T& m, std::type_identity_t<T>, double, double, const char*) { slot(out, k) = m; }
  void flag(const char* k, const bool& m, bool, const char*) { slot(out, k) = m; }
  void text(const char* k, const std::string& m, const char*, const char*) { slot(out, k) = m; }
  template <class E>
  void choice(const char* k, const E& m, std::type_identity_t<E>, Names<std::type_identity_t<E>> names, const char*) {
    for (const auto& n : names)
      if (n.second == m) slot(out, k) = n.first;
  }
  template <class T>
  void numbers(const char* k, const std::vector<T>& m, std::vector<std::type_identity_t<T>>, double, double, const char*) {
    slot(out, k) = m;
  }
  void size(const char* k, const Size2& m, Size2, double, double, const char*) { slot(out, k) = {m.h, m.w}; }
};

// Each key read from a complete document, its type and range checked.
struct FromJson {
  const json& in;
  const json& get(const char* key) const {
    const char* dot = std::strchr(key, '.');
    const std::string section(key, dot);
    C3_CHECK(in.is_object() && in.contains(section) && in[section].is_object() && in[section].contains(dot + 1),
             "config key '", key, "' is missing");
    return in[section][dot + 1];
  }
  template <class T>
  static T checked(const json& v, const std::string& key, double lo, double hi) {
    if constexpr (std::is_integral_v<T>) {
      C3_CHECK(v.is_number_integer(), "config key '", key, "': must be an integer in ", range_text(lo, hi), ", got ",
               v.dump());
    } else {
      C3_CHECK(v.is_number(), "config key '", key, "': must be a number in ", range_text(lo, hi), ", got ", v.dump());
    }
    const double x = v.get<double>();
    C3_CHECK(std::isfinite(x) && x >= lo && x <= hi, "config key '", key, "': must be in ", range_text(lo, hi),
             ", got ", v.dump());
    return v.get<T>();
  }
  template <class T>
  void number(const char* k, T& m, std::type_identity_t<T>, double lo, double hi, const char*) { m = checked<T>(get(k), k, lo, hi); }
  void flag(const char* k, bool& m, bool, const char*) {
    const json& v = get(k);
    C3_CHECK(v.is_boolean(), "config key '", k, "': must be true or false, got ", v.dump());
    m = v;
  }
  void text(const char* k, std::string& m, const char*, const char*) {
    const json& v = get(k);
    C3_CHECK(v.is_string(), "config key '", k, "': must be a string, got ", v.dump());
    m = v;
  }
  template <class E>
  void choice(const char* k, E& m, std::type_identity_t<E>, Names<std::type_identity_t<E>> names, const char*) {
    const json& v = get(k);
    const std::string got = v.is_string() ? v.get<std::string>() : v.dump();
    for (const auto& n : names)
      if (v.is_string() && got == n.first) {
        m = n.second;
        return;
      }
    throw Error(std::string("config key '") + k + "': must be " + names_text(names) + ", got '" + got + "'");
  }
  template <class T>
  void numbers(const char* k, std::vector<T>& m, std::vector<std::type_identity_t<T>>, double lo, double hi, const char*) {
    const json& v = get(k);
    C3_CHECK(v.is_array(), "config key '", k, "': must be a list of numbers in ", range_text(lo, hi), ", got ", v.dump());
    m.clear();
    for (size_t i = 0; i < v.size(); ++i) m.push_back(checked<T>(v[i], k + ("[" + std::to_string(i) + "]"), lo, hi));
  }
  void size(const char* k, Size2& m, Size2, double lo, double hi, const char*) {
    const json& v = get(k);
    C3_CHECK(v.is_array() && v.size() == 2 && v[0].is_number_integer() && v[1].is_number_integer(), "config key '", k,
             "': must be [height, width] with positive integers, got ", v.dump());
    m.h = checked<int>(v[0], k + std::string("[0]"), lo, hi);
    m.w = checked<int>(v[1], k + std::string("[1]"), lo, hi);
  }
};

// `c3semiseg config --list`: each key with its default, allowed values and doc.
struct Lister {
  std::string out, section;
  void line(const char* k, const json& def, const std::string& allowed, const char* doc) {
    const std::string sec(k, std::strchr(k, '.'));
    if (sec != section) out += (section.empty() ? "" : "\n") + sec + "\n";
    section = sec;
    char b[160];
    std::snprintf(b, sizeof b, "  %-26s %-14s %-22s ", k, def.dump().c_str(), allowed.c_str());
    out += b + std::string(doc) + "\n";
  }
  template <class T>
  void number(const char* k, const T&, std::type_identity_t<T> def, double lo, double hi, const char* doc) {
    line(k, def, range_text(lo, hi), doc);
  }
  void flag(const char* k, const bool&, bool def, const char* doc) { line(k, def, "true|false", doc); }
  void text(const char* k, const std::string&, const char* def, const char* doc) { line(k, def, "a string", doc); }
  template <class E>
  void choice(const char* k, const E&, std::type_identity_t<E> def, Names<std::type_identity_t<E>> names, const char* doc) {
    std::string list, name;
    for (const auto& n : names) {
      list += (list.empty() ? "" : "|") + std::string(n.first);
      if (n.second == def) name = n.first;
    }
    line(k, name, list, doc);
  }
  template <class T>
  void numbers(const char* k, const std::vector<T>&, std::vector<std::type_identity_t<T>> def, double lo, double hi, const char* doc) {
    line(k, def, "list in " + range_text(lo, hi), doc);
  }
  void size(const char* k, const Size2&, Size2 def, double lo, double hi, const char* doc) {
    line(k, json{def.h, def.w}, "[h, w] in " + range_text(lo, hi), doc);
  }
};

void derive(Config& c) {  // settings that follow from others
  c.model.align_corners = c.model.head == nn::HeadKind::deeplab_v2;
}
}  // namespace

Config::Config() {
  SetDefaults v;
  config_keys(*this, v);
  derive(*this);
}

json config_json(const Config& c) {
  ToJson v;
  config_keys(c, v);
  return v.out;
}

json default_config() { return config_json(Config{}); }

Device device_for(const TrainConfig& t) {
  if (t.device == "cpu") return Device::cpu;
  if (t.device == "cuda") {
    C3_CHECK(cuda_available(), "train.device is cuda, but no GPU is usable (or the build has CUDA=0); "
             "--set train.device=auto runs on the CPU then");
    return Device::cuda;
  }
  return cuda_available() ? Device::cuda : Device::cpu;
}

void apply_numerics(const TrainConfig& t) {
  const bool tf32 = t.precision != Precision::fp32;  // bf16: f32 matmuls of the losses may use TF32
  set_allow_tf32(tf32);
  set_conv_allow_tf32(tf32);
  set_conv_benchmark(t.cudnn_benchmark);
  set_conv_deterministic(t.cudnn_deterministic);
  set_cpu_conv_onednn(t.cpu_conv == "onednn");
}

std::string config_list() {
  const Config c;
  Lister v;
  config_keys(c, v);
  return v.out;
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
  Config c;
  FromJson v{j};
  config_keys(c, v);
  derive(c);
  // The rules between keys, and the numbers whose allowed values are not a range.
  auto bad = [](const std::string& key, const std::string& why) { return Error("config key '" + key + "': " + why); };
  const int depth = c.model.backbone.depth, stride = c.model.backbone.output_stride;
  if (depth != 18 && depth != 34 && depth != 50 && depth != 101 && depth != 152)
    throw bad("model.depth", "must be 18, 34, 50, 101 or 152, got " + std::to_string(depth));
  if (stride != 8 && stride != 16 && stride != 32)
    throw bad("model.output_stride", "must be 8, 16 or 32, got " + std::to_string(stride));
  if (c.model.aspp_two_branches && c.model.aspp_dilations.size() == 1)
    throw bad("model.aspp_dilations", "model.aspp_two_branches needs at least two dilations");
  if (c.data.scales.empty()) throw bad("data.scales", "must list at least one scale factor");
  if (c.train.mode == TrainMode::c3 && c.train.batch_unlabeled < 1)
    throw bad("train.batch_unlabeled", "must be at least 1 when train.mode is c3");
  if (!c.dcrs.s_per_class.empty() && int64_t(c.dcrs.s_per_class.size()) != c.model.num_classes)
    throw bad("dcrs.s_per_class", "must be empty or list one value per class");
  if (c.output.dir.find_first_not_of('/') == std::string::npos)
    throw bad("output.dir", "must name a folder for the run, not '" + c.output.dir + "'");
  return c;
}

Config default_run_config(const std::string& mode, const std::vector<std::string>& sets) {
  std::vector<std::string> all = {"train.mode=" + mode, "output.dir=runs/synthetic_" + mode};
  all.insert(all.end(), sets.begin(), sets.end());
  return load_config("configs/synthetic.json", all);
}

std::pair<Config, Config> compare_run_configs(const std::vector<std::string>& sets) {
  Config sup = default_run_config("supervised", sets), c3 = default_run_config("c3", sets);
  C3_CHECK(sup.train.mode == TrainMode::supervised && c3.train.mode == TrainMode::c3,
           "compare: train.mode is chosen by compare (one run of each); remove --set train.mode");
  if (sup.output.dir == c3.output.dir) {  // --set output.dir=D: one folder per run beside each other
    sup.output.dir += "_supervised";
    c3.output.dir += "_c3";
  }
  return {std::move(sup), std::move(c3)};
}

}  // namespace c3::semiseg
