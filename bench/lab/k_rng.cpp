// Kernel lab: the Philox4x32-10 fills (kernels/cuda/random.h) at the engine's sizes: the
// Kaiming-normal initialization of the model's 44.5 M parameters, and per-pixel draws over
// the reference batch (16 x 256 x 512): raw words, uniforms, class indices and a keep mask.
// Each fill writes n outputs from ceil(n / 4) Philox blocks; the small scales' n are not
// multiples of 4, so the last group is a partial one.
#include <cmath>
#include <memory>

#include "bench/lab/lab.h"
#include "kernels/cpu/random.h"
#include "kernels/cuda/random.h"

namespace lab {
namespace {

using kernels::PhiloxDraw;

// A draw in the middle of a run: seed, offset (in 128-bit blocks) and stream 0, as the
// Generator (core/rng.h) hands them out.
constexpr PhiloxDraw kDraw{20240607, 123456789, 0};

template <class T> struct Fill {
  Buf<T> out;
};

// The device and the CPU fill the same draw; `cpu(out, n)` and `dev(out, n)` call the kernels,
// `cmp(device values, CPU values)` compares them.
template <class T, class CpuFn, class DevFn, class Cmp>
Case fill_case(Backend b, int64_t n, std::string shape, CpuFn cpu, DevFn dev, Cmp cmp) {
  auto st = std::make_shared<Fill<T>>();
  Fill<T>& v = *st;
  v.out = Buf<T>(b, n);
  return make_case(
      b, std::move(shape), double(n) * sizeof(T), [&v, st, n, cpu] { cpu(v.out.host(), n); },
      [&v, st, n, dev] { dev(v.out.dev(), n); }, [&v, st, cmp] { return cmp(v.out.download(), v.out.vec()); });
}

int64_t pixels(const Scale& s) { return s.N * s.H * s.W; }
std::string pixel_shape(const Scale& s) { return dims({s.N, s.H, s.W}); }

Case bits_case(Backend b, const Scale& s) {
  return fill_case<uint32_t>(
      b, pixels(s), pixel_shape(s), [](uint32_t* o, int64_t n) { kernels::cpu::random_bits(o, n, kDraw); },
      [b](uint32_t* o, int64_t n) { LAB_DEV(b, random_bits, o, n, kDraw); },
      [](const std::vector<uint32_t>& d, const std::vector<uint32_t>& r) { return compare_exact("bits", d, r); });
}

// The uniform's affine map is exact in double on both sides (affine_exact): bit for bit.
Case uniform_case(Backend b, const Scale& s) {
  return fill_case<float>(
      b, pixels(s), pixel_shape(s), [](float* o, int64_t n) { kernels::cpu::random_uniform(o, n, kDraw, 0.f, 1.f); },
      [b](float* o, int64_t n) { LAB_DEV(b, random_uniform, o, n, kDraw, 0.f, 1.f); },
      [](const std::vector<float>& d, const std::vector<float>& r) { return compare_exact("uniform", d, r); });
}

// Kaiming normal of a 3x3 convolution with 256 output channels: std = sqrt(2 / (9 * 256)).
// The emulator runs the CPU's logf/cosf/sinf: bit for bit. The GPU's device logf/sinf/cosf
// are within 1-2 ulp of glibc's; Box-Muller's radius is at most 5.78, so z moves by at most
// a few ulp of 5.78: 5e-6 of std absolute, 4e-6 relative.
Case normal_case(Backend b, const Scale& s) {
  const float std_dev = float(std::sqrt(2.0 / (9 * 256)));
  const bool gpu = b == Backend::cuda;
  return fill_case<float>(
      b, s.params, dims({s.params}),
      [std_dev](float* o, int64_t n) { kernels::cpu::random_normal(o, n, kDraw, 0.f, std_dev); },
      [b, std_dev](float* o, int64_t n) { LAB_DEV(b, random_normal, o, n, kDraw, 0.f, std_dev); },
      [gpu, std_dev](const std::vector<float>& d, const std::vector<float>& r) {
        return gpu ? compare("normal", d, r, 4e-6, 5e-6 * std_dev) : compare("normal", d, r, 0, 0);
      });
}

// A class index per pixel, [0, classes).
Case int_case(Backend b, const Scale& s) {
  const uint64_t range = uint64_t(s.classes);
  return fill_case<int32_t>(
      b, pixels(s), pixel_shape(s), [range](int32_t* o, int64_t n) { kernels::cpu::random_int(o, n, kDraw, 0, range); },
      [b, range](int32_t* o, int64_t n) { LAB_DEV(b, random_int, o, n, kDraw, 0, range); },
      [](const std::vector<int32_t>& d, const std::vector<int32_t>& r) { return compare_exact("randint", d, r); });
}

// A per-pixel keep mask with probability 0.9 (dropout 0.1).
Case bernoulli_case(Backend b, const Scale& s) {
  const uint64_t threshold = kernels::bernoulli_threshold(0.9);
  return fill_case<uint8_t>(
      b, pixels(s), pixel_shape(s),
      [threshold](uint8_t* o, int64_t n) { kernels::cpu::random_bernoulli(o, n, kDraw, threshold); },
      [b, threshold](uint8_t* o, int64_t n) { LAB_DEV(b, random_bernoulli, o, n, kDraw, threshold); },
      [](const std::vector<uint8_t>& d, const std::vector<uint8_t>& r) { return compare_exact("mask", d, r); });
}

const Register r1({"rng", "random_bits", 1, "raw Philox words, one per pixel", bits_case});
const Register r2({"rng", "random_uniform", 1, "U[0, 1) per pixel", uniform_case});
const Register r3({"rng", "random_normal", 1, "Kaiming-normal init of every parameter (Box-Muller)", normal_case});
const Register r4({"rng", "random_int", 1, "a class index per pixel (Lemire, rejection)", int_case});
const Register r5({"rng", "random_bernoulli", 1, "per-pixel keep mask, p = 0.9", bernoulli_case});

}  // namespace
}  // namespace lab
