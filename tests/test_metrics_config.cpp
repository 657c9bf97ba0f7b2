// Evaluation metrics and run configuration.
//
// CUDA kernels run here in emulation, through their kernels::emu entry points, against
// the CPU kernels:
//   confusion_kernel (up to 110 classes), confusion_global_kernel (above).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>

#include "core/ops_conv.h"
#include "core/ops_matmul.h"
#include "kernels/cpu/metrics.h"
#include "kernels/cuda/metrics.h"
#include "semiseg/config.h"
#include "semiseg/metrics.h"
#include "semiseg/run_data.h"
#include "tests/emu_helpers.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3::semiseg;
using namespace c3test;

TEST_CASE("metrics: confusion matrix and IoU computed by hand") {
  // labels 0 0 1 1 2 255; predictions 0 1 1 1 0 2
  Tensor pred = Tensor::from_vector<int32_t>({0, 1, 1, 1, 0, 2}, {1, 2, 3});
  Tensor label = Tensor::from_vector<uint8_t>({0, 0, 1, 1, 2, 255}, {1, 2, 3});
  ConfusionMatrix cm(3, Device::cpu);
  cm.add(pred, label);
  CHECK(cm.counts() == std::vector<uint64_t>{1, 1, 0, 0, 2, 0, 1, 0, 0});
  IoUResult r = compute_iou(cm.counts(), 3);
  // class 0: tp 1, fn 1, fp 1 -> 1/3; class 1: tp 2, fp 1 -> 2/3; class 2: tp 0, fn 1 -> 0
  CHECK(r.iou[0] == doctest::Approx(1.0 / 3));
  CHECK(r.iou[1] == doctest::Approx(2.0 / 3));
  CHECK(r.iou[2] == 0.0);
  CHECK(r.miou == doctest::Approx(1.0 / 3));
  CHECK(r.pixel_acc == doctest::Approx(3.0 / 5));
  // The "*" evaluation: masked pixels are skipped.
  ConfusionMatrix star(3, Device::cpu);
  star.add(pred, label, Tensor::from_vector<uint8_t>({1, 0, 1, 1, 0, 1}, {1, 2, 3}));
  CHECK(compute_iou(star.counts(), 3).iou[0] == 1.0);
  CHECK(std::isnan(compute_iou(star.counts(), 3).iou[2]));  // absent everywhere: NaN, not in the mean
  CHECK(compute_iou(star.counts(), 3).miou == doctest::Approx(1.0));
  ConfusionMatrix bad(3, Device::cpu);
  CHECK_THROWS_WITH_AS(bad.add(pred, Tensor::from_vector<uint8_t>({0, 7, 1, 1, 2, 255}, {1, 2, 3})),
                       doctest::Contains("neither a class"), Error);
  std::string md = iou_table_markdown({"a", "b", "c"}, {{"ours", r}});
  CHECK(md.find("| ours | 33.3 | 66.7 | 0.0 | 33.3 |") != std::string::npos);
  CHECK(iou_table_csv({"a", "b", "c"}, {{"ours", r}}).find("ours,33.3,66.7,0.0,33.3,60.0") != std::string::npos);
}

// The lab's confusion entry checks 19 classes with ignore labels and no mask; here the edge
// cases: one pixel, a mask, sizes around a block.
TEST_CASE("metrics kernels: emulated confusion matrix edge cases equal the CPU one (one pixel, a mask)") {
  for_each_fiber_order([](const char* order) {
    for (int64_t n : {1, 257, 4099}) {
      std::vector<int32_t> pred(n);
      std::vector<uint8_t> label(n), mask(n);
      for (int64_t i = 0; i < n; ++i) {
        pred[i] = int32_t((i * 7) % 19);
        label[i] = uint8_t((i * 13) % 23 < 19 ? (i * 13) % 23 : 255);
        mask[i] = i % 5 != 0;
      }
      std::vector<uint64_t> want(19 * 19, 0);
      kernels::cpu::confusion_add(pred.data(), label.data(), mask.data(), n, 19, 255, want.data());
      std::vector<unsigned long long> got(19 * 19, 0);
      unsigned long long bad = 0;
      kernels::emu::confusion_add(pred.data(), label.data(), mask.data(), n, 19, 255, got.data(), &bad);
      CHECK_MESSAGE(std::equal(want.begin(), want.end(), got.begin()), order, " n=", n);
      CHECK(bad == 0);
    }
  });
}

// Above 110 classes the per-block histogram passes the 48 KB of shared memory a launch gets
// without opting in: the kernel counts in global memory instead (the emulator enforces the
// GPU's launch limits).
TEST_CASE("metrics kernels: emulated confusion matrix at 200 and 254 classes equals the CPU one") {
  for (int C : {111, 200, 254}) {
    const int64_t n = 40001;
    std::vector<int32_t> pred(n);
    std::vector<uint8_t> label(n);
    for (int64_t i = 0; i < n; ++i) {
      pred[i] = int32_t((i * 7) % C);
      label[i] = uint8_t((i * 13) % (C + 3) < C ? (i * 13) % (C + 3) : 255);
    }
    std::vector<uint64_t> want(size_t(C) * C, 0);
    kernels::cpu::confusion_add(pred.data(), label.data(), nullptr, n, C, 255, want.data());
    std::vector<unsigned long long> got(size_t(C) * C, 0);
    unsigned long long bad = 0;
    kernels::emu::confusion_add(pred.data(), label.data(), nullptr, n, C, 255, got.data(), &bad);
    CHECK_MESSAGE(std::equal(want.begin(), want.end(), got.begin()), "C=", C);
    CHECK(bad == 0);
  }
}

TEST_CASE("config: defaults, files, overrides, and errors that name the key") {
  Config c = load_config("", {});
  CHECK(c.model.backbone.depth == 101);
  CHECK(c.train.total_steps() == 25000);
  CHECK(c.loss.w_cons == 50);
  c = load_config("", {"train.epochs=3", "model.head=deeplab_v3plus", "data.crop=[64,128]", "loss.w_con=1"});
  CHECK(c.train.epochs == 3);
  CHECK(c.model.head == nn::HeadKind::deeplab_v3plus);
  CHECK(c.data.crop.w == 128);
  CHECK(c.loss.w_con == 1.0);
  CHECK_THROWS_WITH_AS(load_config("", {"train.epochz=3"}), doctest::Contains("unknown config key 'train.epochz'"), Error);
  CHECK_THROWS_WITH_AS(load_config("", {"train.epochs=three"}),
                       doctest::Contains("config key 'train.epochs' must be an integer, got a string"), Error);
  CHECK_THROWS_WITH_AS(load_config("", {"dcrs.mode=sometimes"}), doctest::Contains("dcrs.mode"), Error);
  CHECK(load_config("", {"train.threads=1"}).train.threads == 1);
  c = load_config("", {"data.strong_jitter=false"});
  CHECK((!c.data.strong_jitter && c.data.strong_randaugment));
  CHECK_THROWS_WITH_AS(load_config("", {"train.threads=-2"}), doctest::Contains("train.threads"), Error);
  CHECK(load_config("", {}).model.aspp_dilations.empty());
  CHECK(load_config("", {"model.aspp_dilations=[1,2,3]"}).model.aspp_dilations == std::vector<int>{1, 2, 3});
  CHECK_THROWS_WITH_AS(load_config("", {"model.aspp_dilations=[1,0]"}),
                       doctest::Contains("config key 'model.aspp_dilations[1]': must be in [1, 64], got 0"), Error);
  CHECK_THROWS_WITH_AS(load_config("", {"model.aspp_dilations=[2.5]"}), doctest::Contains("got 2.5"), Error);
  CHECK_THROWS_WITH_AS(load_config("", {"model.aspp_dilations=[3]", "model.aspp_two_branches=true"}),
                       doctest::Contains("needs at least two dilations"), Error);
  CHECK_THROWS_WITH_AS(load_config("", {"data.skip_bad_samples=1"}),
                       doctest::Contains("config key 'data.skip_bad_samples' must be a boolean"), Error);
  const std::string path = "/tmp/c3test_cfg_" + std::to_string(::getpid()) + ".json";
  std::ofstream(path) << R"({"train": {"batch_labeled": 2}, "model": {"colour": 1}})";
  CHECK_THROWS_WITH_AS(load_config(path, {}), doctest::Contains((path + ": unknown config key 'model.colour'").c_str()), Error);
  std::ofstream(path) << R"({"train": {"batch_labeled": 2,}})";
  CHECK_THROWS_WITH_AS(load_config(path, {}), doctest::Contains("not valid JSON"), Error);
  std::remove(path.c_str());
}

// Every numeric key carries its range; values outside it were accepted and cast, wrapped or
// divided by (train.threads 4294967297 became 1, eval_every_epochs 0 was a SIGFPE).
// data.workers = -1 (the default): the cores this process may use, at most 16, shared by the
// loaders that run at once (labeled and unlabeled in C3); an explicit count is kept as given.
TEST_CASE("config: data.workers -1 resolves to the available cores shared by the loaders") {
  Config c = load_config("", {});
  CHECK(c.data.workers == -1);
  const int one = semiseg::loader_workers(c, 1), two = semiseg::loader_workers(c, 2);
  CHECK((one >= 1 && one <= 16));
  CHECK((two >= 1 && two <= 8));
  CHECK(two <= one);
  CHECK(two >= one / 2);
  c = load_config("", {"data.workers=3"});
  CHECK(semiseg::loader_workers(c, 2) == 3);
  c = load_config("", {"data.workers=0"});
  CHECK(semiseg::loader_workers(c, 2) == 0);
  CHECK_THROWS_WITH_AS(load_config("", {"data.workers=-2"}), doctest::Contains("data.workers"), Error);
}

TEST_CASE("config: train.precision chooses TF32 or FP32 for convolutions and matmuls") {
  Config c = load_config("", {});
  CHECK(c.train.precision == c3::Precision::tf32);
  c = load_config("", {"train.precision=fp32"});
  semiseg::apply_numerics(c.train);
  CHECK_FALSE(allow_tf32());
  CHECK_FALSE(conv_allow_tf32());
  semiseg::apply_numerics(load_config("", {}).train);  // back to the default for the other tests
  CHECK(allow_tf32());
  CHECK(conv_allow_tf32());
  CHECK(config_json(load_config("", {"train.precision=fp32"}))["train"]["precision"] == "fp32");  // the run folder records it
  CHECK_THROWS_WITH_AS(load_config("", {"train.precision=fp16"}), doctest::Contains("train.precision"), Error);
}

TEST_CASE("config: every numeric key has a range, and a value outside it is an error naming the key") {
  // The table's defaults are inside their own ranges and names (parse_config checks each).
  const nlohmann::json defaults = default_config();
  CHECK_NOTHROW(parse_config(defaults));
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"train.lr_head=-1e-3", "'train.lr_head': must be in [0, 10], got -0.001"},
      {"train.lr_backbone=1e999", "'train.lr_backbone'"},
      {"model.dropout=1.5", "'model.dropout'"},
      {"train.ema_max_decay=2", "'train.ema_max_decay'"},
      {"data.flip=2", "'data.flip'"},
      {"train.contrast_groups=0", "'train.contrast_groups'"},
      {"dcrs.init=5", "'dcrs.init'"},
      {"train.threads=4294967297", "'train.threads': must be in [0, 1024], got 4294967297"},
      {"train.eval_every_epochs=0", "'train.eval_every_epochs'"},
      {"train.epochs=9223372036854775807", "'train.epochs'"},
      {"data.workers=100000", "'data.workers'"},
      {"data.base_size=[1000000000,2]", "'data.base_size[0]'"},
      {"data.scales=[1.0,\"x\"]", "'data.scales[1]': must be a number"},
      {"dcrs.s_per_class=[\"a\"]", "'dcrs.s_per_class[0]': must be a number"},
      {"model.depth=19", "'model.depth': must be 18, 34, 50, 101 or 152"},
      {"model.output_stride=4", "'model.output_stride'"},
      {"output.dir=", "'output.dir'"},
      {"output.dir=/", "'output.dir'"},
      {"output.dir=///", "'output.dir'"},
  };
  for (const auto& [set, message] : bad) {
    CAPTURE(set);
    CHECK_THROWS_WITH_AS(load_config("", {set}), doctest::Contains(message.c_str()), Error);
  }
  CHECK(load_config("", {"train.lr_head=0"}).train.lr_head == 0.0);  // the ends of a range are allowed
  // A bare word that is not UTF-8 threw nlohmann's type_error when the config was printed
  // (found by make fuzz; tests/fuzz/regressions/config/).
  CHECK_THROWS_WITH_AS(load_config("", {"output.dir=ab\xff\xfe"}), doctest::Contains("not valid UTF-8"), Error);
  CHECK_THROWS_WITH_AS(load_config("", {"train.epochs=\xff"}), doctest::Contains("not valid UTF-8"), Error);
  CHECK(load_config("", {"data.flip=1"}).data.flip == 1.0);
}

// One table makes the defaults, the reading, the JSON written into the run folder and the
// list: a key written by one and not read back by another (or read into the wrong member)
// changes a value on the way round.
TEST_CASE("config: the written document reads back to the same config, and the list names every key once") {
  const Config c = load_config("", {"model.head=deeplab_v3plus", "model.depth=50", "model.aspp_dilations=[2,3]",
                                    "data.crop=[96,160]", "data.scales=[0.5,1.5]", "data.split_seed=18000000000000000000",
                                    "train.mode=supervised", "train.optimizer=sgd", "train.device=cpu",
                                    "train.lr_head=0.25", "loss.mix_labeled=false", "dcrs.mode=global",
                                    "dcrs.s_per_class=[0.5,0.6,0.7]", "model.num_classes=3", "output.dir=runs/x"});
  const nlohmann::json j = config_json(c);
  CHECK(j == config_json(parse_config(j)));
  CHECK(j != default_config());
  const Config back = parse_config(j);
  CHECK(back.model.head == nn::HeadKind::deeplab_v3plus);
  CHECK(!back.model.align_corners);  // follows from the head
  CHECK(back.model.backbone.depth == 50);
  CHECK(back.model.aspp_dilations == std::vector<int>{2, 3});
  CHECK((back.data.crop.h == 96 && back.data.crop.w == 160));
  CHECK(back.data.scales == std::vector<double>{0.5, 1.5});
  CHECK(back.data.split_seed == 18000000000000000000ull);
  CHECK(back.train.mode == TrainMode::supervised);
  CHECK(back.train.optimizer == Optimizer::sgd);
  CHECK(back.train.device == "cpu");
  CHECK(back.train.lr_head == 0.25);
  CHECK(!back.loss.mix_labeled);
  CHECK(back.dcrs.mode == DcrsMode::global);
  CHECK(back.dcrs.s_per_class.size() == 3);
  CHECK(back.output.dir == "runs/x");
  // Config{} is the table's defaults, the same as an empty config file.
  CHECK(config_json(Config{}) == config_json(load_config("", {})));
  CHECK(Config{}.train.total_steps() == 25000);

  // The list: every key of the document exactly once, with its default; a section per block.
  const std::string list = config_list();
  const nlohmann::json defaults = default_config();
  size_t keys = 0;
  for (auto& [section, entries] : defaults.items())
    for (auto& [key, value] : entries.items()) {
      const std::string name = section + "." + key;
      CAPTURE(name);
      ++keys;
      const size_t at = list.find("  " + name + " ");
      REQUIRE(at != std::string::npos);
      CHECK(list.find("  " + name + " ", at + 1) == std::string::npos);
      const std::string line = list.substr(at, list.find('\n', at) - at);
      CHECK(line.find(value.dump()) != std::string::npos);
    }
  CHECK(keys > 70);
  CHECK(size_t(std::count(list.begin(), list.end(), '\n')) == keys + 2 * 6 - 1);  // keys, 6 headings, 5 blank lines
}

// `--set .x=1` and `--set ..=1` looped forever; a document nested 10^5 levels deep overflowed
// the stack (the merge and its messages recurse).
TEST_CASE("config: malformed --set paths and deeply nested JSON are errors, not hangs or crashes") {
  for (const std::string set : {".x=1", "..=1", "train.=1", "train..epochs=1", ".=1"}) {
    CAPTURE(set);
    CHECK_THROWS_WITH_AS(load_config("", {set}), doctest::Contains("is not a key"), Error);
  }
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  CHECK_THROWS_WITH_AS(load_config("", {"data.scales=" + deep}), doctest::Contains("nested deeper than"), Error);
  const std::string path = "/tmp/c3test_deep_" + std::to_string(::getpid()) + ".json";
  std::ofstream(path) << "{\"model\": " << std::string(100000, '[') << std::string(100000, ']') << "}";
  CHECK_THROWS_WITH_AS(load_config(path, {}), doctest::Contains((path + ": JSON nested deeper than").c_str()), Error);
  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += "{\"a\":";
  objects += "1" + std::string(100000, '}');
  std::ofstream(path) << objects;
  CHECK_THROWS_WITH_AS(load_config(path, {}), doctest::Contains("nested deeper than"), Error);
  std::remove(path.c_str());
  nlohmann::json ok = default_config();
  CHECK_NOTHROW(check_depth(ok, "defaults"));
}

// A shipped config with a misspelt key would fail only when a user runs it: each one loads
// here, and the Cityscapes ones carry METHOD.md's reference protocol.
TEST_CASE("config: every shipped config loads; the Cityscapes ones hold METHOD.md's protocol") {
  const std::vector<std::pair<std::string, int64_t>> cityscapes = {
      {"configs/cityscapes_100.json", 100}, {"configs/cityscapes_372.json", 372}, {"configs/cityscapes_744.json", 744},
      {"configs/cityscapes_all.json", 2975}, {"configs/cityscapes_v3plus_372.json", 372}};
  for (const auto& [path, labels] : cityscapes) {
    CAPTURE(path);
    const Config c = load_config(path, {});
    CHECK(c.data.labeled_count == labels);
    CHECK(c.model.backbone.depth == 101);
    CHECK((c.train.batch_labeled == 16 && c.train.batch_unlabeled == 16));
    CHECK((c.data.crop.h == 256 && c.data.crop.w == 512 && c.data.base_size.h == 512 && c.data.base_size.w == 1024));
    CHECK(c.train.total_steps() == 25000);
    CHECK(c.train.warmup_epochs == 9);
    CHECK((c.loss.w_con == 0.1 && c.loss.w_cons == 50 && c.loss.tau == 0.15 && c.loss.tau_b == 0.1));
    CHECK((c.dcrs.s == 0.8 && c.dcrs.init == 0.9));
    if (path.find("v3plus") == std::string::npos) {
      CHECK(c.model.head == nn::HeadKind::deeplab_v2);
      CHECK(c.model.backbone.frozen_bn);
      CHECK((c.train.lr_head == 1.2e-4 && c.train.lr_backbone == 1.2e-5));
    }
  }
  const Config s = load_config("configs/synthetic.json", {});
  CHECK(s.model.backbone.depth == 18);
  CHECK(s.data.labeled_count == 33);
  CHECK(s.data.root == "datasets/synthetic-colour");  // what c3semiseg run generates
  CHECK(s.train.threads == 1);  // make compare trains its two runs side by side on one thread each
}

TEST_CASE("config: compare's two runs get their own folders, also under --set output.dir; train.mode is refused") {
  auto [sup, c3] = semiseg::compare_run_configs({});
  CHECK(sup.train.mode == semiseg::TrainMode::supervised);
  CHECK(c3.train.mode == semiseg::TrainMode::c3);
  CHECK(sup.output.dir == "runs/synthetic_supervised");
  CHECK(c3.output.dir == "runs/synthetic_c3");
  // One folder for both would let the two processes overwrite each other's checkpoints, and
  // the table would show one model twice.
  auto [sup2, c32] = semiseg::compare_run_configs({"output.dir=runs/bf16", "train.precision=bf16"});
  CHECK(sup2.output.dir == "runs/bf16_supervised");
  CHECK(c32.output.dir == "runs/bf16_c3");
  CHECK(c32.train.precision == c3::Precision::bf16);
  CHECK_THROWS_WITH_AS(semiseg::compare_run_configs({"train.mode=c3"}),
                       doctest::Contains("compare: train.mode is chosen by compare"), Error);
}
