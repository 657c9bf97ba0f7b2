#include "core/precision.h"

#include <unordered_map>

#include "core/autograd.h"
#include "core/ops_elementwise.h"

namespace c3 {
namespace {

thread_local bool t_bf16 = false;
thread_local int t_depth = 0;  // open bf16 scopes
// The bf16 copies made in the current outermost scope: of a whole arena (a packed model's
// parameters, one cast launch for all of them) by its storage, or of a lone parameter by its
// tensor. Each entry holds its f32 source, so the key's address is not reused meanwhile.
struct Cached {
  Tensor master, copy;
};
thread_local std::unordered_map<const void*, Cached> t_cache;

// Parameters: trainable leaves, and the tensors of a packed model (a teacher's weights).
bool in_arena(const Tensor& t) { return t.impl().storage->arena_align > 0; }
bool is_parameter(const Tensor& t) { return t.is_leaf() && (t.requires_grad() || in_arena(t)); }

// The bf16 copy of parameter t (cached).
Tensor bf16_copy(const Tensor& t) {
  if (in_arena(t)) {
    const Storage* key = t.impl().storage.get();
    auto it = t_cache.find(key);
    if (it == t_cache.end()) {
      const Tensor whole = t.storage_range(0, int64_t(key->bytes / dtype_size(t.dtype())));
      it = t_cache.emplace(key, Cached{whole, cast_raw(whole, DType::bf16)}).first;
    }
    return it->second.copy.storage_range(t.storage_offset(), t.numel()).reshape(t.shape());
  }
  auto it = t_cache.find(&t.impl());
  if (it == t_cache.end()) it = t_cache.emplace(&t.impl(), Cached{t, cast_raw(t, DType::bf16)}).first;
  return it->second.copy.detach();
}

}  // namespace

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::tf32: return "tf32";
    case Precision::fp32: return "fp32";
    case Precision::bf16: return "bf16";
  }
  return "?";
}

const std::vector<OpPolicy>& precision_table() {
  using enum OpPrecision;
  static const std::vector<OpPolicy> table = {
      {"conv2d", lower, "bf16 input, weight and bias; f32 accumulation; bf16 output"},
      {"batch_norm", follow, "bf16 activations; f32 statistics, affine and running buffers"},
      {"relu", follow, ""},
      {"add", follow, "residual sums, ASPP-v2 branch sums, gradient accumulation"},
      {"add_relu", follow, "the end of a residual block"},
      {"mul", follow, "dropout"},
      {"sum", follow, "f32 accumulation, one rounding (bias gradients)"},
      {"max_pool2d", follow, ""},
      {"global_avg_pool", follow, "f32 accumulation"},
      {"resize_bilinear", follow, "f32 interpolation weights and accumulation"},
      {"concat", follow, ""},
      {"gather_rows", follow, "row copies (un-shuffling a batch); the backward sums in f32"},
      {"cutmix", follow, "mixing and un-mixing copy values exactly"},
      {"softmax", fp32, "teacher probabilities"},
      {"log_softmax", fp32, ""},
      {"cross_entropy", fp32, "supervised loss"},
      {"soft_cross_entropy", fp32, "consistency loss"},
      {"l2_normalize", fp32, "embeddings of the contrastive loss"},
      {"matmul", fp32, "similarities of the contrastive loss"},
      {"argmax_channels", fp32, "predictions, accuracy statistics"},
      {"dcrs", fp32, "thresholds and confidences"},
  };
  return table;
}

OpPrecision op_precision(const std::string& op) {
  for (const OpPolicy& p : precision_table())
    if (op == p.op) return p.precision;
  throw Error("precision: the op '" + op + "' has no entry in the precision table (core/precision.cpp)");
}

AutocastScope::AutocastScope(Precision p) : prev_(t_bf16) {
  t_bf16 = p == Precision::bf16;
  if (t_bf16) ++t_depth;
}

AutocastScope::~AutocastScope() {
  if (t_bf16 && --t_depth == 0) t_cache.clear();
  t_bf16 = prev_;
}

bool autocast_bf16() { return t_bf16; }
size_t autocast_cached() { return t_cache.size(); }

Tensor autocast_lower(const Tensor& t) {
  if (!t_bf16 || !t.defined() || t.dtype() != DType::f32) return t;
  if (!is_parameter(t)) return cast(t, DType::bf16);  // an activation: cast as it comes
  Tensor v = bf16_copy(t);
  if (any_requires_grad({&t}))
    record(v, "autocast_lower", {t}, [](const Tensor& g, const Needs&) {
      return std::vector<Tensor>{cast(g, DType::f32)};
    });
  return v;
}

Tensor to_fp32(const Tensor& t) {
  if (!t.defined() || t.dtype() != DType::bf16) return t;
  return cast(t, DType::f32);
}

Tensor precision_input(const char* op, const Tensor& t) {
  switch (op_precision(op)) {
    case OpPrecision::lower: return autocast_lower(t);
    case OpPrecision::fp32: return to_fp32(t);
    case OpPrecision::follow: return t;
  }
  return t;
}

}  // namespace c3
