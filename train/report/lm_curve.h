// The learning curve of a pretraining run (train_lm's result): train and validation loss against
// the number of training tokens seen, as JSON (the numbers) and as a standalone SVG line chart (no
// script, no library). Written into every cached model (curve.json, curve.svg) and by
// `aria pretrain --curve FILE.json`.
//   {"title": ..., "tokens_per_step": N,
//    "train":      {"step": [...], "tokens": [...], "loss": [...], "lr": [...]},   every optimizer step
//    "validation": {"step": [...], "tokens": [...], "loss": [...]},               every evaluation
//    "final_train_loss": ..., "final_val_loss": ... (null without validation)}
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "aria/train/optim/lm_trainer.h"

namespace aria {

nlohmann::ordered_json lm_curve_json(const LmTrainResult& r, const std::string& title);

// The chart of a curve JSON as above: x = tokens (millions when large), y = loss; the training loss
// every step (thin) and its moving average over 1 % of the steps, the validation loss as points
// joined by a line. Throws aria::Error for a curve without training points or with mismatched arrays.
std::string lm_curve_svg(const nlohmann::ordered_json& curve);

}  // namespace aria
