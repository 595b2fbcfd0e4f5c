// Checkpoints of a ContinualTrainer (ContinualTrainer::save / ::load are defined in
// train/continual/checkpoint.cpp). A checkpoint is a directory:
//   checkpoint.safetensors  every tensor, each in its own dtype (bitwise):
//                             model.<name>   every ContinualModel parameter: trunk (gates and both
//                                            pathways when gated), every task's adapter and head
//                             optim.<key>    AdamW moments m./v. (and per-parameter step counts),
//                                            and the float32 masters master. of a bfloat16 model
//                             spc.<key>      SPC buffers and anchors (SpcState::state_tensors)
//                             method.<key>   a plug-in method's tensors (ContinualMethod::state_tensors)
//   trainer.json            settings (aria + train, as in the experiment config), the precision
//                           that ran ("bf16" | "fp32": auto resolved; load keeps it), the method spec,
//                           the schedule options, model layout (dtype, gated, adapters), the task
//                           registry (name, labels, frozen), the trained task ids, step counters
//                           (optimizer steps = plasticity warmup counter, steps of the current
//                           phase, AdamW steps), RNG states (add_task, Fisher), batcher states by
//                           task name, SPC task count and the accuracy history, and a plug-in
//                           method's state_json as "method_state"
//   config.json             the GPT-2 config (transformers' format)
//   manifest.json           every file's size and checksum (core/atomic_dir.h)
// A save is written into a staging folder and switched in whole (io::AtomicDir): a kill at any point
// leaves the previous checkpoint or the new one, never a mix. Loading first checks the files against
// the manifest (a mixed, partial or damaged checkpoint is refused), then every tensor's presence and
// shape, and rejects unknown model tensors, naming them.
#pragma once
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "aria/core/rng.h"

namespace aria {

inline constexpr const char* kCheckpointTensorsFile = "checkpoint.safetensors";
inline constexpr const char* kCheckpointTrainerFile = "trainer.json";
inline constexpr const char* kCheckpointConfigFile = "config.json";
inline constexpr int kCheckpointVersion = 2;  // 2: with manifest.json

// True when DIR holds the three files of a trainer checkpoint.
bool is_trainer_checkpoint(const std::string& dir);

nlohmann::json rng_state_to_json(const RngState& s);
// `where` names the source in error messages.
RngState rng_state_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace aria
