#include "core/alloc.h"

#include <cstdlib>
#include <sstream>

#include "core/error.h"
#include "kernels/device_api.h"

namespace c3 {

void* host_alloc(size_t bytes) {
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
      return kernels::cuda::host_malloc_pinned(bytes ? bytes : 1);
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
  kernels::cuda::host_free_pinned(p);
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
  if (bytes == 0) bytes = 1;
  constexpr size_t kSmall = 512, kLarge = 2 << 20, kSplit = 1 << 20;
  if (bytes < kSplit) return (bytes + kSmall - 1) / kSmall * kSmall;
  return (bytes + kLarge - 1) / kLarge * kLarge;
}

void* CachingAllocator::allocate(size_t bytes) {
  const size_t n = round_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  void* p = nullptr;
  auto it = free_.find(n);
  if (it != free_.end()) {
    p = it->second;
    free_.erase(it);
    st_.cached -= n;
    ++st_.hits;
  } else {
    p = backend_->alloc(n);
    if (!p && !free_.empty()) {  // give the cache back and try once more
      for (auto& [sz, q] : free_) { backend_->free(q); ++st_.backend_frees; }
      st_.reserved -= st_.cached;
      st_.cached = 0;
      free_.clear();
      p = backend_->alloc(n);
    }
    if (!p) {
      std::ostringstream m;
      m << backend_->name() << " out of memory: tried to allocate " << bytes << " bytes ("
        << (bytes >> 20) << " MiB); " << (st_.in_use >> 20) << " MiB in use, peak " << (st_.peak >> 20)
        << " MiB. Lower the batch size or the crop size.";
      throw OutOfMemory(m.str());
    }
    ++st_.backend_allocs;
    st_.reserved += n;
  }
  live_[p] = n;
  st_.in_use += n;
  if (st_.in_use > st_.peak) st_.peak = st_.in_use;
  return p;
}

void CachingAllocator::release(void* p) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(p);
  C3_CHECK(it != live_.end(), "CachingAllocator::release: pointer was not allocated here");
  const size_t n = it->second;
  live_.erase(it);
  st_.in_use -= n;
  st_.cached += n;
  free_.emplace(n, p);
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [n, p] : free_) { backend_->free(p); ++st_.backend_frees; }
  st_.reserved -= st_.cached;
  st_.cached = 0;
  free_.clear();
}

AllocStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return st_;
}
void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  st_.peak = st_.in_use;
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
}  // namespace

CachingAllocator& cuda_allocator() {
  // Never destroyed: tensors with static lifetime may outlive it otherwise.
  static CachingAllocator* a = new CachingAllocator(std::make_unique<CudaBackend>());
  return *a;
}

}  // namespace c3
