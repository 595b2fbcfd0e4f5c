// report.json's shape (the issue's {"settings", "tasks", "methods": {name: {"matrix", "acc", ...}}}),
// nulls where a metric is not defined, mean / std / per-seed values with several seeds, and the
// plain-text tables.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "aria/core/error.h"
#include "aria/train/report/report.h"

using namespace aria;
using ojson = nlohmann::ordered_json;

namespace {

MethodRun seq_run(uint64_t seed, double shift) {
  MethodRun r;
  r.seed = seed;
  r.matrix = {{0.90, 0.30}, {0.60 + shift, 0.80}};
  r.before = {0.50, 0.25};
  r.seconds = 1.5;
  r.info["fisher_estimator"] = "exact";
  return r;
}

MethodRun joint_run(uint64_t seed) {
  MethodRun r;
  r.seed = seed;
  r.joint = true;
  r.matrix = {{0.95, 0.85}};
  r.before = {0.50, 0.25};
  return r;
}

ClReport two_task_report(int seeds) {
  ClReport rep;
  rep.settings["device"] = "cpu";
  rep.tasks = {"weather", "animal"};
  MethodResult aria{"aria", {}}, multi{"multitask", {}};
  for (int s = 0; s < seeds; ++s) {
    aria.runs.push_back(seq_run(uint64_t(7 + s), 0.1 * s));
    multi.runs.push_back(joint_run(uint64_t(7 + s)));
  }
  rep.methods = {aria, multi};
  return rep;
}

}  // namespace

TEST_CASE("one seed: the issue's shape, metrics recomputed from the matrix, nulls for joint training") {
  ojson j = report_to_json(two_task_report(1));
  // Top level: exactly these, in this order (scenario, chance and statistics: issue 15).
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  CHECK(keys == std::vector<std::string>{"settings", "scenario", "chance", "statistics", "tasks", "methods"});
  CHECK(j["scenario"] == "task-incremental (task id given at test time)");
  CHECK(j["chance"].is_null());  // no label counts given
  CHECK(j["statistics"]["over_test_examples"] == false);
  CHECK(j["statistics"]["resamples"] == kBootstrapResamples);
  CHECK(j["settings"]["device"] == "cpu");
  CHECK(j["tasks"] == ojson({"weather", "animal"}));
  REQUIRE(j["methods"].contains("aria"));
  const ojson& a = j["methods"]["aria"];
  CHECK(a["joint"] == false);
  CHECK(a["matrix"] == ojson({{0.90, 0.30}, {0.60, 0.80}}));
  CHECK(a["before"] == ojson({0.50, 0.25}));
  CHECK(a["acc"].get<double>() == doctest::Approx(0.70));         // (0.60 + 0.80) / 2
  CHECK(a["bwt"].get<double>() == doctest::Approx(-0.30));        // 0.60 - 0.90
  CHECK(a["forgetting"].get<double>() == doctest::Approx(0.30));  // 0.90 - 0.60
  CHECK(a["fwt"].get<double>() == doctest::Approx(0.05));         // 0.30 - 0.25
  CHECK(a["info"]["fisher_estimator"] == "exact");
  CHECK_FALSE(a.contains("std"));
  CHECK_FALSE(a.contains("per_seed"));
  CHECK(a["ci95"]["acc"].is_null());  // one seed: no interval
  CHECK(a["acc_above_chance"].is_null());
  CHECK_FALSE(a.contains("vs_finetune"));  // finetune did not run

  const ojson& m = j["methods"]["multitask"];
  CHECK(m["joint"] == true);
  CHECK(m["matrix"] == ojson({{0.95, 0.85}}));
  CHECK(m["acc"].get<double>() == doctest::Approx(0.90));
  CHECK(m["bwt"].is_null());
  CHECK(m["forgetting"].is_null());
  CHECK(m["fwt"].is_null());
  CHECK(m["note"].get<std::string>().find("not defined") != std::string::npos);
}

TEST_CASE("several seeds: mean matrix, per-metric mean and std, per-seed values") {
  ojson j = report_to_json(two_task_report(3));
  const ojson& a = j["methods"]["aria"];
  CHECK(a["num_seeds"] == 3);
  REQUIRE(a["per_seed"].size() == 3);
  CHECK(a["per_seed"][1]["seed"] == 8);
  CHECK(a["per_seed"][1]["matrix"][1][0].get<double>() == doctest::Approx(0.70));
  // a[1][0] is 0.6, 0.7, 0.8 over the seeds: ACC 0.70, 0.75, 0.80 -> mean 0.75, std 0.05;
  // BWT -0.30, -0.20, -0.10 -> mean -0.20, std 0.10.
  CHECK(a["matrix"][1][0].get<double>() == doctest::Approx(0.70));
  CHECK(a["acc"].get<double>() == doctest::Approx(0.75));
  CHECK(a["mean"]["acc"].get<double>() == doctest::Approx(0.75));
  CHECK(a["std"]["acc"].get<double>() == doctest::Approx(0.05));
  CHECK(a["bwt"].get<double>() == doctest::Approx(-0.20));
  CHECK(a["std"]["bwt"].get<double>() == doctest::Approx(0.10));
  CHECK(a["std"]["fwt"].get<double>() == doctest::Approx(0.0));
  CHECK(a["seconds"].get<double>() == doctest::Approx(4.5));
  const ojson& m = j["methods"]["multitask"];
  CHECK(m["std"]["acc"].get<double>() == doctest::Approx(0.0));
  CHECK(m["std"]["bwt"].is_null());
  CHECK(m["mean"]["fwt"].is_null());
}

TEST_CASE("time split: per run, summed per method, printed with each part's share") {
  ClReport r = two_task_report(2);
  r.methods[0].runs[0].time = TimeSplit{1.0, 0.5, 0.25, 0.25};
  r.methods[0].runs[0].seconds = 2.0;
  r.methods[0].runs[1].time = TimeSplit{3.0, 0.5, 0.25, 0.25};
  r.methods[0].runs[1].seconds = 4.0;
  const ojson j = report_to_json(r);
  const ojson& a = j["methods"]["aria"];
  CHECK(a["time_split"]["train_seconds"].get<double>() == doctest::Approx(4.0));
  CHECK(a["time_split"]["fisher_seconds"].get<double>() == doctest::Approx(1.0));
  CHECK(a["time_split"]["eval_seconds"].get<double>() == doctest::Approx(0.5));
  CHECK(a["time_split"]["host_seconds"].get<double>() == doctest::Approx(0.5));
  CHECK(a["per_seed"][1]["time_split"]["train_seconds"].get<double>() == doctest::Approx(3.0));
  CHECK(j["methods"]["multitask"]["time_split"]["train_seconds"].get<double>() == doctest::Approx(0.0));
  std::ostringstream out;
  print_report(r, out);
  const std::string s = out.str();
  CAPTURE(s);
  CHECK(s.find("time (seconds") != std::string::npos);
  CHECK(s.find("4.0 (67%)") != std::string::npos);  // aria's train: 4 of 6 seconds
  CHECK(s.find("1.0 (17%)") != std::string::npos);  // aria's Fisher
}

TEST_CASE("malformed runs are rejected naming the method and seed") {
  ClReport r = two_task_report(1);
  r.methods[0].runs[0].matrix.pop_back();
  CHECK_THROWS_WITH_AS(report_to_json(r), doctest::Contains("method 'aria' seed 7: matrix has 1 rows, expected 2"),
                       Error);
  r = two_task_report(1);
  r.methods[1].runs[0].matrix[0][1] = 1.5;
  CHECK_THROWS_WITH_AS(report_to_json(r), doctest::Contains("method 'multitask' seed 7"), Error);
  r = two_task_report(1);
  r.methods[0].runs[0].before = {0.5};
  CHECK_THROWS_AS(report_to_json(r), Error);
}

TEST_CASE("write_report_json writes what report_to_json returns") {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("aria_report_" + std::to_string(::getpid()) + ".json")).string();
  ClReport r = two_task_report(2);
  write_report_json(r, path);
  std::ifstream in(path);
  ojson back = ojson::parse(in);
  CHECK(back == report_to_json(r));
  std::filesystem::remove(path);
}

TEST_CASE("tables: one accuracy matrix per method and the metrics table") {
  std::ostringstream one;
  print_report(two_task_report(1), one);
  const std::string s = one.str();
  CAPTURE(s);
  CHECK(s.find("aria: accuracy (%)") != std::string::npos);
  CHECK(s.find("before training") != std::string::npos);
  CHECK(s.find("after weather") != std::string::npos);
  CHECK(s.find("after animal") != std::string::npos);
  CHECK(s.find("after joint") != std::string::npos);
  CHECK(s.find("90.0") != std::string::npos);
  CHECK(s.find("ACC") != std::string::npos);
  CHECK(s.find("forgetting") != std::string::npos);
  CHECK(s.find("-30.0") != std::string::npos);  // aria's BWT
  CHECK(s.find("n/a") != std::string::npos);    // multitask's BWT
  CHECK(s.find("±") == std::string::npos);

  std::ostringstream three;
  print_report(two_task_report(3), three);
  CHECK(three.str().find("mean over 3 seeds") != std::string::npos);
  CHECK(three.str().find("75.0 ± 5.0") != std::string::npos);
}

TEST_CASE("statistics: chance, ACC above chance, 95% intervals over seeds, paired comparison with finetune") {
  ClReport r = two_task_report(3);
  r.num_labels = {2, 4};  // chance 0.5 and 0.25: mean 0.375
  MethodResult ft{"finetune", {}};
  for (int s = 0; s < 3; ++s) {
    MethodRun run = seq_run(uint64_t(7 + s), 0.0);  // a[1][0] = 0.60 every seed: ACC 0.70, forgetting 0.30
    run.matrix[1][0] = s == 2 ? 0.85 : 0.60;       // seed 9: ACC 0.825, forgetting 0.05
    ft.runs.push_back(run);
  }
  r.methods.push_back(ft);
  const ojson j = report_to_json(r);
  CHECK(j["chance"]["per_task"] == ojson({0.5, 0.25}));
  CHECK(j["chance"]["mean"].get<double>() == doctest::Approx(0.375));
  const ojson& a = j["methods"]["aria"];
  CHECK(a["acc_above_chance"].get<double>() == doctest::Approx(0.75 - 0.375));
  // aria's ACC over seeds: 0.70, 0.75, 0.80: the interval lies within [0.70, 0.80] around 0.75.
  REQUIRE(a["ci95"]["acc"].is_array());
  CHECK(a["ci95"]["acc"][0].get<double>() >= 0.70 - 1e-12);
  CHECK(a["ci95"]["acc"][0].get<double>() < 0.75);
  CHECK(a["ci95"]["acc"][1].get<double>() <= 0.80 + 1e-12);
  CHECK(a["ci95"]["acc"][1].get<double>() > 0.75);
  CHECK(a["ci95"]["fwt"][0].get<double>() == doctest::Approx(0.05));  // the same FWT every seed
  CHECK(a["ci95"]["fwt"][1].get<double>() == doctest::Approx(0.05));
  // Paired with finetune by seed: ACC differences 0, +0.05, -0.025 -> mean 0.025/3; 1 win, 1 tie, 1 loss.
  const ojson& v = a["vs_finetune"];
  CHECK(v["pairs"] == 3);
  CHECK(v["acc"]["diff"].get<double>() == doctest::Approx(0.025 / 3));
  CHECK(v["acc"]["wins"] == 1);
  CHECK(v["acc"]["ties"] == 1);
  CHECK(v["acc"]["losses"] == 1);
  REQUIRE(v["acc"]["ci95"].is_array());
  // Forgetting 0.30, 0.20, 0.10 against 0.30, 0.30, 0.05: differences 0, -0.10, +0.05: 1 win (less), 1 loss.
  CHECK(v["forgetting"]["diff"].get<double>() == doctest::Approx(-0.05 / 3));
  CHECK(v["forgetting"]["wins"] == 1);
  CHECK(v["forgetting"]["losses"] == 1);
  // Joint training has no forgetting: compared on ACC only.
  const ojson& m = j["methods"]["multitask"];
  CHECK(m["vs_finetune"]["acc"]["wins"] == 3);
  CHECK(m["vs_finetune"]["forgetting"].is_null());
  CHECK(m["ci95"]["bwt"].is_null());
  CHECK_FALSE(j["methods"]["finetune"].contains("vs_finetune"));

  std::ostringstream out;
  print_report(r, out);
  const std::string s = out.str();
  CAPTURE(s);
  CHECK(s.find("scenario: task-incremental (task id given at test time)") != std::string::npos);
  CHECK(s.find("ACC above chance (mean chance 37.5 %)") != std::string::npos);
  CHECK(s.find("95% intervals (percentile bootstrap over runs (seed x task order), 10000") != std::string::npos);
  CHECK(s.find("paired with finetune") != std::string::npos);
  CHECK(s.find("1/3 wins") != std::string::npos);

  r.num_labels = {2};
  CHECK_THROWS_WITH_AS(report_to_json(r), doctest::Contains("1 label counts for 2 tasks"), Error);
}
