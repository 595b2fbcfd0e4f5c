"""The exact diagonal Fisher: F = mean over samples of (d log p(y_n|x_n) / d theta)^2, y_n sampled from
the model's own predictive distribution (one uniform of aria's Fisher Rng per sample, inverse CDF of
the softmax computed in float64 from the float32 logits, as train/continual/fisher.cpp draws them).

Three ways to get the per-sample gradients, all exact:
  loop:   one backward per sample, the sample alone (no padding): the definition, the fixture's
  vmap:   torch.func.vmap over torch.func.grad (functorch on torch 1.13), padded batch
  einsum: slow scope only: one forward + backward of sum_n loss_n per batch, with each slow-pathway
          linear's input x and output gradient dy kept; G_n = x_n^T dy_n, g_n(b) = sum_t dy_n,t
          (samples never interact in GPT-2, and padding sits after the last real token, so its dy is 0)
"""
import math

import torch
import torch.nn.functional as F

import twin_model
from twin_model import hidden, pooled, task_logits

try:
    from torch.func import grad as func_grad, vmap
except ImportError:  # torch < 2.0
    try:
        from functorch import grad as func_grad, vmap
    except ImportError:
        func_grad = vmap = None


def sample_labels(logits, rng):
    out = []
    for row in logits.detach().to("cpu", torch.float32).double().tolist():
        mx = max(row)
        p = [math.exp(v - mx) for v in row]
        u = rng.uniform() * sum(p)
        pick, c = len(p) - 1, 0.0
        for k, pk in enumerate(p):
            c += pk
            if u < c:
                pick = k
                break
        out.append(pick)
    return out


def _loop(tw, tid, batches, labels, names):
    acc = {n: torch.zeros_like(tw.P[n], dtype=torch.float64) for n in names}
    params = [tw.P[n].detach().requires_grad_(True) for n in names]
    P = dict(tw.P)
    P.update(zip(names, params))
    for b, y in zip(batches, labels):
        for row, label in zip(b.rows, y):
            one = tw.batch([row], [label], tid)
            logits = tw.logits(P, one, tid)[0]
            loss = F.cross_entropy(logits.float(), one.labels, reduction="sum")
            for n, g in zip(names, torch.autograd.grad(loss, params)):
                acc[n] += g.double().pow(2)
    return acc


def _vmap(tw, tid, batches, labels, names):
    assert vmap is not None, "--fisher vmap needs torch.func (torch >= 2.0) or functorch"
    acc = {n: torch.zeros_like(tw.P[n], dtype=torch.float64) for n in names}
    rest = {n: p.detach() for n, p in tw.P.items() if n not in names}
    scope = {n: tw.P[n].detach() for n in names}

    def loss_one(scope_p, ids, length, label):
        P = dict(rest)
        P.update(scope_p)
        h, _ = hidden(P, tw.cfg, ids.unsqueeze(0), tw.gated())
        hp = h[0].index_select(0, (length - 1).reshape(1))
        logits = task_logits(P, tid, hp, tw.adapters())
        return F.cross_entropy(logits.float(), label.reshape(1), reduction="sum")

    per_sample = vmap(func_grad(loss_one), in_dims=(None, 0, 0, 0))
    twin_model.SDPA = False  # the explicit attention under vmap (fused attention may lack a batching rule)
    try:
        for b, y in zip(batches, labels):
            g = per_sample(scope, b.ids, b.lengths, torch.tensor(y, device=b.ids.device))
            for n in names:
                acc[n] += g[n].double().pow(2).sum(0)
    finally:
        twin_model.SDPA = True
    return acc


def _einsum(tw, tid, batches, labels, names):
    assert all(".mlp.slow." in n for n in names), "--fisher einsum covers the slow pathway only"
    acc = {n: torch.zeros_like(tw.P[n], dtype=torch.float32) for n in names}
    P = {n: p.detach().requires_grad_(n in names) for n, p in tw.P.items()}
    for b, y in zip(batches, labels):
        capture = []
        with torch.enable_grad():
            h, _ = hidden(P, tw.cfg, b.ids, tw.gated(), capture)
            logits = task_logits(P, tid, pooled(h, b.lengths), tw.adapters())
            F.cross_entropy(logits.float(), torch.tensor(y, device=b.ids.device), reduction="sum").backward()
        for prefix, x, out in capture:
            dy = out.grad.float()
            g_w = torch.einsum("btc,btd->bcd", x.detach().float(), dy)
            acc[prefix + "weight"] += g_w.pow(2).sum(0)
            acc[prefix + "bias"] += dy.sum(1).pow(2).sum(0)
    return acc


def per_sample_fisher(tw, tid, batches, labels, names, mode="loop"):
    """name -> float32 Fisher (mean over the samples of the squared per-sample gradients)."""
    n = sum(len(b.rows) for b in batches)
    if mode == "einsum" and not all(".mlp.slow." in x for x in names):
        mode = "loop"  # einsum covers the slow scope; EWC's whole trunk takes the exact loop
    acc = {"loop": _loop, "vmap": _vmap, "einsum": _einsum}[mode](tw, tid, batches, labels, names)
    return {k: (v / n).to(torch.float32) for k, v in acc.items()}
