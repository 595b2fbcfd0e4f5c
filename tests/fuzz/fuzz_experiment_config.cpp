// libFuzzer harness: the experiment config (train/continual/aria_config.cpp) that `aria continual --config`
// reads. An accepted config must validate, and its JSON form (what a run folder's config.json holds
// and `--resume` reads back) must parse again to the same JSON.
#include <nlohmann/json.hpp>

#include "tests/fuzz/fuzz_util.h"
#include "aria/train/continual/aria_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aria;
  const std::string path = fuzz::write_file("experiment.json", {reinterpret_cast<const char*>(data), size});
  fuzz::refused_or_ok([&] {
    const ExperimentConfig c = load_experiment_config(path);
    validate_experiment_config(c);
    const nlohmann::json j = experiment_config_to_json(c);
    const nlohmann::json k = experiment_config_to_json(parse_experiment_config(j, "the round trip"));
    if (j != k) std::abort();
  });
  return 0;
}
