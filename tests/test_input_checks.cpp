// Checks that must hold before any training step (issue 19): batches padded within the model's
// vocabulary, duplicate task names refused by the config check, a training split with one class named
// in a warning, report values outside their range refused by report.html, the readers of train/
// refusing FIFOs and folders, and the writers failing with the file's name.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/train/continual/aria_config.h"
#include "aria/train/data/cls_data.h"
#include "aria/train/data/lm_data.h"
#include "aria/train/report/report.h"
#include "aria/train/report/report_html.h"

using namespace aria;
namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

struct TempDir {
  fs::path dir;
  TempDir() {
    dir = fs::temp_directory_path() / ("aria_input_checks_" + std::to_string(::getpid()) + "_" +
                                       std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

std::string config_error(const nlohmann::json& j) {
  try {
    parse_experiment_config(j, "cfg.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

ojson small_report() {
  ClReport r;
  r.tasks = {"a", "b"};
  MethodRun run;
  run.seed = 1;
  run.matrix = {{0.9, 0.5}, {0.7, 0.8}};
  run.before = {0.5, 0.5};
  r.methods = {MethodResult{"finetune", {run}}};
  return report_to_json(r);
}

}  // namespace

TEST_CASE("padding fits the model's vocabulary: pad_id_for and the batch builders") {
  CHECK(pad_id_for(50257) == 50256);
  CHECK(pad_id_for(50304) == 50256);
  CHECK(pad_id_for(512) == 0);
  CHECK(pad_id_for(50256) == 0);  // id 50256 is not a row of a 50256-token embedding
  std::vector<ClsExample> data(3);
  data[0].ids = {5, 6, 7};
  data[1].ids = {8};
  data[2].ids = {9, 10};
  for (const ClsBatch& b : fixed_batches(data, 2, Device::cpu(), 0, pad_id_for(300)))
    for (int32_t id : b.ids.to_ints()) CHECK(id < 300);
  const std::vector<int32_t> padded = fixed_batches(data, 2, Device::cpu())[0].ids.to_ints();
  CHECK(padded == std::vector<int32_t>{5, 6, 7, 8, 50256, 50256});  // the default is unchanged
  ClsBatcher batcher(&data, 3, 1);
  for (int32_t id : batcher.next(Device::cpu(), 0).ids.to_ints()) CHECK(id <= 10);
}

TEST_CASE("two task folders of one name are refused by the config check") {
  const nlohmann::json base = {{"tasks", {"weather", "animal"}}};
  CHECK(config_error(base).empty());
  for (const char* other : {"../B/weather", "/data/weather/", "./weather/.", "x/../weather2/../weather"}) {
    nlohmann::json j = {{"tasks", {"weather", other}}};
    const std::string e = config_error(j);
    CAPTURE(other);
    CHECK(e.find("same task name \"weather\"") != std::string::npos);
    CHECK(e.find(other) != std::string::npos);
  }
  ExperimentConfig c;
  c.tasks = {"a/x", "b/x"};
  CHECK_THROWS_WITH_AS(validate_experiment_config(c), doctest::Contains("same task name \"x\""), Error);
}

TEST_CASE("a training split with one class is named in a warning") {
  ClsTaskData d;
  d.name = "weather";
  d.label_names = {"sunny", "rainy", "foggy"};
  d.train.resize(4);
  for (auto& e : d.train) e.ids = {1}, e.label = 1;
  const std::string w = train_class_warning(d);
  CHECK(w.find("task 'weather'") != std::string::npos);
  CHECK(w.find("only class 'rainy'") != std::string::npos);
  d.train[0].label = 0;
  const std::string missing = train_class_warning(d);
  CHECK(missing.find("no example of class 'foggy'") != std::string::npos);
  d.train[1].label = 2;
  CHECK(train_class_warning(d).empty());
  CHECK(max_token_id(d) == 1);
}

TEST_CASE("report.html refuses values outside their range, naming the field") {
  const ojson ok = small_report();
  CHECK_NOTHROW(report_html(ok, {}));
  struct Case {
    const char* what;
    std::function<void(ojson&)> edit;
    const char* field;
  };
  const std::vector<Case> cases = {
      {"1e308", [](ojson& r) { r["methods"]["finetune"]["matrix"][0][1] = 1e308; }, "methods.finetune.matrix[0][1]"},
      {"above 1", [](ojson& r) { r["methods"]["finetune"]["matrix"][1][0] = 1.01; }, "methods.finetune.matrix[1][0]"},
      {"negative", [](ojson& r) { r["methods"]["finetune"]["before"][1] = -0.1; }, "methods.finetune.before[1]"},
      {"acc", [](ojson& r) { r["methods"]["finetune"]["acc"] = 2.0; }, "methods.finetune.acc"},
      {"bwt", [](ojson& r) { r["methods"]["finetune"]["bwt"] = -1e308; }, "methods.finetune.bwt"},
      {"fwt string", [](ojson& r) { r["methods"]["finetune"]["fwt"] = "high"; }, "methods.finetune.fwt"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    ojson r = ok;
    c.edit(r);
    CHECK_THROWS_WITH_AS(report_html(r, {}), doctest::Contains(c.field), Error);
  }
}

TEST_CASE("train/ readers refuse FIFOs and folders before opening them") {
  TempDir t;
  const std::string fifo = (t.dir / "fifo").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  // Each would block in open() forever without the check (the test would hang, not pass).
  CHECK_THROWS_WITH_AS(load_experiment_config(fifo), doctest::Contains("a FIFO"), Error);
  auto bytes = [](const std::string& s) { return std::vector<int32_t>(s.begin(), s.end()); };
  CHECK_THROWS_WITH_AS(load_token_dataset(fifo, bytes), doctest::Contains("a FIFO"), Error);
  CHECK_THROWS_WITH_AS(load_token_dataset(t.dir.string(), bytes), doctest::Contains("is a directory"), Error);
  const fs::path task = t.dir / "task";
  fs::create_directories(task);
  for (const char* split : {"train.jsonl", "validation.jsonl", "test.jsonl"})  // valid splits: labels.json is reached
    io::write_file_atomic((task / split).string(), "{\"text\": \"a b c\", \"label\": 0}\n");
  REQUIRE(::mkfifo((task / "labels.json").c_str(), 0644) == 0);
  const std::string vd = find_vocab_dir("");
  const Gpt2Tokenizer tok = Gpt2Tokenizer::load(vd + "/vocab.json", vd + "/merges.txt");
  CHECK_THROWS_WITH_AS(load_cls_task(task.string(), tok, 16, 0, 0), doctest::Contains("labels.json' is a FIFO"),
                       Error);
}

TEST_CASE("report writers name the file that cannot be written") {
  TempDir t;
  ClReport r;
  r.tasks = {"a"};
  MethodRun run;
  run.matrix = {{0.5}};
  run.before = {0.5};
  r.methods = {MethodResult{"finetune", {run}}};
  const std::string in_missing = (t.dir / "no_such_folder" / "report.json").string();
  CHECK_THROWS_WITH_AS(write_report_json(r, in_missing), doctest::Contains("no_such_folder"), Error);
  const std::string html = (t.dir / "no_such_folder" / "report.html").string();
  CHECK_THROWS_WITH_AS(write_report_html(report_to_json(r), {}, html), doctest::Contains("no_such_folder"), Error);
  write_report_json(r, (t.dir / "report.json").string());
  CHECK(nlohmann::json::parse(io::read_file((t.dir / "report.json").string(), "report"))["tasks"][0] == "a");
}
