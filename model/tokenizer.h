// Byte-pair-encoding tokenizers that give exactly the ids of Hugging Face's `tokenizers` (and of
// GPT2Tokenizer for vocab.json + merges.txt). Two sources:
//   * GPT-2's vocab.json + merges.txt (Tokenizer::load);
//   * a Hugging Face tokenizer.json (Tokenizer::load_hf_json) whose model is BPE, in either style:
//     byte-level (GPT-2; Llama 3 / Qwen2 with a Split regex pre-tokenizer before ByteLevel and a
//     TemplateProcessing post-processor adding the BOS token) or SentencePiece-style (Llama 2 /
//     Mistral: the "▁" space marker from a Metaspace pre-tokenizer or a Prepend + Replace normalizer,
//     <0xNN> byte fallback, an unknown token, ignore_merges). docs/tokenizers.md lists every component
//     read; anything else (another model type, normalizer, pre-tokenizer, decoder or post-processor,
//     or an option that changes the ids) is an aria::Error naming it, never a silent approximation.
//
// encode(text) follows Hugging Face's pipeline:
//   1. added tokens (GPT-2's <|endoftext|>; tokenizer.json's added_tokens, special or not) are cut
//      out first (leftmost-longest, lstrip/rstrip/single_word honoured) and never merged across;
//   2. the normalizer, then the pre-tokenizers, split the rest into words;
//   3. each word is merged by BPE (lowest merge rank first, leftmost first), cached per word;
//   4. with add_special_tokens, the post-processor's single-sequence template (e.g. "<s> $A").
// Input need not be valid UTF-8: a byte that starts no valid sequence is one character that is
// neither letter, number nor space; a byte-level tokenizer encodes it as its byte token.
// decode(ids) runs the tokenizer's decoder chain (ByteLevel, Metaspace, Replace, ByteFallback, Fuse,
// Strip) on the tokens' spellings, as Hugging Face's decode(ids, skip_special_tokens=False) does,
// except that ByteLevel returns the raw bytes rather than replacing invalid UTF-8 with U+FFFD: for
// GPT-2's files decode(encode(s)) == s for every byte string s.
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

class Tokenizer {
 public:
  // Reads vocab.json (an object token -> id, tokens in GPT-2's byte-to-unicode spelling) and
  // merges.txt ("#version" line, then one "left right" pair per line, best rank first).
  // Throws aria::Error naming the file (and line, for merges) on any defect.
  static Tokenizer load(const std::string& vocab_json, const std::string& merges_txt);
  // Reads a Hugging Face tokenizer.json (see above). Throws aria::Error naming the file and the
  // component that is unsupported, missing or malformed.
  static Tokenizer load_hf_json(const std::string& tokenizer_json);

  // The ids of `utf8` without special tokens (add_special_tokens=False in Hugging Face).
  std::vector<int32_t> encode(const std::string& utf8) const;
  // With add_special_tokens, the post-processor's template is applied (Llama's BOS). GPT-2's has none.
  std::vector<int32_t> encode(const std::string& utf8, bool add_special_tokens) const;
  // Throws aria::Error for an id that is not in the vocabulary.
  std::string decode(const std::vector<int32_t>& ids) const;

  // Id of the end-of-text token: "<|endoftext|>" (GPT-2), else the first of "<|end_of_text|>",
  // "</s>", "<|im_end|>", "<eos>" that the tokenizer has; -1 when it has none.
  int32_t eot_id() const;
  size_t vocab_size() const;  // largest id + 1 (50257 for GPT-2; added tokens included)
  // Id of a token as Hugging Face spells it (an added token's content, "Ġthe", "▁the"); -1 if none.
  int32_t token_to_id(const std::string& token) const;
  // True when decode(encode(s)) == s for every byte string s (byte-level BPE with a ByteLevel
  // decoder and no normalizer, such as GPT-2's).
  bool lossless() const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

// The name aria used when GPT-2 was the only tokenizer it read.
using Gpt2Tokenizer = Tokenizer;

// Decoding while generating, one new token at a time (as Hugging Face's DecodeStream): step(id)
// returns the text that id adds, as the decoder gives it for a window of the recent tokens, not for
// the token alone, so a SentencePiece decoder keeps the space that a "▁" stands for and a character
// spread over <0xNN> tokens comes out whole ("" while it ends in U+FFFD). finish() returns what is
// still held back. For GPT-2's byte-level files the steps concatenate to decode(generated).
class DecodeStream {
 public:
  DecodeStream(Tokenizer tok, std::vector<int32_t> context);  // context: the prompt's ids (may be empty)
  std::string step(int32_t id);
  std::string finish();

 private:
  std::string window_text() const;
  Tokenizer tok_;
  std::vector<int32_t> ids_;
  size_t win_ = 0, mark_ = 0;  // ids_[win_, mark_) decode to shown_; what follows mark_ is not printed yet
  std::string shown_;
};

// Directory holding vocab.json and merges.txt: model_dir itself when it has both, else the
// third_party/gpt2-vocab folder that tools/setup.sh fetches, searched under Context::home (the
// programs: $ARIA_HOME), then the current directory and its parents, then (when home is unset) next
// to the running binary: its folder, its parent (a build folder inside the checkout) and
// <prefix>/share/aria (an install in <prefix>/bin). Throws aria::Error listing every place looked at.
std::string find_vocab_dir(const std::string& model_dir);

// The folders near the running binary (/proc/self/exe) where aria looks for third_party/ when
// Context::home is unset: the binary's folder, its parent, and ../share/aria.
std::vector<std::string> roots_near_binary();

// Where the tokenizer of a model directory comes from (docs/tokenizers.md "Which tokenizer a model
// folder gets"): model_dir/tokenizer.json when it exists (what transformers' fast tokenizers read);
// else model_dir's vocab.json + merges.txt; else, when model_dir holds no tokenizer files at all
// (aria's own pretrained models), the bundled GPT-2 vocabulary (find_vocab_dir("")). A folder with
// an incomplete or foreign tokenizer (vocab.json without merges.txt, tokenizer.model alone,
// vocab.txt) is an error naming what is missing or unsupported, never the bundled vocabulary in its
// place. Returns a folder or a tokenizer.json path.
std::string tokenizer_source(const std::string& model_dir);

// The tokenizer of tokenizer_source(model_dir).
Tokenizer load_tokenizer_for(const std::string& model_dir);

}  // namespace aria
