#include "core/tensor.h"

#include <atomic>

#include <cstring>
#include <sstream>

#include "core/alloc.h"
#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"

namespace c3 {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::i32: return 4;
    case DType::u8: return 1;
    case DType::bf16: return 2;
  }
  return 0;
}
const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::i32: return "i32";
    case DType::u8: return "u8";
    case DType::bf16: return "bf16";
  }
  return "?";
}
const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? "," : "") << s[i];
  o << "]";
  return o.str();
}
int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

bool cuda_available() {
#ifdef C3_HAVE_CUDA
  static const bool ok = kernels::cuda::device_count() > 0;
  return ok;
#else
  return false;
#endif
}

Storage::Storage(size_t n, Device d) : bytes(n), device(d) {
  if (d == Device::cpu) {
    data = host_alloc(n);
    note_host_tensor_alloc(n);
  } else {
    C3_CHECK(cuda_available(), "cannot allocate CUDA memory: ",
#ifdef C3_HAVE_CUDA
             "no GPU is visible"
#else
             "this build has no CUDA backend"
#endif
    );
    data = cuda_allocator().allocate(n);
  }
  note_alloc_event(this, n, true);
}
Storage::~Storage() {
  note_alloc_event(this, bytes, false);
  if (device == Device::cpu) {
    host_free(data);
    note_host_tensor_free(bytes);
  } else {
    cuda_allocator().release(data);
  }
}

namespace {
void copy_bytes(void* dst, Device dd, const void* src, Device sd, size_t n) {
  if (n == 0) return;
  if (dd == Device::cpu && sd == Device::cpu) { std::memcpy(dst, src, n); return; }
  C3_CUDA("copy", {
    if (dd == Device::cuda && sd == Device::cpu) kernels::cuda::memcpy_h2d(dst, src, n);
    else if (dd == Device::cpu && sd == Device::cuda) kernels::cuda::memcpy_d2h(dst, src, n);
    else kernels::cuda::memcpy_d2d(dst, src, n);
  });
}
void check_shape(const Shape& s) {
  C3_CHECK(s.size() <= 4, "tensor rank must be 0 to 4, got shape ", shape_str(s));
  for (int64_t d : s) C3_CHECK(d >= 0, "negative dimension in shape ", shape_str(s));
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  check_shape(shape);
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = dtype;
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype), device);
  return Tensor(impl);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (device == Device::cpu) std::memset(t.raw(), 0, t.nbytes());
  else C3_CUDA("zeros", kernels::cuda::memset_device(t.raw(), 0, t.nbytes()));
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  fill_(t, value);
  return t;
}

Tensor Tensor::scalar(double value, DType dtype, Device device) { return full({}, value, dtype, device); }

namespace {
std::atomic<uint64_t> g_host_syncs{0};
}  // namespace
uint64_t host_syncs() { return g_host_syncs.load(std::memory_order_relaxed); }
// A function of its own: a debugger's breakpoint on it shows where each sync comes from.
[[gnu::noinline]] void note_host_sync() { g_host_syncs.fetch_add(1, std::memory_order_relaxed); }

namespace {
template <class T> Tensor upload(std::span<const T> v, const Shape& shape, Device device) {
  C3_CHECK(static_cast<int64_t>(v.size()) == shape_numel(shape), "from_host: ", v.size(),
           " values for shape ", shape_str(shape));
  Tensor t = Tensor::empty(shape, dtype_of<T>(), device);
  copy_bytes(t.raw(), device, v.data(), Device::cpu, t.nbytes());
  return t;
}
}  // namespace

template <class T>
Tensor Tensor::from_pinned(std::span<const T> v, const Shape& shape, Device device) {
#ifdef C3_HAVE_CUDA
  // From the page-locked pool: queued on the stream, and the buffer's block is not handed
  // out again before the copy is done. Anything else waits for its copy (a host sync).
  if (device == Device::cuda && !v.empty() && pinned_allocator().owns(v.data())) {
    C3_CHECK(static_cast<int64_t>(v.size()) == shape_numel(shape), "from_pinned: ", v.size(),
             " values for shape ", shape_str(shape));
    Tensor t = empty(shape, dtype_of<T>(), device);
    kernels::cuda::memcpy_h2d_async(t.raw(), v.data(), t.nbytes());
    pinned_allocator().record_use(v.data());
    return t;
  }
  if (device == Device::cuda) note_host_sync();
#endif
  return upload(v, shape, device);
}
template <class T>
Tensor Tensor::from_host(std::span<const T> v, const Shape& shape, Device device) {
  note_host_sync();
  return upload(v, shape, device);
}
template Tensor Tensor::from_host(std::span<const float>, const Shape&, Device);
template Tensor Tensor::from_host(std::span<const double>, const Shape&, Device);
template Tensor Tensor::from_host(std::span<const int32_t>, const Shape&, Device);
template Tensor Tensor::from_host(std::span<const uint8_t>, const Shape&, Device);
template Tensor Tensor::from_host(std::span<const bf16>, const Shape&, Device);
template Tensor Tensor::from_pinned(std::span<const float>, const Shape&, Device);
template Tensor Tensor::from_pinned(std::span<const uint8_t>, const Shape&, Device);

template <class T> std::vector<T> Tensor::to_vector() const {
  C3_CHECK(dtype() == dtype_of<T>(), "to_vector<", dtype_name(dtype_of<T>()), ">() on ", desc());
  std::vector<T> v(static_cast<size_t>(numel()));
  note_host_sync();
  copy_bytes(v.data(), Device::cpu, raw(), device(), nbytes());
  return v;
}
template std::vector<float> Tensor::to_vector() const;
template std::vector<double> Tensor::to_vector() const;
template std::vector<int32_t> Tensor::to_vector() const;
template std::vector<uint8_t> Tensor::to_vector() const;
template std::vector<bf16> Tensor::to_vector() const;

double Tensor::item() const {
  C3_CHECK(numel() == 1, "item() needs one element, got ", desc());
  switch (dtype()) {
    case DType::f32: return to_vector<float>()[0];
    case DType::f64: return to_vector<double>()[0];
    case DType::i32: return to_vector<int32_t>()[0];
    case DType::u8: return to_vector<uint8_t>()[0];
    case DType::bf16: return kernels::to_f32(to_vector<bf16>()[0]);
  }
  return 0;
}

int64_t Tensor::dim(int i) const {
  const int r = rank();
  C3_CHECK(i >= -r && i < r, "dim(", i, ") out of range for ", desc());
  return shape()[i < 0 ? i + r : i];
}

std::string Tensor::desc() const {
  if (!defined()) return "undefined";
  return std::string(dtype_name(dtype())) + shape_str(shape()) + " " + device_name(device());
}

Tensor Tensor::reshape(const Shape& s) const {
  check_shape(s);
  C3_CHECK(shape_numel(s) == numel(), "reshape: cannot view ", desc(), " as ", shape_str(s));
  auto impl = std::make_shared<TensorImpl>(*impl_);
  impl->shape = s;
  impl->grad.reset(); impl->grad_fn.reset(); impl->grad_accumulator.reset(); impl->grad_slot.reset();
  impl->requires_grad = false;
  Tensor out(impl);
  Shape orig = shape();
  record(out, "reshape", {*this}, [orig](const Tensor& g, const Needs&) {
    return std::vector<Tensor>{g.reshape(orig)};
  });
  return out;
}

Tensor Tensor::narrow0(int64_t start, int64_t length) const {
  C3_CHECK(rank() >= 1 && start >= 0 && length >= 0 && start + length <= shape()[0], "narrow0(", start, ", ",
           length, ") out of range for ", desc());
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->dtype = dtype();
  impl->shape = shape();
  impl->shape[0] = length;
  const size_t row = static_cast<size_t>(numel() / std::max<int64_t>(shape()[0], 1)) * dtype_size(dtype());
  impl->offset = impl_->offset + static_cast<size_t>(start) * row;
  Tensor out(impl);
  Shape orig = shape();
  record(out, "narrow0", {*this}, [orig, start, length](const Tensor& g, const Needs&) {
    Tensor gi = Tensor::zeros(orig, g.dtype(), g.device());
    gi.narrow0(start, length).copy_(g);
    return std::vector<Tensor>{gi};
  });
  return out;
}

Tensor Tensor::storage_range(int64_t begin, int64_t n) const {
  const size_t es = dtype_size(dtype());
  C3_CHECK(begin >= 0 && n >= 0 && size_t(begin + n) * es <= impl().storage->bytes, "storage_range(", begin, ", ", n,
           ") outside the storage of ", desc(), " (", impl().storage->bytes / es, " elements)");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->dtype = dtype();
  impl->shape = {n};
  impl->offset = size_t(begin) * es;
  return Tensor(impl);
}

Tensor Tensor::select0(int64_t index) const {
  Shape s(shape().begin() + 1, shape().end());
  return narrow0(index, 1).reshape(s);
}

void Tensor::copy_(const Tensor& src) {
  C3_CHECK(src.shape() == shape() && src.dtype() == dtype(), "copy_: ", src.desc(), " into ", desc());
  copy_bytes(raw(), device(), src.raw(), src.device(), nbytes());
}

Tensor Tensor::to(Device d) const {
  if (d == Device::cpu) note_host_sync();
  if (d == device()) return *this;
  Tensor out = empty(shape(), dtype(), d);
  out.copy_(*this);
  Device from = device();
  record(out, "to", {*this}, [from](const Tensor& g, const Needs&) { return std::vector<Tensor>{g.to(from)}; });
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  out.copy_(*this);
  record(out, "clone", {*this}, [](const Tensor& g, const Needs&) { return std::vector<Tensor>{g}; });
  return out;
}

Tensor Tensor::cast(DType t) const {
  if (t == dtype()) return *this;
  return c3::cast_raw(*this, t);
}

Tensor& Tensor::set_requires_grad(bool on) {
  C3_CHECK(!on || dtype() == DType::f32 || dtype() == DType::f64, "requires_grad on a non-float tensor ", desc(),
           " (gradients need f32 or f64)");
  C3_CHECK(is_leaf(), "set_requires_grad on a non-leaf tensor (use detach() first)");
  impl().requires_grad = on;
  return *this;
}

void Tensor::set_grad_slot(const Tensor& slot) {
  C3_CHECK(is_leaf(), "set_grad_slot on a non-leaf tensor ", desc());
  C3_CHECK(slot.shape() == shape() && slot.dtype() == dtype() && slot.device() == device(), "set_grad_slot: slot ",
           slot.desc(), " for ", desc());
  impl().grad_slot = slot.impl_ptr();
  impl().grad.reset();
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->offset = impl_->offset;
  impl->shape = shape();
  impl->dtype = dtype();
  return Tensor(impl);
}

void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  C3_CHECK(a.device() == b.device(), op, ": device mismatch: ", a.desc(), " vs ", b.desc());
}
void check_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  check_same_device(op, a, b);
  C3_CHECK(a.shape() == b.shape(), op, ": shape mismatch: ", a.desc(), " vs ", b.desc());
  C3_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch: ", a.desc(), " vs ", b.desc());
}
void check_dtype(const char* op, const Tensor& t, DType want) {
  C3_CHECK(t.dtype() == want, op, ": expected ", dtype_name(want), ", got ", t.desc());
}
void check_float(const char* op, const Tensor& t) {
  C3_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, op, ": expected a float tensor (f32 or f64), got ",
           t.desc());
}
void check_float_or_bf16(const char* op, const Tensor& t) {
  C3_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64 || t.dtype() == DType::bf16, op,
           ": expected a floating tensor (f32, f64 or bf16), got ", t.desc());
}
void check_not_bf16(const char* op, const Tensor& t) {
  C3_CHECK(t.dtype() != DType::bf16, op, ": bf16 tensors are not supported (cast to f32 first), got ", t.desc());
}

}  // namespace c3
