#!/usr/bin/env python3
"""PyTorch reference timings of a GPT-2 training step on the GPU box, printed as JSON.

Same model and step as `aria-bench --model`: GPT-2 (d12: 12 layers, d=768, 12 heads), vocab padded
to 50304, B x T tokens, AdamW (fused), one optimizer step per forward/backward, optionally with
ARIA's PlasticityGatedMLP in every block. Modes: eager / compiled, fp32 / bf16 autocast.
  python3 tools/hf_reference/torch_gpt2_bench.py --batch 16 --seq 1024 --modes eager-fp32,eager-bf16,compile-bf16
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Mlp(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc, self.proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class GatedMlp(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fast, self.slow = Mlp(d), Mlp(d)
        self.g1, self.g2 = nn.Linear(d, d), nn.Linear(d, 1)

    def forward(self, x):
        pi = torch.sigmoid(self.g2(F.relu(self.g1(x))))
        f, s = self.fast(x), self.slow(x)
        self.last_pi = pi
        return s + pi * (f - s)


class Block(nn.Module):
    def __init__(self, d, h, gated):
        super().__init__()
        self.h = h
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn, self.attn_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = GatedMlp(d) if gated else Mlp(d)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.attn(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + self.attn_proj(y)
        return x + self.mlp(self.ln2(x))


class Gpt(nn.Module):
    def __init__(self, L=12, d=768, h=12, V=50304, P=1024, gated=False):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, d), nn.Embedding(P, d)
        self.blocks = nn.ModuleList(Block(d, h, gated) for _ in range(L))
        self.lnf = nn.LayerNorm(d)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for b in self.blocks:
            x = b(x)
        logits = F.linear(self.lnf(x), self.wte.weight)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.view(-1))
        if isinstance(self.blocks[0].mlp, GatedMlp):  # plasticity loss, as ARIA trains
            loss = loss + 0.01 * sum((b.mlp.last_pi * (1 - b.mlp.last_pi)).mean() for b in self.blocks)
        return loss


def profile_step(step, top):
    """One more step under torch.profiler: the GPU kernels by total time (to compare with aria's ncu summary)."""
    from torch.profiler import profile, ProfilerActivity
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
    events.sort(key=lambda e: -e.self_device_time_total)
    total = sum(e.self_device_time_total for e in events) / 1e3
    print(f"profiled step: {sum(e.count for e in events)} kernels, {total:.3f} ms of kernel time", flush=True)
    for e in events[:top]:
        print(f"{e.self_device_time_total / 1e3:9.3f} ms {e.count:5d}  {e.key[:110]}", flush=True)


def bench(mode, gated, B, T, steps, warmup, profile_top=0):
    torch.manual_seed(0)
    compiled, dtype = mode.split("-")  # dtype: fp32 (exact), tf32 (fp32 on TF32 tensor cores), bf16 (autocast)
    torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
    torch.backends.cudnn.allow_tf32 = dtype == "tf32"
    model = Gpt(gated=gated).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=True)
    step_model = torch.compile(model) if compiled == "compile" else model
    idx = torch.randint(0, 50257, (B, T), device="cuda")
    tgt = torch.randint(0, 50257, (B, T), device="cuda")
    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=(dtype == "bf16")):
            loss = step_model(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if profile_top:
        profile_step(step, profile_top)
    times.sort()
    med = times[len(times) // 2]
    n_params = sum(p.numel() for p in model.parameters())
    # 6 N per token for the matmuls + attention's 12 L T d per token (forward+backward)
    flops_per_token = 6 * n_params + 12 * 12 * T * 768
    return {"system": "pytorch " + torch.__version__, "mode": mode, "gated": gated, "batch": B, "seq": T,
            "step_ms": med * 1e3, "tokens_per_s": B * T / med, "tflops": flops_per_token * B * T / med / 1e12,
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30, "params": n_params}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--modes", default="eager-fp32,eager-bf16,compile-bf16")
    ap.add_argument("--gated", default="0,1")
    ap.add_argument("--json", default="")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="after timing, profile one step and print its N largest kernels")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    results = []
    for g in [bool(int(x)) for x in args.gated.split(",")]:
        for mode in args.modes.split(","):
            r = bench(mode, g, args.batch, args.seq, args.steps, args.warmup, args.profile)
            print(json.dumps(r), flush=True)
            results.append(r)
            torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
