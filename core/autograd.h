// Define-by-run autograd.
//
// An op that wants a gradient calls record(out, "name", {inputs...}, backward_fn) after
// computing its output. record() does nothing when grad mode is off or no input requires a
// gradient. backward_fn receives d(loss)/d(out) and returns one gradient per input (an
// undefined Tensor where `needs[i]` is false); it captures exactly what it needs (saved
// tensors), and is destroyed right after backward has used it, which frees them.
// Gradients arriving at a leaf accumulate into leaf.grad().
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace c3 {

using Needs = std::vector<bool>;
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out, const Needs& needs)>;

struct Node {
  const char* name = "";
  std::vector<std::shared_ptr<Node>> next;  // per input: its grad_fn / accumulator / null
  std::vector<Shape> input_shapes;          // to check the gradients a backward returns
  std::vector<DType> input_dtypes;          // (a bf16 input gets a bf16 gradient)
  BackwardFn fn;
  virtual ~Node() = default;
  virtual void apply(const Tensor& grad_out, std::vector<Tensor>& grads_in);
};

bool grad_mode();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when any input requires grad and grad mode is on (ops use it to skip saving).
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);
void record(const Tensor& out, const char* name, const std::vector<Tensor>& inputs, BackwardFn fn);

}  // namespace c3
