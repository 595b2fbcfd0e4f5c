// PLACEHOLDER: not implemented yet.
#include "kernels/kernels.h"

namespace aria::cpu {

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, const Tensor& losses, const Tensor& lse, int ignore_index) { ARIA_FAIL("cpu::cross_entropy_forward is not implemented yet"); }
void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, const Tensor& dlosses, const Tensor& dlogits, int ignore_index) { ARIA_FAIL("cpu::cross_entropy_backward is not implemented yet"); }

}  // namespace aria::cpu
