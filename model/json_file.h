// Reading a small JSON file that a model folder carries (config.json, model.safetensors.index.json):
// the bytes through io::read_file (which refuses FIFOs, directories and files over max_bytes), then
// the parse, with errors that name the file: "<what> '<path>': not valid JSON (...)".
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace aria {

nlohmann::json read_json_file(const std::string& path, const std::string& what, uint64_t max_bytes);

}  // namespace aria
