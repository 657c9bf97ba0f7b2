// Memory: 64-byte aligned host blocks, and a caching allocator for device memory.
//
// The caching allocator never returns memory to the driver on free: blocks go back to a
// free list keyed by their rounded size and are reused by the next request of that
// bucket, so a training step allocates nothing from the driver after the first one.
// `empty_cache()` releases the free blocks. The caching logic runs over a Backend, so the
// tests exercise it on the CPU with a host-memory backend.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace c3 {

void* host_alloc(size_t bytes);  // 64-byte aligned; throws c3::Error when out of memory
void host_free(void* p);
// Page-locked ("pinned") host memory, so host-to-device copies run by DMA at full speed.
// nullptr when no CUDA device is usable (CPU build, or no GPU): the caller falls back.
void* host_alloc_pinned(size_t bytes);
void host_free_pinned(void* p);

struct AllocStats {
  size_t in_use = 0;       // bytes handed out and not yet freed (rounded sizes)
  size_t peak = 0;         // high-water mark of in_use
  size_t cached = 0;       // bytes held in free lists
  size_t reserved = 0;     // in_use + cached: what the backend has given us
  uint64_t backend_allocs = 0, backend_frees = 0, hits = 0;
};

class CachingAllocator {
 public:
  struct Backend {
    virtual ~Backend() = default;
    virtual void* alloc(size_t bytes) = 0;  // nullptr when out of memory
    virtual void free(void* p) = 0;
    virtual const char* name() const = 0;
  };
  explicit CachingAllocator(std::unique_ptr<Backend> backend);
  ~CachingAllocator();

  // Rounds up: 512 B granularity below 1 MiB, then 2 MiB granularity. On out-of-memory it
  // empties the cache and retries once, then throws c3::Error with the statistics.
  void* allocate(size_t bytes);
  void release(void* p);
  void empty_cache();
  AllocStats stats() const;
  void reset_peak();
  static size_t round_size(size_t bytes);

 private:
  std::unique_ptr<Backend> backend_;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;           // rounded size -> block
  std::unordered_map<void*, size_t> live_;      // block -> rounded size
  AllocStats st_;
};

// The process-wide allocator for CUDA memory (created on first use).
CachingAllocator& cuda_allocator();

}  // namespace c3
