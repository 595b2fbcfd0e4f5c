// The bfloat16 path of the attention_forward / attention_backward rows (kernels/kernel_list.h):
// qkv, out, dout, dqkv bfloat16, lse float32. cuda::attention_forward/backward (attention.cu) route
// BF16 qkv here. Head dims 64 and 128 run on tensor cores (kernels/cuda/attention_bf16_forward.cu and
// attention_bf16_backward.cu); any other head dim runs the float32 kernel on float32 copies.
#pragma once
#include "aria/core/tensor_view.h"

namespace aria::cuda {

void attention_forward_bf16(const TensorView& qkv, const TensorView& out, const TensorView& lse, int n_head);
// The grouped-query form of the forward (attention_gqa_forward's row: packed (H + 2 KV) hd columns,
// optional sliding window) on tensor cores when it applies (bfloat16, hd 64 or 128, 16-byte aligned):
// returns false, having done nothing, when it does not.
bool attention_forward_bf16_gqa(const TensorView& qkv, const TensorView& out, const TensorView& lse, int n_head,
                                int n_kv_head, int window);
void attention_backward_bf16(const TensorView& qkv, const TensorView& out, const TensorView& lse,
                             const TensorView& dout, const TensorView& dqkv, int n_head);

}  // namespace aria::cuda
