// Pretraining checkpoints (train/optim/lm_checkpoint.h): a run stopped mid-way and resumed from its
// checkpoint ends with the same weights, losses, gradient norms, learning rates and validation
// losses, bit for bit, as a run that was never interrupted; a checkpoint of other settings or a
// damaged one is refused. And the learning curve written from a run (train/report/lm_curve.h).
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "aria/core/context.h"
#include "aria/core/error.h"
#include "aria/model/gpt2.h"
#include "aria/train/optim/lm_checkpoint.h"
#include "aria/train/report/lm_curve.h"
#include "aria/train/optim/lm_trainer.h"
#include "tests/support/test_util.h"

using namespace aria;
namespace fs = std::filesystem;

namespace {

Gpt2Config tiny_arch() {
  Gpt2Config c;
  c.vocab_size = 96, c.n_layer = 2, c.n_embd = 16, c.n_head = 2, c.n_positions = 32;
  return c;
}

TokenDataset tokens(size_t n, uint64_t salt) {
  TokenDataset d;
  uint64_t x = 0x9e3779b97f4a7c15ull ^ salt;
  for (size_t i = 0; i < n; ++i) {  // a text-like stream: mostly a repeating pattern, some noise
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    d.tokens.push_back(int32_t(((x >> 33) % 8 == 0) ? (x >> 40) % 96 : (i * 5) % 31));
  }
  return d;
}

// Bit for bit needs one fixed CPU team for every step of both runs. A training loop may choose its
// team by timing its first steps (core/cpu_threads.h), so a resumed run could choose another team
// than the run it continues; Context::cpu_threads, when set, fixes the team.
void fix_cpu_team() { context().cpu_threads = 1; }

LmTrainConfig config() {
  LmTrainConfig c;
  c.batch_size = 2, c.seq_len = 12, c.grad_accum = 2, c.steps = 9, c.warmup_steps = 2, c.lr = 3e-3;
  c.eval_every = 3, c.eval_batches = 2, c.verbose = false, c.seed = 77;
  return c;
}

// Every parameter's bytes equal.
void check_same_weights(const Gpt2Model& a, const Gpt2Model& b) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    CAPTURE(pa[i].first);
    const std::vector<float> x = pa[i].second.to_floats(), y = pb[i].second.to_floats();
    REQUIRE(x.size() == y.size());
    CHECK(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
  }
}

}  // namespace

TEST_CASE("pretraining stopped at step 5 and resumed equals the uninterrupted run bit for bit") {
  fix_cpu_team();
  const TokenDataset train = tokens(900, 1), val = tokens(300, 2);
  std::ostringstream log;
  Gpt2Model a = gpt2_random(tiny_arch(), 5);
  const LmTrainResult ra = train_lm(a, train, &val, config(), log);
  REQUIRE(ra.losses.size() == 9);
  REQUIRE(ra.val_losses.size() == 3);  // steps 3, 6 and the end (9)

  testing::TempDir t("aria_lm_resume_");
  LmTrainConfig c = config();
  c.checkpoint_dir = (t.dir / "ckpt").string();
  c.checkpoint_every = 2;
  int seen = 0;
  c.stop_requested = [&] { return ++seen == 5; };  // as a SIGTERM during step 5 would
  Gpt2Model b = gpt2_random(tiny_arch(), 5);
  const LmTrainResult rb = train_lm(b, train, &val, c, log);
  CHECK(rb.stopped);
  CHECK(rb.losses.size() == 5);
  REQUIRE(is_lm_checkpoint(c.checkpoint_dir));

  // A fresh process: another random model (the checkpoint replaces its weights), resume.
  c.stop_requested = nullptr;
  c.resume = true;
  Gpt2Model resumed = gpt2_random(tiny_arch(), 999);
  const LmTrainResult rc = train_lm(resumed, train, &val, c, log);
  CHECK_FALSE(rc.stopped);
  CHECK(rc.resumed_from == 5);
  CHECK(rc.losses == ra.losses);
  CHECK(rc.grad_norms == ra.grad_norms);
  CHECK(rc.lrs == ra.lrs);
  CHECK(rc.val_losses == ra.val_losses);
  CHECK(rc.final_val_loss == ra.final_val_loss);
  CHECK(rc.sampler_state.counter == ra.sampler_state.counter);
  check_same_weights(resumed, a);
  // The stopped run really had diverged from the finished one (the comparison above is not vacuous).
  CHECK(std::memcmp(b.wte.to_floats().data(), a.wte.to_floats().data(), 4 * size_t(b.wte.numel())) != 0);
}

TEST_CASE("resuming with other settings or from a damaged checkpoint is refused") {
  const TokenDataset train = tokens(600, 3), val = tokens(200, 4);
  testing::TempDir t("aria_lm_resume_");
  std::ostringstream log;
  LmTrainConfig c = config();
  c.checkpoint_dir = (t.dir / "ckpt").string();
  c.checkpoint_every = 4;
  Gpt2Model m = gpt2_random(tiny_arch(), 5);
  train_lm(m, train, &val, c, log);  // checkpoints at steps 4 and 8 (not at the end)
  REQUIRE(is_lm_checkpoint(c.checkpoint_dir));
  c.resume = true;

  LmTrainConfig other = c;
  other.lr = 1e-3;
  Gpt2Model m2 = gpt2_random(tiny_arch(), 5);
  CHECK_THROWS_WITH_AS(train_lm(m2, train, &val, other, log), doctest::Contains("made with lr = "), Error);
  other = c;
  other.batch_size = 3;
  CHECK_THROWS_WITH_AS(train_lm(m2, train, &val, other, log), doctest::Contains("batch_size"), Error);
  // Another corpus (its size differs): refused, naming it.
  const TokenDataset longer = tokens(700, 3);
  CHECK_THROWS_WITH_AS(train_lm(m2, longer, &val, c, log), doctest::Contains("train_tokens"), Error);
  Gpt2Config wider = tiny_arch();
  wider.n_embd = 32;
  Gpt2Model m3 = gpt2_random(wider, 5);
  CHECK_THROWS_AS(train_lm(m3, train, &val, c, log), Error);

  // One flipped byte in the tensors: the manifest check refuses the folder.
  const fs::path f = fs::path(c.checkpoint_dir) / "lm_checkpoint.safetensors";
  std::string bytes = testing::read_file(f.string());
  bytes[bytes.size() - 3] ^= 0x10;
  testing::write_file(f.string(), bytes);
  CHECK_THROWS_AS(train_lm(m2, train, &val, c, log), Error);
}

TEST_CASE("the learning curve: JSON numbers against tokens and an SVG plot") {
  const TokenDataset train = tokens(900, 1), val = tokens(300, 2);
  std::ostringstream log;
  Gpt2Model a = gpt2_random(tiny_arch(), 5);
  const LmTrainResult r = train_lm(a, train, &val, config(), log);
  const auto j = lm_curve_json(r, "tiny <run>");
  CHECK(j["tokens_per_step"] == 2 * 12 * 2);
  REQUIRE(j["train"]["loss"].size() == 9);
  CHECK(j["train"]["tokens"][8] == 9 * 48);
  CHECK(j["train"]["loss"][8].get<double>() == r.losses[8]);
  REQUIRE(j["validation"]["loss"].size() == 3);
  CHECK(j["validation"]["tokens"][0] == 3 * 48);
  CHECK(j["validation"]["loss"][2].get<double>() == r.final_val_loss);
  CHECK(j["final_val_loss"].get<double>() == r.final_val_loss);

  const std::string svg = lm_curve_svg(j);
  CHECK(svg.rfind("<svg", 0) == 0);
  CHECK(svg.find("tiny &lt;run&gt;") != std::string::npos);  // the title, escaped
  size_t circles = 0, lines = 0;
  for (size_t p = svg.find("<circle"); p != std::string::npos; p = svg.find("<circle", p + 1)) ++circles;
  for (size_t p = svg.find("<polyline"); p != std::string::npos; p = svg.find("<polyline", p + 1)) ++lines;
  CHECK(circles == 3);  // one per evaluation
  CHECK(lines == 3);    // raw train, smoothed train, validation

  auto broken = j;
  broken["train"]["tokens"].erase(0);
  CHECK_THROWS_AS(lm_curve_svg(broken), Error);
  LmTrainResult none;
  CHECK_THROWS_AS(lm_curve_svg(lm_curve_json(none, "empty")), Error);
}
