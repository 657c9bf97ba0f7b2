#include "nn/optim.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
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
// The first element of the arena a parameter (or gradient slot) is a view into.
template <class T> T* arena_ptr(const Tensor& view) { return static_cast<T*>(view.impl().storage->data); }
}  // namespace

bool Optimizer::find_arena() {
  arena_.clear();
  std::shared_ptr<Storage> ps, gs;
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      const TensorImpl& p = groups_[gi].params[i].impl();
      if (!p.grad_slot) return false;
      if (!ps) ps = p.storage, gs = p.grad_slot->storage;
      if (p.storage != ps || p.grad_slot->storage != gs || p.grad_slot->offset != p.offset) return false;
      const size_t es = dtype_size(p.dtype);
      arena_.push_back({int64_t(p.offset / es), shape_numel(p.shape), gi, i});
    }
  if (!ps || groups_.size() > size_t(kernels::kMaxArenaGroups)) return false;
  std::sort(arena_.begin(), arena_.end(), [](const ArenaEntry& a, const ArenaEntry& b) { return a.offset < b.offset; });
  arena_numel_ = int64_t(ps->bytes / dtype_size(arena_param().dtype()));
  if (arena_base_ != ps.get()) {  // a new arena: the state arenas are made again (slots are copied over)
    arena_base_ = ps.get();
    reset_state_arenas();
  }
  return true;
}

const Tensor& Optimizer::arena_param() const {
  const ArenaEntry& e = arena_.front();  // find_arena() returned true: not empty
  return groups_[e.group].params[e.index];
}

template <class F> std::vector<kernels::ArenaSpans> Optimizer::arena_spans(F&& first_step) const {
  std::vector<kernels::ArenaSpan> spans;
  int64_t open_end = -1;  // end of the last span while the next parameter may join it
  for (const ArenaEntry& a : arena_) {
    TensorImpl& p = groups_[a.group].params[a.index].impl();
    if (!p.grad) {
      open_end = -1;
      continue;
    }
    if (p.grad != p.grad_slot) {  // a gradient set outside backward: into the slot
      Tensor(p.grad_slot).copy_(Tensor(p.grad));
      p.grad = p.grad_slot;
    }
    const int32_t fs = first_step(a.group, a.index) ? 1 : 0;
    kernels::ArenaSpan* last = spans.empty() ? nullptr : &spans.back();
    if (last && open_end >= 0 && last->group == int32_t(a.group) && last->first_step == fs &&
        a.offset - open_end < nn::kArenaAlign)
      last->count = a.offset + a.numel - last->begin;  // the gap between them is padding (zeros)
    else
      spans.push_back({a.offset, a.numel, int32_t(a.group), fs});
    open_end = a.offset + a.numel;
  }
  std::vector<kernels::ArenaSpans> out;
  for (size_t k = 0; k < spans.size(); ++k) {
    if (k % kernels::kMaxArenaSpans == 0) {
      out.emplace_back();
      kernels::ArenaSpans& c = out.back();
      c.n = 0;
      c.total = 0;
      for (size_t gi = 0; gi < groups_.size(); ++gi) {
        c.lr[gi] = float(lr(gi));
        c.weight_decay[gi] = float(groups_[gi].weight_decay);
      }
    }
    kernels::ArenaSpans& c = out.back();
    c.span[c.n++] = spans[k];
    c.total += spans[k].count;
  }
  return out;
}

Tensor& Optimizer::state_view(Tensor& state, std::vector<std::vector<Tensor>>& slots, size_t gi, size_t i) {
  const Tensor& p = groups_[gi].params[i];
  if (!state.defined()) state = Tensor::zeros({arena_numel_}, p.dtype(), p.device());
  Tensor& slot = slots[gi][i];
  if (slot.defined() && slot.same_storage(state)) return slot;
  Tensor view = state.narrow0(int64_t(p.impl().offset / dtype_size(p.dtype())), p.numel()).reshape(p.shape());
  if (slot.defined()) view.copy_(slot);  // from a checkpoint or an earlier arena
  slot = view;
  return slot;
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
  if (find_arena()) {
    for (const ArenaEntry& e : arena_)
      if (groups_[e.group].params[e.index].grad().defined()) {
        state_view(m_arena_, m_, e.group, e.index);
        state_view(v_arena_, v_, e.group, e.index);
      }
    const Tensor& p0 = arena_param();
    const Tensor g0(p0.impl().grad_slot);
    for (const kernels::ArenaSpans& s : arena_spans([](size_t, size_t) { return false; })) {
      if (p0.is_cuda())
        C3_CUDA("adam", kernels::cuda::adam_arena_f32(arena_ptr<float>(p0), arena_ptr<float>(g0), m_arena_.data<float>(),
                                                       v_arena_.data<float>(), s, a));
      else if (p0.dtype() == DType::f32)
        kernels::cpu::adam_arena(arena_ptr<float>(p0), arena_ptr<float>(g0), m_arena_.data<float>(), v_arena_.data<float>(), s, a);
      else
        kernels::cpu::adam_arena(arena_ptr<double>(p0), arena_ptr<double>(g0), m_arena_.data<double>(),
                                 v_arena_.data<double>(), s, a);
    }
    return;
  }
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
  reset_state_arenas();  // made again on the next step, from the loaded slots (zeros elsewhere)
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
  if (find_arena()) {
    std::vector<std::vector<char>> first(groups_.size());
    for (size_t gi = 0; gi < groups_.size(); ++gi) first[gi].assign(groups_[gi].params.size(), 0);
    if (momentum_ != 0)
      for (const ArenaEntry& e : arena_)
        if (groups_[e.group].params[e.index].grad().defined()) {
          first[e.group][e.index] = !buf_[e.group][e.index].defined();
          state_view(buf_arena_, buf_, e.group, e.index);
        }
    const Tensor& p0 = arena_param();
    const Tensor g0(p0.impl().grad_slot);
    for (const kernels::ArenaSpans& sp : arena_spans([&](size_t gi, size_t i) { return first[gi][i] != 0; })) {
      if (p0.is_cuda())
        C3_CUDA("sgd", kernels::cuda::sgd_arena_f32(arena_ptr<float>(p0), arena_ptr<float>(g0),
                                                     momentum_ != 0 ? buf_arena_.data<float>() : nullptr, sp, s));
      else if (p0.dtype() == DType::f32)
        kernels::cpu::sgd_arena(arena_ptr<float>(p0), arena_ptr<float>(g0), momentum_ != 0 ? buf_arena_.data<float>() : nullptr,
                                sp, s);
      else
        kernels::cpu::sgd_arena(arena_ptr<double>(p0), arena_ptr<double>(g0),
                                momentum_ != 0 ? buf_arena_.data<double>() : nullptr, sp, s);
    }
    return;
  }
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
  reset_state_arenas();
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
  const Arena &ta = teacher.arena(), &sa = student.arena();
  if (ta.defined() && sa.defined() && ta.params.shape() == sa.params.shape() && ta.buffers.shape() == sa.buffers.shape() &&
      ta.params.dtype() == sa.params.dtype()) {  // the same model packed the same way: one launch
    ema_update({ta.params, ta.buffers}, {sa.params, sa.buffers}, decay);
    return;
  }
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

namespace {
template <class T> void ema_launch(const kernels::EmaSpans<T>& s, Device d, float decay) {
  if (s.total == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    if (d == Device::cuda) {
      C3_CUDA("ema", kernels::cuda::ema_spans_f32(s, decay));
      return;
    }
  }
  kernels::cpu::ema_spans(s, decay);
}
// Pairs of one device and dtype, kMaxEmaSpans to a launch.
template <class T> void ema_pairs(const std::vector<Tensor>& teacher, const std::vector<Tensor>& student, double decay) {
  kernels::EmaSpans<T> s{};
  for (size_t i = 0; i < teacher.size(); ++i) {
    if (s.n == kernels::kMaxEmaSpans) ema_launch(s, teacher[0].device(), float(decay)), s = {};
    s.teacher[s.n] = teacher[i].data<T>();
    s.student[s.n] = student[i].data<T>();
    s.count[s.n++] = teacher[i].numel();
    s.total += teacher[i].numel();
  }
  ema_launch(s, teacher[0].device(), float(decay));
}
}  // namespace

void ema_update(const std::vector<Tensor>& teacher, const std::vector<Tensor>& student, double decay) {
  C3_CHECK(teacher.size() == student.size(), "ema_update: ", teacher.size(), " teacher tensors vs ", student.size(),
           " student tensors");
  if (teacher.empty()) return;
  for (size_t i = 0; i < teacher.size(); ++i) {
    check_same_shape("ema_update", teacher[i], student[i]);
    C3_CHECK(teacher[i].device() == teacher[0].device() && teacher[i].dtype() == teacher[0].dtype(), "ema_update: ",
             teacher[i].desc(), " among tensors of ", teacher[0].desc());
    check_float("ema_update", teacher[i]);
    check_cuda_dtype("ema_update", teacher[i]);
  }
  if (teacher[0].dtype() == DType::f32) ema_pairs<float>(teacher, student, decay);
  else ema_pairs<double>(teacher, student, decay);
}

}  // namespace c3::nn
