// The pipeline around aria::Tokenizer's BPE model, step for step as Hugging Face's `tokenizers` runs
// it: added tokens cut out (tokenizer/added_vocabulary.rs), normalizers, pre-tokenizers (Split,
// Metaspace, ByteLevel, Digits, with the SplitDelimiterBehavior rules of tokenizer/normalizer.rs),
// the TemplateProcessing post-processor, and the decoder chain.
#include <algorithm>
#include <string_view>
#include <tuple>

#include "aria/core/error.h"
#include "aria/model/tokenizer_impl.h"
#include "aria/model/unicode_tables.h"
#include "aria/model/utf8.h"

namespace aria {
namespace {

using tok::Piece;
using unicode::CharClass;

CharClass class_of(uint32_t cp) { return cp == utf8::kInvalid ? CharClass::kOther : unicode::char_class(cp); }

// Start of the character that ends at `pos` (> 0): a valid multi-byte character, else one byte.
size_t prev_char(std::string_view s, size_t pos) {
  for (size_t back = 2; back <= 4 && back <= pos; ++back) {
    uint32_t cp;
    if (utf8::next(s, pos - back, cp) == back && cp != utf8::kInvalid) return pos - back;
  }
  return pos - 1;
}

// Added-token options: \w (approximated as a letter, a number or '_') and \s (White_Space).
bool word_char(uint32_t cp) {
  const CharClass c = class_of(cp);
  return c == CharClass::kLetter || c == CharClass::kNumber || cp == '_';
}
bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  uint32_t cp;
  utf8::next(s, prev_char(s, s.size()), cp);
  return word_char(cp);
}
bool starts_with_word(std::string_view s) {
  uint32_t cp;
  return !s.empty() && (utf8::next(s, 0, cp), word_char(cp));
}
size_t space_start_at_end(std::string_view s) {  // where the trailing white space of s begins
  size_t p = s.size();
  for (uint32_t cp; p > 0;) {
    const size_t q = prev_char(s, p);
    utf8::next(s, q, cp);
    if (class_of(cp) != CharClass::kSpace) break;
    p = q;
  }
  return p;
}
size_t space_len_at_start(std::string_view s) {
  size_t p = 0;
  for (uint32_t cp; p < s.size();) {
    const size_t n = utf8::next(s, p, cp);
    if (class_of(cp) != CharClass::kSpace) break;
    p += n;
  }
  return p;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out += to;
  }
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

void replace_regex(std::string& s, const PretokRegex& re, const std::string& to) {
  std::string out;
  size_t pos = 0;
  for (const auto& [b, e] : re.find_all(s)) {
    out.append(s, pos, b - pos);
    out += to;
    pos = e;
  }
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

// Cuts the added tokens of `m` out of every piece that is not yet a token (find_matches).
void split_added(std::vector<Piece>& pieces, const tok::AddedMatcher& m, const std::vector<tok::AddedToken>& added) {
  if (m.empty()) return;
  std::vector<Piece> out;
  for (Piece& p : pieces) {
    if (p.added >= 0) {
      out.push_back(std::move(p));
      continue;
    }
    const std::string_view t = p.text;
    size_t start_offset = 0;
    for (size_t scan = 0, len; scan < t.size();) {
      while (scan < t.size() && !m.may_start(static_cast<unsigned char>(t[scan]))) ++scan;
      const int k = scan < t.size() ? m.longest_at(t, scan, len) : -1;
      if (k < 0) {
        ++scan;
        continue;
      }
      const tok::AddedToken& a = added[size_t(k)];
      size_t start = scan, stop = scan + len;
      scan = stop;
      if (start < start_offset) continue;  // inside the white space an rstrip token took
      if (a.single_word && ((start > 0 && ends_with_word(t.substr(0, start))) ||
                            (stop < t.size() && starts_with_word(t.substr(stop)))))
        continue;
      if (a.lstrip) start = std::max(space_start_at_end(t.substr(0, start)), start_offset);
      if (a.rstrip) stop += space_len_at_start(t.substr(stop));
      if (start_offset < start)
        out.push_back({std::string(t.substr(start_offset, start - start_offset)), p.at_start && start_offset == 0, -1});
      out.push_back({std::string(t.substr(start, stop - start)), false, a.id});
      start_offset = stop;
    }
    if (start_offset < t.size()) out.push_back({std::string(t.substr(start_offset)), p.at_start && start_offset == 0, -1});
  }
  pieces = std::move(out);
}

// ---- pre-tokenizers ------------------------------------------------------------------------------
using Span = std::tuple<size_t, size_t, bool>;  // [begin, end), is a match

// Matches of a Split pattern as spans covering the text (Pattern::find_matches).
std::vector<Span> pattern_spans(std::string_view t, const tok::PreTokenizerStep& st) {
  if (t.empty()) return {{0, 0, false}};
  std::vector<std::pair<size_t, size_t>> hits;
  if (st.regex) {
    hits = st.regex->find_all(t);
  } else {
    for (size_t hit, pos = 0; (hit = t.find(st.literal, pos)) != std::string_view::npos; pos = hit + st.literal.size())
      hits.emplace_back(hit, hit + st.literal.size());
  }
  std::vector<Span> spans;
  size_t prev = 0;
  for (const auto& [b, e] : hits) {
    if (prev != b) spans.emplace_back(prev, b, false);
    spans.emplace_back(b, e, true);
    prev = e;
  }
  if (prev != t.size()) spans.emplace_back(prev, t.size(), false);
  if (st.invert)
    for (Span& s : spans) std::get<2>(s) = !std::get<2>(s);
  return spans;
}

// Which [begin, end) pieces a SplitDelimiterBehavior keeps (NormalizedString::split).
std::vector<std::pair<size_t, size_t>> apply_behavior(const std::vector<Span>& spans, tok::SplitBehavior b) {
  using B = tok::SplitBehavior;
  std::vector<std::pair<size_t, size_t>> out;
  bool prev_match = false;
  switch (b) {
    case B::kIsolated:
    case B::kRemoved:
      for (const auto& [s, e, m] : spans)
        if (b == B::kIsolated || !m) out.emplace_back(s, e);
      break;
    case B::kContiguous:
    case B::kMergedWithPrevious:
      for (const auto& [s, e, m] : spans) {
        const bool join = b == B::kContiguous ? m == prev_match : (m && !prev_match);
        if (join && !out.empty()) out.back().second = e;
        else out.emplace_back(s, e);
        prev_match = m;
      }
      break;
    case B::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        const auto& [s, e, m] = *it;
        if (m && !prev_match && !out.empty()) out.back().first = s;
        else out.emplace_back(s, e);
        prev_match = m;
      }
      std::reverse(out.begin(), out.end());
      break;
  }
  return out;
}

void emit_spans(const Piece& p, const std::vector<std::pair<size_t, size_t>>& keep, std::vector<Piece>& out) {
  for (const auto& [s, e] : keep)
    if (e > s) out.push_back({p.text.substr(s, e - s), p.at_start && s == 0, -1});
}

// Metaspace: spaces become the marker, the marker is prepended (per the scheme), then each marker
// starts a new piece (split).
void metaspace(const tok::PreTokenizerStep& st, const Piece& p, std::vector<Piece>& out) {
  Piece q{p.text, p.at_start, -1};
  replace_all(q.text, " ", st.replacement);
  const bool starts = q.text.compare(0, st.replacement.size(), st.replacement) == 0;
  if (!starts && (st.prepend == tok::Prepend::kAlways || (st.prepend == tok::Prepend::kFirst && p.at_start)))
    q.text = st.replacement + q.text;
  if (!st.split) return out.push_back(std::move(q));
  tok::PreTokenizerStep lit;
  lit.literal = st.replacement;
  emit_spans(q, apply_behavior(pattern_spans(q.text, lit), tok::SplitBehavior::kMergedWithNext), out);
}

// Digits: every number character alone (individual_digits) or runs of them, the rest between.
void digits(const tok::PreTokenizerStep& st, const Piece& p, std::vector<Piece>& out) {
  std::vector<Span> spans;
  const std::string_view t = p.text;
  size_t last = 0;
  for (size_t i = 0, n; i < t.size(); i += n) {
    uint32_t cp;
    n = utf8::next(t, i, cp);
    if (class_of(cp) != CharClass::kNumber) continue;
    if (last < i) spans.emplace_back(last, i, false);
    spans.emplace_back(i, i + n, true);
    last = i + n;
  }
  if (last < t.size()) spans.emplace_back(last, t.size(), false);
  emit_spans(p, apply_behavior(spans, st.individual_digits ? tok::SplitBehavior::kIsolated
                                                           : tok::SplitBehavior::kContiguous), out);
}

void pre_tokenize(const tok::PreTokenizerStep& st, std::vector<Piece>& pieces) {
  using K = tok::PreTokenizerStep;
  std::vector<Piece> out;
  for (Piece& p : pieces) {
    if (p.added >= 0 || p.text.empty()) {
      if (p.added >= 0) out.push_back(std::move(p));
      continue;
    }
    switch (st.kind) {
      case K::kSplit: emit_spans(p, apply_behavior(pattern_spans(p.text, st), st.behavior), out); break;
      case K::kMetaspace: metaspace(st, p, out); break;
      case K::kDigits: digits(st, p, out); break;
      case K::kByteLevel: {
        if (st.add_prefix_space && p.text[0] != ' ') p.text.insert(0, 1, ' ');
        if (!st.use_regex) {
          out.push_back(std::move(p));
          break;
        }
        size_t off = 0;
        tok::split_gpt2_words(p.text, [&](std::string_view w) {
          out.push_back({std::string(w), p.at_start && off == 0, -1});
          off += w.size();
        });
        break;
      }
    }
  }
  pieces = std::move(out);
}

// ---- decoders ------------------------------------------------------------------------------------
void decode_step(const tok::DecoderStep& st, std::vector<std::string>& toks) {
  using K = tok::DecoderStep;
  switch (st.kind) {
    case K::kByteLevel: {  // back to bytes; a token with a character outside the table stays as it is
      std::string all;
      for (const std::string& t : toks) {
        const std::string raw = tok::spelling_to_bytes(t);
        all += raw.empty() ? t : raw;
      }
      toks.assign(1, std::move(all));
      break;
    }
    case K::kMetaspace:
      for (size_t i = 0; i < toks.size(); ++i) {
        std::string out;
        const std::string& t = toks[i];
        for (size_t p = 0; p < t.size();) {
          if (t.compare(p, st.replacement.size(), st.replacement) == 0) {
            if (!(i == 0 && st.drop_first)) out += ' ';
            p += st.replacement.size();
          } else {
            out += t[p++];
          }
        }
        toks[i] = std::move(out);
      }
      break;
    case K::kReplace:
      for (std::string& t : toks) st.regex ? replace_regex(t, *st.regex, st.content) : replace_all(t, st.pattern, st.content);
      break;
    case K::kByteFallback: {  // runs of <0xNN> become their bytes, or one U+FFFD each if not UTF-8
      std::vector<std::string> out;
      std::string bytes;
      size_t run = 0;
      auto flush = [&] {
        if (run == 0) return;
        bool valid = true;
        for (size_t i = 0; i < bytes.size() && valid;) {
          uint32_t cp;
          i += utf8::next(bytes, i, cp);
          valid = cp != utf8::kInvalid;
        }
        if (valid) out.push_back(bytes);
        else out.insert(out.end(), run, "\xEF\xBF\xBD");
        bytes.clear();
        run = 0;
      };
      auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f'); };
      for (std::string& t : toks) {
        if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex(t[3]) && hex(t[4])) {
          bytes += char(std::stoi(t.substr(3, 2), nullptr, 16));
          ++run;
        } else {
          flush();
          out.push_back(std::move(t));
        }
      }
      flush();
      toks = std::move(out);
      break;
    }
    case K::kFuse: {
      std::string all;
      for (const std::string& t : toks) all += t;
      toks.assign(1, std::move(all));
      break;
    }
    case K::kStrip:
      for (std::string& t : toks) {
        size_t b = 0, e = t.size();
        for (int i = 0; i < st.start && t.compare(b, st.content.size(), st.content) == 0 && b < e; ++i)
          b += st.content.size();
        for (int i = 0; i < st.stop && e >= b + st.content.size() &&
                        t.compare(e - st.content.size(), st.content.size(), st.content) == 0;
             ++i)
          e -= st.content.size();
        t = t.substr(b, e - b);
      }
      break;
  }
}

}  // namespace

namespace tok {

void AddedMatcher::add(const std::string& content, int index) {
  first_[static_cast<unsigned char>(content[0])] = true;
  int n = 0;
  for (unsigned char c : content) {
    auto it = nodes_[size_t(n)].next.find(c);
    if (it == nodes_[size_t(n)].next.end()) {
      nodes_.emplace_back();
      it = nodes_[size_t(n)].next.emplace(c, int(nodes_.size()) - 1).first;
    }
    n = it->second;
  }
  if (nodes_[size_t(n)].token < 0) nodes_[size_t(n)].token = index;  // the first of equal contents wins
}

int AddedMatcher::longest_at(std::string_view text, size_t pos, size_t& len) const {
  int best = -1, n = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto& next = nodes_[size_t(n)].next;
    const auto it = next.find(static_cast<unsigned char>(text[i]));
    if (it == next.end()) break;
    n = it->second;
    if (nodes_[size_t(n)].token >= 0) best = nodes_[size_t(n)].token, len = i + 1 - pos;
  }
  return best;
}

}  // namespace tok

void Tokenizer::Impl::normalize(std::string& text) const {
  for (const tok::NormalizerStep& st : normalizers) {
    switch (st.kind) {
      case tok::NormalizerStep::kPrepend:
        if (!text.empty()) text.insert(0, st.text);
        break;
      case tok::NormalizerStep::kReplace:
        st.regex ? replace_regex(text, *st.regex, st.content) : replace_all(text, st.text, st.content);
        break;
      case tok::NormalizerStep::kStrip: {
        const size_t e = st.right ? space_start_at_end(text) : text.size();
        const size_t b = st.left ? std::min(space_len_at_start(text), e) : 0;
        text = text.substr(b, e - b);
        break;
      }
    }
  }
}

void Tokenizer::Impl::finish_added() {
  for (size_t i = 0; i < added.size(); ++i) {
    if (added[i].content.empty()) continue;
    if (!added[i].normalized) {
      raw_matcher.add(added[i].content, int(i));
      continue;
    }
    std::string pattern = added[i].content;  // a normalized token matches its normalized form
    normalize(pattern);
    if (!pattern.empty()) normalized_matcher.add(pattern, int(i));
  }
  for (int b = 0; b < 256; ++b) {
    const auto it = byte_level ? ids.find(std::string(1, char(b))) : ids.end();
    byte_id[size_t(b)] = it == ids.end() ? -1 : it->second;
  }
  eos = -1;
  for (const char* name : {"<|endoftext|>", "<|end_of_text|>", "</s>", "<|im_end|>", "<eos>"})
    if ((eos = token_to_id(name)) >= 0) break;
}

void Tokenizer::Impl::encode_into(std::string_view text, bool add_special_tokens, std::vector<int32_t>& out) const {
  std::vector<Piece> pieces;
  if (!text.empty()) pieces.push_back({std::string(text), true, -1});
  split_added(pieces, raw_matcher, added);
  if (!normalizers.empty())
    for (Piece& p : pieces)
      if (p.added < 0) normalize(p.text);
  split_added(pieces, normalized_matcher, added);
  // A last ByteLevel step (GPT-2's regex) streams its words into the model without copying them.
  const bool stream = !pre_tokenizers.empty() && pre_tokenizers.back().kind == tok::PreTokenizerStep::kByteLevel;
  for (size_t i = 0; i + (stream ? 1 : 0) < pre_tokenizers.size(); ++i) pre_tokenize(pre_tokenizers[i], pieces);
  std::vector<int32_t> seq;
  std::vector<int32_t>& dst = add_special_tokens && !template_single.empty() ? seq : out;
  for (Piece& p : pieces) {
    if (p.added >= 0) {
      dst.push_back(p.added);
    } else if (!stream) {
      tokenize_word(p.text, dst);
    } else if (!p.text.empty()) {
      const tok::PreTokenizerStep& st = pre_tokenizers.back();
      if (st.add_prefix_space && p.text[0] != ' ') p.text.insert(0, 1, ' ');
      if (st.use_regex) tok::split_gpt2_words(p.text, [&](std::string_view w) { tokenize_word(w, dst); });
      else tokenize_word(p.text, dst);
    }
  }
  if (&dst == &out) return;
  for (const tok::TemplateItem& item : template_single)
    out.insert(out.end(), item.sequence ? seq.begin() : item.ids.begin(), item.sequence ? seq.end() : item.ids.end());
}

std::string Tokenizer::Impl::decode(const std::vector<int32_t>& ids) const {
  std::vector<std::string> toks;
  toks.reserve(ids.size());
  for (int32_t id : ids) {
    ARIA_CHECK(id >= 0 && size_t(id) < spelling.size() && present[size_t(id)], "decode: token id ", id,
               " is not in the vocabulary (size ", spelling.size(), ")");
    toks.push_back(spelling[size_t(id)]);
  }
  std::string text;
  if (!has_decoder) {  // Hugging Face joins the tokens with spaces when there is no decoder
    for (size_t i = 0; i < toks.size(); ++i) text += (i ? " " : "") + toks[i];
    return text;
  }
  for (const tok::DecoderStep& st : decoders) decode_step(st, toks);
  for (const std::string& t : toks) text += t;
  return text;
}

}  // namespace aria
