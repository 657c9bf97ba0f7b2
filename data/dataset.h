// Datasets as lists of (image, label) file paths: the Cityscapes folder layout, split list
// files, labeled/unlabeled subsets, and a checker that reads every file once.
//
// Labels are read as trainIds (0..18, 255 = ignore). A sample whose label file holds
// Cityscapes labelIds is mapped through the table of METHOD.md ("Cityscapes conventions")
// when it is loaded; every id outside that table becomes 255.
#pragma once
#include <array>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "data/image.h"

namespace c3::data {

// What the label file's pixel values are.
enum class LabelMapping {
  train_ids,  // already trainIds (e.g. *_gtFine_labelTrainIds.png): used as they are
  label_ids,  // Cityscapes labelIds (*_gtFine_labelIds.png): mapped to trainIds on load
};

struct Sample {
  std::string image, label;  // label is empty for an unlabeled image
  LabelMapping mapping = LabelMapping::train_ids;
};

// What a loader does when a file it needs is missing (an image named in a list, or the
// label of an image): throw c3::Error naming it (default), or leave the sample out and count it.
enum class OnMissing { error, skip };

struct LoadOptions {
  OnMissing on_missing = OnMissing::error;
  bool require_labels = true;                  // false: an image without a label is kept, label ""
  std::optional<LabelMapping> force_mapping;  // overrides the mapping guessed from file names
};

struct LoadStats {
  int64_t skipped = 0;                // samples left out under OnMissing::skip
  std::vector<std::string> examples;  // the first few of them, "path: why"
};

// labelId -> trainId, 255 for every id that is not one of the 19 train classes.
const std::array<uint8_t, 256>& label_id_to_train_id();

// Applies label_id_to_train_id() to every pixel of a label map (c = 1).
Image map_label_ids(const Image& label_ids);

// The sample's label as trainIds (read_label, then the mapping of the sample).
Image load_label_train_ids(const Sample& s);

// Label values that are neither a class (< num_classes) nor 255, as "v (n px), ..."; empty
// when every value is fine.
std::string bad_label_values(const Image& label, int num_classes);

// The RGB image and the trainId label of a sample (an empty Image for an unlabeled one), the
// shape a loader's sample function returns. Throws, naming the file, when image and label
// differ in size or the label holds a value that is neither a class (< num_classes) nor 255.
std::pair<Image, Image> load_sample(const Sample& s, int num_classes = 19);

// <root>/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png with its label
// <root>/gtFine/<split>/<city>/<name>_gtFine_labelTrainIds.png when that file exists
// (mapping train_ids), else <name>_gtFine_labelIds.png (mapping label_ids).
// Sorted by image path. Throws when <root>/leftImg8bit/<split> is not a folder or holds no image.
std::vector<Sample> load_cityscapes(const std::string& root, const std::string& split,
                                    const LoadOptions& opt = {}, LoadStats* stats = nullptr);

// The label path of a Cityscapes image path: the last folder named "leftImg8bit" becomes
// "gtFine", and "_leftImg8bit.<ext>" becomes "_gtFine_labelTrainIds.png" if anything by that
// name exists (a broken link or a folder is then reported as the label's problem), else
// "_gtFine_labelIds.png" (returned even when it does not exist). Throws when the path
// does not follow the layout.
Sample cityscapes_sample_for(const std::string& image_path);

// A split list: one entry per line, either "image" (label found by cityscapes_sample_for)
// or "image label". Paths are relative to `root` (absolute ones are used as they are). Paths
// that hold spaces: "image<TAB>label", or an image alone on its line when that file exists.
// A UTF-8 byte order mark, blank lines and lines starting with '#' are skipped. A label named
// *labelIds.png (not *TrainIds) is read as labelIds, any other as trainIds. Order of the file.
std::vector<Sample> load_split_list(const std::string& list_file, const std::string& root,
                                    const LoadOptions& opt = {}, LoadStats* stats = nullptr);

// Writes samples as "image label" lines relative to `root` (loadable by load_split_list;
// "image<TAB>label" where a path holds a space), atomically. An unlabeled sample is written as "image" alone; read back, it gets the label
// that the Cityscapes rule derives, if that file exists.
void write_split_list(const std::string& list_file, const std::string& root, const std::vector<Sample>& samples);

struct LabeledSplit {
  std::vector<Sample> labeled, unlabeled;  // each sorted by image path
};

// `count` labeled samples drawn at random, the rest unlabeled. Deterministic in (set of
// samples, count, seed), independent of the input order: the samples are sorted by image
// path, then shuffled by Fisher-Yates from the back (for i = n-1 .. 1: j = rng() % (i+1),
// swap i and j) with std::mt19937_64 rng(seed), whose output the C++ standard fixes; the
// first `count` are labeled. (std::shuffle is not used: its algorithm differs between
// standard libraries.)
LabeledSplit split_labeled(std::vector<Sample> samples, int64_t count, uint64_t seed);

// The labeled subset named by a split list (read as in load_split_list, only the image path
// of each line is used): samples whose image is listed are labeled, the rest unlabeled.
// Throws when a listed image is not among the samples.
LabeledSplit split_labeled_from_list(std::vector<Sample> samples, const std::string& list_file,
                                     const std::string& root);

// --- checking a dataset ------------------------------------------------------------------

struct ProblemList {
  int64_t count = 0;
  std::vector<std::string> examples;  // the first kMaxExamples, "path: detail"
};

struct CheckReport {
  static constexpr int kMaxExamples = 5;
  int64_t samples = 0, labeled = 0;
  ProblemList missing;         // a file that does not exist
  ProblemList unreadable;      // exists but does not decode (corrupt, truncated, wrong format)
  ProblemList size_mismatch;   // image and label of different height/width
  ProblemList bad_label;       // label values (after mapping) neither < num_classes nor 255
  ProblemList duplicate;       // an image listed more than once (each repeat counts once)
  int64_t problems() const {
    return missing.count + unreadable.count + size_mismatch.count + bad_label.count + duplicate.count;
  }
  bool ok() const { return samples > 0 && problems() == 0; }  // an empty dataset is not OK
};

// Reads every image and label once (in parallel) and counts the problems; each sample adds
// at most one problem per file (a missing image and a missing label are two). `listing`: the
// samples left out while listing (OnMissing::skip), counted as missing files.
CheckReport check_dataset(const std::vector<Sample>& samples, int num_classes, const LoadStats* listing = nullptr);

// "checked N samples (M labeled): OK" or one line per problem kind with its examples
// ("no samples" for an empty dataset).
void print_report(std::ostream& os, const CheckReport& r);

}  // namespace c3::data
