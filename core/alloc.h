// Memory: 64-byte aligned host blocks, and a caching allocator for device memory.
//
// The caching allocator (after PyTorch's) takes memory from the driver in segments and never
// gives it back on free: a freed block goes back to a free pool, merges with free neighbours
// of its segment, and serves later requests, split to size. Requests of up to 1 MiB come
// from 2 MiB segments of a small pool, larger ones from a large pool (20 MiB segments for
// requests under 10 MiB, else the request rounded to 2 MiB); the smallest free block that
// fits is taken (best fit). So a training step takes nothing from the driver after the first
// one, and blocks of different sizes share segments. `empty_cache()` returns the segments
// with nothing in use. The caching logic runs over a Backend, so the tests exercise it on
// the CPU with a host-memory backend.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <unordered_map>
#include <vector>

namespace c3 {

void* host_alloc(size_t bytes);  // 64-byte aligned; throws c3::Error when out of memory
void host_free(void* p);
// Page-locked ("pinned") host memory, so host-to-device copies run by DMA at full speed and
// without waiting, from a caching pool (no cudaHostAlloc / cudaFreeHost per batch, which
// synchronise the device). nullptr when no CUDA device is usable (CPU build, or no GPU) or
// page-locked memory runs out: the caller falls back to ordinary memory.
void* host_alloc_pinned(size_t bytes);
void host_free_pinned(void* p);

struct AllocStats {
  size_t in_use = 0;         // bytes of blocks handed out and not yet freed (rounded sizes): "allocated"
  size_t peak = 0;           // high-water mark of in_use (since reset_peak)
  size_t cached = 0;         // reserved - in_use: free bytes inside the segments
  size_t reserved = 0;       // bytes of the segments the backend has given us
  size_t peak_reserved = 0;  // high-water mark of reserved (since reset_peak)
  uint64_t backend_allocs = 0, backend_frees = 0, hits = 0;  // hits: requests served from the cache
  uint64_t splits = 0, merges = 0;
};

class CachingAllocator {
 public:
  struct Backend {
    virtual ~Backend() = default;
    virtual void* alloc(size_t bytes) = 0;  // nullptr when out of memory
    virtual void free(void* p) = 0;
    virtual const char* name() const = 0;
    // Events on the device's stream, for blocks a stream-ordered copy still reads (record_use):
    // none by default (nothing is asynchronous).
    virtual void* record_event() { return nullptr; }
    virtual bool event_done(void*) { return true; }
    virtual void destroy_event(void*) {}
  };
  explicit CachingAllocator(std::unique_ptr<Backend> backend);
  ~CachingAllocator();

  // 512-byte granularity. On out-of-memory it returns the free segments to the backend and
  // retries once, then throws c3::OutOfMemory naming the request and the figures.
  void* allocate(size_t bytes);
  void release(void* p);
  // The block holding `p` (anywhere inside it) is read by work queued on the device now: once
  // released it is not handed out again before that work is done (an event recorded here).
  // False when `p` is in no live block of this allocator.
  bool record_use(const void* p);
  bool owns(const void* p) const;  // `p` lies in a live block
  void empty_cache();
  AllocStats stats() const;
  void reset_peak();
  static size_t round_size(size_t bytes);
  static size_t segment_size(size_t rounded);  // a new segment for a request of that size
  static constexpr size_t kSmallRequest = 1 << 20, kSmallSegment = 2 << 20, kLargeSegment = 20 << 20,
                          kMinLargeAlloc = 10 << 20, kRoundLarge = 2 << 20;

 private:
  struct Block {
    char* ptr;
    size_t size;
    bool used = false, small;
    Block *prev = nullptr, *next = nullptr;  // neighbours in the segment
    void* event = nullptr;                   // record_use: the last use queued on the device
  };
  struct BySize {
    bool operator()(const Block* a, const Block* b) const { return a->size != b->size ? a->size < b->size : a->ptr < b->ptr; }
  };
  std::set<Block*, BySize>& pool(bool small) { return small ? small_free_ : large_free_; }
  Block* take_free(size_t n, bool small);
  void free_block(Block* b);      // into its pool, merged with free neighbours
  void collect_pending();         // released blocks whose device work is done become free
  void free_segments();  // segments that are one free block go back to the backend
  Block* live_block(const void* p) const;

  std::unique_ptr<Backend> backend_;
  mutable std::mutex mu_;
  std::set<Block*, BySize> small_free_, large_free_;
  std::map<const char*, Block*> live_;  // by address, so that a pointer inside a block finds it
  std::vector<Block*> pending_;         // released, still read by queued device work
  AllocStats st_;
};

// The process-wide allocator for CUDA memory (created on first use).
CachingAllocator& cuda_allocator();
// The pool of page-locked host memory behind host_alloc_pinned (created on first use, when a
// GPU is present): a batch buffer freed while its upload is queued waits for it.
CachingAllocator& pinned_allocator();

// Tensor memory on the host (plain allocations, no cache): bytes in use and their high-water
// mark, for the memory figures of a CPU run (reserved = in_use there).
AllocStats host_tensor_stats();
void reset_host_tensor_peak();
void note_host_tensor_alloc(size_t bytes);  // by Storage
void note_host_tensor_free(size_t bytes);

// Records every tensor storage allocation and free, on any device, while a trace is set:
// the tests replay a real step's pattern on a CachingAllocator. One trace at a time.
struct AllocEvent {
  const void* id;  // the storage (unique while it lives)
  size_t bytes;
  bool alloc;
};
void set_alloc_trace(std::vector<AllocEvent>* trace);  // nullptr stops recording
void note_alloc_event(const void* id, size_t bytes, bool alloc);

}  // namespace c3
