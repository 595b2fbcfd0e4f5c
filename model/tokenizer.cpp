// GPT-2 byte-level BPE; see tokenizer.h for the contract. Internally every token is held as its
// raw bytes (vocab.json spells bytes through GPT-2's byte-to-unicode table, which we undo once at
// load), so BPE runs on byte strings and token ids and never touches the unicode spelling again.
#include "aria/model/tokenizer.h"

#include <array>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>
#include <vector>
#include <queue>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/model/unicode_tables.h"

namespace aria {
namespace {

using unicode::CharClass;

constexpr std::string_view kEndOfText = "<|endoftext|>";
constexpr uint32_t kInvalid = 0xFFFFFFFF;     // marks a byte that starts no valid UTF-8 sequence
constexpr size_t kMaxCachedWordBytes = 256;   // longer words are rare; don't let them fill memory
constexpr size_t kMaxCacheEntries = 1 << 20;  // the cache is dropped when it grows past this

// Decodes one UTF-8 character at s[0..n) strictly (no overlongs, surrogates or > U+10FFFF).
// Returns its length; on an invalid sequence returns 1 and sets cp = kInvalid, so a bad byte is
// one character on its own and the next byte gets its own chance to start a character.
size_t utf8_next(const unsigned char* s, size_t n, uint32_t& cp) {
  const unsigned char b = s[0];
  if (b < 0x80) return cp = b, 1;
  size_t len;
  uint32_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b >= 0xC2 && b <= 0xDF) len = 2, cp = b & 0x1F;
  else if (b >= 0xE0 && b <= 0xEF) len = 3, cp = b & 0x0F, lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
  else if (b >= 0xF0 && b <= 0xF4) len = 4, cp = b & 0x07, lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
  else return cp = kInvalid, 1;
  if (n < len) return cp = kInvalid, 1;
  for (size_t i = 1; i < len; ++i) {
    const unsigned char c = s[i];
    if (c < (i == 1 ? lo : 0x80) || c > (i == 1 ? hi : 0xBF)) return cp = kInvalid, 1;
    cp = (cp << 6) | (c & 0x3F);
  }
  return len;
}

// GPT-2's byte-to-unicode table: printable Latin-1 bytes stand for themselves, the other 68
// bytes are renamed to U+0100.. in byte order, so every token is spelled in visible characters.
std::array<uint32_t, 256> byte_to_unicode() {
  std::array<uint32_t, 256> t{};
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    t[b] = printable ? b : next++;
  }
  return t;
}

// Undoes byte_to_unicode on a vocab/merges token. Empty result = not a byte-level token.
std::string unicode_to_bytes(const std::string& tok) {
  static const auto table = [] {
    std::array<int, 324> inv;  // byte_to_unicode's image lies below U+0144 = 324
    inv.fill(-1);
    const auto fwd = byte_to_unicode();
    for (int b = 0; b < 256; ++b) inv[fwd[b]] = b;
    return inv;
  }();
  std::string out;
  const auto* s = reinterpret_cast<const unsigned char*>(tok.data());
  for (size_t i = 0; i < tok.size();) {
    uint32_t cp;
    i += utf8_next(s + i, tok.size() - i, cp);
    if (cp >= table.size() || table[cp] < 0) return {};
    out.push_back(static_cast<char>(table[cp]));
  }
  return out;
}

// Pair of token ids packed into one key: the merge table is hashed on (left, right) pairs.
uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

// The GPT-2 pre-tokenizer regex, by hand. Calls emit(piece) for each match, in order; the
// pieces cover the text exactly. Regex alternatives are tried in order at each position.
// Characters are decoded on the fly (each a bounded number of times), so memory stays flat.
template <typename Emit>
void split_words(std::string_view text, Emit&& emit) {
  static const auto kAscii = [] {  // most text is ASCII: skip the binary search for it
    std::array<CharClass, 128> t;
    for (uint32_t c = 0; c < 128; ++c) t[c] = unicode::char_class(c);
    return t;
  }();
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  // Class of the character at byte p (< n); its length goes to len. An invalid byte is neither
  // letter, number nor space, so it joins [^\s\p{L}\p{N}]+ runs like a symbol.
  auto char_at = [&](size_t p, size_t& len) {
    uint32_t cp;
    len = utf8_next(s + p, n - p, cp);
    return cp == kInvalid ? CharClass::kOther : cp < 128 ? kAscii[cp] : unicode::char_class(cp);
  };
  auto run_end = [&](size_t p, CharClass c) {
    for (size_t len; p < n && char_at(p, len) == c;) p += len;
    return p;
  };
  // ASCII bytes never occur inside a multi-byte UTF-8 character, so byte tests are char tests.
  auto byte_is = [&](size_t p, char c) { return p < n && text[p] == c; };
  auto match_end = [&](size_t p) -> size_t {
    // 's|'t|'re|'ve|'m|'ll|'d -- case-sensitive, so "'S" is not special (as in GPT-2).
    if (text[p] == '\'') {
      if (byte_is(p + 1, 's') || byte_is(p + 1, 't') || byte_is(p + 1, 'm') || byte_is(p + 1, 'd')) return p + 2;
      if ((byte_is(p + 1, 'r') || byte_is(p + 1, 'v')) && byte_is(p + 2, 'e')) return p + 3;
      if (byte_is(p + 1, 'l') && byte_is(p + 2, 'l')) return p + 3;
    }
    // ' ?\p{L}+' | ' ?\p{N}+' | ' ?[^\s\p{L}\p{N}]+': an optional ' ' then a run of one class.
    size_t len;
    if (text[p] == ' ' && p + 1 < n) {
      const CharClass next = char_at(p + 1, len);
      if (next != CharClass::kSpace) return run_end(p + 1, next);
    }
    const CharClass first = char_at(p, len);
    if (first != CharClass::kSpace) return run_end(p, first);
    // '\s+(?!\S)' backtracks to leave the last white space before a non-space to the next piece
    // (so "  word" gives " ", " word"); a single white space before a non-space is '\s+' alone.
    size_t q = p, last = p;
    while (q < n && char_at(q, len) == CharClass::kSpace) last = q, q += len;
    return (q == n || last == p) ? q : last;
  };
  for (size_t p = 0; p < n;) {
    const size_t end = match_end(p);
    emit(text.substr(p, end - p));
    p = end;
  }
}

}  // namespace

struct Gpt2Tokenizer::Impl {
  struct Merge {
    int32_t rank, id;
  };
  std::unordered_map<std::string, int32_t> ids;  // raw token bytes -> id
  std::vector<std::string> bytes;                // id -> raw token bytes
  std::vector<bool> present;                     // id -> used by the vocabulary
  std::array<int32_t, 256> byte_id{};            // id of each single-byte token
  std::unordered_map<uint64_t, Merge> merges;    // pair_key(left, right) -> rank, merged id
  int32_t eot = -1;
  mutable std::mutex mu;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  void bpe(std::string_view word, std::vector<int32_t>& out) const;
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
};

// Applies merges in the order GPT-2's encoder.py does: repeatedly take the lowest-ranked pair
// present and merge all its occurrences left to right, then look again. A doubly linked list and
// a heap of (rank, position) candidates make that O(n log n), so a long unbroken run (a megabyte
// of base64, say) is as safe as an ordinary word.
void Gpt2Tokenizer::Impl::bpe(std::string_view word, std::vector<int32_t>& out) const {
  struct Node {
    int32_t id, prev, next;  // id -1: merged into its left neighbour
  };
  struct Cand {
    int32_t rank, pos, left, right;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  ARIA_CHECK(word.size() < (size_t(1) << 31), "encode: one word of ", word.size(), " bytes is too long for BPE");
  const int32_t n = int32_t(word.size());
  std::vector<Node> nodes(n);
  for (int32_t i = 0; i < n; ++i) nodes[i] = {byte_id[uint8_t(word[i])], i - 1, i + 1 < n ? i + 1 : -1};
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int32_t p) {
    if (p < 0 || nodes[p].next < 0) return;
    const int32_t l = nodes[p].id, r = nodes[nodes[p].next].id;
    if (auto it = merges.find(pair_key(l, r)); it != merges.end()) heap.push({it->second.rank, p, l, r});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  std::vector<Cand> round;
  while (!heap.empty()) {
    // One pass of encoder.py: every candidate of the best rank, popped in position order. Pairs
    // created by this pass wait for the next one, even if their rank is lower.
    round.clear();
    const int32_t rank = heap.top().rank;
    while (!heap.empty() && heap.top().rank == rank) round.push_back(heap.top()), heap.pop();
    for (const Cand& c : round) {
      Node& a = nodes[c.pos];
      if (a.id != c.left || a.next < 0 || nodes[a.next].id != c.right) continue;  // stale
      const int32_t r = a.next;
      a.id = merges.at(pair_key(c.left, c.right)).id;
      a.next = nodes[r].next;
      if (a.next >= 0) nodes[a.next].prev = c.pos;
      nodes[r].id = -1;
      push(a.prev);
      push(c.pos);
    }
  }
  for (int32_t i = 0; i >= 0 && n > 0; i = nodes[i].next) out.push_back(nodes[i].id);
}

void Gpt2Tokenizer::Impl::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.size() == 1) return out.push_back(byte_id[uint8_t(word[0])]);
  if (word.size() > kMaxCachedWordBytes) return bpe(word, out);
  const std::string key(word);
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = cache.find(key); it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  bpe(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(mu);
  if (cache.size() >= kMaxCacheEntries) cache.clear();
  cache.emplace(key, std::move(ids));
}

Gpt2Tokenizer Gpt2Tokenizer::load(const std::string& vocab_json, const std::string& merges_txt) {
  nlohmann::json vocab;
  try {
    // io::read_file refuses a directory or a FIFO (which would block open() forever) first.
    vocab = nlohmann::json::parse(io::read_file(vocab_json, "vocab file"));
  } catch (const nlohmann::json::exception& e) {
    ARIA_FAIL("vocab file '", vocab_json, "' is not valid JSON: ", e.what());
  }
  return build(vocab, io::read_file(merges_txt, "merges file"), vocab_json, merges_txt);
}

Gpt2Tokenizer Gpt2Tokenizer::load_hf_json(const std::string& tokenizer_json) {
  const std::string& f = tokenizer_json;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(io::read_file(f, "tokenizer file"));
  } catch (const nlohmann::json::exception& e) {
    ARIA_FAIL("tokenizer file '", f, "' is not valid JSON: ", e.what());
  }
  const std::string unsupported = ": aria reads GPT-2-style byte-level BPE only (model.type \"BPE\" with a "
                                  "ByteLevel pre-tokenizer; vocab and merges in the file)";
  ARIA_CHECK(j.is_object(), "tokenizer file '", f, "' must be a JSON object, got ", j.type_name());
  ARIA_CHECK(j.contains("model") && j["model"].is_object(), "tokenizer file '", f, "' has no \"model\" object");
  const nlohmann::json& m = j["model"];
  const std::string type = m.contains("type") && m["type"].is_string() ? m["type"].get<std::string>() : "";
  ARIA_CHECK(type == "BPE", "tokenizer file '", f, "': model.type is ",
             type.empty() ? std::string("missing") : "\"" + type + "\"", unsupported);
  // The pre-tokenizer must be GPT-2's ByteLevel (alone or inside a Sequence); other splitting rules
  // (Metaspace, Whitespace, a Split regex of another model) would give different ids.
  const nlohmann::json pre = j.value("pre_tokenizer", nlohmann::json());
  auto byte_level = [](const nlohmann::json& p) { return p.is_object() && p.value("type", "") == "ByteLevel"; };
  bool ok = byte_level(pre);
  if (pre.is_object() && pre.value("type", "") == "Sequence" && pre.contains("pretokenizers") &&
      pre["pretokenizers"].is_array() && pre["pretokenizers"].size() == 1)
    ok = byte_level(pre["pretokenizers"][0]);
  ARIA_CHECK(ok, "tokenizer file '", f, "': pre_tokenizer is ",
             pre.is_null() ? std::string("missing") : pre.is_object() ? "\"" + pre.value("type", std::string("?")) + "\""
                                                                      : pre.dump(),
             unsupported);
  const nlohmann::json& bl = byte_level(pre) ? pre : pre["pretokenizers"][0];
  ARIA_CHECK(!bl.value("add_prefix_space", false), "tokenizer file '", f,
             "': the ByteLevel pre-tokenizer has add_prefix_space = true, which GPT-2 does not use (unsupported)");
  ARIA_CHECK(bl.value("use_regex", true), "tokenizer file '", f,
             "': the ByteLevel pre-tokenizer has use_regex = false (unsupported: aria splits with GPT-2's regex)");
  const nlohmann::json dec = j.value("decoder", nlohmann::json());
  ARIA_CHECK(dec.is_null() || byte_level(dec), "tokenizer file '", f, "': decoder is \"",
             dec.is_object() ? dec.value("type", std::string("?")) : dec.dump(), "\"", unsupported);
  const nlohmann::json norm = j.value("normalizer", nlohmann::json());
  ARIA_CHECK(norm.is_null(), "tokenizer file '", f, "': a normalizer (\"",
             norm.is_object() ? norm.value("type", std::string("?")) : norm.dump(), "\") is not supported",
             unsupported);
  for (const char* k : {"dropout", "continuing_subword_prefix", "end_of_word_suffix"})
    ARIA_CHECK(!m.contains(k) || m[k].is_null() || (m[k].is_string() && m[k].get<std::string>().empty()),
               "tokenizer file '", f, "': model.", k, " = ", m.contains(k) ? m[k].dump() : "", " is not supported",
               unsupported);
  ARIA_CHECK(m.contains("vocab") && m["vocab"].is_object(), "tokenizer file '", f,
             "' has no model.vocab object (token -> id)");
  ARIA_CHECK(m.contains("merges") && m["merges"].is_array(), "tokenizer file '", f,
             "' has no model.merges array");
  // Merges as "left right" strings (tokenizers < 0.20) or ["left", "right"] pairs: one merges.txt line each.
  std::string merges;
  const nlohmann::json& ms = m["merges"];
  for (size_t i = 0; i < ms.size(); ++i) {
    const nlohmann::json& e = ms[i];
    if (e.is_string()) {
      merges += e.get<std::string>();
    } else {
      ARIA_CHECK(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string(), "tokenizer file '", f,
                 "': model.merges[", i, "] must be \"left right\" or [\"left\", \"right\"], got ", e.dump());
      merges += e[0].get<std::string>() + " " + e[1].get<std::string>();
    }
    merges += '\n';
  }
  // Added tokens must already be in the vocabulary with their ids (GPT-2's <|endoftext|>).
  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    for (const auto& t : j["added_tokens"]) {
      if (!t.is_object() || !t.contains("content") || !t.contains("id")) continue;
      const std::string c = t["content"].is_string() ? t["content"].get<std::string>() : "";
      ARIA_CHECK(m["vocab"].contains(c) && m["vocab"][c] == t["id"], "tokenizer file '", f, "': added token ",
                 t["content"].dump(), " (id ", t["id"].dump(), ") is not in model.vocab with that id (unsupported)");
    }
  return build(m["vocab"], merges, f + " (model.vocab)", f + " (model.merges, entry = line)");
}

Gpt2Tokenizer Gpt2Tokenizer::build(const nlohmann::json& vocab, const std::string& text,
                                   const std::string& vocab_json, const std::string& merges_txt) {
  auto impl = std::make_shared<Impl>();
  // ---- vocab: {"token": id, ...}
  ARIA_CHECK(vocab.is_object(), "vocab file '", vocab_json, "' must be a JSON object of token -> id, got ",
             vocab.type_name());
  ARIA_CHECK(!vocab.empty(), "vocab file '", vocab_json, "' is empty (no tokens)");
  // Ids are a permutation of 0..entries-1 (distinct, checked below, and below the number of
  // entries): the id -> token tables are sized by the file, so a 5 KB file cannot ask for gigabytes.
  const int64_t entries = int64_t(vocab.size());
  impl->bytes.resize(size_t(entries));
  impl->present.resize(size_t(entries));
  for (const auto& [tok, val] : vocab.items()) {
    ARIA_CHECK(val.is_number_integer(), "vocab file '", vocab_json, "': id of token \"", tok,
               "\" is not an integer: ", val.dump());
    ARIA_CHECK(!val.is_number_unsigned() || val.get<uint64_t>() < uint64_t(entries), "vocab file '", vocab_json,
               "': id of token \"", tok, "\" is out of range: ", val.dump(), " (ids must be below the number of "
               "entries, ", entries, ")");
    const int64_t id = val.get<int64_t>();
    ARIA_CHECK(id >= 0 && id < entries, "vocab file '", vocab_json, "': id of token \"", tok, "\" is out of range: ",
               id, " (ids must be below the number of entries, ", entries, ")");
    std::string raw = unicode_to_bytes(tok);
    ARIA_CHECK(!raw.empty(), "vocab file '", vocab_json, "': token \"", tok,
               "\" is not in GPT-2's byte-level spelling");
    ARIA_CHECK(!impl->present[id], "vocab file '", vocab_json, "': id ", id, " is used by two tokens");
    impl->present[id] = true;
    impl->bytes[id] = raw;
    impl->ids.emplace(std::move(raw), int32_t(id));
  }
  for (int b = 0; b < 256; ++b) {
    auto it = impl->ids.find(std::string(1, char(b)));
    ARIA_CHECK(it != impl->ids.end(), "vocab file '", vocab_json, "' has no token for byte ", b,
               ": not a byte-level BPE vocabulary");
    impl->byte_id[b] = it->second;
  }
  auto eot = impl->ids.find(std::string(kEndOfText));
  ARIA_CHECK(eot != impl->ids.end(), "vocab file '", vocab_json, "' has no \"", kEndOfText, "\" token");
  impl->eot = eot->second;

  // ---- merges.txt: "#version: ..." then "left right" per line, best (lowest) rank first.
  int32_t rank = 0;
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.starts_with("#version")) continue;
    const size_t sp = line.find(' ');
    const bool two = sp != std::string_view::npos && sp > 0 && sp + 1 < line.size() &&
                     line.find(' ', sp + 1) == std::string_view::npos;
    ARIA_CHECK(two, "merges file '", merges_txt, "' line ", line_no, ": expected two tokens separated by one space, got \"",
               line, "\"");
    int32_t part[2];
    std::string joined;
    for (int k = 0; k < 2; ++k) {
      const std::string tok(k == 0 ? line.substr(0, sp) : line.substr(sp + 1));
      const std::string raw = unicode_to_bytes(tok);
      auto it = raw.empty() ? impl->ids.end() : impl->ids.find(raw);
      ARIA_CHECK(it != impl->ids.end(), "merges file '", merges_txt, "' line ", line_no, ": token \"", tok,
                 "\" is not in the vocabulary");
      part[k] = it->second;
      joined += raw;
    }
    auto merged = impl->ids.find(joined);
    ARIA_CHECK(merged != impl->ids.end(), "merges file '", merges_txt, "' line ", line_no, ": merged token \"",
               line.substr(0, sp), line.substr(sp + 1), "\" is not in the vocabulary");
    // A repeated pair takes its later rank, as both HF implementations do (dict/map overwrite).
    impl->merges.insert_or_assign(pair_key(part[0], part[1]), Impl::Merge{rank++, merged->second});
  }
  ARIA_CHECK(rank > 0, "merges file '", merges_txt, "' has no merges");
  return Gpt2Tokenizer(std::move(impl));
}

std::vector<int32_t> Gpt2Tokenizer::encode(const std::string& utf8) const {
  std::vector<int32_t> out;
  out.reserve(utf8.size() / 3);
  const std::string_view text(utf8);
  // The special token is cut out first, so its text never reaches the regex or BPE.
  for (size_t pos = 0;;) {
    const size_t hit = text.find(kEndOfText, pos);
    const size_t end = hit == std::string_view::npos ? text.size() : hit;
    split_words(text.substr(pos, end - pos), [&](std::string_view w) { impl_->encode_word(w, out); });
    if (hit == std::string_view::npos) break;
    out.push_back(impl_->eot);
    pos = hit + kEndOfText.size();
  }
  return out;
}

std::string Gpt2Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    ARIA_CHECK(id >= 0 && size_t(id) < impl_->bytes.size() && impl_->present[id], "decode: token id ", id,
               " is not in the vocabulary (size ", impl_->bytes.size(), ")");
    out += impl_->bytes[id];
  }
  return out;
}

int32_t Gpt2Tokenizer::eot_id() const { return impl_->eot; }
size_t Gpt2Tokenizer::vocab_size() const { return impl_->bytes.size(); }

std::vector<std::string> roots_near_binary() {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec || exe.empty()) return {};
  const fs::path bin = exe.parent_path();
  // A build folder inside the checkout (build/aria), an install prefix (bin/aria, share/aria).
  return {bin.string(), bin.parent_path().string(), (bin.parent_path() / "share" / "aria").string()};
}

std::string find_vocab_dir(const std::string& model_dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> tried;
  auto has_vocab = [&](const fs::path& dir) {
    std::error_code ec;
    tried.push_back(dir.string());
    return fs::is_regular_file(dir / "vocab.json", ec) && fs::is_regular_file(dir / "merges.txt", ec);
  };
  if (!model_dir.empty() && has_vocab(model_dir)) return model_dir;
  const fs::path sub = fs::path("third_party") / "gpt2-vocab";
  if (const char* home = std::getenv("ARIA_HOME"); home && *home && has_vocab(fs::path(home) / sub))
    return (fs::path(home) / sub).string();
  std::error_code ec;
  const fs::path cwd = fs::current_path(ec);
  for (fs::path dir = cwd; !ec && !dir.empty(); dir = dir.parent_path()) {
    if (has_vocab(dir / sub)) return (dir / sub).string();
    if (dir == dir.parent_path()) break;
  }
  if (const char* home = std::getenv("ARIA_HOME"); !home || !*home)
    for (const std::string& root : roots_near_binary())
      if (has_vocab(fs::path(root) / sub)) return (fs::path(root) / sub).string();
  std::string where;
  for (const auto& t : tried) where += (where.empty() ? "" : ", ") + t;
  ARIA_FAIL("no GPT-2 vocabulary (vocab.json + merges.txt) found; looked in: ", where,
            (std::getenv("ARIA_HOME") ? "" : " (ARIA_HOME is not set)"),
            ". Run tools/setup.sh to fetch third_party/gpt2-vocab, or pass a model directory that has them.");
}

std::string tokenizer_source(const std::string& model_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!model_dir.empty() && fs::is_directory(model_dir, ec)) {
    const fs::path d(model_dir);
    const bool v = fs::exists(d / "vocab.json", ec), m = fs::exists(d / "merges.txt", ec),
               t = fs::exists(d / "tokenizer.json", ec);
    if (v && m) return model_dir;
    if (t) return (d / "tokenizer.json").string();
    // Files of a tokenizer aria does not read: an error, never the bundled vocabulary in its place.
    ARIA_CHECK(!v, "model directory '", model_dir, "' has vocab.json but no merges.txt (and no tokenizer.json): "
               "its tokenizer is incomplete");
    ARIA_CHECK(!m, "model directory '", model_dir, "' has merges.txt but no vocab.json (and no tokenizer.json): "
               "its tokenizer is incomplete");
    for (const char* other : {"tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "vocab.txt"})
      ARIA_CHECK(!fs::exists(d / other, ec), "model directory '", model_dir, "' has a ", other,
                 " tokenizer, which aria does not read (it reads GPT-2-style byte-level BPE: vocab.json + merges.txt, "
                 "or tokenizer.json)");
  }
  return find_vocab_dir("");
}

Gpt2Tokenizer load_tokenizer_for(const std::string& model_dir) {
  const std::string src = tokenizer_source(model_dir);
  if (src.size() >= 15 && src.compare(src.size() - 15, 15, "/tokenizer.json") == 0)
    return Gpt2Tokenizer::load_hf_json(src);
  return Gpt2Tokenizer::load(src + "/vocab.json", src + "/merges.txt");
}

}  // namespace aria
