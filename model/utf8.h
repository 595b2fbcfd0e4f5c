// UTF-8 helpers shared by the tokenizer (model/tokenizer*.cpp) and its regex (model/pretok_regex.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace aria::utf8 {

constexpr uint32_t kInvalid = 0xFFFFFFFF;  // marks a byte that starts no valid UTF-8 sequence

// Decodes one UTF-8 character at s[0..n) (n >= 1) strictly (no overlongs, surrogates or > U+10FFFF).
// Returns its length; on an invalid sequence returns 1 and sets cp = kInvalid, so a bad byte is
// one character on its own and the next byte gets its own chance to start a character.
inline size_t next(const unsigned char* s, size_t n, uint32_t& cp) {
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

inline size_t next(const std::string_view& s, size_t pos, uint32_t& cp) {
  return next(reinterpret_cast<const unsigned char*>(s.data()) + pos, s.size() - pos, cp);
}

// Appends code point cp (<= U+10FFFF) as UTF-8.
inline void append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6)), out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12)), out += char(0x80 | ((cp >> 6) & 0x3F)), out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18)), out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F)), out += char(0x80 | (cp & 0x3F));
  }
}

}  // namespace aria::utf8
