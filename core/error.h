// Error type and checking macros used everywhere in aria.
// Every user-facing failure (bad file, bad shape, bad flag) throws aria::Error with a message
// that names the thing that is wrong; the CLI turns it into "error: ..." and exit code 1.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace aria {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace aria

// ARIA_CHECK(cond, "message parts", value, ...): throws aria::Error with the parts concatenated.
#define ARIA_CHECK(cond, ...)                                               \
  do {                                                                      \
    if (!(cond)) throw ::aria::Error(::aria::detail::concat(__VA_ARGS__)); \
  } while (0)

// ARIA_FAIL("message parts", ...): unconditional throw.
#define ARIA_FAIL(...) throw ::aria::Error(::aria::detail::concat(__VA_ARGS__))
