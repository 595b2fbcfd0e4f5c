// The small regular-expression matcher behind tokenizer.json's `Split` pre-tokenizer and `Replace`
// normalizer (model/tokenizer_json.cpp). Hugging Face tokenizers runs these patterns with Oniguruma:
// leftmost match, alternatives tried in order, greedy quantifiers that backtrack. This matcher has
// the same semantics for the subset that pre-tokenizer patterns use (GPT-2's, Llama 3's, Qwen2's,
// GPT-4's cl100k), and refuses anything else with an error naming the construct:
//   literals (UTF-8) and escaped punctuation; \r \n \t \f \v; \s \S (Unicode White_Space);
//   \p{L} \p{N} \P{L} \P{N} (and the long names Letter / Number) from model/unicode_tables.h;
//   bracket sets [...] / [^...] of those, with ranges a-z;
//   groups (...) (?:...), case-insensitive groups (?i:...) (ASCII letters, with Unicode's simple
//   case folding: 's' also matches U+017F, 'k' U+212A), lookaheads (?=...) (?!...), alternation |;
//   greedy quantifiers ? * + {n} {n,} {n,m} on one character (a literal, class or set), and ? on a group.
// Text need not be valid UTF-8: a byte that starts no valid sequence is one character that is
// neither a letter, a number nor white space. Matching needs no memory beyond the pattern's depth
// plus one position list per quantified character run, so a megabyte-long word is safe.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aria {

class PretokRegex {
 public:
  // Throws aria::Error ("regex /.../: unsupported ... at offset N") for what it cannot match.
  explicit PretokRegex(const std::string& pattern);
  ~PretokRegex();
  PretokRegex(PretokRegex&&) noexcept;
  PretokRegex& operator=(PretokRegex&&) noexcept;

  // The leftmost match starting at or after `from`: [begin, end). False when there is none.
  bool search(std::string_view text, size_t from, size_t& begin, size_t& end) const;
  // Every non-overlapping match, left to right, as Oniguruma's find_iter gives them (after an empty
  // match the search goes on one character later).
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;
  const std::string& pattern() const { return pattern_; }

  struct Program;

 private:
  std::string pattern_;
  std::unique_ptr<Program> prog_;
};

}  // namespace aria
