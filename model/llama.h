// Llama-family decoders (Hugging Face's LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM) as
// plain data, parameters named exactly as in Hugging Face's checkpoints, and a few functions: random
// init, load, save, forward to hidden states / logits, the causal-LM loss. The forward is the ops of
// core/ops_llama.h (RMSNorm fused with the residual add, packed SwiGLU, RoPE on the packed qkv rows,
// grouped-query attention with the layer's sliding window) and the GEMMs of core/ops.h, so it runs
// on every device and dtype those ops support, with autograd.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "aria/core/tensor.h"
#include "aria/model/llama_config.h"

namespace aria {

// Weights in nn.Linear's layout, [out, in], as stored by transformers.
struct LlamaLayer {
  Tensor input_norm_w;                // input_layernorm.weight [C]
  Tensor q_w, k_w, v_w, o_w;          // self_attn.{q,k,v,o}_proj.weight: [H hd, C], [KV hd, C] x 2, [C, H hd]
  Tensor q_b, k_b, v_b;               // their biases when config.qkv_bias (Qwen2), else undefined
  Tensor o_b;                         // o_proj.bias when config.o_bias (Llama's attention_bias), else undefined
  Tensor post_norm_w;                 // post_attention_layernorm.weight [C]
  Tensor gate_w, up_w, down_w;        // mlp.{gate,up}_proj.weight [I, C], mlp.down_proj.weight [C, I]
};

struct LlamaRopeCache;  // cos/sin tables per (device, dtype, length), shared by copies of a model

struct LlamaModel {
  LlamaConfig config;
  Tensor embed;  // model.embed_tokens.weight [V, C]
  std::vector<LlamaLayer> layers;
  Tensor norm_w;   // model.norm.weight [C]
  Tensor lm_head;  // lm_head.weight [V, C]; undefined when config.tie_word_embeddings (embed is the head)
  std::shared_ptr<LlamaRopeCache> rope_cache;

  Device device() const { return embed.device(); }
  DType dtype() const { return embed.dtype(); }
  const Tensor& head() const { return config.tie_word_embeddings ? embed : lm_head; }

  // Every trainable tensor with its Hugging Face name, in a fixed order.
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  int64_t num_parameters() const;
  void set_requires_grad(bool r) const;
  LlamaModel to(Device d) const;  // deep copies (new leaves, requires_grad kept)
  LlamaModel to(DType t) const;
};

// Final hidden states (after model.norm), [B, T, C], for ids int32 [B, T] on the model's device.
// T must be <= max_position_embeddings (an error says so). A sliding window is applied as transformers
// does at any length (keys i - window < j <= i); the attention op has no length limit of its own.
Tensor llama_hidden(const LlamaModel& m, const Tensor& ids);
// Logits through the head: hidden [..., C] -> [..., V].
Tensor llama_logits(const LlamaModel& m, const Tensor& hidden);
// Mean cross-entropy of ids [B, T] predicting targets [B, T] (ignore_index -100), the logits made in
// chunks and never kept (ops::lm_head_cross_entropy).
Tensor llama_lm_loss(const LlamaModel& m, const Tensor& ids, const Tensor& targets);
// transformers' causal-LM loss, model(input_ids, labels=labels).loss: position t predicts labels[t + 1]
// (the last position predicts nothing), labels -100 ignored. labels int32 [B, T], on any device.
Tensor llama_causal_lm_loss(const LlamaModel& m, const Tensor& ids, const Tensor& labels);
// labels shifted left by one with -100 at the end: the targets llama_causal_lm_loss uses (CPU).
Tensor shift_labels(const Tensor& labels);

// transformers' initialisation: N(0, 0.02) weights, RMSNorm weights 1, biases 0, float32. The config
// is validated first (absurd sizes refused before any allocation).
LlamaModel llama_random(const LlamaConfig& cfg, uint64_t seed, Device device = Device::cpu());

struct LlamaLoadOptions {
  DType dtype = DType::F32;      // the dtype of the model's tensors (the file's are converted)
  bool allow_nonfinite = false;  // accept NaN/Inf weights instead of refusing the checkpoint
};
// Loads DIR/config.json and DIR/model.safetensors, or, when that file is absent, the shards named by
// DIR/model.safetensors.index.json. Files in float32, float16, bfloat16 (or float64). Names and shapes
// are checked against the config from the headers alone before anything is allocated; a missing,
// unexpected, duplicated or misshapen tensor, an index naming a missing shard or a tensor its shard
// lacks, and a NaN/Inf weight are errors naming the file and the tensor.
LlamaModel llama_load(const std::string& dir, Device device = Device::cpu(), const LlamaLoadOptions& options = {});

struct LlamaSaveOptions {
  DType dtype = DType::F32;     // F32, F16 or BF16; config.json's torch_dtype says which
  int64_t max_shard_bytes = 0;  // > 0: shards of at most this many bytes (a larger tensor gets its own)
                                // and model.safetensors.index.json, as save_pretrained's max_shard_size
};
// Writes DIR/config.json and the safetensors file(s) in the layout transformers loads (a stale single
// file or index of the other form is removed so the folder holds one checkpoint).
void llama_save(const LlamaModel& m, const std::string& dir, const LlamaSaveOptions& options = {});

}  // namespace aria
