// Mixed precision: which ops compute in bf16 and which stay in f32, in one table, and the
// autocast scope that applies it (as PyTorch's torch.autocast, with the CUDA lists).
//
// Inside an AutocastScope(Precision::bf16):
//   lower  ops (convolutions) cast their f32 inputs to bf16, compute with f32 accumulation
//          and return bf16. A parameter is cast once per scope, and the parameters of a packed
//          model (nn::Module::pack_parameters) all at once, in one launch over their arena;
//          each use's gradient flows back to the f32 master weight, widened.
//   follow ops (BatchNorm, ReLU, add, pooling, resizing, concatenation, mixing) run in their
//          input's dtype: bf16 activations in and out, f32 statistics and affine parameters,
//          arithmetic in f32 with one rounding per output.
//   fp32   ops (softmax, the losses, normalisation of embeddings, DCRS, argmax) widen bf16
//          inputs to f32 and return f32, in or out of a scope.
// Gradients of bf16 activations are bf16; the optimizer and the EMA see only f32 tensors.
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"

namespace c3 {

// fp32: f32 everywhere; tf32: f32 tensors, TF32 tensor cores inside cuDNN/cuBLAS on a GPU
// (PyTorch's default for convolutions); bf16: mixed precision as above.
enum class Precision { tf32, fp32, bf16 };
const char* precision_name(Precision p);

enum class OpPrecision { lower, follow, fp32 };
struct OpPolicy {
  const char* op;
  OpPrecision precision;
  const char* note;
};
// The policy of every op a model or loss calls, in one place.
const std::vector<OpPolicy>& precision_table();
// The policy of `op` (its name in the table); an op not in the table is an error.
OpPrecision op_precision(const std::string& op);

// Autocast to bf16 while the scope lives (scopes nest; the innermost decides). The bf16
// copies of parameters are dropped when the outermost bf16 scope ends: open it around a whole
// step (forwards and backward), close it before the optimizer changes the weights.
class AutocastScope {
 public:
  explicit AutocastScope(Precision p);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool prev_;
};
bool autocast_bf16();
// bf16 copies made in the current scope: one per arena, or per parameter outside an arena.
size_t autocast_cached();

// An input of `op` as the table wants it: lower -> autocast_lower, fp32 -> to_fp32, follow ->
// itself. Ops call it on their floating inputs, so the table decides.
Tensor precision_input(const char* op, const Tensor& t);
// For a `lower` op: under autocast, an f32 tensor as bf16 (differentiable; a leaf is cast once
// per scope and reused); outside a scope, or for other dtypes, `t` itself.
Tensor autocast_lower(const Tensor& t);
// For an `fp32` op: a bf16 tensor widened to f32 (differentiable); any other tensor itself.
Tensor to_fp32(const Tensor& t);

}  // namespace c3
