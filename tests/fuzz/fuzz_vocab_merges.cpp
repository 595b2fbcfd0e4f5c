// libFuzzer harness: GPT-2's vocab.json + merges.txt (Gpt2Tokenizer::load, model/tokenizer.cpp).
// The input is vocab.json, a NUL byte, merges.txt, a NUL byte, then a text. A tokenizer that loads
// must encode the text to ids in its vocabulary that decode back to the text's exact bytes.
#include "aria/model/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aria;
  const std::vector<std::string> p = fuzz::split_parts(data, size, 3);
  const std::string vocab = fuzz::write_file("vocab.json", p[0]);
  const std::string merges = fuzz::write_file("merges.txt", p.size() > 1 ? p[1] : "");
  const std::string text = p.size() > 2 ? p[2] : "Hello world<|endoftext|> it's 42!";
  fuzz::refused_or_ok([&] {
    const Gpt2Tokenizer tok = Gpt2Tokenizer::load(vocab, merges);
    const std::vector<int32_t> ids = tok.encode(text);
    for (int32_t id : ids)
      if (id < 0 || size_t(id) >= tok.vocab_size()) std::abort();
    if (tok.decode(ids) != text) std::abort();
  });
  return 0;
}
