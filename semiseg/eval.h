// Evaluation on the validation set, and the pictures of predictions.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/loader.h"
#include "nn/deeplab.h"
#include "semiseg/config.h"
#include "semiseg/infer.h"
#include "semiseg/metrics.h"

namespace c3::semiseg {

// The student (or the EMA teacher) of a c3semiseg checkpoint, built from the config in its
// metadata with `sets` ("section.key=value") applied; that config goes to `cfg`, and the DCRS
// thresholds to `thresholds` when the checkpoint has them and it is not null.
std::unique_ptr<nn::DeepLab> model_from_checkpoint(const std::string& path, const std::vector<std::string>& sets,
                                                   Config& cfg, Tensor* thresholds = nullptr, bool teacher = false);

// Cityscapes names for 19 classes, "class_k" otherwise.
const std::vector<std::string>& class_names(int classes);

struct EvalOptions {
  int classes = 19;
  Device device = Device::cpu;
  Tensor thresholds;       // DCRS thresholds [C]: also compute the "*" evaluation
  int vis_images = 0;      // rows in the picture (image | ground truth | prediction)
  std::string vis_path;    // where to write it (PNG); empty = none
  InferOptions infer;      // whole image by default; sliding window, scales, flip
  // Data-parallel: the loader holds this rank's part of the val set; the confusion matrices
  // are summed over `comm` and only its rank 0 draws the picture.
  dist::Comm comm;
};

struct EvalResult {
  IoUResult plain, star;  // star is empty without thresholds
};

// The model in eval mode, no gradient, at the loader's size, inferred as opt.infer says.
EvalResult evaluate_model(nn::DeepLab& model, data::Loader& val, const EvalOptions& opt);

// `c3semiseg eval`: the student (or teacher) of a checkpoint on the val images its config
// trained against (data.val_list or split "val", the first data.val_limit), plain and, for a
// C3 checkpoint with DCRS thresholds, "*". `cfg` receives the checkpoint's config with `sets`.
EvalResult evaluate_checkpoint(const std::string& path, const std::vector<std::string>& sets, bool teacher,
                               Config& cfg, const InferOptions& infer = {});

// Predicted class map [H,W] (i32 on the host) and per-pixel confidence for one image.
struct Prediction {
  std::vector<int32_t> label;
  std::vector<float> confidence;
  int h = 0, w = 0;
};
Prediction predict_image(nn::DeepLab& model, const data::Image& img, Device device, const InferOptions& infer = {});

// A picture: rows of tiles, each tile h x w RGB; rows may differ in tile count.
data::Image tile_grid(const std::vector<std::vector<data::Image>>& rows, int gap = 4);
data::Image label_image(const std::vector<int32_t>& label, int h, int w);  // colourised

}  // namespace c3::semiseg
