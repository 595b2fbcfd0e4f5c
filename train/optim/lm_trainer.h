// Language-model training of a GPT-2 (pretraining or plain fine-tuning), llm.c style: a config
// struct, a result struct and one function. Per step: grad_accum micro-batches of forward
// (gpt2_lm_loss) and backward, the global gradient norm, clipping and the 1/grad_accum averaging
// folded into AdamW's grad_scale, one AdamW step (default_decay_groups) at the scheduled lr.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <ostream>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "aria/model/gpt2.h"
#include "aria/train/data/lm_data.h"
#include "aria/train/optim/schedule.h"
#include "aria/train/optim/train_state.h"

namespace aria {

// The callbacks (train/optim/train_state.h) are TrainCallbacks': on_report after every step (its
// loss, norm, lr), on_evaluation after every validation ({loss}), extra_loss added to each
// micro-batch's LM loss, stop_requested (below).
struct LmTrainConfig : TrainCallbacks {
  int batch_size = 8;     // sequences per micro-batch
  int seq_len = 64;       // tokens per sequence (<= n_positions)
  int steps = 100;        // optimizer steps (0: only the validation loss of the model as it is)
  int grad_accum = 1;     // micro-batches per optimizer step
  int warmup_steps = 0;
  int eval_every = 0;     // evaluate on val every N steps (0: only at the end)
  int eval_batches = 8;   // validation batches per evaluation (always the same windows)
  int log_every = 10;     // progress line every N steps when the log is not a terminal
  double lr = 6e-4;
  double min_lr_ratio = 0.1;
  double weight_decay = 0.1;
  double max_grad_norm = 1.0;  // <= 0: no clipping
  double beta1 = 0.9, beta2 = 0.95;
  ScheduleConfig::Kind schedule = ScheduleConfig::Kind::Cosine;
  uint64_t seed = 1337;   // training batches; validation windows use a seed derived from it
  bool verbose = true;    // header, parameter groups, progress and evaluations on `log`
  // Mixed precision (CUDA only): a bfloat16 copy of the model is trained with float32 master
  // weights and moments; the masters are written back into the model at the end.
  bool bf16 = false;
  // Checkpoints (train/optim/lm_checkpoint.h): after every checkpoint_every optimizer steps (0: never)
  // the model, optimizer, sampler and history go to checkpoint_dir. With resume, training starts
  // from checkpoint_dir's state instead of step 0 (the model's current weights are replaced), and
  // ends with the same weights and losses, bit for bit, as a run that was never interrupted (on the
  // same device and thread count: the kernels are deterministic, the reduction orders are not
  // portable across them).
  int checkpoint_every = 0;
  std::string checkpoint_dir;
  bool resume = false;
  // stop_requested (TrainCallbacks) is asked after every optimizer step; true writes a checkpoint
  // (when checkpoint_dir is set) and returns with LmTrainResult::stopped (SIGINT/SIGTERM in the CLI).
  // The model is then left as it is.
};

struct LmTrainResult {
  std::vector<double> losses;      // mean training loss of each step (over its micro-batches)
  std::vector<double> grad_norms;  // global norm of each step's averaged gradient, before clipping
  std::vector<double> lrs;         // base lr times the schedule's multiplier
  std::vector<std::pair<int, double>> val_losses;  // (steps done, validation loss)
  double final_val_loss = std::numeric_limits<double>::quiet_NaN();  // NaN without val
  double tokens_per_second = 0;    // training tokens / training time (evaluation excluded)
  double train_seconds = 0;
  RngState sampler_state;          // the training batcher's state after the last step (seed, windows drawn)
  int64_t tokens_per_step = 0;     // batch x seq x grad_accum (the curve's x axis is step x this)
  int resumed_from = 0;            // steps taken from a checkpoint (0: a fresh run)
  bool stopped = false;            // stop_requested ended the run early (after losses.size() steps)
};

// The settings a checkpoint must share with the run that resumes it (lm_checkpoint.h "run").
nlohmann::ordered_json lm_run_identity(const LmTrainConfig& cfg, const Gpt2Config& model, uint64_t train_tokens,
                                       uint64_t val_tokens);

// Trains every parameter of `model` (sets requires_grad on all of them). Throws aria::Error for a
// bad config, token ids outside the vocabulary, a corpus shorter than seq_len + 1 tokens, or a
// non-finite loss / gradient norm (naming the step).
LmTrainResult train_lm(Gpt2Model& model, const TokenDataset& train, const TokenDataset* val,
                       const LmTrainConfig& cfg, std::ostream& log);

// Mean next-token loss over `batches` batches of random windows drawn with `seed`, under NoGradGuard.
double evaluate_lm(const Gpt2Model& model, const TokenDataset& data, int batch_size, int seq_len, int batches,
                   uint64_t seed);

}  // namespace aria
