// GPT-2 byte-level BPE tokenizer that gives exactly the ids of Hugging Face's GPT2Tokenizer and
// GPT2TokenizerFast (add_prefix_space=False) for the same vocab.json and merges.txt.
//
// encode(text):
//   1. "<|endoftext|>" anywhere in the text becomes the single special id (50256 for GPT-2), as
//      HF splits added tokens out before pre-tokenization; the pieces between are encoded alone.
//   2. Pre-tokenization by the GPT-2 regex
//        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//      implemented by hand over Unicode classes from model/unicode_tables.h (\s = White_Space).
//   3. Each pre-token's UTF-8 bytes are merged by BPE (lowest merge rank first), cached per word.
// Input need not be valid UTF-8: a byte that does not start a valid sequence counts as one
// "other" character (like a symbol) and is encoded as its byte token, so nothing is lost.
// decode(ids) concatenates the tokens' bytes. Unlike HF (which replaces invalid UTF-8 with U+FFFD)
// it returns the raw bytes, so decode(encode(s)) == s for every byte string s.
//
// A tokenizer is immutable after load except for its word cache, which is guarded by a mutex:
// encode/decode may be called from several threads. Copies share the vocabulary and the cache.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace aria {

class Gpt2Tokenizer {
 public:
  // Reads vocab.json (an object token -> id, tokens in GPT-2's byte-to-unicode spelling) and
  // merges.txt ("#version" line, then one "left right" pair per line, best rank first).
  // Throws aria::Error naming the file (and line, for merges) on any defect.
  static Gpt2Tokenizer load(const std::string& vocab_json, const std::string& merges_txt);
  // Reads a Hugging Face tokenizer.json of GPT-2-style byte-level BPE: model.type "BPE" with
  // model.vocab and model.merges ("a b" strings or ["a", "b"] pairs), a ByteLevel pre-tokenizer
  // (add_prefix_space false, GPT-2's regex; alone or as the only member of a Sequence), a ByteLevel
  // decoder or none, no normalizer, no dropout/subword prefix/suffix. Anything else is an error
  // naming what is unsupported or missing. Gives the same ids as vocab.json + merges.txt.
  static Gpt2Tokenizer load_hf_json(const std::string& tokenizer_json);

  std::vector<int32_t> encode(const std::string& utf8) const;
  // Throws aria::Error for an id that is not in the vocabulary.
  std::string decode(const std::vector<int32_t>& ids) const;

  int32_t eot_id() const;     // id of "<|endoftext|>"
  size_t vocab_size() const;  // number of entries = largest id + 1 (ids are 0..n-1; 50257 for GPT-2)

 private:
  struct Impl;
  explicit Gpt2Tokenizer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  // vocab: the token -> id object; merges_text: merges.txt's text; the names are for messages.
  static Gpt2Tokenizer build(const nlohmann::json& vocab, const std::string& merges_text,
                             const std::string& vocab_name, const std::string& merges_name);
  std::shared_ptr<Impl> impl_;
};

// Directory holding vocab.json and merges.txt: model_dir itself when it has both, else the
// third_party/gpt2-vocab folder that tools/setup.sh fetches, searched under $ARIA_HOME, then the
// current directory and its parents, then (when ARIA_HOME is unset) next to the running binary:
// its folder, its parent (a build folder inside the checkout) and <prefix>/share/aria (an install
// in <prefix>/bin). Throws aria::Error listing every place looked at.
std::string find_vocab_dir(const std::string& model_dir);

// The folders near the running binary (/proc/self/exe) where aria looks for third_party/ when
// ARIA_HOME is unset: the binary's folder, its parent, and ../share/aria.
std::vector<std::string> roots_near_binary();

// Where the tokenizer of a model directory comes from (docs/data.md "Model folders and
// vocabularies"): model_dir itself when it has vocab.json + merges.txt; else model_dir/tokenizer.json;
// else, when model_dir holds no tokenizer files at all (aria's own pretrained models), the bundled
// GPT-2 vocabulary (find_vocab_dir("")). A folder with an incomplete or unsupported tokenizer
// (vocab.json without merges.txt, tokenizer.model, vocab.txt) is an error naming what is missing
// or unsupported, never the bundled vocabulary in its place. Returns a folder or a tokenizer.json path.
std::string tokenizer_source(const std::string& model_dir);

// The tokenizer of tokenizer_source(model_dir).
Gpt2Tokenizer load_tokenizer_for(const std::string& model_dir);

}  // namespace aria
