// Reading a whole text file for the CLI, with the errors a user needs (missing, unreadable, empty).
#pragma once
#include <fstream>
#include <sstream>
#include <string>

#include "core/error.h"

namespace aria::cli {

inline std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  ARIA_CHECK(f.good(), "cannot open text file '", path, "'");
  std::ostringstream os;
  os << f.rdbuf();
  ARIA_CHECK(!f.bad(), "error reading '", path, "'");
  std::string s = os.str();
  ARIA_CHECK(!s.empty(), "text file '", path, "' is empty");
  return s;
}

}  // namespace aria::cli
