// One case per defect the fuzzers (tests/fuzz, docs/fuzzing.md) exposed, fed through the normal API
// so that the normal suite keeps them fixed without clang or libFuzzer.
#include <doctest/doctest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/model/tokenizer.h"
#include "aria/model/tokenizer_impl.h"
#include "tests/support/test_util.h"
#include "aria/train/data/cls_data.h"

using namespace aria;

namespace {

// A task folder with the given train split (JSONL) and a valid test split.
struct Task {
  testing::TempDir tmp{"aria-fuzzreg"};
  explicit Task(const std::string& train, const std::string& labels_json = "") {
    tmp.write(train, "train.jsonl");
    tmp.write("{\"text\": \"a\", \"label\": 0}\n{\"text\": \"b\", \"label\": 1}\n", "test.jsonl");
    if (!labels_json.empty()) tmp.write(labels_json, "labels.json");
  }
  std::string error() const {
    try {
      check_cls_task(tmp.dir.string());
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
};

}  // namespace

TEST_CASE("a JSONL integer label beyond int64 is a clear error, not an uncaught out_of_range") {
  const std::string big = "{\"text\": \"a\", \"label\": 18446744073709551615}\n{\"text\": \"b\", \"label\": 1}\n";
  for (const std::string& labels : {std::string(""), std::string("[\"x\", \"y\"]")}) {
    CAPTURE(labels);
    const std::string msg = Task(big, labels).error();
    CHECK(msg.find("train.jsonl:1: label 18446744073709551615 is out of range") != std::string::npos);
  }
  // The largest int64 is still an integer label (a class number without labels.json).
  const std::string max = "{\"text\": \"a\", \"label\": 9223372036854775807}\n{\"text\": \"b\", \"label\": 1}\n";
  CHECK(Task(max).error() == "");
}

TEST_CASE("read_file sizes its buffer by the file and still reads every byte") {
  testing::TempDir tmp("aria-fuzzreg");
  for (size_t n : {size_t(0), size_t(1), size_t(4095), size_t(4096), size_t(4097), size_t(3) << 20}) {
    std::string bytes(n, '\0');
    for (size_t i = 0; i < n; ++i) bytes[i] = char((i * 131 + 7) & 0xFF);
    const std::string path = tmp.write(bytes, "f" + std::to_string(n));
    CAPTURE(n);
    CHECK(io::read_file(path, "test file") == bytes);
  }
}

TEST_CASE("tokenizer.json: an added token may repeat its vocabulary entry, never take another token's id") {
  testing::TempDir tmp("aria-fuzzreg");
  // A byte-level BPE over the 256 byte symbols in GPT-2's spelling, id = the byte's value, no merges.
  auto file = [&](const std::string& added) {
    std::string vocab;
    for (int b = 0; b < 256; ++b) {
      const std::string spelled = nlohmann::json(tok::bytes_to_spelling(std::string(1, char(b)))).dump();
      vocab += (b ? ", " : "") + spelled + ": " + std::to_string(b);
    }
    return tmp.write("{\"added_tokens\": [" + added + "], \"pre_tokenizer\": {\"type\": \"ByteLevel\", "
                     "\"add_prefix_space\": false, \"use_regex\": true}, \"decoder\": {\"type\": \"ByteLevel\"}, "
                     "\"model\": {\"type\": \"BPE\", \"vocab\": {" + vocab + "}, \"merges\": []}}",
                     "tokenizer.json");
  };
  auto error = [&](const std::string& added) {
    try {
      Tokenizer::load_hf_json(file(added));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  // Id 0 is byte 0x00 (spelled "\u0100"): an added "<unk>" there would make the text's NUL bytes
  // decode as "<unk>" (the fuzzer's input). Refused, naming both.
  const std::string msg = error("{\"id\": 0, \"content\": \"<unk>\", \"special\": true}");
  CAPTURE(msg);
  CHECK(msg.find("added_tokens[0]") != std::string::npos);
  CHECK(msg.find("has id 0, which the model's vocabulary gives to") != std::string::npos);
  // Repeating the entry is fine: id 97 is "a" (byte 0x61); id 32 is " " (spelled "\u0120").
  CHECK(error("{\"id\": 97, \"content\": \"a\", \"special\": false}") == "");
  CHECK(error("{\"id\": 32, \"content\": \" \", \"special\": false}") == "");
  // And a new id past the vocabulary is an ordinary added token, which round-trips.
  CHECK(error("{\"id\": 256, \"content\": \"<|end|>\", \"special\": true}") == "");
  const Tokenizer tok = Tokenizer::load_hf_json(file("{\"id\": 256, \"content\": \"<|end|>\", \"special\": true}"));
  const std::string text = std::string("a\0b<|end|>c", 10);
  CHECK(tok.decode(tok.encode(text)) == text);
}
