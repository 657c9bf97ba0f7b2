#include "core/alloc.h"

#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "core/error.h"
#include "kernels/device_api.h"

namespace c3 {

namespace {
// glibc's defaults give freed memory back to the OS (heap trimming, and mmap for blocks above a
// threshold that moves) and take it again page by page, zeroed by the kernel, on the next
// step: a third of the CPU training step's system time and a tenth of its time here. Kept
// in the heap instead: blocks up to 32 MiB (mallopt's upper limit) come from it, and the top
// is never trimmed; the process keeps its peak, as a caching allocator does.
void keep_freed_memory() {
  static const bool done = [] {
    ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
    ::mallopt(M_TRIM_THRESHOLD, INT32_MAX);
    return true;
  }();
  (void)done;
}
}  // namespace

void* host_alloc(size_t bytes) {
  keep_freed_memory();
  size_t n = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, n ? n : 64);
  if (!p) throw OutOfMemory(detail::concat("host_alloc: out of memory allocating ", bytes, " bytes"));
  return p;
}
void host_free(void* p) { std::free(p); }

void* host_alloc_pinned(size_t bytes) {
#ifdef C3_HAVE_CUDA
  if (kernels::cuda::device_count() > 0) {
    try {
      return pinned_allocator().allocate(bytes ? bytes : 1);
    } catch (const Error&) {
      return nullptr;  // page-locked memory is limited; ordinary memory still works
    }
  }
#endif
  (void)bytes;
  return nullptr;
}
void host_free_pinned(void* p) {
#ifdef C3_HAVE_CUDA
  pinned_allocator().release(p);
#else
  (void)p;
#endif
}

CachingAllocator::CachingAllocator(std::unique_ptr<Backend> b) : backend_(std::move(b)) {}
CachingAllocator::~CachingAllocator() {
  empty_cache();
  // Blocks still live at exit belong to static tensors; the driver reclaims them.
}

size_t CachingAllocator::round_size(size_t bytes) {
  constexpr size_t kMin = 512;
  return bytes < kMin ? kMin : (bytes + kMin - 1) / kMin * kMin;
}

size_t CachingAllocator::segment_size(size_t n) {
  if (n <= kSmallRequest) return kSmallSegment;
  if (n < kMinLargeAlloc) return kLargeSegment;
  return (n + kRoundLarge - 1) / kRoundLarge * kRoundLarge;
}

CachingAllocator::Block* CachingAllocator::take_free(size_t n, bool small) {
  std::set<Block*, BySize>& free = pool(small);
  Block key{nullptr, n, false, small};
  auto it = free.lower_bound(&key);
  if (it == free.end()) return nullptr;
  Block* b = *it;
  free.erase(it);
  return b;
}

void* CachingAllocator::allocate(size_t bytes) {
  const size_t n = round_size(bytes);
  const bool small = n <= kSmallRequest;
  std::lock_guard<std::mutex> lock(mu_);
  if (!pending_.empty()) collect_pending();
  Block* b = take_free(n, small);
  if (b) {
    ++st_.hits;
  } else {
    const size_t seg = segment_size(n);
    void* p = backend_->alloc(seg);
    if (!p) {  // give the free segments back and try once more
      free_segments();
      p = backend_->alloc(seg);
    }
    if (!p) {
      std::ostringstream m;
      m << backend_->name() << " out of memory: tried to allocate " << bytes << " bytes (" << (bytes >> 20)
        << " MiB, a new segment of " << (seg >> 20) << " MiB); " << (st_.in_use >> 20) << " MiB allocated, "
        << (st_.reserved >> 20) << " MiB reserved, peak " << (st_.peak >> 20)
        << " MiB allocated. Lower the batch size or the crop size.";
      throw OutOfMemory(m.str());
    }
    ++st_.backend_allocs;
    st_.reserved += seg;
    st_.peak_reserved = std::max(st_.peak_reserved, st_.reserved);
    b = new Block{static_cast<char*>(p), seg, false, small};
  }
  // Split off what is not needed when the rest is worth keeping (small pool: 512 bytes or
  // more; large pool: more than 1 MiB, so large blocks do not crumble into small pieces).
  const size_t rest = b->size - n;
  if (small ? rest >= 512 : rest > kSmallRequest) {
    Block* r = new Block{b->ptr + n, rest, false, small, b, b->next};
    if (b->next) b->next->prev = r;
    b->next = r;
    b->size = n;
    pool(small).insert(r);
    ++st_.splits;
  }
  b->used = true;
  live_[b->ptr] = b;
  st_.in_use += b->size;
  st_.cached = st_.reserved - st_.in_use;
  st_.peak = std::max(st_.peak, st_.in_use);
  return b->ptr;
}

void CachingAllocator::release(void* p) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(static_cast<const char*>(p));
  C3_CHECK(it != live_.end(), "CachingAllocator::release: pointer was not allocated here");
  Block* b = it->second;
  live_.erase(it);
  st_.in_use -= b->size;
  st_.cached = st_.reserved - st_.in_use;
  b->used = false;
  if (b->event && !backend_->event_done(b->event)) {
    pending_.push_back(b);
    return;
  }
  free_block(b);
}

void CachingAllocator::free_block(Block* b) {
  if (b->event) backend_->destroy_event(b->event), b->event = nullptr;
  std::set<Block*, BySize>& free = pool(b->small);
  for (Block* nb : {b->prev, b->next}) {  // merge with free neighbours of the segment
    if (!nb || nb->used || std::find(pending_.begin(), pending_.end(), nb) != pending_.end()) continue;
    free.erase(nb);
    if (nb == b->prev) {
      nb->size += b->size;
      nb->next = b->next;
      if (b->next) b->next->prev = nb;
      delete b;
      b = nb;
    } else {
      b->size += nb->size;
      b->next = nb->next;
      if (nb->next) nb->next->prev = b;
      delete nb;
    }
    ++st_.merges;
  }
  free.insert(b);
}

void CachingAllocator::collect_pending() {
  for (size_t i = 0; i < pending_.size();) {
    Block* b = pending_[i];
    if (!backend_->event_done(b->event)) {
      ++i;
      continue;
    }
    pending_.erase(pending_.begin() + std::ptrdiff_t(i));
    free_block(b);
  }
}

CachingAllocator::Block* CachingAllocator::live_block(const void* p) const {
  auto it = live_.upper_bound(static_cast<const char*>(p));
  if (it == live_.begin()) return nullptr;
  --it;
  Block* b = it->second;
  return static_cast<const char*>(p) < b->ptr + b->size ? b : nullptr;
}

bool CachingAllocator::owns(const void* p) const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_block(p) != nullptr;
}

bool CachingAllocator::record_use(const void* p) {
  std::lock_guard<std::mutex> lock(mu_);
  Block* b = live_block(p);
  if (!b) return false;
  // Work on the stream runs in order: the newest event covers the earlier uses too.
  if (b->event) backend_->destroy_event(b->event);
  b->event = backend_->record_event();
  return true;
}

void CachingAllocator::free_segments() {
  for (bool small : {true, false}) {
    std::set<Block*, BySize>& free = pool(small);
    for (auto it = free.begin(); it != free.end();) {
      Block* b = *it;
      if (b->prev || b->next) {
        ++it;
        continue;
      }
      backend_->free(b->ptr);
      ++st_.backend_frees;
      st_.reserved -= b->size;
      delete b;
      it = free.erase(it);
    }
  }
  st_.cached = st_.reserved - st_.in_use;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  free_segments();
}

AllocStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return st_;
}
void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  st_.peak = st_.in_use;
  st_.peak_reserved = st_.reserved;
}

namespace {
struct CudaBackend : CachingAllocator::Backend {
  void* alloc(size_t n) override {
#ifdef C3_HAVE_CUDA
    return kernels::cuda::device_malloc(n);
#else
    (void)n;
    throw Error("this build has no CUDA backend (built with CUDA=0)");
#endif
  }
  void free(void* p) override {
#ifdef C3_HAVE_CUDA
    kernels::cuda::device_free(p);
#else
    (void)p;
#endif
  }
  const char* name() const override { return "CUDA"; }
};

struct PinnedBackend : CachingAllocator::Backend {
  void* alloc(size_t n) override {
#ifdef C3_HAVE_CUDA
    try {
      return kernels::cuda::host_malloc_pinned(n);
    } catch (const std::exception&) {
      return nullptr;
    }
#else
    (void)n;
    return nullptr;
#endif
  }
  void free(void* p) override {
#ifdef C3_HAVE_CUDA
    kernels::cuda::host_free_pinned(p);
#else
    (void)p;
#endif
  }
#ifdef C3_HAVE_CUDA
  void* record_event() override { return kernels::cuda::event_record(); }
  bool event_done(void* e) override { return kernels::cuda::event_done(e); }
  void destroy_event(void* e) override { kernels::cuda::event_destroy(e); }
#endif
  const char* name() const override { return "page-locked host memory"; }
};
}  // namespace

CachingAllocator& pinned_allocator() {
  static CachingAllocator* a = new CachingAllocator(std::make_unique<PinnedBackend>());
  return *a;
}

CachingAllocator& cuda_allocator() {
  // Never destroyed: tensors with static lifetime may outlive it otherwise.
  static CachingAllocator* a = new CachingAllocator(std::make_unique<CudaBackend>());
  return *a;
}

namespace {
std::mutex g_host_mu;
AllocStats g_host;
std::mutex g_trace_mu;
std::vector<AllocEvent>* g_trace = nullptr;
}  // namespace

AllocStats host_tensor_stats() {
  std::lock_guard<std::mutex> lock(g_host_mu);
  return g_host;
}
void reset_host_tensor_peak() {
  std::lock_guard<std::mutex> lock(g_host_mu);
  g_host.peak = g_host.in_use;
  g_host.peak_reserved = g_host.reserved;
}
void note_host_tensor_alloc(size_t bytes) {
  std::lock_guard<std::mutex> lock(g_host_mu);
  g_host.in_use += bytes;
  g_host.reserved = g_host.in_use;
  g_host.peak = std::max(g_host.peak, g_host.in_use);
  g_host.peak_reserved = g_host.peak;
  ++g_host.backend_allocs;
}
void note_host_tensor_free(size_t bytes) {
  std::lock_guard<std::mutex> lock(g_host_mu);
  g_host.in_use -= bytes;
  g_host.reserved = g_host.in_use;
  ++g_host.backend_frees;
}

void set_alloc_trace(std::vector<AllocEvent>* trace) {
  std::lock_guard<std::mutex> lock(g_trace_mu);
  g_trace = trace;
}
void note_alloc_event(const void* id, size_t bytes, bool alloc) {
  std::lock_guard<std::mutex> lock(g_trace_mu);
  if (g_trace) g_trace->push_back({id, bytes, alloc});
}

}  // namespace c3
