// AdamW with explicit parameter groups (../shared/aria-spec.md, "Asymmetric learning rates").
// A group is plain data: a name, named parameter tensors, and its own lr / betas / eps / weight
// decay. The groups are built by rules (default_decay_groups below, the continual trainer's
// fast / slow / head split) and printed with describe(), so a test can check where every
// parameter went.
//
// Mixed precision: a bfloat16 parameter gets a float32 master copy and float32 moments; each step
// updates the master and writes the rounded bfloat16 value back into the parameter (the gradient
// may be bfloat16).
//
// step() updates every parameter that has a gradient with one adamw_update kernel call per device
// (one launch on the GPU). The weight decay is decoupled (p -= lr * wd * p), as torch.optim.AdamW.
// Step counts are kept per parameter, as in torch: a parameter that had no gradient at some steps
// (frozen for a while, or added later) gets the bias correction of the updates it actually had.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "aria/core/tensor.h"

namespace aria {

struct ParamGroup {
  std::string name;
  std::vector<std::pair<std::string, Tensor>> params;
  double lr = 0.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

class AdamW {
 public:
  // Throws aria::Error naming the group (and parameter) for a parameter in two groups, a non-leaf,
  // non-floating or non-contiguous parameter, negative lr / weight decay / eps, betas outside [0, 1).
  explicit AdamW(std::vector<ParamGroup> groups);

  // One update of every parameter with a defined grad: lr = group.lr * lr_multiplier, and the
  // gradient used is grad * grad_scale (clipping and accumulation averaging, no extra pass).
  void step(double lr_multiplier = 1.0, double grad_scale = 1.0);
  // step() with global-norm clipping done by the kernel: the gradient used is grad * grad_scale *
  // clip_scale(sqrt(grad_sumsq), max_norm), where grad_sumsq is the float64 [1] sum of squares of all
  // gradients on the parameters' device (grad_sum_squares_on_device; undefined: no clipping). The
  // norm is read on the device, so issuing the step never waits for the GPU. A non-finite norm skips
  // the update of every parameter (params, masters and moments untouched), but the step counts
  // (steps() and each parameter's bias-correction count) still advance: the host cannot know without
  // the read this path avoids. So a non-finite norm must end training: the caller reads the norm
  // afterwards (grad_norm_from, which throws on NaN/inf), as the trainers do.
  void step_clipped(double lr_multiplier, const Tensor& grad_sumsq, double max_norm, double grad_scale = 1.0);
  void zero_grad();  // drops every parameter's gradient

  int64_t steps() const { return steps_; }  // calls to step()
  const std::vector<ParamGroup>& groups() const { return groups_; }
  // One row per group (name, #tensors, #params, lr, wd, betas), then one line per group listing
  // its parameter names.
  std::string describe() const;

  // The float32 master copy of a bfloat16 parameter (created at its first update: until then the
  // parameter itself is exact); undefined for float32/float64 parameters. Save this, not the
  // rounded bfloat16 weights, when a checkpoint must keep full precision.
  Tensor master(const std::string& name) const;

  // Takes over `previous`'s float32 masters: every bfloat16 parameter of this optimizer that
  // `previous` also holds (same name, same tensor) and has a master for starts from that master
  // instead of its rounded bfloat16 value (its moments and update count still start afresh). A
  // trainer that builds a new optimizer per phase calls this so that no phase boundary loses the
  // masters' precision. The master tensors are shared, not copied (`previous` is meant to be
  // dropped). Parameters of `previous` absent here keep their bfloat16 value, which is their last
  // master rounded. No-op for float32/float64 parameters.
  void adopt_masters(const AdamW& previous);

  // "m.<param>", "v.<param>" for every parameter that has moments, "master.<param>" for bfloat16
  // parameters that have a master (also one adopted before any update), and "step.<param>" (int64
  // [1]) for those with moments whose own update count differs from steps().
  std::vector<std::pair<std::string, Tensor>> state_tensors() const;
  // Restores what state_tensors() wrote (extra keys not starting with m./v./step./master. are
  // ignored, so a whole checkpoint map can be passed). A parameter without saved moments starts from
  // zero; a "master.<param>" of a bfloat16 parameter is restored with or without moments.
  void load_state(const std::map<std::string, Tensor>& state, int64_t steps);

 private:
  static DType state_dtype(const Tensor& p);
  // step() and step_clipped(): clip_sumsq undefined means no clipping on the device.
  void update(double lr_multiplier, double grad_scale, const Tensor& clip_sumsq, double max_norm);
  struct Slot {  // per parameter: lazily allocated moments (+ fp32 master of a bf16 parameter), update count
    Tensor m, v, master;
    int64_t count = 0;
  };
  std::vector<ParamGroup> groups_;
  std::vector<std::vector<Slot>> slots_;  // [group][param]
  int64_t steps_ = 0;
};

// GPT-2's convention: tensors with 2 or more dimensions (matmul weights, embeddings) in group
// "decay" with weight decay wd; biases and layernorm weights in "no_decay" with 0.
std::vector<ParamGroup> default_decay_groups(const std::vector<std::pair<std::string, Tensor>>& named_params,
                                             double lr, double wd);

}  // namespace aria
