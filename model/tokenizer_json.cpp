// Tokenizer::load_hf_json: a Hugging Face tokenizer.json read into aria::Tokenizer's pipeline
// (tokenizer_impl.h). Every component is checked here, at load: one that aria does not implement, or
// an option that would change the ids, is an aria::Error naming the file, the component's place in
// the file and what is unsupported; docs/tokenizers.md lists what is read.
#include <nlohmann/json.hpp>

#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/model/tokenizer_impl.h"
#include "aria/model/utf8.h"

namespace aria {
namespace {

using json = nlohmann::json;

// Checked access to the parts of one tokenizer.json; every message names the file and the place.
struct Reader {
  std::string file;

  [[noreturn]] void fail(const std::string& where, const std::string& what) const {
    ARIA_FAIL("tokenizer file '", file, "': ", where, " ", what);
  }
  std::string type(const json& j, const std::string& where) const {
    if (!j.is_object()) fail(where, "must be an object with a \"type\", got " + j.dump());
    if (!j.contains("type") || !j["type"].is_string()) fail(where, "has no \"type\"");
    return j["type"].get<std::string>();
  }
  [[noreturn]] void unsupported(const std::string& where, const std::string& type, const std::string& known) const {
    fail(where, "type \"" + type + "\" is not supported (aria reads " + known + ")");
  }
  bool flag(const json& j, const char* key, bool def, const std::string& where) const {
    if (!j.contains(key) || j[key].is_null()) return def;
    if (!j[key].is_boolean()) fail(where + "." + key, "must be true or false, got " + j[key].dump());
    return j[key].get<bool>();
  }
  std::string str(const json& j, const char* key, const std::string& where) const {
    if (!j.contains(key) || !j[key].is_string()) fail(where, std::string("has no string \"") + key + "\"");
    return j[key].get<std::string>();
  }
  std::string one_char(const json& j, const char* key, const std::string& where) const {
    const std::string s = str(j, key, where);
    uint32_t cp;
    if (s.empty() || utf8::next(std::string_view(s), 0, cp) != s.size() || cp == utf8::kInvalid)
      fail(where + "." + key, "must be one character, got \"" + s + "\"");
    return s;
  }
  int count(const json& j, const char* key, const std::string& where) const {
    if (!j.contains(key) || !j[key].is_number_unsigned() || j[key].get<uint64_t>() > 1000000)
      fail(where, std::string("has no small non-negative integer \"") + key + "\"");
    return int(j[key].get<uint64_t>());
  }
  const json& array(const json& j, const char* key, const std::string& where) const {
    if (!j.contains(key) || !j[key].is_array()) fail(where, std::string("has no array \"") + key + "\"");
    return j[key];
  }
  // A Split/Replace pattern: {"String": "..."} or {"Regex": "..."}; a literal goes to `literal`.
  std::shared_ptr<PretokRegex> pattern(const json& j, const std::string& where, std::string& literal) const {
    const std::string w = where + ".pattern";
    if (!j.contains("pattern") || !j["pattern"].is_object() || j["pattern"].size() != 1)
      fail(w, "must be {\"String\": ...} or {\"Regex\": ...}");
    const json& p = j["pattern"];
    if (p.contains("String") && p["String"].is_string()) {
      literal = p["String"].get<std::string>();
      if (literal.empty()) fail(w, "is an empty string");
      return nullptr;
    }
    if (!p.contains("Regex") || !p["Regex"].is_string()) fail(w, "must be {\"String\": ...} or {\"Regex\": ...}");
    try {
      return std::make_shared<PretokRegex>(p["Regex"].get<std::string>());
    } catch (const Error& e) {
      fail(w, e.what());
    }
  }
  tok::Prepend prepend_scheme(const json& j, const std::string& where) const {
    if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null()) {
      const std::string s = j["prepend_scheme"].is_string() ? j["prepend_scheme"].get<std::string>() : "";
      if (s == "always") return tok::Prepend::kAlways;
      if (s == "first") return tok::Prepend::kFirst;
      if (s == "never") return tok::Prepend::kNever;
      fail(where + ".prepend_scheme", "must be \"always\", \"first\" or \"never\", got " + j["prepend_scheme"].dump());
    }
    return flag(j, "add_prefix_space", true, where) ? tok::Prepend::kAlways : tok::Prepend::kNever;
  }

  void normalizer(const json& j, const std::string& where, std::vector<tok::NormalizerStep>& out) const {
    if (j.is_null()) return;
    const std::string t = type(j, where);
    tok::NormalizerStep st;
    if (t == "Sequence") {
      const json& list = array(j, "normalizers", where);
      for (size_t i = 0; i < list.size(); ++i) normalizer(list[i], where + ".normalizers[" + std::to_string(i) + "]", out);
      return;
    } else if (t == "Prepend") {
      st.text = str(j, "prepend", where);
    } else if (t == "Replace") {
      st.kind = tok::NormalizerStep::kReplace;
      st.regex = pattern(j, where, st.text);
      st.content = str(j, "content", where);
    } else if (t == "Strip") {
      st.kind = tok::NormalizerStep::kStrip;
      st.left = flag(j, "strip_left", false, where);
      st.right = flag(j, "strip_right", false, where);
    } else {
      unsupported(where, t, "the normalizers Sequence, Prepend, Replace and Strip; Unicode normalization forms, "
                            "Lowercase and Precompiled need tables aria does not have");
    }
    out.push_back(std::move(st));
  }

  void pre_tokenizer(const json& j, const std::string& where, std::vector<tok::PreTokenizerStep>& out) const {
    if (j.is_null()) return;
    const std::string t = type(j, where);
    tok::PreTokenizerStep st;
    if (t == "Sequence") {
      const json& list = array(j, "pretokenizers", where);
      for (size_t i = 0; i < list.size(); ++i) pre_tokenizer(list[i], where + ".pretokenizers[" + std::to_string(i) + "]", out);
      return;
    } else if (t == "Split") {
      st.regex = pattern(j, where, st.literal);
      const std::string b = str(j, "behavior", where);
      using B = tok::SplitBehavior;
      if (b == "Removed") st.behavior = B::kRemoved;
      else if (b == "Isolated") st.behavior = B::kIsolated;
      else if (b == "MergedWithPrevious") st.behavior = B::kMergedWithPrevious;
      else if (b == "MergedWithNext") st.behavior = B::kMergedWithNext;
      else if (b == "Contiguous") st.behavior = B::kContiguous;
      else fail(where + ".behavior", "\"" + b + "\" is not a split behavior");
      st.invert = flag(j, "invert", false, where);
    } else if (t == "Metaspace") {
      st.kind = tok::PreTokenizerStep::kMetaspace;
      st.replacement = one_char(j, "replacement", where);
      st.prepend = prepend_scheme(j, where);
      st.split = flag(j, "split", true, where);
    } else if (t == "ByteLevel") {
      st.kind = tok::PreTokenizerStep::kByteLevel;
      st.add_prefix_space = flag(j, "add_prefix_space", true, where);
      st.use_regex = flag(j, "use_regex", true, where);
    } else if (t == "Digits") {
      st.kind = tok::PreTokenizerStep::kDigits;
      st.individual_digits = flag(j, "individual_digits", false, where);
    } else {
      unsupported(where, t, "the pre-tokenizers Sequence, Split, Metaspace, ByteLevel and Digits");
    }
    out.push_back(std::move(st));
  }

  void decoder(const json& j, const std::string& where, std::vector<tok::DecoderStep>& out) const {
    const std::string t = type(j, where);
    tok::DecoderStep st;
    if (t == "Sequence") {
      const json& list = array(j, "decoders", where);
      for (size_t i = 0; i < list.size(); ++i) decoder(list[i], where + ".decoders[" + std::to_string(i) + "]", out);
      return;
    } else if (t == "ByteLevel") {
    } else if (t == "Metaspace") {
      st.kind = tok::DecoderStep::kMetaspace;
      st.replacement = one_char(j, "replacement", where);
      st.drop_first = prepend_scheme(j, where) != tok::Prepend::kNever;
    } else if (t == "Replace") {
      st.kind = tok::DecoderStep::kReplace;
      st.regex = pattern(j, where, st.pattern);
      st.content = str(j, "content", where);
    } else if (t == "ByteFallback") {
      st.kind = tok::DecoderStep::kByteFallback;
    } else if (t == "Fuse") {
      st.kind = tok::DecoderStep::kFuse;
    } else if (t == "Strip") {
      st.kind = tok::DecoderStep::kStrip;
      st.content = one_char(j, "content", where);
      st.start = count(j, "start", where);
      st.stop = count(j, "stop", where);
    } else {
      unsupported(where, t, "the decoders Sequence, ByteLevel, Metaspace, Replace, ByteFallback, Fuse and Strip");
    }
    out.push_back(std::move(st));
  }

  void post_processor(const json& j, const std::string& where, const Tokenizer::Impl& impl,
                      std::vector<tok::TemplateItem>& out, bool& seen) const {
    if (j.is_null()) return;
    const std::string t = type(j, where);
    if (t == "Sequence") {
      const json& list = array(j, "processors", where);
      for (size_t i = 0; i < list.size(); ++i)
        post_processor(list[i], where + ".processors[" + std::to_string(i) + "]", impl, out, seen);
      return;
    }
    if (t == "ByteLevel") return;  // it only adjusts offsets
    if (t != "TemplateProcessing")
      unsupported(where, t, "the post-processors TemplateProcessing, ByteLevel and Sequence");
    if (seen) fail(where, "is a second TemplateProcessing (unsupported)");
    seen = true;
    const json& single = array(j, "single", where);
    if (!j.contains("special_tokens") || !j["special_tokens"].is_object()) fail(where, "has no object \"special_tokens\"");
    int sequences = 0;
    for (size_t i = 0; i < single.size(); ++i) {
      const std::string w = where + ".single[" + std::to_string(i) + "]";
      const json& item = single[i];
      tok::TemplateItem ti;
      if (item.is_object() && item.contains("Sequence") && item["Sequence"].is_object()) {
        if (item["Sequence"].value("id", json()) != "A") fail(w, "must be the sequence \"A\" in a single template");
        ti.sequence = true;
        ++sequences;
      } else if (item.is_object() && item.contains("SpecialToken") && item["SpecialToken"].is_object()) {
        const std::string name = str(item["SpecialToken"], "id", w + ".SpecialToken");
        const json& specials = j["special_tokens"];
        if (!specials.contains(name) || !specials[name].is_object())
          fail(w, "names the special token \"" + name + "\", which special_tokens does not define");
        const json& ids = array(specials[name], "ids", where + ".special_tokens[\"" + name + "\"]");
        for (const json& id : ids) {
          if (!id.is_number_unsigned() || id.get<uint64_t>() >= impl.spelling.size() || !impl.present[id.get<size_t>()])
            fail(where + ".special_tokens[\"" + name + "\"].ids", "holds " + id.dump() + ", which is not a token id");
          ti.ids.push_back(id.get<int32_t>());
        }
      } else {
        fail(w, "must be {\"Sequence\": ...} or {\"SpecialToken\": ...}, got " + item.dump());
      }
      out.push_back(std::move(ti));
    }
    if (sequences != 1) fail(where + ".single", "must hold the sequence $A exactly once");
  }

  void model(const json& m, uint64_t bound, Tokenizer::Impl& impl) const {
    if (!m.is_object()) fail("", "has no \"model\" object");
    const std::string t = m.contains("type") && m["type"].is_string() ? m["type"].get<std::string>() : "";
    // Files from old `tokenizers` versions name no type: BPE is the model with vocab and merges.
    const bool untyped_bpe = !m.contains("type") && m.contains("vocab") && m.contains("merges");
    if (t != "BPE" && !untyped_bpe)
      fail("model.type", "is " + (t.empty() ? std::string("missing") : "\"" + t + "\"") +
                             ": aria reads BPE models only (byte-level or SentencePiece-style), not Unigram, "
                             "WordPiece or WordLevel");
    if (m.contains("dropout") && !m["dropout"].is_null() && !(m["dropout"].is_number() && m["dropout"].get<double>() == 0))
      fail("model.dropout", "= " + m["dropout"].dump() + " is not supported (BPE dropout makes encoding random)");
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (m.contains(k) && !m[k].is_null() && !(m[k].is_string() && m[k].get<std::string>().empty()))
        fail(std::string("model.") + k, "= " + m[k].dump() + " is not supported");
    if (!m.contains("vocab") || !m["vocab"].is_object()) fail("", "has no model.vocab object (token -> id)");
    if (!m.contains("merges") || !m["merges"].is_array()) fail("", "has no model.merges array");
    for (const auto& [tok, val] : m["vocab"].items()) {
      if (!val.is_number_integer())
        fail("model.vocab", "id of token \"" + tok + "\" is not an integer: " + val.dump());
      if (val.is_number_unsigned() ? val.get<uint64_t>() >= bound : true)
        fail("model.vocab", "id of token \"" + tok + "\" is out of range: " + val.dump() +
                                " (ids must be below the number of vocab and added entries, " + std::to_string(bound) + ")");
      const int32_t id = val.get<int32_t>();
      if (size_t(id) < impl.present.size() && impl.present[size_t(id)])
        fail("model.vocab", "id " + std::to_string(id) + " is used by two tokens");
      impl.add_token(id, tok, false);
      std::string key = impl.byte_level ? tok::spelling_to_bytes(tok) : tok;
      if (!key.empty()) impl.ids.emplace(std::move(key), id);  // else unreachable in byte-level BPE
    }
    const json& ms = m["merges"];
    for (size_t i = 0; i < ms.size(); ++i) {
      const json& e = ms[i];
      std::string left, right;
      if (e.is_string()) {
        const std::string s = e.get<std::string>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos || sp == 0 || sp + 1 >= s.size() || s.find(' ', sp + 1) != std::string::npos)
          fail("model.merges[" + std::to_string(i) + "]", "must be \"left right\", got " + e.dump());
        left = s.substr(0, sp), right = s.substr(sp + 1);
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        left = e[0].get<std::string>(), right = e[1].get<std::string>();
      } else {
        fail("model.merges[" + std::to_string(i) + "]", "must be \"left right\" or [\"left\", \"right\"], got " + e.dump());
      }
      const std::string err = tok::add_merge(impl, left, right, int32_t(i));
      if (!err.empty()) fail("model.merges[" + std::to_string(i) + "]", err);
    }
    impl.fuse_unk = flag(m, "fuse_unk", false, "model");
    impl.ignore_merges = flag(m, "ignore_merges", false, "model");
    if (m.contains("unk_token") && !m["unk_token"].is_null()) {
      if (!m["unk_token"].is_string()) fail("model.unk_token", "must be a string or null, got " + m["unk_token"].dump());
      const std::string u = m["unk_token"].get<std::string>();
      const auto it = impl.ids.find(impl.byte_level ? tok::spelling_to_bytes(u) : u);
      if (it == impl.ids.end()) fail("model.unk_token", "\"" + u + "\" is not in model.vocab");
      impl.unk = it->second;
    }
    impl.byte_fallback.fill(-1);
    if (flag(m, "byte_fallback", false, "model"))
      for (int b = 0; b < 256; ++b) {
        static const char* hex = "0123456789ABCDEF";
        const std::string name = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
        if (const auto it = impl.ids.find(name); it != impl.ids.end()) impl.byte_fallback[size_t(b)] = it->second;
      }
  }

  void added_tokens(const json& list, uint64_t bound, Tokenizer::Impl& impl) const {
    if (list.is_null()) return;
    if (!list.is_array()) fail("added_tokens", "must be an array, got " + list.dump());
    for (size_t i = 0; i < list.size(); ++i) {
      const json& t = list[i];
      const std::string w = "added_tokens[" + std::to_string(i) + "]";
      if (!t.is_object()) fail(w, "must be an object, got " + t.dump());
      tok::AddedToken a;
      a.content = str(t, "content", w);
      if (!t.contains("id") || !t["id"].is_number_unsigned() || t["id"].get<uint64_t>() >= bound)
        fail(w, "added token " + t["content"].dump() + " has no valid id (got " + t.value("id", json()).dump() + ")");
      a.id = t["id"].get<int32_t>();
      if (a.content.empty()) fail(w, "added token has an empty content");
      a.special = flag(t, "special", false, w);
      a.lstrip = flag(t, "lstrip", false, w);
      a.rstrip = flag(t, "rstrip", false, w);
      a.single_word = flag(t, "single_word", false, w);
      a.normalized = flag(t, "normalized", !a.special, w);
      // An id names one token: an added token may repeat a vocabulary entry (Llama 2's <unk>, <s>,
      // </s>; GPT-2's <|endoftext|>), never take the id of another one, which would then decode as
      // the added token's text (found by fuzz_tokenizer_json).
      if (size_t(a.id) < impl.spelling.size() && impl.present[size_t(a.id)]) {
        const std::string& held = impl.spelling[size_t(a.id)];
        if (held != a.content && !(impl.byte_level && tok::spelling_to_bytes(held) == a.content))
          fail(w, "added token " + t["content"].dump() + " has id " + std::to_string(a.id) +
                      ", which the model's vocabulary gives to " + json(held).dump() + " (an id names one token)");
      }
      impl.add_token(a.id, a.content, a.special);
      impl.added.push_back(std::move(a));
    }
  }
};

bool is_lossless(const Tokenizer::Impl& impl) {
  if (!impl.byte_level || !impl.normalizers.empty() || impl.decoders.size() != 1 ||
      impl.decoders[0].kind != tok::DecoderStep::kByteLevel)
    return false;
  for (const tok::PreTokenizerStep& st : impl.pre_tokenizers) {
    if (st.kind == tok::PreTokenizerStep::kMetaspace || (st.kind == tok::PreTokenizerStep::kByteLevel && st.add_prefix_space))
      return false;
    if (st.kind == tok::PreTokenizerStep::kSplit && st.behavior == tok::SplitBehavior::kRemoved) return false;
  }
  for (int b = 0; b < 256; ++b)
    if (!impl.ids.count(std::string(1, char(b)))) return false;
  return true;
}

}  // namespace

Tokenizer Tokenizer::load_hf_json(const std::string& tokenizer_json) {
  const Reader r{tokenizer_json};
  json j;
  try {
    j = json::parse(io::read_file(tokenizer_json, "tokenizer file"));
  } catch (const json::exception& e) {
    ARIA_FAIL("tokenizer file '", tokenizer_json, "' is not valid JSON: ", e.what());
  }
  ARIA_CHECK(j.is_object(), "tokenizer file '", tokenizer_json, "' must be a JSON object, got ", j.type_name());
  ARIA_CHECK(j.contains("model") && j["model"].is_object(), "tokenizer file '", tokenizer_json, "' has no \"model\" object");
  auto impl = std::make_shared<Impl>();
  const json null;
  auto part = [&](const char* key) -> const json& { return j.contains(key) ? j[key] : null; };
  r.pre_tokenizer(part("pre_tokenizer"), "pre_tokenizer", impl->pre_tokenizers);
  // A ByteLevel pre-tokenizer turns the text into bytes: the model's symbols are bytes from then on,
  // so nothing may follow it (a Split after it would see GPT-2's byte spelling, not the text).
  for (size_t i = 0; i < impl->pre_tokenizers.size(); ++i)
    if (impl->pre_tokenizers[i].kind == tok::PreTokenizerStep::kByteLevel) {
      if (i + 1 != impl->pre_tokenizers.size())
        r.fail("pre_tokenizer", "has a step after ByteLevel (unsupported: ByteLevel must come last)");
      impl->byte_level = true;
    }
  r.normalizer(part("normalizer"), "normalizer", impl->normalizers);
  // Ids lie below the number of entries of vocab and added_tokens together: the id tables are
  // sized by the file, so a small file cannot ask for gigabytes.
  const json& vocab = j["model"].contains("vocab") ? j["model"]["vocab"] : null;
  const uint64_t bound = vocab.size() + (part("added_tokens").is_array() ? part("added_tokens").size() : 0);
  r.model(j["model"], bound, *impl);
  r.added_tokens(part("added_tokens"), bound, *impl);
  bool seen_template = false;
  r.post_processor(part("post_processor"), "post_processor", *impl, impl->template_single, seen_template);
  impl->has_decoder = !part("decoder").is_null();
  if (impl->has_decoder) r.decoder(part("decoder"), "decoder", impl->decoders);
  impl->lossless = is_lossless(*impl);
  impl->finish_added();
  return Tokenizer(std::move(impl));
}

}  // namespace aria
