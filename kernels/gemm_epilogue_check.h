// The argument rules of the gemm_epilogue row (kernels/kernel_list.h), one copy for the CPU kernel
// (kernels/cpu/matmul.cpp) and the CUDA one (kernels/cuda/matmul.cu), so that both refuse the same
// calls with the same messages. Plain C++ (it is compiled by nvcc too).
#pragma once
#include <cstdint>
#include <initializer_list>

#include "aria/core/tensor_view.h"
#include "aria/kernels/backend.h"

namespace aria {

struct GemmEpilogueArgs {
  int64_t M, N, K;  // c [M, N] = op(a) [M, K] @ op(b) [K, N]
  GemmEpilogue ep;
};

// Checks a gemm_epilogue call and returns its sizes. `what` names the kernel in messages; `dtypes`
// are the dtypes the backend computes in and `dtypes_note` says so in the error for any other.
inline GemmEpilogueArgs check_gemm_epilogue_args(const char* what, std::initializer_list<DType> dtypes,
                                                 const char* dtypes_note, const TensorView& a, const TensorView& b,
                                                 const TensorView& c, bool trans_a, bool trans_b, int epilogue,
                                                 const TensorView& bias, const TensorView& aux) {
  ARIA_CHECK(epilogue >= int(GemmEpilogue::None) && epilogue <= int(GemmEpilogue::BGrad), what,
             ": unknown epilogue ", epilogue);
  const auto ep = GemmEpilogue(epilogue);
  ARIA_CHECK(a.dim() == 2 && b.dim() == 2 && c.dim() == 2, what, ": a, b, c must be 2-D: ", a.str(), ", ", b.str(),
             ", ", c.str());
  ARIA_CHECK(a.dtype() == b.dtype() && a.dtype() == c.dtype(), what, ": dtypes differ: ", a.str(), ", ", b.str(),
             ", ", c.str());
  bool dtype_ok = false;
  for (DType t : dtypes) dtype_ok |= c.dtype() == t;
  ARIA_CHECK(dtype_ok, what, ": ", dtypes_note, ", got ", dtype_name(c.dtype()));
  ARIA_CHECK(a.is_contiguous() && b.is_contiguous() && c.is_contiguous(), what, ": a, b, c must be contiguous");
  check_same_device(a, c, what);
  check_same_device(b, c, what);
  const int64_t M = trans_a ? a.size(1) : a.size(0), K = trans_a ? a.size(0) : a.size(1);
  const int64_t Kb = trans_b ? b.size(1) : b.size(0), N = trans_b ? b.size(0) : b.size(1);
  ARIA_CHECK(K == Kb && c.size(0) == M && c.size(1) == N, what, ": shapes do not agree: a ", a.str(),
             (trans_a ? " (transposed)" : ""), ", b ", b.str(), (trans_b ? " (transposed)" : ""), ", c ", c.str());
  const bool bias_needed = ep == GemmEpilogue::Bias || ep == GemmEpilogue::BGrad;
  const bool bias_allowed = bias_needed || ep == GemmEpilogue::Gelu || ep == GemmEpilogue::DGelu;
  const bool aux_needed = ep == GemmEpilogue::DGelu;
  const bool aux_allowed = aux_needed || ep == GemmEpilogue::Gelu;
  ARIA_CHECK(bias.defined() || !bias_needed, what, ": epilogue ", epilogue, " needs a bias");
  ARIA_CHECK(!bias.defined() || bias_allowed, what, ": epilogue ", epilogue, " takes no bias");
  ARIA_CHECK(aux.defined() || !aux_needed, what, ": epilogue ", epilogue, " needs aux");
  ARIA_CHECK(!aux.defined() || aux_allowed, what, ": epilogue ", epilogue, " takes no aux");
  if (bias.defined()) {
    ARIA_CHECK(bias.dim() == 1 && bias.size(0) == N && bias.dtype() == c.dtype() && bias.is_contiguous(), what,
               ": bias must be contiguous [", N, "] of c's dtype, got ", bias.str());
    check_same_device(bias, c, what);
  }
  if (aux.defined()) {
    ARIA_CHECK(aux.dim() == 2 && aux.size(0) == M && aux.size(1) == N && aux.dtype() == c.dtype() &&
                   aux.is_contiguous(),
               what, ": aux must be contiguous [", M, ", ", N, "] of c's dtype, got ", aux.str());
    check_same_device(aux, c, what);
  }
  return {M, N, K, ep};
}

}  // namespace aria
