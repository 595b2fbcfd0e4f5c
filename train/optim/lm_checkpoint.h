// Checkpoints of train_lm, so that an interrupted pretraining run continues exactly where it
// stopped (`aria pretrain --checkpoint-every N` / `--resume DIR`, and the model cache's builds).
// A checkpoint is a folder written whole or not at all (io::AtomicDir):
//   lm_checkpoint.safetensors  model.<name>  every parameter of the model being trained, in its own
//                                            dtype (the bfloat16 copy under mixed precision: bitwise)
//                              optim.<key>   AdamW's state_tensors (moments, float32 masters, counts)
//   lm_state.json              the steps done, AdamW's step count, the training sampler's RNG state,
//                              the history so far (loss, gradient norm and lr of every step, the
//                              validation losses), the training seconds, and "run": the settings
//                              that decide the result (batch, sequence, steps, schedule, lr, seeds,
//                              precision, evaluation, corpus sizes, the model's shape)
//   manifest.json              every file's size and checksum
// Resuming with different "run" settings is refused, naming the first one that differs: the resumed
// run would not be the one that was checkpointed.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "aria/core/rng.h"
#include "aria/model/gpt2.h"
#include "aria/train/optim/adamw.h"

namespace aria {

inline constexpr const char* kLmCheckpointFormat = "aria-lm-checkpoint-v1";

struct LmCheckpointState {
  int steps_done = 0;
  int64_t adam_steps = 0;
  RngState sampler;
  std::vector<double> losses, grad_norms, lrs;
  std::vector<std::pair<int, double>> val_losses;
  double train_seconds = 0;
  nlohmann::ordered_json run;  // the settings a resume must match
};

// True when `dir` holds a complete LM checkpoint (its state file and tensor file).
bool is_lm_checkpoint(const std::string& dir);

// Writes `model`'s parameters, `opt`'s state and `state` into `dir` (replacing an earlier checkpoint).
void save_lm_checkpoint(const std::string& dir, const Gpt2Model& model, const AdamW& opt,
                        const LmCheckpointState& state);

// Reads `dir` into `model` (same shape: every parameter present with its shape and dtype) and
// `opt`, and returns the state. Throws aria::Error for a damaged folder (manifest), a missing or
// mis-shaped tensor, a non-finite weight, or `run` settings that differ from `expected_run`.
LmCheckpointState load_lm_checkpoint(const std::string& dir, Gpt2Model& model, AdamW& opt,
                                     const nlohmann::ordered_json& expected_run);

}  // namespace aria
