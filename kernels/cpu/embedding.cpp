// CPU embedding lookup and its backward (float32 / float64 weights, int32 ids).
#include <algorithm>
#include <vector>

#include "aria/kernels/backend.h"

namespace aria::cpu {

namespace {

void check_ids(const TensorView& ids, int64_t V, const char* what) {
  ARIA_CHECK(ids.dtype() == DType::I32, what, ": ids must be int32, got ", ids.str());
  ARIA_CHECK(ids.is_contiguous(), what, ": ids must be contiguous");
  const int32_t* p = ids.data<int32_t>();
  for (int64_t n = 0; n < ids.numel(); ++n)
    ARIA_CHECK(p[n] >= 0 && p[n] < V, what, ": id ", p[n], " at position ", n, " is outside [0, ", V, ")");
}

template <typename T>
void forward_impl(const TensorView& weight, const TensorView& ids, const TensorView& out) {
  const int64_t N = ids.numel(), D = weight.size(1);
  const T* w = weight.data<T>();
  const int32_t* id = ids.data<int32_t>();
  T* o = out.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) std::copy_n(w + int64_t(id[n]) * D, D, o + n * D);
}

// Buckets the positions by id (counting sort, positions ascending inside a bucket), then each
// vocabulary row sums its positions in that fixed order: deterministic, no shared writes.
template <typename T>
void backward_impl(const TensorView& ids, const TensorView& dout, const TensorView& dweight) {
  const int64_t N = ids.numel(), V = dweight.size(0), D = dweight.size(1);
  const int32_t* id = ids.data<int32_t>();
  std::vector<int64_t> start(static_cast<size_t>(V) + 1, 0), order(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) ++start[size_t(id[n]) + 1];
  for (int64_t v = 0; v < V; ++v) start[size_t(v) + 1] += start[size_t(v)];
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int64_t n = 0; n < N; ++n) order[size_t(fill[size_t(id[n])]++)] = n;
  const T* g = dout.data<T>();
  T* dw = dweight.data<T>();
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t v = 0; v < V; ++v) {
    T* row = dw + v * D;
    for (int64_t k = start[size_t(v)]; k < start[size_t(v) + 1]; ++k) {
      const T* src = g + order[size_t(k)] * D;
      for (int64_t d = 0; d < D; ++d) row[d] += src[d];
    }
  }
}

}  // namespace

void embedding_forward(const TensorView& weight, const TensorView& ids, const TensorView& out) {
  ARIA_CHECK(weight.dim() == 2 && weight.is_contiguous(), "embedding_forward: weight must be a contiguous [V, D], got ",
             weight.str());
  check_ids(ids, weight.size(0), "embedding_forward");
  ARIA_CHECK(out.is_contiguous() && out.dtype() == weight.dtype() && out.numel() == ids.numel() * weight.size(1),
             "embedding_forward: out must be a contiguous ", dtype_name(weight.dtype()), " [N, D], got ", out.str());
  if (weight.dtype() == DType::F32) return forward_impl<float>(weight, ids, out);
  if (weight.dtype() == DType::F64) return forward_impl<double>(weight, ids, out);
  ARIA_FAIL("embedding_forward: unsupported dtype ", dtype_name(weight.dtype()));
}

void embedding_backward(const TensorView& ids, const TensorView& dout, const TensorView& dweight) {
  ARIA_CHECK(dweight.dim() == 2 && dweight.is_contiguous(), "embedding_backward: dweight must be a contiguous [V, D], got ",
             dweight.str());
  check_ids(ids, dweight.size(0), "embedding_backward");
  ARIA_CHECK(dout.is_contiguous() && dout.dtype() == dweight.dtype() && dout.numel() == ids.numel() * dweight.size(1),
             "embedding_backward: dout must be a contiguous ", dtype_name(dweight.dtype()), " [N, D], got ", dout.str());
  if (dweight.dtype() == DType::F32) return backward_impl<float>(ids, dout, dweight);
  if (dweight.dtype() == DType::F64) return backward_impl<double>(ids, dout, dweight);
  ARIA_FAIL("embedding_backward: unsupported dtype ", dtype_name(dweight.dtype()));
}

}  // namespace aria::cpu
