// The cache of aria-pretrained models (train/model_cache.h): built once, reused, keyed by recipe and
// corpus, and never trusted when half-written (no marker, a broken marker, missing files); stale
// temporary folders of dead builds are removed; a failed build leaves nothing behind.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "core/error.h"
#include "model/gpt2.h"
#include "train/default_experiment.h"
#include "train/model_cache.h"
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

TEST_CASE("the cache root: ARIA_CACHE, else XDG_CACHE_HOME/aria, else HOME/.cache/aria") {
  const char* old = std::getenv("ARIA_CACHE");
  const std::string saved = old ? old : "";
  ::setenv("ARIA_CACHE", "/tmp/somewhere", 1);
  CHECK(model_cache_root() == "/tmp/somewhere");
  ::unsetenv("ARIA_CACHE");
  ::setenv("XDG_CACHE_HOME", "/tmp/xdg", 1);
  CHECK(model_cache_root() == "/tmp/xdg/aria");
  ::unsetenv("XDG_CACHE_HOME");
  CHECK(model_cache_root() == std::string(std::getenv("HOME")) + "/.cache/aria");
  if (old) ::setenv("ARIA_CACHE", saved.c_str(), 1);
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
