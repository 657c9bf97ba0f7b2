// Files: folders made on demand and whole files replaced atomically, with errors that name
// the path.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace c3 {

// Creates `path` and its missing parents (mkdir -p); an error naming the folder otherwise.
void make_dirs(const std::string& path);

// Replaces `path` with `bytes` atomically: a temporary file in the same folder
// (PATH.tmp.PID.N, a name no other thread or process writes), fsync, rename over `path`,
// fsync of the folder. A kill leaves the previous file or the new one, never a mix; a
// failure removes the temporary and leaves the previous file untouched.
void write_file_atomic(const std::string& path, const void* bytes, size_t n);
inline void write_file_atomic(const std::string& path, std::string_view bytes) {
  write_file_atomic(path, bytes.data(), bytes.size());
}
inline void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes) {
  write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace c3
