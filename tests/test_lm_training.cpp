// Language-model data and training on a tiny GPT-2: the batcher, corpus errors, the loss falling
// on a periodic token stream, and gradient accumulation equal to a larger batch.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "aria/core/error.h"
#include "aria/model/gpt2.h"
#include "aria/train/data/lm_data.h"
#include "aria/train/optim/lm_trainer.h"
#include "tests/support/test_util.h"

using namespace aria;
using testing::tiny_gpt2_config;
namespace fs = std::filesystem;

namespace {

// A fixed periodic stream: the period's tokens are distinct, so the next token is predictable.
TokenDataset periodic(size_t n, int period = 13, int offset = 3) {
  TokenDataset d;
  for (size_t i = 0; i < n; ++i) d.tokens.push_back(int32_t(offset + (i * 7) % size_t(period)));
  return d;
}

// The fake tokenizer: one token per byte, folded into a 64-token vocabulary.
std::vector<int32_t> byte_tokens(const std::string& s) {
  std::vector<int32_t> out;
  for (unsigned char c : s) out.push_back(int32_t(c % 64));
  return out;
}

struct TempFile {
  fs::path path;
  explicit TempFile(const std::string& text) {
    std::random_device rd;
    path = fs::temp_directory_path() / ("aria_lm_" + std::to_string(::getpid()) + "_" + std::to_string(rd()) + ".txt");
    std::ofstream(path, std::ios::binary) << text;
  }
  ~TempFile() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

LmTrainConfig small_config() {
  LmTrainConfig c;
  c.batch_size = 8;
  c.seq_len = 16;
  c.steps = 60;
  c.warmup_steps = 5;
  c.lr = 1e-2;
  c.min_lr_ratio = 0.1;
  c.weight_decay = 0.01;
  c.eval_every = 30;
  c.eval_batches = 2;
  c.seed = 42;
  c.verbose = true;
  return c;
}

}  // namespace

TEST_CASE("lm data: text file through a tokenizer callback, and its errors") {
  TempFile f("hello world, hello tokens");
  TokenDataset d = load_token_dataset(f.path.string(), byte_tokens);
  CHECK(d.tokens.size() == 25);
  CHECK(d.tokens[0] == int32_t('h' % 64));

  TempFile empty("");
  CHECK_THROWS_WITH_AS(load_token_dataset(empty.path.string(), byte_tokens), doctest::Contains("is empty"),
                       aria::Error);
  CHECK_THROWS_WITH_AS(load_token_dataset("/nonexistent/aria.txt", byte_tokens), doctest::Contains("does not exist"),
                       aria::Error);
  auto nothing = [](const std::string&) { return std::vector<int32_t>{}; };
  CHECK_THROWS_WITH_AS(load_token_dataset(f.path.string(), nothing), doctest::Contains("gave no tokens"), aria::Error);

  TokenDataset shortc = periodic(16);
  CHECK_THROWS_WITH_AS(LmBatcher(shortc, 2, 16, 1), doctest::Contains("corpus too short: 16 tokens for sequence length 16"),
                       aria::Error);
  CHECK_NOTHROW(LmBatcher(periodic(17), 2, 16, 1));
  TokenDataset none;
  CHECK_THROWS_WITH_AS(LmBatcher(none, 2, 16, 1), doctest::Contains("corpus is empty"), aria::Error);
}

TEST_CASE("lm data: batches are shifted windows, seeded, resumable, and split evenly") {
  TokenDataset d;
  for (int i = 0; i < 500; ++i) d.tokens.push_back(i);
  LmBatcher b(d, 8, 10, 5);
  const RngState s0 = b.state();
  LmBatch x = b.next();
  CHECK(x.ids.shape() == Shape{8, 10});
  CHECK(x.targets.shape() == Shape{8, 10});
  CHECK(x.ids.dtype() == DType::I32);
  auto ids = x.ids.to_ints(), tg = x.targets.to_ints();
  for (int r = 0; r < 8; ++r)
    for (int t = 0; t < 10; ++t) {
      CHECK(tg[size_t(r * 10 + t)] == ids[size_t(r * 10 + t)] + 1);
      if (t > 0) CHECK(ids[size_t(r * 10 + t)] == ids[size_t(r * 10 + t - 1)] + 1);
    }
  for (int32_t v : tg) CHECK(v < 500);  // the last window ends at the corpus end
  LmBatch y = b.next();
  CHECK(y.ids.to_ints() != ids);

  b.set_state(s0);  // restoring the state replays the batches
  CHECK(b.next().ids.to_ints() == ids);
  LmBatcher same(d, 8, 10, 5);
  CHECK(same.next().ids.to_ints() == ids);

  LmBatcher half(d, 4, 10, 5);  // 8 = 4 + 4, window by window
  auto h1 = half.next().ids.to_ints(), h2 = half.next().ids.to_ints();
  h1.insert(h1.end(), h2.begin(), h2.end());
  CHECK(h1 == ids);
}

TEST_CASE("lm training: the loss of a tiny GPT-2 falls on a periodic stream") {
  Gpt2Model m = gpt2_random(tiny_gpt2_config(), 11);
  TokenDataset train = periodic(2000), val = periodic(300);
  std::ostringstream log;
  LmTrainConfig cfg = small_config();
  LmTrainResult r = train_lm(m, train, &val, cfg, log);
  MESSAGE(log.str());
  REQUIRE(r.losses.size() == size_t(cfg.steps));
  CHECK(r.grad_norms.size() == size_t(cfg.steps));
  CHECK(r.lrs.front() == doctest::Approx(cfg.lr / 5));
  CHECK(r.lrs[4] == doctest::Approx(cfg.lr));
  CHECK(r.lrs.back() < 0.11 * cfg.lr);
  const double initial = r.losses.front();
  CHECK(initial == doctest::Approx(std::log(64.0)).epsilon(0.05));
  CHECK(r.losses.back() < 0.5 * initial);
  REQUIRE(r.val_losses.size() == 2);
  CHECK(r.val_losses[0].first == 30);
  CHECK(r.val_losses[1].first == 60);
  CHECK(r.final_val_loss == r.val_losses[1].second);
  CHECK(r.final_val_loss < 0.5 * initial);
  CHECK(r.tokens_per_second > 0);
  const std::string s = log.str();
  CHECK(s.find("decay") != std::string::npos);
  CHECK(s.find("step 60/60") != std::string::npos);
  CHECK(s.find("val loss") != std::string::npos);
  CHECK(s.find("tok/s") != std::string::npos);
}

TEST_CASE("lm training: accumulation 2 x batch 4 equals 1 x batch 8") {
  TokenDataset train = periodic(1000, 29, 1);
  Gpt2Model a = gpt2_random(tiny_gpt2_config(), 3), b = gpt2_random(tiny_gpt2_config(), 3);
  LmTrainConfig ca = small_config();
  ca.steps = 4;
  ca.warmup_steps = 0;
  ca.lr = 1e-3;
  ca.max_grad_norm = 0.5;  // clipping active: the norm must be of the averaged gradient
  ca.verbose = false;
  LmTrainConfig cb = ca;
  cb.batch_size = 4;
  cb.grad_accum = 2;
  std::ostringstream log;
  LmTrainResult ra = train_lm(a, train, nullptr, ca, log);
  LmTrainResult rb = train_lm(b, train, nullptr, cb, log);
  CHECK(log.str().empty());  // verbose off
  CHECK(std::isnan(ra.final_val_loss));
  for (int s = 0; s < ca.steps; ++s) {
    CHECK(ra.losses[size_t(s)] == doctest::Approx(rb.losses[size_t(s)]).epsilon(1e-5));
    CHECK(ra.grad_norms[size_t(s)] == doctest::Approx(rb.grad_norms[size_t(s)]).epsilon(1e-4));
  }
  CHECK(ra.grad_norms[0] > ca.max_grad_norm);
  auto pa = a.named_parameters(), pb = b.named_parameters();
  double worst = 0;
  std::string where;
  for (size_t i = 0; i < pa.size(); ++i) {
    auto x = pa[i].second.to_doubles(), y = pb[i].second.to_doubles();
    for (size_t j = 0; j < x.size(); ++j)
      if (std::abs(x[j] - y[j]) > worst) worst = std::abs(x[j] - y[j]), where = pa[i].first;
  }
  INFO("worst parameter difference ", worst, " in ", where);
  CHECK(worst < 1e-5);
}

TEST_CASE("lm training: corpus and config errors") {
  Gpt2Model m = gpt2_random(tiny_gpt2_config(), 1);
  LmTrainConfig cfg = small_config();
  cfg.verbose = false;
  std::ostringstream log;
  TokenDataset empty;
  CHECK_THROWS_WITH_AS(train_lm(m, empty, nullptr, cfg, log), doctest::Contains("training corpus is empty"),
                       aria::Error);
  TokenDataset shortc = periodic(10);
  CHECK_THROWS_WITH_AS(train_lm(m, shortc, nullptr, cfg, log),
                       doctest::Contains("corpus too short: 10 tokens for sequence length 16"), aria::Error);
  TokenDataset ok = periodic(200);
  CHECK_THROWS_WITH_AS(train_lm(m, ok, &shortc, cfg, log), doctest::Contains("corpus too short"), aria::Error);
  TokenDataset big = periodic(200, 13, 60);  // ids up to 72 >= vocab 64
  CHECK_THROWS_WITH_AS(train_lm(m, big, nullptr, cfg, log), doctest::Contains("outside the model's vocabulary [0, 64)"),
                       aria::Error);
  LmTrainConfig long_seq = cfg;
  long_seq.seq_len = 64;
  CHECK_THROWS_WITH_AS(train_lm(m, ok, nullptr, long_seq, log), doctest::Contains("n_positions=32"), aria::Error);
  LmTrainConfig no_accum = cfg;
  no_accum.grad_accum = 0;
  CHECK_THROWS_WITH_AS(train_lm(m, ok, nullptr, no_accum, log), doctest::Contains("grad_accum"), aria::Error);

  LmTrainConfig zero = cfg;  // 0 steps: the validation loss of the untouched model
  zero.steps = 0;
  zero.verbose = true;
  const auto before = m.wte.to_floats();
  LmTrainResult r = train_lm(m, ok, &ok, zero, log);
  CHECK(r.losses.empty());
  CHECK(r.final_val_loss == doctest::Approx(std::log(64.0)).epsilon(0.05));
  CHECK(m.wte.to_floats() == before);
}

TEST_CASE("lm training: the same run on CUDA (skipped without a GPU)") {
  if (!testing::gpu_or_skip("lm training on CUDA")) return;
  TokenDataset train = periodic(2000);
  Gpt2Model cpu = gpt2_random(tiny_gpt2_config(), 11), gpu = gpt2_random(tiny_gpt2_config(), 11, Device::cuda());
  LmTrainConfig cfg = small_config();
  cfg.verbose = false;
  std::ostringstream log;
  LmTrainResult rc = train_lm(cpu, train, nullptr, cfg, log);
  LmTrainResult rg = train_lm(gpu, train, nullptr, cfg, log);
  CHECK(rg.losses.front() == doctest::Approx(rc.losses.front()).epsilon(1e-4));
  CHECK(rg.grad_norms.front() == doctest::Approx(rc.grad_norms.front()).epsilon(1e-3));
  CHECK(rg.losses.back() < 0.5 * rg.losses.front());
  CHECK(rg.losses.back() == doctest::Approx(rc.losses.back()).epsilon(0.05));
}
