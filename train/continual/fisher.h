// Diagonal Fisher information of a task for Slow-Pathway Consolidation (../shared/aria-spec.md,
// "Slow-Pathway Consolidation (SPC)") and the EWC baseline.
//
//   exact (default):  F = mean over samples of (d log p(y_i|x_i) / d theta)^2 with y_i SAMPLED from
//                     the model's own predictive distribution p(.|x_i) (the true Fisher)
//   empirical:        the same with the true labels y_i (the "empirical Fisher")
//   batched:          mean over mini-batches of (d mean_batch loss / d theta)^2 with the true labels:
//                     one backward per batch, cheap, biased (it squares averages, not samples)
//   uniform:          F = 1 for every parameter in scope, no pass over the data: the penalty becomes
//                     L2 to the anchors (the reference a method written in Python is checked against)
//
// Per-sample estimators run one forward and one backward per batch (train/continual/per_sample_grad.h), not
// one backward per sample; estimate_fisher_reference() is the slow, obviously correct definition
// (a backward of batch size 1 per sample) the tests compare it with.
//
// Side effects: none on the model. The Fisher forward advances no counter (the trainer's step
// counters are not touched) and a forward writes no state into the model (gate values are returned
// to the caller that asks for them, model/gpt2.h ForwardOptions).
// Every parameter's .grad and requires_grad are saved on entry and restored on exit (also on
// error): during the estimate the in-scope parameters require grad and the others do not (so the
// backward computes no gradient outside the scope), and grads are cleared after each batch, so
// nothing leaks into the gradients the trainer accumulates. The autograd tape must be empty.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "aria/core/rng.h"
#include "aria/model/continual_model.h"

namespace aria {

enum class FisherEstimator { Exact, Empirical, Batched, Uniform };
enum class FisherScope { Slow, AllButFast, All, Mlp };

FisherEstimator parse_fisher_estimator(const std::string& s);  // "exact" | "empirical" | "batched" | "uniform"
FisherScope parse_fisher_scope(const std::string& s);          // "slow" | "all_but_fast" | "all" | "mlp"
const char* fisher_estimator_name(FisherEstimator e);
const char* fisher_scope_name(FisherScope s);

// slow: names containing ".mlp.slow."; all_but_fast: trunk parameters not containing ".mlp.fast."
// (gates, attention, layernorms, embeddings, slow pathway); all: every trunk parameter; mlp: names
// containing ".mlp." (a plain GPT-2's MLPs: what the slow pathway replaces, for the aria-no-gates
// ablation, which consolidates the same weights as aria would without gates). Task heads
// and adapters ("task.*") are never in scope.
bool in_fisher_scope(const std::string& param_name, FisherScope scope);

// The Fisher's dtype for a parameter of dtype `param`: float32 for bfloat16 (per-sample gradients
// from bfloat16 activations, squares accumulated in float32), else the parameter's own.
DType fisher_dtype(DType param);

struct FisherResult {
  // in-scope parameters in model order; the parameter's shape and device, dtype fisher_dtype(param's)
  std::vector<std::pair<std::string, Tensor>> fisher;
  std::string description;  // e.g. "exact per-sample Fisher (sampled labels), scope slow, 512 samples"
  int64_t samples = 0;
};

// Fisher of task `task_id` (its adapter and head) over `batches`, processed one at a time. The rng
// draws the sampled labels of the exact estimator (batch by batch, sample by sample, one uniform
// each); the other estimators do not use it.
FisherResult estimate_fisher(const ContinualModel& m, int task_id, const std::vector<ClsBatch>& batches,
                             FisherEstimator estimator, FisherScope scope, Rng& rng);

// The labels a per-sample estimator differentiates log p(y|x) at, one vector per batch: drawn from
// the model's predictive distribution exactly as estimate_fisher draws them (Exact; a no-grad
// forward per batch) or the batches' true labels (Empirical, Batched).
std::vector<std::vector<int32_t>> fisher_labels(const ContinualModel& m, int task_id,
                                                const std::vector<ClsBatch>& batches, FisherEstimator estimator,
                                                Rng& rng);

// Fast per-sample Fisher at the given labels (what estimate_fisher runs after drawing them).
FisherResult estimate_fisher_at_labels(const ContinualModel& m, int task_id, const std::vector<ClsBatch>& batches,
                                       const std::vector<std::vector<int32_t>>& labels, FisherScope scope);

// Reference: one forward + backward of batch size 1 per sample, squares summed on the host in
// double precision. For tests; same side-effect guarantees.
FisherResult estimate_fisher_reference(const ContinualModel& m, int task_id, const std::vector<ClsBatch>& batches,
                                       const std::vector<std::vector<int32_t>>& labels, FisherScope scope);

}  // namespace aria
