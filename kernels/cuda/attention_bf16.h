// The bfloat16 path of the attention_forward / attention_backward rows (kernels/kernel_list.h):
// qkv, out, dout, dqkv bfloat16, lse float32. cuda::attention_forward/backward (attention.cu) route
// BF16 qkv here. Head dims 64 and 128 run on tensor cores (kernels/cuda/attention_bf16_forward.cu and
// attention_bf16_backward.cu); any other head dim runs the float32 kernel on float32 copies.
#pragma once
#include "aria/core/tensor.h"

namespace aria::cuda {

// variant: which compiled hd-64 forward configuration runs (0 .. attention_forward_bf16_variants() - 1,
// 0 the default); -1 takes ARIA_ATTN_FWD_VARIANT from the environment (read once; unset = 0).
void attention_forward_bf16(const Tensor& qkv, const Tensor& out, const Tensor& lse, int n_head, int variant = -1);
int attention_forward_bf16_variants();
const char* attention_forward_bf16_variant_name(int variant);
// variant: which compiled hd-64 backward configuration runs (0 .. attention_backward_bf16_variants() - 1,
// 0 the default); -1 takes ARIA_ATTN_BWD_VARIANT from the environment (read once; unset = 0). Head
// dim 128 has one configuration and ignores it.
void attention_backward_bf16(const Tensor& qkv, const Tensor& out, const Tensor& lse, const Tensor& dout,
                             const Tensor& dqkv, int n_head, int variant = -1);
int attention_backward_bf16_variants();
const char* attention_backward_bf16_variant_name(int variant);

}  // namespace aria::cuda
