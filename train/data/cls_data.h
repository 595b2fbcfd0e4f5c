// Labelled text classification tasks (docs/data.md, "Task folders"): a task directory holds
// train, test and optionally validation splits, each as <split>.jsonl (one JSON object a line) or
// <split>.csv (RFC 4180 with a header row), and optionally labels.json (the label names). The text
// and label fields are named by ClsDataOptions; other keys/columns are ignored. Labels are integers
// (indices into labels.json) or strings (label names; without labels.json, the distinct labels of
// all splits in sorted order). A missing validation split is carved from train with a seed.
// Texts are tokenized once with the GPT-2 tokenizer.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "aria/core/rng.h"
#include "aria/model/continual_model.h"
#include "aria/model/tokenizer.h"
#include "aria/train/continual/aria_config.h"

namespace aria {

struct ClsExample {
  std::vector<int32_t> ids;  // at least one token, at most max_seq_len
  int32_t label = 0;
};

// How a task folder's files are read (the experiment config's "data" object).
struct ClsDataOptions {
  std::string text_field = "text";    // JSON key / CSV column of the text
  std::string label_field = "label";  // JSON key / CSV column of the label
  double validation_fraction = 0.1;   // share of train carved off when there is no validation split
  uint64_t split_seed = 1234;         // seed of that carving
};

struct ClsTaskData {
  std::string name;                      // the directory's name
  std::vector<std::string> label_names;  // from labels.json, or collected from the splits (sorted)
  std::vector<ClsExample> train, validation, test;
  // Where things came from, for the run's log and report: the files read, "labels.json" or
  // "collected from the data (sorted)", and "validation.jsonl" / "carved from train (...)".
  std::vector<std::string> files;
  std::string labels_source, validation_source;
  int num_labels() const { return int(label_names.size()); }
};

// Loads a task directory. Texts longer than max_seq_len tokens keep their first max_seq_len tokens.
// max_train / max_eval cap the split sizes (0 = all; the first N lines, which are already shuffled).
// Malformed lines (bad JSON or CSV, missing fields, unknown label, empty text) are errors naming the
// file and line.
ClsTaskData load_cls_task(const std::string& dir, const Gpt2Tokenizer& tok, int max_seq_len, int64_t max_train,
                          int64_t max_eval, const ClsDataOptions& opt = {});

// Reads and checks a task directory like load_cls_task, without tokenizing: every split's
// examples are kept with empty ids. For checking every task before a model is loaded or a run
// folder created.
ClsTaskData check_cls_task(const std::string& dir, const ClsDataOptions& opt = {});

// The options of an experiment config's "data" object.
ClsDataOptions cls_data_options(const DataSettings& d);

// Checks every task of an experiment (check_cls_task on data_dir/<task>) before a model is loaded
// or a run folder created. A missing task folder lists the task folders data_dir holds. `who`
// prefixes the messages ("aria run").
void check_cls_tasks(const std::string& data_dir, const std::vector<std::string>& tasks, const ClsDataOptions& opt,
                     const std::string& who);

// Parses RFC 4180 CSV (comma-separated; quoted fields may hold commas, "" and newlines; CRLF or LF
// record ends; a UTF-8 BOM skipped). Returns the records with the line each one starts on;
// malformed quoting is an error naming `where`:line.
struct CsvRecord {
  int64_t line = 0;
  std::vector<std::string> fields;
};
std::vector<CsvRecord> parse_csv(const std::string& text, const std::string& where);

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
