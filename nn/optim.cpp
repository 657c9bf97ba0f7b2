#include "nn/optim.h"

#include <cmath>
#include <map>

#include "core/dispatch.h"
#include "core/ops.h"
#include "kernels/cpu/optim.h"
#include "kernels/cuda/optim.h"
#include "nn/module.h"

namespace c3::nn {

Optimizer::Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {
  for (const ParamGroup& g : groups_)
    for (const Tensor& p : g.params) {
      check_float("optimizer", p);
      check_cuda_dtype("optimizer", p);
      C3_CHECK(p.requires_grad(), "optimizer: parameter ", p.desc(), " in group '", g.name,
               "' does not require grad");
    }
}

void Optimizer::zero_grad() {
  for (ParamGroup& g : groups_)
    for (Tensor& p : g.params) p.zero_grad();
}

namespace {
std::vector<std::vector<Tensor>> empty_state(const std::vector<ParamGroup>& groups) {
  std::vector<std::vector<Tensor>> s;
  for (const ParamGroup& g : groups) s.emplace_back(g.params.size());
  return s;
}
Tensor& lazy_zeros(Tensor& slot, const Tensor& like) {
  if (!slot.defined()) slot = Tensor::zeros(like.shape(), like.dtype(), like.device());
  return slot;
}
void save_slots(std::vector<std::pair<std::string, Tensor>>& out, const std::vector<ParamGroup>& groups,
                const std::vector<std::vector<Tensor>>& slots, const char* slot) {
  for (size_t gi = 0; gi < groups.size(); ++gi)
    for (size_t i = 0; i < slots[gi].size(); ++i)
      if (slots[gi][i].defined())
        out.emplace_back(groups[gi].name + "." + std::to_string(i) + "." + slot, slots[gi][i].detach().cpu());
}
void load_slots(const std::map<std::string, Tensor>& in, const std::vector<ParamGroup>& groups,
                std::vector<std::vector<Tensor>>& slots, const char* slot) {
  for (size_t gi = 0; gi < groups.size(); ++gi)
    for (size_t i = 0; i < groups[gi].params.size(); ++i) {
      const std::string key = groups[gi].name + "." + std::to_string(i) + "." + slot;
      auto it = in.find(key);
      if (it == in.end()) { slots[gi][i] = Tensor(); continue; }
      const Tensor& p = groups[gi].params[i];
      C3_CHECK(it->second.shape() == p.shape(), "optimizer state '", key, "' has shape ",
               shape_str(it->second.shape()), " but the parameter has ", shape_str(p.shape()));
      C3_CHECK(it->second.dtype() == p.dtype(), "optimizer state '", key, "' is ", dtype_name(it->second.dtype()),
               " but the parameter is ", dtype_name(p.dtype()));
      slots[gi][i] = it->second.to(p.device()).clone();
    }
}
}  // namespace

Adam::Adam(std::vector<ParamGroup> groups, double b1, double b2, double eps)
    : Optimizer(std::move(groups)), beta1_(b1), beta2_(b2), eps_(eps) {
  m_ = empty_state(groups_);
  v_ = empty_state(groups_);
}

void Adam::step() {
  ++steps_;
  kernels::AdamParams a{};
  a.beta1 = float(beta1_);
  a.beta2 = float(beta2_);
  a.eps = float(eps_);
  a.bias_correction1 = float(1 - std::pow(beta1_, double(steps_)));
  a.bias_correction2 = float(1 - std::pow(beta2_, double(steps_)));
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    a.lr = float(lr(gi));
    a.weight_decay = float(groups_[gi].weight_decay);
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      Tensor& p = groups_[gi].params[i];
      Tensor g = p.grad();
      if (!g.defined()) continue;
      Tensor& m = lazy_zeros(m_[gi][i], p);
      Tensor& v = lazy_zeros(v_[gi][i], p);
      if (p.is_cuda())
        C3_CUDA("adam", kernels::cuda::adam_step_f32(p.data<float>(), g.data<float>(), m.data<float>(), v.data<float>(),
                                                      p.numel(), a));
      else if (p.dtype() == DType::f32)
        kernels::cpu::adam_step(p.data<float>(), g.data<float>(), m.data<float>(), v.data<float>(), p.numel(), a);
      else
        kernels::cpu::adam_step(p.data<double>(), g.data<double>(), m.data<double>(), v.data<double>(), p.numel(), a);
    }
  }
}

std::vector<std::pair<std::string, Tensor>> Adam::state() const {
  std::vector<std::pair<std::string, Tensor>> out;
  save_slots(out, groups_, m_, "exp_avg");
  save_slots(out, groups_, v_, "exp_avg_sq");
  return out;
}
void Adam::load_state(const std::vector<std::pair<std::string, Tensor>>& state, int64_t steps) {
  std::map<std::string, Tensor> in(state.begin(), state.end());
  load_slots(in, groups_, m_, "exp_avg");
  load_slots(in, groups_, v_, "exp_avg_sq");
  steps_ = steps;
}

SGD::SGD(std::vector<ParamGroup> groups, double momentum, bool nesterov, double dampening)
    : Optimizer(std::move(groups)), momentum_(momentum), dampening_(dampening), nesterov_(nesterov) {
  C3_CHECK(!nesterov || (momentum > 0 && dampening == 0), "SGD: nesterov needs momentum > 0 and no dampening");
  buf_ = empty_state(groups_);
}

void SGD::step() {
  ++steps_;
  kernels::SgdParams s{};
  s.momentum = float(momentum_);
  s.dampening = float(dampening_);
  s.nesterov = nesterov_;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    s.lr = float(lr(gi));
    s.weight_decay = float(groups_[gi].weight_decay);
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      Tensor& p = groups_[gi].params[i];
      Tensor g = p.grad();
      if (!g.defined()) continue;
      s.first_step = !buf_[gi][i].defined();
      Tensor buf = momentum_ != 0 ? lazy_zeros(buf_[gi][i], p) : Tensor();
      if (p.is_cuda())
        C3_CUDA("sgd", kernels::cuda::sgd_step_f32(p.data<float>(), g.data<float>(),
                                                    buf.defined() ? buf.data<float>() : nullptr, p.numel(), s));
      else if (p.dtype() == DType::f32)
        kernels::cpu::sgd_step(p.data<float>(), g.data<float>(), buf.defined() ? buf.data<float>() : nullptr,
                               p.numel(), s);
      else
        kernels::cpu::sgd_step(p.data<double>(), g.data<double>(), buf.defined() ? buf.data<double>() : nullptr,
                               p.numel(), s);
    }
  }
}

std::vector<std::pair<std::string, Tensor>> SGD::state() const {
  std::vector<std::pair<std::string, Tensor>> out;
  save_slots(out, groups_, buf_, "momentum_buffer");
  return out;
}
void SGD::load_state(const std::vector<std::pair<std::string, Tensor>>& state, int64_t steps) {
  std::map<std::string, Tensor> in(state.begin(), state.end());
  load_slots(in, groups_, buf_, "momentum_buffer");
  steps_ = steps;
}

double PolySchedule::factor(int64_t step) const {
  if (step < warmup_steps)
    return warmup_start + (1.0 - warmup_start) * double(step) / double(warmup_steps);
  const double frac = 1.0 - double(step) / double(total_steps);
  return frac <= 0 ? 0.0 : std::pow(frac, power);
}

void ema_update(Module& teacher, const Module& student, double decay) {
  NoGradGuard ng;
  std::vector<Tensor> tp, sp;
  auto tpar = teacher.named_parameters(), spar = student.named_parameters();
  auto tbuf = teacher.named_buffers(), sbuf = student.named_buffers();
  C3_CHECK(tpar.size() == spar.size() && tbuf.size() == sbuf.size(),
           "ema_update: the teacher and the student differ in their tensors");
  for (size_t i = 0; i < tpar.size(); ++i) tp.push_back(*tpar[i].tensor), sp.push_back(*spar[i].tensor);
  for (size_t i = 0; i < tbuf.size(); ++i)
    if (tbuf[i].tensor->dtype() == DType::f32) tp.push_back(*tbuf[i].tensor), sp.push_back(*sbuf[i].tensor);
  ema_update(tp, sp, decay);
}

void ema_update(const std::vector<Tensor>& teacher, const std::vector<Tensor>& student, double decay) {
  C3_CHECK(teacher.size() == student.size(), "ema_update: ", teacher.size(), " teacher tensors vs ", student.size(),
           " student tensors");
  for (size_t i = 0; i < teacher.size(); ++i) {
    const Tensor& t = teacher[i];
    const Tensor& s = student[i];
    check_same_shape("ema_update", t, s);
    if (t.is_cuda()) C3_CUDA("ema", kernels::cuda::ema_step_f32(t.data<float>(), s.data<float>(), t.numel(), float(decay)));
    else if (t.dtype() == DType::f32) kernels::cpu::ema_step(t.data<float>(), s.data<float>(), t.numel(), float(decay));
    else kernels::cpu::ema_step(t.data<double>(), s.data<double>(), t.numel(), float(decay));
  }
}

}  // namespace c3::nn
