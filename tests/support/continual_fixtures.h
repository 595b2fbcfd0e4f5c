// Shared by the continual-trainer test suites: a tiny GPT-2, learnable synthetic tasks over its
// 64-token vocabulary, small settings, and bitwise model comparison.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include "train/continual_trainer.h"

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
// Bitwise equality of every parameter (names, shapes, dtypes and bytes), as doctest CHECKs.
void check_bitwise_equal(const ContinualModel& a, const ContinualModel& b);

}  // namespace aria::testing
