"""Speed mode of the twin (continual_twin.py --bench): the aria method's continual step and an exact
per-sample Fisher pass, timed the way tools/aria-bench/bench_continual.cpp times aria's, so the two can
be put side by side (docs/perf.md).

Mirrors aria-bench --continual: a random GPT-2 of the preset's shape with the gated MLP in every
block, examples of exactly --seq random tokens with two labels, lr 1e-4, plasticity on from the first
step; 3 warm-up steps on task 0, its exact Fisher over --fisher-batches batches (timed), task 1 added
(adapter + head), 3 warm-up steps with the SPC penalty of task 0, then --steps timed steps. Peak
memory is counted from just before the timed steps, as aria-bench does. bf16 autocast over float32
weights (torch's mixed precision), fused AdamW where torch has it; --compile also times the step with
the forward and loss under torch.compile. The step reads nothing back from the GPU.
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

import twin_model
from twin_model import hidden, inject_gates, task_logits, trunk_order
from twin_rng import Rng

PRESETS = {"d12": (12, 768, 12), "d24": (24, 1024, 16), "d36": (36, 1280, 20), "d48": (48, 1600, 25),
           "tiny": (2, 64, 4)}


def random_gpt2(cfg, device):
    g = torch.Generator(device="cpu").manual_seed(1)
    L, C, V, Tp = cfg["n_layer"], cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"]
    shapes = {"wte.weight": (V, C), "wpe.weight": (Tp, C), "ln_f.weight": (C,), "ln_f.bias": (C,)}
    for l in range(L):
        p = "h.%d." % l
        shapes.update({p + "ln_1.weight": (C,), p + "ln_1.bias": (C,), p + "attn.c_attn.weight": (C, 3 * C),
                       p + "attn.c_attn.bias": (3 * C,), p + "attn.c_proj.weight": (C, C), p + "attn.c_proj.bias": (C,),
                       p + "ln_2.weight": (C,), p + "ln_2.bias": (C,), p + "mlp.c_fc.weight": (C, 4 * C),
                       p + "mlp.c_fc.bias": (4 * C,), p + "mlp.c_proj.weight": (4 * C, C), p + "mlp.c_proj.bias": (C,)})
    P = {}
    for n, s in shapes.items():
        if n.endswith(".bias"):
            P[n] = torch.zeros(s)
        elif "ln_" in n:
            P[n] = torch.ones(s)
        else:
            std = 0.02 / math.sqrt(2 * L) if "c_proj.weight" in n else 0.02
            P[n] = torch.randn(s, generator=g) * std
    return {n: t.to(device) for n, t in P.items()}


class Bench:
    def __init__(self, a):
        L, C, H = PRESETS[a.model]
        self.cfg = {"n_layer": L, "n_embd": C, "n_head": H, "vocab_size": 50257, "n_positions": 1024,
                    "layer_norm_epsilon": 1e-5}
        self.a, self.dev = a, torch.device(a.device)
        P = random_gpt2(self.cfg, "cpu")
        # Gate init on the CPU with aria's Rng is slow for big C; torch's generator draws the same law.
        gen = torch.Generator().manual_seed(2)
        P = inject_gates(P, self.cfg, _TorchNormal(gen), 0.02)
        self.P = {n: P[n].to(self.dev).requires_grad_(True) for n in trunk_order(P)}
        self.tasks = 0
        self.A, self.B = {}, {}
        self.lam_p, self.lam_spc, self.lr = 0.01, 100.0, 1e-4
        n = a.batch * max(a.steps + 3, a.fisher_batches)
        self.data = [torch.randint(0, 50257, (n, a.seq), device=self.dev) for _ in range(2)]
        self.labels = [torch.randint(0, 2, (n,), device=self.dev) for _ in range(2)]
        self.cursor = 0

    def add_task(self):
        C, A, t = self.cfg["n_embd"], 64, self.tasks
        p = "task.%d." % t
        prev = self.P.get("task.%d.head.weight" % (t - 1))
        for n, s in (("adapter.down.weight", (C, A)), ("adapter.down.bias", (A,)), ("adapter.up.weight", (A, C)),
                     ("adapter.up.bias", (C,)), ("head.weight", (C, 2))):
            v = torch.randn(s, device=self.dev) * 0.02 if n == "adapter.down.weight" else torch.zeros(s, device=self.dev)
            if n == "head.weight":
                v = prev.detach().clone() if prev is not None else torch.randn(s, device=self.dev) * 0.02
            self.P[p + n] = v.requires_grad_(True)
        for n in list(self.P):
            if n.startswith("task.") and not n.startswith(p):
                self.P[n].requires_grad_(False)
        self.tasks += 1
        groups = {}
        for n, q in self.P.items():
            if not q.requires_grad:
                continue
            role = "head" if n.startswith("task.") else ("slow" if ".mlp.slow." in n else "fast")
            groups.setdefault((role, q.dim() >= 2), []).append(q)
        lrs = {"fast": self.lr, "slow": self.lr * 0.5, "head": self.lr * 5}
        fused = self.dev.type == "cuda" and "fused" in torch.optim.AdamW.__init__.__code__.co_varnames
        kw = {"fused": True} if fused else {}
        self.opt = torch.optim.AdamW([{"params": ps, "lr": lrs[r], "weight_decay": 0.01 if d else 0.0}
                                      for (r, d), ps in groups.items()], betas=(0.9, 0.999), eps=1e-8, **kw)
        self.params = [q for ps in groups.values() for q in ps]
        self.slow = [[self.P["h.%d.mlp.slow.%s" % (l, s)] for s in ("c_fc.weight", "c_fc.bias", "c_proj.weight",
                                                                    "c_proj.bias")] for l in range(self.cfg["n_layer"])]

    def batch(self, task, k=None):
        B = self.a.batch
        i = self.cursor if k is None else k * B
        if k is None:
            self.cursor = (self.cursor + B) % (self.data[task].shape[0] - B + 1)
        return self.data[task][i:i + B], self.labels[task][i:i + B]

    def loss_fn(self, P, ids, labels, task):
        """cross-entropy + plasticity loss, and the per-layer gate sums (every token is real here)."""
        with torch.autocast(self.dev.type, dtype=torch.bfloat16):
            h, pis = hidden(P, self.cfg, ids, True)
            logits = task_logits(P, task, h[:, -1], True)
        ce = F.cross_entropy(logits.float(), labels)
        tokens = ids.numel()
        pl = sum((pi.float() * (1 - pi.float())).sum() for pi in pis) * (self.lam_p / tokens)
        gates = torch.stack([pi.float().sum() for pi in pis]) / tokens
        return ce + pl, gates

    def step(self, fn, task):
        ids, labels = self.batch(task)
        self.opt.zero_grad(set_to_none=True)
        loss, gates = fn(self.P, ids, labels, self.tasks - 1)
        loss.backward()
        with torch.no_grad():
            if self.A:  # SPC: grad += lambda (A theta - B)
                ps = [self.P[n] for n in self.A]
                penalty = torch._foreach_mul([self.A[n] for n in self.A], ps)
                torch._foreach_sub_(penalty, [self.B[n] for n in self.A])
                torch._foreach_add_([p.grad for p in ps], penalty, alpha=self.lam_spc)
            damp = 1 - gates
            for l, slow in enumerate(self.slow):
                torch._foreach_mul_([p.grad for p in slow], damp[l])
            # aria clips by max_norm / norm above max_norm (torch adds 1e-6 to the norm: no matter here)
            try:
                torch.nn.utils.clip_grad_norm_(self.params, 1.0, foreach=True)
            except TypeError:  # torch < 2.0
                torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()

    def fisher(self, mode):
        """Exact per-sample Fisher of the slow pathway over fisher_batches batches of task 0."""
        names = [n for n in self.P if ".mlp.slow." in n]
        acc = {n: torch.zeros_like(self.P[n]) for n in names}
        P = {n: p.detach().requires_grad_(mode == "einsum" and n in names) for n, p in self.P.items()}
        for k in range(self.a.fisher_batches):
            ids, _ = self.batch(0, k)
            with torch.no_grad(), torch.autocast(self.dev.type, dtype=torch.bfloat16):
                h, _ = hidden(P, self.cfg, ids, True)
                gen = torch.Generator(device=self.dev).manual_seed(1000 + k)  # the same labels for every form
                y = torch.multinomial(task_logits(P, 0, h[:, -1], True).float().softmax(-1), 1, generator=gen)[:, 0]
            if mode == "einsum":
                _fisher_einsum(self, P, ids, y, acc)
            else:
                _fisher_vmap(self, P, ids, y, acc, names)
        n = self.a.fisher_batches * self.a.batch
        return {k: v / n for k, v in acc.items()}


class _TorchNormal:
    def __init__(self, gen):
        self.gen = gen

    def normal_tensor(self, shape, mean, std):
        return torch.randn(shape, generator=self.gen) * std + mean


def _fisher_einsum(b, P, ids, y, acc):
    capture = []
    with torch.autocast(b.dev.type, dtype=torch.bfloat16):
        h, _ = hidden(P, b.cfg, ids, True, capture)
        logits = task_logits(P, 0, h[:, -1], True)
    F.cross_entropy(logits.float(), y, reduction="sum").backward()
    for prefix, x, out in capture:
        dy = out.grad
        x = x.detach()
        g = torch.bmm(x.transpose(1, 2), dy.to(x.dtype)).float()
        acc[prefix + "weight"].add_(g.pow(2).sum(0))
        acc[prefix + "bias"].add_(dy.float().sum(1).pow(2).sum(0))


def _fisher_vmap(b, P, ids, y, acc, names):
    try:
        from torch.func import grad, vmap
    except ImportError:  # torch < 2.0
        from functorch import grad, vmap
    rest = {n: p for n, p in P.items() if n not in names}
    scope = {n: P[n] for n in names}

    def loss_one(sp, x, label):
        Q = dict(rest)
        Q.update(sp)
        with torch.autocast(b.dev.type, dtype=torch.bfloat16):
            h, _ = hidden(Q, b.cfg, x.unsqueeze(0), True)
            logits = task_logits(Q, 0, h[:, -1], True)
        return F.cross_entropy(logits.float(), label.reshape(1), reduction="sum")

    per_param = sum(P[n].numel() for n in names) * 4
    chunk = max(1, min(ids.shape[0], int(8e9 // per_param)))
    twin_model.SDPA = False  # the explicit attention under vmap
    try:
        for s in range(0, ids.shape[0], chunk):
            g = vmap(grad(loss_one), in_dims=(None, 0, 0))(scope, ids[s:s + chunk], y[s:s + chunk])
            for n in names:
                acc[n].add_(g[n].float().pow(2).sum(0))
    finally:
        twin_model.SDPA = True


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, reps=1):
    sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - t0) * 1e3 / reps


def run(a, compiled):
    torch.manual_seed(0)
    b = Bench(a)
    fn = torch.compile(b.loss_fn) if compiled else b.loss_fn
    b.add_task()
    for _ in range(3):
        b.step(fn, 0)
    fisher, results = {}, {}
    for mode in a.fisher.split(","):
        try:
            fisher[mode] = timed(lambda: results.__setitem__(mode, b.fisher(mode)))
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            fisher[mode] = "error: %s" % str(e).splitlines()[0][:200]
    F_ = next(iter(results.values()), None)
    agree = None  # same sampled labels: the forms differ by rounding (bf16 activations) only
    if len(results) >= 2:
        x, y = list(results.values())[:2]
        agree = max(((x[n] - y[n]).norm() / y[n].norm()).item() for n in x)
    if F_ is not None:
        for n, f in F_.items():
            b.A[n] = f.clone()
            b.B[n] = f * b.P[n].detach()
    b.cursor = 0
    b.add_task()
    for _ in range(3):
        b.step(fn, 1)
    sync()
    cuda = b.dev.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    step_ms = timed(lambda: b.step(fn, 1), a.steps)
    out = {"step_ms": step_ms, "tokens_per_s": a.batch * a.seq / (step_ms * 1e-3),
           "peak_gib": torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else None,
           "fisher_ms": fisher, "fisher_examples": a.fisher_batches * a.batch, "fisher_forms_rel_l2": agree,
           "fisher_vs_training": {m: (v / (step_ms * a.fisher_batches) if isinstance(v, float) else None)
                                  for m, v in fisher.items()}}
    out["params"] = sum(p.numel() for p in b.P.values())
    return out


def main(argv):
    ap = argparse.ArgumentParser(prog="continual_twin.py --bench")
    ap.add_argument("--model", default="d12", choices=sorted(PRESETS))
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--fisher-batches", type=int, default=8)
    ap.add_argument("--fisher", default="einsum,vmap", help="per-sample Fisher forms to time (einsum, vmap)")
    ap.add_argument("--compile", action="store_true", help="also time the step under torch.compile")
    ap.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run of the code (tiny preset)")
    a = ap.parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        print("continual_twin: error: --bench needs a CUDA GPU (or --device cpu for a smoke run)", file=sys.stderr)
        return 1
    if a.compile and not hasattr(torch, "compile"):
        print("continual_twin: error: --compile needs torch >= 2.0 (this is %s)" % torch.__version__, file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = True
    res = {"twin": "pytorch", "torch": torch.__version__,
           "device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu",
           "model": a.model, "batch": a.batch, "seq": a.seq, "precision": "bf16-autocast", "steps": a.steps,
           "eager": run(a, False)}
    if a.compile:
        res["compile"] = run(a, True)
    print(json.dumps(res))
    return 0
