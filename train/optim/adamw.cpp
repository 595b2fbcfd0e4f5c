#include "aria/train/optim/adamw.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

#include "aria/core/ops_inplace.h"

namespace aria {

AdamW::AdamW(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {
  std::map<std::string, std::string> group_of_name;
  std::map<const TensorImpl*, std::string> group_of_tensor;
  std::set<std::string> group_names;
  for (const ParamGroup& g : groups_) {
    const std::string where = "AdamW group '" + g.name + "'";
    ARIA_CHECK(group_names.insert(g.name).second, where, " appears twice");
    ARIA_CHECK(std::isfinite(g.lr) && g.lr >= 0, where, ": learning rate must be >= 0, got ", g.lr);
    ARIA_CHECK(std::isfinite(g.weight_decay) && g.weight_decay >= 0, where, ": weight decay must be >= 0, got ",
               g.weight_decay);
    ARIA_CHECK(g.beta1 >= 0 && g.beta1 < 1, where, ": beta1 must be in [0, 1), got ", g.beta1);
    ARIA_CHECK(g.beta2 >= 0 && g.beta2 < 1, where, ": beta2 must be in [0, 1), got ", g.beta2);
    ARIA_CHECK(g.eps >= 0 && std::isfinite(g.eps), where, ": eps must be >= 0, got ", g.eps);
    for (const auto& [name, p] : g.params) {
      ARIA_CHECK(p.defined(), where, ": parameter '", name, "' is an undefined tensor");
      ARIA_CHECK(p.is_leaf(), where, ": parameter '", name, "' is not a leaf (it was computed by a recorded op)");
      ARIA_CHECK(p.dtype() == DType::F32 || p.dtype() == DType::F64 || p.dtype() == DType::BF16, where,
                 ": parameter '", name, "' is ", dtype_name(p.dtype()),
                 "; AdamW updates float32, float64 or bfloat16 (with float32 master weights) tensors");
      ARIA_CHECK(p.is_contiguous(), where, ": parameter '", name, "' is not contiguous");
      auto [it, fresh] = group_of_name.emplace(name, g.name);
      ARIA_CHECK(fresh, "AdamW: parameter '", name, "' is in group '", it->second, "' and in group '", g.name, "'");
      auto [jt, fresh_t] = group_of_tensor.emplace(p.impl_ptr().get(), g.name + "' as '" + name);
      ARIA_CHECK(fresh_t, "AdamW: one tensor is in group '", jt->second, "' and in group '", g.name, "' as '", name,
                 "'");
    }
  }
  slots_.resize(groups_.size());
  for (size_t i = 0; i < groups_.size(); ++i) slots_[i].resize(groups_[i].params.size());
}

void AdamW::step(double lr_multiplier, double grad_scale) { update(lr_multiplier, grad_scale, Tensor(), 0.0); }

void AdamW::step_clipped(double lr_multiplier, const Tensor& grad_sumsq, double max_norm, double grad_scale) {
  ARIA_CHECK(std::isfinite(max_norm), "AdamW::step_clipped: max norm is not finite (", max_norm, ")");
  ARIA_CHECK(!grad_sumsq.defined() || (grad_sumsq.dtype() == DType::F64 && grad_sumsq.numel() == 1),
             "AdamW::step_clipped: grad_sumsq must be a float64 [1] tensor (grad_sum_squares_on_device), got ",
             grad_sumsq.str());
  update(lr_multiplier, grad_scale, grad_sumsq, max_norm);
}

void AdamW::update(double lr_multiplier, double grad_scale, const Tensor& clip_sumsq, double max_norm) {
  ARIA_CHECK(std::isfinite(lr_multiplier) && lr_multiplier >= 0, "AdamW::step: lr multiplier must be >= 0, got ",
             lr_multiplier);
  ARIA_CHECK(std::isfinite(grad_scale), "AdamW::step: grad scale is not finite (", grad_scale, ")");
  ++steps_;
  // One kernel call per device; in practice every parameter lives on one.
  std::vector<std::pair<Device, std::vector<AdamWItem>>> by_device;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& g = groups_[gi];
    for (size_t pi = 0; pi < g.params.size(); ++pi) {
      const auto& [name, p] = g.params[pi];
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      check_same_shape(p, grad, ("AdamW: gradient of '" + name + "'").c_str());
      Slot& s = slots_[gi][pi];
      if (!s.m.defined()) {
        s.m = Tensor::zeros(p.shape(), state_dtype(p), p.device());
        s.v = Tensor::zeros(p.shape(), state_dtype(p), p.device());
      }
      if (p.dtype() == DType::BF16 && !s.master.defined()) s.master = p.detach().to(DType::F32);
      ++s.count;
      AdamWItem it;
      it.param = p.detach();
      it.grad = grad.is_contiguous() ? grad : grad.contiguous();
      it.m = s.m;
      it.v = s.v;
      it.master = s.master;
      it.lr = float(g.lr * lr_multiplier);
      it.beta1 = float(g.beta1);
      it.beta2 = float(g.beta2);
      it.eps = float(g.eps);
      it.weight_decay = float(g.weight_decay);
      it.bias_correction1 = float(1.0 - std::pow(g.beta1, double(s.count)));
      it.bias_correction2 = float(1.0 - std::pow(g.beta2, double(s.count)));
      it.grad_scale = float(grad_scale);
      it.clip_sumsq = clip_sumsq;
      it.clip_max_norm = float(max_norm);
      auto dev = std::find_if(by_device.begin(), by_device.end(), [&](auto& e) { return e.first == p.device(); });
      if (dev == by_device.end()) dev = by_device.insert(by_device.end(), {p.device(), {}});
      dev->second.push_back(std::move(it));
    }
  }
  for (auto& [device, items] : by_device) ops::adamw_update_(items);
}

// Moments (and the master copy of a bfloat16 parameter) are float32 unless the parameter is float64.
DType AdamW::state_dtype(const Tensor& p) { return p.dtype() == DType::F64 ? DType::F64 : DType::F32; }

Tensor AdamW::master(const std::string& name) const {
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t pi = 0; pi < groups_[gi].params.size(); ++pi)
      if (groups_[gi].params[pi].first == name) return slots_[gi][pi].master;
  ARIA_FAIL("AdamW::master: no parameter named '", name, "'");
}

void AdamW::adopt_masters(const AdamW& previous) {
  std::map<std::string, std::pair<const Tensor*, const Tensor*>> prev;  // name -> (param, master)
  for (size_t gi = 0; gi < previous.groups_.size(); ++gi)
    for (size_t pi = 0; pi < previous.groups_[gi].params.size(); ++pi) {
      const Tensor& master = previous.slots_[gi][pi].master;
      if (master.defined()) prev.emplace(previous.groups_[gi].params[pi].first,
                                         std::make_pair(&previous.groups_[gi].params[pi].second, &master));
    }
  if (prev.empty()) return;
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t pi = 0; pi < groups_[gi].params.size(); ++pi) {
      const auto& [name, p] = groups_[gi].params[pi];
      if (p.dtype() != DType::BF16) continue;
      auto it = prev.find(name);
      if (it == prev.end() || it->second.first->impl_ptr() != p.impl_ptr()) continue;
      const Tensor& master = *it->second.second;
      ARIA_CHECK(master.shape() == p.shape() && master.dtype() == DType::F32 && master.device() == p.device(),
                 "AdamW::adopt_masters: the master of '", name, "' is ", master.str(), ", the parameter is ", p.str());
      Slot& s = slots_[gi][pi];
      if (!s.master.defined()) s.master = master;
    }
}

void AdamW::zero_grad() {
  for (const ParamGroup& g : groups_)
    for (const auto& [name, p] : g.params) p.zero_grad();
}

std::string AdamW::describe() const {
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "%-12s %8s %12s %10s %8s %6s %6s\n", "group", "tensors", "params", "lr", "wd",
                "beta1", "beta2");
  os << line;
  for (const ParamGroup& g : groups_) {
    int64_t n = 0;
    for (const auto& [name, p] : g.params) n += p.numel();
    std::snprintf(line, sizeof line, "%-12s %8zu %12lld %10.3e %8.4f %6.3f %6.3f\n", g.name.c_str(), g.params.size(),
                  static_cast<long long>(n), g.lr, g.weight_decay, g.beta1, g.beta2);
    os << line;
  }
  for (const ParamGroup& g : groups_) {
    os << "  " << g.name << ":";
    for (const auto& [name, p] : g.params) os << " " << name;
    os << "\n";
  }
  return os.str();
}

std::vector<std::pair<std::string, Tensor>> AdamW::state_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t pi = 0; pi < groups_[gi].params.size(); ++pi) {
      const Slot& s = slots_[gi][pi];
      const std::string& name = groups_[gi].params[pi].first;
      if (!s.m.defined()) {
        if (s.master.defined()) out.emplace_back("master." + name, s.master);  // adopted, not updated yet
        continue;
      }
      out.emplace_back("m." + name, s.m);
      out.emplace_back("v." + name, s.v);
      if (s.master.defined()) out.emplace_back("master." + name, s.master);
      if (s.count != steps_) out.emplace_back("step." + name, Tensor::from_vector({double(s.count)}, {1}, DType::I64));
    }
  return out;
}

void AdamW::load_state(const std::map<std::string, Tensor>& state, int64_t steps) {
  ARIA_CHECK(steps >= 0, "AdamW::load_state: negative step count ", steps);
  std::map<std::string, std::pair<size_t, size_t>> where;
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t pi = 0; pi < groups_[gi].params.size(); ++pi) where[groups_[gi].params[pi].first] = {gi, pi};
  // Check everything before changing anything, so a failed load leaves the optimizer as it was.
  for (const auto& [key, t] : state) {
    const size_t dot = key.find('.');
    if (dot == std::string::npos) continue;
    const std::string kind = key.substr(0, dot), name = key.substr(dot + 1);
    if (kind != "m" && kind != "v" && kind != "step" && kind != "master") continue;
    auto it = where.find(name);
    ARIA_CHECK(it != where.end(), "AdamW::load_state: '", key, "' names a parameter that is in no group");
    const Tensor& p = groups_[it->second.first].params[it->second.second].second;
    if (kind == "step") {
      ARIA_CHECK(t.numel() == 1, "AdamW::load_state: '", key, "' must hold one value, got ", t.str());
      continue;
    }
    ARIA_CHECK(t.shape() == p.shape(), "AdamW::load_state: '", key, "' has shape ", shape_str(t.shape()),
               ", parameter is ", shape_str(p.shape()));
    if (kind == "master") continue;  // a master may come without moments (adopt_masters)
    const std::string other = (kind == "m" ? "v." : "m.") + name;
    ARIA_CHECK(state.count(other), "AdamW::load_state: '", key, "' present but '", other, "' missing");
  }
  steps_ = steps;
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t pi = 0; pi < groups_[gi].params.size(); ++pi) {
      const auto& [name, p] = groups_[gi].params[pi];
      Slot& s = slots_[gi][pi];
      s = Slot{};
      auto master = state.find("master." + name);
      if (p.dtype() == DType::BF16 && master != state.end()) {
        s.master = Tensor::empty(p.shape(), DType::F32, p.device());
        s.master.copy_from(master->second);
      }
      auto m = state.find("m." + name);
      if (m == state.end()) continue;
      s.m = Tensor::empty(p.shape(), state_dtype(p), p.device());
      s.v = Tensor::empty(p.shape(), state_dtype(p), p.device());
      s.m.copy_from(m->second);
      s.v.copy_from(state.at("v." + name));
      auto c = state.find("step." + name);
      s.count = c == state.end() ? steps : int64_t(std::llround(c->second.item()));
    }
}

std::vector<ParamGroup> default_decay_groups(const std::vector<std::pair<std::string, Tensor>>& named_params,
                                             double lr, double wd) {
  ParamGroup decay{"decay", {}, lr}, no_decay{"no_decay", {}, lr};
  decay.weight_decay = wd;
  no_decay.weight_decay = 0.0;
  for (const auto& np : named_params) (np.second.dim() >= 2 ? decay : no_decay).params.push_back(np);
  return {decay, no_decay};
}

}  // namespace aria
