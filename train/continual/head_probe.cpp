#include "aria/train/continual/head_probe.h"

#include <algorithm>
#include <cmath>

#include "aria/core/autograd.h"
#include "aria/core/error.h"
#include "aria/core/ops.h"
#include "aria/core/rng.h"
#include "aria/model/gpt2.h"
#include "aria/train/continual/continual_steps.h"

namespace aria {

std::vector<std::vector<float>> pooled_features(const ContinualModel& m, const std::vector<ClsExample>& data,
                                                int batch_size) {
  NoGradGuard no_grad;
  const int64_t C = m.gpt.config.n_embd;
  std::vector<Tensor> pooled;
  for (const ClsBatch& b : fixed_batches(data, batch_size, m.device(), 0, pad_id_for(m.gpt.config.vocab_size))) {
    const int64_t B = b.ids.size(0), T = b.ids.size(1);
    pooled.push_back(ops::embedding(gpt2_hidden(m.gpt, b.ids).reshape({B * T, C}), b.last_index));
  }
  std::vector<std::vector<float>> out;
  if (pooled.empty()) return out;
  // Joined on the device and read back in one copy.
  const std::vector<float> v = (pooled.size() == 1 ? pooled[0] : ops::concat(pooled, 0)).to_floats();
  for (size_t r = 0; r * size_t(C) < v.size(); ++r) out.emplace_back(v.begin() + r * C, v.begin() + (r + 1) * C);
  ARIA_CHECK(out.size() == data.size(), "pooled features: ", out.size(), " rows for ", data.size(), " examples");
  return out;
}

double head_only_accuracy(const ContinualModel& m, const std::string& task_name, int num_labels,
                          const std::vector<ClsExample>& train, const std::vector<ClsExample>& eval,
                          const HeadProbeSettings& s) {
  ARIA_CHECK(!train.empty() && !eval.empty(), "head-only probe of '", task_name, "': empty split");
  ARIA_CHECK(s.steps >= 1 && s.batch_size >= 1 && s.lr > 0, "head-only probe: steps, batch_size and lr must be positive");
  const size_t C = size_t(m.gpt.config.n_embd), L = size_t(num_labels);
  // The examples the k steps read, in a seeded order (cycled when the split is smaller).
  Rng order_rng(s.seed ^ name_hash(task_name) ^ 0x4EAD0B1Eull);
  std::vector<size_t> perm(train.size());
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = i;
  for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[size_t(order_rng.next_u64() % i)]);
  const size_t used = std::min(train.size(), size_t(s.steps) * size_t(s.batch_size));
  std::vector<ClsExample> subset;
  for (size_t i = 0; i < used; ++i) subset.push_back(train[perm[i]]);
  const auto xtr = pooled_features(m, subset, s.batch_size);
  const auto xev = pooled_features(m, eval, s.batch_size);

  // The head W [C, L], from the task's probe-head draw (as the trainer's probe head).
  Tensor w0 = Tensor::zeros({int64_t(C), int64_t(L)}, DType::F32, Device::cpu());
  Rng(s.seed ^ name_hash(task_name)).fill_normal(w0, 0.0, 0.02);
  const std::vector<float> init = w0.to_floats();
  std::vector<double> w(init.begin(), init.end()), mo(w.size(), 0.0), ve(w.size(), 0.0), g(w.size());
  const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  std::vector<double> z(L);
  size_t cursor = 0;
  for (int64_t step = 1; step <= s.steps; ++step) {
    std::fill(g.begin(), g.end(), 0.0);
    const size_t B = std::min(size_t(s.batch_size), xtr.size());
    for (size_t b = 0; b < B; ++b, cursor = (cursor + 1) % xtr.size()) {
      const std::vector<float>& x = xtr[cursor];
      const int32_t y = subset[cursor].label;
      double mx = -1e300;
      for (size_t l = 0; l < L; ++l) {
        double a = 0;
        for (size_t c = 0; c < C; ++c) a += double(x[c]) * w[c * L + l];
        z[l] = a;
        mx = std::max(mx, a);
      }
      double sum = 0;
      for (size_t l = 0; l < L; ++l) sum += (z[l] = std::exp(z[l] - mx));
      for (size_t l = 0; l < L; ++l) {
        const double d = (z[l] / sum - (int32_t(l) == y ? 1.0 : 0.0)) / double(B);
        for (size_t c = 0; c < C; ++c) g[c * L + l] += double(x[c]) * d;
      }
    }
    const double c1 = 1 - std::pow(b1, double(step)), c2 = 1 - std::pow(b2, double(step));
    for (size_t i = 0; i < w.size(); ++i) {
      mo[i] = b1 * mo[i] + (1 - b1) * g[i];
      ve[i] = b2 * ve[i] + (1 - b2) * g[i] * g[i];
      w[i] -= s.lr * (mo[i] / c1) / (std::sqrt(ve[i] / c2) + eps);
    }
  }
  size_t correct = 0;
  for (size_t n = 0; n < xev.size(); ++n) {
    size_t best = 0;
    double best_z = -1e300;
    for (size_t l = 0; l < L; ++l) {
      double a = 0;
      for (size_t c = 0; c < C; ++c) a += double(xev[n][c]) * w[c * L + l];
      if (a > best_z) best_z = a, best = l;  // the first maximum, as count_correct
    }
    correct += int32_t(best) == eval[n].label;
  }
  return double(correct) / double(eval.size());
}

}  // namespace aria
