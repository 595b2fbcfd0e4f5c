// PLACEHOLDER: not implemented yet.
#include "kernels/kernels.h"

namespace aria::cpu {

void layernorm_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y, const Tensor& mean, const Tensor& rstd, double eps) { ARIA_FAIL("cpu::layernorm_forward is not implemented yet"); }
void layernorm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd, const Tensor& dy, const Tensor& dx, const Tensor& dw, const Tensor& db) { ARIA_FAIL("cpu::layernorm_backward is not implemented yet"); }

}  // namespace aria::cpu
