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

// GPT-2's <|endoftext|> id, the padding of batches for a model with GPT-2's vocabulary.
constexpr int32_t kGpt2PadId = 50256;
// The padding id for a model with `vocab_size` tokens: <|endoftext|> where it exists, else 0 (a tiny
// model's vocabulary). Padding never influences the real tokens (causal attention, last-token pooling,
// masked gate statistics), but it must be a valid embedding row. Every batch fed to a model is padded
// with pad_id_for(model's vocab_size).
int32_t pad_id_for(int vocab_size);

// Right-pads the examples with pad_id into one batch on `device`.
ClsBatch make_cls_batch(const std::vector<const ClsExample*>& examples, Device device, int32_t pad_id = kGpt2PadId);

// Shuffled mini-batches, epoch after epoch, reproducible from (seed, state).
class ClsBatcher {
 public:
  ClsBatcher(const std::vector<ClsExample>* data, int batch_size, uint64_t seed);
  ClsBatch next(Device device, int32_t pad_id = kGpt2PadId);
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
                                    int64_t max_batches = 0, int32_t pad_id = kGpt2PadId);

// The largest token id of any example of any split (-1 when there are none): checked against the
// model's vocabulary before training.
int32_t max_token_id(const ClsTaskData& d);

// "" when every class has a training example; else a warning naming the task and the classes the
// training split lacks (a split with a single class: that class).
std::string train_class_warning(const ClsTaskData& d);

}  // namespace aria
