// PLACEHOLDER: not implemented yet.
#include "kernels/kernels.h"

namespace aria::cpu {

void adamw_update(const std::vector<AdamWItem>& items) { ARIA_FAIL("cpu::adamw_update is not implemented yet"); }
void sum_squares(const std::vector<Tensor>& xs, const Tensor& out) { ARIA_FAIL("cpu::sum_squares is not implemented yet"); }
void square_accumulate(const Tensor& acc, const Tensor& g, double alpha) { ARIA_FAIL("cpu::square_accumulate is not implemented yet"); }

}  // namespace aria::cpu
