// PLACEHOLDER: not implemented yet.
#include "kernels/kernels.h"

namespace aria::cpu {

void matmul(const Tensor& a, const Tensor& b, const Tensor& c, bool trans_a, bool trans_b, double alpha, double beta) { ARIA_FAIL("cpu::matmul is not implemented yet"); }

}  // namespace aria::cpu
