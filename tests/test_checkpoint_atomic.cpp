// A checkpoint is switched in whole: the writer is stopped (as by a kill) at every fsync and rename of
// a save over an existing checkpoint, and the folder must then load as the old save or the new one,
// bit for bit, never as a mix. Mixed and partial folders are refused with a clear error.
#include <doctest/doctest.h>

#include <sys/resource.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "aria/core/atomic_dir.h"
#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/train/continual/checkpoint.h"
#include "aria/train/continual/continual_trainer.h"
#include "tests/support/continual_fixtures.h"

using namespace aria;
using namespace aria::testing;
namespace fs = std::filesystem;

namespace {

struct Killed {};  // not an aria::Error: no clean-up that catches errors runs, as after a kill

// Stops the writer at durability step `at` (0-based); counts the steps it saw.
struct KillAt {
  int at, seen = 0;
  std::vector<std::string> points;
  void operator()(const std::string& point) {
    points.push_back(point);
    if (seen++ == at) throw Killed{};
  }
};

struct HookGuard {
  ~HookGuard() { io::set_crash_hook(nullptr); }
};

// A trainer of `method` on task t0 after `steps` of its 4 steps.
ContinualTrainer trainer_on(const ClsTaskData& t0, const std::string& method, int64_t steps) {
  ContinualTrainer tr(plain_model(), small_aria_settings(), small_train_settings(4), method_spec(method), quiet());
  tr.add_task(t0.name, 2);
  tr.train_steps(t0, steps);
  return tr;
}

}  // namespace

TEST_CASE("a save killed at any fsync or rename leaves the old checkpoint or the new one") {
  const ClsTaskData t0 = synthetic_task("range", 16, 8, 1);
  ContinualTrainer tr = trainer_on(t0, "ewc", 2);
  const fs::path dir = checkpoint_temp_dir("atomic");
  tr.save(dir.string());  // the old checkpoint: 2 steps
  const ContinualTrainer old_state = ContinualTrainer::load(dir.string(), quiet());
  tr.train_steps(t0, 2);  // the new one: 4 steps
  const ContinualTrainer& new_state = tr;
  HookGuard guard;

  int olds = 0, news = 0;
  std::vector<std::string> all_points;
  for (int k = 0;; ++k) {
    KillAt kill{k};
    io::set_crash_hook(std::ref(kill));
    bool finished = false;
    try {
      tr.save(dir.string());
      finished = true;
    } catch (const Killed&) {
    }
    io::set_crash_hook(nullptr);
    if (finished) {
      all_points = kill.points;
      break;
    }
    INFO("killed at step ", k, ": ", kill.points.back());
    ContinualTrainer loaded = ContinualTrainer::load(dir.string(), quiet());
    if (loaded.optimizer_steps() == old_state.optimizer_steps()) {
      ++olds;
      check_bitwise_equal(loaded.model(), old_state.model());
    } else {
      ++news;
      REQUIRE(loaded.optimizer_steps() == new_state.optimizer_steps());
      check_bitwise_equal(loaded.model(), new_state.model());
    }
    // The next save over whatever the kill left succeeds and gives the new state.
    tr.save(dir.string());
    check_bitwise_equal(ContinualTrainer::load(dir.string(), quiet()).model(), new_state.model());
    // Back to the old checkpoint for the next round.
    old_state.save(dir.string());
  }
  MESSAGE("durability steps of one save: ", all_points.size(), "; kills that left the old save: ", olds,
          ", the new one: ", news);
  CHECK(all_points.size() >= 8);  // three files, the manifest, folder syncs and the switch
  CHECK(olds > 0);
  CHECK(news > 0);  // the kill after the switch but before the final folder sync
  // Nothing of the killed saves is left beside the checkpoint.
  for (const auto& e : fs::directory_iterator(dir.parent_path()))
    CHECK(e.path().filename().string().rfind(dir.filename().string() + ".", 0) != 0);
  fs::remove_all(dir);
}

TEST_CASE("a checkpoint that mixes two saves, misses a file or lacks its manifest is refused") {
  const ClsTaskData t0 = synthetic_task("range", 16, 8, 1);
  ContinualTrainer tr = trainer_on(t0, "finetune", 1);
  const fs::path a = checkpoint_temp_dir("mix_a"), b = checkpoint_temp_dir("mix_b");
  tr.save(a.string());
  tr.train_steps(t0, 1);
  tr.save(b.string());

  // New weights with the old counters, history and RNG: the kill the old writer allowed.
  fs::copy_file(a / kCheckpointTrainerFile, b / kCheckpointTrainerFile, fs::copy_options::overwrite_existing);
  CHECK_THROWS_WITH_AS(ContinualTrainer::load(b.string(), quiet()),
                       doctest::Contains("mixes files of different saves (or one was changed or damaged): "
                                         "'trainer.json' does not match manifest.json"),
                       Error);
  fs::remove(a / kCheckpointTensorsFile);
  CHECK_THROWS_WITH_AS(ContinualTrainer::load(a.string(), quiet()),
                       doctest::Contains("is incomplete: 'checkpoint.safetensors' is missing"), Error);
  fs::remove(b / io::kManifestFile);
  CHECK_THROWS_WITH_AS(ContinualTrainer::load(b.string(), quiet()), doctest::Contains("has no manifest.json"), Error);

  // A folder with someone else's files is never replaced by a save.
  fs::remove_all(a);
  fs::create_directories(a);
  { io::FileWriter(( a / "notes.txt").string()).write("mine"); }
  CHECK_THROWS_WITH_AS(tr.save(a.string()), doctest::Contains("was not written by aria"), Error);
  CHECK(fs::exists(a / "notes.txt"));

  // The fallback switch (two renames) killed between them: the error says where the old save is.
  fs::remove_all(a);
  fs::remove_all(b);
  tr.save(b.string());
  const fs::path old = b.string() + ".old.4242";
  fs::rename(b, old);
  const std::string hint = "an interrupted save left the previous checkpoint in '" + old.string();
  CHECK_THROWS_WITH_AS(ContinualTrainer::load(b.string(), quiet()), doctest::Contains(hint.c_str()), Error);
  fs::remove_all(old);
}

TEST_CASE("a checkpoint with NaN weights, or a config its tensors contradict, is refused before allocating") {
  const ClsTaskData t0 = synthetic_task("range", 16, 8, 1);
  ContinualTrainer tr = trainer_on(t0, "finetune", 1);
  const fs::path dir = checkpoint_temp_dir("nonfinite");
  tr.save(dir.string());

  // config.json claiming a million layers: refused from the tensor file's header, nothing allocated.
  const std::string cfg_path = (dir / kCheckpointConfigFile).string();
  const std::string cfg = io::read_file(cfg_path, "config");
  std::string huge = cfg;
  const std::string from = "\"n_layer\": 2";
  REQUIRE(huge.find(from) != std::string::npos);
  huge.replace(huge.find(from), from.size(), "\"n_layer\": 1000000");
  io::write_file_atomic(cfg_path, huge);
  io::write_manifest(dir.string());
  CHECK_THROWS_WITH_AS(ContinualTrainer::load(dir.string(), quiet()),
                       doctest::Contains("holds 2 layers, config.json says n_layer = 1000000"), Error);
  io::write_file_atomic(cfg_path, cfg);
  io::write_manifest(dir.string());
  CHECK_NOTHROW(ContinualTrainer::load(dir.string(), quiet()));

  // A NaN in a weight (a run that diverged and was saved): named, not loaded.
  Tensor w = tr.model().named_parameters()[3].second;
  const std::string name = tr.model().named_parameters()[3].first;
  std::vector<double> v = w.to_doubles();
  v[1] = NAN;
  w.detach().copy_from(Tensor::from_vector(v, w.shape(), w.dtype()));
  tr.save(dir.string());
  const std::string want = "tensor 'model." + name + "' holds a non-finite value at index 1";
  CHECK_THROWS_WITH_AS(ContinualTrainer::load(dir.string(), quiet()), doctest::Contains(want.c_str()), Error);
  fs::remove_all(dir);
}

TEST_CASE("a save that the disk refuses fails naming the file, keeps the previous checkpoint and leaves nothing") {
  const ClsTaskData t0 = synthetic_task("range", 16, 8, 1);
  ContinualTrainer tr = trainer_on(t0, "finetune", 1);
  const fs::path dir = checkpoint_temp_dir("full_disk");
  tr.save(dir.string());
  tr.train_steps(t0, 1);
  // A real OS refusal: files may not grow past 4 KiB (EFBIG, as a full disk gives ENOSPC).
  struct rlimit old_limit;
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old_limit;
  small.rlim_cur = 4096;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  std::string error;
  try {
    tr.save(dir.string());
  } catch (const Error& e) {
    error = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);
  CHECK(error.find("checkpoint.safetensors") != std::string::npos);
  CHECK(error.find(std::strerror(EFBIG)) != std::string::npos);
  CHECK(ContinualTrainer::load(dir.string(), quiet()).optimizer_steps() == 1);
  for (const auto& e : fs::directory_iterator(dir.parent_path()))
    CHECK(e.path().filename().string().rfind(dir.filename().string() + ".", 0) != 0);
  fs::remove_all(dir);
}
