// c3semiseg: the command-line tool. Subcommands: train, eval, predict, make-synthetic,
// check-data, run (the embedded default: synthetic data + a small model), compare.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cmath>
#include <limits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "core/dist.h"
#include "core/file.h"
#include "core/parse.h"
#include "data/dataset.h"
#include "data/image_io.h"
#include "data/synthetic.h"
#include "kernels/cpu/blas.h"
#include "nn/safetensors.h"
#include "semiseg/curves.h"
#include "semiseg/eval.h"
#include "semiseg/ops_cutmix.h"
#include "semiseg/trainer.h"

using namespace c3;
using namespace c3::semiseg;

namespace {

const char* kUsage = R"(c3semiseg: C3-SemiSeg semi-supervised semantic segmentation

usage: c3semiseg <command> [options]      (c3semiseg <command> --help for details)

commands:
  train           train (C3 or the supervised baseline) from a JSON config
  eval            evaluate a checkpoint on the val set: per-class IoU, plain and DCRS "*"
  predict         colourised predictions of one or more checkpoints for a folder of images
  make-synthetic  write the synthetic street-scene dataset (Cityscapes layout)
  check-data      scan a dataset for missing, unreadable or inconsistent files
  show-batch      a picture of one augmented batch: weak view, strong view, label, CutMix box
  run             the embedded default: synthetic data, a small model, C3, per-class table
  compare         run the supervised baseline and C3 with the same schedule; both tables
  plot            training curves of one or more run folders in one SVG picture
  config          every config key with its default and doc (--list), or a merged config
)";

struct Args {
  std::vector<std::string> positional, sets;
  std::string config, out, checkpoint, dump;
  int64_t dump_steps = 0, dump_state_steps = -1, dump_state_every = 0, stop_after = -1;
  std::vector<std::string> checkpoints;
  bool resume = false, partial_resume = false, help = false, teacher = false, list = false;
  uint64_t seed = 0;
  int n_train = 1000, n_val = 200, classes = 19;
  float lighting = 1.f, rare = 0.f, colour = 0.f;
  InferOptions infer;  // eval and predict: --window HxW --stride HxW --scales a,b,c --flip
};

// A whole-number option value in [lo, hi]; anything else ("3abc", "1e3", "-1", "") is an
// error naming the option.
int64_t int_option(const std::string& opt, const std::string& v, int64_t lo, int64_t hi) {
  return count_in(opt, v, lo, hi);
}
double number_option(const std::string& opt, const std::string& v, double lo, double hi) {
  return number_in(opt, v, lo, hi);
}

Args parse(int argc, char** argv, int first) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string s = argv[i];
    auto value = [&]() -> std::string {
      C3_CHECK(i + 1 < argc, s, " needs a value");
      return argv[++i];
    };
    if (s == "--help" || s == "-h") a.help = true;
    else if (s == "--config") a.config = value();
    else if (s == "--set") a.sets.push_back(value());
    else if (s == "--resume") a.resume = true;
    else if (s == "--resume-partial") a.resume = a.partial_resume = true;
    else if (s == "--teacher") a.teacher = true;
    else if (s == "--list") a.list = true;
    else if (s == "--window") parse_window(s, value(), a.infer.window_h, a.infer.window_w);
    else if (s == "--stride") parse_window(s, value(), a.infer.stride_h, a.infer.stride_w);
    else if (s == "--scales") a.infer.scales = parse_scales(value());
    else if (s == "--flip") a.infer.flip = true;
    else if (s == "--out") a.out = value();
    else if (s == "--dump") a.dump = value();
    else if (s == "--dump-steps") a.dump_steps = int_option(s, value(), 0, int64_t(1e9));
    else if (s == "--dump-state-steps") a.dump_state_steps = int_option(s, value(), 0, int64_t(1e9));
    else if (s == "--dump-state-every") a.dump_state_every = int_option(s, value(), 1, int64_t(1e9));
    else if (s == "--stop-after") a.stop_after = int_option(s, value(), 1, int64_t(1e12));
    else if (s == "--checkpoint") a.checkpoints.push_back(value());
    else if (s == "--seed") a.seed = uint64_t(int_option(s, value(), 0, std::numeric_limits<int64_t>::max()));
    else if (s == "--train") a.n_train = int(int_option(s, value(), 1, 1000000));
    else if (s == "--val") a.n_val = int(int_option(s, value(), 1, 1000000));
    else if (s == "--classes") a.classes = int(int_option(s, value(), 2, 254));
    else if (s == "--lighting") a.lighting = float(number_option(s, value(), 0, 1));
    else if (s == "--rare") a.rare = float(number_option(s, value(), 0, 1));
    else if (s == "--colour") a.colour = float(number_option(s, value(), 0, 1));
    else if (s.rfind("--", 0) == 0) throw Error("unknown option " + s + " (see --help)");
    else a.positional.push_back(s);
  }
  if (!a.checkpoints.empty()) a.checkpoint = a.checkpoints[0];
  // --window without --stride: windows a third apart, overlapping by two thirds (mmseg's
  // Cityscapes configs: 512x1024 windows every 341 pixels).
  if (a.infer.window_h > 0 && a.infer.stride_h == 0)
    a.infer.stride_h = std::max(1, a.infer.window_h * 2 / 3), a.infer.stride_w = std::max(1, a.infer.window_w * 2 / 3);
  C3_CHECK(a.infer.window_h > 0 || a.infer.stride_h == 0, "--stride needs --window");
  check_infer_options(a.infer);
  return a;
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

void print_final(const Config& cfg, const TrainResult& r) {
  if (!c3::dist::is_main()) return;  // data-parallel: rank 0 prints
  const auto& names = class_names(int(cfg.model.num_classes));
  std::vector<std::pair<std::string, IoUResult>> rows = {{"last", r.last}};
  if (!r.last_star.iou.empty()) rows.push_back({"last*", r.last_star});
  std::printf("\nper-class IoU (%%) on the val set, run folder %s:\n%s", r.run_dir.c_str(),
              iou_table_terminal(names, rows).c_str());
}

int cmd_train(const Args& a) {
  if (a.help) {
    std::printf(R"(usage: c3semiseg train [--config FILE] [--set section.key=value ...] [--resume | --resume-partial]
                       [--stop-after STEP] [--dump DIR [--dump-steps N]]

Trains as the config says (defaults: the reference protocol, METHOD.md). Writes the run folder
(output.dir): config.json, labeled.txt, metrics.jsonl, latest/best checkpoints, eval tables,
pictures. Ctrl-C or SIGTERM saves a checkpoint and exits; --resume continues from output.dir.
--resume-partial also resumes from a checkpoint that lacks the optimizer, the teacher or the
DCRS thresholds, starting those afresh (plain --resume refuses, naming what is missing).
--stop-after STEP stops after that step as Ctrl-C would (for a job with a time limit).

--dump DIR writes the student's initial weights (DIR/init.safetensors) and the labeled list;
with --dump-steps N also each of the first N steps' inputs, random draws, losses, gradients and
the state after it (--dump-state-steps K: gradients and states for the first K steps only;
--dump-state-every N: also the gradients of every N-th step and the state before it), for
tools/torch_twin.py to replay (make twin-lockstep; torch_twin.py replay DIR).
)");
    return 0;
  }
  C3_CHECK((a.dump_steps == 0 && a.dump_state_steps < 0 && a.dump_state_every == 0) || !a.dump.empty(),
           "--dump-steps, --dump-state-steps and --dump-state-every need --dump DIR");
  Config cfg = load_config(a.config, a.sets);
  Trainer t(cfg, a.resume, a.partial_resume);
  if (!a.dump.empty()) t.dump_steps(a.dump, a.dump_steps, a.dump_state_steps, a.dump_state_every);
  TrainResult r = t.run(a.stop_after);
  if (r.interrupted) return 130;
  if (r.nothing_to_train) return 0;
  print_final(cfg, r);
  return 0;
}

int cmd_eval(const Args& a) {
  if (a.help || a.checkpoint.empty()) {
    std::printf(R"(usage: c3semiseg eval --checkpoint FILE [--teacher] [--set section.key=value ...]
                      [--window HxW [--stride HxW]] [--scales S1,S2,...] [--flip]

Evaluates the student (or with --teacher the EMA teacher) of a checkpoint on the val set of
its config, the images its training evaluated on (data.val_limit included; override with --set,
e.g. --set data.root=/data/cityscapes --set data.val_limit=0). Prints per-class IoU,
plain and DCRS-masked ("*"), and writes <checkpoint>_eval.md / .csv (_teacher_eval with --teacher).

Test-time inference as in mmsegmentation (default: the whole image, one scale):
  --window HxW    sliding windows of HxW pixels, logits averaged where they overlap
  --stride HxW    window step (default two thirds of the window)
  --scales a,b,c  the image resized by each factor, probabilities averaged at its size
  --flip          also the mirrored image
)");
    return a.help ? 0 : 2;
  }
  Config cfg;
  const EvalResult r = evaluate_checkpoint(a.checkpoint, a.sets, a.teacher, cfg, a.infer);
  if (!c3::dist::is_main()) return 0;  // rank 0 prints and writes the tables
  if (!a.infer.whole_image_only()) std::printf("inference: %s\n", a.infer.describe().c_str());
  std::vector<std::pair<std::string, IoUResult>> rows = {{a.teacher ? "teacher" : "model", r.plain}};
  if (!r.star.iou.empty()) rows.push_back({a.teacher ? "teacher*" : "model*", r.star});
  const auto& names = class_names(int(cfg.model.num_classes));
  std::printf("%s", iou_table_terminal(names, rows).c_str());
  const std::string base = a.checkpoint.substr(0, a.checkpoint.find_last_of('.')) + (a.teacher ? "_teacher" : "");
  std::ofstream(base + "_eval.md") << (a.infer.whole_image_only() ? "" : "Inference: " + a.infer.describe() + "\n\n")
                                    << iou_table_markdown(names, rows);
  std::ofstream(base + "_eval.csv") << iou_table_csv(names, rows);
  return 0;
}

int cmd_predict(const Args& a) {
  if (a.help || a.checkpoints.empty() || a.positional.empty() || a.out.empty()) {
    std::printf(R"(usage: c3semiseg predict --checkpoint A [--checkpoint B ...] --out DIR IMAGE_OR_LIST...
                         [--window HxW [--stride HxW]] [--scales S1,S2,...] [--flip]

Writes, for each image, DIR/<name>_pred.png: the image, then each checkpoint's colourised
prediction side by side (the layout of the paper's qualitative figure). With a ground truth
next to a Cityscapes image, it is drawn after the image. Arguments may be image files or
text files listing one image path per line. --window HxW [--stride HxW], --scales a,b,c and
--flip choose the test-time inference as in `c3semiseg eval`.
)");
    return a.help ? 0 : 2;
  }
  std::vector<std::unique_ptr<nn::DeepLab>> models;
  Device dev = Device::cuda;
  Precision precision = Precision::tf32;
  for (const auto& c : a.checkpoints) {
    Config cfg;
    models.push_back(model_from_checkpoint(c, a.sets, cfg, nullptr));
    if (device_for(cfg.train) == Device::cpu) dev = Device::cpu;  // one device for all
    apply_numerics(cfg.train);  // the last checkpoint's settings
    precision = cfg.train.precision;
  }
  for (auto& m : models) m->to(dev);
  std::vector<std::string> images;
  for (const auto& p : a.positional) {
    if (p.size() > 4 && p.substr(p.size() - 4) == ".txt") {
      std::ifstream f(p);
      C3_CHECK(f, p, ": cannot open");
      for (std::string line; std::getline(f, line);)
        if (!line.empty() && line[0] != '#') images.push_back(line);
    } else {
      images.push_back(p);
    }
  }
  make_dirs(a.out);
  for (const auto& path : images) {
    data::Image img = data::read_image(path);
    std::vector<data::Image> row{img};
    data::Sample s = data::cityscapes_sample_for(path);
    if (!s.label.empty() && exists(s.label)) row.push_back(data::colorize(data::load_label_train_ids(s)));
    for (auto& m : models) {
      InferOptions infer = a.infer;
      infer.precision = precision;
      Prediction p = predict_image(*m, img, dev, infer);
      row.push_back(label_image(p.label, p.h, p.w));
    }
    std::string name = path.substr(path.find_last_of('/') + 1);
    name = name.substr(0, name.find_last_of('.'));
    const std::string out = a.out + "/" + name + "_pred.png";
    data::write_png(out, tile_grid({row}));
    std::printf("%s\n", out.c_str());
  }
  return 0;
}

int cmd_make_synthetic(const Args& a) {
  if (a.help || a.out.empty()) {
    std::printf(R"(usage: c3semiseg make-synthetic --out DIR [--seed S] [--train N] [--val N] [--lighting L]
                                [--rare R] [--colour C]

Writes synthetic street scenes (128x256) in the Cityscapes layout under DIR, with trainId
labels; the same seed gives the same bytes. --lighting (0 to 1, default 1) scales how much
exposure, colour cast and haze vary from scene to scene (0: every scene lit alike). --rare
(0 to 1, default 0) adds six rare classes (wall, fence, rider, truck, bus, bicycle), each in
15-30%% of the scenes at 1, into the scene made without them. --colour (0 to 1, default 0)
gives each scene its own colour rendition (at 1: any hue rotation, saturation x 0.5-1.5,
contrast and brightness x 0.6-1.4), as different cameras would.
)");
    return a.help ? 0 : 2;
  }
  data::make_synthetic(a.out, a.seed, a.n_train, a.n_val, 128, 256, a.lighting, a.rare, a.colour);
  std::printf("wrote %d train and %d val images to %s\n", a.n_train, a.n_val, a.out.c_str());
  return 0;
}

int cmd_check_data(const Args& a) {
  if (a.help || a.positional.empty()) {
    std::printf(R"(usage: c3semiseg check-data ROOT [SPLIT_OR_LIST ...] [--classes 19]

Scans a Cityscapes-layout dataset (splits train and val by default), or split list files,
and reports missing files (labels included), unreadable images, image/label size mismatches,
label values that are neither a class nor 255 and images listed twice, with counts and the
first offending files. Exits 1 when there is any problem or no sample at all.
)");
    return a.help ? 0 : 2;
  }
  const std::string root = a.positional[0];
  std::vector<std::string> what(a.positional.begin() + 1, a.positional.end());
  if (what.empty()) what = {"train", "val"};
  bool ok = true;
  for (const auto& w : what) {
    data::LoadOptions lo;
    lo.on_missing = data::OnMissing::skip;  // listed, counted and reported, as training would fail on them
    data::LoadStats listing;
    std::vector<data::Sample> s =
        exists(w) ? data::load_split_list(w, root, lo, &listing) : data::load_cityscapes(root, w, lo, &listing);
    data::CheckReport r = data::check_dataset(s, a.classes, &listing);
    std::cout << "== " << w << "\n";
    data::print_report(std::cout, r);
    ok &= r.ok();
  }
  return ok ? 0 : 1;
}

int cmd_show_batch(const Args& a) {
  if (a.help || a.out.empty()) {
    std::printf(R"(usage: c3semiseg show-batch --out FILE.png [--config FILE] [--set section.key=value ...]

Draws one batch of the training pipeline of the config (default: the synthetic data): per
sample, the weak view, the strong view, the label, and a CutMix mix of the strong view with
the next sample (the box outlined in white).
)");
    return a.help ? 0 : 2;
  }
  std::vector<std::string> sets = {"data.root=datasets/synthetic-colour", "data.base_size=[128,256]", "data.crop=[96,192]"};
  sets.insert(sets.end(), a.sets.begin(), a.sets.end());
  Config cfg = load_config(a.config, a.config.empty() ? sets : a.sets);
  RunData d = load_run_data(cfg);
  make_unlabeled_loader(cfg, d, 0);  // weak + strong views
  data::LoaderConfig lc = d.unlabeled_loader->config();
  lc.dataset_size = d.labeled.size();
  lc.labels = true;
  auto lab = d.labeled;
  data::Loader loader(lc, [lab](size_t i) { return data::load_sample(lab[i]); });
  data::Batch b;
  C3_CHECK(loader.next(b), "the loader produced no batch");
  Generator gen(cfg.train.seed);
  const int64_t hw = int64_t(b.h) * b.w;
  std::vector<std::vector<data::Image>> rows;
  for (int64_t k = 0; k < b.size(); ++k) {
    data::Image weak(b.h, b.w, 3), strong(b.h, b.w, 3), other(b.h, b.w, 3), label(b.h, b.w, 1);
    std::copy_n(b.images.begin() + k * hw * 3, hw * 3, weak.px.begin());
    std::copy_n(b.strong.begin() + k * hw * 3, hw * 3, strong.px.begin());
    std::copy_n(b.strong.begin() + ((k + 1) % b.size()) * hw * 3, hw * 3, other.px.begin());
    std::copy_n(b.labels.begin() + k * hw, hw, label.px.begin());
    data::Box box = cutmix_box(gen, b.h, b.w);
    data::Image mixed = strong;  // the other image's box pasted in, outlined
    for (int y = box.y0; y < box.y0 + box.h; ++y)
      for (int x = box.x0; x < box.x0 + box.w; ++x) {
        const bool edge = y == box.y0 || x == box.x0 || y == box.y0 + box.h - 1 || x == box.x0 + box.w - 1;
        for (int c = 0; c < 3; ++c) mixed.at(y, x)[c] = edge ? 255 : other.at(y, x)[c];
      }
    rows.push_back({weak, strong, data::colorize(label), mixed});
  }
  data::write_png(a.out, tile_grid(rows));
  std::printf("%s: %lld samples (weak | strong | label | CutMix)\n", a.out.c_str(), (long long)b.size());
  return 0;
}

// The embedded default's data (configs/synthetic.json): the scenes with per-scene colour.
void ensure_synthetic() {
  if (exists("datasets/synthetic-colour/leftImg8bit/val")) return;
  std::printf("generating the synthetic dataset in datasets/synthetic-colour ...\n");
  make_dirs("datasets");
  data::make_synthetic("datasets/synthetic-colour", 0, 1000, 200, 128, 256, 1.f, 0.f, 1.f);
}

int cmd_run(const Args& a) {
  if (a.help) {
    std::printf("usage: c3semiseg run [--set section.key=value ...]\n\nGenerates the synthetic dataset if absent, "
                "trains C3 with configs/synthetic.json and prints the per-class IoU table.\n");
    return 0;
  }
  ensure_synthetic();
  // configs/synthetic.json asks for one thread so that `compare` can train its two runs side
  // by side; alone, `run` uses every core unless the user chose a thread count.
  std::vector<std::string> sets = {"train.threads=0"};
  sets.insert(sets.end(), a.sets.begin(), a.sets.end());
  Config cfg = default_run_config("c3", sets);
  Trainer t(cfg, false);
  TrainResult r = t.run();
  if (r.interrupted) return 130;
  print_final(cfg, r);
  return 0;
}

// Trains the baseline in a child process (output to <run>/train.log); returns its pid.
pid_t train_in_child(const Config& cfg) {
  make_dirs(cfg.output.dir);
  const std::string log = cfg.output.dir + "/train.log";
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  C3_CHECK(pid >= 0, "compare: fork failed");
  if (pid > 0) return pid;
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) ::dup2(fd, STDOUT_FILENO), ::dup2(fd, STDERR_FILENO);
  int code = 1;
  try {
    Trainer t(cfg, false);
    code = t.run().interrupted ? 130 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  }
  std::fflush(stdout);
  std::_Exit(code);
}

// The last evaluation of a finished run, from its latest checkpoint.
IoUResult evaluate_latest(const Config& run, const std::vector<std::string>& sets) {
  Config cfg;
  return evaluate_checkpoint(run.output.dir + "/latest.safetensors", sets, false, cfg).plain;
}

int cmd_plot(const Args& a) {
  if (a.help || a.positional.empty() || a.out.empty()) {
    std::printf(R"(usage: c3semiseg plot RUN [RUN ...] --out FILE.svg

Draws the training curves of run folders (their metrics.jsonl) in one SVG picture, the runs
overlaid: each loss term, the learning rates, val mIoU and mIoU*, the kept fraction and the
teacher agreement; for one run also the DCRS threshold and kept fraction per class (what
the run folder's own curves.svg shows, rewritten at each evaluation).
)");
    return a.help ? 0 : 2;
  }
  write_curves(a.positional, a.out);
  std::printf("wrote %s (%zu run%s)\n", a.out.c_str(), a.positional.size(), a.positional.size() == 1 ? "" : "s");
  return 0;
}

int cmd_compare(const Args& a) {
  if (a.help) {
    std::printf("usage: c3semiseg compare [--set section.key=value ...]\n\nTrains the supervised-only baseline and "
                "C3 on the synthetic data with the same schedule and labels; prints both tables side by side.\n"
                "With train.threads=1 (configs/synthetic.json) and two or more cores, the baseline trains in a\n"
                "second process beside C3 (its output in runs/synthetic_supervised/train.log). With --set\n"
                "output.dir=D the runs go to D_supervised and D_c3.\n");
    return 0;
  }
  ensure_synthetic();
  const auto [sup, c3] = compare_run_configs(a.sets);
  const bool side_by_side = sup.train.threads == 1 && std::thread::hardware_concurrency() >= 2 &&
                            device_for(sup.train) == Device::cpu;
  std::vector<std::pair<std::string, IoUResult>> rows;
  if (side_by_side) {
    const pid_t pid = train_in_child(sup);
    std::printf("supervised baseline: training in a second process (pid %d), log %s/train.log\n", int(pid),
                sup.output.dir.c_str());
    Trainer t(c3, false);
    TrainResult r = t.run();
    int status = 0;
    if (r.interrupted) ::kill(pid, SIGTERM);
    ::waitpid(pid, &status, 0);
    if (r.interrupted) return 130;
    C3_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "compare: the supervised baseline failed; see ",
             sup.output.dir, "/train.log");
    rows.push_back({"supervised", evaluate_latest(sup, a.sets)});
    rows.push_back({"c3", r.last});
  } else {
    for (const Config* cfg : {&sup, &c3}) {
      Trainer t(*cfg, false);
      TrainResult r = t.run();
      if (r.interrupted) return 130;
      rows.push_back({cfg == &sup ? "supervised" : "c3", r.last});
    }
  }
  const auto& names = class_names(int(c3.model.num_classes));
  std::printf("\nper-class IoU (%%), synthetic val set, same schedule and labels:\n%s",
              iou_table_terminal(names, rows).c_str());
  make_dirs("runs");
  std::ofstream("runs/compare.md") << iou_table_markdown(names, rows);
  write_curves({sup.output.dir, c3.output.dir}, "runs/compare.svg");
  std::printf("table written to runs/compare.md, curves of both runs to runs/compare.svg\n");
  const double gap = 100.0 * (rows[1].second.miou - rows[0].second.miou);
  std::printf("C3 - supervised: %+.1f mIoU%s\n", gap,
              gap > 0 ? "" : " (on this synthetic set C3 is not yet ahead of the baseline; see bench/results/measured.md)");
  return 0;
}

}  // namespace

int cmd_config(const Args& a) {
  if (a.help || !a.positional.empty()) {
    std::printf(R"(usage: c3semiseg config --list
       c3semiseg config [--config FILE] [--set section.key=value ...]

--list: every config key, its default, its allowed values and what it does.
Otherwise: the complete config that `train` would run with these options (the defaults with
the file and the overrides merged onto them, every value checked), as JSON.
)");
    return a.help ? 0 : 2;
  }
  if (a.list) {
    C3_CHECK(a.config.empty() && a.sets.empty(), "config --list lists the defaults; it takes no --config or --set");
    std::printf("%s", config_list().c_str());
    return 0;
  }
  std::printf("%s\n", config_json(load_config(a.config, a.sets)).dump(2).c_str());
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::printf("%s", kUsage);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  c3::dist::init();  // under mpirun: MPI, and this rank's GPU, before anything touches CUDA
  try {
    Args a = parse(argc, argv, 2);
    // Under mpirun only train and eval split their work over the ranks; the other commands
    // would each do all of it and write the same files at once.
    if (c3::dist::world_size() > 1 && cmd != "train" && cmd != "eval" && !a.help)
      throw c3::Error("c3semiseg " + cmd + " runs in one process: start it without mpirun (world size " +
                      std::to_string(c3::dist::world_size()) + "; only train and eval are data-parallel)");
    if (cmd == "train") return cmd_train(a);
    if (cmd == "eval") return cmd_eval(a);
    if (cmd == "predict") return cmd_predict(a);
    if (cmd == "make-synthetic") return cmd_make_synthetic(a);
    if (cmd == "check-data") return cmd_check_data(a);
    if (cmd == "run") return cmd_run(a);
    if (cmd == "show-batch") return cmd_show_batch(a);
    if (cmd == "compare") return cmd_compare(a);
    if (cmd == "plot") return cmd_plot(a);
    if (cmd == "config") return cmd_config(a);
    std::fprintf(stderr, "c3semiseg: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
    return 2;
  } catch (const std::exception& e) {
    // Data-parallel: the other ranks may wait in a collective; MPI_Abort ends them all.
    if (c3::dist::world_size() > 1) c3::dist::abort("c3semiseg " + cmd + ": error: " + e.what());
    std::fprintf(stderr, "\nc3semiseg %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}
