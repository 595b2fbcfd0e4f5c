// libFuzzer harness: Hugging Face tokenizer.json (Gpt2Tokenizer::load_hf_json, model/tokenizer.cpp).
// The input is tokenizer.json, a NUL byte, then a text. A tokenizer that loads must encode the text to
// ids in its vocabulary that decode back to the text's exact bytes.
#include "aria/model/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aria;
  const std::vector<std::string> p = fuzz::split_parts(data, size, 2);
  const std::string path = fuzz::write_file("tokenizer.json", p[0]);
  const std::string text = p.size() > 1 ? p[1] : "Hello world<|endoftext|> it's 42!";
  fuzz::refused_or_ok([&] {
    const Gpt2Tokenizer tok = Gpt2Tokenizer::load_hf_json(path);
    const std::vector<int32_t> ids = tok.encode(text);
    for (int32_t id : ids)
      if (id < 0 || size_t(id) >= tok.vocab_size()) std::abort();
    if (tok.decode(ids) != text) std::abort();
  });
  return 0;
}
