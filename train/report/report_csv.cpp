#include "aria/train/report/report_csv.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/train/report/report_format.h"

namespace aria {

namespace {

using ojson = nlohmann::ordered_json;

const char* kMetrics[4] = {"acc", "bwt", "forgetting", "fwt"};

// A number as report.json prints it (nlohmann's shortest round-trip form), so that the CSV cell and
// the JSON field parse to the same double; null, a missing key and non-numbers give an empty cell.
std::string cell(const ojson& v) {
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_string()) return v.get<std::string>();
  if (!v.is_number()) return "";
  if (v.is_number_float() && !std::isfinite(v.get<double>())) return "";
  return v.dump();
}
std::string cell(double v) { return std::isfinite(v) ? ojson(v).dump() : ""; }

const ojson& at_or_null(const ojson& j, const std::string& key) {
  static const ojson null_value;
  return j.is_object() && j.contains(key) ? j.at(key) : null_value;
}

// The i-th end of a [lo, hi] interval, or null.
const ojson& interval_end(const ojson& iv, size_t i) {
  static const ojson null_value;
  return iv.is_array() && iv.size() == 2 ? iv[i] : null_value;
}

bool is_known(const std::string& k, const std::vector<std::string>& known) {
  return std::find(known.begin(), known.end(), k) != known.end();
}

// The numeric scalar fields of the objects in `objs` that are not in `known`, sorted: new metrics
// (another engineer's head_transfer, ...) reach the CSV without a change here.
std::vector<std::string> extra_numeric_keys(const std::vector<const ojson*>& objs, const std::vector<std::string>& known) {
  std::set<std::string> keys;
  for (const ojson* o : objs)
    for (auto it = o->begin(); it != o->end(); ++it)
      if (it.value().is_number() && !is_known(it.key(), known)) keys.insert(it.key());
  return {keys.begin(), keys.end()};
}

using report_format::runs_of;

CsvTable metrics_table(const ojson& methods) {
  CsvTable t{"metrics", {"method", "joint", "runs"}, {}};
  for (const char* k : kMetrics)
    for (const std::string& suffix : {"", "_std", "_ci95_lo", "_ci95_hi"}) t.header.push_back(k + suffix);
  t.header.push_back("acc_above_chance");
  t.header.push_back("seconds");
  std::vector<const ojson*> objs;
  for (const ojson& m : methods) objs.push_back(&m);
  const std::vector<std::string> known = {"joint", "num_seeds", "acc", "bwt", "forgetting", "fwt", "acc_above_chance",
                                          "seconds"};
  const std::vector<std::string> extra = extra_numeric_keys(objs, known);
  t.header.insert(t.header.end(), extra.begin(), extra.end());
  for (auto it = methods.begin(); it != methods.end(); ++it) {
    const ojson& m = it.value();
    std::vector<std::string> r = {it.key(), cell(ojson(m.value("joint", false))),
                                  cell(m.contains("num_seeds") ? m.at("num_seeds") : ojson(1))};
    for (const char* k : kMetrics) {
      const ojson& ci = at_or_null(at_or_null(m, "ci95"), k);
      r.push_back(cell(at_or_null(m, k)));
      r.push_back(cell(at_or_null(at_or_null(m, "std"), k)));
      r.push_back(cell(interval_end(ci, 0)));
      r.push_back(cell(interval_end(ci, 1)));
    }
    r.push_back(cell(at_or_null(m, "acc_above_chance")));
    r.push_back(cell(at_or_null(m, "seconds")));
    for (const std::string& k : extra) r.push_back(cell(at_or_null(m, k)));
    t.rows.push_back(r);
  }
  return t;
}

CsvTable runs_table(const ojson& methods, const ojson& default_seed) {
  CsvTable t{"runs", {"method", "seed", "order_index", "acc", "bwt", "forgetting", "fwt", "seconds"}, {}};
  std::vector<const ojson*> objs;
  for (const ojson& m : methods)
    for (const ojson* r : runs_of(m)) objs.push_back(r);
  const std::vector<std::string> known = {"seed", "order_index", "acc", "bwt", "forgetting", "fwt", "seconds",
                                          "joint", "num_seeds", "acc_above_chance"};
  const std::vector<std::string> extra = extra_numeric_keys(objs, known);
  t.header.insert(t.header.end(), extra.begin(), extra.end());
  for (auto it = methods.begin(); it != methods.end(); ++it)
    for (const ojson* run : runs_of(it.value())) {
      std::vector<std::string> r = {it.key(), cell(run->contains("seed") ? run->at("seed") : default_seed),
                                    cell(run->value("order_index", ojson(0)))};
      for (const char* k : {"acc", "bwt", "forgetting", "fwt", "seconds"}) r.push_back(cell(at_or_null(*run, k)));
      for (const std::string& k : extra) r.push_back(cell(at_or_null(*run, k)));
      t.rows.push_back(r);
    }
  return t;
}

// Rows of one matrix ("before" first) in long format.
void add_matrix_rows(CsvTable& t, const std::string& method, const std::string& seed, const ojson& order_index,
                     const std::vector<std::string>& order, bool joint, const ojson& run) {
  std::vector<const ojson*> rows = {&run.at("before")};
  for (const ojson& row : run.at("matrix")) rows.push_back(&row);
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string stage = i == 0 ? "before training" : joint ? "after joint training" : "after " + order.at(i - 1);
    ARIA_CHECK(rows[i]->is_array() && rows[i]->size() == order.size(), "tables: methods.", method,
               ": a matrix row does not have one accuracy per task");
    for (size_t j = 0; j < order.size(); ++j)
      t.rows.push_back({method, seed, cell(order_index), std::to_string(i), stage, order[j], cell((*rows[i])[j])});
  }
}

CsvTable matrix_table(const ojson& methods, const std::vector<std::string>& tasks, const ojson& default_seed) {
  CsvTable t{"accuracy_matrix", {"method", "seed", "order_index", "row", "stage", "task", "accuracy"}, {}};
  for (auto it = methods.begin(); it != methods.end(); ++it) {
    const ojson& m = it.value();
    const bool joint = m.value("joint", false);
    const bool several = m.contains("per_seed") && m.at("per_seed").is_array() && !m.at("per_seed").empty();
    if (several) add_matrix_rows(t, it.key(), "mean", ojson(0), tasks, joint, m);  // the mean over seeds
    for (const ojson* run : runs_of(m)) {
      std::vector<std::string> order = tasks;  // a run in another task order names its columns
      if (run->contains("order") && run->at("order").is_array() && run->at("order").size() == tasks.size())
        order = run->at("order").get<std::vector<std::string>>();
      add_matrix_rows(t, it.key(), cell(run->contains("seed") ? run->at("seed") : default_seed),
                      run->value("order_index", ojson(0)), order, joint, *run);
    }
  }
  return t;
}

CsvTable vs_finetune_table(const ojson& methods) {
  CsvTable t{"vs_finetune", {"method", "metric", "pairs", "diff", "ci95_lo", "ci95_hi", "wins", "ties", "losses"}, {}};
  for (auto it = methods.begin(); it != methods.end(); ++it) {
    const ojson& v = at_or_null(it.value(), "vs_finetune");
    if (!v.is_object()) continue;
    for (auto c = v.begin(); c != v.end(); ++c) {
      if (!c.value().is_object()) continue;  // "pairs" and other scalars
      const ojson& x = c.value();
      t.rows.push_back({it.key(), c.key(), cell(at_or_null(v, "pairs")), cell(at_or_null(x, "diff")),
                        cell(interval_end(at_or_null(x, "ci95"), 0)), cell(interval_end(at_or_null(x, "ci95"), 1)),
                        cell(at_or_null(x, "wins")), cell(at_or_null(x, "ties")), cell(at_or_null(x, "losses"))});
    }
  }
  return t;
}

// Each task order's mean metrics ("per_order": only methods that ran in several orders).
CsvTable per_order_table(const ojson& methods) {
  CsvTable t{"per_order", {"method", "order_index", "order", "runs", "acc", "bwt", "forgetting", "fwt"}, {}};
  for (auto it = methods.begin(); it != methods.end(); ++it) {
    const ojson& per = at_or_null(it.value(), "per_order");
    if (!per.is_array()) continue;
    for (const ojson& o : per) {
      std::string order;
      if (at_or_null(o, "order").is_array())
        for (const ojson& name : o.at("order")) order += (order.empty() ? "" : " > ") + cell(name);
      std::vector<std::string> r = {it.key(), cell(at_or_null(o, "order_index")), order, cell(at_or_null(o, "runs"))};
      for (const char* k : kMetrics) r.push_back(cell(at_or_null(o, k)));
      t.rows.push_back(r);
    }
  }
  return t;
}

// The head-only probe per run and position j > 0 (position 0 has no earlier task): the accuracy of
// a head trained alone on the initial trunk and on the trunk after tasks < j, and their difference.
CsvTable head_transfer_table(const ojson& methods, const std::vector<std::string>& tasks, const ojson& default_seed) {
  CsvTable t{"head_transfer",
             {"method", "seed", "order_index", "position", "task", "initial_trunk", "current_trunk", "transfer"},
             {}};
  for (auto it = methods.begin(); it != methods.end(); ++it)
    for (const ojson* run : runs_of(it.value())) {
      const ojson& h = at_or_null(*run, "head_only");
      const ojson &a = at_or_null(h, "initial_trunk"), &b = at_or_null(h, "current_trunk");
      if (!a.is_array() || !b.is_array()) continue;
      ARIA_CHECK(a.size() == b.size() && a.size() == tasks.size(), "tables: methods.", it.key(),
                 ": head_only needs one accuracy per task on each trunk");
      std::vector<std::string> order = tasks;
      if (run->contains("order") && run->at("order").is_array() && run->at("order").size() == tasks.size())
        order = run->at("order").get<std::vector<std::string>>();
      for (size_t j = 1; j < a.size(); ++j) {
        const bool both = a[j].is_number() && b[j].is_number();
        t.rows.push_back({it.key(), cell(run->contains("seed") ? run->at("seed") : default_seed),
                          cell(run->value("order_index", ojson(0))), std::to_string(j), order[j], cell(a[j]),
                          cell(b[j]), both ? cell(b[j].get<double>() - a[j].get<double>()) : ""});
      }
    }
  return t;
}

CsvTable chance_table(const ojson& report, const std::vector<std::string>& tasks) {
  CsvTable t{"chance", {"task", "chance"}, {}};
  const std::vector<double> c = chance_per_task(report);
  for (size_t j = 0; j < c.size() && j < tasks.size(); ++j) t.rows.push_back({tasks[j], cell(c[j])});
  return t;
}

CsvTable loss_table(const std::vector<LossPoint>& loss) {
  CsvTable t{"loss_curves",
             {"method", "seed", "task", "step", "task_step", "loss", "ce", "plasticity", "spc", "accuracy", "lr",
              "grad_norm"},
             {}};
  for (const LossPoint& p : loss)
    t.rows.push_back({p.method, std::to_string(p.seed), p.task, std::to_string(p.step), std::to_string(p.task_step),
                      cell(p.loss), cell(p.ce), cell(p.plasticity), cell(p.spc), cell(p.accuracy), cell(p.lr),
                      cell(p.grad_norm)});
  return t;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

}  // namespace

std::vector<CsvTable> report_tables(const ojson& report, const std::vector<LossPoint>& loss) {
  ARIA_CHECK(report.is_object() && report.contains("tasks") && report.contains("methods") &&
                 report.at("methods").is_object(),
             "tables: the report needs 'tasks' and 'methods'");
  const std::vector<std::string> tasks = report.at("tasks").get<std::vector<std::string>>();
  const ojson& methods = report.at("methods");
  // A one-seed report has no per-run seed: the config's train.seed is that run's.
  const ojson default_seed =
      at_or_null(at_or_null(at_or_null(at_or_null(report, "settings"), "config"), "train"), "seed");
  return {metrics_table(methods), runs_table(methods, default_seed), matrix_table(methods, tasks, default_seed),
          vs_finetune_table(methods), chance_table(report, tasks), loss_table(loss), per_order_table(methods),
          head_transfer_table(methods, tasks, default_seed)};
}

std::string csv_text(const CsvTable& t) {
  std::string s;
  auto row = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size(); ++i) s += (i ? "," : "") + csv_field(r[i]);
    s += "\n";
  };
  row(t.header);
  for (const auto& r : t.rows) row(r);
  return s;
}

std::vector<std::string> write_report_tables(const ojson& report, const std::vector<LossPoint>& loss,
                                             const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  ARIA_CHECK(!ec, "cannot create the tables folder '", dir, "': ", ec.message());
  std::vector<std::string> paths;
  for (const CsvTable& t : report_tables(report, loss)) {
    paths.push_back((std::filesystem::path(dir) / (t.name + ".csv")).string());
    io::write_file_atomic(paths.back(), csv_text(t));
  }
  return paths;
}

}  // namespace aria
