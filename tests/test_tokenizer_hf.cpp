// Hugging Face tokenizer.json beyond GPT-2 (model/tokenizer_json.cpp, tokenizer_pipeline.cpp):
//   * hand-written tiny tokenizers, ids worked out by hand in the comments: Llama 3 style (Split regex
//     + ByteLevel, ignore_merges, TemplateProcessing BOS) and SentencePiece style (Llama 2's Prepend +
//     Replace normalizer, Metaspace with each prepend scheme, byte_fallback, unk, fuse_unk), added
//     tokens (special or not, lstrip/rstrip/single_word, normalized), decoding for both styles;
//   * an unsupported component of each kind is an error naming it;
//   * the fixtures written by Hugging Face `tokenizers` (tools/hf_reference/make_tokenizer_fixtures.py,
//     run on the GPU box): ids with and without special tokens and decoded text equal tokenizers'.
//     Each fixture case is skipped (reported skipped by ctest) only while its files are absent.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "aria/core/error.h"
#include "aria/model/tokenizer.h"
#include "tests/support/test_util.h"

namespace fs = std::filesystem;
using aria::Tokenizer;
using json = nlohmann::json;
using Ids = std::vector<int32_t>;

namespace {

const std::string kSource = ARIA_SOURCE_DIR;

struct TempFile {
  fs::path path;
  explicit TempFile(const json& j) {
    static int counter = 0;
    path = fs::temp_directory_path() / ("aria_tokhf_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".json");
    std::ofstream(path, std::ios::binary) << j.dump();
  }
  ~TempFile() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

Tokenizer load(const json& j) {
  TempFile f(j);
  return Tokenizer::load_hf_json(f.path.string());
}

std::string error_of(const json& j) {
  TempFile f(j);
  try {
    Tokenizer::load_hf_json(f.path.string());
  } catch (const aria::Error& e) {
    return e.what();
  }
  return "";
}

json added(int id, const std::string& content, bool special = true) {
  return {{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
          {"normalized", !special}, {"special", special}};
}

json bpe(const json& vocab, const json& merges) {
  return {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
          {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
          {"vocab", vocab}, {"merges", merges}};
}

json bos_template(const std::string& bos, int id) {
  return {{"type", "TemplateProcessing"},
          {"single", json::array({{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
          {"pair", json::array()},
          {"special_tokens", {{bos, {{"id", bos}, {"ids", {id}}, {"tokens", {bos}}}}}}};
}

// GPT-2's byte -> unicode spelling of one byte.
std::string spell(int b) {
  int n = 0;
  for (int c = 0; c < b; ++c) n += !((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255));
  const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const int cp = printable ? b : 256 + n;
  std::string u;
  if (cp < 0x80) u += char(cp);
  else u += char(0xC0 | (cp >> 6)), u += char(0x80 | (cp & 0x3F));
  return u;
}

const std::string kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Llama 3 style: the 256 byte tokens (id = byte), then he 256, ll 257, hell 258, Ġw 259, Ġworld 260
// (no merge makes it: only ignore_merges reaches it), 12 261, 31 262, 23 263; added tokens
// <|begin_of_text|> 264 and <|end_of_text|> 265; BOS template.
json llama3_style() {
  json vocab;
  for (int b = 0; b < 256; ++b) vocab[spell(b)] = b;
  const std::vector<std::string> extra = {"he", "ll", "hell", "Ġw", "Ġworld", "12", "31", "23"};
  for (size_t i = 0; i < extra.size(); ++i) vocab[extra[i]] = 256 + int(i);
  // Ranks: h e 0, l l 1, he ll 2, 3 1 3, 1 2 4, 2 3 5, Ġ w 6.
  const json merges = json::array({json::array({"h", "e"}), json::array({"l", "l"}), json::array({"he", "ll"}),
                                   json::array({"3", "1"}), json::array({"1", "2"}), json::array({"2", "3"}),
                                   json::array({"Ġ", "w"})});
  json j;
  j["version"] = "1.0";
  j["added_tokens"] = json::array({added(264, "<|begin_of_text|>"), added(265, "<|end_of_text|>")});
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         json::array({{{"type", "Split"}, {"pattern", {{"Regex", kLlama3Regex}}}, {"behavior", "Isolated"}, {"invert", false}},
                                      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}})}};
  j["post_processor"] = {{"type", "Sequence"},
                         {"processors", json::array({{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false},
                                                      {"use_regex", true}},
                                                     bos_template("<|begin_of_text|>", 264)})}};
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  j["model"] = bpe(vocab, merges);
  j["model"]["ignore_merges"] = true;
  return j;
}

// SentencePiece style (Llama 2): <unk> 0, <s> 1, </s> 2, <0x00>..<0xFF> 3..258, ▁ 259, h 260, e 261,
// l 262, o 263, w 264, r 265, d 266, ▁h 267, ll 268, ▁he 269, ▁hell 270, ▁w 271, ▁world 272 (no merge).
// Ranks: ▁ h 0, l l 1, ▁h e 2, ▁he ll 3, ▁ w 4.
json llama2_style() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) vocab[std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">"] = 3 + b;
  const std::vector<std::string> pieces = {"▁", "h", "e", "l", "o", "w", "r", "d", "▁h", "ll", "▁he", "▁hell", "▁w", "▁world"};
  for (size_t i = 0; i < pieces.size(); ++i) vocab[pieces[i]] = 259 + int(i);
  const json merges = json::array({"▁ h", "l l", "▁h e", "▁he ll", "▁ w"});
  json j;
  j["version"] = "1.0";
  j["added_tokens"] = json::array({added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")});
  j["normalizer"] = {{"type", "Sequence"},
                     {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", "▁"}},
                                                  {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}})}};
  j["pre_tokenizer"] = nullptr;
  j["post_processor"] = bos_template("<s>", 1);
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                                            {{"type", "ByteFallback"}},
                                            {{"type", "Fuse"}},
                                            {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
  j["model"] = bpe(vocab, merges);
  j["model"]["unk_token"] = "<unk>";
  j["model"]["fuse_unk"] = true;
  j["model"]["byte_fallback"] = true;
  return j;
}

// The same vocabulary with Mistral's newer form: a Metaspace pre-tokenizer and decoder, no normalizer.
json metaspace_style(const std::string& scheme, bool split) {
  json j = llama2_style();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", scheme}, {"split", split}};
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders", json::array({{{"type", "ByteFallback"}},
                                            {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", scheme}, {"split", split}},
                                            {{"type", "Fuse"}}})}};
  return j;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("Llama 3 style: Split regex, byte-level BPE, ignore_merges and the BOS template") {
  const Tokenizer t = load(llama3_style());
  CHECK(t.vocab_size() == 266);
  CHECK(t.eot_id() == 265);
  CHECK(t.token_to_id("<|begin_of_text|>") == 264);
  CHECK(t.token_to_id("Ġworld") == 260);
  // "hello" -> h e l l o: (h,e) then (l,l) then (he,ll) -> hell, o. " world" is a vocabulary token
  // as a whole, which ignore_merges takes directly.
  CHECK(t.encode("hello world") == Ids{258, 'o', 260});
  CHECK(t.encode("hello world", true) == Ids{264, 258, 'o', 260});
  // Digits are split in groups of three before BPE: "123" "123" -> (1,2) 3 twice. Merged as one
  // word, (3,1) (rank 3) would have come first: 1 2 31 2 3 -> 12 31 23.
  CHECK(t.encode("123123") == Ids{261, '3', 261, '3'});
  // Contractions are pieces of their own; the special token is cut out before the regex.
  CHECK(t.encode("he's<|end_of_text|>") == Ids{256, '\'', 's', 265});
  // " wo": no ignore_merges hit, so Ġ w -> Ġw, o.
  CHECK(t.encode(" wo") == Ids{259, 'o'});
  for (const std::string s : {"hello world", "a  b\n\n c\t", "é日本👋", "x<|begin_of_text|>y"})
    CHECK(t.decode(t.encode(s, true)) == "<|begin_of_text|>" + s);
  CHECK(t.encode("", true) == Ids{264});
  CHECK(t.lossless());

  json j = llama3_style();
  j["model"]["ignore_merges"] = false;  // " world" merges: Ġ w -> Ġw, o, r, l, d
  CHECK(load(j).encode(" world") == Ids{259, 'o', 'r', 'l', 'd'});
  j["post_processor"] = nullptr;  // no template: add_special_tokens adds nothing
  CHECK(load(j).encode("he", true) == Ids{256});
}

TEST_CASE("SentencePiece style (Llama 2): Prepend + Replace normalizer, byte fallback, unk, decoding") {
  const Tokenizer t = load(llama2_style());
  CHECK(t.vocab_size() == 273);
  CHECK(t.eot_id() == 2);
  // "▁hello▁world" is one word: ▁h, ll, ▁he, ▁hell, then ▁w: ▁hell o ▁w o r l d.
  CHECK(t.encode("hello world") == Ids{270, 263, 271, 263, 265, 262, 266});
  CHECK(t.encode("hello world", true) == Ids{1, 270, 263, 271, 263, 265, 262, 266});
  CHECK(t.decode(t.encode("hello world", true)) == "<s> hello world");
  CHECK(t.decode(t.encode("hello world")) == "hello world");
  // é is not in the vocabulary: its UTF-8 bytes C3 A9 become <0xC3> <0xA9> (ids 3 + byte).
  CHECK(t.encode("hé") == Ids{267, 3 + 0xC3, 3 + 0xA9});
  CHECK(t.decode(t.encode("hé")) == "hé");
  CHECK(t.decode({267, 3 + 0xC3}) == "h\xEF\xBF\xBD");  // a lone lead byte decodes to U+FFFD
  // Each piece between added tokens is normalized on its own, so both get the ▁ prefix.
  CHECK(t.encode("he</s>he") == Ids{269, 2, 269});
  // Spaces: "▁▁he" has no ▁▁ merge.
  CHECK(t.encode(" he") == Ids{259, 269});
  CHECK(t.encode("") == Ids{});
  CHECK(t.encode("", true) == Ids{1});
  CHECK_FALSE(t.lossless());

  json j = llama2_style();
  j["model"]["byte_fallback"] = false;  // unknown characters: <unk>, consecutive ones fused
  CHECK(load(j).encode("hé!") == Ids{267, 0});
  CHECK(load(j).encode("hé!w") == Ids{267, 0, 264});
  j["model"]["fuse_unk"] = false;
  CHECK(load(j).encode("hé!") == Ids{267, 0, 0});
  j["model"]["unk_token"] = nullptr;  // neither: Hugging Face drops the character
  CHECK(load(j).encode("hé!") == Ids{267});
  j = llama2_style();
  j["model"]["ignore_merges"] = true;  // "world" -> "▁world" is a token
  CHECK(load(j).encode("world") == Ids{272});
  CHECK(load(llama2_style()).encode("world") == Ids{271, 263, 265, 262, 266});
}

TEST_CASE("SentencePiece style with Metaspace: prepend schemes, split, and its decoder") {
  // "first": only the piece at the start of the text gets the ▁; split cuts before each ▁.
  const Tokenizer first = load(metaspace_style("first", true));
  CHECK(first.encode("hello world") == Ids{270, 263, 271, 263, 265, 262, 266});
  CHECK(first.encode("he</s>he") == Ids{269, 2, 260, 261});
  CHECK(first.encode("  he") == Ids{259, 269});  // "▁▁he" starts with ▁: nothing prepended
  CHECK(first.decode(first.encode("hello world")) == "hello world");
  CHECK(first.decode({259, 269}) == " he");  // the first token's ▁ is dropped, not the second's
  CHECK(first.decode(first.encode("hé")) == "hé");
  const Tokenizer always = load(metaspace_style("always", true));
  CHECK(always.encode("he</s>he") == Ids{269, 2, 269});
  const Tokenizer never = load(metaspace_style("never", true));
  CHECK(never.encode("he") == Ids{260, 261});
  CHECK(never.decode({269}) == " he");
  json j = metaspace_style("first", true);
  j["model"]["ignore_merges"] = true;  // with split, "▁world" is a word of its own
  CHECK(load(j).encode("hello world") == Ids{270, 263, 272});
  j = metaspace_style("first", false);  // no split: one word, as with the normalizer
  j["model"]["ignore_merges"] = true;
  CHECK(load(j).encode("hello world") == Ids{270, 263, 271, 263, 265, 262, 266});
  j = metaspace_style("first", true);  // the old spelling of the scheme
  j["pre_tokenizer"].erase("prepend_scheme");
  j["pre_tokenizer"]["add_prefix_space"] = false;
  CHECK(load(j).encode("he") == Ids{260, 261});
}

TEST_CASE("DecodeStream: streamed text keeps SentencePiece spaces and whole characters") {
  const Tokenizer sp = load(llama2_style());
  aria::DecodeStream ds(sp, sp.encode("he", true));  // <s> ▁he
  CHECK(ds.step(271) == " w");  // ▁w: the space that decoding "▁w" alone would strip
  CHECK(ds.step(263) == "o");
  CHECK(ds.step(3 + 0xC3) == "");  // half of é: held back
  CHECK(ds.step(3 + 0xA9) == "é");
  CHECK(ds.step(3 + 0xC3) == "");
  CHECK(ds.finish() == "\xEF\xBF\xBD");  // never completed: what the decoder gives for it
  CHECK(sp.decode({271}) == "w");         // one token alone loses its space
  // Byte-level: the steps are the tokens' bytes, so they concatenate to decode(generated).
  const Tokenizer l3 = load(llama3_style());
  aria::DecodeStream bl(l3, {});
  std::string all;
  const Ids gen = l3.encode("hello world é!");
  for (int32_t id : gen) all += bl.step(id);
  all += bl.finish();
  CHECK(all == "hello world é!");
}

TEST_CASE("added tokens: special or not, longest match, lstrip/rstrip/single_word, normalized") {
  json j = llama3_style();
  j["added_tokens"].push_back(added(266, "<|end|>"));
  j["added_tokens"].push_back(added(267, "<|end_of_text|>x"));  // longer: wins where it matches
  j["model"]["vocab"]["<unused>"] = 268;                          // fills the id range
  {
    const Tokenizer t = load(j);
    CHECK(t.encode("a<|end|>b<|end_of_text|>xc<|end_of_text|>") == Ids{'a', 266, 'b', 267, 'c', 265});
  }
  json strip = llama3_style();
  json tok = added(264, "<|begin_of_text|>");
  tok["lstrip"] = true, tok["rstrip"] = true;
  strip["added_tokens"][0] = tok;
  CHECK(load(strip).encode("a  <|begin_of_text|>  b") == Ids{'a', 264, 'b'});
  json word = llama3_style();
  tok = added(264, "he", false);
  tok["single_word"] = true;
  word["added_tokens"][0] = tok;  // "he" alone is the added token; inside "hello" it is not
  CHECK(load(word).encode("he hello") == Ids{264, ' ', 258, 'o'});
  // A normalized added token matches after the normalizer: "▁he" in the SentencePiece style.
  json norm = llama2_style();
  norm["added_tokens"].push_back(added(273, "he", false));  // the id after the vocabulary's last
  CHECK(load(norm).encode("x he") == Ids{259, 0 + 3 + 'x', 273});
}

TEST_CASE("unsupported tokenizer.json components are errors naming them") {
  struct Case {
    std::function<json()> make;
    std::vector<std::string> want;
  };
  auto edit = [](json base, std::function<void(json&)> f) {
    return [base, f] {
      json j = base;
      f(j);
      return j;
    };
  };
  const json l3 = llama3_style(), l2 = llama2_style();
  const std::vector<Case> cases = {
      {edit(l2, [](json& j) { j["model"]["type"] = "Unigram"; }), {"model.type", "\"Unigram\"", "BPE models only"}},
      {edit(l2, [](json& j) { j["model"]["type"] = "WordPiece"; }), {"\"WordPiece\""}},
      {edit(l2, [](json& j) { j["model"]["type"] = "WordLevel"; }), {"\"WordLevel\""}},
      {edit(l2, [](json& j) { j["normalizer"] = {{"type", "NFC"}}; }), {"normalizer", "type \"NFC\" is not supported"}},
      {edit(l2, [](json& j) { j["normalizer"]["normalizers"][1] = {{"type", "Lowercase"}}; }),
       {"normalizer.normalizers[1]", "\"Lowercase\""}},
      {edit(l2, [](json& j) { j["normalizer"] = {{"type", "Precompiled"}, {"precompiled_charsmap", "AA"}}; }), {"\"Precompiled\""}},
      {edit(l3, [](json& j) { j["pre_tokenizer"]["pretokenizers"][0] = {{"type", "Whitespace"}}; }),
       {"pre_tokenizer.pretokenizers[0]", "type \"Whitespace\" is not supported"}},
      {edit(l3, [](json& j) { j["pre_tokenizer"] = {{"type", "BertPreTokenizer"}}; }), {"\"BertPreTokenizer\""}},
      {edit(l3, [](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+"; }),
       {"pre_tokenizer.pretokenizers[0].pattern", "unsupported escape '\\w'"}},
      {edit(l3, [](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways"; }), {"\"Sideways\""}},
      {edit(l3, [](json& j) { std::swap(j["pre_tokenizer"]["pretokenizers"][0], j["pre_tokenizer"]["pretokenizers"][1]); }),
       {"after ByteLevel"}},
      {edit(l2, [](json& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "__"}}; }),
       {"pre_tokenizer.replacement", "one character"}},
      {edit(l2, [](json& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "sometimes"}}; }),
       {"prepend_scheme"}},
      {edit(l2, [](json& j) { j["decoder"]["decoders"][0] = {{"type", "WordPiece"}}; }),
       {"decoder.decoders[0]", "type \"WordPiece\" is not supported"}},
      {edit(l2, [](json& j) { j["decoder"] = {{"type", "CTC"}}; }), {"\"CTC\""}},
      {edit(l2, [](json& j) { j["decoder"] = {{"type", "BPEDecoder"}}; }), {"\"BPEDecoder\""}},
      {edit(l2, [](json& j) { j["post_processor"] = {{"type", "RobertaProcessing"}}; }),
       {"post_processor", "type \"RobertaProcessing\" is not supported"}},
      {edit(l2, [](json& j) { j["post_processor"] = {{"type", "BertProcessing"}}; }), {"\"BertProcessing\""}},
      {edit(l2, [](json& j) { j["post_processor"]["single"].erase(1); }), {"post_processor.single", "$A exactly once"}},
      {edit(l2, [](json& j) { j["post_processor"]["single"][0]["SpecialToken"]["id"] = "<bos>"; }), {"\"<bos>\""}},
      {edit(l2, [](json& j) { j["post_processor"]["special_tokens"]["<s>"]["ids"] = {9999}; }), {"9999", "not a token id"}},
      {edit(l2, [](json& j) { j["model"]["dropout"] = 0.1; }), {"model.dropout", "random"}},
      {edit(l2, [](json& j) { j["model"]["end_of_word_suffix"] = "</w>"; }), {"model.end_of_word_suffix"}},
      {edit(l2, [](json& j) { j["model"]["unk_token"] = "<oov>"; }), {"model.unk_token", "\"<oov>\" is not in model.vocab"}},
      {edit(l2, [](json& j) { j["model"]["byte_fallback"] = "yes"; }), {"model.byte_fallback", "true or false"}},
      {edit(l2, [](json& j) { j["model"]["merges"][0] = "▁ q"; }), {"model.merges[0]", "token \"q\" is not in the vocabulary"}},
      {edit(l2, [](json& j) { j["model"]["merges"][0] = "h e"; }), {"model.merges[0]", "merged token \"he\""}},
      {edit(l2, [](json& j) { j["model"]["merges"][0] = "▁h"; }), {"model.merges[0]", "\"left right\""}},
      {edit(l2, [](json& j) { j["model"]["vocab"]["x"] = 100000; }), {"model.vocab", "out of range: 100000"}},
      {edit(l2, [](json& j) { j["model"]["vocab"]["x"] = 5; }), {"id 5 is used by two tokens"}},
      {edit(l2, [](json& j) { j["added_tokens"][0]["id"] = -1; }), {"added_tokens[0]", "no valid id"}},
      {edit(l2, [](json& j) { j["added_tokens"][1]["content"] = ""; }), {"added_tokens[1]", "empty content"}},
      {edit(l2, [](json& j) { j["decoder"]["decoders"][3]["start"] = -1; }), {"decoder.decoders[3]", "\"start\""}},
      {edit(l2, [](json& j) { j["normalizer"]["normalizers"][1]["pattern"] = {{"Glob", "*"}}; }),
       {"normalizer.normalizers[1].pattern", "{\"String\": ...}"}},
  };
  for (const Case& c : cases) {
    const json j = c.make();
    const std::string e = error_of(j);
    CAPTURE(e);
    CHECK(contains(e, "tokenizer file '"));
    for (const std::string& w : c.want) {
      CAPTURE(w);
      CHECK(contains(e, w));
    }
  }
}

// ---- fixtures from Hugging Face tokenizers ------------------------------------------------------
namespace {

void check_fixture(const std::string& name) {
  const std::string dir = kSource + "/tests/fixtures/tokenizers/" + name;
  if (!fs::exists(dir + "/tokenizer.json") || !fs::exists(dir + "/expected.json")) {
    aria::testing::skip_case("fixture absent", dir + "/{tokenizer.json,expected.json} (run "
                                                      "tools/hf_reference/make_tokenizer_fixtures.py where `tokenizers` is installed)");
    return;
  }
  const Tokenizer t = Tokenizer::load_hf_json(dir + "/tokenizer.json");
  std::ifstream in(dir + "/expected.json");
  const json expected = json::parse(in);
  REQUIRE(expected["cases"].size() > 20);
  for (const json& c : expected["cases"]) {
    const std::string text = c["text"].get<std::string>();
    CAPTURE(text);
    CHECK(t.encode(text) == c["ids"].get<Ids>());
    CHECK(t.encode(text, true) == c["ids_with_special"].get<Ids>());
    CHECK(t.decode(c["ids_with_special"].get<Ids>()) == c["decoded_with_special"].get<std::string>());
    CHECK(t.decode(c["ids"].get<Ids>()) == c["decoded"].get<std::string>());
  }
  CHECK(t.vocab_size() == expected["vocab_size"].get<size_t>());
}

}  // namespace

TEST_CASE("fixture llama3_bpe: ids and decoded text equal Hugging Face tokenizers'") { check_fixture("llama3_bpe"); }
TEST_CASE("fixture sp_bpe_metaspace: ids and decoded text equal Hugging Face tokenizers'") { check_fixture("sp_bpe_metaspace"); }
TEST_CASE("fixture sp_bpe_legacy: ids and decoded text equal Hugging Face tokenizers'") { check_fixture("sp_bpe_legacy"); }
