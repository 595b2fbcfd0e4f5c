// A minimal byte-level BPE tokenizer for the harnesses that need one (task data): the 256 byte tokens in
// GPT-2's byte-to-unicode spelling, one merge ("Ġ" + "t") and <|endoftext|>, written to the scratch
// folder once. Self-contained: the fuzzers must not depend on third_party/ being fetched.
#pragma once
#include <nlohmann/json.hpp>

#include "aria/model/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

namespace aria::fuzz {

// GPT-2's spelling of byte b: printable Latin-1 bytes stand for themselves, the others map to
// U+0100 onwards in byte order.
inline std::string byte_spelling(int b) {
  static const auto table = [] {
    std::vector<int> cp(256, -1);
    int next = 256;
    for (int c = 0; c < 256; ++c) {
      const bool printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
      cp[size_t(c)] = printable ? c : next++;
    }
    return cp;
  }();
  const int u = table[size_t(b)];
  std::string s;
  if (u < 0x80) {
    s += char(u);
  } else {
    s += char(0xC0 | (u >> 6));
    s += char(0x80 | (u & 0x3F));
  }
  return s;
}

inline Gpt2Tokenizer byte_level_tokenizer() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_spelling(b)] = b;
  vocab[byte_spelling(' ') + "t"] = 256;
  vocab["<|endoftext|>"] = 257;
  const std::string v = write_file("byte_vocab.json", vocab.dump());
  const std::string m = write_file("byte_merges.txt", "#version: 0.2\n" + byte_spelling(' ') + " t\n");
  return Gpt2Tokenizer::load(v, m);
}

}  // namespace aria::fuzz
