// The pre-tokenizer regex matcher (model/pretok_regex.h): Llama 3's and Qwen2's Split patterns on
// strings whose pieces are worked out by hand in the comments, GPT-2's pattern against aria's
// hand-written GPT-2 splitter on pseudo-random text, case folding, flat memory on long runs, and an
// error naming each construct it does not support.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "aria/core/error.h"
#include "aria/model/pretok_regex.h"
#include "aria/model/tokenizer_impl.h"

using aria::PretokRegex;
using Pieces = std::vector<std::string>;

namespace {

const std::string kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const std::string kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const std::string kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// The text cut at the matches (and the gaps between them, which these patterns never leave).
Pieces pieces(const PretokRegex& re, const std::string& text) {
  Pieces out;
  size_t prev = 0;
  for (const auto& [b, e] : re.find_all(text)) {
    if (b > prev) out.push_back("<gap>" + text.substr(prev, b - prev));
    out.push_back(text.substr(b, e - b));
    prev = e;
  }
  if (prev < text.size()) out.push_back("<gap>" + text.substr(prev));
  return out;
}

std::string error_of(const std::string& pattern) {
  try {
    PretokRegex re(pattern);
  } catch (const aria::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("Llama 3's Split regex cuts words, contractions, 1-3 digit groups and white space as Oniguruma does") {
  const PretokRegex re(kLlama3);
  CHECK(pieces(re, "Hello world") == Pieces{"Hello", " world"});
  // "'M" is a contraction whatever its case; " " before a digit is white space on its own.
  CHECK(pieces(re, "I'M 12345 ok") == Pieces{"I", "'M", " ", "123", "45", " ok"});
  CHECK(pieces(re, "don't we'll") == Pieces{"don", "'t", " we", "'ll"});
  // \s+(?!\S) leaves the last space to the word; \s*[\r\n]+ takes the newlines with spaces before.
  CHECK(pieces(re, "a  b") == Pieces{"a", " ", " b"});
  CHECK(pieces(re, "a \n\n  b") == Pieces{"a", " \n\n", " ", " b"});
  // Punctuation takes a space before it and newlines after it.
  CHECK(pieces(re, "end...!!\nNext") == Pieces{"end", "...!!\n", "Next"});
  // [^\r\n\p{L}\p{N}]? joins one non-letter to the word after it (".world"), but not a space and a
  // symbol (" $" is punctuation with its space), and not before digits.
  CHECK(pieces(re, "hello.world $100 $x") == Pieces{"hello", ".world", " $", "100", " $", "x"});
  CHECK(pieces(re, "\tTab") == Pieces{"\tTab"});
  // Unicode letters and numbers: CJK, Greek, Devanagari digits (\p{N}), emoji (neither).
  CHECK(pieces(re, "日本語 αβγ ०१२३") == Pieces{"日本語", " αβγ", " ", "०१२", "३"});
  CHECK(pieces(re, "hi 👋🏽!") == Pieces{"hi", " 👋🏽!"});
  // (?i:'s) also matches U+017F LATIN SMALL LETTER LONG S, as Unicode case folding says.
  // Without the folding, "'ſt" would be one piece ([^\r\n\p{L}\p{N}]?\p{L}+).
  CHECK(pieces(re, "it'ſt") == Pieces{"it", "'ſ", "t"});
  CHECK(pieces(re, "trailing   ") == Pieces{"trailing", "   "});
  CHECK(pieces(re, "") == Pieces{});
  // An invalid UTF-8 byte is one "other" character.
  CHECK(pieces(re, "a\xff" "b") == Pieces{"a", "\xff" "b"});
}

TEST_CASE("Qwen2's Split regex takes digits one by one") {
  const PretokRegex re(kQwen2);
  CHECK(pieces(re, "x 2024!") == Pieces{"x", " ", "2", "0", "2", "4", "!"});
}

TEST_CASE("GPT-2's pattern through the matcher equals aria's hand-written GPT-2 splitter") {
  const PretokRegex re(kGpt2);
  const std::vector<std::string> alphabet = {"a", "B", "7", " ", "  ", "\n", "\t", "'", "'s", "'LL", "!", "é", "日",
                                             "٣", "\xc2\xa0", "👍", "\xff", "\r\n", "-", "ſ"};
  uint32_t x = 2024;
  for (int round = 0; round < 300; ++round) {
    std::string text;
    const int len = 1 + int((x = x * 1664525u + 1013904223u) >> 28);
    for (int i = 0; i < len; ++i) text += alphabet[((x = x * 1664525u + 1013904223u) >> 16) % alphabet.size()];
    Pieces want;
    aria::tok::split_gpt2_words(text, [&](std::string_view w) { want.emplace_back(w); });
    CAPTURE(text);
    CHECK(pieces(re, text) == want);
  }
}

TEST_CASE("a megabyte-long run is matched in flat memory and linear time") {
  const PretokRegex re(kLlama3);
  const std::string letters(1 << 20, 'a');
  CHECK(re.find_all(letters) == std::vector<std::pair<size_t, size_t>>{{0, letters.size()}});
  const std::string spaces(1 << 16, ' ');
  CHECK(re.find_all(spaces + "x").size() == 2);  // all spaces but the last, then " x"
  const std::string digits(30000, '9');
  CHECK(re.find_all(digits).size() == 10000);
}

TEST_CASE("other quantifiers, sets and lookaheads") {
  CHECK(pieces(PretokRegex("a{2,3}"), "aaaaaaa") == Pieces{"aaa", "aaa", "<gap>a"});
  CHECK(pieces(PretokRegex("a{2}"), "aaaaa") == Pieces{"aa", "aa", "<gap>a"});
  CHECK(pieces(PretokRegex("x(?=y)"), "xxy") == Pieces{"<gap>x", "x", "<gap>y"});
  CHECK(pieces(PretokRegex("(?:ab)?c"), "abcc") == Pieces{"abc", "c"});
  CHECK(pieces(PretokRegex("[a-c\\s]+|\\."), "ab z.") == Pieces{"ab ", "<gap>z", "."});
  CHECK(pieces(PretokRegex("[^\\S\\n]+"), "a \t\nb") == Pieces{"<gap>a", " \t", "<gap>\nb"});
}

TEST_CASE("an unsupported regex construct is an error naming it") {
  const std::pair<std::string, std::string> cases[] = {
      {"\\w+", "unsupported escape '\\w'"},
      {"a+?", "lazy or possessive"},
      {"a++", "lazy or possessive"},
      {"\\p{Lu}", "\\p{Lu}"},
      {"(?<=a)b", "unsupported group '(?<'"},
      {"(a)\\1", "unsupported escape '\\1'"},
      {"a.b", "unsupported '.'"},
      {"^a", "unsupported '^'"},
      {"(ab)+", "a quantifier other than '?' on a group"},
      {"(ab", "missing ')'"},
      {"ab)", "unbalanced ')'"},
      {"[ab", "missing ']'"},
      {"[[a]]", "nested set"},
      {"*a", "nothing to repeat"},
      {"(?i:é)", "non-ASCII letter inside (?i:...)"},
      {"a{3,1}", "m < n"},
  };
  for (const auto& [pattern, want] : cases) {
    const std::string e = error_of(pattern);
    CAPTURE(pattern);
    CAPTURE(e);
    CHECK(e.find("regex /" + pattern + "/") != std::string::npos);
    CHECK(e.find(want) != std::string::npos);
  }
}
