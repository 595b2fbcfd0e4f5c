// PLACEHOLDER: not implemented yet.
#include "kernels/kernels.h"

namespace aria::cpu {

void attention_forward(const Tensor& qkv, const Tensor& out, const Tensor& lse, int n_head) { ARIA_FAIL("cpu::attention_forward is not implemented yet"); }
void attention_backward(const Tensor& qkv, const Tensor& out, const Tensor& lse, const Tensor& dout, const Tensor& dqkv, int n_head) { ARIA_FAIL("cpu::attention_backward is not implemented yet"); }

}  // namespace aria::cpu
