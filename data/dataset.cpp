// Datasets as lists of file paths: Cityscapes layout, split lists, labeled subsets, checks.
#include "data/dataset.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <ostream>
#include <random>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/file.h"
#include "data/image_io.h"

namespace c3::data {
namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool file_exists(const std::string& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// A list entry relative to root; absolute entries stay as they are.
std::string resolve(const std::string& root, const std::string& p) {
  if (fs::path(p).is_absolute() || root.empty()) return fs::path(p).lexically_normal().string();
  return (fs::path(root) / p).lexically_normal().string();
}

// The key under which two spellings of one path compare equal (no file system access).
std::string path_key(const std::string& p) { return fs::absolute(p).lexically_normal().string(); }

// Applies OnMissing to a missing file: throws, or counts the sample as skipped.
void on_missing(const LoadOptions& opt, LoadStats* stats, const std::string& what) {
  C3_CHECK(opt.on_missing == OnMissing::skip, what);
  if (!stats) return;
  if (stats->examples.size() < size_t(CheckReport::kMaxExamples)) stats->examples.push_back(what);
  ++stats->skipped;
}

LabelMapping mapping_from_name(const std::string& label) {
  const std::string name = fs::path(label).filename().string();
  return ends_with(name, "labelIds.png") && !ends_with(name, "TrainIds.png") ? LabelMapping::label_ids
                                                                                : LabelMapping::train_ids;
}

// Why `p` is not a readable file: "" when it is one.
std::string not_a_file(const std::string& p) {
  std::error_code ec;
  const auto st = fs::status(p, ec);
  if (fs::is_regular_file(st)) return "";
  if (!fs::exists(st)) return fs::is_symlink(fs::symlink_status(p, ec)) ? "a symbolic link to nothing" : "not found";
  return fs::is_directory(st) ? "a directory, not a file" : "not a regular file (a FIFO, socket or device)";
}

// Fills in the label of an image that exists; false when the sample is to be skipped.
bool attach_label(Sample& s, const LoadOptions& opt, LoadStats* stats, const std::string& where) {
  if (const std::string why = s.label.empty() ? "" : not_a_file(s.label); !why.empty()) {
    if (!opt.require_labels && why == "not found") {
      s.label.clear();
      return true;
    }
    // A Cityscapes label path is the labelIds fallback when the labelTrainIds file is missing
    // too: name both.
    std::string also;
    if (const size_t at = s.label.rfind("_gtFine_labelIds.png"); at != std::string::npos && why == "not found")
      also = ", nor " + fs::path(s.label.substr(0, at) + "_gtFine_labelTrainIds.png").filename().string();
    on_missing(opt, stats, where + s.label + ": label file " + why + also + " (image " + s.image + ")");
    return false;
  }
  if (opt.force_mapping) s.mapping = *opt.force_mapping;
  return true;
}

struct ListLine {
  int number = 0;
  std::vector<std::string> fields;
};

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n\v\f"), e = s.find_last_not_of(" \t\r\n\v\f");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// The non-blank, non-comment lines of a list file. A line is "image", "image label", or with
// paths that hold spaces "image<TAB>label" (or an image alone that exists as written); a
// UTF-8 byte order mark at the start (as some editors write) is skipped.
std::vector<ListLine> read_list_lines(const std::string& list_file, const std::string& root) {
  const std::vector<uint8_t> bytes = read_file_bytes(list_file);
  std::string text(bytes.begin(), bytes.end());
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);
  std::istringstream in(text);
  std::vector<ListLine> lines;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    ListLine l{number, {}};
    if (line.find('\t') != std::string::npos) {
      std::istringstream cols(line);
      for (std::string c; std::getline(cols, c, '\t');)
        if (!trim(c).empty()) l.fields.push_back(trim(c));
    } else if (line.find(' ') != std::string::npos && file_exists(resolve(root, line))) {
      l.fields.push_back(line);  // one path with spaces
    } else {
      std::istringstream words(line);
      for (std::string w; words >> w;) l.fields.push_back(w);
    }
    if (l.fields.empty()) continue;  // only separators
    C3_CHECK(l.fields.size() <= 2, list_file, ":", number, ": expected \"image\" or \"image label\", got ",
             l.fields.size(), " fields (separate paths that hold spaces with a tab)");
    lines.push_back(std::move(l));
  }
  return lines;
}

}  // namespace

const std::array<uint8_t, 256>& label_id_to_train_id() {
  static const std::array<uint8_t, 256> table = [] {
    std::array<uint8_t, 256> t;
    t.fill(kIgnoreLabel);
    const int ids[kCityscapesClasses] = {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33};
    for (int i = 0; i < kCityscapesClasses; ++i) t[size_t(ids[i])] = uint8_t(i);
    return t;
  }();
  return table;
}

Image map_label_ids(const Image& label_ids) {
  C3_CHECK(label_ids.c == 1, "map_label_ids: expected a label map with 1 channel, got ", label_ids.c);
  const auto& t = label_id_to_train_id();
  Image out = label_ids;
  for (auto& v : out.px) v = t[v];
  return out;
}

Image load_label_train_ids(const Sample& s) {
  C3_CHECK(!s.label.empty(), s.image, ": sample has no label");
  Image l = read_label(s.label);
  return s.mapping == LabelMapping::label_ids ? map_label_ids(l) : l;
}

std::string bad_label_values(const Image& label, int num_classes) {
  int64_t hist[256] = {};
  for (uint8_t v : label.px) ++hist[v];
  std::string out;
  int listed = 0;
  for (int v = num_classes; v < 255; ++v) {
    if (!hist[v]) continue;
    if (listed++ < 8) out += (out.empty() ? "" : ", ") + std::to_string(v) + " (" + std::to_string(hist[v]) + " px)";
  }
  if (listed > 8) out += ", ... (" + std::to_string(listed) + " distinct values)";
  return out;
}

std::pair<Image, Image> load_sample(const Sample& s, int num_classes) {
  std::pair<Image, Image> out{read_image(s.image), Image()};
  if (s.label.empty()) return out;
  out.second = load_label_train_ids(s);
  C3_CHECK(out.first.h == out.second.h && out.first.w == out.second.w, s.label, ": label ", out.second.h, "x",
           out.second.w, ", image ", out.first.h, "x", out.first.w, " (", s.image, ")");
  const std::string bad = bad_label_values(out.second, num_classes);
  C3_CHECK(bad.empty(), s.label, ": values that are neither a class (0..", num_classes - 1, ") nor 255",
           s.mapping == LabelMapping::label_ids ? " after mapping" : "", ": ", bad,
           " (c3semiseg check-data lists every such file)");
  return out;
}

Sample cityscapes_sample_for(const std::string& image_path) {
  const fs::path p(image_path);
  const std::string name = p.filename().string();
  const size_t at = name.rfind("_leftImg8bit.");
  C3_CHECK(at != std::string::npos, image_path,
           ": cannot derive the label path: the name does not end with _leftImg8bit.<ext>");
  const fs::path parent = p.parent_path();
  std::vector<fs::path> parts(parent.begin(), parent.end());
  auto it = std::find(parts.rbegin(), parts.rend(), fs::path("leftImg8bit"));
  C3_CHECK(it != parts.rend(), image_path, ": cannot derive the label path: no leftImg8bit folder in it");
  *it = "gtFine";
  fs::path dir;
  for (const auto& part : parts) dir /= part;
  const std::string stem = name.substr(0, at);
  Sample s{image_path, (dir / (stem + "_gtFine_labelTrainIds.png")).string(), LabelMapping::train_ids};
  std::error_code ec;  // any entry by that name (a broken link, a folder) is the label, reported as such
  if (!fs::exists(fs::symlink_status(s.label, ec))) s = {image_path, (dir / (stem + "_gtFine_labelIds.png")).string(), LabelMapping::label_ids};
  return s;
}

std::vector<Sample> load_cityscapes(const std::string& root, const std::string& split, const LoadOptions& opt,
                                    LoadStats* stats) {
  const fs::path dir = fs::path(root) / "leftImg8bit" / split;
  std::error_code ec;
  C3_CHECK(fs::is_directory(dir, ec), dir.string(), ": not a folder (expected the Cityscapes layout ",
           "<root>/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png)");
  std::vector<std::string> images;
  for (const auto& e : fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink))
    if (e.is_regular_file() && ends_with(e.path().filename().string(), "_leftImg8bit.png"))
      images.push_back(e.path().lexically_normal().string());
  C3_CHECK(!images.empty(), dir.string(), ": no *_leftImg8bit.png images in it");
  std::sort(images.begin(), images.end());
  std::vector<Sample> out;
  for (const auto& img : images) {
    Sample s = cityscapes_sample_for(img);
    if (attach_label(s, opt, stats, "")) out.push_back(std::move(s));
  }
  return out;
}

std::vector<Sample> load_split_list(const std::string& list_file, const std::string& root, const LoadOptions& opt,
                                    LoadStats* stats) {
  std::vector<Sample> out;
  for (const ListLine& l : read_list_lines(list_file, root)) {
    const std::string where = list_file + ":" + std::to_string(l.number) + ": ";
    Sample s;
    s.image = resolve(root, l.fields[0]);
    if (const std::string why = not_a_file(s.image); !why.empty()) {
      on_missing(opt, stats, where + s.image + ": image file " + why);
      continue;
    }
    if (l.fields.size() == 2) {
      s.label = resolve(root, l.fields[1]);
      s.mapping = mapping_from_name(s.label);
    } else {
      try {
        s = cityscapes_sample_for(s.image);
      } catch (const Error& e) {
        throw Error(where + e.what());
      }
    }
    if (attach_label(s, opt, stats, where)) out.push_back(std::move(s));
  }
  return out;
}

void write_split_list(const std::string& list_file, const std::string& root, const std::vector<Sample>& samples) {
  std::string text;
  auto rel = [&](const std::string& p) {
    const std::string r = root.empty() ? p : fs::path(path_key(p)).lexically_relative(path_key(root)).string();
    C3_CHECK(r.find_first_of("\t\n\r") == std::string::npos && trim(r) == r, list_file, ": cannot write ", p,
             ": split lists do not support tabs, line breaks or leading and trailing spaces in paths");
    return r;
  };
  for (const Sample& s : samples) {
    const std::string image = rel(s.image), label = s.label.empty() ? "" : rel(s.label);
    const char* sep = (image + label).find(' ') != std::string::npos ? "\t" : " ";
    text += image + (label.empty() ? "" : sep + label) + "\n";
  }
  write_file_atomic(list_file, text);
}

LabeledSplit split_labeled(std::vector<Sample> samples, int64_t count, uint64_t seed) {
  const int64_t n = int64_t(samples.size());
  C3_CHECK(count >= 0 && count <= n, "split_labeled: asked for ", count, " labeled samples out of ", n);
  auto by_path = [](const Sample& a, const Sample& b) { return std::tie(a.image, a.label) < std::tie(b.image, b.label); };
  std::sort(samples.begin(), samples.end(), by_path);
  std::mt19937_64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) std::swap(samples[size_t(i)], samples[size_t(rng() % uint64_t(i + 1))]);
  LabeledSplit out;
  out.labeled.assign(samples.begin(), samples.begin() + count);
  out.unlabeled.assign(samples.begin() + count, samples.end());
  std::sort(out.labeled.begin(), out.labeled.end(), by_path);
  std::sort(out.unlabeled.begin(), out.unlabeled.end(), by_path);
  return out;
}

LabeledSplit split_labeled_from_list(std::vector<Sample> samples, const std::string& list_file,
                                     const std::string& root) {
  std::map<std::string, int> listed;  // path key -> line number
  for (const ListLine& l : read_list_lines(list_file, root)) listed.emplace(path_key(resolve(root, l.fields[0])), l.number);
  std::set<std::string> found;
  LabeledSplit out;
  for (Sample& s : samples) {
    const std::string key = path_key(s.image);
    const bool labeled = listed.count(key) > 0;
    if (labeled) found.insert(key);
    (labeled ? out.labeled : out.unlabeled).push_back(std::move(s));
  }
  for (const auto& [key, line] : listed)
    C3_CHECK(found.count(key), list_file, ":", line, ": ", key, " is not an image of the dataset (",
             listed.size() - found.size(), " of ", listed.size(), " listed images not found)");
  auto by_path = [](const Sample& a, const Sample& b) { return a.image < b.image; };
  std::sort(out.labeled.begin(), out.labeled.end(), by_path);
  std::sort(out.unlabeled.begin(), out.unlabeled.end(), by_path);
  return out;
}

}  // namespace c3::data
