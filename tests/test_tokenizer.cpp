// Gpt2Tokenizer: exact Hugging Face ids on tests/fixtures/tokenizer_expected.json, byte-exact
// round trips (invalid UTF-8 included), BPE merge order on a tiny synthetic vocabulary, clear
// errors for bad files, find_vocab_dir, thread safety and speed.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "aria/core/context.h"
#include "aria/core/error.h"
#include "aria/model/tokenizer.h"

namespace fs = std::filesystem;
using aria::Gpt2Tokenizer;
using Ids = std::vector<int32_t>;

namespace {

const std::string kSource = ARIA_SOURCE_DIR;
const std::string kVocabDir = kSource + "/third_party/gpt2-vocab";

bool have_vocab() { return fs::exists(kVocabDir + "/vocab.json") && fs::exists(kVocabDir + "/merges.txt"); }

// The real GPT-2 tokenizer, loaded once. Tests that need it fail (not skip) without it.
const Gpt2Tokenizer& gpt2() {
  static const Gpt2Tokenizer tok = Gpt2Tokenizer::load(kVocabDir + "/vocab.json", kVocabDir + "/merges.txt");
  return tok;
}
#define REQUIRE_GPT2_VOCAB()                                                                         \
  REQUIRE_MESSAGE(have_vocab(), "GPT-2 vocabulary missing at ", kVocabDir, ": run tools/setup.sh")

// A fresh empty directory under the system temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("aria_tok_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    const fs::path p = path / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
};

// Message of the aria::Error that f throws, or "<no error>".
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const aria::Error& e) {
    return e.what();
  }
  return "<no error>";
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// GPT-2's byte-level spelling of raw bytes (written out independently of the tokenizer's own).
std::string spell(const std::string& raw) {
  std::string out;
  for (unsigned char b : raw) {
    int n = 0;
    uint32_t cp = b;
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    if (!printable) {
      cp = 256;
      for (int c = 0; c < b; ++c)
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE)) ++n;
      cp += n;
    }
    if (cp < 0x80) out += char(cp);
    else out += char(0xC0 | (cp >> 6)), out += char(0x80 | (cp & 0x3F));
  }
  return out;
}

// A tiny valid vocabulary: the 256 bytes (ids 0..255), then extra tokens, then <|endoftext|>.
nlohmann::json tiny_vocab(const std::vector<std::string>& extra) {
  nlohmann::json v = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) v[spell(std::string(1, char(b)))] = b;
  int id = 256;
  for (const auto& t : extra) v[spell(t)] = id++;
  v["<|endoftext|>"] = id;
  return v;
}

}  // namespace

TEST_CASE("GPT-2 vocabulary is present") {
  REQUIRE_GPT2_VOCAB();
  CHECK(gpt2().vocab_size() == 50257);
  CHECK(gpt2().eot_id() == 50256);
}

TEST_CASE("encode matches the Hugging Face reference ids and decode restores the text") {
  REQUIRE_GPT2_VOCAB();
  std::ifstream in(kSource + "/tests/fixtures/tokenizer_expected.json");
  REQUIRE_MESSAGE(in, "missing tests/fixtures/tokenizer_expected.json");
  const auto fixture = nlohmann::json::parse(in);
  MESSAGE("reference: ", fixture["source"].get<std::string>());
  REQUIRE(fixture["cases"].size() >= 40);
  for (const auto& c : fixture["cases"]) {
    const auto text = c["text"].get<std::string>();
    const auto want = c["ids"].get<Ids>();
    INFO("text: ", nlohmann::json(text).dump());
    const Ids got = gpt2().encode(text);
    CHECK(got == want);
    CHECK(gpt2().decode(want) == text);
  }
}

TEST_CASE("specific pre-tokenization facts") {
  REQUIRE_GPT2_VOCAB();
  const auto& t = gpt2();
  auto cat = [](Ids a, const Ids& b) { return a.insert(a.end(), b.begin(), b.end()), a; };
  CHECK(t.encode("<|endoftext|>") == Ids{50256});
  CHECK(t.encode("a<|endoftext|>b") == cat(cat(t.encode("a"), {50256}), t.encode("b")));
  // Uppercase contractions are not special: "'S" is "'" then "S".
  CHECK(t.encode("IT'S") == cat(cat(t.encode("IT"), t.encode("'")), t.encode("S")));
  CHECK(t.encode("it's") == cat(t.encode("it"), t.encode("'s")));
  // The last of several spaces goes to the next word.
  CHECK(t.encode("a   b") == cat(cat(t.encode("a"), t.encode("  ")), t.encode(" b")));
}

TEST_CASE("invalid UTF-8 encodes byte by byte and round-trips exactly") {
  REQUIRE_GPT2_VOCAB();
  const auto& t = gpt2();
  const std::vector<std::string> cases = {
      "\xff", "abc\x80" "def", "\xe4\xbd", "x\xe4\xbd y", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80",
      "\xf0\x9f\x98", " \xfe\xff!", "caf\xe9 na\xefve", std::string("nul\0byte", 8), "\xc3\xa9\xc3"};
  for (const auto& s : cases) {
    INFO("bytes: ", nlohmann::json(s).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace));
    const Ids ids = t.encode(s);
    CHECK(t.decode(ids) == s);
  }
  // A lone invalid byte is one "other" character: its byte token, separate from letters around it.
  CHECK(t.encode("\xff").size() == 1);
  auto cat = [](Ids a, const Ids& b) { return a.insert(a.end(), b.begin(), b.end()), a; };
  CHECK(t.encode("a\xff" "b") == cat(cat(t.encode("a"), t.encode("\xff")), t.encode("b")));
  // Pseudo-random bytes.
  std::string junk;
  uint32_t x = 12345;
  for (int i = 0; i < 100000; ++i) junk += char((x = x * 1664525u + 1013904223u) >> 24);
  CHECK(t.decode(t.encode(junk)) == junk);
}

TEST_CASE("BPE merges the best pair everywhere, left to right, before looking again") {
  TempDir dir;
  const auto vocab = dir.write("vocab.json", tiny_vocab({"aa", "aaa", "ab", "abab"}).dump());
  // Ranks: "a a" < "aa a" < "a b" < "ab ab".
  const auto merges = dir.write("merges.txt", "#version: 0.2\n" + spell("a") + " " + spell("a") + "\n" +
                                                  spell("aa") + " " + spell("a") + "\n" + spell("a") + " " +
                                                  spell("b") + "\n" + spell("ab") + " " + spell("ab") + "\n");
  const auto t = Gpt2Tokenizer::load(vocab, merges);
  const int32_t a = 'a', b = 'b', aa = 256, aaa = 257, ab = 258, abab = 259;
  CHECK(t.vocab_size() == 261);
  CHECK(t.eot_id() == 260);
  CHECK(t.encode("aaa") == Ids{aaa});               // a a -> aa a -> aaa
  CHECK(t.encode("aaaa") == Ids{aa, aa});           // non-overlapping, left to right
  CHECK(t.encode("aaaaa") == Ids{aa, aaa});         // (aa)(aa)a, then aa+a
  CHECK(t.encode("ababab") == Ids{abab, ab});       // all "ab" first, then leftmost ab ab
  CHECK(t.encode("ba") == Ids{b, a});
  CHECK(t.decode({aa, abab, 260}) == "aaabab<|endoftext|>");
  // A very long word takes the heap path, not quadratic time.
  const std::string big(200001, 'a');
  const Ids ids = t.encode(big);
  REQUIRE(ids.size() == 100000);  // 99999 x "aa", then "aa"+"a"
  CHECK(ids.front() == aa);
  CHECK(ids.back() == aaa);
  CHECK(t.decode(ids) == big);
}

TEST_CASE("bad vocabulary and merges files give aria::Error naming the file") {
  TempDir dir;
  const auto good_vocab = dir.write("good_vocab.json", tiny_vocab({"ab"}).dump());
  const auto good_merges = dir.write("good_merges.txt", "#version: 0.2\n" + spell("a") + " " + spell("b") + "\n");
  CHECK_NOTHROW(Gpt2Tokenizer::load(good_vocab, good_merges));

  auto vocab_err = [&](const std::string& text) {
    const auto p = dir.write("bad_vocab.json", text);
    return error_of([&] { Gpt2Tokenizer::load(p, good_merges); });
  };
  auto merges_err = [&](const std::string& text) {
    const auto p = dir.write("bad_merges.txt", text);
    return error_of([&] { Gpt2Tokenizer::load(good_vocab, p); });
  };
  std::string e;
  e = error_of([&] { Gpt2Tokenizer::load((dir.path / "none.json").string(), good_merges); });
  CHECK(contains(e, "none.json"));
  e = error_of([&] { Gpt2Tokenizer::load(good_vocab, (dir.path / "none.txt").string()); });
  CHECK(contains(e, "none.txt"));
  e = error_of([&] { Gpt2Tokenizer::load(dir.path.string(), good_merges); });  // a directory
  CHECK(contains(e, "is a directory, not a regular file"));
  // A FIFO is refused before open(), which would block forever waiting for a writer.
  const std::string fifo = (dir.path / "fifo.json").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  e = error_of([&] { Gpt2Tokenizer::load(fifo, good_merges); });
  CHECK(contains(e, "vocab file '" + fifo + "' is a FIFO, not a regular file"));
  e = error_of([&] { Gpt2Tokenizer::load(good_vocab, fifo); });
  CHECK(contains(e, "merges file '" + fifo + "' is a FIFO, not a regular file"));

  e = vocab_err("{\"a\": 1,\n \"b\": ");
  CHECK(contains(e, "bad_vocab.json"));
  CHECK(contains(e, "line 2"));
  CHECK(contains(vocab_err(""), "bad_vocab.json"));
  CHECK(contains(vocab_err("[1, 2]"), "JSON object"));
  CHECK(contains(vocab_err("{}"), "empty"));
  e = vocab_err("{\"!\": \"zero\"}");
  CHECK(contains(e, "bad_vocab.json"));
  CHECK(contains(e, "not an integer"));
  CHECK(contains(vocab_err("{\"!\": 1.5}"), "not an integer"));
  CHECK(contains(vocab_err("{\"!\": -1}"), "out of range"));
  // Ids must lie below the number of entries: a 2 KB file with one id of 2^27 used to size the id
  // table by that id (4 GB and a minute); now the table is sized by the file and the id is refused.
  {
    auto huge = tiny_vocab({"ab"});
    huge[spell("ab")] = 134217728;
    e = vocab_err(huge.dump());
    CHECK(contains(e, "bad_vocab.json"));
    CHECK(contains(e, "id of token \"" + spell("ab") + "\" is out of range: 134217728 (ids must be below the "
                      "number of entries, 258)"));
    huge[spell("ab")] = 258;  // one past the end: a gap, not a permutation of 0..entries-1
    CHECK(contains(vocab_err(huge.dump()), "is out of range: 258"));
    huge[spell("ab")] = nlohmann::json(uint64_t(1) << 63);
    CHECK(contains(vocab_err(huge.dump()), "is out of range: 9223372036854775808"));
  }
  CHECK(contains(vocab_err("{\"!\": 0, \"\\\"\": 0}"), "two tokens"));
  CHECK(contains(vocab_err("{\"a b\": 0}"), "byte-level"));
  CHECK(contains(vocab_err("{\"!\": 0}"), "no token for byte"));
  auto no_eot = tiny_vocab({});
  no_eot.erase("<|endoftext|>");
  CHECK(contains(vocab_err(no_eot.dump()), "<|endoftext|>"));

  e = merges_err("#version: 0.2\n" + spell("a") + " " + spell("b") + "\nabc\n");
  CHECK(contains(e, "bad_merges.txt"));
  CHECK(contains(e, "line 3"));
  CHECK(contains(merges_err("a b c\n"), "line 1"));
  CHECK(contains(merges_err("#version: 0.2\n a\n"), "line 2"));
  e = merges_err("#version: 0.2\n\n" + spell("a") + " " + spell("zz") + "\n");
  CHECK(contains(e, "line 3"));
  CHECK(contains(e, "not in the vocabulary"));
  CHECK(contains(merges_err(spell("b") + " " + spell("a") + "\n"), "merged token"));
  CHECK(contains(merges_err(""), "no merges"));
  CHECK(contains(merges_err("#version: 0.2\n"), "no merges"));

  const auto t = Gpt2Tokenizer::load(good_vocab, good_merges);
  CHECK(contains(error_of([&] { t.decode({0, 999}); }), "999"));
  CHECK(contains(error_of([&] { t.decode({-1}); }), "-1"));
}

TEST_CASE("find_vocab_dir: model dir, then Context::home, then the current directory and its parents") {
  TempDir dir;
  struct Restore {  // cwd and the context are process-wide: put them back whatever happens
    fs::path cwd = fs::current_path();
    std::string home = aria::context().home;
    ~Restore() {
      fs::current_path(cwd);
      aria::context().home = home;
    }
  } restore;
  aria::context().home.clear();

  dir.write("model/vocab.json", "{}");
  dir.write("model/merges.txt", "");
  CHECK(aria::find_vocab_dir((dir.path / "model").string()) == (dir.path / "model").string());

  fs::create_directories(dir.path / "empty");
  fs::current_path(dir.path / "empty");
  const auto e = error_of([&] { aria::find_vocab_dir((dir.path / "empty").string()); });
  CHECK(contains(e, "tools/setup.sh"));
  CHECK(contains(e, "ARIA_HOME"));

  dir.write("root/third_party/gpt2-vocab/vocab.json", "{}");
  dir.write("root/third_party/gpt2-vocab/merges.txt", "");
  const std::string found = (dir.path / "root" / "third_party" / "gpt2-vocab").string();
  fs::create_directories(dir.path / "root/a/b");
  fs::current_path(dir.path / "root/a/b");
  CHECK(aria::find_vocab_dir("") == found);
  fs::current_path(dir.path / "empty");
  aria::context().home = (dir.path / "root").string();
  CHECK(aria::find_vocab_dir((dir.path / "empty").string()) == found);
}

TEST_CASE("encode is thread-safe and fast on 1 MB of text") {
  REQUIRE_GPT2_VOCAB();
  std::ifstream in(kSource + "/tests/fixtures/tokenizer_strings.json");
  REQUIRE(in);
  const auto strings = nlohmann::json::parse(in);
  // About 1 MB: fixture strings plus numbered made-up words so the word cache can't do it all.
  std::string text;
  for (int i = 0; text.size() < (1 << 20); ++i) {
    text += strings[i % strings.size()].get<std::string>();
    text += " word" + std::to_string(i * 7919 % 100003) + "x" + std::string(1, char('a' + i % 26)) + ",\n";
  }
  const auto t0 = std::chrono::steady_clock::now();
  const Ids ids = gpt2().encode(text);
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("encoded ", text.size(), " bytes into ", ids.size(), " tokens in ", sec, " s");
  CHECK(sec < 3.0);
  CHECK(gpt2().decode(ids) == text);

  std::vector<Ids> results(4);
  std::vector<std::thread> threads;
  const std::string part = text.substr(0, 200000);
  for (auto& r : results) threads.emplace_back([&r, &part] { r = gpt2().encode(part); });
  for (auto& th : threads) th.join();
  const Ids want = gpt2().encode(part);
  for (const auto& r : results) CHECK(r == want);
}
