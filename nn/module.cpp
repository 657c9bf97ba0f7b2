#include "nn/module.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <sstream>

#include "core/ops.h"

namespace c3::nn {

void Module::register_parameter(const std::string& name, Tensor* t, ParamLayout layout) {
  params_.push_back({name, t, layout});
}
void Module::register_buffer(const std::string& name, Tensor* t) { buffers_.push_back({name, t, ParamLayout::plain}); }

void Module::collect(const std::string& prefix, bool buffers, std::vector<NamedTensor>& out) const {
  for (const NamedTensor& p : buffers ? buffers_ : params_)
    if (p.tensor->defined()) out.push_back({prefix + p.name, p.tensor, p.layout});
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", buffers, out);
}

std::vector<NamedTensor> Module::named_parameters() const {
  std::vector<NamedTensor> out;
  collect("", false, out);
  return out;
}
std::vector<NamedTensor> Module::named_buffers() const {
  std::vector<NamedTensor> out;
  collect("", true, out);
  return out;
}
std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (const NamedTensor& p : named_parameters()) out.push_back(*p.tensor);
  return out;
}
std::vector<std::pair<std::string, const Module*>> Module::named_modules() const {
  std::vector<std::pair<std::string, const Module*>> out{{"", this}};
  for (const auto& [name, child] : children_)
    for (auto& [sub, m] : child->named_modules()) out.emplace_back(sub.empty() ? name : name + "." + sub, m);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::to(Device d) {
  bool moved_any = false;
  auto move = [d, &moved_any](const NamedTensor& p) {
    const bool rg = p.tensor->requires_grad();
    Tensor moved = p.tensor->detach().to(d);
    if (moved.same_storage(*p.tensor)) return;
    *p.tensor = rg ? moved.set_requires_grad(true) : moved;
    moved_any = true;
  };
  for (const NamedTensor& p : named_parameters()) move(p);
  for (const NamedTensor& p : named_buffers()) move(p);
  if (moved_any) arena_ = Arena{};
}

namespace {
int64_t arena_size(const std::vector<NamedTensor>& ts) {
  int64_t n = 0;
  for (const NamedTensor& t : ts) n += (t.tensor->numel() + kArenaAlign - 1) / kArenaAlign * kArenaAlign;
  return n;
}
// A view of `numel` elements of the flat `arena` at `offset`, shaped as `like`.
Tensor arena_view(const Tensor& arena, int64_t offset, const Tensor& like) {
  return arena.narrow0(offset, like.numel()).reshape(like.shape());
}
}  // namespace

void Module::pack_parameters() {
  NoGradGuard ng;
  std::vector<NamedTensor> params = named_parameters();
  if (params.empty()) return;
  const Device dev = params[0].tensor->device();
  const DType dt = params[0].tensor->dtype();
  for (const NamedTensor& p : params)
    C3_CHECK(p.tensor->device() == dev && p.tensor->dtype() == dt, "pack_parameters: parameter ", p.name, " is ",
             p.tensor->desc(), ", the first is ", params[0].tensor->desc(), " (one device and dtype per arena)");
  check_float("pack_parameters", *params[0].tensor);
  std::vector<NamedTensor> bufs;
  for (const NamedTensor& b : named_buffers())
    if (b.tensor->device() == dev && b.tensor->dtype() == dt) bufs.push_back(b);

  Arena a;
  a.params = Tensor::zeros({arena_size(params)}, dt, dev);
  a.grads = Tensor::zeros({arena_size(params)}, dt, dev);
  a.buffers = Tensor::zeros({arena_size(bufs)}, dt, dev);
  // Trainable parameters first, so that the optimizer's spans are not cut by frozen ones.
  std::stable_partition(params.begin(), params.end(), [](const NamedTensor& p) { return p.tensor->requires_grad(); });
  int64_t off = 0;
  for (const NamedTensor& p : params) {
    Tensor view = arena_view(a.params, off, *p.tensor);
    view.copy_(*p.tensor);
    if (p.tensor->requires_grad()) {
      view.set_requires_grad(true);
      view.set_grad_slot(arena_view(a.grads, off, *p.tensor));
    }
    *p.tensor = view;
    off += (view.numel() + kArenaAlign - 1) / kArenaAlign * kArenaAlign;
  }
  off = 0;
  for (const NamedTensor& b : bufs) {
    Tensor view = arena_view(a.buffers, off, *b.tensor);
    view.copy_(*b.tensor);
    *b.tensor = view;
    off += (view.numel() + kArenaAlign - 1) / kArenaAlign * kArenaAlign;
  }
  for (const Tensor* t : {&a.params, &a.grads, &a.buffers}) t->impl().storage->arena_align = kArenaAlign;
  arena_ = std::move(a);
}

void Module::copy_from(const Module& other) {
  NoGradGuard ng;
  for (bool buffers : {false, true}) {
    const std::vector<NamedTensor> mine = buffers ? named_buffers() : named_parameters();
    const std::vector<NamedTensor> theirs = buffers ? other.named_buffers() : other.named_parameters();
    C3_CHECK(mine.size() == theirs.size(), "copy_from: ", theirs.size(), " ", buffers ? "buffers" : "parameters",
             " into a module with ", mine.size());
    for (size_t i = 0; i < mine.size(); ++i) {
      C3_CHECK(mine[i].name == theirs[i].name && mine[i].tensor->shape() == theirs[i].tensor->shape() &&
                   mine[i].tensor->dtype() == theirs[i].tensor->dtype(),
               "copy_from: ", theirs[i].name, " ", theirs[i].tensor->desc(), " into ", mine[i].name, " ",
               mine[i].tensor->desc());
      mine[i].tensor->copy_(*theirs[i].tensor);
    }
  }
}

void Module::zero_grad() {
  for (const NamedTensor& p : named_parameters()) p.tensor->zero_grad();
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const NamedTensor& p : named_parameters()) n += p.tensor->numel();
  return n;
}

namespace {
// out[o, i, y, x] = in[o, y, x, i] and back; on the CPU, any float or int dtype.
Tensor permute_filter(const Tensor& w, bool to_oihw) {
  C3_CHECK(w.rank() == 4, "filter layout conversion needs a rank-4 tensor, got ", w.desc());
  Tensor src = w.detach().cpu();
  const int64_t O = src.dim(0);
  const int64_t A = src.dim(1), B = src.dim(2), C = src.dim(3);  // OHWI: A=kh B=kw C=I; OIHW: A=I B=kh C=kw
  Shape out_shape = to_oihw ? Shape{O, C, A, B} : Shape{O, B, C, A};
  Tensor out = Tensor::empty(out_shape, src.dtype());
  const size_t es = dtype_size(src.dtype());
  const char* s = static_cast<const char*>(src.raw());
  char* d = static_cast<char*>(out.raw());
  for (int64_t o = 0; o < O; ++o)
    for (int64_t a = 0; a < A; ++a)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < C; ++c) {
          const int64_t si = ((o * A + a) * B + b) * C + c;
          // OHWI (a=y, b=x, c=i) -> OIHW index ((o*C + c)*A + a)*B + b
          // OIHW (a=i, b=y, c=x) -> OHWI index ((o*B + b)*C + c)*A + a
          const int64_t di = to_oihw ? ((o * C + c) * A + a) * B + b : ((o * B + b) * C + c) * A + a;
          std::memcpy(d + di * es, s + si * es, es);
        }
  return out;
}
}  // namespace

Tensor ohwi_to_oihw(const Tensor& w) { return permute_filter(w, true); }
Tensor oihw_to_ohwi(const Tensor& w) { return permute_filter(w, false); }

std::vector<std::pair<std::string, Tensor>> Module::state_dict() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (bool buffers : {false, true})
    for (const NamedTensor& p : buffers ? named_buffers() : named_parameters()) {
      Tensor t = p.tensor->detach().cpu();
      out.emplace_back(p.name, p.layout == ParamLayout::conv_ohwi ? ohwi_to_oihw(t) : t.clone());
    }
  return out;
}

std::string LoadReport::summary() const {
  std::ostringstream s;
  auto list = [&](const char* what, const std::vector<std::string>& v) {
    if (v.empty()) return;
    s << v.size() << " " << what << ":";
    for (size_t i = 0; i < v.size() && i < 10; ++i) s << (i ? ", " : " ") << v[i];
    if (v.size() > 10) s << ", ...";
    s << ". ";
  };
  s << loaded << " tensors loaded. ";
  list("missing from the file", missing);
  list("unexpected in the file", unexpected);
  list("with the wrong shape or dtype", mismatched);
  return s.str();
}

LoadReport Module::load_state_dict(const std::vector<std::pair<std::string, Tensor>>& entries, bool strict) {
  std::map<std::string, const Tensor*> file;
  for (const auto& [name, t] : entries) file[name] = &t;
  std::vector<NamedTensor> mine = named_parameters();
  for (const NamedTensor& b : named_buffers()) mine.push_back(b);

  LoadReport rep;
  std::vector<std::pair<const NamedTensor*, Tensor>> plan;
  std::map<std::string, bool> known;
  for (const NamedTensor& p : mine) {
    known[p.name] = true;
    auto it = file.find(p.name);
    if (it == file.end()) {
      rep.missing.push_back(p.name);
      continue;
    }
    Tensor src = it->second->detach().cpu();
    if (p.layout == ParamLayout::conv_ohwi && src.rank() == 4) src = oihw_to_ohwi(src);
    if (src.dtype() != p.tensor->dtype()) {  // F16/BF16 files were widened to F32 when read
      rep.mismatched.push_back(p.name + ": file " + dtype_name(src.dtype()) + " vs model " +
                               dtype_name(p.tensor->dtype()));
      continue;
    }
    if (src.shape() != p.tensor->shape()) {
      Shape file_shape = it->second->shape();
      rep.mismatched.push_back(p.name + ": file " + shape_str(file_shape) + " vs model " +
                               shape_str(p.layout == ParamLayout::conv_ohwi ? ohwi_to_oihw(*p.tensor).shape()
                                                                            : p.tensor->shape()));
      continue;
    }
    plan.emplace_back(&p, src);
  }
  for (const auto& [name, t] : entries)
    if (!known.count(name)) rep.unexpected.push_back(name);
  if (strict && !rep.clean())
    throw Error("load_state_dict (strict): " + rep.summary() + "Use non-strict loading to load the rest.");
  for (auto& [p, src] : plan) {
    p->tensor->copy_(src);  // into the existing storage, on its device
    ++rep.loaded;
  }
  return rep;
}

}  // namespace c3::nn
