// PLACEHOLDER: not implemented yet.
#include "kernels/kernels.h"

namespace aria::cpu {

void softmax_forward(const Tensor& x, const Tensor& y) { ARIA_FAIL("cpu::softmax_forward is not implemented yet"); }
void softmax_backward(const Tensor& y, const Tensor& dy, const Tensor& dx) { ARIA_FAIL("cpu::softmax_backward is not implemented yet"); }

}  // namespace aria::cpu
