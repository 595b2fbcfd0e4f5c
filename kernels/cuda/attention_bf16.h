// The bfloat16 path of the attention_forward / attention_backward rows (kernels/kernel_list.h):
// qkv, out, dout, dqkv bfloat16, lse float32. cuda::attention_forward/backward (attention.cu) route
// BF16 qkv here. Head dims 64 and 128 run on tensor cores (kernels/cuda/attention_bf16_forward.cu and
// attention_bf16_backward.cu); any other head dim runs the float32 kernel on float32 copies.
#pragma once
#include "aria/core/tensor.h"

namespace aria::cuda {

void attention_forward_bf16(const Tensor& qkv, const Tensor& out, const Tensor& lse, int n_head);
void attention_backward_bf16(const Tensor& qkv, const Tensor& out, const Tensor& lse, const Tensor& dout,
                             const Tensor& dqkv, int n_head);

}  // namespace aria::cuda
