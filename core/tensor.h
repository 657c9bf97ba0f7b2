// Tensor: shared storage + byte offset, a shape of rank 0..4, a dtype and a device.
//
// Tensors are always contiguous (row-major). Activations are NHWC: a pixel's channels are
// one contiguous row. Views along dimension 0 (narrow0, select0) and reshape share
// storage. Copies between devices go through to(). Autograd state (requires_grad, grad,
// grad_fn) lives in the TensorImpl, shared by all handles to it.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <span>
#include <vector>

#include "core/error.h"
#include "kernels/bf16_math.h"

namespace c3 {

// bf16: activations of mixed precision (core/precision.h): the ops of a model's forward and
// backward take it, computing in f32; ops without bf16 support refuse it naming themselves.
// The values are the kernels' codes of a dtype (kernels::cpu::cast).
enum class DType : uint8_t { f32, f64, i32, u8, bf16 };
enum class Device : uint8_t { cpu, cuda };
// The element of a bf16 tensor: its bit pattern (kernels/bf16_math.h converts).
using bf16 = kernels::bf16;

size_t dtype_size(DType t);
const char* dtype_name(DType t);
const char* device_name(Device d);
template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::u8; }
template <> constexpr DType dtype_of<bf16>() { return DType::bf16; }

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

// True when this build has the CUDA backend and a GPU is present.
bool cuda_available();

// Host synchronisation points: each read of tensor memory by the host (to_vector, item,
// to(Device::cpu) / cpu()) and each upload from ordinary host memory (from_host,
// from_vector), counted at these API points on every device, so that a CPU run counts what
// the same code makes a GPU wait for. Uploads of loader batches from page-locked memory
// (from_pinned) are asynchronous on a GPU and not counted. The total since the process
// started (the trainer logs its difference per training line: metrics.jsonl host_syncs).
uint64_t host_syncs();
// Counts one host synchronisation point made outside the API points above: where the CPU path
// of an op checks on the host what its GPU path reads back from the device.
void note_host_sync();

struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device = Device::cpu;
  // A module's arena (nn::Module::pack_parameters): between its tensors lie only zeros of
  // alignment, fewer than `arena_align` elements, so neighbours may be handled as one range.
  int64_t arena_align = 0;
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct Node;
struct TensorImpl {
  std::shared_ptr<Storage> storage;
  size_t offset = 0;  // bytes
  Shape shape;
  DType dtype = DType::f32;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;        // set on outputs of recorded ops
  std::shared_ptr<Node> grad_accumulator;  // created lazily for leaves
  // Where a leaf's gradient accumulates when set: a view into a gradient arena
  // (nn::Module::pack_parameters), so that the gradients of a model are one buffer.
  std::shared_ptr<TensorImpl> grad_slot;
  std::string name;                     // optional, for error messages
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor scalar(double value, DType dtype = DType::f32, Device device = Device::cpu);
  template <class T>
  static Tensor from_vector(const std::vector<T>& v, const Shape& shape, Device device = Device::cpu) {
    return from_host(std::span<const T>(v), shape, device);
  }
  // A copy of host values (any contiguous buffer: a vector, an array); counted in host_syncs().
  template <class T>
  static Tensor from_host(std::span<const T> v, const Shape& shape, Device device = Device::cpu);
  // The same from a loader's batch memory, page-locked on a GPU run (host_alloc_pinned): an
  // asynchronous DMA there, not counted in host_syncs(); from ordinary memory on a GPU the
  // copy waits and counts.
  template <class T>
  static Tensor from_pinned(std::span<const T> v, const Shape& shape, Device device);
  static Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype(), t.device()); }
  static Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  int rank() const { return static_cast<int>(shape().size()); }
  int64_t dim(int i) const;  // negative counts from the end
  int64_t numel() const { return shape_numel(shape()); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device; }
  bool is_cuda() const { return device() == Device::cuda; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  std::string desc() const;  // "f32[2,3,4,5] cpu"

  void* raw() const { return static_cast<char*>(impl().storage->data) + impl().offset; }
  template <class T> T* data() const {
    C3_CHECK(dtype() == dtype_of<T>(), "tensor data<", dtype_name(dtype_of<T>()), ">() on ", desc());
    return static_cast<T*>(raw());
  }

  // Views (share storage, no autograd history of their own unless recorded by an op).
  Tensor reshape(const Shape& shape) const;  // differentiable
  Tensor narrow0(int64_t start, int64_t length) const;  // differentiable view of rows
  Tensor select0(int64_t index) const;  // rank - 1, differentiable
  // A 1-D view of `n` elements of this tensor's storage from element `begin` of the storage
  // (not of this view); no autograd.
  Tensor storage_range(int64_t begin, int64_t n) const;
  int64_t storage_offset() const { return int64_t(impl().offset / dtype_size(dtype())); }  // in elements

  Tensor to(Device device) const;  // copy (differentiable); same device returns *this
  Tensor cpu() const { return to(Device::cpu); }
  Tensor cuda() const { return to(Device::cuda); }
  Tensor clone() const;      // differentiable copy
  Tensor cast(DType t) const;  // not differentiable (detached); same dtype returns *this
  void copy_(const Tensor& src);  // in place, across devices; no autograd
  template <class T> std::vector<T> to_vector() const;
  double item() const;  // a one-element tensor as double

  // Autograd
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool on = true);
  Tensor grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }
  void zero_grad() { impl().grad.reset(); }
  // Gradients of this leaf accumulate into `slot` (same shape, dtype and device): the first
  // gradient of a backward is copied there and later ones added in place; grad() is then a
  // view of the slot. zero_grad() keeps the slot and forgets the gradient.
  void set_grad_slot(const Tensor& slot);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor detach() const;  // shares storage, no history
  void backward(const Tensor& grad_output = Tensor()) const;

  TensorImpl& impl() const {
    C3_CHECK(impl_, "use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same_storage(const Tensor& o) const { return impl().storage == o.impl().storage; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// "op: shape mismatch: f32[2,3] cpu vs f32[3,2] cpu" style checks.
void check_same_device(const char* op, const Tensor& a, const Tensor& b);
void check_same_shape(const char* op, const Tensor& a, const Tensor& b);
void check_dtype(const char* op, const Tensor& t, DType want);
void check_float(const char* op, const Tensor& t);  // f32 or f64 (bf16 is refused)
void check_float_or_bf16(const char* op, const Tensor& t);  // f32, f64 or bf16
// For ops that take any dtype but bf16 (not supported by them yet): "op: bf16 tensors are not supported".
void check_not_bf16(const char* op, const Tensor& t);

}  // namespace c3
