// Walking an N-d index space with per-tensor strides (CPU kernels of any layout).
#pragma once
#include <vector>

#include "aria/core/tensor_view.h"

namespace aria::cpu {

// Calls f(offset_a, offset_b) for every index of `shape` in row-major order, where each offset is
// the dot product of the index with that tensor's strides (in elements).
template <typename F>
void for_each_strided2(const Shape& shape, const Shape& sa, const Shape& sb, F&& f) {
  const int nd = int(shape.size());
  const int64_t n = shape_numel(shape);
  if (n == 0) return;
  if (nd == 0) {
    f(0, 0);
    return;
  }
  std::vector<int64_t> idx(size_t(nd), 0);
  int64_t oa = 0, ob = 0;
  const int last = nd - 1;
  const int64_t inner = shape[last], ia = sa[last], ib = sb[last];
  for (int64_t done = 0; done < n; done += inner) {
    for (int64_t i = 0; i < inner; ++i) f(oa + i * ia, ob + i * ib);
    // advance the outer index (all dims but the last)
    for (int dd = last - 1; dd >= 0; --dd) {
      ++idx[size_t(dd)];
      oa += sa[dd];
      ob += sb[dd];
      if (idx[size_t(dd)] < shape[dd]) break;
      oa -= sa[dd] * shape[dd];
      ob -= sb[dd] * shape[dd];
      idx[size_t(dd)] = 0;
    }
  }
}

}  // namespace aria::cpu
