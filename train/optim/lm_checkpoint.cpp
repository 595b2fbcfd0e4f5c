#include "aria/train/optim/lm_checkpoint.h"

#include <filesystem>
#include <map>

#include "aria/core/atomic_dir.h"
#include "aria/core/autograd.h"
#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/model/safetensors.h"
#include "aria/train/continual/checkpoint.h"  // rng_state_to_json / rng_state_from_json

namespace aria {

namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

constexpr const char* kTensorsFile = "lm_checkpoint.safetensors";
constexpr const char* kStateFile = "lm_state.json";

// The first key whose value differs between the two "run" objects (or is missing in one), "" if none.
std::string first_difference(const ojson& saved, const ojson& now) {
  for (const auto& [k, v] : now.items())
    if (!saved.contains(k) || saved.at(k) != v) return k;
  for (const auto& [k, v] : saved.items())
    if (!now.contains(k)) return k;
  return "";
}

}  // namespace

bool is_lm_checkpoint(const std::string& dir) {
  std::error_code ec;
  return fs::is_regular_file(fs::path(dir) / kStateFile, ec) && fs::is_regular_file(fs::path(dir) / kTensorsFile, ec);
}

void save_lm_checkpoint(const std::string& dir, const Gpt2Model& model, const AdamW& opt,
                        const LmCheckpointState& s) {
  io::AtomicDir out(dir, "pretraining checkpoint");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, t] : model.named_parameters()) tensors.emplace_back("model." + name, t);
  for (const auto& [key, t] : opt.state_tensors()) tensors.emplace_back("optim." + key, t);
  save_safetensors(out.file(kTensorsFile), tensors, {{"format", kLmCheckpointFormat}});
  ojson val = ojson::array();
  for (const auto& [step, loss] : s.val_losses) val.push_back({step, loss});
  // nlohmann writes doubles with enough digits to read back the same bits: the history is exact.
  const ojson j = {{"format", kLmCheckpointFormat},
                   {"steps_done", s.steps_done},
                   {"adam_steps", s.adam_steps},
                   {"sampler", ojson::parse(rng_state_to_json(s.sampler).dump())},
                   {"train_seconds", s.train_seconds},
                   {"run", s.run},
                   {"losses", s.losses},
                   {"grad_norms", s.grad_norms},
                   {"lrs", s.lrs},
                   {"val_losses", val}};
  io::write_file_atomic(out.file(kStateFile), j.dump() + "\n");
  out.commit();
}

LmCheckpointState load_lm_checkpoint(const std::string& dir, Gpt2Model& model, AdamW& opt,
                                     const ojson& expected_run) {
  io::verify_manifest(dir, "pretraining checkpoint");
  const std::string where = (fs::path(dir) / kStateFile).string();
  ojson j;
  try {
    j = ojson::parse(io::read_file(where, "pretraining checkpoint state"));
  } catch (const nlohmann::json::exception& e) {
    ARIA_FAIL("'", where, "' is not valid JSON (", e.what(), ")");
  }
  LmCheckpointState s;
  try {
    ARIA_CHECK(j.value("format", "") == kLmCheckpointFormat, where, ": not a pretraining checkpoint (format '",
               j.value("format", ""), "', expected '", kLmCheckpointFormat, "')");
    s.run = j.at("run");
    const std::string diff = first_difference(s.run, expected_run);
    ARIA_CHECK(diff.empty(), where, ": the checkpoint was made with ", diff, " = ",
               s.run.contains(diff) ? s.run[diff].dump() : "(absent)", ", this run has ",
               expected_run.contains(diff) ? expected_run[diff].dump() : "(absent)",
               ": resume with the settings of the run that wrote it");
    s.steps_done = j.at("steps_done").get<int>();
    s.adam_steps = j.at("adam_steps").get<int64_t>();
    s.sampler = rng_state_from_json(nlohmann::json::parse(j.at("sampler").dump()), where);
    s.train_seconds = j.at("train_seconds").get<double>();
    s.losses = j.at("losses").get<std::vector<double>>();
    s.grad_norms = j.at("grad_norms").get<std::vector<double>>();
    s.lrs = j.at("lrs").get<std::vector<double>>();
    for (const ojson& v : j.at("val_losses")) s.val_losses.emplace_back(v.at(0).get<int>(), v.at(1).get<double>());
  } catch (const nlohmann::json::exception& e) {
    ARIA_FAIL(where, ": malformed (", e.what(), ")");
  }
  ARIA_CHECK(s.steps_done >= 0 && size_t(s.steps_done) == s.losses.size() && s.losses.size() == s.grad_norms.size() &&
                 s.losses.size() == s.lrs.size(),
             where, ": steps_done (", s.steps_done, ") disagrees with the history (", s.losses.size(), " losses)");

  const SafeTensorsFile file = SafeTensorsFile::open((fs::path(dir) / kTensorsFile).string());
  NoGradGuard no_grad;
  for (const auto& [name, p] : model.named_parameters()) {
    const std::string key = "model." + name;
    const SafeTensorEntry* e = file.find(key);
    ARIA_CHECK(e, file.path(), ": missing tensor '", key, "'");
    ARIA_CHECK(e->shape == p.shape() && e->dtype == p.dtype(), file.path(), ": tensor '", key, "' is ",
               dtype_name(e->dtype), " ", shape_str(e->shape), ", the model trains ", dtype_name(p.dtype()), " ",
               shape_str(p.shape()));
    const Tensor v = file.load(key, p.dtype());
    const int64_t bad = first_nonfinite(v);
    ARIA_CHECK(bad < 0, file.path(), ": tensor '", key, "' holds a non-finite value at index ", bad);
    Tensor(p).copy_from(v);
  }
  std::map<std::string, Tensor> optim;
  for (const SafeTensorEntry& e : file.entries())
    if (e.name.rfind("optim.", 0) == 0) optim[e.name.substr(6)] = file.load(e.name, e.dtype);
  opt.load_state(optim, s.adam_steps);
  return s;
}

}  // namespace aria
