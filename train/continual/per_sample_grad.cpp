// Per-sample squared gradients through a capture sink (see train/continual/per_sample_grad.h).
#include "aria/train/continual/per_sample_grad.h"

#include <algorithm>
#include <unordered_map>

#include "aria/core/autograd.h"
#include "aria/core/ops_inplace.h"

namespace aria {

namespace {

// Largest per-sample weight-gradient block [n, in, out] materialised at once (elements).
constexpr int64_t kMaxChunkElements = int64_t(1) << 26;

// The accumulators' dtype: float32 for bfloat16 parameters (squares summed in float32), else the
// parameter's own.
DType acc_dtype(DType t) { return t == DType::BF16 ? DType::F32 : t; }

// x in dtype `dt` (the same tensor when it already is).
Tensor as_dtype(const Tensor& x, DType dt) {
  if (x.dtype() == dt) return x;
  Tensor y = Tensor::empty(x.shape(), dt, x.device());
  y.copy_from(x);
  return y;
}

}  // namespace

struct PerSampleSquaredGrads::Target {
  std::string name;
  Tensor param;
  Tensor acc;       // alpha * sum of squared per-sample gradients, shaped like param
  int uses = 0;     // watched ops that used param in the current forward
  Tensor pending;   // [S, ...param]: per-sample sums while a parameter is used more than once
};

class PerSampleSquaredGrads::Sink : public ops::CaptureSink {
 public:
  explicit Sink(PerSampleSquaredGrads& owner) : o_(owner) {}

  Tensor on_linear(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) override {
    Target* tw = o_.find(w);
    Target* tb = b.defined() ? o_.find(b) : nullptr;
    if (!tw && !tb) return y;
    check_samples(x, tw ? *tw : *tb, "linear input");
    count(tw), count(tb);
    return o_.tap(y, "per_sample_linear",
                  [&o = o_, tw, tb, xs = x.detach()](const Tensor& dy) { o.linear_grads(tw, tb, xs, dy); });
  }

  Tensor on_layernorm(const Tensor& x, const Tensor& w, const Tensor& b, double eps, const Tensor& y) override {
    Target* tw = o_.find(w);
    Target* tb = o_.find(b);
    if (!tw && !tb) return y;
    check_samples(x, tw ? *tw : *tb, "layernorm input");
    count(tw), count(tb);
    return o_.tap(y, "per_sample_layernorm", [&o = o_, tw, tb, xs = x.detach(), eps](const Tensor& dy) {
      o.layernorm_grads(tw, tb, xs, eps, dy);
    });
  }

  Tensor on_embedding(const Tensor& weight, const Tensor& ids, const Tensor& y) override {
    Target* tw = o_.find(weight);
    if (!tw) return y;
    count(tw);
    const int64_t S = o_.samples_;
    std::vector<int32_t> host = ids.to_ints();
    Tensor out = y;
    if (!(ids.dim() >= 2 && ids.size(0) == S)) {
      // Ids shared by every sample (wpe's positions): give each sample its own copy of the output,
      // so that the gradient reaching it is per sample (the copy's backward sums it back).
      std::vector<int32_t> rep;
      rep.reserve(host.size() * size_t(S));
      for (int64_t n = 0; n < S; ++n) rep.insert(rep.end(), host.begin(), host.end());
      host = std::move(rep);
      Shape s = y.shape();
      s.insert(s.begin(), S);
      out = ops::broadcast_to(y, s);
    }
    return o_.tap(out, "per_sample_embedding",
                  [&o = o_, tw, ids = std::move(host)](const Tensor& dy) { o.embedding_grads(*tw, ids, dy); });
  }

 private:
  static void count(Target* t) {
    if (t) ++t->uses;
  }
  void check_samples(const Tensor& x, const Target& t, const char* what) const {
    ARIA_CHECK(x.dim() >= 2 && x.size(0) == o_.samples_, "per-sample gradients of ", t.name, ": the ", what, " ",
               x.str(), " does not have the ", o_.samples_, " samples as its leading dimension");
  }
  PerSampleSquaredGrads& o_;
};

PerSampleSquaredGrads::PerSampleSquaredGrads(const std::vector<std::pair<std::string, Tensor>>& params, double alpha)
    : alpha_(alpha), sink_(std::make_unique<Sink>(*this)) {
  targets_.reserve(params.size());
  for (const auto& [name, p] : params) {
    ARIA_CHECK(p.defined() && is_floating(p.dtype()), "per-sample gradients: parameter ", name, " is not a float tensor");
    ARIA_CHECK(index_.emplace(p.impl_ptr().get(), targets_.size()).second, "per-sample gradients: parameter ", name,
               " is listed twice");
    targets_.push_back(Target{name, p, Tensor::zeros(p.shape(), acc_dtype(p.dtype()), p.device()), 0, Tensor()});
  }
}

PerSampleSquaredGrads::~PerSampleSquaredGrads() = default;

PerSampleSquaredGrads::Target* PerSampleSquaredGrads::find(const Tensor& t) {
  if (!t.defined()) return nullptr;
  auto it = index_.find(t.impl_ptr().get());
  return it == index_.end() ? nullptr : &targets_[it->second];
}

Tensor PerSampleSquaredGrads::tap(const Tensor& y, const char* name, std::function<void(const Tensor&)> on_grad) {
  Tensor alias = y.detach();  // same storage: no copy
  record_op(name, {y}, {alias}, [on_grad = std::move(on_grad)](const std::vector<Tensor>& g) {
    if (g[0].defined()) on_grad(g[0]);
    return std::vector<Tensor>{g[0]};
  });
  return alias;
}

void PerSampleSquaredGrads::accumulate(int64_t samples, const std::function<Tensor(ops::CaptureSink&)>& forward) {
  ARIA_CHECK(samples >= 1, "per-sample gradients: a batch needs at least one sample");
  ARIA_CHECK(tape().size() == 0, "per-sample gradients: the autograd tape already holds ", tape().size(),
             " nodes of another computation (run its backward first)");
  ARIA_CHECK(grad_enabled(), "per-sample gradients: gradient recording is off (NoGradGuard)");
  samples_ = samples;
  for (Target& t : targets_) t.uses = 0, t.pending = Tensor();
  try {
    const Tensor loss = forward(*sink_);
    ARIA_CHECK(loss.defined() && loss.numel() == 1, "per-sample gradients: the forward must return a scalar loss");
    std::string unseen;
    for (const Target& t : targets_)
      if (t.uses == 0) unseen += (unseen.empty() ? "" : ", ") + t.name;
    ARIA_CHECK(unseen.empty(), "per-sample gradients: no linear/layernorm/embedding op used ", unseen,
               " in the forward; its per-sample gradient cannot be captured");
    ARIA_CHECK(loss.requires_grad(), "per-sample gradients: the loss does not depend on the watched parameters");
    loss.backward();
  } catch (...) {
    tape().clear();  // the tape was empty on entry: drop the nodes that point at this object
    throw;
  }
  for (Target& t : targets_) {
    if (t.pending.defined()) ops::add_squares_(t.acc, t.pending, alpha_);
    t.pending = Tensor();
  }
}

std::vector<std::pair<std::string, Tensor>> PerSampleSquaredGrads::result() const {
  std::vector<std::pair<std::string, Tensor>> out;
  out.reserve(targets_.size());
  for (const Target& t : targets_) out.emplace_back(t.name, t.acc);
  return out;
}

void PerSampleSquaredGrads::contribute(Target& t, const Tensor& g, int64_t s0) {
  Shape s = t.param.shape();
  s.insert(s.begin(), g.size(0));
  const Tensor gs = g.reshape(s);
  const Device dev = t.acc.device();
  if (t.uses == 1) {
    ops::add_squares_(t.acc, gs, alpha_);
    return;
  }
  // Used several times: the per-sample gradient is the sum of the uses' contributions; squared
  // once the backward is over (accumulate()).
  if (!t.pending.defined()) {
    Shape full = t.param.shape();
    full.insert(full.begin(), samples_);
    t.pending = Tensor::zeros(full, t.acc.dtype(), dev);  // the uses summed in the accumulators' dtype
  }
  ops::add_scaled_(t.pending.slice(0, s0, s0 + g.size(0)), as_dtype(gs, t.acc.dtype()), 1.0);
}

void PerSampleSquaredGrads::linear_grads(Target* w, Target* b, const Tensor& x, const Tensor& dy) {
  const int64_t S = samples_, in = x.size(-1), out = dy.size(-1), R = x.numel() / (S * in);
  const Tensor X = x.reshape({S, R, in}), D = dy.contiguous().detach().reshape({S, R, out});
  const Device dev = x.device();
  if (w) {
    const int64_t chunk = std::max<int64_t>(1, kMaxChunkElements / std::max<int64_t>(1, in * out));
    for (int64_t s0 = 0; s0 < S; s0 += chunk) {
      const int64_t n = std::min(chunk, S - s0);
      Tensor G = Tensor::empty({n, in, out}, x.dtype(), dev);  // G_n = X_n^T dY_n
      ops::matmul_into(X.slice(0, s0, s0 + n), D.slice(0, s0, s0 + n), G, true, false);
      contribute(*w, G, s0);
    }
  }
  if (b) {
    Tensor G = Tensor::empty({S, 1, out}, x.dtype(), dev);
    ops::sum_to_into(D, G);
    contribute(*b, G, 0);
  }
}

void PerSampleSquaredGrads::layernorm_grads(Target* w, Target* b, const Tensor& x, double eps, const Tensor& dy) {
  const int64_t S = samples_, C = x.size(-1), N = x.numel() / C, R = N / S;
  const Device dev = x.device();
  const Tensor D = dy.contiguous().detach().reshape({S, R, C});
  if (w) {
    // xhat = layernorm(x) with unit weight and zero bias: the op's own normalisation, recomputed.
    // (x is detached and the unit weight and zero bias need no gradient: nothing is recorded.)
    const Tensor xhat = ops::layernorm(x.reshape({N, C}), Tensor::full({C}, 1.0, x.dtype(), dev),
                                       Tensor::zeros({C}, x.dtype(), dev), eps);
    Tensor prod = Tensor::empty({S, R, C}, x.dtype(), dev);
    ops::mul_into(D, xhat.reshape({S, R, C}), prod);
    Tensor G = Tensor::empty({S, 1, C}, x.dtype(), dev);
    ops::sum_to_into(prod, G);
    contribute(*w, G, 0);
  }
  if (b) {
    Tensor G = Tensor::empty({S, 1, C}, x.dtype(), dev);
    ops::sum_to_into(D, G);
    contribute(*b, G, 0);
  }
}

// Sample n's gradient has rows only at its own ids: each sample's rows are gathered into a compact
// [U, D] block (U = sum over samples of their distinct ids), squared, and added into acc's rows.
void PerSampleSquaredGrads::embedding_grads(Target& w, const std::vector<int32_t>& ids, const Tensor& dy) {
  ARIA_CHECK(w.uses == 1, "per-sample gradients: embedding ", w.name, " is used ", w.uses,
             " times in one forward; only a single use is supported");
  const int64_t S = samples_, total = int64_t(ids.size()), R = total / S, Dm = dy.size(-1);
  const Device dev = dy.device();
  std::vector<int32_t> local(ids.size()), rows;
  std::unordered_map<int32_t, int32_t> slot;
  for (int64_t n = 0; n < S; ++n) {
    slot.clear();
    for (int64_t t = 0; t < R; ++t) {
      const int32_t id = ids[size_t(n * R + t)];
      auto [it, fresh] = slot.emplace(id, int32_t(rows.size()));
      if (fresh) rows.push_back(id);
      local[size_t(n * R + t)] = it->second;
    }
  }
  const int64_t U = int64_t(rows.size());
  // In the accumulator's dtype (a bfloat16 dy is summed and squared in float32).
  const DType dt = w.acc.dtype();
  Tensor compact = Tensor::zeros({U, Dm}, dt, dev);
  ops::index_add_rows_(compact, Tensor::from_ints(local, {total}, dev),
                       as_dtype(dy.contiguous().detach().reshape({total, Dm}), dt));
  Tensor squared = Tensor::zeros({U, Dm}, dt, dev);
  ops::add_squares_(squared, compact, alpha_);
  ops::index_add_rows_(w.acc, Tensor::from_ints(rows, {U}, dev), squared);
}

}  // namespace aria
