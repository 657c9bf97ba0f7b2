#include "core/autograd.h"

#include <unordered_map>

#include "core/ops.h"

namespace c3 {

namespace {
thread_local bool t_grad_mode = true;

// Adds an arriving gradient into a leaf's .grad (a fresh tensor, never an alias of it), or
// into its gradient slot when it has one (a view into the model's gradient arena).
struct AccumulateGrad : Node {
  std::weak_ptr<TensorImpl> leaf;
  void apply(const Tensor& g, std::vector<Tensor>&) override {
    auto impl = leaf.lock();
    if (!impl) return;
    if (impl->grad_slot) {
      Tensor slot(impl->grad_slot);
      if (impl->grad == impl->grad_slot) {
        axpy_(slot, 1.0, g);
      } else if (impl->grad) {  // a gradient set before the slot (or by hand): fold it in
        slot.copy_(add(Tensor(impl->grad), g));
      } else {
        slot.copy_(g);
      }
      impl->grad = impl->grad_slot;
      return;
    }
    if (impl->grad) impl->grad = add(Tensor(impl->grad), g).impl_ptr();
    else impl->grad = g.clone().impl_ptr();
  }
};

std::shared_ptr<Node> edge_of(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  TensorImpl& impl = t.impl();
  if (impl.grad_fn) return impl.grad_fn;
  if (!impl.grad_accumulator) {
    auto acc = std::make_shared<AccumulateGrad>();
    acc->name = "AccumulateGrad";
    acc->leaf = t.impl_ptr();
    impl.grad_accumulator = acc;
  }
  return impl.grad_accumulator;
}
}  // namespace

bool grad_mode() { return t_grad_mode; }
NoGradGuard::NoGradGuard() : prev_(t_grad_mode) { t_grad_mode = false; }
NoGradGuard::~NoGradGuard() { t_grad_mode = prev_; }

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!t_grad_mode) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

void Node::apply(const Tensor& g, std::vector<Tensor>& grads_in) {
  C3_CHECK(fn, "backward through '", name,
           "' a second time: its saved tensors were freed after the first backward");
  Needs needs(next.size());
  for (size_t i = 0; i < next.size(); ++i) needs[i] = next[i] != nullptr;
  grads_in = fn(g, needs);
  fn = nullptr;  // frees the saved tensors
  C3_CHECK(grads_in.size() == next.size(), "backward of '", name, "' returned ", grads_in.size(),
           " gradients for ", next.size(), " inputs");
  for (size_t i = 0; i < next.size(); ++i)
    if (next[i] && grads_in[i].defined())
      C3_CHECK(grads_in[i].shape() == input_shapes[i], "backward of '", name, "': gradient ", i, " has shape ",
               shape_str(grads_in[i].shape()), ", input has ", shape_str(input_shapes[i]));
  for (size_t i = 0; i < next.size(); ++i)
    if (next[i] && grads_in[i].defined())
      C3_CHECK(grads_in[i].dtype() == input_dtypes[i], "backward of '", name, "': gradient ", i, " is ",
               dtype_name(grads_in[i].dtype()), ", input is ", dtype_name(input_dtypes[i]));
}

void record(const Tensor& out, const char* name, const std::vector<Tensor>& inputs, BackwardFn fn) {
  if (!t_grad_mode) return;
  bool any = false;
  for (const Tensor& t : inputs) any |= t.defined() && t.requires_grad();
  if (!any) return;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->fn = std::move(fn);
  for (const Tensor& t : inputs) {
    node->next.push_back(edge_of(t));
    node->input_shapes.push_back(t.defined() ? t.shape() : Shape{});
    node->input_dtypes.push_back(t.defined() ? t.dtype() : DType::f32);
  }
  out.impl().requires_grad = true;
  out.impl().grad_fn = std::move(node);
}

void Tensor::backward(const Tensor& grad_output) const {
  C3_CHECK(requires_grad(), "backward() on a tensor that does not require grad: ", desc());
  Tensor g = grad_output;
  if (!g.defined()) {
    C3_CHECK(numel() == 1, "backward() without a gradient needs a one-element tensor, got ", desc());
    g = Tensor::full(shape(), 1.0, dtype(), device());
  }
  C3_CHECK(g.shape() == shape(), "backward(): gradient ", g.desc(), " does not match ", desc());
  NoGradGuard no_grad;
  std::shared_ptr<Node> root = edge_of(*this);

  // Count, for every node reachable from the root, how many edges point at it.
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> stack{root.get()};
  deps[root.get()] = 0;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& nx : n->next) {
      if (!nx) continue;
      auto [it, fresh] = deps.emplace(nx.get(), 0);
      ++it->second;
      if (fresh) stack.push_back(nx.get());
    }
  }
  // Kahn's order: a node runs once every consumer has delivered its gradient.
  std::unordered_map<Node*, Tensor> pending{{root.get(), g}};
  std::vector<Node*> ready{root.get()};
  std::vector<Tensor> grads;
  while (!ready.empty()) {
    Node* n = ready.back();
    ready.pop_back();
    auto it = pending.find(n);
    grads.assign(n->next.size(), Tensor());
    if (it != pending.end()) {
      Tensor gout = std::move(it->second);
      pending.erase(it);
      n->apply(gout, grads);
    }
    for (size_t i = 0; i < n->next.size(); ++i) {
      Node* nx = n->next[i].get();
      if (!nx) continue;
      if (grads[i].defined()) {
        auto p = pending.find(nx);
        if (p == pending.end()) pending.emplace(nx, grads[i]);
        else p->second = add(p->second, grads[i]);
      }
      if (--deps[nx] == 0) ready.push_back(nx);
    }
  }
}

}  // namespace c3
