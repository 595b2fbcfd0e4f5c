#include "aria/train/optim/grad_clip.h"

#include <algorithm>
#include <cmath>

#include "aria/core/ops_inplace.h"

namespace aria {

namespace {

std::vector<Tensor> tensors_of(const std::vector<std::pair<std::string, Tensor>>& named_params) {
  std::vector<Tensor> params;
  params.reserve(named_params.size());
  for (const auto& np : named_params) params.push_back(np.second);
  return params;
}

// Every defined grad of `params` (made contiguous, as sum_squares reads them), grouped by device in
// order of first appearance.
std::vector<std::pair<Device, std::vector<Tensor>>> grads_by_device(const std::vector<Tensor>& params) {
  std::vector<std::pair<Device, std::vector<Tensor>>> by_device;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    auto it = std::find_if(by_device.begin(), by_device.end(), [&](auto& e) { return e.first == g.device(); });
    if (it == by_device.end()) it = by_device.insert(by_device.end(), {g.device(), {}});
    it->second.push_back(g.is_contiguous() ? g : g.contiguous());
  }
  return by_device;
}

// One device's sum of squares: a float64 [1] tensor there (one kernel call, no read-back).
Tensor device_sum_squares(Device device, const std::vector<Tensor>& grads) {
  Tensor out = Tensor::zeros({1}, DType::F64, device);
  ops::add_sum_squares_(grads, out);
  return out;
}

// Sum of squares of every defined grad, one kernel call per device, read back and added in double.
double grad_sum_squares(const std::vector<Tensor>& params) {
  double total = 0.0;
  for (auto& [device, grads] : grads_by_device(params)) total += device_sum_squares(device, grads).item();
  return total;
}

// The error of a non-finite norm, naming (up to 5 of) the parameters whose gradients hold NaN or inf.
[[noreturn]] void fail_non_finite(double norm, const std::vector<std::pair<std::string, Tensor>>& named_params) {
  std::string bad;
  int shown = 0, count = 0;
  for (const auto& [name, p] : named_params) {
    if (!p.grad().defined()) continue;
    auto v = p.grad().to_doubles();
    if (std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); })) continue;
    ++count;
    if (shown++ < 5) bad += (bad.empty() ? "" : ", ") + name;
  }
  ARIA_FAIL("non-finite gradient norm (", norm, "); NaN/inf in the gradients of ", count, " tensors: ", bad,
            count > 5 ? ", ..." : "");
}

}  // namespace

double global_grad_norm(const std::vector<Tensor>& params) {
  const double norm = std::sqrt(grad_sum_squares(params));
  ARIA_CHECK(std::isfinite(norm), "non-finite gradient norm (", norm, ") over ", params.size(), " tensors");
  return norm;
}

double global_grad_norm(const std::vector<std::pair<std::string, Tensor>>& named_params) {
  const double norm = std::sqrt(grad_sum_squares(tensors_of(named_params)));
  if (!std::isfinite(norm)) fail_non_finite(norm, named_params);
  return norm;
}

Tensor grad_sum_squares_on_device(const std::vector<std::pair<std::string, Tensor>>& named_params) {
  const auto by_device = grads_by_device(tensors_of(named_params));
  if (by_device.empty()) return Tensor();
  ARIA_CHECK(by_device.size() == 1, "grad_sum_squares_on_device: the gradients live on ", by_device.size(),
             " devices (", by_device[0].first.str(), ", ", by_device[1].first.str(),
             "); the device-side norm needs them on one (use global_grad_norm)");
  return device_sum_squares(by_device[0].first, by_device[0].second);
}

double grad_norm_from(const Tensor& sumsq, const std::vector<std::pair<std::string, Tensor>>& named_params) {
  if (!sumsq.defined()) return 0.0;
  ARIA_CHECK(sumsq.numel() == 1, "grad_norm_from: sumsq must hold one value, got ", sumsq.str());
  const double norm = std::sqrt(sumsq.item());
  if (!std::isfinite(norm)) fail_non_finite(norm, named_params);
  return norm;
}

double clip_scale(double norm, double max_norm) {
  if (max_norm <= 0 || norm <= max_norm) return 1.0;
  return max_norm / norm;
}

}  // namespace aria
