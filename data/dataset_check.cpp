// check_dataset: reads every file of a dataset once and reports what is wrong with it.
#include <filesystem>
#include <ostream>
#include <set>

#include "core/error.h"
#include "data/dataset.h"
#include "data/image_io.h"

namespace c3::data {
namespace {

enum Kind { kMissing, kUnreadable, kSizeMismatch, kBadLabel, kKinds };

struct Finding {
  Kind kind;
  std::string what;
};

bool exists(const std::string& p) {
  std::error_code ec;
  return std::filesystem::exists(p, ec);
}

// The problems of one sample, in a fixed order (image, label, then the pair).
std::vector<Finding> check_sample(const Sample& s, int num_classes) {
  std::vector<Finding> f;
  Image img, label;
  if (!exists(s.image)) {
    f.push_back({kMissing, s.image + ": image file not found"});
  } else {
    try {
      img = read_image(s.image);
    } catch (const std::exception& e) {
      f.push_back({kUnreadable, e.what()});
    }
  }
  if (s.label.empty()) return f;
  if (!exists(s.label)) {
    f.push_back({kMissing, s.label + ": label file not found (image " + s.image + ")"});
    return f;
  }
  try {
    label = load_label_train_ids(s);
  } catch (const std::exception& e) {
    f.push_back({kUnreadable, e.what()});
    return f;
  }
  if (!img.empty() && (img.h != label.h || img.w != label.w))
    f.push_back({kSizeMismatch, s.label + ": label " + std::to_string(label.h) + "x" + std::to_string(label.w) +
                                    ", image " + std::to_string(img.h) + "x" + std::to_string(img.w) + " (" +
                                    s.image + ")"});
  const std::string bad = bad_label_values(label, num_classes);
  if (!bad.empty())
    f.push_back({kBadLabel, s.label + ": values that are neither a class (0.." + std::to_string(num_classes - 1) +
                                ") nor 255" + (s.mapping == LabelMapping::label_ids ? " after mapping" : "") +
                                ": " + bad});
  return f;
}

void print_list(std::ostream& os, const char* name, const ProblemList& p) {
  if (!p.count) return;
  os << "  " << name << ": " << p.count << "\n";
  for (const auto& e : p.examples) os << "    " << e << "\n";
  if (p.count > int64_t(p.examples.size())) os << "    ... and " << p.count - int64_t(p.examples.size()) << " more\n";
}

}  // namespace

CheckReport check_dataset(const std::vector<Sample>& samples, int num_classes, const LoadStats* listing) {
  C3_CHECK(num_classes >= 1 && num_classes <= 255, "check_dataset: num_classes must be 1..255, got ", num_classes);
  const int64_t n = int64_t(samples.size());
  std::vector<std::vector<Finding>> found(samples.size());
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < n; ++i) found[size_t(i)] = check_sample(samples[size_t(i)], num_classes);

  // Merged in sample order, so the examples do not depend on thread timing.
  CheckReport r;
  r.samples = n;
  ProblemList* lists[kKinds] = {&r.missing, &r.unreadable, &r.size_mismatch, &r.bad_label};
  auto add = [](ProblemList& p, const std::string& what) {
    if (p.examples.size() < size_t(CheckReport::kMaxExamples)) p.examples.push_back(what);
    ++p.count;
  };
  if (listing) {
    r.missing.count += listing->skipped - int64_t(listing->examples.size());
    for (const std::string& e : listing->examples) add(r.missing, e);
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < samples.size(); ++i) {
    r.labeled += samples[i].label.empty() ? 0 : 1;
    const std::string key = std::filesystem::absolute(samples[i].image).lexically_normal().string();
    if (!seen.insert(key).second) add(r.duplicate, samples[i].image + ": listed more than once");
    for (const Finding& f : found[i]) add(*lists[f.kind], f.what);
  }
  return r;
}

void print_report(std::ostream& os, const CheckReport& r) {
  os << "checked " << r.samples << " samples (" << r.labeled << " labeled): ";
  if (r.ok()) {
    os << "OK\n";
    return;
  }
  if (r.samples == 0 && r.problems() == 0) {
    os << "no samples (an empty list or split)\n";
    return;
  }
  os << r.problems() << " problems\n";
  print_list(os, "missing files (or not regular files)", r.missing);
  print_list(os, "unreadable files", r.unreadable);
  print_list(os, "image/label size mismatches", r.size_mismatch);
  print_list(os, "labels with values outside the classes", r.bad_label);
  print_list(os, "images listed more than once", r.duplicate);
}

}  // namespace c3::data
