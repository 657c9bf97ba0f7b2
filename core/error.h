// Errors: one exception type (and its out-of-memory kind), and checks that fire in release
// builds too.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace c3 {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// An allocation the memory could not hold (after the caching allocator gave its cache back):
// callers that know the sizes (the trainer: batch and crop) add what to lower.
struct OutOfMemory : Error {
  using Error::Error;
};

namespace detail {
template <class... Args> std::string concat(const Args&... args) {
  std::ostringstream s;
  (s << ... << args);
  return s.str();
}
}  // namespace detail

}  // namespace c3

// C3_CHECK(cond, "what", value, ...): throws c3::Error with the pieces concatenated.
#define C3_CHECK(cond, ...) \
  do {                      \
    if (!(cond)) throw ::c3::Error(::c3::detail::concat(__VA_ARGS__)); \
  } while (0)
