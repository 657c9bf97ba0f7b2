// Strict text to number, for values a user or a file hands us (command-line options,
// checkpoint metadata): the whole text must be the number, or there is none. "3abc", "1e3"
// for a count, "-1" for a count, "" and overflow all give std::nullopt; the caller's error
// names the option or key.
#pragma once
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

namespace c3 {

// Decimal digits only (no sign, no exponent), within int64.
inline std::optional<int64_t> parse_count(const std::string& s) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), nullptr, 10);
  if (errno == ERANGE) return std::nullopt;
  return int64_t(v);
}

// A finite number in any form strtod reads, the whole text.
inline std::optional<double> parse_number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double x = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(x)) return std::nullopt;
  return x;
}

}  // namespace c3
