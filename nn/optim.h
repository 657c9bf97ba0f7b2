// Optimizers (PyTorch semantics), learning-rate schedules and the EMA teacher update.
//
// One fused kernel (kernels/*/optim) reads gradient, parameter and state and writes parameter
// and state in a single pass. When the parameters live in a model's arena
// (Module::pack_parameters) the whole step is one launch over it: the parameters with a
// gradient form spans of the arena, each with its group's learning rate and weight decay,
// and the state (moments, momentum) is kept in arenas of the same layout. Otherwise each
// parameter tensor is one launch. Parameters without a gradient are skipped, as in PyTorch.
// Parameter groups carry their own base learning rate; a schedule gives a factor that
// multiplies every group's base rate.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "kernels/optim_math.h"

namespace c3::nn {

class Module;

struct ParamGroup {
  std::string name;  // e.g. "backbone", "head"
  std::vector<Tensor> params;
  double lr = 1e-3;  // base learning rate
  double weight_decay = 0;
};

class Optimizer {
 public:
  explicit Optimizer(std::vector<ParamGroup> groups);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  void zero_grad();
  void set_lr_factor(double f) { lr_factor_ = f; }  // current lr = base lr * factor
  double lr(size_t group) const { return groups_.at(group).lr * lr_factor_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  int64_t steps() const { return steps_; }

  // For checkpoints: named state tensors ("<group>.<index>.<slot>") and the step count.
  virtual std::vector<std::pair<std::string, Tensor>> state() const = 0;
  virtual void load_state(const std::vector<std::pair<std::string, Tensor>>& state, int64_t steps) = 0;

 protected:
  // Where the parameter with index i of group gi lives in the arena (element offset).
  struct ArenaEntry {
    int64_t offset, numel;
    size_t group, index;
  };
  // True when every parameter is a view into one buffer with its gradient slot at the same
  // offset of another (Module::pack_parameters); fills arena_ (sorted by offset).
  bool find_arena();
  // The spans of the arena to update this step (parameters with a gradient; consecutive
  // ones of a group merge), in launches of at most kMaxArenaSpans; first_step(gi, i) says
  // whether the parameter's state starts now (SGD's momentum).
  template <class F> std::vector<kernels::ArenaSpans> arena_spans(F&& first_step) const;
  // The state slot of parameter (gi, i) as a view into `state` (an arena of the parameters'
  // layout, made on first use); a slot loaded from a checkpoint is copied into it.
  Tensor& state_view(Tensor& state, std::vector<std::vector<Tensor>>& slots, size_t gi, size_t i);
  virtual void reset_state_arenas() = 0;
  const Tensor& arena_param() const;  // a parameter of the arena (any group; the first by offset)  // forget the state arenas (the slots keep their values)

  std::vector<ParamGroup> groups_;
  double lr_factor_ = 1.0;
  int64_t steps_ = 0;
  std::vector<ArenaEntry> arena_;
  int64_t arena_numel_ = 0;
  const void* arena_base_ = nullptr;  // the parameter arena's storage the state arenas belong to
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8);
  void step() override;
  std::vector<std::pair<std::string, Tensor>> state() const override;
  void load_state(const std::vector<std::pair<std::string, Tensor>>& state, int64_t steps) override;

 private:
  double beta1_, beta2_, eps_;
  std::vector<std::vector<Tensor>> m_, v_;  // per group, per parameter (created lazily)
  Tensor m_arena_, v_arena_;                // their storage when the parameters are in an arena
  void reset_state_arenas() override { m_arena_ = v_arena_ = Tensor(); }
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, double momentum = 0.9, bool nesterov = false, double dampening = 0);
  void step() override;
  std::vector<std::pair<std::string, Tensor>> state() const override;
  void load_state(const std::vector<std::pair<std::string, Tensor>>& state, int64_t steps) override;

 private:
  double momentum_, dampening_;
  bool nesterov_;
  std::vector<std::vector<Tensor>> buf_;
  Tensor buf_arena_;
  void reset_state_arenas() override { buf_arena_ = Tensor(); }
};

// Poly decay (1 - step/total)^power, after an optional linear warm-up from warmup_start
// (a fraction of the base rate) over warmup_steps.
struct PolySchedule {
  int64_t total_steps = 1;
  double power = 0.9;
  int64_t warmup_steps = 0;
  double warmup_start = 0.0;
  double factor(int64_t step) const;
};

// teacher <- decay * teacher + (1 - decay) * student for each pair (same shapes), in one
// launch per kMaxEmaSpans pairs.
void ema_update(const std::vector<Tensor>& teacher, const std::vector<Tensor>& student, double decay);
// The teacher model follows the student model: ema_update over their parameters and their
// float buffers (BatchNorm statistics; integer counters are left alone), without gradient.
// When both models are packed (Module::pack_parameters) it is one launch over their arenas.
void ema_update(Module& teacher, const Module& student, double decay);
// METHOD.md: decay = min(1 - 1/(k+1), 0.99) after k EMA updates.
inline double ema_decay(int64_t k, double max_decay = 0.99) {
  const double d = 1.0 - 1.0 / double(k + 1);
  return d < max_decay ? d : max_decay;
}

}  // namespace c3::nn
