// Non-differentiable ops that write into tensors the caller provides: the optimizer, gradient
// clipping, SPC, gradient dampening and the per-sample Fisher reach the kernels through these (train/
// includes no kernels/ header). Each runs one kernel row of kernels/kernel_list.h on the device of its
// tensors, records nothing on the tape and reads nothing back to the host. Each checks what would
// otherwise reach a kernel malformed (undefined tensors, mixed devices, wrong shapes) with an
// aria::Error naming the op; dtype rules are the kernel row's. Implementations: core/ops_inplace.cpp.
#pragma once
#include <vector>

#include "aria/core/adamw_item.h"
#include "aria/core/tensor.h"

namespace aria::ops {

// y += alpha * x (same shape and device; y may be x). Row axpy.
void add_scaled_(const Tensor& y, const Tensor& x, double alpha);
// x *= s[0], the scale read on the device (s holds one float32 or float64 value on x's device; x
// contiguous). Row scale_by.
void scale_by_(const Tensor& x, const Tensor& s);
// acc += alpha * g^2 elementwise; g is acc's shape, or [S, ...acc's shape] to add S squared samples.
// Row square_accumulate.
void add_squares_(const Tensor& acc, const Tensor& g, double alpha);
// out[0] += sum over xs of sum(x^2) (out one float32 or float64 value; every x contiguous, all on
// out's device). Row sum_squares.
void add_sum_squares_(const std::vector<Tensor>& xs, const Tensor& out);
// One AdamW step over every item (AdamWItem, core/adamw_item.h), one launch on the GPU; every item on
// one device (no items: nothing). Row adamw_update.
void adamw_update_(const std::vector<AdamWItem>& items);
// grads[k] += lambda * (As[k] * ps[k] - Bs[k]) for every k, in one pass: the SPC penalty's gradient.
// Four lists of one length, each k of one shape. Row spc_penalty_grad.
void add_spc_penalty_grad_(const std::vector<Tensor>& grads, const std::vector<Tensor>& As,
                           const std::vector<Tensor>& ps, const std::vector<Tensor>& Bs, double lambda);
// out = a * b elementwise (one shape, out contiguous). Row binary (mul).
void mul_into(const Tensor& a, const Tensor& b, const Tensor& out);
// c[i] = op(a[i]) @ op(b[i]) for a [batch, M, K] ([batch, K, M] when trans_a), b [batch or 1, K, N]
// ([.., N, K] when trans_b), c [batch, M, N], all contiguous. Row matmul (alpha 1, beta 0).
void matmul_into(const Tensor& a, const Tensor& b, const Tensor& c, bool trans_a, bool trans_b);
// out = sum of x over the dimensions where out (x's rank) has extent 1. Row sum_to.
void sum_to_into(const Tensor& x, const Tensor& out);
// dst[ids[n], :] += src[n, :] (dst [V, D], ids int32 [N] in [0, V), src [N, D]); deterministic. Row
// embedding_backward. The ids are the caller's to keep in range (not read back here).
void index_add_rows_(const Tensor& dst, const Tensor& ids, const Tensor& src);

}  // namespace aria::ops
