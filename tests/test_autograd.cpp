// Autograd engine: accumulation into leaves, ordering, no-grad, detach, freeing.
#include <map>

#include "core/alloc.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3test;

TEST_CASE("autograd: a leaf used twice accumulates both gradients") {
  Tensor x = Tensor::from_vector<double>({1, 2, 3}, {3}).set_requires_grad();
  Tensor y = add(mul(x, x), mul(x, 3.0));  // dy/dx = 2x + 3
  sum(y).backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{5, 7, 9});
  sum(x).backward();  // a second backward adds into .grad
  CHECK(x.grad().to_vector<double>() == std::vector<double>{6, 8, 10});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("autograd: diamond graph, views and copies") {
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3}).set_requires_grad();
  Tensor a = exp(x), b = mul(a, 2.0), c = add(a, b);  // c = 3 e^x
  Tensor r = c.narrow0(1, 1).reshape({3});            // row 1 only
  sum(r).backward();
  auto g = x.grad().to_vector<double>();
  for (int i = 0; i < 3; ++i) CHECK(g[i] == 0);
  for (int i = 3; i < 6; ++i) CHECK(g[i] == doctest::Approx(3 * std::exp(double(i + 1))));
  Tensor z = Tensor::from_vector<double>({1, 2}, {2}).set_requires_grad();
  sum(mul(z.clone(), z.select0(1))).backward();  // d/dz0 = z1, d/dz1 = z0 + 2 z1
  CHECK(z.grad().to_vector<double>() == std::vector<double>{2, 5});
}

TEST_CASE("autograd: no-grad scope, detach, and errors") {
  Tensor x = Tensor::from_vector<double>({1, 2}, {2}).set_requires_grad();
  {
    NoGradGuard ng;
    Tensor y = mul(x, 2.0);
    CHECK_FALSE(y.requires_grad());
  }
  Tensor d = mul(x, 2.0).detach();
  CHECK_FALSE(d.requires_grad());
  CHECK_THROWS_WITH_AS(sum(d).backward(), doctest::Contains("does not require grad"), Error);
  Tensor y = mul(x, 2.0);
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("one-element"), Error);
  Tensor l = sum(exp(x));
  l.backward();
  CHECK_THROWS_WITH_AS(l.backward(), doctest::Contains("a second time"), Error);
  CHECK_THROWS_WITH_AS(Tensor::zeros({2}, DType::i32).set_requires_grad(), doctest::Contains("non-float"), Error);
}

TEST_CASE("autograd: saved tensors are freed once backward has used them") {
  Tensor x = random_tensor({4, 8}, 1, DType::f64).set_requires_grad();
  std::weak_ptr<Storage> saved;
  Tensor loss;
  {
    Tensor e = exp(mul(x, 2.0));  // exp saves its output
    saved = e.impl().storage;
    loss = sum(e);
  }
  CHECK_FALSE(saved.expired());  // alive: the graph holds it for backward
  loss.backward();
  CHECK(saved.expired());
}

namespace {
struct HostBackend : CachingAllocator::Backend {
  int allocs = 0, frees = 0;
  size_t limit = 64 << 20, used = 0;
  std::map<void*, size_t> sizes;
  void* alloc(size_t n) override {
    if (used + n > limit) return nullptr;
    ++allocs, used += n;
    void* p = std::malloc(n);
    sizes[p] = n;
    return p;
  }
  void free(void* p) override { ++frees, used -= sizes[p], sizes.erase(p), std::free(p); }
  const char* name() const override { return "test"; }
};
}  // namespace

TEST_CASE("caching allocator: segments, splitting, best fit, merging, empty_cache, out of memory") {
  auto backend = std::make_unique<HostBackend>();
  HostBackend* hb = backend.get();
  CachingAllocator a(std::move(backend));
  CHECK(CachingAllocator::round_size(1) == 512);
  CHECK(CachingAllocator::round_size(513) == 1024);
  CHECK(CachingAllocator::segment_size(1 << 20) == (2 << 20));       // small pool
  CHECK(CachingAllocator::segment_size(3 << 20) == (20 << 20));      // large, under 10 MiB
  CHECK(CachingAllocator::segment_size((12 << 20) + 1) == (14 << 20));  // large: rounded to 2 MiB

  // Small requests share one 2 MiB segment, split to size.
  char* p = static_cast<char*>(a.allocate(1000));
  char* q = static_cast<char*>(a.allocate(700));
  CHECK(hb->allocs == 1);
  CHECK(q == p + 1024);
  CHECK(a.stats().in_use == 1024 + 1024);
  CHECK(a.stats().reserved == (2 << 20));
  // Freed neighbours merge: a 2 KiB request fits where the two were.
  a.release(p);
  a.release(q);
  CHECK(a.stats().merges >= 1);
  char* r = static_cast<char*>(a.allocate(2048));
  CHECK(r == p);
  CHECK(hb->allocs == 1);
  a.release(r);

  // Large requests: a 20 MiB segment; best fit takes the smaller of two free blocks.
  char* l1 = static_cast<char*>(a.allocate(3 << 20));
  char* l2 = static_cast<char*>(a.allocate(5 << 20));
  char* l3 = static_cast<char*>(a.allocate(2 << 20));
  CHECK(hb->allocs == 2);
  CHECK((l2 == l1 + (3 << 20) && l3 == l2 + (5 << 20)));
  a.release(l1);  // free: 3 MiB at l1; 10 MiB at the end of the segment
  char* l4 = static_cast<char*>(a.allocate((2 << 20) + 512));
  CHECK(l4 == l1);  // the 3 MiB block, not the 10 MiB one; the rest (under 1 MiB) is not split off
  CHECK(a.stats().in_use == size_t(3 << 20) + (5 << 20) + (2 << 20));
  for (char* x : {l2, l3, l4}) a.release(x);
  CHECK(a.stats().in_use == 0);
  CHECK(a.stats().peak == size_t(10 << 20));
  CHECK(a.stats().reserved == size_t(22 << 20));
  CHECK(a.stats().cached == size_t(22 << 20));

  // A segment with a block in use stays; whole free segments go back.
  void* keep = a.allocate(512);
  a.empty_cache();
  CHECK(a.stats().reserved == size_t(2 << 20));
  CHECK(hb->frees == 1);
  a.release(keep);

  // Out of memory: the free segments go back and it retries once, then a clear error.
  void* big = a.allocate(63 << 20);  // a 64 MiB segment (only without the 2 MiB one), not split: 1 MiB left
  CHECK(big != nullptr);
  CHECK(a.stats().reserved == size_t(64 << 20));  // the small segment was given back to make room
  CHECK_THROWS_WITH_AS(a.allocate(8 << 20), doctest::Contains("out of memory: tried to allocate 8388608 bytes"),
                       OutOfMemory);
  CHECK_THROWS_WITH_AS(a.allocate(8 << 20), doctest::Contains("64 MiB allocated, 64 MiB reserved"), OutOfMemory);
  a.release(big);
  a.empty_cache();
  CHECK(hb->used == 0);
  CHECK(a.stats().reserved == 0);
}

TEST_CASE("caching allocator: a block still read by queued device work is not handed out before it is done") {
  struct EventBackend : HostBackend {
    std::vector<int> done;  // event i (stored as i + 1) is done when done[i]
    void* record_event() override {
      done.push_back(0);
      return reinterpret_cast<void*>(done.size());
    }
    bool event_done(void* e) override { return done[reinterpret_cast<size_t>(e) - 1] != 0; }
  };
  auto backend = std::make_unique<EventBackend>();
  EventBackend* eb = backend.get();
  CachingAllocator a(std::move(backend));
  char* p = static_cast<char*>(a.allocate(4 << 20));
  CHECK(a.owns(p + 100));
  CHECK_FALSE(a.owns(p + (4 << 20)));
  CHECK(a.record_use(p + 64));  // a pointer inside the block (a batch's payload after its header)
  CHECK_FALSE(a.record_use(reinterpret_cast<char*>(&eb)));
  a.release(p);
  CHECK(a.stats().in_use == 0);
  char* q = static_cast<char*>(a.allocate(4 << 20));
  CHECK(q != p);  // the first block is still being read: the segment's rest serves
  eb->done[0] = 1;
  a.release(q);
  char* r = static_cast<char*>(a.allocate(4 << 20));
  CHECK(r == p);  // the copy is done: the block is free again (and merged with its neighbours)
  a.release(r);
  CHECK(a.stats().in_use == 0);
  a.empty_cache();
  CHECK(a.stats().reserved == 0);  // everything merged back into whole segments
}

TEST_CASE("tensor: views share storage, copies do not") {
  Tensor t = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5, 6, 7}, {4, 2});
  Tensor v = t.narrow0(1, 2);
  CHECK(v.shape() == Shape{2, 2});
  CHECK(v.to_vector<float>() == std::vector<float>{2, 3, 4, 5});
  CHECK(v.same_storage(t));
  fill_(v, 9);
  CHECK(t.to_vector<float>() == std::vector<float>{0, 1, 9, 9, 9, 9, 6, 7});
  Tensor c = t.clone();
  CHECK_FALSE(c.same_storage(t));
  CHECK(t.select0(3).to_vector<float>() == std::vector<float>{6, 7});
  CHECK_THROWS_WITH_AS(t.narrow0(3, 2), doctest::Contains("out of range"), Error);
  CHECK_THROWS_WITH_AS(t.reshape({3, 3}), doctest::Contains("cannot view"), Error);
  CHECK_THROWS_WITH_AS(t.data<double>(), doctest::Contains("f32[4,2] cpu"), Error);
  if (!has_gpu()) CHECK_THROWS_WITH_AS(t.cuda(), doctest::Contains("CUDA"), Error);
}

// host_syncs(): the host reads and pageable uploads a GPU would wait for, counted at the same
// API points on the CPU.
TEST_CASE("tensor: host_syncs counts reads by the host and uploads, not pinned batch uploads") {
  const std::vector<float> v = {1, 2, 3, 4};
  uint64_t before = host_syncs();
  Tensor t = Tensor::from_vector(v, {4});
  CHECK(host_syncs() - before == 1);  // an upload from ordinary memory
  before = host_syncs();
  Tensor p = Tensor::from_pinned(std::span<const float>(v), {2, 2}, Device::cpu);
  CHECK(host_syncs() - before == 0);  // a loader batch from page-locked memory
  before = host_syncs();
  (void)t.to_vector<float>();
  CHECK(host_syncs() - before == 1);
  before = host_syncs();
  (void)sum(t).item();
  CHECK(host_syncs() - before == 1);
  before = host_syncs();
  (void)t.cpu();
  CHECK(host_syncs() - before == 1);
  before = host_syncs();
  (void)add(t, t);  // device work only
  (void)p.reshape({4});
  CHECK(host_syncs() - before == 0);
}
