// Datasets: the labelIds -> trainIds table, the Cityscapes layout, split lists, labeled
// subsets and the dataset checker, on small hand-made datasets in temporary folders.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>

#include "core/error.h"
#include "data/dataset.h"
#include "data/image_io.h"
#include "tests/data_helpers.h"

using namespace c3::data;
using c3test::TempDir;
using c3test::write_text;
using c3test::has;

namespace {

Image filled(int h, int w, int c, uint8_t v) { return Image(h, w, c, v); }

std::vector<std::string> images_of(const std::vector<Sample>& s) {
  std::vector<std::string> out;
  for (const auto& x : s) out.push_back(x.image);
  return out;
}

// root/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png (4x6 RGB) and the label files named.
void add_city_image(const TempDir& root, const std::string& split, const std::string& city, const std::string& name,
                    bool train_ids, bool label_ids) {
  write_png(root / ("leftImg8bit/" + split + "/" + city + "/" + name + "_leftImg8bit.png"), filled(4, 6, 3, 90));
  const std::string base = "gtFine/" + split + "/" + city + "/" + name + "_gtFine_";
  if (train_ids) write_png(root / (base + "labelTrainIds.png"), filled(4, 6, 1, 1));
  if (label_ids) write_png(root / (base + "labelIds.png"), filled(4, 6, 1, 26));
}

}  // namespace

TEST_CASE("dataset: labelIds -> trainIds follows the Cityscapes table") {
  const auto& t = label_id_to_train_id();
  // Hand-written from METHOD.md: 7 road, 8 sidewalk, 11 building, 17 pole, 26 car, 33 bicycle;
  // 0 (unlabeled), 1 (ego vehicle), 6 (ground), 34 and 255 are not train classes.
  Image l(2, 5, 1);
  l.px = {7, 8, 11, 17, 26, 33, 0, 1, 6, 34};
  CHECK(map_label_ids(l).px == std::vector<uint8_t>{0, 1, 2, 5, 13, 18, 255, 255, 255, 255});
  int mapped = 0;
  for (int v = 0; v < 256; ++v) mapped += t[size_t(v)] != 255 ? 1 : 0;
  CHECK(mapped == 19);
  CHECK(t[24] == 11);  // person
  CHECK(t[255] == 255);

  TempDir dir;
  write_png(dir / "ids.png", l);
  CHECK(load_label_train_ids({"x.png", dir / "ids.png", LabelMapping::label_ids}).px == map_label_ids(l).px);
  CHECK(load_label_train_ids({"x.png", dir / "ids.png", LabelMapping::train_ids}).px == l.px);
  CHECK_THROWS_WITH_AS(load_label_train_ids({"x.png", "", LabelMapping::train_ids}), has("x.png: sample has no label"),
                       c3::Error);
}

TEST_CASE("dataset: Cityscapes layout, labelTrainIds preferred over labelIds, missing labels") {
  TempDir root;
  add_city_image(root, "train", "bonn", "bonn_000001_000019", true, true);
  add_city_image(root, "train", "aachen", "aachen_000002_000019", false, true);
  add_city_image(root, "train", "aachen", "aachen_000001_000019", true, false);
  add_city_image(root, "train", "aachen", "aachen_000003_000019", false, false);  // no label
  add_city_image(root, "val", "lindau", "lindau_000000_000019", true, false);

  CHECK_THROWS_WITH_AS(load_cityscapes(root.path, "train"), has("aachen_000003_000019_gtFine_labelIds.png: label file not found"),
                       c3::Error);
  LoadOptions skip;
  skip.on_missing = OnMissing::skip;
  LoadStats stats;
  auto s = load_cityscapes(root.path, "train", skip, &stats);
  CHECK(stats.skipped == 1);
  REQUIRE(stats.examples.size() == 1);
  CHECK(stats.examples[0].find("aachen_000003_000019") != std::string::npos);
  REQUIRE(s.size() == 3);
  // Sorted by image path: aachen 1, aachen 2, bonn 1.
  CHECK(s[0].image == root.path + "/leftImg8bit/train/aachen/aachen_000001_000019_leftImg8bit.png");
  CHECK(s[0].label == root.path + "/gtFine/train/aachen/aachen_000001_000019_gtFine_labelTrainIds.png");
  CHECK(s[0].mapping == LabelMapping::train_ids);
  CHECK(s[1].label == root.path + "/gtFine/train/aachen/aachen_000002_000019_gtFine_labelIds.png");
  CHECK(s[1].mapping == LabelMapping::label_ids);
  CHECK(s[2].label == root.path + "/gtFine/train/bonn/bonn_000001_000019_gtFine_labelTrainIds.png");
  CHECK(s[2].mapping == LabelMapping::train_ids);
  CHECK(load_label_train_ids(s[1]).px == std::vector<uint8_t>(24, 13));  // labelId 26 = car = 13
  CHECK(load_label_train_ids(s[2]).px == std::vector<uint8_t>(24, 1));
  const auto [image, label] = load_sample(s[1]);
  CHECK((image.h == 4 && image.w == 6 && image.c == 3 && image.px == std::vector<uint8_t>(72, 90)));
  CHECK(label.px == std::vector<uint8_t>(24, 13));
  CHECK(load_sample({s[1].image, "", {}}).second.empty());
  write_png(root / "small_l.png", filled(3, 6, 1, 0));
  CHECK_THROWS_WITH_AS(load_sample({s[1].image, root / "small_l.png", {}}), has("small_l.png: label 3x6, image 4x6"),
                       c3::Error);
  // A trainId label with a value that is neither a class nor 255 is an error naming the file;
  // with 8 classes, value 8 is out too; labelIds map every unknown id to 255, so never fail.
  Image bad = filled(4, 6, 1, 2);
  bad.px[7] = 19, bad.px[8] = 19, bad.px[9] = 200;
  write_png(root / "bad_l.png", bad);
  CHECK_THROWS_WITH_AS(load_sample({s[1].image, root / "bad_l.png", LabelMapping::train_ids}),
                       has("bad_l.png: values that are neither a class (0..18) nor 255: 19 (2 px), 200 (1 px)"), c3::Error);
  write_png(root / "eight_l.png", filled(4, 6, 1, 8));
  CHECK_THROWS_WITH_AS(load_sample({s[1].image, root / "eight_l.png", LabelMapping::train_ids}, 8),
                       has("eight_l.png: values that are neither a class (0..7) nor 255: 8 (24 px)"), c3::Error);
  CHECK(load_sample({s[1].image, root / "eight_l.png", LabelMapping::train_ids}, 9).second.px[0] == 8);
  CHECK(load_sample({s[1].image, root / "bad_l.png", LabelMapping::label_ids}).second.px[9] == 255);

  LoadOptions unlabeled_ok;
  unlabeled_ok.require_labels = false;
  auto u = load_cityscapes(root.path, "train", unlabeled_ok);
  REQUIRE(u.size() == 4);
  CHECK(u[2].image.find("aachen_000003_000019") != std::string::npos);
  CHECK(u[2].label.empty());
  CHECK(load_cityscapes(root.path, "val").size() == 1);
  CHECK_THROWS_WITH_AS(load_cityscapes(root.path, "test"), has("leftImg8bit/test: not a folder"), c3::Error);
  CHECK_THROWS_WITH_AS(cityscapes_sample_for("a/b_leftImg8bit.png"), has("no leftImg8bit folder"), c3::Error);
  CHECK_THROWS_WITH_AS(cityscapes_sample_for("leftImg8bit/x/b.png"), has("does not end with _leftImg8bit"),
                       c3::Error);
}

TEST_CASE("dataset: split lists: one path per line, pairs, comments, errors with line numbers") {
  TempDir root;
  add_city_image(root, "train", "c", "c_0", true, false);
  add_city_image(root, "train", "c", "c_1", false, true);
  write_png(root / "img/x.png", filled(4, 6, 3, 1));
  write_png(root / "lab/x_labelIds.png", filled(4, 6, 1, 7));
  write_png(root / "lab/y.png", filled(4, 6, 1, 3));
  const std::string abs_image = root / "leftImg8bit/train/c/c_0_leftImg8bit.png";
  write_text(root / "list.txt",
             "# a comment\n"
             "\n"
             "leftImg8bit/train/c/c_0_leftImg8bit.png\n"
             "   leftImg8bit/train/c/c_1_leftImg8bit.png   \r\n"
             "img/x.png lab/x_labelIds.png\n"
             "img/x.png\tlab/y.png\n"
             "  # indented comment\n" +
                 abs_image + "\n");
  const auto s = load_split_list(root / "list.txt", root.path);
  REQUIRE(s.size() == 5);
  CHECK(s[0].image == abs_image);
  CHECK(s[0].label == root.path + "/gtFine/train/c/c_0_gtFine_labelTrainIds.png");
  CHECK(s[0].mapping == LabelMapping::train_ids);
  CHECK(s[1].label == root.path + "/gtFine/train/c/c_1_gtFine_labelIds.png");
  CHECK(s[1].mapping == LabelMapping::label_ids);
  CHECK(s[2].image == root.path + "/img/x.png");
  CHECK(s[2].label == root.path + "/lab/x_labelIds.png");
  CHECK(s[2].mapping == LabelMapping::label_ids);
  CHECK(s[3].label == root.path + "/lab/y.png");
  CHECK(s[3].mapping == LabelMapping::train_ids);
  CHECK(s[4].image == abs_image);  // absolute paths are kept
  LoadOptions force;
  force.force_mapping = LabelMapping::train_ids;
  CHECK(load_split_list(root / "list.txt", root.path, force)[2].mapping == LabelMapping::train_ids);

  // Written back relative to the root and read again: the same samples.
  write_split_list(root / "out.txt", root.path, s);
  const auto again = load_split_list(root / "out.txt", root.path);
  REQUIRE(again.size() == s.size());
  for (size_t i = 0; i < s.size(); ++i) CHECK((again[i].image == s[i].image && again[i].label == s[i].label));
  CHECK(c3test::file_bytes(root / "out.txt")[0] == 'l');  // "leftImg8bit/...", relative

  write_text(root / "bad.txt", "img/x.png\nimg/x.png lab/y.png extra\n");
  CHECK_THROWS_WITH_AS(load_split_list(root / "bad.txt", root.path), has("bad.txt:2: expected \"image\" or \"image label\", got 3 fields"),
                       c3::Error);
  write_text(root / "gone.txt", "img/x.png lab/y.png\n\nimg/nope.png lab/y.png\nimg/x.png lab/nope.png\n");
  CHECK_THROWS_WITH_AS(load_split_list(root / "gone.txt", root.path), has("gone.txt:3: " + root.path + "/img/nope.png: image file not found"),
                       c3::Error);
  LoadOptions skip;
  skip.on_missing = OnMissing::skip;
  LoadStats stats;
  // x.png alone does not follow the Cityscapes layout, so its label cannot be derived: an
  // error even when skipping, since it is a mistake in the list, not a missing file.
  write_text(root / "notcs.txt", "img/x.png\n");
  CHECK_THROWS_WITH_AS(load_split_list(root / "notcs.txt", root.path, skip, &stats),
                       has("notcs.txt:1: " + root.path + "/img/x.png: cannot derive the label path"), c3::Error);
  write_text(root / "gone2.txt", "img/nope.png lab/y.png\nimg/x.png lab/nope.png\nimg/x.png lab/y.png\n");
  const auto kept = load_split_list(root / "gone2.txt", root.path, skip, &stats);
  CHECK(kept.size() == 1);
  CHECK(stats.skipped == 2);
  REQUIRE(stats.examples.size() == 2);
  CHECK(stats.examples[1].find(root.path + "/gone2.txt:2: " + root.path + "/lab/nope.png: label file not found") == 0);
  CHECK_THROWS_WITH_AS(load_split_list(root / "none.txt", root.path), has("none.txt: file not found"), c3::Error);
}

TEST_CASE("dataset: split_labeled is deterministic, disjoint and covering") {
  std::vector<Sample> all;
  for (int i = 0; i < 50; ++i) all.push_back({"img" + std::to_string(1000 + i) + ".png", "l" + std::to_string(i), {}});
  std::vector<Sample> shuffled(all.rbegin(), all.rend());
  std::swap(shuffled[3], shuffled[40]);
  const auto a = split_labeled(all, 10, 7), b = split_labeled(shuffled, 10, 7), c = split_labeled(all, 10, 8);
  CHECK(images_of(a.labeled) == images_of(b.labeled));  // the input order does not matter
  CHECK(images_of(a.unlabeled) == images_of(b.unlabeled));
  CHECK(images_of(a.labeled) != images_of(c.labeled));  // another seed, another subset
  CHECK(a.labeled.size() == 10);
  CHECK(a.unlabeled.size() == 40);
  std::set<std::string> seen;
  for (const auto& s : a.labeled) seen.insert(s.image);
  for (const auto& s : a.unlabeled) CHECK(seen.insert(s.image).second);  // disjoint
  CHECK(seen.size() == 50);                                               // covering
  CHECK(std::is_sorted(a.labeled.begin(), a.labeled.end(), [](auto& x, auto& y) { return x.image < y.image; }));
  CHECK(split_labeled(all, 0, 1).labeled.empty());
  CHECK(split_labeled(all, 50, 1).unlabeled.empty());
  CHECK_THROWS_WITH_AS(split_labeled(all, 51, 1), has("asked for 51 labeled samples out of 50"), c3::Error);

  // The documented algorithm by hand, with the first two outputs of std::mt19937_64(5489),
  // which the C++ standard fixes: 14514284786278117030 (mod 3 = 1) and 4620546740167642908
  // (mod 2 = 0). Sorted [a, b, c]; i = 2: swap 2 and 1 -> [a, c, b]; i = 1: swap 1 and 0 ->
  // [c, a, b]. So 1 labeled sample is c, 2 are {a, c}.
  const std::vector<Sample> abc = {{"b", "", {}}, {"c", "", {}}, {"a", "", {}}};
  CHECK(images_of(split_labeled(abc, 1, 5489).labeled) == std::vector<std::string>{"c"});
  CHECK(images_of(split_labeled(abc, 1, 5489).unlabeled) == std::vector<std::string>{"a", "b"});
  CHECK(images_of(split_labeled(abc, 2, 5489).labeled) == std::vector<std::string>{"a", "c"});
}

TEST_CASE("dataset: labeled subset from a list file") {
  TempDir root;
  std::vector<Sample> all;
  for (int i = 0; i < 5; ++i) {
    const std::string name = "leftImg8bit/train/c/c_" + std::to_string(i) + "_leftImg8bit.png";
    write_png(root / name, filled(2, 2, 3, 0));
    all.push_back({root.path + "/" + name, "", {}});
  }
  write_text(root / "labeled.txt", "# two of five\nleftImg8bit/train/c/c_3_leftImg8bit.png\nleftImg8bit/train/./c/c_1_leftImg8bit.png x\n");
  const auto s = split_labeled_from_list(all, root / "labeled.txt", root.path);
  REQUIRE(s.labeled.size() == 2);
  CHECK(s.labeled[0].image == all[1].image);
  CHECK(s.labeled[1].image == all[3].image);
  CHECK(s.unlabeled.size() == 3);
  write_text(root / "stray.txt", "leftImg8bit/train/c/c_3_leftImg8bit.png\nleftImg8bit/train/c/c_9_leftImg8bit.png\n");
  CHECK_THROWS_WITH_AS(split_labeled_from_list(all, root / "stray.txt", root.path),
                       has("stray.txt:2: " + root.path + "/leftImg8bit/train/c/c_9_leftImg8bit.png is not an image of the dataset"),
                       c3::Error);
}

TEST_CASE("dataset: check_dataset finds each kind of problem") {
  TempDir d;
  auto img = [&](const std::string& n, int h, int w) { write_png(d / n, filled(h, w, 3, 50)); return d / n; };
  auto lab = [&](const std::string& n, int h, int w, uint8_t v) { write_png(d / n, filled(h, w, 1, v)); return d / n; };
  std::vector<Sample> s = {
      {img("ok.png", 4, 5), lab("ok_l.png", 4, 5, 3), LabelMapping::train_ids},
      {d.path + "/gone.png", lab("gone_l.png", 4, 5, 3), LabelMapping::train_ids},       // missing image
      {img("nolab.png", 4, 5), d.path + "/nolab_l.png", LabelMapping::train_ids},        // missing label
      {d / "junk.png", lab("junk_l.png", 4, 5, 3), LabelMapping::train_ids},             // unreadable image
      {img("size.png", 4, 5), lab("size_l.png", 5, 4, 3), LabelMapping::train_ids},      // size mismatch
      {img("val.png", 4, 5), lab("val_l.png", 4, 5, 19), LabelMapping::train_ids},       // 19 is no class
      {img("ids.png", 4, 5), lab("ids_l.png", 4, 5, 99), LabelMapping::label_ids},       // 99 -> 255: fine
      {img("ign.png", 4, 5), lab("ign_l.png", 4, 5, 255), LabelMapping::train_ids},      // 255: fine
      {img("rgb.png", 4, 5), img("rgb_l.png", 4, 5), LabelMapping::train_ids},           // RGB label
      {img("unl.png", 4, 5), "", LabelMapping::train_ids},                               // unlabeled: fine
  };
  c3test::write_text(d / "junk.png", "this is not an image");
  const CheckReport r = check_dataset(s, 19);
  CHECK(r.samples == 10);
  CHECK(r.labeled == 9);
  CHECK(!r.ok());
  CHECK(r.missing.count == 2);
  REQUIRE(r.missing.examples.size() == 2);
  CHECK(r.missing.examples[0] == d.path + "/gone.png: image file not found");
  CHECK(r.missing.examples[1].find(d.path + "/nolab_l.png: label file not found") == 0);
  CHECK(r.unreadable.count == 2);
  REQUIRE(r.unreadable.examples.size() == 2);
  CHECK(r.unreadable.examples[0].find(d.path + "/junk.png: not a PNG or JPEG file") == 0);
  CHECK(r.unreadable.examples[1].find(d.path + "/rgb_l.png: a label map must be an 8-bit single-channel PNG") == 0);
  CHECK(r.size_mismatch.count == 1);
  REQUIRE(r.size_mismatch.examples.size() == 1);
  CHECK(r.size_mismatch.examples[0].find("size_l.png: label 5x4, image 4x5") != std::string::npos);
  CHECK(r.bad_label.count == 1);
  REQUIRE(r.bad_label.examples.size() == 1);
  CHECK(r.bad_label.examples[0].find(d.path + "/val_l.png: values that are neither a class (0..18) nor 255: 19 (20 px)") == 0);
  std::ostringstream os;
  print_report(os, r);
  const std::string text = os.str();
  CHECK(text.find("checked 10 samples (9 labeled): 6 problems") == 0);
  CHECK(text.find("missing files (or not regular files): 2") != std::string::npos);
  CHECK(text.find("image/label size mismatches: 1") != std::string::npos);
  // With fewer classes, the car label (3) of the good sample is out of range too.
  CHECK(check_dataset({s[0]}, 3).bad_label.count == 1);
  const CheckReport good = check_dataset({s[0], s[6], s[7], s[9]}, 19);
  CHECK(good.ok());
  std::ostringstream os2;
  print_report(os2, good);
  CHECK(os2.str() == "checked 4 samples (3 labeled): OK\n");
}

// check-data said "OK" for missing, dangling, directory and FIFO labels, for lists naming
// missing images and for an empty list, while training then failed (or, on a FIFO, hung).
TEST_CASE("dataset: the checker reports every file training would fail on, an empty list and duplicates") {
  TempDir root;
  add_city_image(root, "train", "c", "ok", true, false);
  add_city_image(root, "train", "c", "nolabel", false, false);
  add_city_image(root, "train", "c", "dangling", false, false);
  add_city_image(root, "train", "c", "dirlabel", false, false);
  add_city_image(root, "train", "c", "fifo", false, false);
  const std::string gt = root / "gtFine/train/c/";
  std::filesystem::create_symlink(gt + "gone.png", gt + "dangling_gtFine_labelTrainIds.png");
  std::filesystem::create_directories(gt + "dirlabel_gtFine_labelTrainIds.png");
  REQUIRE(::mkfifo((gt + "fifo_gtFine_labelTrainIds.png").c_str(), 0644) == 0);

  // Training's error names the label path the layout expects, both spellings.
  CHECK_THROWS_WITH_AS(load_cityscapes(root.path, "train"),
                       has("dangling_gtFine_labelTrainIds.png: label file a symbolic link to nothing"), c3::Error);
  LoadOptions skip;
  skip.on_missing = OnMissing::skip;
  LoadStats listing;
  const auto s = load_cityscapes(root.path, "train", skip, &listing);
  CHECK(s.size() == 1);
  const CheckReport r = check_dataset(s, 19, &listing);
  CHECK_FALSE(r.ok());
  CHECK(r.missing.count == 4);
  std::string all;
  for (const auto& e : r.missing.examples) all += e + "\n";
  CHECK(all.find("dangling_gtFine_labelTrainIds.png: label file a symbolic link to nothing") != std::string::npos);
  CHECK(all.find("dirlabel_gtFine_labelTrainIds.png: label file a directory, not a file") != std::string::npos);
  CHECK(all.find("fifo_gtFine_labelTrainIds.png: label file not a regular file") != std::string::npos);
  CHECK(all.find("nolabel_gtFine_labelIds.png: label file not found, nor nolabel_gtFine_labelTrainIds.png") !=
        std::string::npos);
  // A FIFO handed to the reader directly is an error, not a read that never returns.
  CHECK_THROWS_WITH_AS(read_label(gt + "fifo_gtFine_labelTrainIds.png"), has("not a regular file"), c3::Error);

  // A list naming a missing image, and an image listed twice.
  write_text(root / "list.txt", "leftImg8bit/train/c/ok_leftImg8bit.png\nleftImg8bit/train/c/gone_leftImg8bit.png\n"
                                "./leftImg8bit/train/c/ok_leftImg8bit.png\n");
  LoadStats list_stats;
  const auto listed = load_split_list(root / "list.txt", root.path, skip, &list_stats);
  const CheckReport lr = check_dataset(listed, 19, &list_stats);
  CHECK(lr.missing.count == 1);
  CHECK(lr.duplicate.count == 1);
  CHECK_FALSE(lr.ok());
  std::ostringstream os;
  print_report(os, lr);
  CHECK(os.str().find("images listed more than once: 1") != std::string::npos);
  // An empty list checks nothing: not OK.
  write_text(root / "empty.txt", "# nothing\n");
  const CheckReport er = check_dataset(load_split_list(root / "empty.txt", root.path), 19);
  CHECK_FALSE(er.ok());
  std::ostringstream eos;
  print_report(eos, er);
  CHECK(eos.str() == "checked 0 samples (0 labeled): no samples (an empty list or split)\n");
}

// A UTF-8 byte order mark broke the first line; a path with a space was read as a pair.
TEST_CASE("dataset: split lists with a byte order mark and paths with spaces") {
  TempDir root;
  write_png(root / "my images/a b.png", filled(4, 6, 3, 1));
  write_png(root / "my labels/a b.png", filled(4, 6, 1, 2));
  write_png(root / "img/x.png", filled(4, 6, 3, 1));
  write_png(root / "lab/x.png", filled(4, 6, 1, 2));
  // (A line of a form feed alone crashed the reader, found by make fuzz: skipped as blank.)
  write_text(root / "bom.txt", "\xEF\xBB\xBFimg/x.png lab/x.png\n\f\n \v \nmy images/a b.png\tmy labels/a b.png\n");
  const auto s = load_split_list(root / "bom.txt", root.path);
  REQUIRE(s.size() == 2);
  CHECK(s[0].image == root.path + "/img/x.png");
  CHECK(s[1].image == root.path + "/my images/a b.png");
  CHECK(s[1].label == root.path + "/my labels/a b.png");
  // An image alone whose path holds a space is taken whole when that file exists (its label
  // then comes from the Cityscapes rule, which this name does not follow: that error, not a
  // "two fields" misreading).
  write_text(root / "alone.txt", "my images/a b.png\n");
  CHECK_THROWS_WITH_AS(load_split_list(root / "alone.txt", root.path), has("a b.png: cannot derive the label path"),
                       c3::Error);
  // Written back (a tab where a path holds a space) and read again: the same samples.
  write_split_list(root / "out.txt", root.path, s);
  const auto again = load_split_list(root / "out.txt", root.path);
  REQUIRE(again.size() == 2);
  CHECK((again[1].image == s[1].image && again[1].label == s[1].label));
  // Three space-separated words that are no file: the message says how to list such paths.
  write_text(root / "three.txt", "my images/a b.png lab/x.png\n");
  CHECK_THROWS_WITH_AS(load_split_list(root / "three.txt", root.path), has("separate paths that hold spaces with a tab"),
                       c3::Error);
}
