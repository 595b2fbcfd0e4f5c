// GPT-2 as plain data (parameter tensors named as in Hugging Face) and a few functions: load,
// save, forward. The MLP of each block is either GPT-2's own or ARIA's PlasticityGatedMLP
// (model/gated_mlp.h) once it has been injected.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "aria/core/tensor.h"
#include "aria/model/gpt2_config.h"

namespace aria {

struct MlpWeights {
  Tensor fc_w, fc_b;      // c_fc:   [C, 4C], [4C]   (HF Conv1D layout: [in, out])
  Tensor proj_w, proj_b;  // c_proj: [4C, C], [C]
};

struct GatedMlp;  // model/gated_mlp.h
namespace ops {
class CaptureSink;  // core/ops_capture.h
}

struct Gpt2Block {
  Tensor ln1_w, ln1_b;
  Tensor attn_w, attn_b;       // c_attn: [C, 3C], [3C]
  Tensor attn_proj_w, attn_proj_b;  // attn.c_proj: [C, C], [C]
  Tensor ln2_w, ln2_b;
  MlpWeights mlp;                  // used while `gated` is null
  std::shared_ptr<GatedMlp> gated; // ARIA: replaces mlp when set
};

struct Gpt2Model {
  Gpt2Config config;
  Tensor wte, wpe;  // [V, C], [P, C]; the lm head is tied to wte
  std::vector<Gpt2Block> blocks;
  Tensor lnf_w, lnf_b;

  Device device() const { return wte.device(); }
  DType dtype() const { return wte.dtype(); }

  // Every trainable tensor with its Hugging Face name (no "transformer." prefix), in a fixed order.
  // Includes the gated-MLP tensors ("h.N.mlp.fast.c_fc.weight", ...) once injected.
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  int64_t num_parameters() const;
  void set_requires_grad(bool r) const;
  Gpt2Model to(Device d) const;  // deep copy onto d (parameters are new leaves, requires_grad kept)
  Gpt2Model to(DType t) const;   // deep copy in dtype t (float64 models serve the reference tests)
};

// What a forward hands back besides its result, when the caller asks for it (ForwardOptions).
struct GateValues {
  // One entry per block: the gate values pi [B, T, 1] of its gated MLP (model/gated_mlp.h), with
  // autograd history while grad is enabled (the plasticity loss differentiates through them);
  // undefined for a block with GPT-2's own MLP.
  std::vector<Tensor> pi;
};

// Options of one forward: the caller asks for extra outputs by pointing at where they go.
struct ForwardOptions {
  GateValues* gates = nullptr;  // filled with every block's gate values (resized to the blocks)
  // Per-sample captures (core/ops_capture.h): every linear, layernorm and embedding of the forward
  // hands the sink its input and output; the fused ops then run as their plain composition.
  ops::CaptureSink* capture = nullptr;
};

// GPT-2's MLP: linear(gelu(linear(x, fc)), proj), with fused GEMM epilogues (ops::gelu_mlp; the
// plain ops when `capture` is set).
Tensor mlp_forward(const MlpWeights& w, const Tensor& x, ops::CaptureSink* capture = nullptr);
// Hidden states after ln_f, [B, T, C], for ids int32 [B, T] with T <= n_positions.
Tensor gpt2_hidden(const Gpt2Model& m, const Tensor& ids, const ForwardOptions& options = {});
// Logits over the vocabulary through the tied head: hidden [..., C] -> [..., V].
Tensor gpt2_logits(const Gpt2Model& m, const Tensor& hidden);
// Mean next-token cross-entropy of ids [B, T] predicting targets [B, T] (ignore_index -100).
Tensor gpt2_lm_loss(const Gpt2Model& m, const Tensor& ids, const Tensor& targets, const ForwardOptions& options = {});

// Random initialisation as GPT-2's paper / HF: N(0, 0.02), residual projections scaled by
// 1/sqrt(2 * n_layer), layernorm weights 1 and biases 0. The config is validated first
// (validate_gpt2_config: absurd sizes are refused before any allocation).
Gpt2Model gpt2_random(const Gpt2Config& cfg, uint64_t seed, Device device = Device::cpu());
struct Gpt2LoadOptions {
  // Accept NaN/Inf weights (to inspect a diverged run) instead of refusing the checkpoint.
  bool allow_nonfinite = false;
};
// Loads DIR/config.json + DIR/model.safetensors (float32, float16, bfloat16 or float64 files; with or
// without the "transformer." prefix; the tied lm_head.weight, if present, must equal wte). The
// config's tensor names and shapes are checked against the file's header before anything is
// allocated; missing or unexpected tensors are errors. A tensor holding NaN or Inf (after conversion
// to float32) is an error naming it and the first bad index, unless options.allow_nonfinite.
Gpt2Model gpt2_load(const std::string& dir, Device device = Device::cpu(), const Gpt2LoadOptions& options = {});
// Writes DIR/config.json + DIR/model.safetensors in the layout transformers' GPT2LMHeadModel
// loads ("transformer." prefix, float32). Gated-MLP checkpoints are saved by the ARIA trainer.
void gpt2_save(const Gpt2Model& m, const std::string& dir);

}  // namespace aria
