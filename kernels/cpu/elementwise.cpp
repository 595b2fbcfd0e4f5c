// PLACEHOLDER: not implemented yet.
#include "kernels/kernels.h"

namespace aria::cpu {

void binary(int op, const Tensor& a, const Tensor& b, const Tensor& out) { ARIA_FAIL("cpu::binary is not implemented yet"); }
void unary(int op, const Tensor& x, const Tensor& y, double alpha, double beta) { ARIA_FAIL("cpu::unary is not implemented yet"); }
void unary_backward(int op, const Tensor& x, const Tensor& y, const Tensor& dy, const Tensor& dx, double alpha) { ARIA_FAIL("cpu::unary_backward is not implemented yet"); }
void sum_to(const Tensor& x, const Tensor& out) { ARIA_FAIL("cpu::sum_to is not implemented yet"); }
void add_bias(const Tensor& y, const Tensor& b) { ARIA_FAIL("cpu::add_bias is not implemented yet"); }

}  // namespace aria::cpu
