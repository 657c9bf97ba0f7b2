// safetensors files: an 8-byte little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value"}}
// then the raw little-endian data; offsets are relative to the end of the header.
//
// Reading validates everything before touching the data: the header length against the
// file size and a 100 MiB bound, the JSON (no name twice), each dtype, shape and offset
// range, that each tensor's byte count matches its shape, and that the tensors tile the data
// section exactly (no overlap, no gap, nothing after the last). Files we write carry the
// CRC-32 of their data section in the metadata ("c3.data_crc32"), checked on reading (and
// then left out of SafetensorsFile::metadata). Every problem is a c3::Error naming the file
// (and the tensor). Writing goes to a temporary file in the same folder, is fsynced, then
// renamed over the target, so a crash never leaves a torn checkpoint behind.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace c3::nn {

struct SafetensorsFile {
  std::vector<std::pair<std::string, Tensor>> tensors;  // in file order, CPU tensors
  std::map<std::string, std::string> metadata;
  const Tensor* find(const std::string& name) const;
  // The tensors whose name starts with `prefix`, the prefix removed ("student." -> the
  // student's state dict of a c3semiseg checkpoint), in file order.
  std::vector<std::pair<std::string, Tensor>> with_prefix(const std::string& prefix) const;
};

struct LoadOptions {
  // BF16 entries as bf16 tensors, bit for bit (for bf16 models and tools), instead of widened
  // to f32 (the default, which loads half-precision weights into f32 models).
  bool keep_bf16 = false;
};

// Loads F32, F64, I32, U8 as they are; I64 (PyTorch's num_batches_tracked) is narrowed to
// I32 with a range check; F16 is widened to F32, and so is BF16 unless opt.keep_bf16
// (half-precision weights load into F32 models; Module::load_state_dict casts nothing else).
// Other dtypes are an error.
SafetensorsFile load_safetensors(const std::string& path, const LoadOptions& opt = {});

// Tensors may live on any device (copied to the host to be written); bf16 tensors are written
// as BF16 entries (exact: load them back with keep_bf16).
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace c3::nn
