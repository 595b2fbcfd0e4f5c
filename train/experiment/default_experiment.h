// The experiment `aria run` runs with no arguments, embedded in the binary: the real tasks of
// third_party/data (docs/data.md) in order, every method, and "cache:default", a small GPT-2 that
// aria pretrains on third_party/data/corpus on first use (train/experiment/model_cache.h). Sized to finish in
// about 15 minutes on a 2-core CPU and well under 2 minutes on an H100 (docs/run.md has the
// measured times). --quick swaps in a much smaller run of the same shape for CI.
#pragma once
#include <string>

#include "aria/train/continual/aria_config.h"
#include "aria/train/experiment/model_cache.h"

namespace aria {

// The default experiment config as JSON text (the format of train/continual/aria_config.h), exactly what
// `aria run --print-config` prints.
const char* default_experiment_json();
ExperimentConfig default_experiment();

// The shortened run: cache:quick, fewer and shorter examples, a few steps per task. Applied on top
// of any config (the tasks, methods and seeds stay).
void make_quick(ExperimentConfig& c);

// The recipe of cache:<name> ("default", "quick" or "base124m"); throws aria::Error for any other name.
PretrainRecipe pretrain_recipe(const std::string& name);

// The token shard folder (train_*.bin and validation_*.bin) of a relative path such as
// "third_party/shards", found as find_data_dir finds data. Throws aria::Error naming
// tools/fetch_corpus.sh and the `aria tokenize --shards` commands that make it when it is missing.
std::string find_shard_dir(const std::string& shard_dir);

// What `aria run --model cache:<name>` builds or reuses: the recipe, the vocabulary, and the data:
// <data_dir>/corpus/{train,validation}.txt, or for a recipe trained on shards the shard folder
// (shard_dir; "" = third_party/shards, found by find_shard_dir). Throws aria::Error when the data
// is missing, saying how to make it.
ModelCacheRequest cached_model_request(const std::string& name, const std::string& data_dir,
                                       const std::string& shard_dir = "");

// Resolves a relative data directory such as "third_party/data": as given when it exists, else
// under Context::home (the programs: $ARIA_HOME), then under the current directory's parents.
// Throws aria::Error listing the places looked at, with a hint to run tools/setup.sh.
std::string find_data_dir(const std::string& data_dir);

}  // namespace aria
