// Token shards (train/data/token_shards.h): write/read round trip, every kind of damage detected with the
// file named (truncated, corrupted payload, bad magic, wrong vocabulary, trailing bytes), the
// seeded window sampler over shards (deterministic from (seed, counter), windows inside one shard),
// parallel tokenization equal to serial, and a short pretraining run on shards.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <fstream>
#include <sstream>

#include "aria/core/error.h"
#include "aria/model/gpt2.h"
#include "aria/model/tokenizer.h"
#include "aria/train/data/lm_data.h"
#include "aria/train/optim/lm_trainer.h"
#include "aria/train/data/token_shards.h"
#include "tests/support/test_util.h"

using namespace aria;
namespace fs = std::filesystem;

namespace {

std::vector<int32_t> ramp(size_t n, int vocab) {
  std::vector<int32_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = int32_t((i * 7 + 3) % size_t(vocab));
  return v;
}

std::string bytes_of(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

void put_bytes(const fs::path& p, const std::string& b) { std::ofstream(p, std::ios::binary | std::ios::trunc) << b; }

}  // namespace

TEST_CASE("token shards: round trip of ids, header fields and the shard directory") {
  const fs::path dir = testing::fresh_temp_dir("shards_rt");
  const auto ids = ramp(1001, 50257);  // odd length: the checksum's zero-padded tail
  const auto paths = write_split_shards(dir.string(), "train", ids, 50257, 400);
  REQUIRE(paths.size() == 3);
  CHECK(fs::path(paths[0]).filename() == "train_000000.bin");
  CHECK(fs::file_size(paths[2]) == kShardHeaderBytes + 2 * 201);
  const TokenShardSet set = open_shards(dir.string(), "train", 50257);
  CHECK(set.total_tokens == 1001);
  CHECK(set.vocab_size == 50257);
  std::vector<int32_t> back;
  for (const auto& s : set.shards) back.insert(back.end(), s->data(), s->data() + s->size());
  CHECK(back == ids);
  CHECK(list_shards(dir.string(), "validation").empty());
  // Writing a split again replaces its old shards (no stale train_000002.bin left behind).
  write_split_shards(dir.string(), "train", ramp(500, 50257), 50257, 400);
  CHECK(list_shards(dir.string(), "train").size() == 2);
  CHECK(open_shards(dir.string(), "train").total_tokens == 500);
  fs::remove_all(dir);
}

TEST_CASE("token shards: truncated, corrupted, foreign and wrong-vocabulary shards are errors naming the file") {
  const fs::path dir = testing::fresh_temp_dir("shards_bad");
  const fs::path p = dir / "train_000000.bin";
  write_token_shard(p.string(), ramp(300, 1000), 1000);
  const std::string good = bytes_of(p);
  const std::string name = p.string();
  CHECK_NOTHROW(TokenShard::open(name, 1000));

  put_bytes(p, good.substr(0, good.size() - 2));
  CHECK_THROWS_WITH_AS(TokenShard::open(name), doctest::Contains((name + "' is truncated").c_str()), aria::Error);
  put_bytes(p, good.substr(0, 20));
  CHECK_THROWS_WITH_AS(TokenShard::open(name), doctest::Contains("shorter than the 64-byte header"), aria::Error);
  put_bytes(p, good + "xy");
  CHECK_THROWS_WITH_AS(TokenShard::open(name), doctest::Contains("trailing bytes"), aria::Error);

  std::string flipped = good;
  flipped[kShardHeaderBytes + 101] ^= 0x01;
  put_bytes(p, flipped);
  CHECK_THROWS_WITH_AS(TokenShard::open(name), doctest::Contains((name + "' is corrupted").c_str()), aria::Error);

  std::string magic = good;
  magic[0] = 'X';
  put_bytes(p, magic);
  CHECK_THROWS_WITH_AS(TokenShard::open(name), doctest::Contains("bad magic"), aria::Error);

  std::string version = good;
  version[8] = 9;
  put_bytes(p, version);
  CHECK_THROWS_WITH_AS(TokenShard::open(name), doctest::Contains("format version 9"), aria::Error);

  put_bytes(p, good);
  CHECK_THROWS_WITH_AS(TokenShard::open(name, 50257), doctest::Contains("vocabulary of 1000 tokens"), aria::Error);
  CHECK_THROWS_WITH_AS(open_shards(dir.string(), "train", 50257), doctest::Contains(name.c_str()), aria::Error);
  CHECK_THROWS_WITH_AS(open_shards(dir.string(), "validation"), doctest::Contains("no validation_*.bin"), aria::Error);
  CHECK_THROWS_WITH_AS(open_shards((dir / "nope").string(), "train"), doctest::Contains("does not exist"), aria::Error);

  CHECK_THROWS_WITH_AS(write_token_shard(name, std::vector<int32_t>{1, 2, 1000}, 1000),
                       doctest::Contains("outside the vocabulary"), aria::Error);
  CHECK_THROWS_WITH_AS(write_token_shard(name, std::vector<int32_t>{1}, 70000), doctest::Contains("uint16"), aria::Error);
  fs::remove_all(dir);
}

TEST_CASE("token shards: the window sampler is seeded, resumable and keeps windows inside one shard") {
  const fs::path dir = testing::fresh_temp_dir("shards_sampler");
  std::vector<int32_t> ids(3000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(i % 1000);
  // Shards of 1000 tokens: every shard is 0..999, so a window inside a shard is strictly consecutive.
  write_split_shards(dir.string(), "train", ids, 1000, 1000);
  TokenDataset d = load_shard_dataset(dir.string(), "train", 1000);
  CHECK(d.size() == 3000);
  LmBatcher a(d, 8, 16, 77), b(d, 8, 16, 77), c(d, 8, 16, 78);
  const RngState s0 = a.state();
  const auto x = a.next().ids.to_ints();
  CHECK(b.next().ids.to_ints() == x);
  CHECK(c.next().ids.to_ints() != x);
  const RngState s1 = a.state();
  CHECK(s1.counter > s0.counter);
  const auto y = a.next();
  const auto yi = y.ids.to_ints(), yt = y.targets.to_ints();
  for (size_t r = 0; r < 8; ++r)
    for (size_t t = 0; t < 16; ++t) {
      CHECK(yt[r * 16 + t] == yi[r * 16 + t] + 1);  // consecutive: never across a shard boundary
      if (t) CHECK(yi[r * 16 + t] == yi[r * 16 + t - 1] + 1);
    }
  // Restoring (seed, counter) replays the same windows.
  LmBatcher r(d, 8, 16, 1);
  r.set_state(s1);
  CHECK(r.next().ids.to_ints() == yi);
  r.set_state(s0);
  CHECK(r.next().ids.to_ints() == x);
  CHECK_THROWS_WITH_AS(LmBatcher(d, 1, 1000, 1), doctest::Contains("corpus too short"), aria::Error);
  CHECK_NOTHROW(LmBatcher(d, 1, 999, 1));
  fs::remove_all(dir);
}

TEST_CASE("token shards: windows are drawn from every shard") {
  const fs::path dir = testing::fresh_temp_dir("shards_spread");
  std::vector<int32_t> ids(3000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(i);
  write_split_shards(dir.string(), "train", ids, 4096, 1000);
  TokenDataset d = load_shard_dataset(dir.string(), "train", 0);
  LmBatcher b(d, 64, 8, 3);
  int per_shard[3] = {0, 0, 0};
  const auto v = b.next().ids.to_ints();
  for (size_t r = 0; r < 64; ++r) {
    const int first = v[r * 8];
    CHECK(first % 1000 <= 1000 - 9);  // the whole window plus its target lies in one shard
    per_shard[first / 1000]++;
  }
  for (int k : per_shard) CHECK(k > 5);
  fs::remove_all(dir);
}

TEST_CASE("token shards: parallel tokenization equals serial tokenization") {
  const std::string vdir = std::string(ARIA_SOURCE_DIR) + "/third_party/gpt2-vocab";
  REQUIRE_MESSAGE(fs::exists(vdir + "/vocab.json"), "GPT-2 vocabulary missing at ", vdir, ": run tools/setup.sh");
  const Gpt2Tokenizer tok = Gpt2Tokenizer::load(vdir + "/vocab.json", vdir + "/merges.txt");
  std::string text;
  for (int i = 0; i < 300; ++i) {
    text += "Paragraph " + std::to_string(i) + " says: the quick brown fox's 3.5 jumps!\n";
    if (i % 7 == 0) text += "\n";  // document breaks
    if (i % 11 == 0) text += "  indented line\n \n\t\n";
  }
  const auto pieces = split_for_tokenizing(text, 100);
  CHECK(pieces.size() > 20);
  std::string joined;
  for (auto p : pieces) joined += p;
  CHECK(joined == text);
  const auto serial = tok.encode(text);
  CHECK(tokenize_parallel(tok, text, 2, 100) == serial);
  CHECK(tokenize_parallel(tok, text, 3, 37) == serial);
  CHECK(tokenize_parallel(tok, text, 1, 1 << 20) == serial);
}

TEST_CASE("token shards: a tiny GPT-2 trains on shards and reports the sampler state") {
  const fs::path dir = testing::fresh_temp_dir("shards_train");
  std::vector<int32_t> ids(4000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(3 + (i * 7) % 13);
  write_split_shards(dir.string(), "train", ids, 64, 1500);
  write_split_shards(dir.string(), "validation", std::vector<int32_t>(ids.begin(), ids.begin() + 500), 64, 1500);
  TokenDataset train = load_shard_dataset(dir.string(), "train", 64);
  TokenDataset val = load_shard_dataset(dir.string(), "validation", 64);
  Gpt2Model m = gpt2_random(testing::tiny_gpt2_config(), 1, Device::cpu());
  LmTrainConfig c;
  c.batch_size = 8;
  c.seq_len = 16;
  c.steps = 40;
  c.lr = 1e-2;
  c.warmup_steps = 4;
  c.verbose = false;
  const LmTrainResult r = train_lm(m, train, &val, c, std::cout);
  CHECK(r.losses.back() < r.losses.front() * 0.7);
  CHECK(std::isfinite(r.final_val_loss));
  CHECK(r.sampler_state.seed == c.seed);
  CHECK(r.sampler_state.counter > 0);
  // Same seed, same shards: the same losses (the sampler is reproducible).
  Gpt2Model m2 = gpt2_random(testing::tiny_gpt2_config(), 1, Device::cpu());
  const LmTrainResult r2 = train_lm(m2, train, &val, c, std::cout);
  CHECK(r2.losses == r.losses);
  // A model whose vocabulary is smaller than the shards' is refused.
  TokenDataset big = load_shard_dataset(dir.string(), "train", 64);
  Gpt2Model small = gpt2_random(testing::tiny_gpt2_config(32), 1, Device::cpu());
  CHECK_THROWS_WITH_AS(train_lm(small, big, nullptr, c, std::cout), doctest::Contains("larger than the model's 32"),
                       aria::Error);
  fs::remove_all(dir);
}
