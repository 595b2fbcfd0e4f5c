// A backtracking matcher for the regex subset of pretok_regex.h. The pattern compiles to a tree of
// alternatives; matching walks it with an explicit continuation (what follows the current
// sequence), so recursion depth grows with the pattern, never with the text: a quantified
// character collects its possible end positions in a loop and tries them longest first.
#include "aria/model/pretok_regex.h"

#include <cstdint>

#include "aria/core/error.h"
#include "aria/model/unicode_tables.h"
#include "aria/model/utf8.h"

namespace aria {

using unicode::CharClass;

namespace {

constexpr int kUnbounded = -1;
constexpr uint8_t bit(CharClass c) { return uint8_t(1u << unsigned(c)); }

// Unicode simple case folding for the ASCII letters a case-insensitive group may hold: the two
// non-ASCII code points that fold to an ASCII letter are U+017F (long s) and U+212A (Kelvin sign).
uint32_t fold(uint32_t cp) {
  if (cp >= 'A' && cp <= 'Z') return cp + 32;
  if (cp == 0x17F) return 's';
  if (cp == 0x212A) return 'k';
  return cp;
}

// One character test: a literal, a class or a bracket set.
struct CharTest {
  std::vector<std::pair<uint32_t, uint32_t>> ranges;  // inclusive; folded when icase
  uint8_t classes = 0;      // bit(c): the character's class is c (\p{L}, \p{N}, \s)
  uint8_t not_classes = 0;  // bit(c): the character's class is not c (\P{L}, \P{N}, \S)
  bool negate = false, icase = false;

  bool matches(uint32_t cp, CharClass cls) const {
    bool in = (classes & bit(cls)) || (not_classes & ~bit(cls));
    if (!in && cp != utf8::kInvalid) {
      const uint32_t c = icase ? fold(cp) : cp;
      for (const auto& [lo, hi] : ranges)
        if (c >= lo && c <= hi) {
          in = true;
          break;
        }
    }
    return in != negate;
  }
};

struct Node;
using Seq = std::vector<Node>;

struct Node {
  enum Kind { kChar, kGroup, kLookahead, kNegLookahead } kind = kChar;
  int test = -1;          // kChar: index into Program::tests
  int min = 1, max = 1;   // repetitions; max kUnbounded = no limit
  std::vector<Seq> alts;  // kGroup / lookaheads
};

}  // namespace

struct PretokRegex::Program {
  std::vector<CharTest> tests;
  std::vector<Seq> alts;  // the whole pattern
};

namespace {

// ---- parsing ------------------------------------------------------------------------------------
class Parser {
 public:
  Parser(const std::string& pattern, PretokRegex::Program& prog) : p_(pattern), prog_(prog) {}

  void parse() {
    prog_.alts = alternatives(false);
    if (pos_ < p_.size()) fail("unbalanced ')'");
  }

 private:
  const std::string& p_;
  PretokRegex::Program& prog_;
  size_t pos_ = 0;

  [[noreturn]] void fail(const std::string& what) const {
    ARIA_FAIL("regex /", p_, "/: ", what, " at offset ", pos_,
              " (aria's pre-tokenizer regex supports literals, \\s \\S \\p{L} \\p{N}, [sets], groups, (?i:...), "
              "lookaheads and greedy quantifiers)");
  }
  bool at_end() const { return pos_ >= p_.size(); }
  char peek() const { return at_end() ? '\0' : p_[pos_]; }
  uint32_t take_cp() {
    uint32_t cp;
    const size_t n = utf8::next(std::string_view(p_), pos_, cp);
    if (cp == utf8::kInvalid) fail("invalid UTF-8 in the pattern");
    pos_ += n;
    return cp;
  }

  std::vector<Seq> alternatives(bool icase) {
    std::vector<Seq> alts(1);
    while (!at_end() && peek() != ')') {
      if (peek() == '|') {
        ++pos_;
        alts.emplace_back();
        continue;
      }
      alts.back().push_back(atom(icase));
    }
    return alts;
  }

  Node atom(bool icase) {
    Node n;
    const char c = peek();
    if (c == '(') {
      ++pos_;
      n.kind = Node::kGroup;
      bool inner_icase = icase;
      if (peek() == '?') {
        ++pos_;
        const char k = peek();
        if (k == ':') ++pos_;
        else if (k == '=') ++pos_, n.kind = Node::kLookahead;
        else if (k == '!') ++pos_, n.kind = Node::kNegLookahead;
        else if (p_.compare(pos_, 2, "i:") == 0) pos_ += 2, inner_icase = true;
        else fail(std::string("unsupported group '(?") + k + "'");
      }
      n.alts = alternatives(inner_icase);
      if (peek() != ')') fail("missing ')'");
      ++pos_;
    } else if (c == '[') {
      n.test = add(bracket(icase));
    } else if (c == '\\') {
      n.test = add(escape(icase));
    } else if (c == '.' || c == '^' || c == '$') {
      fail(std::string("unsupported '") + c + "'");
    } else if (c == '*' || c == '+' || c == '?' || c == '{') {
      fail(std::string("nothing to repeat before '") + c + "'");
    } else {
      CharTest t;
      literal(t, take_cp(), icase);
      n.test = add(std::move(t));
    }
    quantifier(n);
    return n;
  }

  void quantifier(Node& n) {
    const size_t start = pos_;
    const char c = peek();
    int lo, hi;
    if (c == '?') lo = 0, hi = 1, ++pos_;
    else if (c == '*') lo = 0, hi = kUnbounded, ++pos_;
    else if (c == '+') lo = 1, hi = kUnbounded, ++pos_;
    else if (c == '{' && counted(lo, hi)) {
    } else return;
    if (peek() == '?' || peek() == '+') fail("lazy or possessive quantifiers are unsupported");
    if (n.kind != Node::kChar && !(n.kind == Node::kGroup && lo == 0 && hi == 1))
      pos_ = start, fail("a quantifier other than '?' on a group is unsupported");
    n.min = lo, n.max = hi;
  }

  // {n} {n,} {n,m}; false (position unchanged) when the text is not one, so '{' is a literal then.
  bool counted(int& lo, int& hi) {
    size_t q = pos_ + 1;
    auto number = [&](int& v) {
      const size_t s = q;
      v = 0;
      while (q < p_.size() && p_[q] >= '0' && p_[q] <= '9' && v < 100000) v = v * 10 + (p_[q++] - '0');
      return q > s;
    };
    if (!number(lo)) return false;
    hi = lo;
    if (q < p_.size() && p_[q] == ',') {
      ++q;
      if (!number(hi)) hi = kUnbounded;
    }
    if (q >= p_.size() || p_[q] != '}') return false;
    if (hi != kUnbounded && hi < lo) fail("a {n,m} quantifier with m < n");
    pos_ = q + 1;
    return true;
  }

  int add(CharTest t) {
    prog_.tests.push_back(std::move(t));
    return int(prog_.tests.size()) - 1;
  }

  void literal(CharTest& t, uint32_t cp, bool icase) {
    if (icase) {
      t.icase = true;
      if (cp >= 0x80 && unicode::char_class(cp) == CharClass::kLetter)
        fail("a non-ASCII letter inside (?i:...) is unsupported");
      cp = fold(cp);
    }
    t.ranges.emplace_back(cp, cp);
  }

  // An escape at the backslash: a class is added to t (returns false), a character is returned in
  // cp (returns true) for the caller to add as a literal or a range end.
  bool escape_into(CharTest& t, uint32_t& cp) {
    ++pos_;  // the backslash
    if (at_end()) fail("a trailing backslash");
    const char e = p_[pos_];
    auto cls = [&](CharClass c, bool negated) {
      ++pos_;
      (negated ? t.not_classes : t.classes) |= bit(c);
      return false;
    };
    switch (e) {
      case 's': return cls(CharClass::kSpace, false);
      case 'S': return cls(CharClass::kSpace, true);
      case 'p':
      case 'P': {
        const size_t close = p_.find('}', pos_);
        if (pos_ + 1 >= p_.size() || p_[pos_ + 1] != '{' || close == std::string::npos) fail("\\p without {name}");
        const std::string name = p_.substr(pos_ + 2, close - pos_ - 2);
        CharClass c;
        if (name == "L" || name == "Letter") c = CharClass::kLetter;
        else if (name == "N" || name == "Number") c = CharClass::kNumber;
        else fail("unsupported Unicode property \\" + std::string(1, e) + "{" + name + "} (only L and N)");
        pos_ = close;
        return cls(c, e == 'P');
      }
      case 'r': cp = '\r'; break;
      case 'n': cp = '\n'; break;
      case 't': cp = '\t'; break;
      case 'f': cp = '\f'; break;
      case 'v': cp = '\v'; break;
      default:
        if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9'))
          fail(std::string("unsupported escape '\\") + e + "'");
        cp = take_cp();  // escaped punctuation or any non-ASCII character stands for itself
        return true;
    }
    ++pos_;
    return true;
  }

  CharTest escape(bool icase) {
    CharTest t;
    uint32_t cp;
    if (escape_into(t, cp)) literal(t, cp, icase);
    return t;
  }

  CharTest bracket(bool icase) {
    CharTest t;
    ++pos_;  // '['
    if (peek() == '^') t.negate = true, ++pos_;
    bool first = true;
    while (true) {
      if (at_end()) fail("missing ']'");
      const char c = peek();
      if (c == ']' && !first) {
        ++pos_;
        break;
      }
      if (c == '[') fail("a nested set or set operation inside [...] is unsupported");
      first = false;
      uint32_t lo;
      if (c == '\\') {
        if (!escape_into(t, lo)) continue;  // a class: no range can follow
      } else {
        lo = take_cp();
      }
      uint32_t hi = lo;
      if (peek() == '-' && pos_ + 1 < p_.size() && p_[pos_ + 1] != ']') {
        ++pos_;
        if (peek() == '\\') {
          CharTest dummy;
          if (!escape_into(dummy, hi)) fail("a range ending in a class");
        } else {
          hi = take_cp();
        }
        if (hi < lo) fail("a range out of order in [...]");
      }
      if (icase) {
        for (uint32_t x = lo; x <= hi && x < 0x80; ++x) literal(t, x, true);
        if (hi >= 0x80) {
          if (lo != hi) fail("a non-ASCII range inside (?i:...) is unsupported");
          literal(t, lo, true);
        }
      } else {
        t.ranges.emplace_back(lo, hi);
      }
    }
    t.icase = icase;
    return t;
  }
};

// ---- matching -----------------------------------------------------------------------------------
struct Cont {  // the rest of an enclosing sequence, matched after the current one
  const Seq* seq;
  size_t index;
  const Cont* next;
};

class Matcher {
 public:
  Matcher(const PretokRegex::Program& prog, std::string_view text) : prog_(prog), t_(text) {}

  bool at(size_t pos, size_t& end) const { return alts(prog_.alts, pos, nullptr, end); }

 private:
  const PretokRegex::Program& prog_;
  std::string_view t_;

  bool alts(const std::vector<Seq>& as, size_t pos, const Cont* k, size_t& end) const {
    for (const Seq& s : as)
      if (seq(s, 0, pos, k, end)) return true;
    return false;
  }

  // Length of the character at pos if it passes test, else 0.
  size_t step(const CharTest& test, size_t pos) const {
    if (pos >= t_.size()) return 0;
    uint32_t cp;
    const size_t len = utf8::next(t_, pos, cp);
    const CharClass cls = cp == utf8::kInvalid ? CharClass::kOther : unicode::char_class(cp);
    return test.matches(cp, cls) ? len : 0;
  }

  bool seq(const Seq& s, size_t i, size_t pos, const Cont* k, size_t& end) const {
    if (i == s.size()) {
      if (!k) return end = pos, true;
      return seq(*k->seq, k->index, pos, k->next, end);
    }
    const Node& n = s[i];
    switch (n.kind) {
      case Node::kChar: {
        const CharTest& test = prog_.tests[size_t(n.test)];
        if (n.min == 1 && n.max == 1) {
          const size_t len = step(test, pos);
          return len > 0 && seq(s, i + 1, pos + len, k, end);
        }
        std::vector<size_t> ends{pos};  // ends[c] = position after c repetitions
        for (size_t len; n.max == kUnbounded || int(ends.size()) <= n.max;) {
          if ((len = step(test, ends.back())) == 0) break;
          ends.push_back(ends.back() + len);
        }
        for (int c = int(ends.size()) - 1; c >= n.min; --c)
          if (seq(s, i + 1, ends[size_t(c)], k, end)) return true;
        return false;
      }
      case Node::kGroup: {
        const Cont rest{&s, i + 1, k};
        if (alts(n.alts, pos, &rest, end)) return true;
        return n.min == 0 && seq(s, i + 1, pos, k, end);
      }
      case Node::kLookahead:
      case Node::kNegLookahead: {
        size_t ignored;
        const bool found = alts(n.alts, pos, nullptr, ignored);
        return found == (n.kind == Node::kLookahead) && seq(s, i + 1, pos, k, end);
      }
    }
    return false;
  }
};

}  // namespace

PretokRegex::PretokRegex(const std::string& pattern) : pattern_(pattern), prog_(std::make_unique<Program>()) {
  Parser(pattern_, *prog_).parse();
}
PretokRegex::~PretokRegex() = default;
PretokRegex::PretokRegex(PretokRegex&&) noexcept = default;
PretokRegex& PretokRegex::operator=(PretokRegex&&) noexcept = default;

bool PretokRegex::search(std::string_view text, size_t from, size_t& begin, size_t& end) const {
  const Matcher m(*prog_, text);
  for (size_t p = from; p <= text.size();) {
    if (m.at(p, end)) return begin = p, true;
    if (p == text.size()) break;
    uint32_t cp;
    p += utf8::next(text, p, cp);
  }
  return false;
}

std::vector<std::pair<size_t, size_t>> PretokRegex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> out;
  size_t from = 0, b, e;
  while (from <= text.size() && search(text, from, b, e)) {
    out.emplace_back(b, e);
    if (e > b) {
      from = e;
    } else {
      if (e >= text.size()) break;
      uint32_t cp;
      from = e + utf8::next(text, e, cp);
    }
  }
  return out;
}

}  // namespace aria
