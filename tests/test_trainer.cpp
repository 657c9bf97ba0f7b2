// The trainer end to end on a tiny synthetic dataset: it trains, evaluates, writes its run
// folder, and an interrupted run resumed from its checkpoint gives the same losses as an
// uninterrupted one (CPU).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "data/dataset.h"
#include "data/synthetic.h"
#include "nn/safetensors.h"
#include "semiseg/eval.h"
#include "semiseg/run_data.h"
#include "semiseg/trainer.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3::semiseg;

namespace {
std::string tmp_dir() {
  static std::string d;
  if (d.empty()) {
    char buf[] = "/tmp/c3trainXXXXXX";
    d = ::mkdtemp(buf);
    data::make_synthetic(d + "/data", 3, 24, 4, 64, 128);
  }
  return d;
}

Config tiny(const std::string& out, const std::string& mode) {
  const std::string root = tmp_dir() + "/data";
  return load_config("", {"model.depth=18", "model.width=0.125", "model.frozen_bn=false", "model.proj_dim=16",
                          "model.num_classes=19", "data.root=\"" + root + "\"", "data.labeled_count=8",
                          "data.base_size=[64,128]", "data.crop=[32,64]", "data.val_size=[64,128]", "data.workers=2",
                          "train.batch_labeled=2", "train.batch_unlabeled=2", "train.epochs=3", "train.steps_per_epoch=2",
                          "train.warmup_epochs=1", "train.lr_head=0.001", "train.lr_backbone=0.001",
                          "train.eval_every_epochs=3", "train.device=cpu", "train.mode=" + mode,
                          "loss.ramp_cons=2", "loss.samples_per_class=4", "loss.min_pixels=4", "dcrs.init=0.2",
                          "output.dir=\"" + out + "\"", "output.vis_images=2", "output.log_every=1"});
}

std::vector<double> losses(const std::string& dir) {
  std::vector<double> out;
  std::ifstream f(dir + "/metrics.jsonl");
  for (std::string line; std::getline(f, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(j["loss"].get<double>());
  }
  return out;
}
bool same_values(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && c3test::as_doubles(a) == c3test::as_doubles(b);
}
bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}
}  // namespace

TEST_CASE("trainer: C3 trains, evaluates and writes its run folder; resume repeats the losses") {
  const std::string a = tmp_dir() + "/run_a", b = tmp_dir() + "/run_b";
  {
    Trainer t(tiny(a, "c3"), false);
    TrainResult r = t.run();
    CHECK(r.steps_done == 6);
    CHECK_FALSE(r.interrupted);
    CHECK(r.last.iou.size() == 19);
    CHECK(r.last.pixels == 4 * 64 * 128);  // every val pixel is labeled in the synthetic set
    CHECK(r.last_star.iou.size() == 19);   // the DCRS "*" evaluation ran
  }
  for (const char* f : {"/config.json", "/metrics.jsonl", "/latest.safetensors", "/best.safetensors", "/summary.md",
                        "/eval_000006.md", "/eval_000006.csv", "/vis/eval_000006.png", "/curves.svg"})
    CHECK_MESSAGE(exists(a + f), f);
  const std::vector<double> full = losses(a);
  REQUIRE(full.size() == 6);
  int semi_lines = 0, warm_lines = 0;  // the semi steps log the teacher agreement and the labeled accuracy
  std::ifstream m(a + "/metrics.jsonl");
  for (std::string line; std::getline(m, line);) {
    auto j = nlohmann::json::parse(line);
    if (!j.contains("phase")) continue;
    // Each step's loss terms by their names: warm-up L_sup and L_con, semi also L_cons and the kept fraction.
    CHECK((j.contains("sup") && j.contains("con")));
    REQUIRE(j.contains("host_syncs"));  // the host synchronisation points since the previous line
    // Logged every step (output.log_every=1): the one packed read of the logged values, and
    // nothing else, warm-up and semi steps alike.
    CHECK_MESSAGE(j["host_syncs"].get<uint64_t>() == 1u, line);
    // Tensor memory: the model's parameters alone are more than 0.1 MiB; the peak since the
    // previous line holds at least what is allocated between steps.
    REQUIRE((j.contains("mem_allocated_mib") && j.contains("mem_reserved_mib") && j.contains("mem_peak_mib")));
    CHECK(j["mem_allocated_mib"].get<double>() > 0.1);
    CHECK(j["mem_reserved_mib"].get<double>() >= j["mem_allocated_mib"].get<double>());
    CHECK(j["mem_peak_mib"].get<double>() >= j["mem_allocated_mib"].get<double>());
    if (j["phase"] == "warmup") {
      ++warm_lines;
      CHECK((!j.contains("cons") && !j.contains("kept") && !j.contains("agree_teacher")));
      continue;
    }
    ++semi_lines;
    CHECK((j.contains("cons") && j.contains("kept")));
    CHECK(j["cons"].get<double>() >= 0);
    REQUIRE((j.contains("agree_teacher") && j.contains("acc_labeled")));
    CHECK((j["agree_teacher"].get<double>() >= 0 && j["agree_teacher"].get<double>() <= 1));
    CHECK((j["acc_labeled"].get<double>() > 0 && j["acc_labeled"].get<double>() <= 1));
  }
  CHECK(semi_lines == 4);
  CHECK(warm_lines == 2);
  {
    Trainer t(tiny(b, "c3"), false);
    TrainResult r = t.run(3);  // interrupted inside the semi phase's first epoch
    CHECK(r.interrupted);
    CHECK(r.steps_done == 3);
  }
  {
    Trainer t(tiny(b, "c3"), true);
    TrainResult r = t.run();
    CHECK(r.steps_done == 6);
  }
  const std::vector<double> resumed = losses(b);
  REQUIRE(resumed.size() == 6);
  // Same machine, same thread count: the same arithmetic, so equal to float printing precision.
  for (size_t i = 0; i < full.size(); ++i) CHECK_MESSAGE(resumed[i] == doctest::Approx(full[i]).epsilon(1e-6), "step ", i + 1);

  // Stopped exactly at the end of the warm-up (step 2): the checkpoint has no teacher yet; the
  // resumed run makes it from the restored student, as the uninterrupted run did.
  const std::string c = tmp_dir() + "/run_boundary";
  {
    Trainer t(tiny(c, "c3"), false);
    CHECK(t.run(2).interrupted);
  }
  {
    Trainer t(tiny(c, "c3"), true);
    CHECK(t.run().steps_done == 6);
  }
  const std::vector<double> at_boundary = losses(c);
  REQUIRE(at_boundary.size() == 6);
  for (size_t i = 0; i < full.size(); ++i)
    CHECK_MESSAGE(at_boundary[i] == doctest::Approx(full[i]).epsilon(1e-6), "step ", i + 1);
}

TEST_CASE("trainer: bad configs and a missing checkpoint are clear errors") {
  CHECK_THROWS_WITH_AS(Trainer(tiny(tmp_dir() + "/run_c", "c3"), true), doctest::Contains("--resume: no checkpoint"), Error);
  Config c = tiny(tmp_dir() + "/run_d", "c3");
  c.data.root = tmp_dir() + "/nothing-here";
  CHECK_THROWS_AS(Trainer(c, false), Error);
}

// Every other training image truncated, one label file deleted: an error naming the file by
// default; with data.skip_bad_samples the run trains, counts what it left out and says so.
TEST_CASE("trainer: data.skip_bad_samples skips and counts unreadable samples") {
  namespace fs = std::filesystem;
  const std::string root = tmp_dir() + "/bad_data";
  data::make_synthetic(root, 5, 12, 2, 64, 128);
  std::vector<std::string> images;
  for (const auto& e : fs::recursive_directory_iterator(root + "/leftImg8bit/train")) images.push_back(e.path());
  std::sort(images.begin(), images.end());
  images.erase(std::remove_if(images.begin(), images.end(), [](const std::string& p) { return p.size() < 4 || p.substr(p.size() - 4) != ".png"; }),
               images.end());
  REQUIRE(images.size() == 12);
  for (size_t i = 0; i < images.size(); i += 2) fs::resize_file(images[i], fs::file_size(images[i]) / 2);
  const std::string missing_label = data::cityscapes_sample_for(images[11]).label;
  fs::remove(missing_label);

  Config c = tiny(tmp_dir() + "/run_skip_err", "supervised");
  c.data.root = root;
  c.data.labeled_count = 11;
  // (the missing labelTrainIds file falls back to the labelIds name, also missing)
  CHECK_THROWS_WITH_AS(Trainer(c, false), doctest::Contains("synth_000011_gtFine_labelIds.png: label file not found"), Error);
  fs::copy_file(data::cityscapes_sample_for(images[10]).label, missing_label);  // only the truncated images are bad
  {
    Trainer t(c, false);
    CHECK_THROWS_WITH_AS(t.run(), doctest::Contains("_leftImg8bit.png"), Error);  // names the truncated file
  }
  fs::remove(missing_label);
  c.output.dir = tmp_dir() + "/run_skip";
  c.data.skip_bad_samples = true;
  Trainer t(c, false);
  TrainResult r = t.run();
  CHECK(r.steps_done == 6);
  int64_t skipped = -1;
  std::ifstream f(c.output.dir + "/metrics.jsonl");
  for (std::string line; std::getline(f, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("skipped_samples")) skipped = j["skipped_samples"].get<int64_t>();
  }
  CHECK(skipped >= 2);  // the missing label, and at least one truncated image among 12 draws
  std::ifstream s(c.output.dir + "/summary.md");
  const std::string summary((std::istreambuf_iterator<char>(s)), std::istreambuf_iterator<char>());
  CHECK(summary.find("Skipped samples (data.skip_bad_samples): " + std::to_string(skipped)) != std::string::npos);
  CHECK(summary.find("label file not found") != std::string::npos);
}

// --dump (what tools/torch_twin.py replays): the initial weights are the model's before any
// update, the labeled list reads back as the same subset, each step's file holds the batch
// bytes, the draws and the logged losses, and each state file is the checkpoint at that step.
TEST_CASE("trainer: --dump writes the initial weights, labeled list, each step's inputs and draws, and the states") {
  namespace fs = std::filesystem;
  const std::string out = tmp_dir() + "/run_dump", dump = tmp_dir() + "/dump";
  const Config cfg = tiny(out, "c3");
  {
    Trainer t(cfg, false);
    t.dump_steps(dump, 4);
    CHECK(t.run(4).interrupted);  // 2 warm-up steps, 2 semi steps; latest.safetensors at step 4
  }
  nn::SafetensorsFile init = nn::load_safetensors(dump + "/init.safetensors");
  nn::DeepLab fresh(cfg.model, cfg.train.seed);
  const auto want = fresh.state_dict();
  REQUIRE(init.tensors.size() == want.size());
  for (const auto& [name, t] : want) {
    const Tensor* got = init.find(name);
    REQUIRE_MESSAGE(got, name);
    CHECK_MESSAGE(same_values(*got, t), name);
  }
  // The list reads back as the run's subset.
  Config from_list = cfg;
  from_list.data.labeled_list = dump + "/labeled.txt";
  const RunData a = load_run_data(cfg), b = load_run_data(from_list);
  REQUIRE(a.labeled.size() == 8);
  REQUIRE(b.labeled.size() == a.labeled.size());
  for (size_t i = 0; i < a.labeled.size(); ++i) CHECK(fs::equivalent(a.labeled[i].image, b.labeled[i].image));
  CHECK(b.unlabeled.size() == a.unlabeled.size());
  CHECK(fs::exists(out + "/labeled.txt"));

  std::vector<double> logged = losses(out);
  REQUIRE(logged.size() == 4);
  for (int s = 0; s < 4; ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "/step_%06d.safetensors", s);
    nn::SafetensorsFile f = nn::load_safetensors(dump + name);
    const bool semi = s >= 2;
    CAPTURE(s);
    REQUIRE(f.find("x_l"));
    CHECK(f.find("x_l")->shape() == Shape{2, 32, 64, 3});
    CHECK(f.find("x_l")->dtype() == DType::u8);
    CHECK(f.find("y_l")->shape() == Shape{2, 32, 64});
    CHECK((f.find("u_s") != nullptr) == semi);
    CHECK((f.find("mix_order") != nullptr) == semi);
    CHECK(f.find("losses")->to_vector<double>()[0] == logged[size_t(s)]);  // the logged loss, to the bit
    CHECK(f.find("grad.backbone.conv1.weight") != nullptr);
    // layer4 of a 32x64 crop is 5x9 (ceil-mode max pool, output stride 8)
    const int64_t n = semi ? 4 : 2, rows = n * 5 * 9;
    REQUIRE(f.find("anchor_index"));
    for (int32_t i : f.find("anchor_index")->to_vector<int32_t>()) CHECK((i >= 0 && i < rows));
    if (semi) {
      auto order = f.find("mix_order")->to_vector<int32_t>();
      std::sort(order.begin(), order.end());
      CHECK(order == std::vector<int32_t>{0, 1, 2, 3});
      auto boxes = f.find("mix_boxes")->to_vector<int32_t>();
      REQUIRE(boxes.size() == 8);
      for (int k = 0; k < 2; ++k) CHECK(std::abs(boxes[size_t(4 * k + 2)] * boxes[size_t(4 * k + 3)] - 32 * 64 / 2) <= 32);
      CHECK(f.find("dcrs_thresholds")->numel() == 19);
    }
  }
  nn::SafetensorsFile state = nn::load_safetensors(dump + "/state_000004.safetensors"),
                      latest = nn::load_safetensors(out + "/latest.safetensors");
  REQUIRE(state.tensors.size() == latest.tensors.size());
  for (const auto& [name, t] : latest.tensors) CHECK_MESSAGE(same_values(*state.find(name), t), name);
  CHECK(state.metadata.at("optimizer_steps") == "4");
  CHECK(state.find("teacher.backbone.conv1.weight") != nullptr);
  CHECK(state.find("optim.head.0.exp_avg") != nullptr);

  {  // states only for the first step and around every 3rd: the gradients of step 3, the state before it
    const std::string dump_every = tmp_dir() + "/dump_every";
    Trainer t(tiny(tmp_dir() + "/run_dump_every", "c3"), false);
    t.dump_steps(dump_every, 4, 1, 3);
    CHECK(t.run(4).interrupted);
    for (int s = 0; s < 4; ++s) {
      char name[64];
      std::snprintf(name, sizeof name, "/step_%06d.safetensors", s);
      CHECK_MESSAGE((nn::load_safetensors(dump_every + name).find("grad.backbone.conv1.weight") != nullptr) ==
                        (s == 0 || s == 3),
                    "step ", s);
      std::snprintf(name, sizeof name, "/state_%06d.safetensors", s + 1);
      CHECK_MESSAGE(fs::exists(dump_every + name) == (s == 0 || s == 2), "state after step ", s);
    }
  }
  Trainer again(cfg, true);  // resumed: the dump needs step 0
  CHECK_THROWS_WITH_AS(again.dump_steps(dump, 2), doctest::Contains("cannot be used with --resume"), Error);
  Trainer fresh_run(tiny(tmp_dir() + "/run_dump2", "c3"), false);
  CHECK_THROWS_WITH_AS(fresh_run.dump_steps(dump, -1), doctest::Contains("--dump-steps must be >= 0"), Error);
}

// `c3semiseg eval` of a run's checkpoint scores the images the run evaluated on: with
// data.val_limit, the first val_limit val images (it used to take the whole val split).
TEST_CASE("trainer: evaluating a checkpoint gives the run's own last evaluation (data.val_limit included)") {
  const std::string out = tmp_dir() + "/run_eval";
  nlohmann::json j = config_json(tiny(out, "c3"));
  j["data"]["val_limit"] = 2;  // in the config the checkpoint records
  const Config cfg = parse_config(j);
  TrainResult r;
  {
    Trainer t(cfg, false);
    r = t.run();
  }
  REQUIRE(r.last.pixels == 2 * 64 * 128);
  Config loaded;
  const EvalResult e = evaluate_checkpoint(out + "/latest.safetensors", {}, false, loaded);
  CHECK(loaded.data.val_limit == 2);
  CHECK(e.plain.pixels == r.last.pixels);
  CHECK(e.plain.miou == doctest::Approx(r.last.miou).epsilon(1e-12));
  CHECK(e.plain.pixel_acc == doctest::Approx(r.last.pixel_acc).epsilon(1e-12));
  REQUIRE(e.star.iou.size() == 19);  // a C3 checkpoint: the "*" evaluation with its thresholds
  CHECK(e.star.miou == doctest::Approx(r.last_star.miou).epsilon(1e-12));
  {  // "*" against a host reference: a pixel counts when its confidence reaches its class's threshold
    Config c2;
    Tensor thr;
    auto model = model_from_checkpoint(out + "/latest.safetensors", {}, c2, &thr);
    REQUIRE(thr.numel() == 19);
    const std::vector<float> t = thr.to_vector<float>();
    RunData d;
    d.val = load_val_samples(c2);
    auto loader = make_val_loader(c2, d);
    std::vector<uint64_t> counts(19 * 19, 0);
    uint64_t kept = 0;
    NoGradGuard ng;
    model->eval();
    for (data::Batch b; loader->next(b);) {
      const std::vector<float> p = softmax(model->forward(to_input(b.images, b.size(), b.h, b.w, Device::cpu))).to_vector<float>();
      for (size_t i = 0; i < b.labels.size(); ++i) {
        const float* q = p.data() + i * 19;
        const int arg = int(std::max_element(q, q + 19) - q);
        if (b.labels[i] == 255 || q[arg] < t[size_t(arg)]) continue;
        ++counts[size_t(b.labels[i]) * 19 + size_t(arg)];
        ++kept;
      }
    }
    CHECK(kept > 0);
    CHECK(compute_iou(counts, 19).pixels == e.star.pixels);
    CHECK(compute_iou(counts, 19).miou == doctest::Approx(e.star.miou).epsilon(1e-12));
  }
  // Test-time inference: one window the size of the val images is the whole image; flipped
  // and multi-scale inference score the same pixels and differ in what they predict.
  InferOptions one;
  one.window_h = 64, one.window_w = 128, one.stride_h = 64, one.stride_w = 128;
  const EvalResult w = evaluate_checkpoint(out + "/latest.safetensors", {}, false, loaded, one);
  CHECK(w.plain.miou == doctest::Approx(r.last.miou).epsilon(1e-12));
  InferOptions aug;
  aug.scales = {0.75, 1.25};
  aug.flip = true;
  const EvalResult a = evaluate_checkpoint(out + "/latest.safetensors", {}, false, loaded, aug);
  CHECK(a.plain.pixels == r.last.pixels);
  CHECK(a.plain.miou != doctest::Approx(r.last.miou).epsilon(1e-9));
}

namespace {
// Rewrites a checkpoint without the tensors whose name starts with one of `drop`, and with
// metadata entries replaced.
void edit_checkpoint(const std::string& path, const std::vector<std::string>& drop,
                     const std::map<std::string, std::string>& meta = {}) {
  nn::SafetensorsFile f = nn::load_safetensors(path);
  std::vector<std::pair<std::string, Tensor>> kept;
  for (auto& [n, t] : f.tensors)
    if (std::none_of(drop.begin(), drop.end(), [&](const std::string& d) { return n.rfind(d, 0) == 0; }))
      kept.emplace_back(n, t);
  for (auto& [k, v] : meta) f.metadata[k] = v;
  nn::save_safetensors(path, kept, f.metadata);
}
std::vector<int64_t> logged_steps(const std::string& dir) {
  std::vector<int64_t> out;
  std::ifstream f(dir + "/metrics.jsonl");
  for (std::string line; std::getline(f, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(j["step"].get<int64_t>());
  }
  return out;
}
}  // namespace

// Each case crashed, or resumed from re-made state without a word, before.
TEST_CASE("trainer: resuming with nothing to train, or from an incomplete or damaged checkpoint") {
  const std::string dir = tmp_dir() + "/run_resume";
  const std::string latest = dir + "/latest.safetensors", saved = dir + "/saved.safetensors";
  {
    Trainer t(tiny(dir, "c3"), false);
    CHECK(t.run(3).interrupted);  // inside the semi phase: student, teacher, optimizer, DCRS
  }
  std::filesystem::copy_file(latest, saved);
  auto restore = [&] { std::filesystem::copy_file(saved, latest, std::filesystem::copy_options::overwrite_existing); };

  // Lowered train.epochs: the checkpoint (step 3) is past the end (2 steps).
  Config shorter = tiny(dir, "c3");
  shorter.train.epochs = 1;
  {
    Trainer t(shorter, true);
    TrainResult r = t.run();
    CHECK(r.nothing_to_train);
    CHECK(r.steps_done == 3);
    CHECK_FALSE(r.interrupted);
  }
  const std::vector<std::pair<std::vector<std::string>, std::string>> lacking = {
      {{"teacher."}, "lacks the teacher (teacher.*)"},
      {{"optim."}, "lacks the optimizer state (optim.*)"},
      {{"dcrs."}, "lacks the DCRS thresholds"},
      {{"teacher.", "optim."}, "lacks the optimizer state (optim.*), the teacher (teacher.*)"},
  };
  for (const auto& [drop, message] : lacking) {
    CAPTURE(message);
    restore();
    edit_checkpoint(latest, drop);
    CHECK_THROWS_WITH_AS(Trainer(tiny(dir, "c3"), true), doctest::Contains(message.c_str()), Error);
    CHECK_THROWS_WITH_AS(Trainer(tiny(dir, "c3"), true), doctest::Contains("--resume-partial"), Error);
  }
  restore();
  edit_checkpoint(latest, {"student."});
  CHECK_THROWS_WITH_AS(Trainer(tiny(dir, "c3"), true, true), doctest::Contains("lacks the student"), Error);
  // Metadata numbers are read strictly and their errors name the file and the key.
  const std::vector<std::pair<std::map<std::string, std::string>, std::string>> bad_meta = {
      {{{"step", "3abc"}}, "'step' must be a non-negative integer, got '3abc'"},
      {{{"step", "1e3"}}, "'step' must be a non-negative integer"},
      {{{"optimizer_steps", "-1"}}, "'optimizer_steps' must be a non-negative integer"},
      {{{"ema_updates", ""}}, "'ema_updates'"},
      {{{"best_step", "99999999999999999999"}}, "'best_step'"},
      {{{"best_miou", "abc"}}, "'best_miou' must be a number in [-1, 1], got 'abc'"},
      {{{"best_miou", "nan"}}, "'best_miou'"},
  };
  for (const auto& [meta, message] : bad_meta) {
    CAPTURE(message);
    restore();
    edit_checkpoint(latest, {}, meta);
    CHECK_THROWS_WITH_AS(Trainer(tiny(dir, "c3"), true), doctest::Contains(message.c_str()), Error);
    CHECK_THROWS_WITH_AS(Trainer(tiny(dir, "c3"), true), doctest::Contains(latest.c_str()), Error);
  }
  // --resume-partial starts the missing teacher afresh (a copy of the student) and trains on.
  restore();
  edit_checkpoint(latest, {"teacher."});
  {
    Trainer t(tiny(dir, "c3"), true, true);
    CHECK(t.run().steps_done == 6);
  }
}

// A kill between a checkpoint and the next log line, or during a checkpoint write, left
// duplicate metrics lines and a temporary file for ever.
TEST_CASE("trainer: a resume drops the metrics lines past its step and the stale temporary files") {
  const std::string dir = tmp_dir() + "/run_metrics";
  {
    Trainer t(tiny(dir, "c3"), false);
    CHECK(t.run(3).interrupted);
  }
  CHECK(logged_steps(dir) == std::vector<int64_t>{1, 2, 3});
  {
    std::ofstream m(dir + "/metrics.jsonl", std::ios::app);
    m << R"({"step":4,"loss":1.0})" << "\n" << R"({"step":5,"lo)";  // logged after the checkpoint, then cut
  }
  // pid 999999999 exceeds Linux's pid_max; pid 1 is always running.
  const std::string stale = dir + "/latest.safetensors.tmp.999999999", live = dir + "/other.safetensors.tmp.1";
  std::ofstream(stale) << "partial";
  std::ofstream(live) << "being written";
  {
    Trainer t(tiny(dir, "c3"), true);
    CHECK(t.run().steps_done == 6);
  }
  CHECK(logged_steps(dir) == std::vector<int64_t>{1, 2, 3, 4, 5, 6});
  CHECK_FALSE(exists(stale));
  CHECK(exists(live));  // its writer may still be writing
  std::remove(live.c_str());
}

// Without output.save_every_*, the checkpoint came only with evaluation (up to 249 steps lost
// to a kill with the Cityscapes configs).
TEST_CASE("trainer: output.save_every_steps writes the checkpoint between evaluations") {
  Config c = tiny(tmp_dir() + "/run_save", "supervised");
  {
    Trainer t(c, false);
    CHECK(t.run().saved_at == std::vector<int64_t>{6});  // the evaluation at the end only
  }
  c.output.save_every_steps = 2;
  {
    Trainer t(c, false);
    CHECK(t.run().saved_at == std::vector<int64_t>{2, 4, 6});
  }
  c.output.save_every_steps = 0;
  c.output.save_every_minutes = 1e-9;  // every step
  {
    Trainer t(c, false);
    CHECK(t.run().saved_at == std::vector<int64_t>{1, 2, 3, 4, 5, 6});
  }
  CHECK_THROWS_WITH_AS(load_config("", {"output.save_every_steps=-1"}), doctest::Contains("output.save_every_steps"), Error);
}

// The host reads a step's loss only every output.log_every steps: a loss that is no longer
// finite is found there (a device flag accumulates every step's), or before a checkpoint is
// written, and the run stops naming the steps; no checkpoint of the broken weights is written.
TEST_CASE("trainer: a loss that stops being finite ends the run naming the steps, before a checkpoint of it") {
  for (bool save_each_step : {false, true}) {
    CAPTURE(save_each_step);
    const std::string dir = tmp_dir() + "/run_nan" + std::to_string(save_each_step);
    Config c = tiny(dir, "supervised");
    // A pretrained backbone with a NaN weight: the loss is NaN from the first step.
    nn::DeepLab m(c.model, 1);
    auto entries = m.backbone->state_dict();
    Tensor w = entries[0].second.clone();
    std::vector<float> v = w.to_vector<float>();
    v[0] = NAN;
    entries[0].second = Tensor::from_vector(v, w.shape());
    const std::string nan_file = tmp_dir() + "/nan_backbone.safetensors";
    nn::save_safetensors(nan_file, entries);
    c.model.pretrained = nan_file;
    c.output.log_every = save_each_step ? 100 : 2;
    c.output.save_every_steps = save_each_step ? 1 : 0;
    Trainer t(c, false);
    std::string err;
    try {
      t.run();
    } catch (const Error& e) {
      err = e.what();
    }
    CHECK_MESSAGE(err.find("loss is not finite at a step from 0 to ") != std::string::npos, err);
    CHECK_MESSAGE(err.find("no checkpoint was written") != std::string::npos, err);
    CHECK_FALSE(exists(dir + "/latest.safetensors"));  // the broken weights were not saved
    if (save_each_step) CHECK_MESSAGE(err.find("found before writing a checkpoint") != std::string::npos, err);
    else CHECK_MESSAGE(err.find("to 1 (read every output.log_every steps)") != std::string::npos, err);
  }
}

// A checkpoint whose config metadata nests 10^5 levels deep overflowed the stack in eval and
// predict (the merge recursed); a config that is not JSON threw nlohmann's own exception.
TEST_CASE("trainer: a checkpoint's config metadata, deeply nested or not JSON, is an error naming the file") {
  const std::string path = tmp_dir() + "/deep.safetensors";
  std::vector<std::pair<std::string, Tensor>> none = {{"student.x", Tensor::zeros({1})}};
  nn::save_safetensors(path, none, {{"config", "{\"model\": " + std::string(100000, '[') + std::string(100000, ']') + "}"}});
  Config cfg;
  CHECK_THROWS_WITH_AS(model_from_checkpoint(path, {}, cfg, nullptr, false),
                       doctest::Contains((path + ": the config in its metadata: JSON nested deeper than").c_str()), Error);
  nn::save_safetensors(path, none, {{"config", "{not json"}});
  CHECK_THROWS_WITH_AS(model_from_checkpoint(path, {}, cfg, nullptr, false),
                       doctest::Contains((path + ": the config in its metadata is not valid JSON").c_str()), Error);
}
