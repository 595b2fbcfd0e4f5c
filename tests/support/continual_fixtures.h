// Shared by the continual-trainer test suites: a tiny GPT-2, learnable synthetic tasks over its
// 64-token vocabulary, small settings, and bitwise model comparison.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "aria/train/continual/continual_trainer.h"

namespace aria::testing {

ContinualModel plain_model();
// Learnable synthetic tasks over the 64-token vocabulary.
//   "range":  label 0 sequences use tokens [1, 32), label 1 tokens [32, 64)
//   "parity": label 0 sequences use odd tokens, label 1 even tokens
//   "three":  3 labels, tokens from [1 + 21 label, 22 + 21 label)
ClsTaskData synthetic_task(const std::string& kind, int n_train, int n_test, uint64_t seed);
AriaSettings small_aria_settings();
TrainSettings small_train_settings(int64_t steps);
TrainerOptions quiet();
// A temp path for a checkpoint, removed if present and not created.
std::filesystem::path checkpoint_temp_dir(const std::string& tag);
// One continual run as a list of actions (evaluate, then per task: add_task, 3 steps, the rest of the
// task, consolidate, evaluate; multitask: 4 joint steps, the rest, evaluate), so that a test can take a
// checkpoint between any two of them and resume.
struct Run {
  ClsTaskData t0 = synthetic_task("range", 20, 12, 1), t1 = synthetic_task("parity", 20, 12, 2);
  ClsTaskData t2 = synthetic_task("three", 20, 12, 3);
  std::vector<const ClsTaskData*> all = {&t0, &t1, &t2};
  std::vector<std::function<void(ContinualTrainer&)>> actions(const std::string& method);
};

// Bitwise equality of every parameter (names, shapes, dtypes and bytes), as doctest CHECKs.
void check_bitwise_equal(const ContinualModel& a, const ContinualModel& b);

// Bitwise comparison of two trainers' states (counters, precision, model, history, optimizer and SPC
// state), wherever their tensors live. b was resumed from a checkpoint and has trained since when
// `b_stepped` (a step's statistics are not part of a checkpoint).
void check_same_state(const ContinualTrainer& a, const ContinualTrainer& b, bool b_stepped);

}  // namespace aria::testing
