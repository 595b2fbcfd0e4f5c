// The one table of kernels. Every row is implemented twice, with the same signature:
//   kernels/cpu/<family>.cpp  in namespace aria::cpu   (Eigen / plain loops, float32 and float64)
//   kernels/cuda/<family>.cu  in namespace aria::cuda  (hand-written CUDA / cuBLASLt, float32)
// core/ops*.cpp dispatch on the device of their inputs (ARIA_DISPATCH in kernels/backend.h).
// Each row's tests: the op cases named for it in tests/support/kernel_cases.cpp (checked by
// tests/test_kernel_coverage.cpp); where an op lives and how to add one: docs/ops.md.
// Conventions: every tensor is passed as a plain view (`const TensorView&`, core/tensor_view.h:
// pointer, shape, strides, dtype, device; no autograd; a Tensor converts to one), outputs as views
// of preallocated memory (the view is const, the data is written). Unless a row says otherwise every
// tensor is contiguous and on one device. "accumulate" means the kernel adds into its output instead
// of overwriting it.
//
// ARIA_KERNEL(name, (parameter list), (argument names))
//
// Mixed precision (bfloat16): on CUDA every float tensor of a row may also be BF16 (storage only:
// loads convert to fp32, math and accumulation run in fp32, stores round to nearest even).
// Statistics a row calls float32 (layernorm mean/rstd, attention lse, cross-entropy losses/lse,
// sum_squares' out, square_accumulate's acc, AdamW masters and moments) stay float32 whatever the
// data dtype. The CPU kernels compute in float32/float64 only; BF16 compute on the CPU is refused by
// core/ops with a clear error (the CPU is the reference the BF16 GPU path is tested against).

// ---- data movement ----
// dst = src, element by element; any strides on both sides, same shape; dtypes may differ
// (any pair of float dtypes, or int32 <-> int32/int64/float). Same device.
ARIA_KERNEL(copy_cast, (const TensorView& src, const TensorView& dst), (src, dst))
// y[:] = value (any dtype, contiguous)
ARIA_KERNEL(fill, (const TensorView& y, double value), (y, value))
// y += alpha * x   (same shape; float dtypes)
ARIA_KERNEL(axpy, (const TensorView& y, const TensorView& x, double alpha), (y, x, alpha))

// ---- elementwise ----
// out = op(a, b). a and b may have any strides (stride 0 expresses broadcasting) and out's shape;
// out contiguous. op: 0 add, 1 sub, 2 mul, 3 div.
ARIA_KERNEL(binary, (int op, const TensorView& a, const TensorView& b, const TensorView& out), (op, a, b, out))
// out = x * s[0]: a scale read on the device (s float32 or float64 [1], same device), so a gradient
// can be scaled by an upstream scalar without reading it on the host. x and out contiguous, same
// shape and dtype; out may be x.
ARIA_KERNEL(scale_by, (const TensorView& x, const TensorView& s, const TensorView& out), (x, s, out))
// y = op(x) for op in UnaryOp (kernels/backend.h); alpha/beta give y = alpha*x + beta for op=Affine.
ARIA_KERNEL(unary, (int op, const TensorView& x, const TensorView& y, double alpha, double beta),
            (op, x, y, alpha, beta))
// dx = dy * op'(x) when alpha == 0, dx += dy * op'(x) when alpha == 1 (any other alpha is an
// error). y = op(x) is passed too: Sigmoid, Exp and Tanh read only y, the others only x. Affine is
// not accepted (its backward is unary(Affine, dy, dx, alpha, 0)).
ARIA_KERNEL(unary_backward,
            (int op, const TensorView& x, const TensorView& y, const TensorView& dy, const TensorView& dx,
             double alpha),
            (op, x, y, dy, dx, alpha))
// GELU's backward fused with the bias gradient of the layer before it, in one pass over [R, C]
// (pre viewed as rows of C = pre.size(-1)): dpre = dh * gelu'(pre) elementwise (the derivative of
// unary_backward(Gelu), bit for bit) and db[c] = sum_r dpre[r, c], both written. pre, dh, dpre: one
// shape and dtype, contiguous; dpre may be dh. db: C contiguous values of that dtype. db is summed in
// a fixed order (deterministic): in float64 on the CPU and for float64 data, else in fp32 on CUDA
// (for bfloat16 data from the fp32 products, before dpre's rounding; db rounded once).
ARIA_KERNEL(gelu_backward_bias_grad,
            (const TensorView& pre, const TensorView& dh, const TensorView& dpre, const TensorView& db),
            (pre, dh, dpre, db))
// out = sum of x over the dimensions where out (same rank as x, a view) has extent 1.
ARIA_KERNEL(sum_to, (const TensorView& x, const TensorView& out), (x, out))
// y[n, c] += b[c]   (y viewed as [N, C])
ARIA_KERNEL(add_bias, (const TensorView& y, const TensorView& b), (y, b))

// ---- matrix products ----
// c[i] = alpha * op(a[i]) @ op(b[i]) + beta * c[i] for i < batch. a: [batch, M, K] ([batch, K, M]
// when trans_a), b: [batch or 1, K, N] ([.., N, K] when trans_b), c: [batch, M, N]. A batch-1 b is
// shared by every a[i].
ARIA_KERNEL(matmul,
            (const TensorView& a, const TensorView& b, const TensorView& c, bool trans_a, bool trans_b, double alpha,
             double beta),
            (a, b, c, trans_a, trans_b, alpha, beta))

// Fused GEMM epilogues (2-D, row-major, alpha 1, beta 0): c = op(a) @ op(b), a [M, K] ([K, M] when
// trans_a), b [K, N] ([N, K] when trans_b), c [M, N]; epilogue (GemmEpilogue in kernels/backend.h):
//   None:  c = ab
//   Bias:  c = ab + bias[N]
//   Gelu:  aux = ab + bias[N] (pre-activation, [M, N], saved for backward); c = gelu_tanh(aux)
//   DGelu: c = ab * gelu_tanh'(aux); when bias is defined, bias[N] = column sums of c (written)
//   BGrad: c = ab; bias[N] = sum over k of op(b)[k, n] (written: the bias gradient of a linear layer
//          when a = x (trans_a) and b = dy, so that c = x^T dy = dW)
// a, b, c, aux, bias share one dtype (CUDA: float32 or bfloat16 through cuBLASLt epilogues; CPU:
// float32/float64). Undefined bias/aux where the epilogue does not use them.
ARIA_KERNEL(gemm_epilogue,
            (const TensorView& a, const TensorView& b, const TensorView& c, bool trans_a, bool trans_b, int epilogue,
             const TensorView& bias, const TensorView& aux),
            (a, b, c, trans_a, trans_b, epilogue, bias, aux))

// ---- neural-network ops ----
// out[n, :] = weight[ids[n], :]. ids int32 in [0, V) (checked by the caller).
ARIA_KERNEL(embedding_forward, (const TensorView& weight, const TensorView& ids, const TensorView& out),
            (weight, ids, out))
// dweight[ids[n], :] += dout[n, :]; deterministic (no float atomics): rows summed in a fixed order.
ARIA_KERNEL(embedding_backward, (const TensorView& ids, const TensorView& dout, const TensorView& dweight),
            (ids, dout, dweight))
// x, y: [N, C]; w, b: [C]; mean, rstd: [N] (float32 statistics, saved for backward; float64 for
// float64 x, so that float64 gradient checks stay exact). Biased variance, as torch.
ARIA_KERNEL(layernorm_forward,
            (const TensorView& x, const TensorView& w, const TensorView& b, const TensorView& y, const TensorView& mean,
             const TensorView& rstd, double eps),
            (x, w, b, y, mean, rstd, eps))
// dx written; dw, db accumulate.
ARIA_KERNEL(layernorm_backward,
            (const TensorView& x, const TensorView& w, const TensorView& mean, const TensorView& rstd,
             const TensorView& dy, const TensorView& dx, const TensorView& dw, const TensorView& db),
            (x, w, mean, rstd, dy, dx, dw, db))
// Fused residual add + layernorm: sum = x + r; y = layernorm(sum) (mean, rstd as layernorm_forward).
ARIA_KERNEL(add_layernorm_forward,
            (const TensorView& x, const TensorView& r, const TensorView& w, const TensorView& b, const TensorView& sum,
             const TensorView& y, const TensorView& mean, const TensorView& rstd, double eps),
            (x, r, w, b, sum, y, mean, rstd, eps))
// layernorm_backward whose dx also receives a residual gradient: dx = dres + dLN/dx . dy (dres may be
// undefined: then as layernorm_backward; dres may alias dx). dw, db accumulate.
ARIA_KERNEL(layernorm_backward_residual,
            (const TensorView& x, const TensorView& w, const TensorView& mean, const TensorView& rstd,
             const TensorView& dy, const TensorView& dres, const TensorView& dx, const TensorView& dw,
             const TensorView& db),
            (x, w, mean, rstd, dy, dres, dx, dw, db))
// RMSNorm over the last dimension (Llama, Mistral, Qwen2): x, y [N, C], w [C], rstd [N] float32
// (float64 for float64 x): rstd = 1 / sqrt(mean(x^2) + eps), y = (x * rstd) * w as Hugging Face's
// LlamaRMSNorm computes it in float32 (no mean, no bias). Sums of squares in fp32 (double on the CPU).
ARIA_KERNEL(rmsnorm_forward,
            (const TensorView& x, const TensorView& w, const TensorView& y, const TensorView& rstd, double eps),
            (x, w, y, rstd, eps))
// Fused residual add + RMSNorm: sum = x + r (stored in x's dtype), y = rmsnorm(sum) as above.
ARIA_KERNEL(add_rmsnorm_forward,
            (const TensorView& x, const TensorView& r, const TensorView& w, const TensorView& sum, const TensorView& y,
             const TensorView& rstd, double eps),
            (x, r, w, sum, y, rstd, eps))
// Backward of both: dx = dres + rstd * (g - xhat * mean(g * xhat)) with g = dy * w, xhat = x * rstd
// (x: the normalised input, i.e. the forward's sum when fused); dw += sum_n dy * xhat in a fixed order
// (deterministic). dres may be undefined or alias dx; dx may be undefined (dw only, then no dres);
// dw may be undefined. dw has x's dtype, or float32 for bfloat16 x.
ARIA_KERNEL(rmsnorm_backward,
            (const TensorView& x, const TensorView& w, const TensorView& rstd, const TensorView& dy,
             const TensorView& dres, const TensorView& dx, const TensorView& dw),
            (x, w, rstd, dy, dres, dx, dw))
// SwiGLU (the Llama MLP's activation): out = silu(gate) * up, silu(g) = g * sigmoid(g). gate, up, out:
// [N, H] with unit column stride and any row stride (gate and up may be the two halves of one
// [N, 2H] GEMM output). fp32 math for bfloat16.
ARIA_KERNEL(swiglu_forward, (const TensorView& gate, const TensorView& up, const TensorView& out), (gate, up, out))
// Its gradients in one pass, written: dgate = dout * up * silu'(gate), dup = dout * silu(gate), with
// silu'(g) = s (1 + g (1 - s)), s = sigmoid(g). Geometry as the forward; either output may be
// undefined; dgate and dup may alias gate and up (every element is read before it is written).
ARIA_KERNEL(swiglu_backward,
            (const TensorView& gate, const TensorView& up, const TensorView& dout, const TensorView& dgate,
             const TensorView& dup),
            (gate, up, dout, dgate, dup))
// Rotary position embeddings, Hugging Face's rotate_half layout (the two halves of a head, not
// interleaved pairs). x, y: contiguous [R, W] rows of heads of D = head_dim columns (D even); row r
// uses table row r % P (R a multiple of P: P = T shares positions across a batch). The first
// n_rot * D columns (heads 0 .. n_rot - 1, e.g. q and k of a packed q | k | v row) are rotated, for
// j < D/2: y[j] = x[j] cos[j] - x[j + D/2] sin[j], y[j + D/2] = x[j + D/2] cos[j] + x[j] sin[j]; the
// remaining columns are copied. inverse = true rotates by the negated angle (the backward: R^T).
// cos, sin: [P, D/2] float32 (float64 for float64 x), as rope_table makes them. y may alias x.
ARIA_KERNEL(rope_apply,
            (const TensorView& x, const TensorView& cos, const TensorView& sin, const TensorView& y, int n_rot,
             int head_dim, bool inverse),
            (x, cos, sin, y, n_rot, head_dim, inverse))
// The rotation tables: cos[p, j], sin[p, j] of the angle float(positions[p]) * inv_freq[j]. For
// float32 inv_freq the angle is that float32 product (rounded, as Hugging Face's float32 matmul makes
// it) and its cos/sin are evaluated in double and rounded once; for float64 inv_freq everything is
// double. positions int32 [P] (>= 0, checked on the CPU; the caller's on CUDA), inv_freq [D/2],
// cos, sin [P, D/2] of inv_freq's dtype; one device.
ARIA_KERNEL(rope_table,
            (const TensorView& positions, const TensorView& inv_freq, const TensorView& cos, const TensorView& sin),
            (positions, inv_freq, cos, sin))
// softmax over the last dimension of x viewed as [N, C]
ARIA_KERNEL(softmax_forward, (const TensorView& x, const TensorView& y), (x, y))
ARIA_KERNEL(softmax_backward, (const TensorView& y, const TensorView& dy, const TensorView& dx), (y, dy, dx))
// Causal multi-head self-attention in GPT-2's layout. qkv: [B, T, 3C] (q | k | v, head h at
// columns h*hd .. (h+1)*hd of each part); out: [B, T, C] with heads merged; lse: [B, H, T] float32
// (float64 for float64 qkv), the log-sum-exp of each scaled score row (saved so backward can rebuild
// P without storing it). Scores are scaled by 1/sqrt(hd).
ARIA_KERNEL(attention_forward, (const TensorView& qkv, const TensorView& out, const TensorView& lse, int n_head),
            (qkv, out, lse, n_head))
// dqkv: [B, T, 3C], written.
ARIA_KERNEL(attention_backward,
            (const TensorView& qkv, const TensorView& out, const TensorView& lse, const TensorView& dout,
             const TensorView& dqkv, int n_head),
            (qkv, out, lse, dout, dqkv, n_head))
// Grouped-query attention (Llama, Mistral, Qwen2), causal, optionally with a sliding window: qkv
// [B, T, (H + 2 KV) hd] packs per row the H query heads, then KV key heads, then KV value heads
// (H = n_head, KV = n_kv_head dividing H); query head h reads k/v head h / (H / KV) in place (no
// repeated copies). window > 0 lets query i see keys i - window < j <= i (Mistral's sliding_window),
// 0 all keys j <= i. out [B, T, H hd], lse [B, H, T] as attention_forward. KV == H with window 0 is
// attention_forward exactly.
ARIA_KERNEL(attention_gqa_forward,
            (const TensorView& qkv, const TensorView& out, const TensorView& lse, int n_head, int n_kv_head,
             int window),
            (qkv, out, lse, n_head, n_kv_head, window))
// dqkv [B, T, (H + 2 KV) hd], written; a shared k/v head's gradient sums its query heads' in a fixed
// order (deterministic).
ARIA_KERNEL(attention_gqa_backward,
            (const TensorView& qkv, const TensorView& out, const TensorView& lse, const TensorView& dout,
             const TensorView& dqkv, int n_head, int n_kv_head, int window),
            (qkv, out, lse, dout, dqkv, n_head, n_kv_head, window))
// logits [N, V], targets int32 [N]; losses [N] = -log softmax(logits)[target] (0 where target ==
// ignore_index); lse [N] float32 (float64 for float64 logits) log-sum-exp per row. Never stores the
// softmax.
ARIA_KERNEL(cross_entropy_forward,
            (const TensorView& logits, const TensorView& targets, const TensorView& losses, const TensorView& lse,
             int ignore_index),
            (logits, targets, losses, lse, ignore_index))
// dlogits[n, :] = dlosses[n] * (softmax(logits[n]) - onehot(target[n])); zero rows for ignored targets.
ARIA_KERNEL(cross_entropy_backward,
            (const TensorView& logits, const TensorView& targets, const TensorView& lse, const TensorView& dlosses,
             const TensorView& dlogits, int ignore_index),
            (logits, targets, lse, dlosses, dlogits, ignore_index))

// Fused classifier (llm.c style): losses [N] (float32) as cross_entropy_forward, and in the same pass
// logits[n, :] is overwritten in place by softmax(logits[n]) - onehot(target[n]) (a zero row where
// target == ignore_index): the unscaled gradient; the caller scales it by dloss / count later.
ARIA_KERNEL(cross_entropy_fused,
            (const TensorView& logits, const TensorView& targets, const TensorView& losses, int ignore_index),
            (logits, targets, losses, ignore_index))
// out (float32 [1]) = sum(losses) / max(1, #(targets != ignore_index)); count (float32 [1]) = that
// count. Both stay on the device (no host sync in the loss).
ARIA_KERNEL(masked_mean,
            (const TensorView& losses, const TensorView& targets, const TensorView& out, const TensorView& count,
             int ignore_index),
            (losses, targets, out, count, ignore_index))
// Classification accuracy counted on the device (no host read of logits or labels). logits [N, C]
// (C >= 1), labels int32 [N], out float64 [1]; accumulate: out[0] += #{n : argmax(logits[n, :]) ==
// labels[n]}, argmax being std::max_element's with operator<: the FIRST index of the maximum, a NaN
// never compares greater (a row starting with NaN has argmax 0; later NaNs are skipped); -0 and +0
// tie; subnormals compare exactly (also under the GPU's flush-to-zero). N = 0 leaves out unchanged.
// Labels outside [0, C): an error naming the row and value on the CPU; on CUDA they are the caller's
// to validate (the trainer's batches come from validated task data) and count as wrong, never read
// out of bounds. CUDA: deterministic (integer partials added exactly while out[0] is an integer below
// 2^53), on the current stream, no host sync, no allocation.
ARIA_KERNEL(count_correct, (const TensorView& logits, const TensorView& labels, const TensorView& out),
            (logits, labels, out))

// ---- optimizer and statistics ----
// One AdamW step over every tensor in the list (one launch on the GPU). See AdamWItemView.
ARIA_KERNEL(adamw_update, (const std::vector<AdamWItemView>& items), (items))
// out (float32 or float64 scalar, [1]) += sum over tensors of sum(x^2)
ARIA_KERNEL(sum_squares, (const std::vector<TensorView>& xs, const TensorView& out), (xs, out))
// acc += alpha * g^2 (Fisher accumulation); g may be [S, ...acc.shape] to add S squared samples at once.
ARIA_KERNEL(square_accumulate, (const TensorView& acc, const TensorView& g, double alpha), (acc, g, alpha))

// ---- gated MLP and SPC (ARIA's continual-learning model) ----
// The gate's mix of the two pathways: out[n, c] = slow[n, c] + pi[n] * (fast[n, c] - slow[n, c]).
// slow, fast, out [N, C] (viewed as rows of C = slow.size(-1)); pi holds N values ([N] or [N, 1]).
// One dtype for every tensor.
ARIA_KERNEL(gate_mix_forward,
            (const TensorView& slow, const TensorView& fast, const TensorView& pi, const TensorView& out),
            (slow, fast, pi, out))
// Its gradients, written (not accumulated): dfast = dout * pi, dslow = dout * (1 - pi),
// dpi[n] = sum_c dout * (fast - slow) (accumulated in fp32, float64 for float64 data, in a fixed
// order: deterministic). Geometry as the forward (dpi like pi). Any of dslow, dfast, dpi may be
// undefined (not computed); slow and fast are read only for dpi. Outputs do not alias inputs.
ARIA_KERNEL(gate_mix_backward,
            (const TensorView& slow, const TensorView& fast, const TensorView& pi, const TensorView& dout,
             const TensorView& dslow, const TensorView& dfast, const TensorView& dpi),
            (slow, fast, pi, dout, dslow, dfast, dpi))
// The gate's head: z[n] = sum_c relu(h[n, c]) * w2[c] + b2[0], pi[n] = sigmoid(z[n]). h [N, C] (rows of
// C = h.size(-1)): the gate's hidden pre-activation x W1 + b1; relu is applied here, so the rectified
// hidden layer is never stored (an already rectified input gives the same result). w2 holds C values,
// b2 one, pi N; one dtype. logit (N values, float32; float64 for float64 data) receives z unrounded
// for the backward, or is undefined (not written). fp32 math for bfloat16.
ARIA_KERNEL(gate_head_forward,
            (const TensorView& h, const TensorView& w2, const TensorView& b2, const TensorView& pi,
             const TensorView& logit),
            (h, w2, b2, pi, logit))
// Its gradients from dpi (N values, h's dtype) and the forward's logit z, written: with dz[n] =
// dpi[n] * sigmoid(z[n]) * sigmoid(-z[n]) (= dpi pi (1 - pi), without pi's bfloat16 rounding, which
// would leave 1 - pi few bits once gates saturate), dh[n, c] = dz[n] * w2[c] * (h[n, c] > 0),
// dw2[c] = sum_n dz[n] * relu(h[n, c]), db2 = sum_n dz[n] (dw2 and db2 accumulated in fp32, float64
// for float64 data, in a fixed order: deterministic). dh like h, dw2 like w2, db2 one value; any of
// them may be undefined (not computed). Outputs do not alias inputs.
ARIA_KERNEL(gate_head_backward,
            (const TensorView& h, const TensorView& w2, const TensorView& logit, const TensorView& dpi,
             const TensorView& dh, const TensorView& dw2, const TensorView& db2),
            (h, w2, logit, dpi, dh, dw2, db2))
// The SPC penalty's gradient over a list of tensors in one pass (one launch on the GPU): for each k,
// grads[k] += lambda * (As[k] * ps[k] - Bs[k]), elementwise. Four lists of one length; As[k], ps[k],
// Bs[k] of grads[k]'s shape; every tensor of the call of one dtype and on one device, except that with
// bfloat16 grads and ps the As and Bs may (all) be float32 (the mixed-precision trainer keeps SPC's
// buffers in float32); the grads do not overlap each other or the inputs. fp32 math for float32 and
// bfloat16, stored once.
ARIA_KERNEL(spc_penalty_grad,
            (const std::vector<TensorView>& grads, const std::vector<TensorView>& As, const std::vector<TensorView>& ps,
             const std::vector<TensorView>& Bs, double lambda),
            (grads, As, ps, Bs, lambda))
