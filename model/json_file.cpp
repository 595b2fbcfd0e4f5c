#include "aria/model/json_file.h"

#include "aria/core/error.h"
#include "aria/core/file_io.h"

namespace aria {

nlohmann::json read_json_file(const std::string& path, const std::string& what, uint64_t max_bytes) {
  const std::string text = io::read_file(path, what, max_bytes);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    ARIA_FAIL(what, " '", path, "': not valid JSON (", e.what(), ")");
  }
}

}  // namespace aria
