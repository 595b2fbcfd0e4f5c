// Hugging Face tokenizer.json of GPT-2 (byte-level BPE): the same ids as vocab.json + merges.txt on
// the fixture strings, both merges spellings, and errors naming what is unsupported or missing;
// tokenizer_source / load_tokenizer_for pick a model folder's tokenizer and never fall back silently.
// Llama-style and SentencePiece-style tokenizer.json: tests/test_tokenizer_hf.cpp.
// The GPT-2 tests skip with a message when third_party/gpt2-vocab is absent (tools/setup.sh).
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "aria/core/error.h"
#include "aria/model/tokenizer.h"

namespace fs = std::filesystem;
using aria::Gpt2Tokenizer;
using json = nlohmann::json;

namespace {

const std::string kSource = ARIA_SOURCE_DIR;
const std::string kVocabDir = kSource + "/third_party/gpt2-vocab";

bool have_vocab() { return fs::exists(kVocabDir + "/vocab.json") && fs::exists(kVocabDir + "/merges.txt"); }

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("aria_tokjson_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    fs::create_directories((path / name).parent_path());
    std::ofstream(path / name, std::ios::binary) << text;
    return (path / name).string();
  }
};

// A tokenizer.json as Hugging Face's GPT2TokenizerFast saves it, from vocab.json + merges.txt.
json hf_json(const json& vocab, const std::vector<std::string>& merge_lines, bool pair_merges) {
  json merges = json::array();
  for (const std::string& l : merge_lines) {
    if (!pair_merges) {
      merges.push_back(l);
      continue;
    }
    const size_t sp = l.find(' ');
    merges.push_back(json::array({l.substr(0, sp), l.substr(sp + 1)}));
  }
  json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = json::array();
  if (vocab.contains("<|endoftext|>"))
    j["added_tokens"].push_back({{"id", vocab["<|endoftext|>"]}, {"content", "<|endoftext|>"}, {"special", true}});
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  j["post_processor"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  j["model"] = {{"type", "BPE"},          {"dropout", nullptr}, {"unk_token", nullptr},
                {"continuing_subword_prefix", ""}, {"end_of_word_suffix", ""}, {"fuse_unk", false},
                {"byte_fallback", false},   {"vocab", vocab},     {"merges", merges}};
  return j;
}

std::vector<std::string> merge_lines(const std::string& merges_txt) {
  std::vector<std::string> out;
  std::stringstream ss(merges_txt);
  for (std::string l; std::getline(ss, l);) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
    if (l.empty() || l.rfind("#version", 0) == 0) continue;
    out.push_back(l);
  }
  return out;
}

// A tiny byte-level vocabulary: the 256 byte tokens, "he", "hel", "<|endoftext|>".
struct Tiny {
  json vocab;
  std::vector<std::string> merges = {"h e", "he l"};
  Tiny() {
    // GPT-2's byte -> unicode spelling: printable bytes are themselves, the rest map to U+0100 + n.
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      const int cp = printable ? b : 256 + n++;
      std::string u;
      if (cp < 0x80) u += char(cp);
      else u += char(0xC0 | (cp >> 6)), u += char(0x80 | (cp & 0x3F));
      vocab[u] = b;
    }
    vocab["he"] = 256;
    vocab["hel"] = 257;
    vocab["<|endoftext|>"] = 258;
  }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const aria::Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("tokenizer.json from the bundled GPT-2 vocab gives the ids of vocab.json + merges.txt") {
  if (!have_vocab()) {
    MESSAGE("skipped: GPT-2 vocabulary missing at ", kVocabDir, " (run tools/setup.sh)");
    return;
  }
  const Gpt2Tokenizer ref = Gpt2Tokenizer::load(kVocabDir + "/vocab.json", kVocabDir + "/merges.txt");
  const json vocab = json::parse(slurp(kVocabDir + "/vocab.json"));
  const std::vector<std::string> merges = merge_lines(slurp(kVocabDir + "/merges.txt"));
  const json strings = json::parse(slurp(kSource + "/tests/fixtures/tokenizer_strings.json"));
  REQUIRE(strings.size() > 10);
  for (bool pairs : {false, true}) {
    CAPTURE(pairs);
    TempDir d;
    const std::string path = d.write("model/tokenizer.json", hf_json(vocab, merges, pairs).dump());
    const Gpt2Tokenizer t = Gpt2Tokenizer::load_hf_json(path);
    CHECK(t.vocab_size() == ref.vocab_size());
    CHECK(t.eot_id() == ref.eot_id());
    for (const auto& s : strings) {
      const std::string text = s.get<std::string>();
      CAPTURE(text);
      CHECK(t.encode(text) == ref.encode(text));
      CHECK(t.decode(t.encode(text)) == text);
    }
    // A model folder with only tokenizer.json uses it (never the bundled vocabulary).
    CHECK(aria::tokenizer_source((d.path / "model").string()) == path);
    CHECK(aria::load_tokenizer_for((d.path / "model").string()).encode("Hello world") == ref.encode("Hello world"));
  }
}

TEST_CASE("tokenizer.json on a tiny vocabulary: merges, the special token, and the folder's choice") {
  Tiny tiny;
  TempDir d;
  const std::string path = d.write("m/tokenizer.json", hf_json(tiny.vocab, tiny.merges, false).dump());
  const Gpt2Tokenizer t = Gpt2Tokenizer::load_hf_json(path);
  CHECK(t.encode("hel") == std::vector<int32_t>{257});
  CHECK(t.encode("hex<|endoftext|>") == std::vector<int32_t>{256, 'x', 258});
  CHECK(t.vocab_size() == 259);
  CHECK(t.lossless());
  // tokenizer.json wins over vocab.json + merges.txt next to it, as in transformers' fast tokenizers.
  d.write("m/vocab.json", tiny.vocab.dump());
  d.write("m/merges.txt", "#version: 0.2\nh e\n");
  CHECK(aria::tokenizer_source((d.path / "m").string()) == path);
  CHECK(aria::load_tokenizer_for((d.path / "m").string()).encode("hel") == std::vector<int32_t>{257});
  fs::remove(path);
  CHECK(aria::tokenizer_source((d.path / "m").string()) == (d.path / "m").string());
  CHECK(aria::load_tokenizer_for((d.path / "m").string()).encode("hel") == std::vector<int32_t>{256, 'l'});
  // ByteLevel's add_prefix_space: "hel" is read as " hel".
  json spaced = hf_json(tiny.vocab, tiny.merges, false);
  spaced["pre_tokenizer"]["add_prefix_space"] = true;
  const std::string spaced_path = d.write("spaced/tokenizer.json", spaced.dump());
  const Gpt2Tokenizer s = Gpt2Tokenizer::load_hf_json(spaced_path);
  CHECK(s.encode("hel") == std::vector<int32_t>{' ', 257});
  CHECK_FALSE(s.lossless());
}

TEST_CASE("tokenizer.json that aria cannot read: errors name what is missing or unsupported") {
  Tiny tiny;
  const json good = hf_json(tiny.vocab, tiny.merges, false);
  struct Case {
    std::function<void(json&)> edit;
    std::string want;
  };
  const std::vector<Case> cases = {
      {[](json& j) { j["model"]["type"] = "Unigram"; }, "model.type is \"Unigram\""},
      {[](json& j) { j["model"]["type"] = "WordPiece"; }, "BPE models only"},
      {[](json& j) { j["model"].erase("type"), j["model"].erase("merges"); }, "model.type is missing"},
      {[](json& j) { j.erase("model"); }, "has no \"model\" object"},
      {[](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }, "pre_tokenizer type \"Whitespace\" is not supported"},
      {[](json& j) { j["pre_tokenizer"] = "ByteLevel"; }, "pre_tokenizer must be an object"},
      {[](json& j) { j["pre_tokenizer"]["use_regex"] = 1; }, "pre_tokenizer.use_regex must be true or false"},
      {[](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }, "decoder type \"WordPiece\" is not supported"},
      {[](json& j) { j["normalizer"] = {{"type", "NFC"}}; }, "normalizer type \"NFC\" is not supported"},
      {[](json& j) { j["model"]["dropout"] = 0.1; }, "model.dropout"},
      {[](json& j) { j["model"]["continuing_subword_prefix"] = "##"; }, "model.continuing_subword_prefix"},
      {[](json& j) { j["model"].erase("vocab"); }, "has no model.vocab"},
      {[](json& j) { j["model"].erase("merges"); }, "has no model.merges"},
      {[](json& j) { j["model"]["merges"] = json::array({json::array({"h"})}); }, "model.merges[0] must be"},
      {[](json& j) { j["model"]["merges"] = json::array({"h q"}); }, "merged token \"hq\" is not in the vocabulary"},
      {[](json& j) { j["model"]["vocab"]["a"] = 1000; }, "is out of range: 1000"},
      {[](json& j) { j["model"]["vocab"]["a"] = "x"; }, "is not an integer"},
      {[](json& j) { j["added_tokens"] = json::array({{{"id", 300}, {"content", "<pad>"}}}); }, "added token \"<pad>\""},
  };
  for (const Case& c : cases) {
    json j = good;
    c.edit(j);
    TempDir d;
    const std::string path = d.write("tokenizer.json", j.dump());
    const std::string e = error_of([&] { Gpt2Tokenizer::load_hf_json(path); });
    CAPTURE(c.want);
    CAPTURE(e);
    CHECK(contains(e, path));
    CHECK(contains(e, c.want));
  }
  TempDir d;
  const std::string bad = d.write("tokenizer.json", "{\"model\": ");
  CHECK(contains(error_of([&] { Gpt2Tokenizer::load_hf_json(bad); }), "is not valid JSON"));
}

TEST_CASE("a model folder whose tokenizer is incomplete or unsupported is an error, not the bundled vocabulary") {
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{"vocab.json"}, "has vocab.json but no merges.txt"},
      {{"merges.txt"}, "has merges.txt but no vocab.json"},
      {{"tokenizer.model"}, "has a tokenizer.model tokenizer but no tokenizer.json"},
      {{"vocab.txt"}, "has a vocab.txt tokenizer"},
  };
  for (const auto& [files, want] : cases) {
    TempDir d;
    d.write("config.json", "{}");
    for (const std::string& f : files) d.write(f, "{}");
    const std::string e = error_of([&] { aria::load_tokenizer_for(d.path.string()); });
    CAPTURE(e);
    CHECK(contains(e, d.path.string()));
    CHECK(contains(e, want));
  }
  // An unreadable tokenizer.json is its own error (not the bundled vocabulary).
  TempDir d;
  d.write("tokenizer.json", "{\"model\": {\"type\": \"Unigram\"}}");
  CHECK(contains(error_of([&] { aria::load_tokenizer_for(d.path.string()); }), "model.type is \"Unigram\""));
}

TEST_CASE("roots_near_binary: the binary's folder, its parent, and share/aria") {
  const std::vector<std::string> r = aria::roots_near_binary();
  REQUIRE(r.size() == 3);
  CHECK(fs::exists(fs::path(r[0]) / "test_tokenizer_json"));
  CHECK(fs::path(r[2]).filename() == "aria");
}
