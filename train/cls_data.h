// Labelled text classification tasks in aria's JSONL format (docs/data.md): a task directory
// holds train.jsonl, validation.jsonl, test.jsonl ({"text": str, "label": int} per line) and
// labels.json (the label names). Texts are tokenized once with the GPT-2 tokenizer.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "model/continual_model.h"
#include "model/tokenizer.h"

namespace aria {

struct ClsExample {
  std::vector<int32_t> ids;  // at least one token, at most max_seq_len
  int32_t label = 0;
};

struct ClsTaskData {
  std::string name;                      // the directory's name
  std::vector<std::string> label_names;  // from labels.json
  std::vector<ClsExample> train, validation, test;
  int num_labels() const { return int(label_names.size()); }
};

// Loads a task directory. Texts longer than max_seq_len tokens keep their first max_seq_len tokens.
// max_train / max_eval cap the split sizes (0 = all; the first N lines, which are already shuffled).
// Malformed lines (bad JSON, missing keys, label out of range, empty text) are errors naming the
// file and line.
ClsTaskData load_cls_task(const std::string& dir, const Gpt2Tokenizer& tok, int max_seq_len, int64_t max_train,
                          int64_t max_eval);

// Right-pads the examples with pad_id into one batch on `device`.
ClsBatch make_cls_batch(const std::vector<const ClsExample*>& examples, Device device, int32_t pad_id = 50256);

// Shuffled mini-batches, epoch after epoch, reproducible from (seed, state).
class ClsBatcher {
 public:
  ClsBatcher(const std::vector<ClsExample>* data, int batch_size, uint64_t seed);
  ClsBatch next(Device device);
  // Position in the stream, for checkpoints: a restored batcher yields exactly the same batches.
  struct State {
    RngState rng;
    int64_t epoch = 0, cursor = 0;
  };
  State state() const;
  void set_state(const State& s);

 private:
  void reshuffle();
  const std::vector<ClsExample>* data_;
  int batch_size_;
  Rng rng_;
  std::vector<size_t> order_;
  int64_t epoch_ = 0, cursor_ = 0;
};

// All examples of a split in fixed order, in batches (evaluation, Fisher estimation).
std::vector<ClsBatch> fixed_batches(const std::vector<ClsExample>& data, int batch_size, Device device,
                                    int64_t max_batches = 0);

}  // namespace aria
