#include "train/grad_clip.h"

#include <algorithm>
#include <cmath>

#include "kernels/kernels.h"

namespace aria {

// Sum of squares of every defined grad, one kernel call per device into a float64 scalar.
static double grad_sum_squares(const std::vector<Tensor>& params) {
  std::vector<std::pair<Device, std::vector<Tensor>>> by_device;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    auto it = std::find_if(by_device.begin(), by_device.end(), [&](auto& e) { return e.first == g.device(); });
    if (it == by_device.end()) it = by_device.insert(by_device.end(), {g.device(), {}});
    it->second.push_back(g.is_contiguous() ? g : g.contiguous());
  }
  double total = 0.0;
  for (auto& [device, grads] : by_device) {
    Tensor out = Tensor::zeros({1}, DType::F64, device);
    ARIA_DISPATCH(device, sum_squares, grads, out);
    total += out.item();
  }
  return total;
}

double global_grad_norm(const std::vector<Tensor>& params) {
  const double norm = std::sqrt(grad_sum_squares(params));
  ARIA_CHECK(std::isfinite(norm), "non-finite gradient norm (", norm, ") over ", params.size(), " tensors");
  return norm;
}

double global_grad_norm(const std::vector<std::pair<std::string, Tensor>>& named_params) {
  std::vector<Tensor> params;
  for (const auto& np : named_params) params.push_back(np.second);
  const double norm = std::sqrt(grad_sum_squares(params));
  if (std::isfinite(norm)) return norm;
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

double clip_scale(double norm, double max_norm) {
  if (max_norm <= 0 || norm <= max_norm) return 1.0;
  return max_norm / norm;
}

}  // namespace aria
