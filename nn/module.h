// Modules: a tree of named parameters, buffers and children, with PyTorch's state_dict names.
//
// A module registers pointers to its own Tensor members (modules are held by shared_ptr and
// never copied or moved, so the pointers stay valid). Names join with dots exactly as
// PyTorch's `state_dict()` does: "layer3.22.conv2.weight", "bn1.running_mean".
//
// Convolution weights are stored in cuDNN's NHWC filter layout [out, kh, kw, in] and
// registered with ParamLayout::conv_ohwi; state_dict() / load_state_dict() convert them
// from and to PyTorch's [out, in, kh, kw], so files keep PyTorch's names AND shapes.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace c3::nn {

enum class ParamLayout { plain, conv_ohwi };

// Tensors in an arena start at multiples of this many elements (64 bytes of f32), so every
// view is aligned for vector loads; the gaps are zeros and stay zeros under the optimizers.
constexpr int64_t kArenaAlign = 16;

// A model's arenas (Module::pack_parameters): flat 1-D tensors on the parameters' device.
struct Arena {
  Tensor params;   // every parameter: those that require grad first, each part in named_parameters() order
  Tensor grads;    // the gradient slots, at the same offsets as the parameters
  Tensor buffers;  // every buffer of the parameters' dtype (BatchNorm statistics), in named_buffers() order
  bool defined() const { return params.defined(); }
};

struct NamedTensor {
  std::string name;
  Tensor* tensor;
  ParamLayout layout;
};

struct LoadReport {
  std::vector<std::string> missing;     // in the model, not in the file
  std::vector<std::string> unexpected;  // in the file, not in the model
  std::vector<std::string> mismatched;  // "name: file [..] vs model [..]"
  int loaded = 0;
  bool clean() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string summary() const;  // human-readable, lists up to 10 of each kind
};

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  std::vector<NamedTensor> named_parameters() const;
  std::vector<NamedTensor> named_buffers() const;
  std::vector<Tensor> parameters() const;  // handles to the parameter tensors
  std::vector<std::pair<std::string, const Module*>> named_modules() const;

  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  void to(Device d);  // moves every parameter and buffer (keeps requires_grad); drops the arenas
  // Moves every parameter into one buffer and every buffer of the same dtype into another
  // (each tensor becomes a view at a kArenaAlign-aligned offset; names, shapes and values are
  // unchanged) and gives each parameter that requires grad a gradient slot in a third, so the
  // optimizer, the EMA, the gradient all-reduce and the broadcasts each work on one buffer.
  // All parameters must share one device and one float dtype. Call after to(device).
  void pack_parameters();
  const Arena& arena() const { return arena_; }  // undefined before pack_parameters()
  // Copies every parameter and buffer of `other` (a module of the same structure) into this
  // one's tensors, where they are (device to device on a GPU: no host round trip).
  void copy_from(const Module& other);
  void zero_grad();
  int64_t num_parameters() const;

  // PyTorch names and layouts, CPU tensors.
  std::vector<std::pair<std::string, Tensor>> state_dict() const;
  // strict: anything missing, unexpected or mis-shaped throws c3::Error listing it all and
  // loads nothing. Non-strict: loads what matches and reports the rest.
  LoadReport load_state_dict(const std::vector<std::pair<std::string, Tensor>>& entries, bool strict = true);

 protected:
  void register_parameter(const std::string& name, Tensor* t, ParamLayout layout = ParamLayout::plain);
  void register_buffer(const std::string& name, Tensor* t);
  template <class M> std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 private:
  void collect(const std::string& prefix, bool buffers, std::vector<NamedTensor>& out) const;
  std::vector<NamedTensor> params_, buffers_;
  Arena arena_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// Children named "0", "1", ... as torch.nn.Sequential / ModuleList name them.
class ModuleList : public Module {
 public:
  template <class M> std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    items_.push_back(m);
    return register_module(std::to_string(items_.size() - 1), m);
  }
  size_t size() const { return items_.size(); }
  Module& operator[](size_t i) const { return *items_[i]; }
  template <class M> M& at(size_t i) const { return dynamic_cast<M&>(*items_[i]); }

 private:
  std::vector<std::shared_ptr<Module>> items_;
};

// [O, kh, kw, I] <-> [O, I, kh, kw] (CPU; any float dtype).
Tensor ohwi_to_oihw(const Tensor& w);
Tensor oihw_to_ohwi(const Tensor& w);

}  // namespace c3::nn
