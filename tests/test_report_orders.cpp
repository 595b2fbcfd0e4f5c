// report.html's task-order and head-only transfer tables (train/report/report_sections.h) and their CSV
// files (per_order.csv, head_transfer.csv; train/report/report_csv.h), on a hand-made report: aria and
// finetune in two task orders x two seeds with the head-only probe, multitask (joint) with neither.
// The page shows every order's metrics next to the pooled ones and the transfer per method and task;
// each CSV cell is report.json's number; a report whose numbers cannot be accuracies is refused.
#include <doctest/doctest.h>

#include <cmath>

#include "aria/core/error.h"
#include "tests/support/test_util.h"
#include "aria/train/report/report.h"
#include "aria/train/report/report_csv.h"
#include "aria/train/report/report_html.h"
#include "aria/train/report/report_sections.h"

using namespace aria;
using ojson = nlohmann::ordered_json;

namespace {

using testing::col;
using testing::count_occurrences;
using testing::table;

// Three tasks; order 1 trains them reversed. Head-only accuracies: order 0 runs gain 0.10 and 0.20 at
// positions 1 and 2 (aria) or lose 0.05 at both (finetune); order 1 runs gain 0.30 at both.
ojson two_order_report(bool probe = true) {
  ClReport r;
  r.settings["config"] = {{"train", {{"seed", 1234}, {"head_probe_steps", 10}}}};
  r.tasks = {"sentiment", "spam", "a<b"};
  r.num_labels = {2, 2, 4};
  MethodResult aria{"aria", {}}, fine{"finetune", {}}, multi{"multitask", {}};
  for (int o = 0; o < 2; ++o)
    for (int s = 0; s < 2; ++s) {
      MethodRun run;
      run.seed = uint64_t(1234 + s);
      run.order_index = o;
      if (o) run.order = {2, 1, 0};
      run.matrix = {{0.80, 0.50, 0.25}, {0.70, 0.90, 0.30}, {0.60 + 0.1 * o, 0.80, 0.70 + 0.02 * s}};
      run.before = {0.5, 0.5, 0.25};
      if (probe) {
        run.head_initial = {std::nan(""), 0.50, 0.40};
        run.head_trained = o ? std::vector<double>{std::nan(""), 0.80, 0.70} : std::vector<double>{std::nan(""), 0.60, 0.60};
      }
      aria.runs.push_back(run);
      if (probe) run.head_trained = o ? run.head_trained : std::vector<double>{std::nan(""), 0.45, 0.35};
      run.matrix[2][0] -= 0.2;
      fine.runs.push_back(run);
    }
  MethodRun m;
  m.seed = 1234;
  m.joint = true;
  m.matrix = {{0.83, 0.95, 0.72}};
  m.before = {0.5, 0.5, 0.25};
  multi.runs.push_back(m);
  r.methods = {aria, fine, multi};
  return report_to_json(r);
}

}  // namespace

TEST_CASE("report.html: each task order's metrics next to the pooled ones") {
  const ojson rep = two_order_report();
  const std::string html = report_html(rep, {});
  REQUIRE(count_occurrences(html, "id=\"orders\"") == 1);
  CHECK(html.find("href=\"#orders\"") != std::string::npos);
  const std::string sec = html.substr(html.find("id=\"orders\""), html.find("id=\"head-transfer\"") - html.find("id=\"orders\""));
  // aria and finetune: two orders and a pooled row each; multitask (joint, no order) has none.
  CHECK(count_occurrences(sec, "<tr><td>aria</td>") == 2);
  CHECK(count_occurrences(sec, "<tr class=\"pooled\"><td>aria</td>") == 1);
  CHECK(count_occurrences(sec, "<tr class=\"pooled\"><td>finetune</td>") == 1);
  CHECK(sec.find("multitask") == std::string::npos);
  // Order 1 reversed, names escaped: a<b → spam → sentiment.
  CHECK(sec.find("<td>a&lt;b → spam → sentiment</td>") != std::string::npos);
  CHECK(sec.find("<td>sentiment → spam → a&lt;b</td>") != std::string::npos);
  // aria's ACC: order 0 (0.60 + 0.80 + 0.71) / 3 = 70.3, order 1 (0.70 + 0.80 + 0.71) / 3 = 73.7, pooled 72.0.
  const double o0 = rep["methods"]["aria"]["per_order"][0]["acc"].get<double>();
  const double o1 = rep["methods"]["aria"]["per_order"][1]["acc"].get<double>();
  CHECK(o0 == doctest::Approx(2.11 / 3));
  CHECK(o1 == doctest::Approx(2.21 / 3));
  CHECK(sec.find("<td>2</td><td>70.3</td>") != std::string::npos);
  CHECK(sec.find("<td>2</td><td>73.7</td>") != std::string::npos);
  CHECK(sec.find("<td>pooled</td><td>all orders</td><td>4</td><td>72.0</td>") != std::string::npos);
  CHECK(count_occurrences(html, "<table") == count_occurrences(html, "</table>"));
}

TEST_CASE("report.html: the head-only transfer per method and task") {
  const std::string html = report_html(two_order_report(), {});
  REQUIRE(count_occurrences(html, "id=\"head-transfer\"") == 1);
  CHECK(html.find("href=\"#head-transfer\"") != std::string::npos);
  const std::string sec = html.substr(html.find("id=\"head-transfer\""));
  CHECK(sec.find("for 10 steps") != std::string::npos);
  CHECK(sec.find("<th>spam</th><th>a&lt;b</th>") != std::string::npos);
  // aria: transfer over all 4 runs = (0.15 + 0.15 + 0.30 + 0.30) / 4 = +22.5; per task the listed order's runs.
  CHECK(sec.find("<tr><td>aria</td><td>+22.5</td>") != std::string::npos);
  CHECK(sec.find(">50.0 → 60.0 (+10.0)</td>") != std::string::npos);
  CHECK(sec.find(">40.0 → 60.0 (+20.0)</td>") != std::string::npos);
  // finetune: (-0.05 * 2 + 0.30 * 2) / 4 = +12.5; per task -5.0 in the listed order.
  CHECK(sec.find("<tr><td>finetune</td><td>+12.5</td>") != std::string::npos);
  CHECK(sec.find(">50.0 → 45.0 (-5.0)</td>") != std::string::npos);
  CHECK(sec.find("<td>multitask</td>") == std::string::npos);  // joint: not measured
}

TEST_CASE("report.html: no order or transfer table when there is nothing to show") {
  ojson rep = two_order_report(false);
  for (auto& m : rep["methods"]) m.erase("per_order");
  const std::string html = report_html(rep, {});
  CHECK(html.find("id=\"orders\"") == std::string::npos);
  CHECK(html.find("id=\"head-transfer\"") == std::string::npos);
  CHECK(html.find("href=\"#orders\"") == std::string::npos);
  CHECK(per_order_section_html(rep["methods"]).empty());
  CHECK(head_transfer_section_html(rep).empty());
}

TEST_CASE("report.html: a per-order or head-only value that is no accuracy is refused") {
  ojson rep = two_order_report();
  rep["methods"]["aria"]["per_order"][1]["acc"] = 1.5;
  CHECK_THROWS_WITH_AS(report_html(rep, {}), doctest::Contains("per_order[1].acc"), Error);
  rep = two_order_report();
  rep["methods"]["aria"]["per_order"][0]["order"] = "sentiment";
  CHECK_THROWS_WITH_AS(report_html(rep, {}), doctest::Contains("per_order[0].order"), Error);
  rep = two_order_report();
  rep["methods"]["finetune"]["per_seed"][2]["head_only"]["current_trunk"][1] = -0.1;
  CHECK_THROWS_WITH_AS(report_html(rep, {}), doctest::Contains("per_seed[2].head_only.current_trunk[1]"), Error);
  rep = two_order_report();
  rep["methods"]["aria"]["per_seed"][0]["head_only"]["initial_trunk"] = ojson::array({nullptr, 0.5});
  CHECK_THROWS_WITH_AS(report_html(rep, {}), doctest::Contains("head_only needs arrays"), Error);
  rep = two_order_report();
  rep["methods"]["aria"]["head_transfer"] = "high";
  CHECK_THROWS_WITH_AS(report_html(rep, {}), doctest::Contains("aria.head_transfer"), Error);
}

TEST_CASE("report tables: per_order.csv and head_transfer.csv hold report.json's numbers") {
  const ojson rep = two_order_report();
  const std::vector<CsvTable> ts = report_tables(rep, {});
  const CsvTable& po = table(ts, "per_order");
  REQUIRE(po.rows.size() == 4);  // aria and finetune, two orders each
  CHECK(col(po, 0, "method") == "aria");
  CHECK(col(po, 1, "order") == "a<b > spam > sentiment");
  CHECK(col(po, 1, "runs") == "2");
  for (size_t i = 0; i < 4; ++i) {
    const ojson& o = rep["methods"][col(po, i, "method")]["per_order"][std::stoi(col(po, i, "order_index"))];
    for (const char* k : {"acc", "bwt", "forgetting", "fwt"})
      CHECK_MESSAGE(std::stod(col(po, i, k)) == o[k].get<double>(), k);
  }

  const CsvTable& ht = table(ts, "head_transfer");
  REQUIRE(ht.rows.size() == 2 * 4 * 2);  // two methods x four runs x positions 1 and 2
  CHECK(col(ht, 0, "position") == "1");
  CHECK(col(ht, 0, "task") == "spam");
  CHECK(col(ht, 5, "task") == "sentiment");  // order 1, position 2: the first listed task
  CHECK(col(ht, 3, "seed") == "1235");
  const ojson& h = rep["methods"]["aria"]["per_seed"][0]["head_only"];
  CHECK(std::stod(col(ht, 1, "initial_trunk")) == h["initial_trunk"][2].get<double>());
  CHECK(std::stod(col(ht, 1, "current_trunk")) == h["current_trunk"][2].get<double>());
  CHECK(std::stod(col(ht, 1, "transfer")) == h["current_trunk"][2].get<double>() - h["initial_trunk"][2].get<double>());

  // One order without the probe: both tables are a header only.
  ojson none = two_order_report(false);
  for (auto& m : none["methods"]) m.erase("per_order");
  const std::vector<CsvTable> ts0 = report_tables(none, {});
  CHECK(table(ts0, "per_order").rows.empty());
  CHECK(table(ts0, "head_transfer").rows.empty());
  CHECK(csv_text(table(ts0, "head_transfer")) ==
        "method,seed,order_index,position,task,initial_trunk,current_trunk,transfer\n");
}
