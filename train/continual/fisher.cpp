// Diagonal Fisher estimators (see train/continual/fisher.h).
#include "aria/train/continual/fisher.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>

#include "aria/core/autograd.h"
#include "aria/core/ops.h"
#include "aria/core/ops_inplace.h"
#include "aria/model/gated_mlp.h"
#include "aria/train/continual/per_sample_grad.h"

namespace aria {

FisherEstimator parse_fisher_estimator(const std::string& s) {
  if (s == "exact") return FisherEstimator::Exact;
  if (s == "empirical") return FisherEstimator::Empirical;
  if (s == "batched") return FisherEstimator::Batched;
  if (s == "uniform") return FisherEstimator::Uniform;
  ARIA_FAIL("unknown Fisher estimator '", s, "': expected one of exact, empirical, batched, uniform");
}

FisherScope parse_fisher_scope(const std::string& s) {
  if (s == "slow") return FisherScope::Slow;
  if (s == "all_but_fast") return FisherScope::AllButFast;
  if (s == "all") return FisherScope::All;
  if (s == "mlp") return FisherScope::Mlp;
  ARIA_FAIL("unknown Fisher scope '", s, "': expected one of slow, all_but_fast, all, mlp");
}

const char* fisher_estimator_name(FisherEstimator e) {
  switch (e) {
    case FisherEstimator::Exact: return "exact";
    case FisherEstimator::Empirical: return "empirical";
    case FisherEstimator::Batched: return "batched";
    case FisherEstimator::Uniform: return "uniform";
  }
  return "?";
}

const char* fisher_scope_name(FisherScope s) {
  switch (s) {
    case FisherScope::Slow: return "slow";
    case FisherScope::AllButFast: return "all_but_fast";
    case FisherScope::All: return "all";
    case FisherScope::Mlp: return "mlp";
  }
  return "?";
}

DType fisher_dtype(DType param) { return param == DType::BF16 ? DType::F32 : param; }

bool in_fisher_scope(const std::string& name, FisherScope scope) {
  if (name.rfind("task.", 0) == 0) return false;
  switch (scope) {
    case FisherScope::Slow: return name.find(".mlp.slow.") != std::string::npos;
    case FisherScope::AllButFast: return name.find(".mlp.fast.") == std::string::npos;
    case FisherScope::All: return true;
    case FisherScope::Mlp: return name.find(".mlp.") != std::string::npos;
  }
  return false;
}

namespace {

// Saves every parameter's grad and requires_grad, makes exactly the
// in-scope parameters require grad, and restores everything on destruction.
class EstimateGuard {
 public:
  EstimateGuard(const ContinualModel& m, int task_id, const std::vector<ClsBatch>& batches, FisherScope scope,
                const char* what) {
    ARIA_CHECK(task_id >= 0 && task_id < int(m.tasks.size()), what, ": task id ", task_id, " outside [0, ",
               m.tasks.size(), ")");
    ARIA_CHECK(!batches.empty(), what, ": no batches");
    ARIA_CHECK(tape().size() == 0, what, ": the autograd tape holds ", tape().size(),
               " nodes of an unfinished computation (run its backward first)");
    ARIA_CHECK(grad_enabled(), what, ": called under NoGradGuard; the Fisher needs gradient recording");
    const auto params = m.named_parameters();
    for (const auto& [name, p] : params)
      if (in_fisher_scope(name, scope)) scope_.emplace_back(name, p);
    ARIA_CHECK(!scope_.empty(), what, ": scope ", fisher_scope_name(scope), " selects no parameter of this model",
               m.gpt.blocks.empty() || m.gpt.blocks[0].gated ? "" : " (it has no gated MLP)");
    // Nothing below throws: the destructor restores what this changes.
    for (const auto& [name, p] : params) {
      saved_.push_back(Saved{p, p.impl().grad, p.requires_grad()});
      p.zero_grad();
      Tensor(p).set_requires_grad(in_fisher_scope(name, scope));
    }
  }
  ~EstimateGuard() {
    tape().clear();  // empty on entry; only an error can leave nodes behind
    for (Saved& s : saved_) {
      Tensor(s.param).set_requires_grad(s.requires_grad);
      s.param.impl().grad = s.grad;
    }
  }
  EstimateGuard(const EstimateGuard&) = delete;
  EstimateGuard& operator=(const EstimateGuard&) = delete;

  const std::vector<std::pair<std::string, Tensor>>& scope() const { return scope_; }
  void clear_grads() const {
    for (const auto& np : scope_) np.second.zero_grad();
  }

 private:
  struct Saved {
    Tensor param;
    std::shared_ptr<TensorImpl> grad;
    bool requires_grad;
  };
  std::vector<Saved> saved_;
  std::vector<std::pair<std::string, Tensor>> scope_;
};

int64_t count_samples(const std::vector<ClsBatch>& batches) {
  int64_t n = 0;
  for (const ClsBatch& b : batches) n += b.ids.size(0);
  return n;
}

std::vector<int32_t> true_labels(const ClsBatch& b) {
  return b.host_labels.empty() ? b.labels.to_ints() : b.host_labels;
}

// One label per row of logits [B, L], drawn from softmax(row): one uniform per row, inverse CDF.
std::vector<int32_t> sample_labels(const Tensor& logits, Rng& rng) {
  const int64_t B = logits.size(0), L = logits.size(1);
  const std::vector<double> v = logits.to_doubles();
  std::vector<int32_t> out(static_cast<size_t>(B));
  std::vector<double> p(static_cast<size_t>(L));
  for (int64_t i = 0; i < B; ++i) {
    const double* row = v.data() + i * L;
    const double mx = *std::max_element(row, row + L);
    double total = 0;
    for (int64_t k = 0; k < L; ++k) total += p[size_t(k)] = std::exp(row[k] - mx);
    const double u = rng.uniform() * total;
    int32_t pick = int32_t(L - 1);
    double c = 0;
    for (int64_t k = 0; k < L; ++k) {
      c += p[size_t(k)];
      if (u < c) {
        pick = int32_t(k);
        break;
      }
    }
    out[size_t(i)] = pick;
  }
  return out;
}

std::string describe(const std::string& what, FisherScope scope, int64_t samples) {
  return what + ", scope " + fisher_scope_name(scope) + ", " + std::to_string(samples) + " samples";
}

using LabelFn = std::function<std::vector<int32_t>(size_t batch, const Tensor& logits)>;

// The fast path: one forward + backward of sum_n -log p(y_n|x_n) per batch.
FisherResult per_sample_fisher(const ContinualModel& m, int task_id, const std::vector<ClsBatch>& batches,
                               FisherScope scope, const LabelFn& labels, const char* what) {
  EstimateGuard guard(m, task_id, batches, scope, what);
  const int64_t N = count_samples(batches);
  PerSampleSquaredGrads squares(guard.scope(), 1.0 / double(N));
  for (size_t i = 0; i < batches.size(); ++i) {
    const ClsBatch& b = batches[i];
    const int64_t B = b.ids.size(0);
    squares.accumulate(B, [&](ops::CaptureSink& capture) {
      Tensor logits = classify_logits(m, b, task_id, ForwardOptions{nullptr, &capture});
      std::vector<int32_t> y = labels(i, logits);
      ARIA_CHECK(int64_t(y.size()) == B, what, ": batch ", i, " has ", B, " samples but ", y.size(), " labels");
      return ops::sum(ops::cross_entropy_rows(logits, Tensor::from_ints(y, {B}, logits.device())));
    });
    guard.clear_grads();
  }
  return FisherResult{squares.result(), "", N};
}

FisherResult batched_fisher(const ContinualModel& m, int task_id, const std::vector<ClsBatch>& batches,
                            FisherScope scope) {
  EstimateGuard guard(m, task_id, batches, scope, "estimate_fisher");
  FisherResult r;
  for (const auto& [name, p] : guard.scope())
    r.fisher.emplace_back(name, Tensor::zeros(p.shape(), fisher_dtype(p.dtype()), p.device()));
  const double alpha = 1.0 / double(batches.size());
  for (const ClsBatch& b : batches) {
    Tensor loss = ops::cross_entropy(classify_logits(m, b, task_id), b.labels);
    loss.backward();
    for (size_t k = 0; k < r.fisher.size(); ++k) {
      const Tensor g = guard.scope()[k].second.grad();
      if (g.defined()) ops::add_squares_(r.fisher[k].second, g, alpha);
    }
    guard.clear_grads();
  }
  r.samples = count_samples(batches);
  r.description = describe("batched Fisher (squared mini-batch mean gradients, true labels, " +
                               std::to_string(batches.size()) + " batches)",
                           scope, r.samples);
  return r;
}

// Sample n of a batch as a batch of one (same padded length).
ClsBatch one_sample(const ClsBatch& b, int64_t n, int32_t last, int32_t label) {
  const int64_t T = b.ids.size(1);
  const Device dev = b.ids.device();
  ClsBatch r;
  r.ids = b.ids.slice(0, n, n + 1).contiguous();
  r.last_index = Tensor::from_ints({int32_t(last - n * T)}, {1}, dev);
  if (b.mask.defined()) r.mask = b.mask.slice(0, n, n + 1).contiguous();
  r.labels = Tensor::from_ints({label}, {1}, dev);
  r.host_labels = {label};
  r.real_tokens = int64_t(last - n * T) + 1;
  return r;
}

}  // namespace

std::vector<std::vector<int32_t>> fisher_labels(const ContinualModel& m, int task_id,
                                                const std::vector<ClsBatch>& batches, FisherEstimator estimator,
                                                Rng& rng) {
  std::vector<std::vector<int32_t>> out;
  for (const ClsBatch& b : batches) {
    if (estimator != FisherEstimator::Exact) {
      out.push_back(true_labels(b));
      continue;
    }
    NoGradGuard no_grad;
    out.push_back(sample_labels(classify_logits(m, b, task_id), rng));
  }
  return out;
}

FisherResult estimate_fisher(const ContinualModel& m, int task_id, const std::vector<ClsBatch>& batches,
                             FisherEstimator estimator, FisherScope scope, Rng& rng) {
  if (estimator == FisherEstimator::Batched) return batched_fisher(m, task_id, batches, scope);
  if (estimator == FisherEstimator::Uniform) {
    EstimateGuard guard(m, task_id, batches, scope, "estimate_fisher");
    FisherResult r;
    for (const auto& [name, p] : guard.scope())
      r.fisher.emplace_back(name, Tensor::full(p.shape(), 1.0, fisher_dtype(p.dtype()), p.device()));
    r.description = describe("uniform Fisher (F = 1: the penalty is L2 to the anchors)", scope, 0);
    return r;
  }
  const bool exact = estimator == FisherEstimator::Exact;
  FisherResult r = per_sample_fisher(
      m, task_id, batches, scope,
      [&](size_t i, const Tensor& logits) { return exact ? sample_labels(logits, rng) : true_labels(batches[i]); },
      "estimate_fisher");
  r.description = describe(exact ? "exact per-sample Fisher (sampled labels)" : "empirical per-sample Fisher (true labels)",
                           scope, r.samples);
  return r;
}

FisherResult estimate_fisher_at_labels(const ContinualModel& m, int task_id, const std::vector<ClsBatch>& batches,
                                       const std::vector<std::vector<int32_t>>& labels, FisherScope scope) {
  ARIA_CHECK(labels.size() == batches.size(), "estimate_fisher_at_labels: ", labels.size(), " label vectors for ",
             batches.size(), " batches");
  FisherResult r = per_sample_fisher(
      m, task_id, batches, scope, [&](size_t i, const Tensor&) { return labels[i]; }, "estimate_fisher_at_labels");
  r.description = describe("per-sample Fisher (given labels)", scope, r.samples);
  return r;
}

FisherResult estimate_fisher_reference(const ContinualModel& m, int task_id, const std::vector<ClsBatch>& batches,
                                       const std::vector<std::vector<int32_t>>& labels, FisherScope scope) {
  ARIA_CHECK(labels.size() == batches.size(), "estimate_fisher_reference: ", labels.size(), " label vectors for ",
             batches.size(), " batches");
  EstimateGuard guard(m, task_id, batches, scope, "estimate_fisher_reference");
  std::vector<std::vector<double>> acc;
  for (const auto& np : guard.scope()) acc.emplace_back(size_t(np.second.numel()), 0.0);
  const int64_t N = count_samples(batches);
  for (size_t i = 0; i < batches.size(); ++i) {
    const ClsBatch& b = batches[i];
    const std::vector<int32_t> last = b.last_index.to_ints();
    ARIA_CHECK(labels[i].size() == last.size(), "estimate_fisher_reference: batch ", i, " has ", last.size(),
               " samples but ", labels[i].size(), " labels");
    for (size_t n = 0; n < last.size(); ++n) {
      const ClsBatch one = one_sample(b, int64_t(n), last[n], labels[i][n]);
      ops::sum(ops::cross_entropy_rows(classify_logits(m, one, task_id), one.labels)).backward();
      for (size_t k = 0; k < acc.size(); ++k) {
        const Tensor g = guard.scope()[k].second.grad();
        if (!g.defined()) continue;
        const std::vector<double> v = g.to_doubles();
        for (size_t j = 0; j < v.size(); ++j) acc[k][j] += v[j] * v[j];
      }
      guard.clear_grads();
    }
  }
  FisherResult r;
  r.samples = N;
  for (size_t k = 0; k < acc.size(); ++k) {
    const Tensor& p = guard.scope()[k].second;
    for (double& v : acc[k]) v /= double(N);
    r.fisher.emplace_back(guard.scope()[k].first,
                          Tensor::from_vector(acc[k], p.shape(), fisher_dtype(p.dtype()), p.device()));
  }
  r.description = describe("reference per-sample Fisher (one batch-1 backward per sample)", scope, N);
  return r;
}

}  // namespace aria
