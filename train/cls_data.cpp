// Classification tasks in aria's JSONL format (docs/data.md) and their batches.
//
// Strictness: every line of every split must be a JSON object holding exactly "text" (a string with
// at least one non-whitespace character) and "label" (an integer in [0, labels.json size)). Anything
// else is an error naming file:line, so a broken converter or a hand-edited file cannot silently
// train on garbage. The whole file is checked even when max_train / max_eval keep only its head.
//
// ClsBatcher order: epoch e visits the examples in a permutation drawn (Fisher-Yates) from its own
// stream Rng(epoch_seed(base, e)), where base is the batcher's Rng state (seed, counter). The order
// of an epoch is therefore a pure function of (base, e): State = (base rng, epoch, cursor), and
// set_state() recomputes epoch e's permutation and continues at `cursor` within it, yielding exactly
// the batches the original would have yielded. Batches are full (min(batch_size, N) examples): a
// batch that reaches the end of an epoch continues with the next epoch's order.
#include "train/cls_data.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"

namespace aria {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

bool blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); });
}

// Refuses anything but a regular file before opening it (a FIFO would block open() forever).
std::string read_file(const std::string& path) { return io::read_file(path, "task file"); }

std::vector<std::string> load_labels(const std::string& path) {
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {
    ARIA_FAIL(path, ": not valid JSON (", e.what(), ")");
  }
  ARIA_CHECK(j.is_array(), path, ": must be a JSON array of label names, got ", j.type_name());
  ARIA_CHECK(j.size() >= 2, path, ": a classification task needs at least 2 labels, got ", j.size());
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (size_t i = 0; i < j.size(); ++i) {
    ARIA_CHECK(j[i].is_string(), path, ": label ", i, " must be a string, got ", j[i].dump());
    std::string n = j[i].get<std::string>();
    ARIA_CHECK(!blank(n), path, ": label ", i, " is empty");
    ARIA_CHECK(seen.insert(n).second, path, ": label \"", n, "\" appears twice");
    names.push_back(std::move(n));
  }
  return names;
}

// Parses and checks every line; tokenizes the first `keep` examples (0 = all).
std::vector<ClsExample> load_split(const std::string& path, int num_labels, const Gpt2Tokenizer& tok,
                                   int max_seq_len, int64_t keep) {
  const std::string text = read_file(path);
  std::vector<ClsExample> out;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string at = path + ":" + std::to_string(line_no) + ": ";
    ARIA_CHECK(!blank(line), at, "empty line (every line must hold one {\"text\": ..., \"label\": ...} object)");
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      ARIA_FAIL(at, "not valid JSON (", e.what(), ")");
    }
    ARIA_CHECK(j.is_object(), at, "must be a JSON object {\"text\": ..., \"label\": ...}, got ", j.type_name());
    ARIA_CHECK(j.contains("text"), at, "missing key \"text\"");
    ARIA_CHECK(j.contains("label"), at, "missing key \"label\"");
    for (auto it = j.begin(); it != j.end(); ++it)
      ARIA_CHECK(it.key() == "text" || it.key() == "label", at, "unexpected key \"", it.key(),
                 "\" (a line holds exactly \"text\" and \"label\")");
    const json& t = j["text"];
    const json& l = j["label"];
    ARIA_CHECK(t.is_string(), at, "\"text\" must be a string, got ", t.dump());
    ARIA_CHECK(l.is_number_integer(), at, "\"label\" must be an integer, got ", l.dump());
    const bool neg = !l.is_number_unsigned() && l.get<int64_t>() < 0;
    ARIA_CHECK(!neg && l.get<uint64_t>() < uint64_t(num_labels), at, "label ", l.dump(), " is outside [0, ",
               num_labels, ") (labels.json has ", num_labels, " labels)");
    const std::string& s = t.get_ref<const std::string&>();
    ARIA_CHECK(!blank(s), at, "\"text\" is empty");
    if (keep > 0 && int64_t(out.size()) >= keep) continue;  // checked, not kept
    ClsExample ex;
    ex.ids = tok.encode(s);
    ARIA_CHECK(!ex.ids.empty(), at, "the text gave no tokens");
    if (int64_t(ex.ids.size()) > max_seq_len) ex.ids.resize(size_t(max_seq_len));
    ex.label = int32_t(l.get<uint64_t>());
    out.push_back(std::move(ex));
  }
  ARIA_CHECK(!out.empty(), path, ": holds no examples");
  return out;
}

// splitmix64 finaliser: decorrelates the per-epoch seeds.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

ClsTaskData load_cls_task(const std::string& dir, const Gpt2Tokenizer& tok, int max_seq_len, int64_t max_train,
                          int64_t max_eval) {
  ARIA_CHECK(max_seq_len >= 1, "max_seq_len must be >= 1, got ", max_seq_len);
  ARIA_CHECK(max_train >= 0 && max_eval >= 0, "max_train / max_eval must be >= 0");
  ARIA_CHECK(fs::is_directory(dir), "task directory '", dir, "' does not exist (run tools/fetch_data.sh for the "
             "default tasks; docs/data.md describes the format)");
  ClsTaskData d;
  d.name = fs::path(dir).lexically_normal().filename().string();
  if (d.name.empty()) d.name = fs::path(dir).lexically_normal().parent_path().filename().string();
  const fs::path p(dir);
  d.label_names = load_labels((p / "labels.json").string());
  const int n = d.num_labels();
  d.train = load_split((p / "train.jsonl").string(), n, tok, max_seq_len, max_train);
  d.validation = load_split((p / "validation.jsonl").string(), n, tok, max_seq_len, max_eval);
  d.test = load_split((p / "test.jsonl").string(), n, tok, max_seq_len, max_eval);
  return d;
}

ClsBatch make_cls_batch(const std::vector<const ClsExample*>& examples, Device device, int32_t pad_id) {
  ARIA_CHECK(!examples.empty(), "make_cls_batch: no examples");
  const int64_t B = int64_t(examples.size());
  int64_t T = 0;
  for (const ClsExample* e : examples) {
    ARIA_CHECK(e && !e->ids.empty(), "make_cls_batch: an example has no tokens");
    T = std::max<int64_t>(T, int64_t(e->ids.size()));
  }
  std::vector<int32_t> ids(static_cast<size_t>(B * T), pad_id);
  std::vector<int32_t> last(static_cast<size_t>(B)), labels(static_cast<size_t>(B));
  std::vector<float> mask(size_t(B * T), 0.0f);
  ClsBatch b;
  for (int64_t i = 0; i < B; ++i) {
    const ClsExample& e = *examples[size_t(i)];
    const int64_t len = int64_t(e.ids.size());
    std::copy(e.ids.begin(), e.ids.end(), ids.begin() + i * T);
    std::fill(mask.begin() + i * T, mask.begin() + i * T + len, 1.0f);
    last[size_t(i)] = int32_t(i * T + len - 1);
    labels[size_t(i)] = e.label;
    b.real_tokens += len;
  }
  b.ids = Tensor::from_ints(ids, {B, T}, device);
  b.last_index = Tensor::from_ints(last, {B}, device);
  b.mask = Tensor::from_floats(mask, {B, T, 1}, device);
  b.labels = Tensor::from_ints(labels, {B}, device);
  b.host_labels = std::move(labels);
  return b;
}

ClsBatcher::ClsBatcher(const std::vector<ClsExample>* data, int batch_size, uint64_t seed)
    : data_(data), batch_size_(batch_size), rng_(seed) {
  ARIA_CHECK(data_ && !data_->empty(), "ClsBatcher: no training examples");
  ARIA_CHECK(batch_size_ >= 1, "ClsBatcher: batch_size must be >= 1, got ", batch_size_);
  reshuffle();
}

void ClsBatcher::reshuffle() {
  const RngState base = rng_.state();
  Rng r(mix64(base.seed ^ mix64(base.counter + 0x632BE59BD9B4E019ull)) + uint64_t(epoch_) * 0x9E3779B97F4A7C15ull);
  order_.resize(data_->size());
  for (size_t i = 0; i < order_.size(); ++i) order_[i] = i;
  for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[size_t(r.below(i))]);
}

ClsBatch ClsBatcher::next(Device device, int32_t pad_id) {
  const size_t n = std::min(size_t(batch_size_), data_->size());
  std::vector<const ClsExample*> picked;
  picked.reserve(n);
  while (picked.size() < n) {
    if (cursor_ >= int64_t(order_.size())) {
      ++epoch_;
      cursor_ = 0;
      reshuffle();
    }
    picked.push_back(&(*data_)[order_[size_t(cursor_++)]]);
  }
  return make_cls_batch(picked, device, pad_id);
}

ClsBatcher::State ClsBatcher::state() const { return State{rng_.state(), epoch_, cursor_}; }

void ClsBatcher::set_state(const State& s) {
  ARIA_CHECK(s.epoch >= 0 && s.cursor >= 0 && s.cursor <= int64_t(data_->size()), "ClsBatcher: invalid state (epoch ",
             s.epoch, ", cursor ", s.cursor, ") for ", data_->size(), " examples");
  rng_.set_state(s.rng);
  epoch_ = s.epoch;
  cursor_ = s.cursor;
  reshuffle();
}

std::vector<ClsBatch> fixed_batches(const std::vector<ClsExample>& data, int batch_size, Device device,
                                    int64_t max_batches, int32_t pad_id) {
  ARIA_CHECK(batch_size >= 1, "fixed_batches: batch_size must be >= 1, got ", batch_size);
  std::vector<ClsBatch> out;
  for (size_t start = 0; start < data.size(); start += size_t(batch_size)) {
    if (max_batches > 0 && int64_t(out.size()) >= max_batches) break;
    std::vector<const ClsExample*> picked;
    for (size_t i = start; i < std::min(data.size(), start + size_t(batch_size)); ++i) picked.push_back(&data[i]);
    out.push_back(make_cls_batch(picked, device, pad_id));
  }
  return out;
}

int32_t pad_id_for(int vocab_size) { return vocab_size > kGpt2PadId ? kGpt2PadId : 0; }

int32_t max_token_id(const ClsTaskData& d) {
  int32_t m = -1;
  for (const auto* split : {&d.train, &d.validation, &d.test})
    for (const ClsExample& e : *split)
      for (int32_t id : e.ids) m = std::max(m, id);
  return m;
}

std::string train_class_warning(const ClsTaskData& d) {
  std::vector<int64_t> count(size_t(d.num_labels()), 0);
  for (const ClsExample& e : d.train)
    if (e.label >= 0 && e.label < d.num_labels()) ++count[size_t(e.label)];
  std::vector<std::string> present, missing;
  for (size_t c = 0; c < count.size(); ++c)
    (count[c] ? present : missing).push_back("'" + d.label_names[c] + "'");
  if (missing.empty()) return "";
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
    return s;
  };
  const std::string n = std::to_string(d.train.size());
  if (present.size() == 1)
    return "task '" + d.name + "': its training split (" + n + " examples used) holds only class " + present[0] +
           ": the task cannot be learned from it (the head learns one answer)";
  return "task '" + d.name + "': its training split (" + n + " examples used) has no example of class" +
         (missing.size() > 1 ? "es " : " ") + join(missing);
}

}  // namespace aria
