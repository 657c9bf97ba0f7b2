#include "data/host_buffer.h"

#include "core/error.h"

namespace c3::data::host_buffer_impl {

void* host_buffer_alloc(size_t bytes, bool pinned) {
  const size_t total = bytes + kHostHeader;
  char* block = pinned ? static_cast<char*>(host_alloc_pinned(total)) : nullptr;
  const uint32_t tag = block ? kPinnedTag : kPlainTag;
  if (!block) block = static_cast<char*>(host_alloc(total));
  std::memcpy(block, &tag, sizeof tag);
  return block + kHostHeader;
}

void host_buffer_free(void* payload) {
  if (!payload) return;
  char* block = static_cast<char*>(payload) - kHostHeader;
  uint32_t tag = 0;
  std::memcpy(&tag, block, sizeof tag);
  C3_CHECK(tag == kPinnedTag || tag == kPlainTag, "host buffer: freeing a block it did not allocate");
  if (tag == kPinnedTag) host_free_pinned(block);
  else host_free(block);
}

bool host_buffer_is_pinned(const void* payload) {
  uint32_t tag = 0;
  std::memcpy(&tag, static_cast<const char*>(payload) - kHostHeader, sizeof tag);
  return tag == kPinnedTag;
}

}  // namespace c3::data::host_buffer_impl
