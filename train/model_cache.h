// aria's cache of small GPT-2 models that it pretrains itself ("cache:<name>" in an experiment
// config): built once from a recipe and a corpus, then reused.
//
// Layout: <root>/models/<name>-<key>/ holds a Hugging Face GPT-2 directory (config.json,
// model.safetensors, written by gpt2_save), the vocabulary it was trained with (vocab.json,
// merges.txt) and aria-cache.json, the marker: recipe, corpus, losses and timing. <key> is a hash of
// the recipe, the corpus bytes and the vocabulary bytes, so a changed corpus or recipe builds a new
// model instead of silently reusing an old one.
//
// Crash safety: a model is built in <root>/models/<name>-<key>.tmp.<pid>/, the marker is written
// last, and only then is the folder renamed to its final name. A folder without a valid marker (or
// without its model files) is not a cache entry: it is removed and rebuilt. Temporary folders of
// processes that no longer run are removed. Two processes building the same entry at once both
// finish; the second rename loses and that process uses the first's model.
//
// <root>: $ARIA_CACHE if set, else $XDG_CACHE_HOME/aria, else $HOME/.cache/aria.
#pragma once
#include <cstdint>
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/device.h"
#include "model/gpt2_config.h"
#include "train/lm_trainer.h"

namespace aria {

// How a cached model is made: a random GPT-2 of `arch` pretrained with train_lm.
struct PretrainRecipe {
  std::string name = "default";  // "cache:<name>"
  Gpt2Config arch;
  LmTrainConfig train;
  uint64_t init_seed = 1337;
  int64_t max_corpus_bytes = 0;  // read at most this many bytes of the corpus (whole lines); 0 = all
};

nlohmann::ordered_json pretrain_recipe_to_json(const PretrainRecipe& r);

struct ModelCacheRequest {
  PretrainRecipe recipe;
  std::string corpus;      // training text
  std::string validation;  // validation text ("" = none)
  std::string vocab_dir;   // vocab.json + merges.txt
  std::string root;        // "" = model_cache_root()
};

struct CachedModel {
  std::string dir;           // the Hugging Face directory to load
  std::string key;           // 16 hex digits
  bool built = false;        // true when this call pretrained it
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

// Returns the cached model, pretraining it on `device` first when there is no complete entry.
// Progress of a build goes to `log`. Throws aria::Error for missing inputs or a failed build (the
// temporary folder is removed).
CachedModel ensure_cached_model(const ModelCacheRequest& req, Device device, std::ostream& log);

}  // namespace aria
