#include "semiseg/metrics.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "core/dispatch.h"
#include "kernels/cpu/metrics.h"
#include "kernels/cuda/metrics.h"

namespace c3::semiseg {

const std::vector<std::string>& cityscapes_class_names() {
  static const std::vector<std::string> names = {
      "road", "sidewalk", "building", "wall", "fence", "pole", "traffic_light", "traffic_sign", "vegetation", "terrain",
      "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"};
  return names;
}

ConfusionMatrix::ConfusionMatrix(int classes, Device device) : classes_(classes), device_(device) {
  C3_CHECK(classes >= 1 && classes <= 254, "ConfusionMatrix: classes must be in 1..254, got ", classes);
  reset();
}

void ConfusionMatrix::reset() {
  host_.assign(size_t(classes_) * classes_, 0);
  if (device_ == Device::cuda) {
    counts_ = Tensor::zeros({int64_t(classes_) * classes_ * 2}, DType::i32, Device::cuda);
    bad_ = Tensor::zeros({2}, DType::i32, Device::cuda);
  }
}

void ConfusionMatrix::add(const Tensor& pred, const Tensor& label, const Tensor& mask) {
  check_dtype("confusion matrix (prediction)", pred, DType::i32);
  check_dtype("confusion matrix (label)", label, DType::u8);
  C3_CHECK(pred.numel() == label.numel(), "confusion matrix: prediction ", pred.desc(), " vs label ", label.desc());
  C3_CHECK(!mask.defined() || (mask.numel() == label.numel() && mask.dtype() == DType::u8),
           "confusion matrix: mask ", mask.desc(), " vs label ", label.desc());
  Tensor p = pred.to(device_), l = label.to(device_), m = mask.defined() ? mask.to(device_) : Tensor();
  const uint8_t* mp = m.defined() ? m.data<uint8_t>() : nullptr;
  if (device_ == Device::cpu) {
    const int64_t bad = kernels::cpu::confusion_add(p.data<int32_t>(), l.data<uint8_t>(), mp, p.numel(), classes_,
                                                    255, host_.data());
    C3_CHECK(bad == 0, "confusion matrix: ", bad, " pixels have a label that is neither a class (0..", classes_ - 1,
             ") nor 255");
    return;
  }
  C3_CUDA("confusion matrix", {
    kernels::cuda::confusion_add(p.data<int32_t>(), l.data<uint8_t>(), mp, p.numel(), classes_, 255,
                                 reinterpret_cast<unsigned long long*>(counts_.raw()),
                                 reinterpret_cast<unsigned long long*>(bad_.raw()));
  });
}

std::vector<uint64_t> ConfusionMatrix::counts() const {
  if (device_ == Device::cpu) return host_;
  auto words = counts_.to_vector<int32_t>();
  auto bad = bad_.to_vector<int32_t>();
  uint64_t nbad;
  std::memcpy(&nbad, bad.data(), 8);
  C3_CHECK(nbad == 0, "confusion matrix: ", nbad, " pixels have a label that is neither a class (0..", classes_ - 1,
           ") nor 255");
  std::vector<uint64_t> out(host_);
  for (size_t k = 0; k < out.size(); ++k) {
    uint64_t v;
    std::memcpy(&v, &words[2 * k], 8);
    out[k] += v;
  }
  return out;
}

void ConfusionMatrix::merge(const std::vector<uint64_t>& other) {
  C3_CHECK(other.size() == host_.size(), "confusion matrix merge: size mismatch");
  for (size_t k = 0; k < host_.size(); ++k) host_[k] += other[k];
}

IoUResult compute_iou(const std::vector<uint64_t>& counts, int C) {
  IoUResult r;
  r.iou.assign(size_t(C), std::nan(""));
  uint64_t correct = 0;
  double sum = 0;
  int present = 0;
  for (int c = 0; c < C; ++c) {
    uint64_t tp = counts[size_t(c) * C + c], row = 0, col = 0;
    for (int k = 0; k < C; ++k) {
      row += counts[size_t(c) * C + k];
      col += counts[size_t(k) * C + c];
    }
    r.pixels += row;
    correct += tp;
    const uint64_t uni = row + col - tp;
    if (uni == 0) continue;
    r.iou[size_t(c)] = double(tp) / double(uni);
    sum += r.iou[size_t(c)];
    ++present;
  }
  r.miou = present ? sum / present : std::nan("");
  r.pixel_acc = r.pixels ? double(correct) / double(r.pixels) : std::nan("");
  return r;
}

namespace {
std::string pct(double v) {
  if (std::isnan(v)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", 100 * v);
  return b;
}
}  // namespace

std::string iou_table_markdown(const std::vector<std::string>& names,
                               const std::vector<std::pair<std::string, IoUResult>>& rows) {
  std::ostringstream s;
  s << "| model |";
  for (const auto& n : names) s << " " << n << " |";
  s << " mIoU |\n|---|";
  for (size_t i = 0; i < names.size(); ++i) s << "---|";
  s << "---|\n";
  for (const auto& [name, r] : rows) {
    s << "| " << name << " |";
    for (size_t c = 0; c < names.size(); ++c) s << " " << pct(r.iou[c]) << " |";
    s << " " << pct(r.miou) << " |\n";
  }
  return s.str();
}

std::string iou_table_csv(const std::vector<std::string>& names, const std::vector<std::pair<std::string, IoUResult>>& rows) {
  std::ostringstream s;
  s << "model";
  for (const auto& n : names) s << "," << n;
  s << ",mIoU,pixel_acc\n";
  for (const auto& [name, r] : rows) {
    s << name;
    for (size_t c = 0; c < names.size(); ++c) s << "," << (std::isnan(r.iou[c]) ? "" : pct(r.iou[c]));
    s << "," << pct(r.miou) << "," << pct(r.pixel_acc) << "\n";
  }
  return s.str();
}

std::string iou_table_terminal(const std::vector<std::string>& names,
                               const std::vector<std::pair<std::string, IoUResult>>& rows) {
  std::ostringstream s;
  char b[64];
  std::snprintf(b, sizeof b, "%-16s", "class");
  s << b;
  for (const auto& [name, r] : rows) {
    std::snprintf(b, sizeof b, " %12s", name.substr(0, 12).c_str());
    s << b;
  }
  s << "\n";
  auto line = [&](const std::string& label, auto get) {
    std::snprintf(b, sizeof b, "%-16s", label.c_str());
    s << b;
    for (const auto& [name, r] : rows) {
      std::snprintf(b, sizeof b, " %12s", pct(get(r)).c_str());
      s << b;
    }
    s << "\n";
  };
  for (size_t c = 0; c < names.size(); ++c) line(names[c], [c](const IoUResult& r) { return r.iou[c]; });
  line("mIoU", [](const IoUResult& r) { return r.miou; });
  line("pixel acc", [](const IoUResult& r) { return r.pixel_acc; });
  return s.str();
}

}  // namespace c3::semiseg
