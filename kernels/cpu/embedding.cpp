// PLACEHOLDER: not implemented yet.
#include "kernels/kernels.h"

namespace aria::cpu {

void embedding_forward(const Tensor& weight, const Tensor& ids, const Tensor& out) { ARIA_FAIL("cpu::embedding_forward is not implemented yet"); }
void embedding_backward(const Tensor& ids, const Tensor& dout, const Tensor& dweight) { ARIA_FAIL("cpu::embedding_backward is not implemented yet"); }

}  // namespace aria::cpu
