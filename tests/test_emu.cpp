// Tests of the emulator itself: exact results for the CUDA idioms our kernels use, and
// the rule violations it must catch.
#include <doctest/doctest.h>

#include <numeric>
#include <string>
#include <vector>

#include "emu_kernels/kernels.h"
#include "kernels/launch_counter.h"

using namespace emu_test;

namespace {

// The race-detecting build (c3tests-race): a data race between barriers is an emu::Error.
const bool kTsan = emu::race_detector();

struct OrderGuard {
  explicit OrderGuard(emu::FiberOrder o) { emu::set_fiber_order(o); }
  ~OrderGuard() { emu::set_fiber_order(emu::FiberOrder::forward); }
};

}  // namespace

TEST_CASE("emu: block reduction and warp-shuffle reduction are exact, both fiber orders") {
  for (auto order : {emu::FiberOrder::forward, emu::FiberOrder::reverse}) {
    OrderGuard g(order);
    for (int n : {1, 255, 256, 1000, 4097}) {
      std::vector<int> in(n);
      for (int i = 0; i < n; ++i) in[i] = (i * 37) % 101 - 50;
      const long expect = std::accumulate(in.begin(), in.end(), 0L);
      int blocks = (n + 255) / 256;
      std::vector<int> part(blocks, -7);
      CHECK(launch(block_sum, dim3(blocks), dim3(256), 0, nullptr, in.data(), part.data(), n) == cudaSuccess);
      CHECK(std::accumulate(part.begin(), part.end(), 0L) == expect);
      int total = 0;
      launch(warp_sum, dim3((n + 95) / 96), dim3(96), 0, nullptr, in.data(), &total, n);
      CHECK(total == expect);
    }
  }
}

TEST_CASE("emu: every launch counts one in kernels::launches()") {
  std::vector<int> in(300, 1), part(2, 0);
  const uint64_t before = kernels::launches();
  launch(block_sum, dim3(2), dim3(256), 0, nullptr, in.data(), part.data(), 300);
  CHECK(kernels::launches() - before == 1);
  launch(block_sum, dim3(2), dim3(256), 0, nullptr, in.data(), part.data(), 300);
  launch(block_sum, dim3(1), dim3(256), 0, nullptr, in.data(), part.data(), 256);
  CHECK(kernels::launches() - before == 3);
}

TEST_CASE("emu: histogram with atomics and dynamic-shared scan are exact") {
  const int n = 10007, nb = 17;
  std::vector<int> in(n);
  for (int i = 0; i < n; ++i) in[i] = i * 7 + 3;
  std::vector<unsigned> bins(nb, 0), expect(nb, 0);
  for (int v : in) expect[v % nb]++;
  launch(histogram, dim3(5), dim3(128), 0, nullptr, in.data(), bins.data(), n, nb);
  CHECK(bins == expect);

  for (auto order : {emu::FiberOrder::forward, emu::FiberOrder::reverse}) {
    OrderGuard g(order);
    const int m = 200;
    std::vector<int> x(m), y(m, 0);
    for (int i = 0; i < m; ++i) x[i] = i % 5 - 1;
    launch(block_scan, dim3(1), dim3(256), 2 * 256 * sizeof(int), nullptr, x.data(), y.data(), m);
    int run = 0;
    for (int i = 0; i < m; ++i) { run += x[i]; REQUIRE(y[i] == run); }
  }
}

TEST_CASE("emu: votes, xor shuffles with width, and 2-D coordinates") {
  std::vector<int> p(32, 0);
  p[3] = p[17] = 1;
  unsigned ballot = 0; int any = -1, all = -1;
  launch(votes, dim3(1), dim3(32), 0, nullptr, p.data(), &ballot, &any, &all);
  CHECK(ballot == ((1u << 3) | (1u << 17)));
  CHECK(any == 1);
  CHECK(all == 0);

  std::vector<float> in(64), out(64);
  for (int i = 0; i < 64; ++i) in[i] = float(i);
  launch(xor_and_width, dim3(1), dim3(64), 0, nullptr, in.data(), out.data());
  for (int i = 0; i < 64; ++i) {
    int g0 = i / 8 * 8;
    CHECK(out[i] == doctest::Approx(8 * g0 + 28));
  }

  std::vector<int> c(6 * 40, -1);
  launch(coordinates, dim3(5, 2), dim3(8, 3), 0, nullptr, c.data());
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 40; ++x) REQUIRE(c[y * 40 + x] == y * 1000 + x);
}

TEST_CASE("emu: a missing __syncthreads shows up in one of the two fiber orders") {
  const int blocks = 3, t = 64, n = blocks * t;
  std::vector<int> in(n), expect(n);
  for (int i = 0; i < n; ++i) in[i] = i + 1;
  for (int b = 0; b < blocks; ++b)
    for (int i = 0; i < t; ++i) expect[b * t + i] = in[b * t + (i + 1) % t];
  int wrong_orders = 0;
  for (auto order : {emu::FiberOrder::forward, emu::FiberOrder::reverse}) {
    OrderGuard g(order);
    std::vector<int> out(n, 0);
    if (kTsan) {  // the race detector names it instead
      CHECK_THROWS_WITH_AS(launch(neighbour_no_sync, dim3(blocks), dim3(t), 0, nullptr, in.data(), out.data(), n),
                           doctest::Contains("data race on byte offset"), emu::Error);
      ++wrong_orders;
      continue;
    }
    launch(neighbour_no_sync, dim3(blocks), dim3(t), 0, nullptr, in.data(), out.data(), n);
    wrong_orders += out != expect;
  }
  CHECK(wrong_orders >= 1);
}

TEST_CASE("emu: rule violations raise clear errors") {
  std::vector<int> out(64, 0);
  CHECK_THROWS_WITH_AS(launch(divergent_barrier, dim3(1), dim3(32), 0, nullptr, out.data()),
                       doctest::Contains("divergent __syncthreads: 16 of 32 threads"), emu::Error);
  CHECK_THROWS_WITH_AS(launch(shuffle_outside_mask, dim3(1), dim3(32), 0, nullptr, out.data()),
                       doctest::Contains("which excludes it"), emu::Error);
  CHECK_THROWS_WITH_AS(launch(coordinates, dim3(1), dim3(2048), 0, nullptr, out.data()),
                       doctest::Contains("not 1..1024 threads"), emu::Error);
  std::vector<float> f(32);
  CHECK_THROWS_WITH_AS(launch(read_dynamic_unwritten, dim3(1), dim3(32), 64 * 1024, nullptr, f.data()),
                       doctest::Contains("exceed the 49152-byte limit"), emu::Error);
  // Unwritten dynamic shared memory reads as NaN, never as a plausible zero.
  launch(read_dynamic_unwritten, dim3(1), dim3(32), 32 * sizeof(float), nullptr, f.data());
  CHECK(std::isnan(f[0]));
  CHECK(std::isnan(f[31]));
}

TEST_CASE("emu: plain CUDA with extern __shared__ runs unchanged, both fiber orders") {
  for (auto order : {emu::FiberOrder::forward, emu::FiberOrder::reverse}) {
    OrderGuard g(order);
    for (int n : {1, 100, 128, 1000}) {
      CAPTURE(n);
      const int bs = 128, blocks = (n + bs - 1) / bs;
      std::vector<int> in(n), out(n, -1), expect(n);
      for (int i = 0; i < n; ++i) in[i] = i * 3 - 7;
      for (int b = 0; b < blocks; ++b) {
        int base = b * bs, len = std::min(bs, n - base);
        for (int t = 0; t < len; ++t) expect[base + t] = in[base + len - 1 - t];
      }
      REQUIRE(launch(foreign_reverse, dim3(blocks), dim3(bs), bs * sizeof(int), nullptr, in.data(), out.data(), n) ==
              cudaSuccess);
      CHECK(out == expect);

      std::vector<float> x(n), part(blocks, -1.f);
      for (int i = 0; i < n; ++i) x[i] = 0.25f * float(i % 13) - 1.f;
      REQUIRE(launch(foreign_sum, dim3(blocks), dim3(bs), bs * sizeof(float), nullptr, x.data(), part.data(), n) ==
              cudaSuccess);
      for (int b = 0; b < blocks; ++b) {
        double ref = 0;
        for (int i = b * bs; i < std::min(n, (b + 1) * bs); ++i) ref += x[i];
        CHECK(part[b] == doctest::Approx(ref).epsilon(1e-5));
      }
    }
  }
  // An extern array in a namespace (a mangled name) is the block's dynamic shared memory too,
  // as dynamic_shared<T>() sees it.
  CHECK(static_cast<void*>(extern_in_namespace_base()) == emu::dynamic_shared_ptr());
  std::vector<float> r(96, -1.f);
  REQUIRE(launch(extern_in_namespace, dim3(1), dim3(96), 96 * sizeof(float), nullptr, r.data()) == cudaSuccess);
  for (int t = 0; t < 96; ++t) REQUIRE(r[t] == float(95 - t));
}

namespace {
// Runs `f` (a launch) and returns the emu::Error message it raised, or "" if none.
template <class F> std::string launch_error(F f) {
  try {
    f();
  } catch (const emu::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

namespace {
// Whether a race message names threads t and t+1 of a block of n meeting on 4-byte slot t+1
// (byte offset 4(t+1), followed by `where`), for some t.
bool names_neighbours(const std::string& e, unsigned n, const std::string& offset, const std::string& where = " of") {
  for (unsigned t = 0; t + 1 < n; ++t) {
    const std::string a = "thread (" + std::to_string(t) + ",0,0)", b = "thread (" + std::to_string(t + 1) + ",0,0)";
    const std::string off = offset + std::to_string(4 * (t + 1)) + where;
    if (e.find(a) != std::string::npos && e.find(b) != std::string::npos && e.find(off) != std::string::npos)
      return true;
  }
  return false;
}
}  // namespace

TEST_CASE("emu: launches a GPU rejects raise errors naming the kernel and the launch site") {
  std::vector<int> out(64, 0);
  int* o = out.data();
  const std::string here = std::string(__FILE__).substr(std::string(__FILE__).find_last_of('/') + 1) + ":";
  auto line_of = [&](int l) { return here + std::to_string(l); };

  int l = __LINE__ + 1;
  std::string e = launch_error([&] { launch(coordinates, dim3(1), dim3(1025), 0, nullptr, o); });
  CHECK(e.find("'emu_test::coordinates(int*)'") != std::string::npos);
  CHECK(e.find(line_of(l)) != std::string::npos);
  CHECK(e.find("not 1..1024 threads") != std::string::npos);
  CHECK(launch_error([&] { launch(coordinates, dim3(1), dim3(32, 33), 0, nullptr, o); }).find("1..1024") !=
        std::string::npos);
  CHECK(launch_error([&] { launch(coordinates, dim3(1), dim3(1, 1, 65), 0, nullptr, o); }).find("1..1024") !=
        std::string::npos);

  l = __LINE__ + 1;
  e = launch_error([&] { launch(coordinates, dim3(1, 65536), dim3(1), 0, nullptr, o); });
  CHECK(e.find("coordinates") != std::string::npos);
  CHECK(e.find(line_of(l)) != std::string::npos);
  CHECK(e.find("grid (1,65536,1) is out of range") != std::string::npos);
  CHECK(launch_error([&] { launch(coordinates, dim3(1, 1, 65536), dim3(1), 0, nullptr, o); }).find("out of range") !=
        std::string::npos);
  CHECK(launch_error([&] { launch(coordinates, dim3(2147483648u), dim3(1), 0, nullptr, o); }).find("out of range") !=
        std::string::npos);
  // The largest legal grid.y and grid.z run.
  std::vector<int> big(65535, 0);
  CHECK(launch_error([&] { launch(coordinates, dim3(1, 65535), dim3(1), 0, nullptr, big.data()); }) == "");

  // Dynamic shared memory: 48 KB without opting in, 227 KB with.
  const size_t k48 = 48 * 1024, k227 = 227 * 1024;
  CHECK(launch_error([&] { launch(fill_dynamic, dim3(1), dim3(64), k48, nullptr, o, int(k48 / 4)); }) == "");
  CHECK(out[0] == int(k48 / 4) - 1);
  l = __LINE__ + 1;
  e = launch_error([&] { launch(fill_dynamic, dim3(1), dim3(64), k48 + 4, nullptr, o, int(k48 / 4) + 1); });
  CHECK(e.find("fill_dynamic(int*, int)") != std::string::npos);
  CHECK(e.find(line_of(l)) != std::string::npos);
  CHECK(e.find("exceed the 49152-byte limit (opt in with allow_dynamic_shared)") != std::string::npos);

  CHECK(allow_dynamic_shared(fill_dynamic_opt_in, k227 + 1) == cudaErrorInvalidValue);  // as on an H100
  CHECK(launch_error([&] { launch(fill_dynamic_opt_in, dim3(1), dim3(64), k48 + 4, nullptr, o, 10); }).find(
            "49152-byte limit") != std::string::npos);
  REQUIRE(allow_dynamic_shared(fill_dynamic_opt_in, k227) == cudaSuccess);
  CHECK(launch_error([&] { launch(fill_dynamic_opt_in, dim3(2), dim3(128), k227, nullptr, o, int(k227 / 4)); }) == "");
  CHECK(out[0] == int(k227 / 4) - 1);
  l = __LINE__ + 1;
  e = launch_error([&] { launch(fill_dynamic_opt_in, dim3(1), dim3(64), k227 + 16, nullptr, o, 1); });
  CHECK(e.find(line_of(l)) != std::string::npos);
  CHECK(e.find("exceed the 232448-byte limit of the device, even with allow_dynamic_shared") != std::string::npos);
}

// Needs the race-detecting build (c3tests-race, which make test runs after c3tests: the kernels
// and emu.cpp compiled with -fsanitize=thread): the normal build has no hook on plain
// __shared__ array accesses. Skipped in c3tests.
TEST_CASE("emu: a shared-memory race is reported with the offset and both threads (c3tests-race)" *
          doctest::skip(!kTsan)) {
  std::vector<int> out(128, -1);
  for (auto order : {emu::FiberOrder::forward, emu::FiberOrder::reverse}) {
    OrderGuard g(order);
    CAPTURE(int(order));
    std::string e = launch_error([&] { launch(race_missing_barrier, dim3(2), dim3(64), 0, nullptr, out.data()); });
    CHECK(e.find("kernel 'emu_test::race_missing_barrier(int*)'") != std::string::npos);
    CHECK(e.find("test_emu.cpp:") != std::string::npos);
    CHECK(e.find("data race on byte offset ") != std::string::npos);
    CHECK(e.find("race_missing_barrier(int*)::slots'") != std::string::npos);
    CHECK_MESSAGE(names_neighbours(e, 64, "byte offset "), e);
  }
}

TEST_CASE("emu: reading a neighbour's slot after __syncthreads is not a race, both fiber orders") {
  for (auto order : {emu::FiberOrder::forward, emu::FiberOrder::reverse}) {
    OrderGuard g(order);
    for (unsigned bs : {1u, 33u, 128u}) {
      std::vector<int> out(bs, -1);
      CHECK(launch_error([&] { launch(neighbour_after_barrier, dim3(3), dim3(bs), 0, nullptr, out.data()); }) == "");
      for (unsigned t = 0; t < bs; ++t) REQUIRE(out[t] == int((t + 1) % bs) * 2);
    }
  }
}

// A plain CUDA file from elsewhere, compiled unchanged, with "extern __shared__" and a
// missing barrier. The race detector names the kernel, the offset into dynamic shared memory
// and both threads, in either fiber order.
TEST_CASE("emu: a plain CUDA file's missing barrier on extern __shared__ is reported (c3tests-race)" *
          doctest::skip(!kTsan)) {
  const int n = 64;
  std::vector<float> in(n, 1.f), out(n, 0.f);
  for (auto order : {emu::FiberOrder::forward, emu::FiberOrder::reverse}) {
    OrderGuard g(order);
    std::string e = launch_error(
        [&] { launch(plain_rotate_no_barrier, dim3(1), dim3(n), n * sizeof(float), nullptr, in.data(), out.data(), n); });
    CHECK(e.find("kernel 'plain_rotate_no_barrier(float const*, float*, int)'") != std::string::npos);
    CHECK(e.find("of dynamic shared memory") != std::string::npos);
    CHECK_MESSAGE(names_neighbours(e, n, "byte offset ", " of dynamic"), e);
  }
}

TEST_CASE("emu: static __shared__ arrays count against the shared-memory limits") {
  std::vector<int> out(64, 0);
  int* o = out.data();
  CHECK(emu::static_shared_bytes(reinterpret_cast<const void*>(&static_32k)) == 32 * 1024);
  CHECK(emu::static_shared_bytes(reinterpret_cast<const void*>(&static_50k)) == 50 * 1024);
  CHECK(emu::static_shared_bytes(reinterpret_cast<const void*>(&fill_dynamic)) == 0);
  // 32 KB static + 16 KB dynamic = 48 KB: allowed; 4 bytes more are not.
  const int words = 16 * 1024 / 4;
  CHECK(launch_error([&] { launch(static_32k, dim3(1), dim3(128), words * 4, nullptr, o, words); }) == "");
  CHECK(out[0] == 4096 + words - 1);
  std::string e = launch_error([&] { launch(static_32k, dim3(1), dim3(128), words * 4 + 4, nullptr, o, words); });
  CHECK(e.find("'emu_test::static_32k(int*, int)'") != std::string::npos);
  CHECK(e.find("16388 bytes of dynamic shared memory plus 32768 bytes of static __shared__ arrays exceed the "
               "49152-byte limit") != std::string::npos);
  e = launch_error([&] { launch(static_50k, dim3(1), dim3(32), 0, nullptr, o); });
  CHECK(e.find("51200 bytes of static __shared__ arrays exceed the 49152-byte limit") != std::string::npos);
  // Opting in raises the dynamic limit to what is left of 227 KB beside the static arrays.
  const size_t k227 = 227 * 1024, left = k227 - 32 * 1024;
  CHECK(allow_dynamic_shared(static_32k, left + 4) == cudaErrorInvalidValue);
  REQUIRE(allow_dynamic_shared(static_32k, left) == cudaSuccess);
  CHECK(launch_error([&] { launch(static_32k, dim3(1), dim3(128), left, nullptr, o, int(left / 4)); }) == "");
  CHECK(out[0] == 4096 + int(left / 4) - 1);
}
