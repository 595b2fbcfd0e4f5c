// Classification data: the JSONL and CSV task formats with strict errors naming file:line, padded
// batches, and a batcher that is reproducible from its seed and from a saved State.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>

#include "aria/core/error.h"
#include "aria/train/data/cls_data.h"

using namespace aria;
namespace fs = std::filesystem;

namespace {

const std::string kTiny = std::string(ARIA_SOURCE_DIR) + "/tests/fixtures/cls_tiny";

const Gpt2Tokenizer& tok() {
  static const Gpt2Tokenizer t = [] {
    const std::string d = find_vocab_dir("");
    return Gpt2Tokenizer::load(d + "/vocab.json", d + "/merges.txt");
  }();
  return t;
}

struct TaskDir {
  fs::path dir;
  TaskDir() {
    std::random_device rd;
    dir = fs::temp_directory_path() /
          ("aria_cls_" + std::to_string(::getpid()) + "_" + std::to_string(rd()) + "_" +
           std::to_string(std::chrono::steady_clock::now().time_since_epoch().count())) /
          "mytask";
    fs::create_directories(dir);
    write("labels.json", "[\"no\", \"yes\"]");
    const std::string ok = "{\"text\": \"one\", \"label\": 0}\n{\"text\": \"two\", \"label\": 1}\n";
    write("train.jsonl", ok);
    write("validation.jsonl", ok);
    write("test.jsonl", ok);
  }
  ~TaskDir() {
    std::error_code ec;
    fs::remove_all(dir.parent_path(), ec);
  }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(dir / name, std::ios::binary | std::ios::trunc) << text;
  }
  std::string error_of() const {
    try {
      load_cls_task(dir.string(), tok(), 64, 0, 0);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
};

std::vector<int32_t> flat_ids(const ClsBatch& b) { return b.ids.to_ints(); }

}  // namespace

TEST_CASE("the committed tiny tasks load: names, labels, sizes, tokens") {
  ClsTaskData d = load_cls_task(kTiny + "/animal", tok(), 64, 0, 0);
  CHECK(d.name == "animal");
  CHECK(d.label_names == std::vector<std::string>{"cat", "dog", "bird"});
  CHECK(d.num_labels() == 3);
  CHECK(d.train.size() == 12);
  CHECK(d.validation.size() == 3);
  CHECK(d.test.size() == 6);
  CHECK(d.test[0].ids == tok().encode("My pet is a cat"));
  CHECK(d.test[0].label == 0);
  CHECK(d.test[2].label == 2);
  // A trailing slash does not change the name.
  CHECK(load_cls_task(kTiny + "/weather/", tok(), 64, 0, 0).name == "weather");
}

TEST_CASE("caps keep the first lines, long texts keep their first max_seq_len tokens") {
  ClsTaskData d = load_cls_task(kTiny + "/animal", tok(), 3, 5, 2);
  CHECK(d.train.size() == 5);
  CHECK(d.validation.size() == 2);
  CHECK(d.test.size() == 2);
  const std::vector<int32_t> full = tok().encode("It purrs on the sofa, it is a cat");
  REQUIRE(full.size() > 3);
  CHECK(d.train[0].ids == std::vector<int32_t>(full.begin(), full.begin() + 3));
  for (const auto& e : d.train) CHECK(e.ids.size() <= 3);
}

TEST_CASE("malformed lines are errors naming file:line and the reason") {
  const std::pair<std::string, std::string> cases[] = {
      {"{\"text\": \"x\", \"label\": 0", "not valid JSON"},
      {"[\"x\", 0]", "must be a JSON object"},
      {"{\"label\": 0}", "missing key \"text\""},
      {"{\"text\": \"x\"}", "missing key \"label\""},
      {"{\"text\": 5, \"label\": 0}", "\"text\" must be a string"},
      {"{\"text\": \"x\", \"label\": \"1\"}", "label \"1\" is not one of the labels of"},
      {"{\"text\": \"x\", \"label\": 1.0}", "\"label\" must be an integer or a string"},
      {"{\"text\": \"x\", \"label\": null}", "\"label\" must be an integer or a string"},
      {"{\"text\": \"x\", \"label\": \"\"}", "\"label\" is empty"},
      {"{\"text\": \"x\", \"label\": 2}", "label 2 is outside [0, 2)"},
      {"{\"text\": \"x\", \"label\": -1}", "label -1 is outside [0, 2)"},
      {"{\"text\": \"\", \"label\": 0}", "\"text\" is empty"},
      {"{\"text\": \" \\n \", \"label\": 0}", "\"text\" is empty"},
      {"", "empty line"},
      {"   ", "empty line"},
  };
  for (const auto& [line, want] : cases) {
    CAPTURE(line);
    TaskDir t;
    // The bad line is line 3, after two good ones.
    t.write("validation.jsonl", "{\"text\": \"a\", \"label\": 0}\n{\"text\": \"b\", \"label\": 1}\n" + line + "\n");
    const std::string e = t.error_of();
    CAPTURE(e);
    CHECK(e.find("validation.jsonl:3: ") != std::string::npos);
    CHECK(e.find(want) != std::string::npos);
  }
}

TEST_CASE("lines beyond the caps are still checked, CRLF and a missing final newline are fine") {
  TaskDir t;
  t.write("train.jsonl", "{\"text\": \"a\", \"label\": 0}\r\n{\"text\": \"b\", \"label\": 1}\r\n{\"text\": \"c\", \"label\": 7}");
  try {
    load_cls_task(t.dir.string(), tok(), 64, 1, 0);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("train.jsonl:3: label 7") != std::string::npos);
  }
  t.write("train.jsonl", "{\"text\": \"a\", \"label\": 0}\r\n{\"text\": \"b\", \"label\": 1}");
  ClsTaskData d = load_cls_task(t.dir.string(), tok(), 64, 0, 0);
  CHECK(d.train.size() == 2);
  CHECK(d.train[1].ids == tok().encode("b"));
}

TEST_CASE("labels.json and missing files are checked") {
  const std::pair<std::string, std::string> cases[] = {
      {"{\"a\": 0}", "must be a JSON array"},
      {"[\"only\"]", "at least 2 labels"},
      {"[\"a\", 1]", "label 1 must be a string"},
      {"[\"a\", \"a\"]", "\"a\" appears twice"},
      {"[\"a\", \"\"]", "label 1 is empty"},
      {"[\"a\",", "not valid JSON"},
  };
  for (const auto& [text, want] : cases) {
    TaskDir t;
    t.write("labels.json", text);
    const std::string e = t.error_of();
    CAPTURE(e);
    CHECK(e.find("labels.json") != std::string::npos);
    CHECK(e.find(want) != std::string::npos);
  }
  {
    TaskDir t;
    fs::remove(t.dir / "test.jsonl");
    CHECK(t.error_of().find("test.jsonl' does not exist") != std::string::npos);
  }
  {
    TaskDir t;
    t.write("train.jsonl", "");
    CHECK(t.error_of().find("train.jsonl: holds no examples") != std::string::npos);
  }
  CHECK_THROWS_WITH_AS(load_cls_task("/nonexistent/task", tok(), 64, 0, 0),
                       doctest::Contains("task directory '/nonexistent/task' does not exist"), Error);
}

TEST_CASE("make_cls_batch right-pads and points at each sequence's last real token") {
  ClsExample a{{5, 6, 7}, 1}, b{{8}, 0};
  ClsBatch batch = make_cls_batch({&a, &b}, Device::cpu());
  CHECK(batch.ids.shape() == Shape{2, 3});
  CHECK(flat_ids(batch) == std::vector<int32_t>{5, 6, 7, 8, 50256, 50256});
  CHECK(batch.last_index.to_ints() == std::vector<int32_t>{2, 3});  // 0 * 3 + 2, 1 * 3 + 0
  CHECK(batch.mask.shape() == Shape{2, 3, 1});
  CHECK(batch.mask.to_floats() == std::vector<float>{1, 1, 1, 1, 0, 0});
  CHECK(batch.labels.to_ints() == std::vector<int32_t>{1, 0});
  CHECK(batch.host_labels == std::vector<int32_t>{1, 0});
  CHECK(batch.real_tokens == 4);
  CHECK_THROWS_AS(make_cls_batch({}, Device::cpu()), Error);
}

TEST_CASE("ClsBatcher: every epoch is a permutation, the order depends on the seed, and it is reproducible") {
  std::vector<ClsExample> data;
  for (int i = 0; i < 12; ++i) data.push_back({{int32_t(100 + i)}, int32_t(i % 2)});
  ClsBatcher a(&data, 4, 42), b(&data, 4, 42), c(&data, 4, 43);
  std::vector<int32_t> seq_a, seq_c;
  for (int step = 0; step < 9; ++step) {  // three epochs of three batches
    ClsBatch x = a.next(Device::cpu()), y = b.next(Device::cpu());
    CHECK(flat_ids(x) == flat_ids(y));
    CHECK(x.host_labels == y.host_labels);
    for (int32_t id : flat_ids(x)) seq_a.push_back(id);
    for (int32_t id : flat_ids(c.next(Device::cpu()))) seq_c.push_back(id);
  }
  CHECK(seq_a != seq_c);
  for (int e = 0; e < 3; ++e) {
    std::set<int32_t> seen(seq_a.begin() + 12 * e, seq_a.begin() + 12 * (e + 1));
    CHECK(seen.size() == 12);
  }
  // Consecutive epochs are shuffled differently.
  CHECK(std::vector<int32_t>(seq_a.begin(), seq_a.begin() + 12) != std::vector<int32_t>(seq_a.begin() + 12, seq_a.begin() + 24));
}

TEST_CASE("ClsBatcher: a batcher restored from a State yields exactly the same batches") {
  std::vector<ClsExample> data;
  for (int i = 0; i < 10; ++i) data.push_back({{int32_t(200 + i), int32_t(i)}, int32_t(i % 3)});
  // Batch 3 does not divide 10: batches cross epoch boundaries, so restoring mid-epoch and just
  // after a crossing are both exercised.
  for (int skip : {0, 1, 3, 4, 7}) {
    CAPTURE(skip);
    ClsBatcher a(&data, 3, 9);
    for (int i = 0; i < skip; ++i) a.next(Device::cpu());
    ClsBatcher::State s = a.state();
    std::vector<std::vector<int32_t>> want;
    for (int i = 0; i < 8; ++i) want.push_back(flat_ids(a.next(Device::cpu())));
    ClsBatcher r(&data, 3, 12345);  // a different seed: the state carries the stream
    r.next(Device::cpu());
    r.set_state(s);
    for (int i = 0; i < 8; ++i) CHECK(flat_ids(r.next(Device::cpu())) == want[size_t(i)]);
  }
  ClsBatcher a(&data, 3, 9);
  CHECK_THROWS_AS(a.set_state(ClsBatcher::State{RngState{}, 0, 11}), Error);
  // A batch larger than the data holds each example once.
  ClsBatcher big(&data, 64, 1);
  std::vector<int32_t> ids = big.next(Device::cpu()).labels.to_ints();
  CHECK(ids.size() == 10);
}

TEST_CASE("fixed_batches: in order, the last batch smaller, capped by max_batches") {
  std::vector<ClsExample> data;
  for (int i = 0; i < 7; ++i) data.push_back({{int32_t(i + 1)}, 0});
  std::vector<ClsBatch> all = fixed_batches(data, 3, Device::cpu());
  REQUIRE(all.size() == 3);
  CHECK(flat_ids(all[0]) == std::vector<int32_t>{1, 2, 3});
  CHECK(flat_ids(all[2]) == std::vector<int32_t>{7});
  CHECK(fixed_batches(data, 3, Device::cpu(), 2).size() == 2);
}

// ---- data as people have it: extra keys, other field names, string labels, CSV, BOM, no validation ----

namespace {
ClsTaskData load(const TaskDir& t, const ClsDataOptions& o = {}) { return load_cls_task(t.dir.string(), tok(), 64, 0, 0, o); }
std::string error_with(const TaskDir& t, const ClsDataOptions& o) {
  try {
    load(t, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
std::vector<int32_t> labels_of(const std::vector<ClsExample>& v) {
  std::vector<int32_t> out;
  for (const ClsExample& e : v) out.push_back(e.label);
  return out;
}
}  // namespace

TEST_CASE("JSONL: extra keys are ignored, --text-field/--label-field name other keys") {
  TaskDir t;
  t.write("train.jsonl", "{\"idx\": 0, \"text\": \"one\", \"label\": 0, \"meta\": {\"a\": [1]}}\n"
                         "{\"idx\": 1, \"text\": \"two\", \"label\": 1}\n");
  ClsTaskData d = load(t);
  CHECK(d.train.size() == 2);
  CHECK(d.train[1].ids == tok().encode("two"));
  CHECK(d.labels_source == "labels.json");
  CHECK(d.validation_source == "validation.jsonl");

  const std::string sst = "{\"sentence\": \"good film\", \"idx\": 3, \"y\": 1}\n{\"sentence\": \"bad\", \"idx\": 4, \"y\": 0}\n";
  t.write("train.jsonl", sst);
  t.write("validation.jsonl", sst);
  t.write("test.jsonl", sst);
  ClsDataOptions o;
  o.text_field = "sentence";
  o.label_field = "y";
  d = load(t, o);
  CHECK(d.train[0].ids == tok().encode("good film"));
  CHECK(labels_of(d.train) == std::vector<int32_t>{1, 0});
  // With the default field names the error names the missing key and the flag.
  const std::string e = error_with(t, {});
  CHECK(e.find("train.jsonl:1: missing key \"text\"") != std::string::npos);
  CHECK(e.find("--text-field") != std::string::npos);
  o.label_field = "nope";
  CHECK(error_with(t, o).find("missing key \"nope\"") != std::string::npos);
}

TEST_CASE("string labels map through labels.json, or are collected in sorted order without it") {
  TaskDir t;
  const std::string s = "{\"text\": \"a\", \"label\": \"yes\"}\n{\"text\": \"b\", \"label\": \"no\"}\n{\"text\": \"c\", \"label\": 1}\n";
  t.write("train.jsonl", s);
  t.write("validation.jsonl", s);
  t.write("test.jsonl", s);
  ClsTaskData d = load(t);
  CHECK(labels_of(d.train) == std::vector<int32_t>{1, 0, 1});  // labels.json is ["no", "yes"]
  t.write("train.jsonl", "{\"text\": \"a\", \"label\": \"maybe\"}\n");
  CHECK(error_with(t, {}).find("train.jsonl:1: label \"maybe\" is not one of the labels of") != std::string::npos);

  TaskDir u;
  fs::remove(u.dir / "labels.json");
  u.write("train.jsonl", "{\"text\": \"a\", \"label\": \"positive\"}\n{\"text\": \"b\", \"label\": \"negative\"}\n");
  u.write("validation.jsonl", "{\"text\": \"a\", \"label\": \"neutral\"}\n");
  u.write("test.jsonl", "{\"text\": \"a\", \"label\": \"positive\"}\n");
  d = load(u);
  CHECK(d.label_names == std::vector<std::string>{"negative", "neutral", "positive"});
  CHECK(d.labels_source.find("collected from the data") != std::string::npos);
  CHECK(labels_of(d.train) == std::vector<int32_t>{2, 0});
  CHECK(labels_of(d.validation) == std::vector<int32_t>{1});
  // Integer labels without labels.json: numeric order, names are the numbers.
  u.write("train.jsonl", "{\"text\": \"a\", \"label\": 10}\n{\"text\": \"b\", \"label\": 2}\n");
  u.write("validation.jsonl", "{\"text\": \"a\", \"label\": 2}\n");
  u.write("test.jsonl", "{\"text\": \"a\", \"label\": 10}\n");
  d = load(u);
  CHECK(d.label_names == std::vector<std::string>{"2", "10"});
  CHECK(labels_of(d.train) == std::vector<int32_t>{1, 0});
  // One class only is an error.
  u.write("train.jsonl", "{\"text\": \"a\", \"label\": \"x\"}\n");
  u.write("validation.jsonl", "{\"text\": \"a\", \"label\": \"x\"}\n");
  u.write("test.jsonl", "{\"text\": \"a\", \"label\": \"x\"}\n");
  CHECK(error_with(u, {}).find("at least 2") != std::string::npos);
}

TEST_CASE("parse_csv: RFC 4180 quotes, escaped quotes, embedded newlines, CRLF, BOM") {
  const auto r = parse_csv("\xEF\xBB\xBFtext,label\r\n\"a, \"\"quoted\"\"\nline\",1\r\nplain,\"0\"\r\n,x\n\"\",", "f.csv");
  REQUIRE(r.size() == 5);
  CHECK(r[0].fields == std::vector<std::string>{"text", "label"});
  CHECK(r[1].fields == std::vector<std::string>{"a, \"quoted\"\nline", "1"});
  CHECK(r[1].line == 2);
  CHECK(r[2].line == 4);
  CHECK(r[2].fields == std::vector<std::string>{"plain", "0"});
  CHECK(r[3].fields == std::vector<std::string>{"", "x"});
  CHECK(r[4].fields == std::vector<std::string>{"", ""});
  CHECK_THROWS_WITH_AS(parse_csv("a,b\n\"open,1\n", "f.csv"), doctest::Contains("f.csv:2: a quoted field is never closed"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_csv("a,b\n\"x\"y,1\n", "f.csv"), doctest::Contains("f.csv:2: unexpected character"), Error);
  CHECK_THROWS_WITH_AS(parse_csv("a,b\nx\"y,1\n", "f.csv"), doctest::Contains("f.csv:2: a quote inside an unquoted"),
                       Error);
}

TEST_CASE("CSV splits: header columns by name, extra columns ignored, string or integer labels") {
  TaskDir t;
  for (const char* f : {"train.jsonl", "validation.jsonl", "test.jsonl"}) fs::remove(t.dir / f);
  const std::string csv = "id,text,label,source\r\n1,\"one, with a comma\",yes,x\r\n2,\"multi\nline \"\"two\"\"\",0,y\r\n";
  t.write("train.csv", csv);
  t.write("validation.csv", csv);
  t.write("test.csv", "\xEF\xBB\xBF" + csv);
  ClsTaskData d = load(t);
  REQUIRE(d.train.size() == 2);
  CHECK(d.train[0].ids == tok().encode("one, with a comma"));
  CHECK(d.train[1].ids == tok().encode("multi\nline \"two\""));
  CHECK(labels_of(d.train) == std::vector<int32_t>{1, 0});
  CHECK(labels_of(d.test) == std::vector<int32_t>{1, 0});
  // Errors name file:line.
  t.write("train.csv", "text,label\na,0\nb\n");
  CHECK(error_with(t, {}).find("train.csv:3: has 1 fields, the header row has 2") != std::string::npos);
  t.write("train.csv", "sentence,label\na,0\n");
  CHECK(error_with(t, {}).find("train.csv:1: the header row has no column \"text\"") != std::string::npos);
  t.write("train.csv", "text,label\n\"\",0\n");
  CHECK(error_with(t, {}).find("train.csv:2: \"text\" is empty") != std::string::npos);
  t.write("train.csv", "text,label\na,7\n");
  CHECK(error_with(t, {}).find("train.csv:2: label 7 is outside [0, 2)") != std::string::npos);
  // Both formats of one split are ambiguous.
  t.write("train.csv", csv);
  t.write("train.jsonl", "{\"text\": \"a\", \"label\": 0}\n");
  CHECK(error_with(t, {}).find("both train.jsonl and train.csv") != std::string::npos);
}

TEST_CASE("a UTF-8 BOM and CRLF are accepted in JSONL and labels.json") {
  TaskDir t;
  t.write("labels.json", "\xEF\xBB\xBF[\"no\", \"yes\"]\r\n");
  t.write("train.jsonl", "\xEF\xBB\xBF{\"text\": \"a\", \"label\": 0}\r\n{\"text\": \"b\", \"label\": 1}\r\n");
  ClsTaskData d = load(t);
  CHECK(d.train.size() == 2);
  CHECK(d.train[0].ids == tok().encode("a"));
}

TEST_CASE("a missing validation split is carved from train with a seed, and recorded") {
  TaskDir t;
  fs::remove(t.dir / "validation.jsonl");
  std::string train;
  for (int i = 0; i < 40; ++i) train += "{\"text\": \"example " + std::to_string(i) + "\", \"label\": " + std::to_string(i % 2) + "}\n";
  t.write("train.jsonl", train);
  ClsDataOptions o;
  o.validation_fraction = 0.25;
  o.split_seed = 7;
  ClsTaskData a = load(t, o), b = load(t, o);
  CHECK(a.validation.size() == 10);
  CHECK(a.train.size() == 30);
  CHECK(a.validation_source.find("carved from train: 10 of 40") != std::string::npos);
  CHECK(a.validation_source.find("split_seed 7") != std::string::npos);
  std::set<std::vector<int32_t>> tr, va;
  for (const auto& e : a.train) tr.insert(e.ids);
  for (const auto& e : a.validation) va.insert(e.ids);
  CHECK(tr.size() == 30);
  for (const auto& v : va) CHECK(tr.count(v) == 0);  // disjoint
  for (size_t i = 0; i < a.validation.size(); ++i) CHECK(a.validation[i].ids == b.validation[i].ids);  // reproducible
  o.split_seed = 8;
  ClsTaskData c = load(t, o);
  bool differs = false;
  for (size_t i = 0; i < c.validation.size(); ++i) differs = differs || c.validation[i].ids != a.validation[i].ids;
  CHECK(differs);
  // Too small to carve from.
  t.write("train.jsonl", "{\"text\": \"a\", \"label\": 0}\n");
  CHECK(error_with(t, o).find("too few examples") != std::string::npos);
}

TEST_CASE("check_cls_task reads and checks without a tokenizer") {
  TaskDir t;
  ClsTaskData d = check_cls_task(t.dir.string());
  CHECK(d.train.size() == 2);
  CHECK(d.train[0].ids.empty());
  t.write("test.jsonl", "{\"text\": \"a\", \"label\": 5}\n");
  CHECK_THROWS_WITH_AS(check_cls_task(t.dir.string()), doctest::Contains("test.jsonl:1: label 5 is outside"), Error);
}
