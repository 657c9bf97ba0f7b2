// The training loop: phases (warm-up, semi), logging, evaluation, checkpoints and resume.
//
// A run folder holds config.json, metrics.jsonl, checkpoints (latest.safetensors and
// best.safetensors), eval tables (eval_XXXX.md / .csv), pictures of validation predictions
// (vis/eval_XXXX.png: image | ground truth | prediction) and summary.md at the end.
//
// Data-parallel (mpirun -np N, core/dist.h): each rank loads its part of the global batch
// (train.batch_* / N), gradients are averaged once per step after backward (bucketed; not
// overlapped with the backward), the DCRS thresholds come from every rank's confidences,
// evaluation is split over the ranks and its confusion matrices summed; only rank 0 prints
// and writes the run folder. A stop signal seen by any rank stops all at the same step.
#pragma once
#include <chrono>
#include <csignal>
#include <memory>
#include <string>

#include "nn/optim.h"
#include "semiseg/c3_step.h"
#include "semiseg/config.h"
#include "semiseg/eval.h"
#include "semiseg/metrics.h"
#include "semiseg/run_data.h"

namespace c3::semiseg {

struct TrainResult {
  IoUResult best, last, last_star;
  int64_t best_step = 0, steps_done = 0;
  bool interrupted = false;
  bool nothing_to_train = false;
  std::vector<int64_t> saved_at;  // the steps at which latest.safetensors was written  // resumed at or past the last step: no step, no evaluation
  std::string run_dir;
};

// Set by SIGINT/SIGTERM/SIGUSR1; the loop saves a checkpoint and returns (data-parallel: when
// any rank has it, every rank stops at the same step).
extern volatile std::sig_atomic_t g_stop_signal;
void install_stop_handlers();

class Trainer {
 public:
  // resume: continue from output.dir/latest.safetensors, which must hold the whole state of its
  // step (student, optimizer, and in the semi phase the teacher and the DCRS thresholds);
  // partial_resume starts what it lacks afresh instead (with a message).
  Trainer(Config cfg, bool resume, bool partial_resume = false);
  ~Trainer();
  // Trains to the last step. stop_after >= 0: stops after that step as a signal would
  // (latest.safetensors saved; --resume continues), `train --stop-after N`.
  TrainResult run(int64_t stop_after = -1);
  // Writes, into `dir`, what another implementation needs to replay the first `steps` steps
  // (tools/torch_twin.py lockstep): init.safetensors (the student at step 0, before any
  // update), labeled.txt, step_NNNNNN.safetensors per step (the batch as u8 bytes, the step's
  // random draws, gradients, losses and DCRS thresholds) and state_NNNNNN.safetensors (the
  // checkpoint after that many steps: student, teacher, optimizer, DCRS). steps = 0: init and
  // labeled list only. Gradients and states only for the first `state_steps` (< 0: all), so
  // that a whole run's inputs and draws can be dumped without a checkpoint per step.
  // state_every N > 0: also the gradients of every step s with s % N == 0 and the state
  // before it, so that the twin can replay late steps from our state without a dump of all.
  void dump_steps(const std::string& dir, int64_t steps, int64_t state_steps = -1, int64_t state_every = 0);

  // Evaluates a model on the val set: plain and DCRS-masked ("*") confusion matrices.
  EvalResult evaluate(nn::DeepLab& model, const std::string& vis_path);

 private:
  void save_checkpoint(const std::string& path, int64_t step);
  int64_t load_checkpoint(const std::string& path, bool partial);
  void log_metrics(const std::string& json_line);
  void write_labeled_list(const std::string& path) const;
  void dump_step(int64_t step, const data::Batch& lb, const data::Batch* ub, const StepOutput& out, double loss,
                 double lr_factor);
  void start_semi_phase();
  // The parts of a step, in the order run() calls them.
  void open_loaders();                   // at start_step_ (resume: mid-epoch)
  void enter_semi_phase(int64_t step);   // teacher and unlabeled loader, once
  StepInputs next_inputs(bool semi);     // the next batches, on the device
  StepOutput forward_backward(int64_t step, bool semi, const StepInputs& in);
  void reduce_gradients();               // data-parallel: gradients averaged over the ranks
  void watch_finite(const StepOutput& out);  // adds the loss's finiteness to a device flag
  // On the steps that log (or dump): reads the loss, the terms and the finiteness flag in one
  // transfer, averages them over the ranks and stops the run on a non-finite loss.
  double read_step(int64_t step, StepOutput& out);
  void check_finite(int64_t step, double loss, const StepOutput& out) const;
  void check_finite_before_save(int64_t step);  // reads the flag if steps are unread
  std::string last_good() const;                // where the last checkpoint is, for the errors
  std::string steps_since_read(int64_t step) const;  // "at step N" or "at a step from A to N (...)"
  void update_weights(bool semi);        // optimizer, BatchNorm buffers, the teacher's EMA
  void log_step(int64_t step, double loss, const StepOutput& out, bool semi);
  void evaluate_and_save(int64_t step, TrainResult& res);
  void save_latest(int64_t step, TrainResult& res);
  bool save_due(int64_t step) const;     // output.save_every_steps / save_every_minutes
  void report_stop(int64_t step) const;
  void finish(TrainResult& res);         // summary.md
  // Data-parallel: every rank starts from rank 0's weights; hashes compared every K steps.
  void sync_from_rank0();
  void check_ranks_agree(int64_t step);

  Config cfg_;
  Device device_;
  std::string dir_;
  dist::Comm comm_;  // the ranks of the run (mpirun -np N), passed to the step, the loaders and evaluation
  RunData data_;
  std::unique_ptr<nn::DeepLab> student_, teacher_;
  std::unique_ptr<nn::Optimizer> opt_;
  std::unique_ptr<C3Step> step_;
  int64_t ema_updates_ = 0;
  double best_miou_ = -1;
  int64_t best_step_ = 0;
  int64_t start_step_ = 0;
  bool main_ = true;  // rank 0: the only rank that prints and writes files
  int64_t warm_ = 0;     // steps of the warm-up (all of them for train.mode=supervised)
  bool tty_ = false;     // the progress line rewrites itself on a terminal
  data::Batch lb_, ub_;  // this step's labeled and unlabeled batches
  std::chrono::steady_clock::time_point t0_, last_save_;
  int64_t images_ = 0;   // images trained on since run() began (all ranks)
  uint64_t sync_mark_ = 0;  // host_syncs() after the last training line, evaluation or save
  // Device scalar: the sum of (loss - loss) over the steps not read yet: exactly 0 while every
  // loss is finite, NaN once one is not. Added to the loss at the next read, so that read
  // shows it; read_from_ is the first step not read yet.
  Tensor finite_watch_;
  int64_t read_from_ = 0;
  int64_t saved_step_ = -1;  // the step of latest.safetensors (-1: none written)
  std::string dump_dir_;
  int64_t dump_steps_ = 0, dump_state_steps_ = 0, dump_state_every_ = 0;
};

}  // namespace c3::semiseg
