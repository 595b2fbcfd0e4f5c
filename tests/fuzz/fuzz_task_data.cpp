// libFuzzer harness: task folders (train/data/cls_data.cpp): JSONL and CSV splits, labels.json, field
// names, the carved validation split. The input's first byte chooses the layout (bit 0: CSV instead
// of JSONL; bit 1: a validation split; bit 2: labels.json; bit 3: fields "sentence"/"y" instead of
// "text"/"label"); the rest is train, test, validation and labels.json separated by NUL bytes.
// Checked: check_cls_task (run before any model is loaded) accepts exactly the folders that
// load_cls_task accepts, with the same labels and split sizes; every loaded example has 1 to
// max_seq_len in-vocabulary ids and a label below the number of labels.
#include <filesystem>

#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/fuzz_vocab.h"
#include "aria/train/data/cls_data.h"

namespace {

constexpr int kMaxSeqLen = 16;

// Throws aria::Error (a refusal) or returns the task; any other exception escapes.
aria::ClsTaskData load(const std::string& dir, const aria::Gpt2Tokenizer* tok, const aria::ClsDataOptions& o,
                       bool& refused) {
  refused = false;
  try {
    return tok ? aria::load_cls_task(dir, *tok, kMaxSeqLen, 0, 0, o) : aria::check_cls_task(dir, o);
  } catch (const aria::Error&) {
    refused = true;
    return {};
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aria;
  namespace fs = std::filesystem;
  static const Gpt2Tokenizer tok = fuzz::byte_level_tokenizer();
  if (size == 0) return 0;
  const uint8_t layout = data[0];
  const std::vector<std::string> p = fuzz::split_parts(data + 1, size - 1, 4);
  const fs::path dir = fs::path(fuzz::scratch_dir()) / "task";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string ext = (layout & 1) ? ".csv" : ".jsonl";
  auto put = [&](const std::string& name, size_t part) {
    fuzz::write_file("task/" + name, part < p.size() ? p[part] : "");
  };
  put("train" + ext, 0);
  put("test" + ext, 1);
  if (layout & 2) put("validation" + ext, 2);
  if (layout & 4) put("labels.json", 3);
  ClsDataOptions o;
  if (layout & 8) o.text_field = "sentence", o.label_field = "y";

  bool check_refused = false, load_refused = false;
  const ClsTaskData c = load(dir.string(), nullptr, o, check_refused);
  const ClsTaskData d = load(dir.string(), &tok, o, load_refused);
  if (check_refused != load_refused) std::abort();  // the early check must predict the real load
  if (load_refused) return 0;
  if (c.label_names != d.label_names || c.train.size() != d.train.size() ||
      c.validation.size() != d.validation.size() || c.test.size() != d.test.size())
    std::abort();
  if (d.num_labels() < 2 || d.train.empty() || d.validation.empty() || d.test.empty()) std::abort();
  for (const auto* split : {&d.train, &d.validation, &d.test})
    for (const ClsExample& ex : *split) {
      if (ex.ids.empty() || ex.ids.size() > size_t(kMaxSeqLen)) std::abort();
      if (ex.label < 0 || ex.label >= d.num_labels()) std::abort();
      for (int32_t id : ex.ids)
        if (id < 0 || size_t(id) >= tok.vocab_size()) std::abort();
    }
  return 0;
}
