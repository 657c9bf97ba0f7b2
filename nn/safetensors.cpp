#include "nn/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/checksum.h"
#include "core/file.h"
#include "kernels/bf16_math.h"

namespace c3::nn {
namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;
// The CRC-32 of the data section, written by save_safetensors and checked by load_safetensors
// (safetensors itself has no checksum); files from elsewhere lack it and load unchecked.
constexpr const char* kChecksumKey = "c3.data_crc32";

struct DTypeInfo {
  const char* name;
  size_t size;
};
const DTypeInfo kDTypes[] = {{"F32", 4}, {"F64", 8}, {"I32", 4}, {"U8", 1}, {"I64", 8}, {"F16", 2}, {"BF16", 2}};

const char* st_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::i32: return "I32";
    case DType::u8: return "U8";
    case DType::bf16: return "BF16";
  }
  return "?";
}

float half_to_float(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v;
  if (exp == 0) v = std::ldexp(float(mant), -24);
  else if (exp == 31) v = mant ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else v = std::ldexp(float(mant | 0x400), int(exp) - 25);
  return sign ? -v : v;
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  C3_CHECK(f, path, ": cannot open (", std::strerror(errno), ")");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return s;
}

Tensor decode(const std::string& path, const std::string& name, const std::string& dt, const Shape& shape,
              const char* src, size_t bytes, const LoadOptions& opt) {
  const int64_t n = shape_numel(shape);
  auto fail = [&](const std::string& what) { return Error(path + ": tensor '" + name + "': " + what); };
  // The bytes are the tensor (BF16 too, when kept).
  const std::pair<const char*, DType> as_stored[] = {
      {"F32", DType::f32}, {"F64", DType::f64}, {"I32", DType::i32}, {"U8", DType::u8}, {"BF16", DType::bf16}};
  for (const auto& [st, t] : as_stored) {
    if (dt != st || (t == DType::bf16 && !opt.keep_bf16)) continue;
    Tensor out = Tensor::empty(shape, t);
    std::memcpy(out.raw(), src, bytes);
    return out;
  }
  if (dt == "I64") {
    Tensor out = Tensor::empty(shape, DType::i32);
    int32_t* o = out.data<int32_t>();
    for (int64_t i = 0; i < n; ++i) {
      int64_t v;
      std::memcpy(&v, src + 8 * i, 8);
      if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
        throw fail("I64 value " + std::to_string(v) + " does not fit in I32");
      o[i] = int32_t(v);
    }
    return out;
  }
  Tensor out = Tensor::empty(shape, DType::f32);  // F16, and BF16 widened
  float* o = out.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    o[i] = dt == "F16" ? half_to_float(h) : kernels::bf16_bits_to_f32(h);
  }
  return out;
}

}  // namespace

std::vector<std::pair<std::string, Tensor>> SafetensorsFile::with_prefix(const std::string& prefix) const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [n, t] : tensors)
    if (n.rfind(prefix, 0) == 0) out.emplace_back(n.substr(prefix.size()), t);
  return out;
}

const Tensor* SafetensorsFile::find(const std::string& name) const {
  for (auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

SafetensorsFile load_safetensors(const std::string& path, const LoadOptions& opt) {
  const std::string file = read_all(path);
  auto fail = [&](const std::string& what) { return Error(path + ": not a valid safetensors file: " + what); };
  if (file.size() < 8) throw fail("shorter than the 8-byte header length (" + std::to_string(file.size()) + " bytes)");
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | uint8_t(file[i]);
  if (hlen > kMaxHeader) throw fail("header length " + std::to_string(hlen) + " exceeds the 100 MiB bound");
  if (hlen > file.size() - 8)
    throw fail("header length " + std::to_string(hlen) + " is longer than the file (" + std::to_string(file.size()) +
               " bytes; truncated?)");
  nlohmann::json header;
  std::string duplicate;  // JSON parsers keep the last of two equal keys: a tensor would vanish
  std::vector<std::set<std::string>> keys_at_depth;
  auto seen = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) {
      if (int(keys_at_depth.size()) <= depth) keys_at_depth.resize(size_t(depth) + 1);
      keys_at_depth[size_t(depth)].clear();
    } else if (event == E::key && depth >= 1 && duplicate.empty() &&
               !keys_at_depth[size_t(depth) - 1].insert(parsed.get<std::string>()).second) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  try {
    header = nlohmann::json::parse(file.begin() + 8, file.begin() + 8 + static_cast<std::ptrdiff_t>(hlen), seen);
  } catch (const std::exception& e) {
    throw fail(std::string("header is not JSON: ") + e.what());
  }
  if (!duplicate.empty()) throw fail("the header names '" + duplicate + "' twice");
  if (!header.is_object()) throw fail("header is not a JSON object");
  const size_t data_begin = 8 + hlen, data_size = file.size() - data_begin;

  SafetensorsFile out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw fail("__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) throw fail("__metadata__ value '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto tfail = [&](const std::string& what) { return fail("tensor '" + name + "': " + what); };
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      throw tfail("needs dtype, shape and data_offsets");
    if (!v["dtype"].is_string()) throw tfail("dtype is not a string");
    const std::string dt = v["dtype"].get<std::string>();
    const DTypeInfo* info = nullptr;
    for (const auto& d : kDTypes)
      if (dt == d.name) info = &d;
    if (!info) throw tfail("unknown or unsupported dtype '" + dt + "'");
    if (!v["shape"].is_array() || v["shape"].size() > 4) throw tfail("shape must be an array of rank 0 to 4");
    Shape shape;
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        throw tfail("shape entries must be non-negative integers");
      const uint64_t dim = d.get<uint64_t>();
      if (dim > (1ull << 40) || (dim && numel > (1ull << 40) / dim)) throw tfail("shape is implausibly large");
      numel *= dim;
      shape.push_back(static_cast<int64_t>(dim));
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw tfail("data_offsets must be two non-negative integers");
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > data_size)
      throw tfail("data_offsets [" + std::to_string(b) + ", " + std::to_string(e) + "] out of range of the " +
                  std::to_string(data_size) + "-byte data section (truncated file?)");
    if (e - b != numel * info->size)
      throw tfail("holds " + std::to_string(e - b) + " bytes but shape and dtype need " +
                  std::to_string(numel * info->size));
    ranges.emplace_back(b, e);
    out.tensors.emplace_back(name, decode(path, name, dt, shape, file.data() + data_begin + b, e - b, opt));
  }
  // The tensors must tile the data section exactly: a gap or a byte past the last tensor is
  // a shifted header (its length edited by a few bytes loads every tensor shifted) or junk.
  std::sort(ranges.begin(), ranges.end());
  uint64_t covered = 0;
  for (const auto& [b, e] : ranges) {
    if (b < covered) throw fail("two tensors overlap in the data section (at byte " + std::to_string(b) + ")");
    if (b > covered)
      throw fail("bytes " + std::to_string(covered) + ".." + std::to_string(b) +
                 " of the data section belong to no tensor (a corrupt header or header length?)");
    covered = e;
  }
  if (covered != data_size)
    throw fail("the tensors cover " + std::to_string(covered) + " of the " + std::to_string(data_size) +
               " bytes of the data section (a corrupt header length, or bytes appended?)");
  if (auto it = out.metadata.find(kChecksumKey); it != out.metadata.end()) {
    char want[16];
    std::snprintf(want, sizeof want, "%08x", crc32(file.data() + data_begin, data_size));
    if (it->second != want)
      throw Error(path + ": corrupt data: the checksum of the data section is " + want + ", the file says " +
                  it->second + " (a damaged copy or disk; use an earlier checkpoint)");
    out.metadata.erase(it);
  }
  // Keep file order stable (by offset) for readers that care.
  std::stable_sort(out.tensors.begin(), out.tensors.end(), [&](const auto& x, const auto& y) {
    return header[x.first]["data_offsets"][0].template get<uint64_t>() <
           header[y.first]["data_offsets"][0].template get<uint64_t>();
  });
  return out;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    C3_CHECK(name != "__metadata__" && !name.empty(), path, ": invalid tensor name '", name, "'");
    C3_CHECK(!header.contains(name), path, ": duplicate tensor name '", name, "'");
    header[name] = {{"dtype", st_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  uint32_t crc = 0;
  std::vector<Tensor> host;
  for (const auto& [name, t] : tensors) {
    host.push_back(t.detach().cpu());
    crc = crc32(host.back().raw(), host.back().nbytes(), crc);
  }
  char crc_hex[16];
  std::snprintf(crc_hex, sizeof crc_hex, "%08x", crc);
  header["__metadata__"][kChecksumKey] = crc_hex;
  std::string h = header.dump();
  while ((8 + h.size()) % 8) h.push_back(' ');  // align the data section to 8 bytes
  std::string bytes(8, '\0');
  const uint64_t hl = h.size();
  for (int i = 0; i < 8; ++i) bytes[i] = char((hl >> (8 * i)) & 0xff);
  bytes += h;
  bytes.reserve(bytes.size() + offset);
  for (const Tensor& c : host) bytes.append(static_cast<const char*>(c.raw()), c.nbytes());
  write_file_atomic(path, bytes);
}

}  // namespace c3::nn
