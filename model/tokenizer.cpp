// The BPE model of aria::Tokenizer (tokenizer.h), GPT-2's vocab.json + merges.txt reader, and where
// a model folder's tokenizer comes from. The pipeline around the model (added tokens, normalizers,
// pre-tokenizers, templates, decoders) is in tokenizer_pipeline.cpp, the tokenizer.json reader in
// tokenizer_json.cpp. A byte-level tokenizer holds every token as its raw bytes (GPT-2's
// byte-to-unicode spelling is undone once at load), so BPE runs on byte strings.
#include "aria/model/tokenizer.h"

#include <array>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <queue>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "aria/core/context.h"
#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/model/tokenizer_impl.h"
#include "aria/model/unicode_tables.h"
#include "aria/model/utf8.h"

namespace aria {
namespace {

using unicode::CharClass;

constexpr std::string_view kEndOfText = "<|endoftext|>";
constexpr size_t kMaxCachedWordBytes = 256;   // longer words are rare; don't let them fill memory
constexpr size_t kMaxCacheEntries = 1 << 20;  // the cache is dropped when it grows past this

// GPT-2's byte-to-unicode table: printable Latin-1 bytes stand for themselves, the other 68
// bytes are renamed to U+0100.. in byte order, so every token is spelled in visible characters.
const std::array<uint32_t, 256>& byte_to_unicode() {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      t[b] = printable ? b : next++;
    }
    return t;
  }();
  return table;
}

// The GPT-2 pre-tokenizer regex, by hand. Calls emit(piece) for each match, in order; the
// pieces cover the text exactly. Regex alternatives are tried in order at each position.
// Characters are decoded on the fly (each a bounded number of times), so memory stays flat.

void split_words(std::string_view text, const std::function<void(std::string_view)>& emit) {
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
    len = utf8::next(s + p, n - p, cp);
    return cp == utf8::kInvalid ? CharClass::kOther : cp < 128 ? kAscii[cp] : unicode::char_class(cp);
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

namespace tok {

void split_gpt2_words(std::string_view text, const std::function<void(std::string_view)>& emit) {
  split_words(text, emit);
}

std::string bytes_to_spelling(std::string_view raw) {
  std::string out;
  for (unsigned char b : raw) utf8::append(out, byte_to_unicode()[b]);
  return out;
}

std::string spelling_to_bytes(std::string_view s) {
  static const auto table = [] {
    std::array<int, 324> inv;  // byte_to_unicode's image lies below U+0144 = 324
    inv.fill(-1);
    for (int b = 0; b < 256; ++b) inv[byte_to_unicode()[b]] = b;
    return inv;
  }();
  std::string out;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    i += utf8::next(s, i, cp);
    if (cp >= table.size() || table[cp] < 0) return {};
    out.push_back(static_cast<char>(table[cp]));
  }
  return out;
}

}  // namespace tok

void Tokenizer::Impl::add_token(int32_t id, const std::string& spelling_hf, bool is_special) {
  if (size_t(id) >= spelling.size()) {
    spelling.resize(size_t(id) + 1);
    present.resize(size_t(id) + 1);
    special.resize(size_t(id) + 1);
  }
  spelling[id] = spelling_hf;
  present[id] = true;
  special[id] = special[id] || is_special;
}

int32_t Tokenizer::Impl::token_to_id(const std::string& spelling_hf) const {
  for (const tok::AddedToken& t : added)
    if (t.content == spelling_hf) return t.id;
  const std::string key = byte_level ? tok::spelling_to_bytes(spelling_hf) : spelling_hf;
  const auto it = key.empty() ? ids.end() : ids.find(key);
  return it == ids.end() ? -1 : it->second;
}

// Hugging Face's BPE on one word (models/bpe in `tokenizers`): the word's symbols are its bytes
// (byte-level) or characters; a character missing from the vocabulary becomes its <0xNN> byte tokens
// (byte_fallback), else the unknown token (consecutive ones fused when fuse_unk), else nothing. Then
// merges are applied from a heap ordered by (rank, position): always the best-ranked pair present,
// the leftmost of equals, so a long unbroken run (a megabyte of base64) takes O(n log n).
void Tokenizer::Impl::bpe(std::string_view word, std::vector<int32_t>& out) const {
  struct Node {
    int32_t id, prev, next;  // id -1: merged into its left neighbour
  };
  struct Cand {
    int32_t rank, pos, id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  ARIA_CHECK(word.size() < (size_t(1) << 31), "encode: one word of ", word.size(), " bytes is too long for BPE");
  std::vector<Node> nodes;
  nodes.reserve(word.size());
  auto push_symbol = [&](int32_t id) {
    const int32_t n = int32_t(nodes.size());
    if (n > 0) nodes.back().next = n;
    nodes.push_back({id, n - 1, -1});
  };
  bool pending_unk = false;
  for (size_t i = 0; i < word.size();) {
    uint32_t cp;
    const size_t len = byte_level ? 1 : utf8::next(word, i, cp);
    const std::string_view unit = word.substr(i, len);
    i += len;
    if (byte_level && byte_id[uint8_t(unit[0])] >= 0) {
      if (pending_unk) push_symbol(unk), pending_unk = false;
      push_symbol(byte_id[uint8_t(unit[0])]);
      continue;
    }
    if (auto it = byte_level ? ids.end() : ids.find(std::string(unit)); it != ids.end()) {
      if (pending_unk) push_symbol(unk), pending_unk = false;
      push_symbol(it->second);
      continue;
    }
    bool all_bytes = true;
    for (unsigned char b : unit) all_bytes = all_bytes && byte_fallback[b] >= 0;
    if (all_bytes) {
      if (pending_unk) push_symbol(unk), pending_unk = false;  // as HF: an unknown run ends here
      for (unsigned char b : unit) push_symbol(byte_fallback[b]);
      continue;
    }
    if (unk < 0) continue;  // no unknown token: Hugging Face drops the character
    if (pending_unk && !fuse_unk) push_symbol(unk);
    pending_unk = true;
  }
  if (pending_unk) push_symbol(unk);

  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int32_t p) {
    if (p < 0 || nodes[p].next < 0) return;
    if (auto it = merges.find(tok::pair_key(nodes[p].id, nodes[nodes[p].next].id)); it != merges.end())
      heap.push({it->second.rank, p, it->second.id});
  };
  for (int32_t i = 0; i + 1 < int32_t(nodes.size()); ++i) push(i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Node& a = nodes[c.pos];
    if (a.id < 0 || a.next < 0) continue;
    // A stale entry: the pair here now merges into another token (or none).
    const auto it = merges.find(tok::pair_key(a.id, nodes[a.next].id));
    if (it == merges.end() || it->second.id != c.id) continue;
    const int32_t r = a.next;
    a.id = c.id;
    a.next = nodes[r].next;
    if (a.next >= 0) nodes[a.next].prev = c.pos;
    nodes[r].id = -1;
    push(a.prev);
    push(c.pos);
  }
  for (int32_t i = 0; i >= 0 && !nodes.empty(); i = nodes[i].next) out.push_back(nodes[i].id);
}

void Tokenizer::Impl::tokenize_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (word.size() == 1 && byte_level && byte_id[uint8_t(word[0])] >= 0) return out.push_back(byte_id[uint8_t(word[0])]);
  if (ignore_merges) {
    // ignore_merges: a word that is a token is that token, whatever the merges would give.
    if (auto it = ids.find(std::string(word)); it != ids.end()) return out.push_back(it->second);
  }
  if (word.size() > kMaxCachedWordBytes) return bpe(word, out);
  const std::string key(word);
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = cache.find(key); it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> got;
  bpe(word, got);
  out.insert(out.end(), got.begin(), got.end());
  std::lock_guard<std::mutex> lock(mu);
  if (cache.size() >= kMaxCacheEntries) cache.clear();
  cache.emplace(key, std::move(got));
}

namespace tok {

std::string add_merge(Tokenizer::Impl& impl, const std::string& left, const std::string& right, int32_t rank) {
  int32_t part[2];
  std::string joined;
  for (int k = 0; k < 2; ++k) {
    const std::string& t = k == 0 ? left : right;
    const std::string key = impl.byte_level ? tok::spelling_to_bytes(t) : t;
    const auto it = key.empty() ? impl.ids.end() : impl.ids.find(key);
    if (it == impl.ids.end()) return "token \"" + t + "\" is not in the vocabulary";
    part[k] = it->second;
    joined += key;
  }
  const auto merged = impl.ids.find(joined);
  if (merged == impl.ids.end()) return "merged token \"" + left + right + "\" is not in the vocabulary";
  // A repeated pair takes its later rank, as both HF implementations do (dict/map overwrite).
  impl.merges.insert_or_assign(tok::pair_key(part[0], part[1]), Tokenizer::Impl::Merge{rank, merged->second});
  return {};
}

}  // namespace tok

// ---- GPT-2's vocab.json + merges.txt -----------------------------------------------------------
Tokenizer Tokenizer::load(const std::string& vocab_json, const std::string& merges_txt) {
  nlohmann::json vocab;
  try {
    // io::read_file refuses a directory or a FIFO (which would block open() forever) first.
    vocab = nlohmann::json::parse(io::read_file(vocab_json, "vocab file"));
  } catch (const nlohmann::json::exception& e) {
    ARIA_FAIL("vocab file '", vocab_json, "' is not valid JSON: ", e.what());
  }
  const std::string text = io::read_file(merges_txt, "merges file");
  auto impl = std::make_shared<Impl>();
  impl->byte_level = true;
  impl->lossless = true;
  impl->byte_fallback.fill(-1);
  ARIA_CHECK(vocab.is_object(), "vocab file '", vocab_json, "' must be a JSON object of token -> id, got ",
             vocab.type_name());
  ARIA_CHECK(!vocab.empty(), "vocab file '", vocab_json, "' is empty (no tokens)");
  // Ids are a permutation of 0..entries-1 (distinct, checked below, and below the number of
  // entries): the id -> token tables are sized by the file, so a 5 KB file cannot ask for gigabytes.
  const int64_t entries = int64_t(vocab.size());
  impl->spelling.resize(size_t(entries));
  impl->present.resize(size_t(entries));
  impl->special.resize(size_t(entries));
  for (const auto& [tok, val] : vocab.items()) {
    ARIA_CHECK(val.is_number_integer(), "vocab file '", vocab_json, "': id of token \"", tok,
               "\" is not an integer: ", val.dump());
    ARIA_CHECK(!val.is_number_unsigned() || val.get<uint64_t>() < uint64_t(entries), "vocab file '", vocab_json,
               "': id of token \"", tok, "\" is out of range: ", val.dump(), " (ids must be below the number of "
               "entries, ", entries, ")");
    const int64_t id = val.get<int64_t>();
    ARIA_CHECK(id >= 0 && id < entries, "vocab file '", vocab_json, "': id of token \"", tok, "\" is out of range: ",
               id, " (ids must be below the number of entries, ", entries, ")");
    std::string raw = tok::spelling_to_bytes(tok);
    ARIA_CHECK(!raw.empty(), "vocab file '", vocab_json, "': token \"", tok, "\" is not in GPT-2's byte-level spelling");
    ARIA_CHECK(!impl->present[id], "vocab file '", vocab_json, "': id ", id, " is used by two tokens");
    impl->add_token(int32_t(id), tok, false);
    impl->ids.emplace(std::move(raw), int32_t(id));
  }
  for (int b = 0; b < 256; ++b)
    ARIA_CHECK(impl->ids.count(std::string(1, char(b))), "vocab file '", vocab_json, "' has no token for byte ", b,
               ": not a byte-level BPE vocabulary");
  const auto eot = impl->ids.find(std::string(kEndOfText));
  ARIA_CHECK(eot != impl->ids.end(), "vocab file '", vocab_json, "' has no \"", kEndOfText, "\" token");

  // merges.txt: "#version: ..." then "left right" per line, best (lowest) rank first.
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
    const std::string err = tok::add_merge(*impl, std::string(line.substr(0, sp)), std::string(line.substr(sp + 1)), rank++);
    ARIA_CHECK(err.empty(), "merges file '", merges_txt, "' line ", line_no, ": ", err);
  }
  ARIA_CHECK(rank > 0, "merges file '", merges_txt, "' has no merges");

  // The pipeline of GPT2TokenizerFast: <|endoftext|> cut out, GPT-2's regex, bytes, ByteLevel decoding.
  impl->added.push_back({std::string(kEndOfText), eot->second, true, false, false, false, false});
  impl->special[eot->second] = true;
  impl->pre_tokenizers.emplace_back().kind = tok::PreTokenizerStep::kByteLevel;
  impl->has_decoder = true;
  impl->decoders.emplace_back().kind = tok::DecoderStep::kByteLevel;
  impl->finish_added();
  return Tokenizer(std::move(impl));
}

// ---- the public face ----------------------------------------------------------------------------
std::vector<int32_t> Tokenizer::encode(const std::string& utf8) const { return encode(utf8, false); }

std::vector<int32_t> Tokenizer::encode(const std::string& utf8, bool add_special_tokens) const {
  std::vector<int32_t> out;
  out.reserve(utf8.size() / 3);
  impl_->encode_into(utf8, add_special_tokens, out);
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const { return impl_->decode(ids); }
int32_t Tokenizer::eot_id() const { return impl_->eos; }
size_t Tokenizer::vocab_size() const { return impl_->spelling.size(); }
int32_t Tokenizer::token_to_id(const std::string& token) const { return impl_->token_to_id(token); }
bool Tokenizer::lossless() const { return impl_->lossless; }

// ---- streamed decoding ---------------------------------------------------------------------------
DecodeStream::DecodeStream(Tokenizer tok, std::vector<int32_t> context)
    : tok_(std::move(tok)), ids_(std::move(context)), mark_(ids_.size()), shown_(window_text()) {}

std::string DecodeStream::window_text() const {
  return tok_.decode(std::vector<int32_t>(ids_.begin() + long(win_), ids_.end()));
}

std::string DecodeStream::step(int32_t id) {
  ids_.push_back(id);
  const std::string now = window_text();
  const bool held = now.size() >= 3 && now.compare(now.size() - 3, 3, "\xEF\xBF\xBD") == 0;
  if (held || now.size() <= shown_.size() || now.compare(0, shown_.size(), shown_) != 0) return {};
  std::string added = now.substr(shown_.size());
  win_ = mark_;  // the next window starts at the tokens just printed, for their context
  mark_ = ids_.size();
  shown_ = window_text();
  return added;
}

std::string DecodeStream::finish() {
  const std::string now = window_text();
  std::string rest = now.compare(0, shown_.size(), shown_) == 0 ? now.substr(shown_.size())
                                                                : tok_.decode(std::vector<int32_t>(ids_.begin() + long(mark_), ids_.end()));
  win_ = mark_ = ids_.size();
  shown_.clear();
  return rest;
}

// ---- where a model folder's tokenizer comes from ------------------------------------------------
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
  const std::string& home = context().home;
  if (!home.empty() && has_vocab(fs::path(home) / sub)) return (fs::path(home) / sub).string();
  std::error_code ec;
  const fs::path cwd = fs::current_path(ec);
  for (fs::path dir = cwd; !ec && !dir.empty(); dir = dir.parent_path()) {
    if (has_vocab(dir / sub)) return (dir / sub).string();
    if (dir == dir.parent_path()) break;
  }
  if (home.empty())
    for (const std::string& root : roots_near_binary())
      if (has_vocab(fs::path(root) / sub)) return (fs::path(root) / sub).string();
  std::string where;
  for (const auto& t : tried) where += (where.empty() ? "" : ", ") + t;
  ARIA_FAIL("no GPT-2 vocabulary (vocab.json + merges.txt) found; looked in: ", where,
            (home.empty() ? " (ARIA_HOME is not set)" : ""),
            ". Run tools/setup.sh to fetch third_party/gpt2-vocab, or pass a model directory that has them.");
}

std::string tokenizer_source(const std::string& model_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!model_dir.empty() && fs::is_directory(model_dir, ec)) {
    const fs::path d(model_dir);
    const bool v = fs::exists(d / "vocab.json", ec), m = fs::exists(d / "merges.txt", ec),
               t = fs::exists(d / "tokenizer.json", ec);
    if (t) return (d / "tokenizer.json").string();
    if (v && m) return model_dir;
    // Files of a tokenizer aria does not read: an error, never the bundled vocabulary in its place.
    ARIA_CHECK(!v, "model directory '", model_dir, "' has vocab.json but no merges.txt (and no tokenizer.json): "
               "its tokenizer is incomplete");
    ARIA_CHECK(!m, "model directory '", model_dir, "' has merges.txt but no vocab.json (and no tokenizer.json): "
               "its tokenizer is incomplete");
    for (const char* other : {"tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "vocab.txt"})
      ARIA_CHECK(!fs::exists(d / other, ec), "model directory '", model_dir, "' has a ", other,
                 " tokenizer but no tokenizer.json: aria reads tokenizer.json (BPE, byte-level or SentencePiece-style) "
                 "or GPT-2's vocab.json + merges.txt, not ", other, " itself (save the tokenizer with transformers' "
                 "save_pretrained to get a tokenizer.json)");
  }
  return find_vocab_dir("");
}

Tokenizer load_tokenizer_for(const std::string& model_dir) {
  const std::string src = tokenizer_source(model_dir);
  if (src.size() >= 15 && src.compare(src.size() - 15, 15, "/tokenizer.json") == 0) return Tokenizer::load_hf_json(src);
  return Tokenizer::load(src + "/vocab.json", src + "/merges.txt");
}

}  // namespace aria
