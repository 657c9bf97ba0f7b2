// Batch memory: page-locked ("pinned") when the batches go to a GPU, ordinary otherwise.
//
// HostAllocator is a std::allocator that asks core/alloc.h for pinned memory when its
// `pinned` flag is set, and falls back to ordinary memory when that fails (no GPU, or the
// page-locked limit reached). Each block records which kind it is in a 64-byte header, so a
// buffer frees correctly whatever it got, and is_pinned() tells (the GPU test checks it).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include "core/alloc.h"

namespace c3::data {

namespace host_buffer_impl {
constexpr size_t kHostHeader = 64;  // keeps the payload 64-byte aligned
constexpr uint32_t kPinnedTag = 0x50494e4eu, kPlainTag = 0x504c4149u;  // "PINN", "PLAI"
void* host_buffer_alloc(size_t bytes, bool pinned);
void host_buffer_free(void* payload);
bool host_buffer_is_pinned(const void* payload);
}  // namespace host_buffer_impl

template <class T>
struct HostAllocator {
  using value_type = T;
  using propagate_on_container_copy_assignment = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;
  bool pinned = false;

  HostAllocator() = default;
  explicit HostAllocator(bool pin) : pinned(pin) {}
  template <class U>
  HostAllocator(const HostAllocator<U>& o) : pinned(o.pinned) {}

  T* allocate(size_t n) { return static_cast<T*>(host_buffer_impl::host_buffer_alloc(n * sizeof(T), pinned)); }
  void deallocate(T* p, size_t) { host_buffer_impl::host_buffer_free(p); }
  // Any two allocators can free each other's blocks (the header says which kind).
  template <class U>
  bool operator==(const HostAllocator<U>&) const { return true; }
};

// The bytes of a batch: a std::vector in pinned memory when requested.
using HostBytes = std::vector<uint8_t, HostAllocator<uint8_t>>;

// True when the buffer's block is page-locked.
template <class T>
bool is_pinned(const std::vector<T, HostAllocator<T>>& v) {
  return v.capacity() > 0 && host_buffer_impl::host_buffer_is_pinned(v.data());
}

}  // namespace c3::data
