// The cache of aria-pretrained models (train/experiment/model_cache.h): built once, reused, keyed by recipe and
// corpus, and never trusted when half-written (no marker, a broken marker, missing files); stale
// temporary folders of dead builds are removed; a failed build leaves nothing behind.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "aria/core/context.h"
#include "aria/core/error.h"
#include "aria/model/gpt2.h"
#include "aria/train/experiment/default_experiment.h"
#include "aria/train/experiment/model_cache.h"
#include "aria/train/data/token_shards.h"
#include "tests/support/test_util.h"

using namespace aria;
namespace fs = std::filesystem;

namespace {

const std::string kVocabDir = std::string(ARIA_SOURCE_DIR) + "/third_party/gpt2-vocab";

using testing::TempDir;
using testing::read_file;

void write(const fs::path& p, const std::string& s) { testing::write_file(p.string(), s); }

// A recipe small enough to pretrain in well under a second.
ModelCacheRequest tiny_request(const TempDir& t) {
  std::string corpus;
  for (int i = 0; i < 40; ++i) corpus += "The whale swam past the ship, and the sailors watched it go.\n";
  write(t.dir / "corpus.txt", corpus);
  ModelCacheRequest req;
  req.recipe.name = "test";
  req.recipe.arch.n_layer = 1, req.recipe.arch.n_embd = 16, req.recipe.arch.n_head = 2, req.recipe.arch.n_positions = 32;
  req.recipe.train.steps = 2, req.recipe.train.batch_size = 2, req.recipe.train.seq_len = 16;
  req.recipe.train.verbose = false;
  req.corpus = (t.dir / "corpus.txt").string();
  req.vocab_dir = kVocabDir;
  req.root = (t.dir / "cache").string();
  return req;
}

std::string read(const fs::path& p) { return read_file(p.string()); }

}  // namespace

TEST_CASE("a cached model is built once, then reused") {
  REQUIRE_MESSAGE(fs::exists(kVocabDir + "/vocab.json"), "GPT-2 vocabulary missing: run tools/setup.sh");
  TempDir t("aria_model_cache_");
  const ModelCacheRequest req = tiny_request(t);
  std::ostringstream log;
  CachedModel a = ensure_cached_model(req, Device::cpu(), log);
  CHECK(a.built);
  CHECK(a.key.size() == 16);
  CHECK(a.dir == model_cache_dir(req));
  CHECK(fs::path(a.dir).filename() == "test-" + a.key);
  CHECK(model_cache_complete(a.dir, a.key));
  CHECK(a.marker["recipe"]["arch"]["n_embd"] == 16);
  CHECK(a.marker["training_tokens"].get<int64_t>() > 100);
  CHECK(log.str().find("pretraining cache:test") != std::string::npos);
  // A Hugging Face directory with its vocabulary.
  Gpt2Model m = gpt2_load(a.dir);
  CHECK(m.config.n_embd == 16);
  CHECK(fs::exists(fs::path(a.dir) / "vocab.json"));
  const auto stamp = fs::last_write_time(fs::path(a.dir) / "model.safetensors");

  std::ostringstream log2;
  CachedModel b = ensure_cached_model(req, Device::cpu(), log2);
  CHECK_FALSE(b.built);
  CHECK(b.dir == a.dir);
  CHECK(log2.str().empty());
  CHECK(fs::last_write_time(fs::path(b.dir) / "model.safetensors") == stamp);
  // Nothing but the entry is left in the cache folder.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(fs::path(req.root) / "models")) entries += 1, (void)e;
  CHECK(entries == 1);
}

TEST_CASE("the key follows the recipe and the corpus") {
  TempDir t("aria_model_cache_");
  ModelCacheRequest req = tiny_request(t);
  const std::string k1 = model_cache_key(req);
  CHECK(model_cache_key(req) == k1);
  ModelCacheRequest other = req;
  other.recipe.train.steps = 3;
  CHECK(model_cache_key(other) != k1);
  write(t.dir / "corpus.txt", read(t.dir / "corpus.txt") + "One more line.\n");
  CHECK(model_cache_key(req) != k1);
}

TEST_CASE("a half-written or damaged entry is detected and rebuilt") {
  REQUIRE(fs::exists(kVocabDir + "/vocab.json"));
  TempDir t("aria_model_cache_");
  const ModelCacheRequest req = tiny_request(t);
  std::ostringstream log;
  const CachedModel a = ensure_cached_model(req, Device::cpu(), log);
  const fs::path dir(a.dir), marker = dir / "aria-cache.json";
  // Each damage in turn (one test case: every rebuild pretrains again).
  const std::vector<std::pair<std::string, std::function<void()>>> damages = {
      {"no marker (the build died before writing it)", [&] { fs::remove(marker); }},
      {"a truncated marker", [&] { write(marker, read(marker).substr(0, 20)); }},
      {"a marker of another key",
       [&] {
         std::string s = read(marker);
         s.replace(s.find(a.key), a.key.size(), "0000000000000000");
         write(marker, s);
       }},
      {"the weights are missing", [&] { fs::remove(dir / "model.safetensors"); }},
  };
  for (const auto& [what, damage] : damages) {
    CAPTURE(what);
    damage();
    CHECK_FALSE(model_cache_complete(a.dir, a.key));
    std::ostringstream log2;
    const CachedModel b = ensure_cached_model(req, Device::cpu(), log2);
    CHECK(b.built);
    CHECK(b.dir == a.dir);
    CHECK(log2.str().find("incomplete") != std::string::npos);
    CHECK(model_cache_complete(b.dir, b.key));
    CHECK(gpt2_load(b.dir).config.n_layer == 1);
  }
}

TEST_CASE("temporary folders of dead builds are removed, and a failed build leaves nothing") {
  REQUIRE(fs::exists(kVocabDir + "/vocab.json"));
  TempDir t("aria_model_cache_");
  ModelCacheRequest req = tiny_request(t);
  const fs::path final_dir = model_cache_dir(req);
  fs::create_directories(final_dir.string() + ".tmp.999999999");  // no such process
  write(final_dir.string() + ".tmp.999999999/model.safetensors", "half");
  std::ostringstream log;
  ensure_cached_model(req, Device::cpu(), log);
  CHECK_FALSE(fs::exists(final_dir.string() + ".tmp.999999999"));

  // A corpus too short for the sequence length: the build throws and removes its folder.
  write(t.dir / "short.txt", "Too short.\n");
  req.corpus = (t.dir / "short.txt").string();
  CHECK_THROWS_AS(ensure_cached_model(req, Device::cpu(), log), Error);
  for (const auto& e : fs::directory_iterator(fs::path(req.root) / "models"))
    CHECK_MESSAGE(e.path().filename().string().find(".tmp.") == std::string::npos, e.path().string());
  CHECK_FALSE(fs::exists(model_cache_dir(req)));

  req.corpus = (t.dir / "missing.txt").string();
  CHECK_THROWS_WITH_AS(ensure_cached_model(req, Device::cpu(), log), doctest::Contains("cannot open corpus"), Error);
}

// Which environment variable fills Context::cache_dir is the programs' business: test_environment.cpp.
TEST_CASE("the cache root is Context::cache_dir, and none is a clear error") {
  const std::string saved = context().cache_dir;
  context().cache_dir = "/tmp/somewhere";
  CHECK(model_cache_root() == "/tmp/somewhere");
  context().cache_dir.clear();
  CHECK_THROWS_WITH_AS(model_cache_root(), doctest::Contains("ARIA_CACHE"), Error);
  context().cache_dir = saved;
}

TEST_CASE("the embedded default experiment and the recipes") {
  const ExperimentConfig c = default_experiment();
  CHECK(c.model == "cache:default");
  CHECK(c.tasks.size() >= 4);
  CHECK(c.methods == std::vector<std::string>{"aria", "finetune", "ewc", "adapters", "multitask"});
  const PretrainRecipe r = pretrain_recipe("default");
  CHECK(c.train.max_seq_len <= r.arch.n_positions);
  ExperimentConfig q = c;
  make_quick(q);
  CHECK(q.model == "cache:quick");
  CHECK(q.train.max_seq_len <= pretrain_recipe("quick").arch.n_positions);
  validate_experiment_config(q);
  CHECK_THROWS_WITH_AS(pretrain_recipe("huge"), doctest::Contains("cache:default"), Error);
  CHECK_THROWS_WITH_AS(find_data_dir("no/such/data/dir"), doctest::Contains("tools/setup.sh"), Error);
}

namespace {

// A recipe trained on token shards written into <t>/shards (train and validation).
ModelCacheRequest shard_request(const TempDir& t) {
  ModelCacheRequest req = tiny_request(t);
  std::vector<int32_t> ids;
  for (int i = 0; i < 600; ++i) ids.push_back((i * 37 + 11) % 500);
  write_split_shards((t.dir / "shards").string(), "train", ids, 50257, 256);
  ids.resize(200);
  write_split_shards((t.dir / "shards").string(), "validation", ids, 50257, 256);
  req.corpus.clear();
  req.shards = (t.dir / "shards").string();
  req.recipe.uses_shards = true;
  req.recipe.train.eval_every = 1;
  return req;
}

}  // namespace

TEST_CASE("a cached model on token shards: built once, reused, keyed by the shard headers, with its curve") {
  REQUIRE(fs::exists(kVocabDir + "/vocab.json"));
  TempDir t("aria_model_cache_");
  const ModelCacheRequest req = shard_request(t);
  std::ostringstream log;
  const CachedModel a = ensure_cached_model(req, Device::cpu(), log);
  CHECK(a.built);
  CHECK(a.marker["training_tokens"] == 600);
  CHECK(a.marker["validation_tokens"] == 200);
  CHECK(a.marker["recipe"]["data"] == "shards");
  CHECK(log.str().find("mapped 600 training tokens") != std::string::npos);
  // The learning curve: every step's loss and a validation loss after every step (eval_every 1).
  const auto curve = nlohmann::json::parse(read(fs::path(a.dir) / "curve.json"));
  CHECK(curve["train"]["loss"].size() == 2);
  CHECK(curve["validation"]["loss"].size() == 2);
  CHECK(read(fs::path(a.dir) / "curve.svg").find("<svg") == 0);

  std::ostringstream log2;
  const CachedModel b = ensure_cached_model(req, Device::cpu(), log2);
  CHECK_FALSE(b.built);
  CHECK(b.dir == a.dir);

  // The key comes from the headers: a payload byte flipped behind the header's back keeps the key
  // (nothing re-reads 50 MB of tokens to find an entry), and a build that opens the shard refuses it.
  const fs::path shard = t.dir / "shards" / "validation_000000.bin";
  const std::string good = read(shard);
  std::string bad = good;
  bad[100] ^= 0x01;
  write(shard, bad);
  CHECK(model_cache_key(req) == a.key);
  fs::remove_all(a.dir);
  CHECK_THROWS_WITH_AS(ensure_cached_model(req, Device::cpu(), log2), doctest::Contains("corrupted"), Error);
  write(shard, good);

  // New validation tokens (a rebuilt corpus): another key, another entry.
  std::vector<int32_t> ids(200, 7);
  write_split_shards((t.dir / "shards").string(), "validation", ids, 50257, 256);
  const std::string k2 = model_cache_key(req);
  CHECK(k2 != a.key);
  // One train shard fewer: another key; no train shard at all: an error naming the split.
  fs::remove(t.dir / "shards" / "train_000002.bin");
  CHECK(model_cache_key(req) != k2);
  fs::remove(t.dir / "shards" / "train_000001.bin");
  fs::remove(t.dir / "shards" / "train_000000.bin");
  CHECK_THROWS_WITH_AS(model_cache_key(req), doctest::Contains("no train shards"), Error);
}

TEST_CASE("a stopped build continues from its checkpoint and equals an uninterrupted one") {
  context().cpu_threads = 1;  // one fixed CPU team for both builds (see test_lm_resume.cpp)
  REQUIRE(fs::exists(kVocabDir + "/vocab.json"));
  TempDir t("aria_model_cache_");
  ModelCacheRequest req = shard_request(t);
  req.recipe.train.steps = 6;
  req.recipe.train.checkpoint_every = 2;
  std::ostringstream log;
  ModelCacheRequest whole = req;
  whole.root = (t.dir / "cache-whole").string();
  const CachedModel w = ensure_cached_model(whole, Device::cpu(), log);
  REQUIRE(w.built);

  int steps = 0;
  req.recipe.train.stop_requested = [&] { return ++steps == 3; };
  const CachedModel s = ensure_cached_model(req, Device::cpu(), log);
  CHECK(s.stopped);
  CHECK_FALSE(fs::exists(s.dir));
  CHECK(fs::exists(model_cache_partial_dir(s.dir)));
  req.recipe.train.stop_requested = nullptr;
  std::ostringstream log2;
  const CachedModel r = ensure_cached_model(req, Device::cpu(), log2);
  CHECK(r.built);
  CHECK(log2.str().find("continuing from the checkpoint") != std::string::npos);
  CHECK(r.marker["resumed_from_step"] == 3);
  CHECK_FALSE(fs::exists(model_cache_partial_dir(r.dir)));
  CHECK(r.key == w.key);
  CHECK(read(fs::path(r.dir) / "model.safetensors") == read(fs::path(w.dir) / "model.safetensors"));
  CHECK(read(fs::path(r.dir) / "curve.json") == read(fs::path(w.dir) / "curve.json"));
}

TEST_CASE("cache:base124m: its recipe, a CPU build refused, and missing shards named with the commands that make them") {
  const PretrainRecipe r = pretrain_recipe("base124m");
  CHECK(r.arch.n_layer == 12);
  CHECK(r.arch.n_embd == 768);
  CHECK(r.arch.n_positions == 1024);
  CHECK(r.train.bf16);
  CHECK(r.needs_cuda);
  CHECK(r.uses_shards);
  const int64_t tokens = int64_t(r.train.batch_size) * r.train.seq_len * r.train.grad_accum * r.train.steps;
  // About 6 minutes at ~500K tokens/s (docs/base_model.md): the base and the protocol's GPU run
  // share one 30-minute lease.
  CHECK(tokens >= 150'000'000);
  CHECK(tokens <= 250'000'000);
  CHECK(r.train.warmup_steps > 0);
  CHECK(r.train.schedule == ScheduleConfig::Kind::Cosine);
  CHECK(r.train.checkpoint_every > 0);

  TempDir t("aria_model_cache_");
  fs::create_directories(t.dir / "empty");
  CHECK_THROWS_WITH_AS(cached_model_request("base124m", "third_party/data", (t.dir / "empty").string()),
                       doctest::Contains("tools/fetch_corpus.sh"), Error);
  CHECK_THROWS_WITH_AS(cached_model_request("base124m", "third_party/data", (t.dir / "nowhere").string()),
                       doctest::Contains("aria tokenize --text third_party/corpus/train.txt --shards"), Error);

  // A recipe that needs CUDA is not built on the CPU (it would take days).
  ModelCacheRequest req = shard_request(t);
  req.recipe.needs_cuda = true;
  std::ostringstream log;
  CHECK_THROWS_WITH_AS(ensure_cached_model(req, Device::cpu(), log), doctest::Contains("would take days"), Error);
  CHECK_FALSE(fs::exists(model_cache_dir(req)));
}
