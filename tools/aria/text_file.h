// Reading a whole text file for the CLI, with the errors a user needs (missing, a directory or a
// FIFO, unreadable, empty), each naming the file and the OS's reason.
#pragma once
#include <string>

#include "aria/core/error.h"
#include "aria/core/file_io.h"

namespace aria::cli {

inline std::string read_text_file(const std::string& path) {
  // io::read_file refuses anything but a regular file before opening it: a directory is named as
  // one (not "empty"), and a FIFO cannot block the command forever.
  std::string s = io::read_file(path, "text file");
  ARIA_CHECK(!s.empty(), "text file '", path, "' is empty");
  return s;
}

}  // namespace aria::cli
