// libFuzzer harness: Hugging Face tokenizer.json (Tokenizer::load_hf_json, model/tokenizer_json.cpp,
// the pipeline in model/tokenizer_pipeline.cpp and the Split regex in model/pretok_regex.cpp).
// The input is tokenizer.json, a NUL byte, then a text. A tokenizer that loads must encode the text
// (with and without special tokens) to ids in its vocabulary that decode without error, and back to
// the text's exact bytes when it says it is lossless (byte-level BPE such as GPT-2's).
#include "aria/model/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aria;
  const std::vector<std::string> p = fuzz::split_parts(data, size, 2);
  const std::string path = fuzz::write_file("tokenizer.json", p[0]);
  const std::string text = p.size() > 1 ? p[1] : "Hello world<|endoftext|> it's 42!";
  fuzz::refused_or_ok([&] {
    const Tokenizer tok = Tokenizer::load_hf_json(path);
    const std::vector<int32_t> ids = tok.encode(text);
    for (bool special : {false, true})
      for (int32_t id : tok.encode(text, special))
        if (id < 0 || size_t(id) >= tok.vocab_size()) std::abort();
    const std::string back = tok.decode(ids);
    if (tok.lossless() && back != text) std::abort();
  });
  return 0;
}
