// Classification tasks in aria's JSONL format (docs/data.md) and their batches.
//
// Strictness: every line of a JSONL split must be a JSON object holding the text field (a string
// with at least one non-whitespace character) and the label field (an integer in [0, labels.json
// size) or a label name); other keys are ignored. Every CSV record has the header's field count.
// Anything else is an error naming file:line, so a broken converter or a hand-edited file cannot
// silently train on garbage. The whole file is checked even when max_train / max_eval keep only its
// head.
//
// ClsBatcher order: epoch e visits the examples in a permutation drawn (Fisher-Yates) from its own
// stream Rng(epoch_seed(base, e)), where base is the batcher's Rng state (seed, counter). The order
// of an epoch is therefore a pure function of (base, e): State = (base rng, epoch, cursor), and
// set_state() recomputes epoch e's permutation and continues at `cursor` within it, yielding exactly
// the batches the original would have yielded. Batches are full (min(batch_size, N) examples): a
// batch that reaches the end of an epoch continues with the next epoch's order.
#include "aria/train/data/cls_data.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "aria/core/error.h"
#include "aria/core/file_io.h"

namespace aria {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

bool blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); });
}

// Refuses anything but a regular file before opening it (a FIFO would block open() forever). A UTF-8
// byte order mark (Excel, Notepad) is dropped.
std::string read_file(const std::string& path) {
  std::string s = io::read_file(path, "task file");
  if (s.rfind("\xEF\xBB\xBF", 0) == 0) s.erase(0, 3);
  return s;
}

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

// One example as read, before its label is resolved and its text tokenized.
struct RawRow {
  std::string text;
  std::string label;      // the label as written (an integer's decimal digits, or a string)
  bool label_is_int = false;  // a JSON integer, or a CSV value of decimal digits
  bool label_from_json_string = false;
  std::string at;         // "file:line: "
};

bool is_decimal(const std::string& s) {
  size_t i = (!s.empty() && s[0] == '-') ? 1 : 0;
  if (i >= s.size() || s.size() > 18) return false;
  for (; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

std::vector<RawRow> read_jsonl(const std::string& path, const ClsDataOptions& o) {
  const std::string text = read_file(path);
  const std::string shape = "{\"" + o.text_field + "\": ..., \"" + o.label_field + "\": ...}";
  std::vector<RawRow> out;
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
    ARIA_CHECK(!blank(line), at, "empty line (every line must hold one ", shape, " object)");
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      ARIA_FAIL(at, "not valid JSON (", e.what(), ")");
    }
    ARIA_CHECK(j.is_object(), at, "must be a JSON object ", shape, ", got ", j.type_name());
    ARIA_CHECK(j.contains(o.text_field), at, "missing key \"", o.text_field, "\"",
               o.text_field == "text" ? " (another key holds the text? --text-field / data.text_field)" : "");
    ARIA_CHECK(j.contains(o.label_field), at, "missing key \"", o.label_field, "\"",
               o.label_field == "label" ? " (another key holds the label? --label-field / data.label_field)" : "");
    const json& t = j[o.text_field];
    const json& l = j[o.label_field];
    ARIA_CHECK(t.is_string(), at, "\"", o.text_field, "\" must be a string, got ", t.dump());
    RawRow r;
    r.at = at;
    r.text = t.get<std::string>();
    if (l.is_number_integer()) {
      // Integer labels are read as int64 later (label_index, the collected names): one beyond that
      // range is refused here (18446744073709551615 ended in an uncaught std::out_of_range, "internal
      // error"; tests/test_fuzz_regressions.cpp).
      ARIA_CHECK(!l.is_number_unsigned() || l.get<uint64_t>() <= uint64_t(INT64_MAX), at, "label ", l.dump(),
                 " is out of range (an integer label is an index into labels.json or a class number)");
      r.label = l.dump();
      r.label_is_int = true;
    } else {
      ARIA_CHECK(l.is_string(), at, "\"", o.label_field, "\" must be an integer or a string, got ", l.dump());
      r.label = l.get<std::string>();
      r.label_from_json_string = true;
      ARIA_CHECK(!blank(r.label), at, "\"", o.label_field, "\" is empty");
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<RawRow> read_csv(const std::string& path, const ClsDataOptions& o) {
  const std::vector<CsvRecord> recs = parse_csv(read_file(path), path);
  ARIA_CHECK(!recs.empty(), path, ": empty (a CSV split needs a header row naming the columns \"", o.text_field,
             "\" and \"", o.label_field, "\")");
  const std::vector<std::string>& head = recs[0].fields;
  auto column = [&](const std::string& name, const char* flag) {
    for (size_t i = 0; i < head.size(); ++i)
      if (head[i] == name) return i;
    std::string cols;
    for (size_t i = 0; i < head.size(); ++i) cols += (i ? ", " : "") + ("\"" + head[i] + "\"");
    ARIA_FAIL(path, ":1: the header row has no column \"", name, "\" (columns: ", cols, "; ", flag,
              " names another)");
  };
  const size_t tc = column(o.text_field, "--text-field / data.text_field");
  const size_t lc = column(o.label_field, "--label-field / data.label_field");
  std::vector<RawRow> out;
  for (size_t k = 1; k < recs.size(); ++k) {
    const CsvRecord& rec = recs[k];
    const std::string at = path + ":" + std::to_string(rec.line) + ": ";
    if (rec.fields.size() == 1 && blank(rec.fields[0])) ARIA_FAIL(at, "empty line");
    ARIA_CHECK(rec.fields.size() == head.size(), at, "has ", rec.fields.size(), " fields, the header row has ",
               head.size());
    RawRow r;
    r.at = at;
    r.text = rec.fields[tc];
    r.label = rec.fields[lc];
    ARIA_CHECK(!blank(r.label), at, "\"", o.label_field, "\" is empty");
    r.label_is_int = is_decimal(r.label);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<RawRow> read_split(const std::string& path, const ClsDataOptions& o) {
  std::vector<RawRow> rows = path.size() > 4 && path.compare(path.size() - 4, 4, ".csv") == 0 ? read_csv(path, o)
                                                                                               : read_jsonl(path, o);
  for (const RawRow& r : rows) ARIA_CHECK(!blank(r.text), r.at, "\"", o.text_field, "\" is empty");
  ARIA_CHECK(!rows.empty(), path, ": holds no examples");
  return rows;
}

// <split>.jsonl or <split>.csv ("" when neither exists); both is an error.
std::string split_file(const fs::path& dir, const std::string& split) {
  const fs::path j = dir / (split + ".jsonl"), c = dir / (split + ".csv");
  const bool hj = fs::exists(j), hc = fs::exists(c);
  ARIA_CHECK(!(hj && hc), "task directory '", dir.string(), "' holds both ", split, ".jsonl and ", split,
             ".csv: keep one");
  return hj ? j.string() : hc ? c.string() : "";
}

// Resolves a row's label to an index: a JSON integer indexes labels.json; anything else is looked up
// by name (a CSV value of digits that names no label indexes labels.json). Without labels.json and
// with integer labels only, the names are the integers' decimal forms.
int32_t label_index(const RawRow& r, const std::vector<std::string>& names, bool from_labels_json,
                    bool numeric_names, const std::string& where) {
  const int n = int(names.size());
  const bool json_int = r.label_is_int && !r.label_from_json_string;
  std::string key = r.label;
  if (numeric_names && r.label_is_int) key = std::to_string(std::stoll(r.label));
  if (!(json_int && from_labels_json))
    for (int i = 0; i < n; ++i)
      if (names[size_t(i)] == key) return i;
  if (r.label_is_int && from_labels_json) {
    const int64_t v = std::stoll(r.label);
    ARIA_CHECK(v >= 0 && v < n, r.at, "label ", r.label, " is outside [0, ", n, ") (labels.json has ", n,
               " labels)");
    return int32_t(v);
  }
  std::string all;
  for (int i = 0; i < n; ++i) all += (i ? ", " : "") + ("\"" + names[size_t(i)] + "\"");
  ARIA_FAIL(r.at, "label \"", r.label, "\" is not one of the labels of ", where, ": ", all);
}

ClsTaskData read_task(const std::string& dir, const ClsDataOptions& opt, const Gpt2Tokenizer* tok, int max_seq_len,
                      int64_t max_train, int64_t max_eval) {
  ARIA_CHECK(max_seq_len >= 1, "max_seq_len must be >= 1, got ", max_seq_len);
  ARIA_CHECK(max_train >= 0 && max_eval >= 0, "max_train / max_eval must be >= 0");
  ARIA_CHECK(!opt.text_field.empty() && !opt.label_field.empty(), "data.text_field / data.label_field must not be empty");
  ARIA_CHECK(opt.text_field != opt.label_field, "data.text_field and data.label_field are both \"", opt.text_field,
             "\"");
  ARIA_CHECK(opt.validation_fraction > 0 && opt.validation_fraction < 1,
             "data.validation_fraction must be in (0, 1), got ", opt.validation_fraction);
  ARIA_CHECK(fs::is_directory(dir), "task directory '", dir, "' does not exist (run tools/fetch_data.sh for the "
             "default tasks; docs/data.md describes the format)");
  ClsTaskData d;
  d.name = fs::path(dir).lexically_normal().filename().string();
  if (d.name.empty()) d.name = fs::path(dir).lexically_normal().parent_path().filename().string();
  const fs::path p(dir);
  const std::string train_f = split_file(p, "train"), val_f = split_file(p, "validation"),
                    test_f = split_file(p, "test");
  ARIA_CHECK(!train_f.empty(), "task file '", (p / "train.jsonl").string(), "' does not exist (nor train.csv)");
  ARIA_CHECK(!test_f.empty(), "task file '", (p / "test.jsonl").string(), "' does not exist (nor test.csv)");
  std::vector<RawRow> train = read_split(train_f, opt), test = read_split(test_f, opt), val;
  if (!val_f.empty()) val = read_split(val_f, opt);
  d.files = {train_f};
  if (!val_f.empty()) d.files.push_back(val_f);
  d.files.push_back(test_f);

  // Labels: labels.json, or every distinct label of the splits in sorted order (numeric when all are
  // integers).
  const std::string labels_path = (p / "labels.json").string();
  const bool has_labels = fs::exists(labels_path);
  bool all_int = false;
  if (has_labels) {
    d.label_names = load_labels(labels_path);
    d.labels_source = "labels.json";
    d.files.push_back(labels_path);
  } else {
    all_int = true;
    for (const auto* rows : {&train, &val, &test})
      for (const RawRow& r : *rows) all_int = all_int && r.label_is_int && !r.label_from_json_string;
    std::set<std::string> names;
    std::set<int64_t> ints;
    for (const auto* rows : {&train, &val, &test})
      for (const RawRow& r : *rows) all_int ? (void)ints.insert(std::stoll(r.label)) : (void)names.insert(r.label);
    if (all_int)
      for (int64_t v : ints) d.label_names.push_back(std::to_string(v));
    else
      d.label_names.assign(names.begin(), names.end());
    d.labels_source = all_int ? "collected from the data (no labels.json; integer labels in numeric order)"
                              : "collected from the data (no labels.json; label strings in sorted order)";
    ARIA_CHECK(d.label_names.size() >= 2, "task '", d.name, "': its splits hold ", d.label_names.size(),
               " distinct label(s); a classification task needs at least 2 (or a labels.json naming them)");
  }
  const std::string where = has_labels ? labels_path : std::string("the task's splits (no labels.json)");
  std::vector<int32_t> train_l, val_l, test_l;
  for (const RawRow& r : train) train_l.push_back(label_index(r, d.label_names, has_labels, all_int, where));
  for (const RawRow& r : val) val_l.push_back(label_index(r, d.label_names, has_labels, all_int, where));
  for (const RawRow& r : test) test_l.push_back(label_index(r, d.label_names, has_labels, all_int, where));

  // A missing validation split: a seeded random share of train (at least one example; train keeps at
  // least one). The rest of train keeps its order.
  std::vector<size_t> train_idx, val_idx;
  if (val_f.empty()) {
    const size_t n = train.size();
    ARIA_CHECK(n >= 2, "task '", d.name, "': no validation split, and ", train_f,
               " holds too few examples (", n, ") to carve one from");
    const size_t k = std::min(n - 1, std::max<size_t>(1, size_t(std::llround(opt.validation_fraction * double(n)))));
    std::vector<size_t> perm(n);
    for (size_t i = 0; i < n; ++i) perm[i] = i;
    Rng r(opt.split_seed);
    for (size_t i = n; i > 1; --i) std::swap(perm[i - 1], perm[size_t(r.below(i))]);
    std::vector<char> is_val(n, 0);
    for (size_t i = 0; i < k; ++i) is_val[perm[i]] = 1;
    for (size_t i = 0; i < n; ++i) (is_val[i] ? val_idx : train_idx).push_back(i);
    char frac[32];
    std::snprintf(frac, sizeof frac, "%g", opt.validation_fraction);
    d.validation_source = "carved from train: " + std::to_string(k) + " of " + std::to_string(n) +
                          " examples (data.validation_fraction " + frac + ", data.split_seed " +
                          std::to_string(opt.split_seed) + ")";
  } else {
    for (size_t i = 0; i < train.size(); ++i) train_idx.push_back(i);
    for (size_t i = 0; i < val.size(); ++i) val_idx.push_back(i);
    d.validation_source = fs::path(val_f).filename().string();
  }
  const std::vector<RawRow>& val_rows = val_f.empty() ? train : val;
  const std::vector<int32_t>& val_lab = val_f.empty() ? train_l : val_l;

  auto build = [&](const std::vector<RawRow>& rows, const std::vector<int32_t>& labels, const std::vector<size_t>& idx,
                   int64_t keep, std::vector<ClsExample>& out) {
    for (size_t i : idx) {
      if (keep > 0 && int64_t(out.size()) >= keep) break;
      ClsExample ex;
      ex.label = labels[i];
      if (tok) {
        ex.ids = tok->encode(rows[i].text);
        ARIA_CHECK(!ex.ids.empty(), rows[i].at, "the text gave no tokens");
        if (int64_t(ex.ids.size()) > max_seq_len) ex.ids.resize(size_t(max_seq_len));
      }
      out.push_back(std::move(ex));
    }
  };
  std::vector<size_t> test_idx(test.size());
  for (size_t i = 0; i < test.size(); ++i) test_idx[i] = i;
  build(train, train_l, train_idx, max_train, d.train);
  build(val_rows, val_lab, val_idx, max_eval, d.validation);
  build(test, test_l, test_idx, max_eval, d.test);
  return d;
}

// splitmix64 finaliser: decorrelates the per-epoch seeds.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

ClsTaskData load_cls_task(const std::string& dir, const Gpt2Tokenizer& tok, int max_seq_len, int64_t max_train,
                          int64_t max_eval, const ClsDataOptions& opt) {
  return read_task(dir, opt, &tok, max_seq_len, max_train, max_eval);
}

ClsTaskData check_cls_task(const std::string& dir, const ClsDataOptions& opt) {
  return read_task(dir, opt, nullptr, 1, 0, 0);
}

ClsDataOptions cls_data_options(const DataSettings& d) {
  ClsDataOptions o;
  o.text_field = d.text_field;
  o.label_field = d.label_field;
  o.validation_fraction = d.validation_fraction;
  o.split_seed = d.split_seed;
  return o;
}

void check_cls_tasks(const std::string& data_dir, const std::vector<std::string>& tasks, const ClsDataOptions& opt,
                     const std::string& who) {
  for (const std::string& t : tasks) {
    const fs::path dir = fs::path(data_dir) / t;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      std::vector<std::string> found;
      for (const auto& e : fs::directory_iterator(data_dir, ec))
        if (fs::is_regular_file(e.path() / "train.jsonl", ec) || fs::is_regular_file(e.path() / "train.csv", ec))
          found.push_back(e.path().filename().string());
      std::sort(found.begin(), found.end());
      std::string have;
      for (const auto& f : found) have += (have.empty() ? "" : ", ") + f;
      ARIA_FAIL(who, ": no task '", t, "' in ", data_dir, " (no folder ", dir.string(), "); tasks there: ",
                have.empty() ? "none" : have, " (docs/data.md describes the format)");
    }
    try {
      check_cls_task(dir.string(), opt);
    } catch (const Error& e) {
      ARIA_FAIL(who, ": task '", t, "': ", e.what());
    }
  }
}

std::vector<CsvRecord> parse_csv(const std::string& in, const std::string& where) {
  const std::string text = in.rfind("\xEF\xBB\xBF", 0) == 0 ? in.substr(3) : in;
  std::vector<CsvRecord> out;
  size_t i = 0;
  int64_t line = 1;
  const size_t n = text.size();
  while (i < n) {
    CsvRecord rec;
    rec.line = line;
    std::string field;
    bool done = false;
    while (!done) {
      field.clear();
      if (i < n && text[i] == '"') {
        const int64_t open_line = line;
        ++i;
        for (;;) {
          ARIA_CHECK(i < n, where, ":", open_line, ": a quoted field is never closed (a \" without its closing \")");
          const char c = text[i++];
          if (c == '"') {
            if (i < n && text[i] == '"') {
              field += '"';
              ++i;
              continue;
            }
            break;
          }
          if (c == '\n') ++line;
          field += c;
        }
        ARIA_CHECK(i >= n || text[i] == ',' || text[i] == '\n' || (text[i] == '\r' && i + 1 < n && text[i + 1] == '\n') ||
                       (text[i] == '\r' && i + 1 == n),
                   where, ":", line, ": unexpected character after a quoted field's closing quote (a quote inside a "
                   "quoted field is written \"\")");
      } else {
        while (i < n && text[i] != ',' && text[i] != '\n') {
          if (text[i] == '\r' && (i + 1 == n || text[i + 1] == '\n')) break;
          ARIA_CHECK(text[i] != '"', where, ":", line, ": a quote inside an unquoted field (quote the whole field: "
                     "\"a \"\"b\"\" c\")");
          field += text[i++];
        }
      }
      rec.fields.push_back(field);
      if (i < n && text[i] == ',') {
        ++i;
        continue;
      }
      if (i < n && text[i] == '\r') ++i;
      if (i < n && text[i] == '\n') {
        ++i;
        ++line;
      }
      done = true;
    }
    out.push_back(std::move(rec));
  }
  return out;
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
