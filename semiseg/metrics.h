// Segmentation metrics: a confusion matrix accumulated on the device, per-class IoU, mIoU,
// pixel accuracy, and the tables (terminal, Markdown, CSV) in the layout of the paper's
// per-class table (classes as columns, one row per model).
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"

namespace c3::semiseg {

const std::vector<std::string>& cityscapes_class_names();  // 19, by trainId

class ConfusionMatrix {
 public:
  ConfusionMatrix(int classes, Device device);
  // pred: i32 class map [N,H,W]; label: u8 [N,H,W] (255 ignored); mask: optional u8 [N,H,W]
  // (pixels with 0 are skipped: the DCRS "*" evaluation). A label value that is neither a
  // class nor 255 is an error.
  void add(const Tensor& pred, const Tensor& label, const Tensor& mask = Tensor());
  void reset();
  std::vector<uint64_t> counts() const;  // [label][pred], copied to the host
  void merge(const std::vector<uint64_t>& other);  // adds counts computed elsewhere (other ranks)
  int classes() const { return classes_; }

 private:
  int classes_;
  Device device_;
  Tensor counts_;  // u64 stored as two i32 words per entry on the device; host vector on the CPU
  std::vector<uint64_t> host_;
  Tensor bad_;
};

struct IoUResult {
  std::vector<double> iou;  // per class; NaN where the class is absent from labels and predictions
  double miou = 0;          // mean over classes that are not NaN
  double pixel_acc = 0;
  uint64_t pixels = 0;
};
IoUResult compute_iou(const std::vector<uint64_t>& counts, int classes);

// One row per (name, result); numbers in percent with one decimal, as in the paper.
std::string iou_table_markdown(const std::vector<std::string>& class_names,
                               const std::vector<std::pair<std::string, IoUResult>>& rows);
std::string iou_table_csv(const std::vector<std::string>& class_names,
                          const std::vector<std::pair<std::string, IoUResult>>& rows);
// Transposed for a terminal (one class per line, one column per model).
std::string iou_table_terminal(const std::vector<std::string>& class_names,
                               const std::vector<std::pair<std::string, IoUResult>>& rows);

}  // namespace c3::semiseg
