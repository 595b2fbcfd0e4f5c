// One case per defect the fuzzers (tests/fuzz, docs/fuzzing.md) exposed, fed through the normal API
// so that the normal suite keeps them fixed without clang or libFuzzer.
#include <doctest/doctest.h>

#include <string>

#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "tests/support/test_util.h"
#include "aria/train/cls_data.h"

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
