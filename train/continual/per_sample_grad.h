// Sums of squared per-sample gradients, sum_n (d loss_n / d theta)^2, from ONE forward and ONE
// backward of sum_n loss_n over a batch (the diagonal Fisher's hot path, train/continual/fisher.h).
//
// Why this works: samples never interact in GPT-2's forward (attention stays within a sequence,
// layernorm and the MLPs act per token), so one backward of sum_n loss_n hands every token's
// activation gradient dy_{n,t} = d loss_n / d y_{n,t}. Each parameter's per-sample gradient is then a
// small product of what its op saw in the forward and that gradient:
//   linear y = x W + b:        G_n = X_n^T dY_n ([in, T] x [T, out], one batched matmul over n),
//                              g_n(b) = sum_t dy_{n,t}
//   layernorm y = xhat w + b:  g_n(w) = sum_t dy_{n,t} * xhat_{n,t},  g_n(b) = sum_t dy_{n,t}
//   embedding y = W[ids]:      g_n(W) has rows only at sample n's ids (scattered per sample, squared,
//                              added back into those rows); shared ids (wpe's positions) are made
//                              per-sample by broadcasting the op's output to [S, ...].
// G is squared and summed over n (square_accumulate) as soon as it is made, so the memory is one
// layer's [S, in, out] at a time (chunked over samples beyond 2^26 elements).
//
// Capture mechanism: a sink (ops::CaptureSink, core/ops_capture.h) that the caller's forward passes
// to its ops, through the model's ForwardOptions::capture (model/gpt2.h); ops::linear,
// ops::layernorm and ops::embedding call it after recording their tape node. For a watched parameter
// it keeps the op's input and returns an alias of the output carried by one extra tape node; that
// node's backward receives d(sum loss)/d(output), computes the per-sample gradients above and passes
// the gradient through unchanged. The model needs no Fisher-specific code (any forward built from
// these ops is covered: gated or plain MLPs, EWC over every trunk parameter), and a forward that
// passes no sink runs exactly as in training.
// Limits (checked, with errors naming the parameter): every watched parameter must be used by
// linear / layernorm / embedding (not matmul), and an embedding at most once per forward; the
// activations of watched ops must have the samples as their leading dimension.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "aria/core/ops_capture.h"

namespace aria {

class PerSampleSquaredGrads {
 public:
  // Watches `params` (name, leaf tensor); acc[i] starts at zero with the parameter's shape, dtype
  // (float32 for a bfloat16 parameter: its per-sample gradients come from bfloat16 activations, their
  // squares are summed in float32) and device, and receives alpha * sum_n g_{n,i}^2 at every
  // accumulate().
  PerSampleSquaredGrads(const std::vector<std::pair<std::string, Tensor>>& params, double alpha);
  ~PerSampleSquaredGrads();
  PerSampleSquaredGrads(const PerSampleSquaredGrads&) = delete;
  PerSampleSquaredGrads& operator=(const PerSampleSquaredGrads&) = delete;

  // Runs forward(sink): it must build, from `samples` independent samples (the leading dimension of
  // every activation), the scalar sum_n loss_n, passing `sink` to its ops (ForwardOptions::capture
  // for the model's forward). Then runs its backward
  // and adds alpha * sum_n (d loss_n / d param)^2 into the accumulators. The autograd tape must be
  // empty on entry; the watched parameters must require grad (their .grad also receives the batch
  // gradient, as any backward: the caller clears it). On error the tape is cleared.
  void accumulate(int64_t samples, const std::function<Tensor(ops::CaptureSink& sink)>& forward);

  // (name, sum of squares) in the order of the constructor's params.
  std::vector<std::pair<std::string, Tensor>> result() const;

 private:
  struct Target;
  class Sink;
  Target* find(const Tensor& t);
  void contribute(Target& t, const Tensor& g, int64_t s0);  // g: [n, ...param] for samples s0..s0+n
  void linear_grads(Target* w, Target* b, const Tensor& x, const Tensor& dy);
  void layernorm_grads(Target* w, Target* b, const Tensor& x, double eps, const Tensor& dy);
  void embedding_grads(Target& w, const std::vector<int32_t>& ids, const Tensor& dy);
  Tensor tap(const Tensor& y, const char* name, std::function<void(const Tensor&)> on_grad);

  std::vector<Target> targets_;
  std::unordered_map<const TensorImpl*, size_t> index_;
  double alpha_;
  int64_t samples_ = 0;
  std::unique_ptr<Sink> sink_;
};

}  // namespace aria
