// The kernel lab: one registry of kernel benchmarks, shared by every family file
// (bench/lab/k_*.cpp) and run by bench/bench_kernels.cpp.
//
// An entry is (family, name, version, setup). setup(backend, scale) allocates the inputs at
// the reference protocol's shapes (Scale::full) or at small shapes for the emulator
// (Scale::small), and returns a Case: run() launches the kernel once on that backend,
// check() runs the CPU reference and the device kernel on the same inputs and compares.
// Versions of one kernel (1 = the library's kernel; 2, 3... experiments) sit side by side
// and are picked with --kernel name:version.
#pragma once
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "kernels/bf16_math.h"
#include "kernels/device_api.h"

namespace lab {

// cpu: kernels::cpu on host memory; emu: kernels::emu (the emulated CUDA kernels, "device"
// memory is host memory); cuda: kernels::cuda on the GPU.
enum class Backend { cpu, emu, cuda };
const char* backend_name(Backend b);

// The reference protocol (16 images of 256x512, OS8 features 2048 x 33 x 65, 19 classes),
// or small shapes whose sizes are not multiples of the block size, for the emulator. A
// Kernel's setup must accept every scale of Scale::checks().
struct Scale {
  int64_t N, H, W;     // images
  int64_t h, w, C;     // layer4 features (output stride 8)
  int64_t classes;
  int64_t params;      // optimizer: parameters (DeepLab-v2 ResNet-101 + projection head: 44.5 M)
  int64_t anchors;     // contrastive loss: sampled anchors
  bool small;
  static Scale full();
  static Scale tiny();
  static Scale edge();  // the smallest meaningful sizes, channels just past a block of 256
  // The small scales every check runs at (make test and bench_kernels --cpu): tiny and edge.
  static std::vector<Scale> checks();
};

struct Case {
  std::string shape;       // for the table, e.g. "16x33x65x2048"
  double bytes = 0;        // DRAM traffic of one run (minimum: each input read, each output written once)
  double flops = 0;        // arithmetic of one run, when it is the point (GEMM-like kernels)
  std::function<void()> run;           // one launch on the Case's backend
  std::function<std::string()> check;  // device vs CPU: "" when they agree, else what differs
};

struct Kernel {
  std::string family, name;
  int version = 1;
  std::string what;  // one line: what this version does differently
  std::function<Case(Backend, const Scale&)> setup;
};

// The usual Case: run() is `cpu` on Backend::cpu and `dev` otherwise; check() runs both once
// on the same inputs, then `cmp` (which downloads the device outputs). The lambdas own the
// buffers (a shared_ptr captured by value).
Case make_case(Backend b, std::string shape, double bytes, std::function<void()> cpu, std::function<void()> dev,
               std::function<std::string()> cmp);

std::vector<Kernel>& registry();
struct Register {
  explicit Register(Kernel k) { registry().push_back(std::move(k)); }
};

// Device memory of a backend (emu: host memory handed out by the emulator's runtime).
void* dev_malloc(Backend b, size_t bytes);
void dev_free(Backend b, void* p);
void to_dev(Backend b, void* dst, const void* src, size_t bytes);
void to_host(Backend b, void* dst, const void* src, size_t bytes);
void dev_memset(Backend b, void* dst, int v, size_t bytes);
void dev_sync(Backend b);

// A host array and, for a device backend, its device copy. host() is the CPU reference's
// memory; dev() the device kernel's (for Backend::cpu, dev() is host()).
template <class T> class Buf {
 public:
  Buf() = default;
  Buf(Backend b, int64_t n) : b_(b), h_(size_t(n)) {
    if (b_ != Backend::cpu) d_ = static_cast<T*>(dev_malloc(b_, bytes()));
  }
  Buf(Buf&& o) noexcept { *this = std::move(o); }
  Buf& operator=(Buf&& o) noexcept {
    std::swap(b_, o.b_), std::swap(h_, o.h_), std::swap(d_, o.d_);
    return *this;
  }
  ~Buf() {
    if (d_) dev_free(b_, d_);
  }
  T* host() { return h_.data(); }
  T* dev() { return d_ ? d_ : h_.data(); }
  std::vector<T>& vec() { return h_; }
  int64_t size() const { return int64_t(h_.size()); }
  size_t bytes() const { return h_.size() * sizeof(T); }
  void upload() {  // host -> device
    if (d_) to_dev(b_, d_, h_.data(), bytes());
  }
  std::vector<T> download() {  // the device's contents
    std::vector<T> out(h_.size());
    if (d_) to_host(b_, out.data(), d_, bytes());
    else out = h_;
    return out;
  }

 private:
  Backend b_ = Backend::cpu;
  std::vector<T> h_;
  T* d_ = nullptr;
};

// Deterministic fills (a fixed LCG: the same inputs on every run and machine).
void fill_uniform(std::vector<float>& v, float lo, float hi, uint64_t seed);
std::vector<float> uniform(int64_t n, float lo, float hi, uint64_t seed);  // n values by fill_uniform
void fill_labels(std::vector<uint8_t>& v, int classes, uint64_t seed, int ignore_every = 0);  // 255 every k-th
void fill_probs(std::vector<float>& v, int64_t rows, int64_t C, uint64_t seed);  // rows summing to 1

// "" when |a - b| <= atol + rtol |b| everywhere, else the worst element and its values.
std::string compare(const std::string& what, const std::vector<float>& dev, const std::vector<float>& ref,
                    double rtol, double atol);
template <class T> std::string compare_exact(const std::string& what, const std::vector<T>& dev, const std::vector<T>& ref) {
  for (size_t i = 0; i < ref.size(); ++i)
    if (std::memcmp(&dev[i], &ref[i], sizeof(T)) != 0) return what + ": differs at element " + std::to_string(i);
  return "";
}
// bf16 entries: the CPU side is what a CPU op does with bf16 tensors, widen the inputs, run the
// f32 kernel, round each output once.
std::vector<kernels::bf16> uniform_bf16(int64_t n, float lo, float hi, uint64_t seed);  // fill_uniform, rounded
void widen_into(const std::vector<kernels::bf16>& v, std::vector<float>& out);         // out resized to v's size
std::vector<float> widened(const std::vector<kernels::bf16>& v);
void narrow_into(const std::vector<float>& v, std::vector<kernels::bf16>& out);        // out resized to v's size
// compare() of the widened values; rtol = atol = 0: bit for bit (compare_exact).
std::string compare_bf16(const std::string& what, const std::vector<kernels::bf16>& dev,
                         const std::vector<kernels::bf16>& ref, double rtol, double atol);
// Concatenates the non-empty messages of several comparisons.
std::string all_of(std::initializer_list<std::string> msgs);

std::string dims(std::initializer_list<int64_t> d);  // "16x33x65x2048"

}  // namespace lab

// A device kernel of the Case's backend: kernels::cuda::F on the GPU, kernels::emu::F in
// emulation (the two namespaces declare the same functions, kernels/device_api.h).
#ifdef C3_HAVE_CUDA
#define LAB_DEV(backend, fn, ...) \
  ((backend) == ::lab::Backend::cuda ? ::kernels::cuda::fn(__VA_ARGS__) : ::kernels::emu::fn(__VA_ARGS__))
#else
#define LAB_DEV(backend, fn, ...) ::kernels::emu::fn(__VA_ARGS__)
#endif
