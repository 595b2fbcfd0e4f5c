// report.html (train/report/report_html.h) on a hand-made report: a complete self-contained page (every
// method's section, the expected number of SVG charts, no script and no network reference), the
// numbers of the matrices and metrics on it, user-supplied text escaped, malformed reports refused.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "aria/core/error.h"
#include "tests/support/test_util.h"
#include "aria/core/rng.h"
#include "aria/model/continual_model.h"
#include "aria/model/gated_mlp.h"
#include "aria/train/data/cls_data.h"
#include "aria/train/report/report.h"
#include "aria/train/report/report_html.h"

using namespace aria;
using ojson = nlohmann::ordered_json;

namespace {

using testing::count_occurrences;

// Three tasks, one of them with characters HTML must escape; aria with two seeds, finetune and
// multitask (joint) with one.
ojson hand_made_report() {
  ClReport r;
  r.settings["device"] = "cpu";
  r.settings["model"] = {{"path", "/models/<tiny>"}, {"n_layer", 2}};
  r.settings["protocol"] = "same steps & heads for \"every\" method";
  r.tasks = {"sentiment", "a<b&c", "wordnet_class"};
  MethodResult aria{"aria", {}}, fine{"finetune", {}}, multi{"multitask", {}};
  for (int s = 0; s < 2; ++s) {
    MethodRun run;
    run.seed = uint64_t(1234 + s);
    run.matrix = {{0.812, 0.40, 0.25}, {0.75, 0.935, 0.30}, {0.70 + 0.02 * s, 0.88, 0.667}};
    run.before = {0.5, 0.45, 0.25};
    run.seconds = 12;
    run.info["fisher_estimator"] = "exact";
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

GateReport hand_made_gates() {
  GateReport g;
  g.when = "after the last task <wordnet_class>";
  g.data = "test split, real tokens";
  for (int l = 0; l < 2; ++l) {
    GateHistogram h;
    h.layer = l;
    h.counts = {50, 3, 2, 1, 1, 1, 2, 3, 4, 40};
    h.tokens = 107;
    h.mean = 0.47;
    g.layers.push_back(h);
  }
  return g;
}

}  // namespace

TEST_CASE("report.html: a self-contained page with every section") {
  HtmlReportOptions opt;
  opt.subtitle = "aria run --quick";
  opt.gates = {hand_made_gates()};
  const std::string html = report_html(hand_made_report(), opt);

  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(html.find("</html>") != std::string::npos);
  CHECK(html.find("<meta charset=\"utf-8\">") != std::string::npos);
  // Offline: no script, no external resource, no network address at all.
  CHECK(html.find("http") == std::string::npos);
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find(" src=") == std::string::npos);
  CHECK(html.find("<link") == std::string::npos);
  CHECK(html.find("@import") == std::string::npos);

  for (const char* m : {"aria", "finetune", "multitask"}) {
    CHECK_MESSAGE(count_occurrences(html, "id=\"method-" + std::string(m) + "\"") == 1, m);
    CHECK_MESSAGE(html.find("href=\"#method-" + std::string(m) + "\"") != std::string::npos, m);
  }
  CHECK(html.find("id=\"gates-aria\"") != std::string::npos);
  CHECK(html.find("id=\"metrics\"") != std::string::npos);
  CHECK(html.find("id=\"settings\"") != std::string::npos);
  // SVGs: the ACC bar chart, the BWT/forgetting bars, a heat map and a line chart per method, a histogram
  // per gate layer (no loss curves: no metrics.jsonl points given).
  CHECK(count_occurrences(html, "<svg") == 1 + 1 + 2 * 3 + 2);
  CHECK(count_occurrences(html, "</svg>") == count_occurrences(html, "<svg"));
  CHECK(count_occurrences(html, "<section") == count_occurrences(html, "</section>"));
  CHECK(count_occurrences(html, "<table") == count_occurrences(html, "</table>"));
  CHECK(count_occurrences(html, "<figure>") == count_occurrences(html, "</figure>"));
}

TEST_CASE("report.html: the numbers of the report are on the page") {
  const std::string html = report_html(hand_made_report(), {});
  // finetune's matrix cells, in percent with one decimal.
  for (const char* cell : {">80.0<", ">94.0<", ">51.0<", ">61.0<", ">70.0<"}) CHECK_MESSAGE(html.find(cell) != std::string::npos, cell);
  // aria's mean matrix (two seeds: a[2][0] = 0.70 and 0.72 -> 71.0 ± 1.4) and its metrics.
  CHECK(html.find(">71.0<") != std::string::npos);
  CHECK(html.find(">± 1.4<") != std::string::npos);
  // finetune: ACC (0.51 + 0.61 + 0.70) / 3 = 60.7; BWT ((0.51 - 0.80) + (0.61 - 0.94)) / 2 = -31.0.
  CHECK(html.find("60.7") != std::string::npos);
  CHECK(html.find("-31.0") != std::string::npos);
  // multitask: joint, so BWT / forgetting / FWT are n/a, and the note says why.
  CHECK(html.find("n/a") != std::string::npos);
  CHECK(html.find("joint training on all tasks") != std::string::npos);
  // Several seeds are stated.
  CHECK(html.find("over 2 seeds") != std::string::npos);
}

TEST_CASE("report.html: user text is escaped everywhere") {
  HtmlReportOptions opt;
  opt.title = "run <1> & \"2\"";
  opt.gates = {hand_made_gates()};
  const std::string html = report_html(hand_made_report(), opt);
  CHECK(html.find("a<b&c") == std::string::npos);
  CHECK(html.find("a&lt;b&amp;c") != std::string::npos);
  CHECK(html.find("run &lt;1&gt; &amp; &quot;2&quot;") != std::string::npos);
  CHECK(html.find("<tiny>") == std::string::npos);
  CHECK(html.find("&lt;wordnet_class&gt;") != std::string::npos);
  CHECK(html.find("\"every\"") == std::string::npos);
  CHECK(html_escape("<a href='x'>&</a>") == "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;");
}

TEST_CASE("report.html: malformed reports are refused") {
  ojson r = hand_made_report();
  ojson no_methods = r;
  no_methods.erase("methods");
  CHECK_THROWS_AS(report_html(no_methods, {}), Error);
  ojson short_row = r;
  short_row["methods"]["finetune"]["matrix"][1] = ojson::array({0.5});
  CHECK_THROWS_WITH_AS(report_html(short_row, {}), doctest::Contains("methods.finetune"), Error);
  ojson not_number = r;
  not_number["methods"]["finetune"]["before"][0] = "high";
  CHECK_THROWS_AS(report_html(not_number, {}), Error);
}

TEST_CASE("gates.json round trip and write_report_html") {
  const GateReport g = hand_made_gates();
  const GateReport back = gate_report_from_json(nlohmann::json::parse(gate_report_to_json(g).dump()));
  CHECK(back.when == g.when);
  REQUIRE(back.layers.size() == 2);
  CHECK(back.layers[1].counts == g.layers[1].counts);
  CHECK(back.layers[1].tokens == 107);
  CHECK_THROWS_AS(gate_report_from_json(nlohmann::json::parse(R"({"method": "aria"})")), Error);

  const std::string path =
      (std::filesystem::temp_directory_path() / ("aria_report_" + std::to_string(::getpid()) + ".html")).string();
  HtmlReportOptions opt;
  opt.gates = {g};
  write_report_html(hand_made_report(), opt, path);
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  CHECK(ss.str() == report_html(hand_made_report(), opt));
  std::filesystem::remove(path);
}

TEST_CASE("collect_gate_histograms: every layer, real tokens only, each task through its own head") {
  Gpt2Config cfg;  // GPT-2's vocabulary size: batches pad with id 50256
  cfg.vocab_size = 50257, cfg.n_positions = 16, cfg.n_embd = 16, cfg.n_layer = 2, cfg.n_head = 2;
  ContinualModel m;
  m.gpt = gpt2_random(cfg, 3);
  m.adapter_dim = 4;
  Rng rng(5);
  ClsTaskData a, b;
  a.name = "a", a.label_names = {"x", "y"};
  b.name = "b", b.label_names = {"x", "y", "z"};
  // 3 + 5 + 1 real tokens in task a (padding in its batches must not count), 2 + 2 in task b.
  a.test = {{{1, 2, 3}, 0}, {{4, 5, 6, 7, 8}, 1}, {{9}, 0}};
  b.test = {{{10, 11}, 2}, {{12, 13}, 1}};
  const std::vector<const ClsTaskData*> tasks = {&a, &b};

  m.add_task("a", 2, rng);
  m.add_task("b", 3, rng);
  CHECK_THROWS_WITH_AS(collect_gate_histograms(m, tasks, "test", 0, 2), doctest::Contains("no gated MLP"), Error);

  ContinualModel g;
  g.gpt = gpt2_random(cfg, 3);
  inject_gated_mlp(g.gpt, 7, 0.5);
  g.adapter_dim = 4;
  g.add_task("a", 2, rng);
  CHECK_THROWS_WITH_AS(collect_gate_histograms(g, tasks, "test", 0, 2), doctest::Contains("task slots"), Error);
  g.add_task("b", 3, rng);
  const GateReport r = collect_gate_histograms(g, tasks, "test", 0, 2, 10);
  REQUIRE(r.layers.size() == 2);
  for (const GateHistogram& h : r.layers) {
    CHECK(h.counts.size() == 10);
    CHECK(h.tokens == 3 + 5 + 1 + 2 + 2);
    int64_t sum = 0;
    for (int64_t c : h.counts) sum += c;
    CHECK(sum == h.tokens);
    CHECK(h.mean > 0.0);
    CHECK(h.mean < 1.0);
  }
  // A cap on the examples per task.
  CHECK(collect_gate_histograms(g, tasks, "test", 1, 2).layers[0].tokens == 3 + 2);
  CHECK(r.data.find("5 examples") != std::string::npos);
}

TEST_CASE("report.html: the scenario, chance, 95% intervals and the paired comparison with finetune") {
  const std::string html = report_html(hand_made_report(), {});
  CHECK(html.find("Scenario: task-incremental (task id given at test time)") != std::string::npos);
  CHECK(html.find("id=\"statistics\"") != std::string::npos);
  CHECK(html.find("href=\"#statistics\"") != std::string::npos);
  // Chance: (1/2 + 1/3 + 1/4) / 3 = 36.1 %; finetune's ACC 60.7 is 24.6 above it.
  CHECK(html.find("Chance (1/labels per task, averaged): 36.1 %") != std::string::npos);
  CHECK(html.find(">+24.6<") != std::string::npos);
  CHECK(html.find("not recorded") != std::string::npos);  // why the intervals are over seeds only
  // aria against finetune, paired on seed 1234 (the seed both ran): ACC (0.70 + 0.88 + 0.667) / 3 =
  // 74.9 against 60.7: +14.2, one pair, so no interval.
  CHECK(html.find("+14.2 n/a, 1 wins / 0 ties / 0 losses") != std::string::npos);
  // aria's two seeds give an ACC interval: ACC 74.9 and 75.6 -> within [74.9, 75.6].
  CHECK(html.find("[74.9, 75.6]") != std::string::npos);
  // A report written before the statistics existed still renders, without the section.
  ojson old = hand_made_report();
  old.erase("statistics");
  old.erase("scenario");
  old.erase("chance");
  const std::string plain = report_html(old, {});
  CHECK(plain.find("id=\"statistics\"") == std::string::npos);
  CHECK(plain.find("Scenario:") == std::string::npos);
}
