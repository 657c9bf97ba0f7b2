#include "semiseg/trainer.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/alloc.h"
#include "core/deferred_checks.h"
#include "core/dist.h"
#include "core/file.h"
#include "core/parse.h"
#include "core/ops.h"
#include "data/image_io.h"
#include "kernels/cpu/blas.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "semiseg/curves.h"
#include "semiseg/eval.h"

namespace c3::semiseg {

volatile std::sig_atomic_t g_stop_signal = 0;
namespace {
void on_signal(int sig) { g_stop_signal = sig; }
using Clock = std::chrono::steady_clock;

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}
// A kill during a checkpoint write leaves NAME.safetensors.tmp.PID.N (or, from older
// versions, .tmp.PID) behind (the rename never came): remove those whose writer is no longer
// running.
void remove_stale_temporaries(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const size_t at = name.find(".safetensors.tmp.");
    if (at == std::string::npos) continue;
    std::string pid = name.substr(at + 17);
    pid = pid.substr(0, pid.find('.'));
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos || pid.size() > 9) continue;
    if (::kill(pid_t(std::stol(pid)), 0) == 0 || errno != ESRCH) continue;  // still being written
    std::filesystem::remove(e.path(), ec);
    if (!ec) std::printf("removed %s (left by an interrupted checkpoint write)\n", e.path().c_str());
  }
}
// metrics.jsonl keeps the lines up to `step`: after a resume the steps past the checkpoint are
// trained again and logged again, once.
void truncate_metrics(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  bool dropped = false;
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("step") && j["step"].is_number_integer() &&
        j["step"].get<int64_t>() <= step) {
      kept += line + "\n";
    } else {
      dropped = true;  // a later step, or a line cut by a kill
    }
  }
  if (dropped) write_file_atomic(path, kept);
}
std::string fmt_time(double s) {
  char b[32];
  const int h = int(s / 3600), m = int(s / 60) % 60, sec = int(s) % 60;
  if (h) std::snprintf(b, sizeof b, "%dh%02dm", h, m);
  else std::snprintf(b, sizeof b, "%dm%02ds", m, sec);
  return b;
}
std::vector<std::pair<std::string, Tensor>> prefixed(const std::string& p, std::vector<std::pair<std::string, Tensor>> v) {
  for (auto& e : v) e.first = p + e.first;
  return v;
}
}  // namespace

void install_stop_handlers() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  // mpirun forwards SIGUSR1 to every rank and lets the job run on (on SIGINT/SIGTERM it kills
  // the ranks about a second later): the way to stop a data-parallel run with a checkpoint.
  std::signal(SIGUSR1, on_signal);
}

Trainer::Trainer(Config cfg, bool resume, bool partial_resume)
    : cfg_(std::move(cfg)), device_((dist::init(), device_for(cfg_.train))), dir_(cfg_.output.dir), comm_(dist::Comm::world()),
      main_(comm_.is_main()) {
  const int world = comm_.size();
  C3_CHECK(cfg_.train.batch_labeled % world == 0 && (cfg_.train.mode == TrainMode::supervised || cfg_.train.batch_unlabeled % world == 0),
           "train.batch_labeled (", cfg_.train.batch_labeled, ") and train.batch_unlabeled (", cfg_.train.batch_unlabeled,
           ") are the global batch: each must divide by the ", world, " ranks");
  warm_ = cfg_.train.mode == TrainMode::c3 ? std::min(cfg_.train.total_steps(), cfg_.train.warmup_epochs * cfg_.train.steps_per_epoch)
                                          : cfg_.train.total_steps();
  tty_ = ::isatty(STDOUT_FILENO);
  if (main_) make_dirs(dir_ + "/vis");
  if (cfg_.train.threads > 0) kernels::cpu::set_threads(cfg_.train.threads);
  apply_numerics(cfg_.train);
  data_ = load_run_data(cfg_);
  student_ = std::make_unique<nn::DeepLab>(cfg_.model, cfg_.train.seed);
  if (!cfg_.model.pretrained.empty()) student_->backbone->load_pretrained(cfg_.model.pretrained);
  student_->to(device_);
  student_->pack_parameters();  // one buffer each for parameters, gradients, buffers (nn/module.h)
  if (cfg_.model.sync_bn) nn::set_sync_batch_norm(*student_, comm_);
  std::vector<nn::ParamGroup> groups = {{"backbone", student_->backbone_parameters(), cfg_.train.lr_backbone, cfg_.train.weight_decay},
                                        {"head", student_->head_parameters(), cfg_.train.lr_head, cfg_.train.weight_decay}};
  if (cfg_.train.optimizer == Optimizer::adam) opt_ = std::make_unique<nn::Adam>(groups);
  else opt_ = std::make_unique<nn::SGD>(groups, cfg_.train.momentum);
  step_ = std::make_unique<C3Step>(cfg_, device_, comm_);
  const std::string latest = dir_ + "/latest.safetensors";
  if (resume) {
    C3_CHECK(exists(latest), "--resume: no checkpoint at ", latest);
    start_step_ = load_checkpoint(latest, partial_resume);
    if (main_) std::printf("resumed from %s at step %lld\n", latest.c_str(), (long long)start_step_);
  }
  sync_from_rank0();
  if (!main_) return;  // what follows prints and writes files: rank 0 only
  remove_stale_temporaries(dir_);
  truncate_metrics(dir_ + "/metrics.jsonl", start_step_);
  std::ofstream(dir_ + "/config.json") << config_json(cfg_).dump(2) << "\n";
  write_labeled_list(dir_ + "/labeled.txt");
  if (world > 1) std::printf("data-parallel: %d ranks, %d + %d images per rank and step\n", world,
                             cfg_.train.batch_labeled / world, cfg_.train.batch_unlabeled / world);
  std::printf("run folder %s | device %s | %zu labeled, %zu unlabeled, %zu val images | %lld parameters\n",
              dir_.c_str(), device_name(device_), data_.labeled.size(), data_.unlabeled.size(), data_.val.size(),
              (long long)student_->num_parameters());
  if (data_.listing.skipped)
    std::printf("data.skip_bad_samples: %lld samples left out while listing (first: %s)\n",
                (long long)data_.listing.skipped, data_.listing.examples[0].c_str());
}

Trainer::~Trainer() = default;

// Under data.skip_bad_samples, what was left out (also printed at the end of the run).
static std::string skip_report(const RunData& d) {
  if (d.skipped() == 0) return "";
  std::string r = "\nSkipped samples (data.skip_bad_samples): " + std::to_string(d.skipped()) + "; the first:\n";
  for (const auto& e : d.skip_examples()) r += "- " + e + "\n";
  std::printf("%s", r.c_str());
  return r;
}

void Trainer::start_semi_phase() {
  // The teacher starts as a copy of the student (METHOD.md), then follows it by EMA.
  teacher_ = std::make_unique<nn::DeepLab>(cfg_.model, cfg_.train.seed);
  teacher_->to(device_);
  teacher_->pack_parameters();  // the EMA is then one launch over the two models' arenas
  teacher_->copy_from(*student_);  // device to device
  teacher_->eval();
  for (const nn::NamedTensor& p : teacher_->named_parameters()) *p.tensor = p.tensor->detach();
  ema_updates_ = 0;
  step_->reset_thresholds();
}

void Trainer::sync_from_rank0() {
  if (comm_.size() == 1) return;
  std::vector<Tensor> all = {step_->thresholds};
  for (auto* m : {student_.get(), teacher_.get()}) {
    if (!m) continue;
    for (const auto& list : {m->named_parameters(), m->named_buffers()})
      for (const nn::NamedTensor& t : list) all.push_back(*t.tensor);
  }
  comm_.broadcast_packed(all, 0);
}

void Trainer::check_ranks_agree(int64_t step) {
  std::vector<Tensor> all;
  for (auto* m : {student_.get(), teacher_.get()}) {
    if (!m) continue;
    for (const auto& list : {m->named_parameters(), m->named_buffers()})
      for (const nn::NamedTensor& t : list) all.push_back(*t.tensor);
  }
  for (const auto& [name, t] : opt_->state()) all.push_back(t);
  all.push_back(step_->thresholds);
  comm_.check_same(all, "after step " + std::to_string(step) +
                            ", the parameters, buffers, optimizer state or DCRS thresholds");
}

void Trainer::save_checkpoint(const std::string& path, int64_t step) {
  if (!main_) return;
  std::vector<std::pair<std::string, Tensor>> all = prefixed("student.", student_->state_dict());
  if (teacher_)
    for (auto& e : prefixed("teacher.", teacher_->state_dict())) all.push_back(e);
  for (auto& e : prefixed("optim.", opt_->state())) all.push_back(e);
  all.emplace_back("dcrs.thresholds", step_->thresholds.detach().cpu());
  std::map<std::string, std::string> meta = {{"step", std::to_string(step)},
                                             {"optimizer_steps", std::to_string(opt_->steps())},
                                             {"ema_updates", std::to_string(ema_updates_)},
                                             {"best_miou", std::to_string(best_miou_)},
                                             {"best_step", std::to_string(best_step_)},
                                             {"config", config_json(cfg_).dump()}};
  nn::save_safetensors(path, all, meta);
}

// Checkpoint metadata is text: each number is read strictly ("3abc", "1e3" or "-1" for a step
// count are errors naming the file and the key, never a truncated or wrapped value).
namespace {
const std::string& meta_text(const nn::SafetensorsFile& f, const std::string& path, const char* key) {
  auto it = f.metadata.find(key);
  C3_CHECK(it != f.metadata.end(), path, ": checkpoint metadata lacks '", key, "'");
  return it->second;
}
int64_t meta_count(const nn::SafetensorsFile& f, const std::string& path, const char* key) {
  const std::string& v = meta_text(f, path, key);
  const std::optional<int64_t> n = parse_count(v);
  C3_CHECK(n, path, ": checkpoint metadata '", key, "' must be a non-negative integer, got '", v, "'");
  return *n;
}
double meta_number(const nn::SafetensorsFile& f, const std::string& path, const char* key, double lo, double hi) {
  const std::string& v = meta_text(f, path, key);
  const std::optional<double> x = parse_number(v);
  C3_CHECK(x && *x >= lo && *x <= hi, path, ": checkpoint metadata '", key, "' must be a number in [", lo, ", ", hi,
           "], got '", v, "'");
  return *x;
}
}  // namespace

int64_t Trainer::load_checkpoint(const std::string& path, bool partial) {
  nn::SafetensorsFile f = nn::load_safetensors(path);
  const int64_t step = meta_count(f, path, "step"), opt_steps = meta_count(f, path, "optimizer_steps");
  const int64_t ema_updates = meta_count(f, path, "ema_updates"), best_step = meta_count(f, path, "best_step");
  const double best_miou = meta_number(f, path, "best_miou", -1, 1);
  auto student = f.with_prefix("student."), teacher = f.with_prefix("teacher."), optim = f.with_prefix("optim.");
  const Tensor* thresholds = f.find("dcrs.thresholds");
  // What a checkpoint at this step must hold; without it the run would go on from re-made
  // state (a fresh teacher, zero Adam moments, initial thresholds) without a word.
  const int64_t warm = cfg_.train.mode == TrainMode::c3 ? cfg_.train.warmup_epochs * cfg_.train.steps_per_epoch : -1;
  std::vector<std::string> missing;
  if (student.empty()) missing.push_back("the student (student.*)");
  if (opt_steps > 0 && optim.empty()) missing.push_back("the optimizer state (optim.*)");
  if (warm >= 0 && step > warm && teacher.empty()) missing.push_back("the teacher (teacher.*)");
  if (warm >= 0 && step > warm && thresholds == nullptr) missing.push_back("the DCRS thresholds (dcrs.thresholds)");
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size(); ++i) list += (i ? ", " : "") + missing[i];
    C3_CHECK(partial && !student.empty(), path, ": cannot resume from step ", step, ": the checkpoint lacks ", list,
             student.empty() ? "" : " (--resume-partial starts what is missing afresh)");
    std::printf("--resume-partial: %s missing from %s, started afresh\n", list.c_str(), path.c_str());
  }
  try {
    student_->load_state_dict(student);
    if (!teacher.empty()) {
      start_semi_phase();
      teacher_->load_state_dict(teacher);
    }
  } catch (const Error& e) {
    throw Error(path + ": the checkpoint does not match this model config: " + e.what());
  }
  try {
    opt_->load_state(optim, opt_steps);
    if (thresholds) step_->load_thresholds(*thresholds);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  ema_updates_ = ema_updates;
  best_miou_ = best_miou;
  best_step_ = best_step;
  return step;
}

// The labeled subset, one "image label" pair of absolute paths per line: a split list that
// data.labeled_list reads back (and that other tools can use to train on the same images).
void Trainer::write_labeled_list(const std::string& path) const {
  std::ofstream f(path);
  f << "# the labeled subset of this run (data.labeled_list format: image label)\n";
  for (const data::Sample& s : data_.labeled)
    f << std::filesystem::absolute(s.image).string() << " " << std::filesystem::absolute(s.label).string() << "\n";
  C3_CHECK(f.good(), "cannot write ", path);
}

void Trainer::dump_steps(const std::string& dir, int64_t steps, int64_t state_steps, int64_t state_every) {
  C3_CHECK(comm_.size() == 1, "--dump replays one process: run it without mpirun");
  C3_CHECK(steps >= 0, "--dump-steps must be >= 0, got ", steps);
  C3_CHECK(state_every >= 0, "--dump-state-every must be >= 0, got ", state_every);
  dump_state_every_ = state_every;
  C3_CHECK(start_step_ == 0, "--dump starts at step 0: it cannot be used with --resume");
  dump_dir_ = dir;
  dump_steps_ = steps;
  dump_state_steps_ = state_steps < 0 ? steps : std::min(steps, state_steps);
  step_->keep_draws = steps > 0;
  make_dirs(dir);
  write_labeled_list(dir + "/labeled.txt");
  nn::save_safetensors(dir + "/init.safetensors", student_->state_dict(), {{"config", config_json(cfg_).dump()}});
}

void Trainer::dump_step(int64_t step, const data::Batch& lb, const data::Batch* ub, const StepOutput& out,
                        double loss, double lr_factor) {
  std::vector<std::pair<std::string, Tensor>> t;
  auto bytes = [](const data::HostBytes& b, Shape s) {
    return Tensor::from_host(std::span<const uint8_t>(b.data(), b.size()), s, Device::cpu);
  };
  t.emplace_back("x_l", bytes(lb.images, {lb.size(), lb.h, lb.w, 3}));
  t.emplace_back("y_l", bytes(lb.labels, {lb.size(), lb.h, lb.w}));
  if (ub) {
    t.emplace_back("u_w", bytes(ub->images, {ub->size(), ub->h, ub->w, 3}));
    t.emplace_back("u_s", bytes(ub->strong, {ub->size(), ub->h, ub->w, 3}));
  }
  for (const auto& [name, v] : out.draws) t.emplace_back(name, v.cpu());
  const int64_t every = dump_state_every_;
  const bool with_grad = step < dump_state_steps_ || (every > 0 && step > 0 && step % every == 0);
  const bool with_state = step < dump_state_steps_ || (every > 0 && (step + 1) % every == 0);
  for (const nn::NamedTensor& p : student_->named_parameters())  // this step's gradients
    if (Tensor g = p.tensor->grad(); g.defined() && with_grad)
      t.emplace_back("grad." + p.name, p.layout == nn::ParamLayout::conv_ohwi ? nn::ohwi_to_oihw(g).cpu() : g.cpu());
  // The twin reads the losses as [loss, sup, cons, con] (0 for a term the step did not have).
  t.emplace_back("losses", Tensor::from_vector(
                               std::vector<double>{loss, out.value("sup"), out.value("cons"), out.value("con")}, {4}));
  t.emplace_back("lr_factor", Tensor::from_vector(std::vector<double>{lr_factor}, {1}));
  if (!out.thresholds.empty())
    t.emplace_back("dcrs_thresholds", Tensor::from_vector(out.thresholds, {int64_t(out.thresholds.size())}));
  char name[64];
  std::snprintf(name, sizeof name, "/step_%06lld.safetensors", (long long)step);
  nn::save_safetensors(dump_dir_ + name, t, {{"phase", ub ? "semi" : "warmup"}});
  // The whole state after the step (student, teacher, optimizer, DCRS), as a checkpoint: the
  // twin starts each replayed step from ours in its teacher-forced comparison.
  if (!with_state) return;
  std::snprintf(name, sizeof name, "/state_%06lld.safetensors", (long long)step + 1);
  save_checkpoint(dump_dir_ + name, step + 1);
}

void Trainer::log_metrics(const std::string& line) {
  if (!main_) return;
  std::ofstream f(dir_ + "/metrics.jsonl", std::ios::app);
  f << line << "\n";
}

EvalResult Trainer::evaluate(nn::DeepLab& model, const std::string& vis_path) {
  EvalOptions o;
  o.classes = int(cfg_.model.num_classes);
  o.device = device_;
  o.vis_images = cfg_.output.vis_images;
  o.vis_path = main_ ? vis_path : "";
  o.thresholds = cfg_.train.mode == TrainMode::c3 ? step_->thresholds : Tensor();
  o.comm = comm_;
  o.infer.precision = cfg_.train.precision;
  auto loader = make_val_loader(cfg_, data_, comm_);
  return evaluate_model(model, *loader, o);
}

// ---- The loop: one named function per part of a step ------------------------------------

void Trainer::open_loaders() {
  const int64_t spe = cfg_.train.steps_per_epoch;
  make_labeled_loader(cfg_, data_, start_step_ / spe, comm_);
  data::Batch b;
  for (int64_t s = 0; s < start_step_ % spe; ++s) data_.labeled_loader->next(b);  // resume mid-epoch
  if (start_step_ >= warm_ && cfg_.train.mode == TrainMode::c3) {
    make_unlabeled_loader(cfg_, data_, (start_step_ - warm_) / spe, comm_);
    for (int64_t s = 0; s < (start_step_ - warm_) % spe; ++s) data_.unlabeled_loader->next(b);
  }
}

void Trainer::enter_semi_phase(int64_t step) {
  // The teacher is made here, not at the loader: a run resumed from a checkpoint saved
  // exactly when the warm-up ended has the unlabeled loader already, and no teacher yet.
  if (!teacher_) {
    start_semi_phase();
    if (main_)
      std::printf("%sstep %lld: semi-supervised phase begins (teacher = copy of the student)\n", tty_ ? "\n" : "",
                  (long long)step);
  }
  if (!data_.unlabeled_loader) make_unlabeled_loader(cfg_, data_, (step - warm_) / cfg_.train.steps_per_epoch, comm_);
}

StepInputs Trainer::next_inputs(bool semi) {
  C3_CHECK(data_.labeled_loader->next(lb_), "the labeled loader ended early");
  StepInputs in;
  in.x_l = to_input(lb_.images, lb_.size(), lb_.h, lb_.w, device_);
  in.y_l = to_labels(lb_.labels, lb_.size(), lb_.h, lb_.w, device_);
  if (semi) {
    C3_CHECK(data_.unlabeled_loader->next(ub_), "the unlabeled loader ended early");
    in.u_w = to_input(ub_.images, ub_.size(), ub_.h, ub_.w, device_);
    in.u_s = to_input(ub_.strong, ub_.size(), ub_.h, ub_.w, device_);
  }
  return in;
}

StepOutput Trainer::forward_backward(int64_t step, bool semi, const StepInputs& in) {
  // Per step (resume is exact) and per rank (rank 0 draws what a single process draws).
  Generator gen(cfg_.train.seed * 0x9E3779B97F4A7C15ull + uint64_t(step) + 1 + uint64_t(comm_.rank()) * 0x632BE59BD9B4E019ull);
  try {
    DeferChecks defer;  // index and label checks: device flags, read with the logged values
    // train.precision = bf16: forwards and backward under autocast; the bf16 copies of the
    // weights are made once here and dropped before the optimizer changes the masters.
    AutocastScope autocast(cfg_.train.precision);
    StepOutput out = semi ? step_->semi(*student_, *teacher_, in, step, step - warm_, gen)
                          : step_->supervised(*student_, in, step, gen);
    opt_->zero_grad();
    out.loss.backward();
    return out;
  } catch (const OutOfMemory& e) {
    throw Error(std::string(e.what()) + " (batch " + std::to_string(cfg_.train.batch_labeled) + "+" +
                std::to_string(cfg_.train.batch_unlabeled) + ", crop " + std::to_string(cfg_.data.crop.h) + "x" +
                std::to_string(cfg_.data.crop.w) + ": lower train.batch_* or data.crop)");
  }
}

void Trainer::reduce_gradients() {
  // One all-reduce of every gradient (in buckets), after the backward.
  if (comm_.size() > 1) comm_.average_gradients(student_->parameters());
}

void Trainer::watch_finite(const StepOutput& out) {
  NoGradGuard ng;
  const Tensor l = out.loss.detach();
  finite_watch_ = finite_watch_.defined() ? add(finite_watch_, sub(l, l)) : sub(l, l);
}

double Trainer::read_step(int64_t step, StepOutput& out) {
  if (finite_watch_.defined()) {  // loss + 0 is the loss, to the bit; loss + NaN is NaN
    out.loss = add(out.loss.detach(), finite_watch_);
    finite_watch_ = Tensor();
  }
  out.flags = {deferred_flags(device_)};
  double loss = out.read_values();
  check_deferred(device_, out.flag_values, steps_since_read(step));
  const int world = comm_.size();
  if (world > 1) {
    // The logged values are the means over the ranks; a NaN on any rank is a NaN everywhere,
    // so all stop. The DCRS kept fractions are over every rank's pixels (as one process logs).
    std::vector<double> v = {loss};
    for (const auto* list : {&out.terms, &out.stats})
      for (const Reported& r : *list) v.push_back(r.value);
    const size_t C = out.class_counts.size();
    for (size_t c = 0; c < C; ++c) v.push_back(out.class_counts[c]);
    for (size_t c = 0; c < C; ++c)
      v.push_back(out.class_counts[c] > 0 ? std::round(double(out.kept_per_class[c]) * out.class_counts[c]) : 0.0);
    comm_.all_reduce_sum(v);
    size_t i = 0;
    loss = v[i++] / world;
    for (auto* list : {&out.terms, &out.stats})
      for (Reported& r : *list) r.value = v[i++] / world;
    for (size_t c = 0; c < C; ++c) out.kept_per_class[c] = v[i + c] > 0 ? float(v[i + C + c] / v[i + c]) : NAN;
  }
  check_finite(step, loss, out);
  read_from_ = step + 1;
  return loss;
}

void Trainer::check_finite(int64_t step, double loss, const StepOutput& out) const {
  if (std::isfinite(loss)) return;
  std::string terms;
  for (const Reported& r : out.terms) terms += (terms.empty() ? "" : ", ") + r.name + " " + std::to_string(r.value);
  throw Error("loss is not finite " + steps_since_read(step) + " (at step " + std::to_string(step) + ": loss " + std::to_string(loss) +
              ", " + terms + "); " + last_good());
}

std::string Trainer::last_good() const {
  if (saved_step_ < 0) return "no checkpoint was written";
  return "the last good checkpoint is " + dir_ + "/latest.safetensors (step " + std::to_string(saved_step_) + ")";
}

std::string Trainer::steps_since_read(int64_t step) const {
  return read_from_ == step ? "at step " + std::to_string(step)
                            : "at a step from " + std::to_string(read_from_) + " to " + std::to_string(step) +
                                  " (read every output.log_every steps)";
}

void Trainer::check_finite_before_save(int64_t step) {
  if (!finite_watch_.defined()) return;
  check_deferred(device_, steps_since_read(step));
  std::vector<double> v = {double(finite_watch_.item())};
  finite_watch_ = Tensor();
  if (comm_.size() > 1) comm_.all_reduce_sum(v);
  if (!std::isfinite(v[0]))
    throw Error("loss is not finite at a step from " + std::to_string(read_from_) + " to " + std::to_string(step) +
                " (found before writing a checkpoint, which was not written); " + last_good());
  read_from_ = step + 1;
}

void Trainer::update_weights(bool semi) {
  opt_->step();
  if (comm_.size() > 1 && !cfg_.model.sync_bn) {  // per-rank BatchNorm statistics: rank 0's are kept (as DDP)
    std::vector<Tensor> bufs;
    for (const nn::NamedTensor& b : student_->named_buffers()) bufs.push_back(*b.tensor);
    comm_.broadcast_packed(bufs, 0);
  }
  if (!semi) return;
  nn::ema_update(*teacher_, *student_, nn::ema_decay(ema_updates_++, cfg_.train.ema_max_decay));
}

void Trainer::log_step(int64_t step, double loss, const StepOutput& out, bool semi) {
  if (!main_) return;
  const int64_t total = cfg_.train.total_steps();
  const double secs = std::chrono::duration<double>(Clock::now() - t0_).count();
  const double ips = double(images_) / std::max(secs, 1e-9);
  const double eta = secs / double(step + 1 - start_step_) * double(total - step - 1);
  char num[64];
  std::snprintf(num, sizeof num, "step %lld/%lld | loss %.4f", (long long)step + 1, (long long)total, loss);
  std::string line = num;
  for (const Reported& r : out.terms) {
    std::snprintf(num, sizeof num, " %s %.4f", r.name.c_str(), r.value);
    line += num;
  }
  for (const Reported& r : out.stats)
    if (r.shown) {
      std::snprintf(num, sizeof num, " | %s %.2f", r.name.c_str(), r.value);
      line += num;
    }
  std::snprintf(num, sizeof num, " | lr %.2e | %.1f img/s | ETA ", opt_->lr(1), ips);
  line += num + fmt_time(eta);
  if (tty_) std::printf("\r%-120s", line.c_str());
  else std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  nlohmann::json j = {{"step", step + 1}, {"epoch", step / cfg_.train.steps_per_epoch}, {"loss", loss}};
  for (const auto* list : {&out.terms, &out.stats})
    for (const Reported& r : *list) j[r.name] = r.value;
  j["lr_head"] = opt_->lr(1);
  j["lr_backbone"] = opt_->lr(0);
  j["images_per_s"] = ips;
  // Host synchronisation points of the steps since the previous training line (this line's
  // reads included; evaluations and checkpoint writes are not counted).
  j["host_syncs"] = host_syncs() - sync_mark_;
  sync_mark_ = host_syncs();
  j["phase"] = semi ? "semi" : "warmup";
  if (cfg_.data.skip_bad_samples) j["skipped_samples"] = data_.skipped();
  // Tensor memory of this process on the training device: allocated now, reserved (the
  // caching allocator's segments; on the CPU the same as allocated) and the peak allocated
  // since the previous training line.
  const AllocStats mem = device_ == Device::cuda ? cuda_allocator().stats() : host_tensor_stats();
  j["mem_allocated_mib"] = double(mem.in_use) / (1 << 20);
  j["mem_reserved_mib"] = double(mem.reserved) / (1 << 20);
  j["mem_peak_mib"] = double(mem.peak) / (1 << 20);
  if (device_ == Device::cuda) cuda_allocator().reset_peak();
  else reset_host_tensor_peak();
  if (!out.thresholds.empty()) {
    j["dcrs_thresholds"] = out.thresholds;
    j["dcrs_kept_per_class"] = out.kept_per_class;
  }
  log_metrics(j.dump());
}

void Trainer::evaluate_and_save(int64_t step, TrainResult& res) {
  check_finite_before_save(step);
  if (tty_ && main_) std::printf("\n");
  char tag[32];
  std::snprintf(tag, sizeof tag, "eval_%06lld", (long long)step + 1);
  EvalResult ev = evaluate(*student_, dir_ + "/vis/" + std::string(tag) + ".png");
  std::vector<std::pair<std::string, IoUResult>> rows = {{"student", ev.plain}};
  if (!ev.star.iou.empty()) rows.push_back({"student*", ev.star});
  const auto& names = class_names(int(cfg_.model.num_classes));
  if (main_) {
    std::ofstream(dir_ + "/" + tag + ".md") << iou_table_markdown(names, rows);
    std::ofstream(dir_ + "/" + tag + ".csv") << iou_table_csv(names, rows);
    std::printf("step %lld: val mIoU %.2f%% (pixel acc %.2f%%)%s\n", (long long)step + 1, 100 * ev.plain.miou,
                100 * ev.plain.pixel_acc, ev.plain.miou > best_miou_ ? " (best so far)" : "");
  }
  log_metrics(nlohmann::json({{"step", step + 1}, {"val_miou", ev.plain.miou}, {"val_pixel_acc", ev.plain.pixel_acc},
                              {"val_miou_star", ev.star.iou.empty() ? 0.0 : ev.star.miou}})
                  .dump());
  if (main_) {
    try {
      write_curves({dir_}, dir_ + "/curves.svg");
    } catch (const std::exception& e) {  // a picture is not worth the run
      std::fprintf(stderr, "warning: curves.svg not written: %s\n", e.what());
    }
  }
  res.last = ev.plain;
  res.last_star = ev.star;
  if (ev.plain.miou > best_miou_) {
    best_miou_ = ev.plain.miou;
    best_step_ = step + 1;
    res.best = ev.plain;
    save_checkpoint(dir_ + "/best.safetensors", step + 1);
  }
  save_latest(step, res);
}

void Trainer::save_latest(int64_t step, TrainResult& res) {
  check_finite_before_save(step);
  save_checkpoint(dir_ + "/latest.safetensors", step + 1);
  saved_step_ = step + 1;
  res.saved_at.push_back(step + 1);
  last_save_ = Clock::now();
  sync_mark_ = host_syncs();  // evaluations and saves are not the steps' syncs
}

bool Trainer::save_due(int64_t step) const {
  const double minutes = std::chrono::duration<double>(Clock::now() - last_save_).count() / 60;
  return (cfg_.output.save_every_steps > 0 && (step + 1) % cfg_.output.save_every_steps == 0) ||
         (cfg_.output.save_every_minutes > 0 && minutes >= cfg_.output.save_every_minutes);
}

void Trainer::report_stop(int64_t step) const {
  const char* why = g_stop_signal == SIGINT ? "SIGINT" : g_stop_signal == SIGUSR1 ? "SIGUSR1"
                    : g_stop_signal ? "SIGTERM" : "stop requested";  // (or another rank's signal)
  if (main_)
    std::printf("\n%s at step %lld: checkpoint saved to %s/latest.safetensors; continue with --resume\n", why,
                (long long)step + 1, dir_.c_str());
}

void Trainer::finish(TrainResult& res) {
  res.best_step = best_step_;
  if (res.best.iou.empty()) res.best = res.last;
  const auto& names = class_names(int(cfg_.model.num_classes));
  comm_.barrier();  // the run ends together on every rank
  if (main_) std::ofstream(dir_ + "/summary.md") << "# Run summary\n\nSteps: " << cfg_.train.total_steps()
                                      << ", best val mIoU " << 100 * best_miou_ << "% at step " << best_step_ << "\n\n"
                                      << iou_table_markdown(names, {{"last", res.last}}) << skip_report(data_);
}

TrainResult Trainer::run(int64_t stop_after) {
  install_stop_handlers();
  const int64_t spe = cfg_.train.steps_per_epoch, total = cfg_.train.total_steps();
  TrainResult res;
  res.run_dir = dir_;
  res.steps_done = start_step_;
  if (start_step_ >= total) {  // e.g. resumed after lowering train.epochs
    if (main_)
      std::printf("nothing to train: the checkpoint in %s is at step %lld and this config trains %lld steps "
                  "(train.epochs x train.steps_per_epoch); raise train.epochs to train on\n",
                  dir_.c_str(), (long long)start_step_, (long long)total);
    res.nothing_to_train = true;
    return res;
  }
  open_loaders();
  nn::PolySchedule sched{total, cfg_.train.poly_power, 0, 0};
  t0_ = last_save_ = Clock::now();
  prepare_to_input(device_);  // once, before the steps are counted
  sync_mark_ = host_syncs();
  read_from_ = start_step_;
  saved_step_ = start_step_ > 0 ? start_step_ : -1;  // a resumed run starts from a checkpoint
  images_ = 0;
  const int64_t log_every = cfg_.output.log_every;
  for (int64_t step = start_step_; step < total; ++step) {
    const bool semi = step >= warm_;
    if (semi) {
      const bool first = !teacher_;
      enter_semi_phase(step);
      if (first) sync_mark_ = host_syncs();  // the teacher's creation (once) is not a step's, as evaluations
    }
    const StepInputs in = next_inputs(semi);
    opt_->set_lr_factor(sched.factor(step));
    StepOutput out = forward_backward(step, semi, in);
    reduce_gradients();
    watch_finite(out);
    // The host reads the step's values only on the steps it logs (and dumps): the others
    // leave everything on the device.
    const bool last = step + 1 == total, log_now = (step + 1) % log_every == 0 || last;
    const double loss = log_now || step < dump_steps_ ? read_step(step, out) : 0.0;
    update_weights(semi);
    if (step < dump_steps_) dump_step(step, lb_, semi ? &ub_ : nullptr, out, loss, sched.factor(step));
    images_ += (lb_.size() + (semi ? ub_.size() : 0)) * comm_.size();
    if (comm_.size() > 1 && cfg_.train.dist_check_every > 0 && (step + 1) % cfg_.train.dist_check_every == 0)
      check_ranks_agree(step + 1);
    if (log_now) log_step(step, loss, out, semi);
    const bool eval_now = last || (step + 1) % (cfg_.train.eval_every_epochs * spe) == 0;
    if (eval_now) evaluate_and_save(step, res);
    res.steps_done = step + 1;
    const bool stop = comm_.any(g_stop_signal || step + 1 == stop_after);  // every rank stops at the same step
    if (!eval_now && (stop || save_due(step))) save_latest(step, res);
    if (stop) {
      report_stop(step);
      res.interrupted = true;
      return res;
    }
  }
  finish(res);
  return res;
}

}  // namespace c3::semiseg
