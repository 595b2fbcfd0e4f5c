#include "aria/train/optim/param_groups.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>

namespace aria {

const char* param_role_name(ParamRole r) {
  switch (r) {
    case ParamRole::Fast: return "fast";
    case ParamRole::Slow: return "slow";
    case ParamRole::Head: return "head";
  }
  return "?";
}

int param_task(const std::string& name) {
  if (name.rfind("task.", 0) != 0) return -1;
  const size_t dot = name.find('.', 5);
  ARIA_CHECK(dot != std::string::npos && dot > 5, "parameter name '", name, "' has no task id");
  return std::stoi(name.substr(5, dot - 5));
}

ParamRole param_role(const std::string& name) {
  if (param_task(name) >= 0) return ParamRole::Head;
  if (name.find(".mlp.slow.") != std::string::npos) return ParamRole::Slow;
  return ParamRole::Fast;
}

std::vector<ParamGroup> build_param_groups(const ContinualModel& m, const std::vector<int>& trained_tasks,
                                           const ParamGroupSettings& s) {
  std::set<int> trained;
  for (int t : trained_tasks) {
    ARIA_CHECK(t >= 0 && t < int(m.tasks.size()), "build_param_groups: task id ", t, " outside [0, ",
               m.tasks.size(), ")");
    trained.insert(t);
  }
  const ParamRole roles[3] = {ParamRole::Fast, ParamRole::Slow, ParamRole::Head};
  const double lrs[3] = {s.lr, s.lr * s.slow_lr_ratio, s.lr * s.head_lr_mult};
  std::vector<ParamGroup> groups;  // fast/decay, fast/no_decay, slow/decay, ...
  for (int r = 0; r < 3; ++r)
    for (bool decay : {true, false}) {
      ParamGroup g{std::string(param_role_name(roles[r])) + (decay ? "/decay" : "/no_decay"), {}, lrs[r]};
      g.weight_decay = decay ? s.weight_decay : 0.0;
      groups.push_back(std::move(g));
    }
  const bool own_gate = s.gate_lr_ratio != 1.0;
  if (own_gate)
    for (bool decay : {true, false}) {
      ParamGroup g{decay ? "gate/decay" : "gate/no_decay", {}, s.lr * s.gate_lr_ratio};
      g.weight_decay = decay ? s.weight_decay : 0.0;
      groups.push_back(std::move(g));
    }
  for (const auto& [name, t] : m.named_parameters()) {
    const int task = param_task(name);
    if (task >= 0 ? !trained.count(task) : s.freeze_trunk) continue;
    const bool gate = own_gate && name.find(".mlp.gate.") != std::string::npos;
    const int r = gate ? 3 : int(param_role(name));
    groups[size_t(2 * r + (t.dim() >= 2 ? 0 : 1))].params.emplace_back(name, t);
  }
  groups.erase(std::remove_if(groups.begin(), groups.end(), [](const ParamGroup& g) { return g.params.empty(); }),
               groups.end());
  return groups;
}

void apply_trainable(const ContinualModel& m, const std::vector<ParamGroup>& groups) {
  std::set<const TensorImpl*> in_groups;
  for (const ParamGroup& g : groups)
    for (const auto& np : g.params) in_groups.insert(np.second.impl_ptr().get());
  for (const auto& [name, t] : m.named_parameters()) Tensor(t).set_requires_grad(in_groups.count(t.impl_ptr().get()) > 0);
}

std::string describe_param_groups(const std::vector<ParamGroup>& groups) {
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "%-16s %8s %12s %10s %8s\n", "group", "tensors", "params", "lr", "wd");
  os << line;
  for (const ParamGroup& g : groups) {
    int64_t n = 0;
    for (const auto& np : g.params) n += np.second.numel();
    std::snprintf(line, sizeof line, "%-16s %8zu %12lld %10.3e %8.4f\n", g.name.c_str(), g.params.size(),
                  static_cast<long long>(n), g.lr, g.weight_decay);
    os << line;
  }
  for (const ParamGroup& g : groups) {
    os << "  " << g.name << ":";
    for (const auto& np : g.params) os << " " << np.first;
    os << "\n";
  }
  return os.str();
}

}  // namespace aria
