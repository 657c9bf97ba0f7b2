#include "semiseg/eval.h"

#include <algorithm>

#include "core/dist.h"
#include "core/ops.h"
#include "core/ops_loss.h"
#include "data/image_io.h"
#include "nn/safetensors.h"
#include "semiseg/run_data.h"

namespace c3::semiseg {

std::unique_ptr<nn::DeepLab> model_from_checkpoint(const std::string& path, const std::vector<std::string>& sets,
                                                   Config& cfg, Tensor* thresholds, bool teacher) {
  nn::SafetensorsFile f = nn::load_safetensors(path);
  auto it = f.metadata.find("config");
  C3_CHECK(it != f.metadata.end(), path, ": not a c3semiseg checkpoint (no config in its metadata)");
  nlohmann::json j = default_config();
  nlohmann::json saved;
  try {
    saved = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": the config in its metadata is not valid JSON: " + e.what());
  }
  check_depth(saved, path + ": the config in its metadata");
  merge_checked(j, saved, path);
  for (const auto& s : sets) apply_override(j, s);
  cfg = parse_config(j);
  auto model = std::make_unique<nn::DeepLab>(cfg.model, cfg.train.seed);
  const std::vector<std::pair<std::string, Tensor>> weights = f.with_prefix(teacher ? "teacher." : "student.");
  C3_CHECK(!weights.empty(), path, ": holds no ", teacher ? "teacher (saved before the semi-supervised phase?)" : "student");
  model->load_state_dict(weights);
  if (thresholds)
    if (const Tensor* t = f.find("dcrs.thresholds")) *thresholds = *t;
  return model;
}

const std::vector<std::string>& class_names(int classes) {
  if (classes == 19) return cityscapes_class_names();
  static std::vector<std::string> generic;
  generic.clear();
  for (int c = 0; c < classes; ++c) generic.push_back("class_" + std::to_string(c));
  return generic;
}

data::Image label_image(const std::vector<int32_t>& label, int h, int w) {
  data::Image l(h, w, 1);
  for (size_t i = 0; i < label.size(); ++i) l.px[i] = uint8_t(label[i] < 0 || label[i] > 255 ? 255 : label[i]);
  return data::colorize(l);
}

data::Image tile_grid(const std::vector<std::vector<data::Image>>& rows, int gap) {
  int H = gap, W = 0;
  for (const auto& r : rows) {
    int rh = 0, rw = gap;
    for (const auto& t : r) rh = std::max(rh, t.h), rw += t.w + gap;
    H += rh + gap;
    W = std::max(W, rw);
  }
  data::Image out(H, std::max(W, 1), 3, 255);
  int y = gap;
  for (const auto& r : rows) {
    int x = gap, rh = 0;
    for (const auto& t : r) {
      for (int yy = 0; yy < t.h; ++yy)
        for (int xx = 0; xx < t.w; ++xx)
          for (int c = 0; c < 3; ++c) out.at(y + yy, x + xx)[c] = t.at(yy, xx)[t.c == 3 ? c : 0];
      x += t.w + gap;
      rh = std::max(rh, t.h);
    }
    y += rh + gap;
  }
  return out;
}

namespace {
Tensor model_probs(nn::DeepLab& model, const Tensor& x, const InferOptions& infer) {
  AutocastScope autocast(infer.precision);
  return infer_probs([&](const Tensor& t) { return model.forward(t); }, x, infer, model.config().align_corners);
}
}  // namespace

Prediction predict_image(nn::DeepLab& model, const data::Image& img, Device device, const InferOptions& infer) {
  NoGradGuard ng;
  model.eval();
  Tensor x = to_input(img.px, 1, img.h, img.w, device);
  Tensor probs = model_probs(model, x, infer);
  Prediction p;
  p.h = img.h;
  p.w = img.w;
  p.label = argmax_channels(probs).to_vector<int32_t>();
  p.confidence = max_channels(probs).to_vector<float>();
  return p;
}

EvalResult evaluate_model(nn::DeepLab& model, data::Loader& val, const EvalOptions& opt) {
  NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  ConfusionMatrix plain(opt.classes, opt.device), star(opt.classes, opt.device);
  // "*": pixels below their class's DCRS threshold count as ignore (dcrs.mode=off: no "*").
  const int64_t n_thr = opt.thresholds.defined() ? opt.thresholds.numel() : 0;
  const bool starred = n_thr == 1 || n_thr == opt.classes;
  DcrsState dcrs;
  dcrs.mode = n_thr == 1 ? DcrsMode::global : DcrsMode::per_class;
  if (starred) dcrs.thresholds = opt.thresholds.to(opt.device);
  std::vector<std::vector<data::Image>> rows;
  data::Batch b;
  while (val.next(b)) {
    Tensor x = to_input(b.images, b.size(), b.h, b.w, opt.device);
    Tensor y = to_labels(b.labels, b.size(), b.h, b.w, opt.device);
    Tensor probs = model_probs(model, x, opt.infer);
    Tensor pred = argmax_channels(probs);
    plain.add(pred, y);
    if (starred) star.add(pred, y, dcrs_update(probs, dcrs, {0.8}, 0.9, /*update=*/false).mask);
    std::vector<int32_t> pv;
    if (int(rows.size()) < opt.vis_images && !opt.vis_path.empty() && opt.comm.is_main()) {
      if (pv.empty()) pv = pred.to_vector<int32_t>();
      const int64_t hw = int64_t(b.h) * b.w;
      for (int64_t k = 0; k < b.size() && int(rows.size()) < opt.vis_images; ++k) {
        data::Image img(b.h, b.w, 3), gt(b.h, b.w, 1);
        std::copy_n(b.images.begin() + k * hw * 3, hw * 3, img.px.begin());
        std::copy_n(b.labels.begin() + k * hw, hw, gt.px.begin());
        std::vector<int32_t> pk(pv.begin() + k * hw, pv.begin() + (k + 1) * hw);
        rows.push_back({img, data::colorize(gt), label_image(pk, b.h, b.w)});
      }
    }
  }
  if (!rows.empty()) data::write_png(opt.vis_path, tile_grid(rows));
  model.train(was_training);
  EvalResult r;
  // Data-parallel: each rank saw its part of the val set; the sums of the confusion matrices
  // are the matrices of the whole set (every rank gets them).
  std::vector<uint64_t> counts = plain.counts();
  opt.comm.all_reduce_sum(counts);
  r.plain = compute_iou(counts, opt.classes);
  if (starred) {
    counts = star.counts();
    opt.comm.all_reduce_sum(counts);
    r.star = compute_iou(counts, opt.classes);
  }
  return r;
}

EvalResult evaluate_checkpoint(const std::string& path, const std::vector<std::string>& sets, bool teacher,
                               Config& cfg, const InferOptions& infer) {
  Tensor thr;
  auto model = model_from_checkpoint(path, sets, cfg, &thr, teacher);
  const Device dev = device_for(cfg.train);
  apply_numerics(cfg.train);
  model->to(dev);
  RunData d;
  d.val = load_val_samples(cfg);
  const dist::Comm comm = dist::Comm::world();  // under mpirun each rank evaluates its part
  auto loader = make_val_loader(cfg, d, comm);
  EvalOptions o;
  o.comm = comm;
  o.classes = int(cfg.model.num_classes);
  o.device = dev;
  o.infer = infer;
  o.infer.precision = cfg.train.precision;
  if (thr.defined() && cfg.train.mode == TrainMode::c3) o.thresholds = thr.to(dev);
  return evaluate_model(*model, *loader, o);  // under mpirun: every rank's part, summed
}

}  // namespace c3::semiseg
