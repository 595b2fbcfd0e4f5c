// The report's CSV tables (train/report/report_csv.h) and the charts drawn from more than one number per cell
// (train/report/report_charts.h) on a hand-made report: every CSV cell is report.json's number (null: empty),
// RFC 4180 quoting, metrics.jsonl's report points read back, and the SVGs: loss curves per task,
// BWT/forgetting bars with intervals (joint methods left out), ± sd bands and chance lines.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "aria/core/error.h"
#include "tests/support/test_util.h"
#include "aria/train/report/report.h"
#include "aria/train/report/report_csv.h"
#include "aria/train/report/report_html.h"

using namespace aria;
using ojson = nlohmann::ordered_json;

namespace {

using testing::col;
using testing::count_occurrences;
using testing::table;

// aria with two seeds, finetune with one, multitask (joint); a task name CSV must quote.
ojson report_json() {
  ClReport r;
  r.settings["device"] = "cpu";
  r.settings["version"] = "9.9.9";
  r.settings["git_hash"] = "abc1234";
  r.settings["command_line"] = "aria run --tasks x";
  r.settings["config"] = {{"train", {{"seed", 1234}}}};
  r.tasks = {"sentiment", "a,\"b\"", "wordnet_class"};
  MethodResult aria{"aria", {}}, fine{"finetune", {}}, multi{"multitask", {}};
  for (int s = 0; s < 2; ++s) {
    MethodRun run;
    run.seed = uint64_t(1234 + s);
    run.matrix = {{0.8125, 0.40, 0.25}, {0.75, 0.9375, 0.30}, {0.70 + 0.02 * s, 0.875, 0.6667}};
    run.before = {0.5, 0.45, 0.25};
    run.seconds = 12 + s;
    aria.runs.push_back(run);
  }
  MethodRun f;
  f.seed = 1234;
  f.matrix = {{0.80, 0.50, 0.25}, {0.55, 0.94, 0.26}, {0.51, 0.61, 0.70}};
  f.before = {0.5, 0.45, 0.25};
  fine.runs.push_back(f);
  MethodRun m;
  m.seed = 1234;
  m.joint = true;
  m.matrix = {{0.83, 0.95, 0.72}};
  m.before = {0.5, 0.45, 0.25};
  multi.runs.push_back(m);
  r.methods = {aria, fine, multi};
  r.num_labels = {2, 3, 4};
  return report_to_json(r);
}

// The cell of a JSON number as the CSV must hold it: parsed back, the same double.
void same(const std::string& cell, const ojson& v) {
  if (v.is_null()) {
    CHECK(cell.empty());
  } else {
    REQUIRE(!cell.empty());
    CHECK(std::stod(cell) == v.get<double>());
  }
}

std::vector<LossPoint> loss_points() {
  std::vector<LossPoint> v;
  for (const char* task : {"sentiment", "wordnet_class"})
    for (int k = 1; k <= 4; ++k) {
      LossPoint p;
      p.method = "aria";
      p.seed = 1234;
      p.task = task;
      p.step = (task[0] == 's' ? 0 : 4) + k;
      p.task_step = k;
      p.loss = 2.0 - 0.1 * k;
      p.ce = p.loss - 0.01;
      p.lr = 1e-3;
      v.push_back(p);
    }
  v[2].loss = std::numeric_limits<double>::quiet_NaN();  // a skipped step: an empty cell, a gap in the line
  return v;
}

}  // namespace

TEST_CASE("report tables: every CSV cell is report.json's number") {
  const ojson rep = report_json();
  const std::vector<CsvTable> ts = report_tables(rep, loss_points());
  REQUIRE(ts.size() == 8);
  const CsvTable& metrics = table(ts, "metrics");
  REQUIRE(metrics.rows.size() == 3);
  const char* names[3] = {"aria", "finetune", "multitask"};
  for (size_t i = 0; i < 3; ++i) {
    const ojson& m = rep["methods"][names[i]];
    CHECK(col(metrics, i, "method") == names[i]);
    auto field = [](const ojson& o, const char* k) { return o.is_object() && o.contains(k) ? o.at(k) : ojson(); };
    for (const char* k : {"acc", "bwt", "forgetting", "fwt"}) {
      same(col(metrics, i, k), field(m, k));
      same(col(metrics, i, std::string(k) + "_std"), field(field(m, "std"), k));
    }
    same(col(metrics, i, "acc_above_chance"), field(m, "acc_above_chance"));
  }
  CHECK(col(metrics, 2, "joint") == "true");
  CHECK(col(metrics, 2, "bwt").empty());  // undefined for joint training: null, an empty cell
  const ojson& ci = rep["methods"]["aria"]["ci95"]["acc"];
  REQUIRE(ci.is_array());
  same(col(metrics, 0, "acc_ci95_lo"), ci[0]);
  same(col(metrics, 0, "acc_ci95_hi"), ci[1]);

  const CsvTable& runs = table(ts, "runs");
  REQUIRE(runs.rows.size() == 4);  // aria x 2 seeds, finetune, multitask
  CHECK(col(runs, 1, "seed") == "1235");
  same(col(runs, 1, "acc"), rep["methods"]["aria"]["per_seed"][1]["acc"]);
  CHECK(col(runs, 2, "seed") == "1234");  // one seed: the config's train.seed

  // Long format: aria's mean and two seeds (3 x 4 rows x 3 tasks), finetune 12, multitask 2 x 3.
  const CsvTable& matrix = table(ts, "accuracy_matrix");
  REQUIRE(matrix.rows.size() == 36 + 12 + 6);
  CHECK(col(matrix, 0, "seed") == "mean");
  CHECK(col(matrix, 0, "stage") == "before training");
  CHECK(col(matrix, 3, "stage") == "after sentiment");
  same(col(matrix, 3 * 3 + 0, "accuracy"), rep["methods"]["aria"]["matrix"][2][0]);  // the mean: 0.71
  same(col(matrix, 12 + 3 * 3 + 0, "accuracy"), ojson(0.70));                        // seed 1234
  CHECK(col(matrix, 36 + 12 + 3, "stage") == "after joint training");

  const CsvTable& vs = table(ts, "vs_finetune");
  REQUIRE(!vs.rows.empty());
  CHECK(col(vs, 0, "method") == "aria");
  same(col(vs, 0, "diff"), rep["methods"]["aria"]["vs_finetune"][col(vs, 0, "metric")]["diff"]);

  const CsvTable& chance = table(ts, "chance");
  REQUIRE(chance.rows.size() == 3);
  same(col(chance, 2, "chance"), ojson(0.25));

  const CsvTable& loss = table(ts, "loss_curves");
  REQUIRE(loss.rows.size() == 8);
  CHECK(col(loss, 2, "loss").empty());
  CHECK(std::stod(col(loss, 3, "loss")) == loss_points()[3].loss);
  CHECK(col(loss, 4, "task") == "wordnet_class");

  // RFC 4180: the task name with a comma and quotes is quoted, its quotes doubled.
  const std::string text = csv_text(table(ts, "chance"));
  CHECK(text.rfind("task,chance\n", 0) == 0);
  CHECK(text.find("\"a,\"\"b\"\"\",") != std::string::npos);
}

TEST_CASE("report tables: written to a folder, one file per table") {
  const std::string dir = (std::filesystem::temp_directory_path() / ("aria_tables_" + std::to_string(getpid()))).string();
  const std::vector<std::string> paths = write_report_tables(report_json(), {}, dir + "/tables");
  CHECK(paths.size() == 8);
  for (const std::string& p : paths) CHECK(std::filesystem::is_regular_file(p));
  std::ifstream f(dir + "/tables/loss_curves.csv");
  std::string header, more;
  std::getline(f, header);
  CHECK(header.rfind("method,seed,task,step", 0) == 0);
  CHECK(!std::getline(f, more));  // no points: the header only
  std::filesystem::remove_all(dir);
  CHECK_THROWS_AS(report_tables(ojson::object(), {}), Error);
}

TEST_CASE("metrics.jsonl report points are read back, evaluations skipped") {
  const std::string path = (std::filesystem::temp_directory_path() / ("aria_m_" + std::to_string(getpid()) + ".jsonl")).string();
  {
    std::ofstream f(path);
    f << R"({"type":"step","method":"aria","seed":7,"task":"t","step":3,"task_step":3,"loss":1.5,"ce":1.25,"plasticity":0.1,"spc":0,"accuracy":0.5,"grad_norm":2,"lr":0.001})" "\n";
    f << R"({"type":"eval","method":"aria","seed":7,"after":"t","step":3,"accuracy":{"t":0.5}})" "\n";
    f << R"({"type":"step","method":"aria","seed":7,"task":"t","step":6,"task_step":6,"loss":null,"ce":1,"plasticity":0,"spc":0,"accuracy":0.5,"grad_norm":2,"lr":0.001})" "\n";
  }
  const std::vector<LossPoint> v = read_loss_curves(path);
  REQUIRE(v.size() == 2);
  CHECK(v[0].seed == 7);
  CHECK(v[0].step == 3);
  CHECK(v[0].loss == 1.5);
  CHECK(v[0].ce == 1.25);
  CHECK(std::isnan(v[1].loss));
  {
    std::ofstream f(path, std::ios::app);
    f << "{\"type\":\"step\",\"method\":\n";
  }
  CHECK_THROWS_WITH_AS(read_loss_curves(path), doctest::Contains("line 4"), Error);
  std::filesystem::remove(path);
  CHECK(read_loss_curves(path).empty());  // a folder from before metrics.jsonl: no curves
}

TEST_CASE("report charts: loss curves, BWT and forgetting bars, bands and chance lines") {
  const std::vector<LossPoint> pts = loss_points();
  const std::string loss = loss_curve_svg("aria", pts);
  CHECK(loss.rfind("<svg", 0) == 0);
  // sentiment is split by its NaN point into two lines, wordnet_class is one: one colour per task.
  CHECK(count_occurrences(loss, "<polyline") == 3);
  CHECK(count_occurrences(loss, "stroke=\"#4e79a7\"") == 2);
  CHECK(count_occurrences(loss, "stroke=\"#f28e2b\"") == 1);
  CHECK(count_occurrences(loss, "stroke-dasharray") == 1);  // one task boundary
  CHECK(loss_curve_svg("finetune", pts).empty());

  const ojson rep = report_json();
  const std::string bars = forgetting_bars_svg(rep["methods"]);
  CHECK(bars.find(">aria<") != std::string::npos);
  CHECK(bars.find(">finetune<") != std::string::npos);
  CHECK(bars.find(">multitask<") == std::string::npos);  // joint: no BWT, no forgetting
  CHECK(count_occurrences(bars, "<rect") == 2 * 2 + 2);                 // two bars per method, two legend keys
  CHECK(count_occurrences(bars, "class=\"err\"") == 2 * 3);             // aria's two intervals (finetune has one run)

  const std::vector<std::string> tasks = {"a", "b"}, xs = {"before", "a", "b"};
  const std::vector<std::vector<double>> p = {{0.5, 0.5}, {0.9, 0.4}, {0.7, 0.95}}, sd = {{0, 0}, {0.05, 0.1}, {0.1, 0}};
  const std::string lines = accuracy_lines_svg(tasks, xs, p, sd, {0.5, 0.5}, "x");
  CHECK(count_occurrences(lines, "class=\"band\"") == 2);
  CHECK(count_occurrences(lines, "class=\"chance\"") == 1);  // the same chance for both: one line
  CHECK(lines.find("chance 50.0 %") != std::string::npos);
  const std::string lines2 = accuracy_lines_svg(tasks, xs, p, {}, {0.5, 0.25}, "x");
  CHECK(count_occurrences(lines2, "class=\"band\"") == 0);
  CHECK(count_occurrences(lines2, "class=\"chance\"") == 2);

  CHECK(chance_per_task(rep) == std::vector<double>{0.5, 1.0 / 3, 0.25});
  CHECK(run_facts_line(rep["settings"]) == "aria 9.9.9 (git abc1234) · device cpu · command: aria run --tasks x");
  CHECK(run_facts_line(ojson::object()).empty());
}

TEST_CASE("report.html: the loss curves, forgetting bars, bands and chance lines on the page") {
  HtmlReportOptions opt;
  opt.loss = loss_points();
  const std::string html = report_html(report_json(), opt);
  CHECK(html.find("id=\"loss\"") != std::string::npos);
  CHECK(html.find("aria-label=\"aria: training loss per task\"") != std::string::npos);
  CHECK(html.find("id=\"forgetting\"") != std::string::npos);
  CHECK(count_occurrences(html, "class=\"band\"") == 3);        // aria ran two seeds: a band per task; finetune one seed
  CHECK(count_occurrences(html, "class=\"chance\"") == 1 + 3 * 3);  // ACC bars; three tasks' chance in each method's chart
  CHECK(html.find("aria 9.9.9 (git abc1234) · device cpu · command: aria run --tasks x") != std::string::npos);
  // ACC, forgetting, heat map + lines per method, aria's loss curve.
  CHECK(count_occurrences(html, "<svg") == 2 + 2 * 3 + 1);
}
