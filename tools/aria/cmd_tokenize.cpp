// aria tokenize: GPT-2 BPE ids of a text, as a JSON array on one line.
#include <cstdio>

#include "model/tokenizer.h"
#include "tools/aria/args.h"
#include "tools/aria/commands.h"
#include "tools/aria/text_file.h"

namespace aria::cli {

int cmd_tokenize(int argc, char** argv) {
  Args args("tokenize", "Prints the GPT-2 token ids of a UTF-8 text file as a JSON array (no BOS added).");
  args.option("text", "UTF-8 text file", "", true)
      .option("vocab", "directory with vocab.json + merges.txt (default: the model's or setup's vocabulary)", "")
      .toggle("decode", "also print the text decoded back from the ids, on a second line");
  if (!args.parse(argc, argv)) return 0;
  Gpt2Tokenizer tok = load_tokenizer_for(args.str("vocab"));
  std::vector<int32_t> ids = tok.encode(read_text_file(args.str("text")));
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? ", " : "") + std::to_string(ids[i]);
  out += "]\n";
  std::fputs(out.c_str(), stdout);
  if (args.on("decode")) std::printf("%s\n", tok.decode(ids).c_str());
  return 0;
}

}  // namespace aria::cli
