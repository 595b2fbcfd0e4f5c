// aria's cache of small GPT-2 models that it pretrains itself ("cache:<name>" in an experiment
// config): built once from a recipe and a corpus, then reused.
//
// Layout: <root>/models/<name>-<key>/ holds a Hugging Face GPT-2 directory (config.json,
// model.safetensors, written by gpt2_save), the vocabulary it was trained with (vocab.json,
// merges.txt), aria-cache.json, the marker: recipe, corpus, losses and timing, and the learning
// curve (curve.json, curve.svg: train and validation loss against tokens, train/report/lm_curve.h).
// <key> is a hash of the recipe, the training data and the vocabulary bytes, so a changed corpus
// or recipe builds a new model instead of silently reusing an old one. The data is the corpus
// text's bytes, or for a recipe trained on token shards (train/data/token_shards.h) every shard's name,
// token count and payload checksum as its header states them (the 50 MB of tokens are not read
// to compute the key; they are validated when a build opens them).
//
// Resumable builds: a recipe with train.checkpoint_every > 0 checkpoints its pretraining into
// <root>/models/<name>-<key>.partial/ (train/optim/lm_checkpoint.h); a build that was stopped (a signal,
// a time limit, a crash) continues from there on the next call, and the folder is removed once the
// entry is complete.
//
// Crash safety: a model is built in <root>/models/<name>-<key>.tmp.<pid>/, the marker is written
// last, and only then is the folder renamed to its final name. A folder without a valid marker (or
// without its model files) is not a cache entry: it is removed and rebuilt. Temporary folders of
// processes that no longer run are removed. Two processes building the same entry at once both
// finish; the second rename loses and that process uses the first's model.
//
// <root>: Context::cache_dir (the programs: $ARIA_CACHE if set, else $XDG_CACHE_HOME/aria, else
// $HOME/.cache/aria).
#pragma once
#include <cstdint>
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "aria/core/device.h"
#include "aria/model/gpt2_config.h"
#include "aria/train/optim/lm_trainer.h"

namespace aria {

// How a cached model is made: a random GPT-2 of `arch` pretrained with train_lm.
struct PretrainRecipe {
  std::string name = "default";  // "cache:<name>"
  Gpt2Config arch;
  LmTrainConfig train;
  uint64_t init_seed = 1337;
  int64_t max_corpus_bytes = 0;  // read at most this many bytes of the corpus (whole lines); 0 = all
  // Trained on token shards (ModelCacheRequest::shards) instead of the corpus text.
  bool uses_shards = false;
  // Refuse to build on the CPU (the recipe is sized for a GPU; on a CPU it would take days). A
  // complete entry is still used on any device.
  bool needs_cuda = false;
};

nlohmann::ordered_json pretrain_recipe_to_json(const PretrainRecipe& r);

struct ModelCacheRequest {
  PretrainRecipe recipe;
  std::string corpus;      // training text
  std::string validation;  // validation text ("" = none)
  std::string shards;      // token shard folder (train_*.bin, validation_*.bin when present) instead of corpus
  std::string vocab_dir;   // vocab.json + merges.txt
  std::string root;        // "" = model_cache_root()
};

struct CachedModel {
  std::string dir;           // the Hugging Face directory to load
  std::string key;           // 16 hex digits
  bool built = false;        // true when this call pretrained it
  bool stopped = false;      // recipe.train.stop_requested ended the build early: no entry (dir does not
                             // exist yet); with checkpoints, the next call continues it
  double build_seconds = 0;  // time of the build (this call's, or the stored one when reused)
  nlohmann::json marker;     // aria-cache.json
};

std::string model_cache_root();
// The hash naming a request's entry (reads the corpus and vocabulary files).
std::string model_cache_key(const ModelCacheRequest& req);
// The entry's final folder, whether or not it exists.
std::string model_cache_dir(const ModelCacheRequest& req);
// True when `dir` is a complete entry: a marker that parses and names this key, and the model files.
bool model_cache_complete(const std::string& dir, const std::string& key);

// Where a build of this entry keeps its checkpoints (<entry>.partial).
std::string model_cache_partial_dir(const std::string& entry_dir);

// Returns the cached model, pretraining it on `device` first when there is no complete entry.
// Progress of a build goes to `log`. Throws aria::Error for missing inputs or a failed build (the
// temporary folder is removed).
CachedModel ensure_cached_model(const ModelCacheRequest& req, Device device, std::ostream& log);

}  // namespace aria
