// CRC-32 (the ISO 3309 polynomial of PNG, zlib and gzip): PNG chunks carry it, and our own
// safetensors files carry it over their data section (nn/safetensors.h), so that a flipped
// bit in a checkpoint is an error at load instead of a silently different model.
#pragma once
#include <cstddef>
#include <cstdint>

namespace c3 {

// `crc` continues a previous call's result over more bytes (0 to start).
uint32_t crc32(const void* data, size_t n, uint32_t crc = 0);

}  // namespace c3
