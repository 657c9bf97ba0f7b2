#include "bench/lab/lab.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace lab {

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::cpu: return "cpu";
    case Backend::emu: return "emu";
    case Backend::cuda: return "cuda";
  }
  return "?";
}

// 44.5 M parameters: DeepLab-v2 ResNet-101 with the projection head (counted by torch_peer.py's model).
Scale Scale::full() { return {16, 256, 512, 33, 65, 2048, 19, 44'500'000, 19 * 20 * 16, false}; }
// Not multiples of any block size; at most ~300k elements per kernel keeps each emulated launch
// well under a second (the emulator runs ~30x slower than plain loops).
Scale Scale::tiny() { return {2, 61, 125, 9, 17, 131, 19, 300'001, 403, true}; }
// One cell per image at layer4 is not a DeepLab shape; two images (CutMix pairs them), 1x3
// features, 257 channels (one past a 256-thread block), 3 classes, 257 parameters.
Scale Scale::edge() { return {2, 7, 11, 1, 3, 257, 3, 257, 7, true}; }
std::vector<Scale> Scale::checks() { return {tiny(), edge()}; }

Case make_case(Backend b, std::string shape, double bytes, std::function<void()> cpu, std::function<void()> dev,
               std::function<std::string()> cmp) {
  Case c;
  c.shape = std::move(shape);
  c.bytes = bytes;
  c.run = b == Backend::cpu ? cpu : dev;
  c.check = [b, cpu, dev, cmp]() -> std::string {
    if (b == Backend::cpu) return "";
    cpu();
    dev();
    dev_sync(b);
    return cmp();
  };
  return c;
}

std::vector<Kernel>& registry() {
  static std::vector<Kernel> r;
  return r;
}

// Each backend's runtime: LAB_DEV picks kernels::cuda or kernels::emu.
void* dev_malloc(Backend b, size_t bytes) {
  void* p = LAB_DEV(b, device_malloc, bytes);
  if (!p) throw std::runtime_error("kernel lab: device out of memory allocating " + std::to_string(bytes) + " bytes");
  return p;
}
void dev_free(Backend b, void* p) { LAB_DEV(b, device_free, p); }
void to_dev(Backend b, void* dst, const void* src, size_t bytes) { LAB_DEV(b, memcpy_h2d, dst, src, bytes); }
void to_host(Backend b, void* dst, const void* src, size_t bytes) { LAB_DEV(b, memcpy_d2h, dst, src, bytes); }
void dev_memset(Backend b, void* dst, int v, size_t bytes) {
  if (b == Backend::cpu) std::memset(dst, v, bytes);
  else LAB_DEV(b, memset_device, dst, v, bytes);
}
void dev_sync(Backend b) {
  if (b != Backend::cpu) LAB_DEV(b, synchronize);
}

namespace {
struct Lcg {
  uint64_t s;
  explicit Lcg(uint64_t seed) : s(seed * 6364136223846793005ull + 1442695040888963407ull) {}
  uint32_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return uint32_t(s >> 33);
  }
  float unit() { return float(next() >> 7) * (1.0f / 16777216.0f); }  // [0, 1)
};
}  // namespace

void fill_uniform(std::vector<float>& v, float lo, float hi, uint64_t seed) {
  Lcg g(seed);
  for (float& x : v) x = lo + (hi - lo) * g.unit();
}

void fill_labels(std::vector<uint8_t>& v, int classes, uint64_t seed, int ignore_every) {
  Lcg g(seed);
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = (ignore_every > 0 && i % size_t(ignore_every) == 0) ? 255 : uint8_t(g.next() % uint32_t(classes));
}

void fill_probs(std::vector<float>& v, int64_t rows, int64_t C, uint64_t seed) {
  Lcg g(seed);
  for (int64_t r = 0; r < rows; ++r) {
    float* p = v.data() + r * C;
    const int64_t peak = g.next() % uint32_t(C);
    const float sharp = 1.f + 20.f * g.unit();  // a spread of confidences, as a teacher gives
    float sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += p[c] = std::exp((c == peak ? sharp : 0.f) * g.unit() + g.unit());
    for (int64_t c = 0; c < C; ++c) p[c] /= sum;
  }
}

std::vector<float> uniform(int64_t n, float lo, float hi, uint64_t seed) {
  std::vector<float> f(static_cast<size_t>(n));
  fill_uniform(f, lo, hi, seed);
  return f;
}

std::vector<kernels::bf16> uniform_bf16(int64_t n, float lo, float hi, uint64_t seed) {
  std::vector<kernels::bf16> out;
  narrow_into(uniform(n, lo, hi, seed), out);
  return out;
}

void widen_into(const std::vector<kernels::bf16>& v, std::vector<float>& out) {
  out.resize(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = kernels::widen(v[i]);
}

std::vector<float> widened(const std::vector<kernels::bf16>& v) {
  std::vector<float> out;
  widen_into(v, out);
  return out;
}

void narrow_into(const std::vector<float>& v, std::vector<kernels::bf16>& out) {
  out.resize(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = kernels::narrow<kernels::bf16>(v[i]);
}

std::string compare_bf16(const std::string& what, const std::vector<kernels::bf16>& dev,
                         const std::vector<kernels::bf16>& ref, double rtol, double atol) {
  if (rtol == 0 && atol == 0) return compare_exact(what, dev, ref);
  return compare(what, widened(dev), widened(ref), rtol, atol);
}

std::string compare(const std::string& what, const std::vector<float>& dev, const std::vector<float>& ref,
                    double rtol, double atol) {
  if (dev.size() != ref.size()) return what + ": sizes differ";
  double worst = -1;  // the largest excess over the tolerance
  size_t at = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double diff = std::fabs(double(dev[i]) - double(ref[i])), tol = atol + rtol * std::fabs(double(ref[i]));
    if (diff <= tol || (std::isnan(dev[i]) && std::isnan(ref[i]))) continue;
    const double excess = std::isnan(diff) ? INFINITY : diff - tol;
    if (excess > worst) worst = excess, at = i;
  }
  if (worst < 0) return "";
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s: element %zu is %.9g, reference %.9g (rtol %.1e, atol %.1e)", what.c_str(), at,
                double(dev[at]), double(ref[at]), rtol, atol);
  return buf;
}

std::string all_of(std::initializer_list<std::string> msgs) {
  std::string out;
  for (const std::string& m : msgs)
    if (!m.empty()) out += (out.empty() ? "" : "; ") + m;
  return out;
}

std::string dims(std::initializer_list<int64_t> d) {
  std::string s;
  for (int64_t v : d) s += (s.empty() ? "" : "x") + std::to_string(v);
  return s;
}

}  // namespace lab
