// Classification accuracy on the CPU: out[0] += #{n : argmax(logits[n]) == labels[n]} with
// std::max_element's argmax (the first index of the maximum; see kernels/kernel_list.h).
#include <algorithm>

#include "aria/kernels/backend.h"
#include "aria/kernels/count_correct_check.h"
#include "aria/kernels/cpu/cpu_common.h"

namespace aria::cpu {

void count_correct(const TensorView& logits, const TensorView& labels, const TensorView& out) {
  check_count_correct_args(logits, labels, out);
  ARIA_CHECK(logits.device().is_cpu(), "count_correct: the CPU kernel needs CPU tensors, got ", logits.str());
  const int64_t N = logits.size(0), C = logits.size(1);
  const int32_t* pl = labels.data<int32_t>();
  // Every label is checked before anything is counted: an error leaves out unchanged.
  for (int64_t n = 0; n < N; ++n)
    ARIA_CHECK(pl[n] >= 0 && pl[n] < C, "count_correct: label ", pl[n], " at row ", n, " is outside [0, ", C,
               ") for logits ", logits.str());
  if (N == 0) return;
  int64_t count = 0;
  dispatch_float(logits.dtype(), "count_correct", [&](auto tag) {
    using T = decltype(tag);
    const T* px = logits.data<T>();
#pragma omp parallel for reduction(+ : count) schedule(static) if (N * C >= kParallelMin)
    for (int64_t n = 0; n < N; ++n) {
      const T* row = px + n * C;
      count += (std::max_element(row, row + C) - row) == pl[n] ? 1 : 0;
    }
  });
  *out.data<double>() += double(count);
}

}  // namespace aria::cpu
