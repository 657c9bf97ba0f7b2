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

#include "core/error.h"

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

// The value of option or key `what` as a whole number in [lo, hi], or an error naming it:
// "--reps needs a whole number in [1, 1000], got 'abc'".
inline int64_t count_in(const std::string& what, const std::string& text, int64_t lo, int64_t hi) {
  const std::optional<int64_t> n = parse_count(text);
  C3_CHECK(n && *n >= lo && *n <= hi, what, " needs a whole number in [", lo, ", ", hi, "], got '", text, "'");
  return *n;
}
// The same for a number: "--width needs a number in [0.01, 4], got 'abc'".
inline double number_in(const std::string& what, const std::string& text, double lo, double hi) {
  const std::optional<double> x = parse_number(text);
  C3_CHECK(x && *x >= lo && *x <= hi, what, " needs a number in [", lo, ", ", hi, "], got '", text, "'");
  return *x;
}

}  // namespace c3
