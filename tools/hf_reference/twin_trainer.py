"""The twin's continual trainer, written from ../shared/aria-spec.md and docs/continual_trainer.md.

One optimizer step: grad_accum micro-batches (cross-entropy summed / the step's examples; plasticity
lambda * sum(pi (1 - pi) mask) / the step's real tokens per layer, after warmup_steps optimizer steps;
a plug-in's extra loss), each with its own backward; then the SPC/EWC penalty
lambda/2 sum_t sum_i F_t,i (theta_i - theta*_t,i)^2 (the definition, by autograd, not aria's A/B
buffers); then slow-pathway gradients of layer l times (1 - mean pi_l) over the step's real tokens;
then global-norm clipping and torch.optim.AdamW over the fast / slow / head groups (each split by
weight decay). lr: per phase, linear warmup over round(0.1 * steps) then cosine to 0.1 lr.
"""
import math

import torch
import torch.nn.functional as F

from twin_fisher import per_sample_fisher, sample_labels
from twin_model import hidden, inject_gates, pooled, task_logits, trunk_order
from twin_plugins import Lwf, Replay
from twin_rng import Rng

METHODS = {
    "aria": dict(gated=True, adapters=True, spc=True, plasticity=True, dampening=True, asym=True, scope=None),
    "finetune": dict(),
    "ewc": dict(spc=True, scope="all"),
    "adapters": dict(adapters=True, freeze=True),
    "multitask": dict(joint=True),
    "replay": dict(plugin=Replay),
    "lwf": dict(plugin=Lwf),
}


def in_scope(name, scope):
    if name.startswith("task."):
        return False
    if scope == "slow":
        return ".mlp.slow." in name
    if scope == "all_but_fast":
        return ".mlp.fast." not in name
    assert scope == "all", scope
    return True


def lr_multiplier(step, warmup, total, min_ratio):
    if step < warmup:
        return (step + 1) / warmup
    p = min(max((step - warmup) / max(1, total - warmup), 0.0), 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p))


class Batch:
    """Right-padded micro-batch on the twin's device."""

    def __init__(self, rows, labels, task, pad_id, device):
        self.task = task
        self.rows = rows
        T = max(len(r) for r in rows)
        self.ids = torch.tensor([r + [pad_id] * (T - len(r)) for r in rows], dtype=torch.long, device=device)
        self.lengths = torch.tensor([len(r) for r in rows], dtype=torch.long, device=device)
        self.mask = (torch.arange(T, device=device)[None, :] < self.lengths[:, None]).unsqueeze(-1)
        self.labels = torch.tensor(labels, dtype=torch.long, device=device)
        self.tokens = sum(len(r) for r in rows)


class Twin:
    def __init__(self, setup, method, initial, device="cpu", dtype=torch.float32, fisher_mode="loop"):
        self.cfg, self.a, self.t = setup["config"], setup["aria"], setup["train"]
        self.spec = METHODS[method]
        self.method = method
        self.device, self.dtype, self.fisher_mode = device, dtype, fisher_mode
        self.setup = setup
        seed = self.t["seed"]
        P = {k: v.to(torch.float32).clone() for k, v in initial.items()}  # never train the caller's tensors
        if self.spec.get("gated"):
            P = inject_gates(P, self.cfg, Rng(seed), self.a["gate_init_std"])
        self.P = {n: P[n].to(device, dtype) for n in trunk_order(P)}
        self.tasks = []  # (name, num_labels)
        self.rng = Rng(seed ^ 0xA5A5C0FFEE)
        self.fisher_rng = Rng(seed ^ 0xF15E4F15E4)
        self.opt_steps = 0
        self.consolidated = []  # per task: name -> (F, anchor)
        self.pad_id = 50256 if self.cfg["vocab_size"] > 50256 else 0
        plugin = self.spec.get("plugin")
        self.plugin = plugin(self) if plugin else None
        self.opt = None

    # ---- model state ----
    def gated(self):
        return bool(self.spec.get("gated"))

    def adapters(self):
        return bool(self.spec.get("adapters"))

    def named(self):
        return list(self.P.items())

    def add_task(self, name, num_labels, begin=True):
        tid = len(self.tasks)
        C, A = self.cfg["n_embd"], self.a["adapter_dim"]
        p = "task.%d." % tid
        if self.adapters():
            self.P[p + "adapter.down.weight"] = self.rng.normal_tensor((C, A), 0.0, 0.02).to(self.device, self.dtype)
            self.P[p + "adapter.down.bias"] = torch.zeros(A, device=self.device, dtype=self.dtype)
            self.P[p + "adapter.up.weight"] = torch.zeros(A, C, device=self.device, dtype=self.dtype)
            self.P[p + "adapter.up.bias"] = torch.zeros(C, device=self.device, dtype=self.dtype)
        if self.tasks and self.tasks[-1][1] == num_labels:
            head = self.P["task.%d.head.weight" % (tid - 1)].detach().clone()
        else:
            head = self.rng.normal_tensor((C, num_labels), 0.0, 0.02).to(self.device, self.dtype)
        self.P[p + "head.weight"] = head
        self.tasks.append((name, num_labels))
        if begin:
            self.begin_phase([tid])
            if self.plugin:
                self.plugin.on_task_start(self, tid)
        return tid

    def begin_phase(self, trained):
        """Fresh AdamW over the groups of the trained tasks; everything else frozen, no gradient kept."""
        lr, t = self.t["lr"], self.t
        lrs = {"fast": lr, "slow": lr * (self.a["slow_lr_ratio"] if self.spec.get("asym") else 1.0),
               "head": lr * self.a["head_lr_mult"]}
        groups = {}
        for name, p in self.P.items():
            if name.startswith("task."):
                if int(name.split(".")[1]) not in trained:
                    continue
                role = "head"
            elif self.spec.get("freeze"):
                continue
            else:
                role = "slow" if ".mlp.slow." in name else "fast"
            groups.setdefault((role, p.dim() >= 2), []).append(name)
        trainable = {n for names in groups.values() for n in names}
        for name in list(self.P):
            self.P[name] = self.P[name].detach().requires_grad_(name in trainable)
        self.group_names = groups
        self.opt = torch.optim.AdamW(
            [{"params": [self.P[n] for n in names], "lr": lrs[role], "base_lr": lrs[role],
              "weight_decay": t["weight_decay"] if decay else 0.0}
             for (role, decay), names in sorted(groups.items(), key=lambda kv: (kv[0][0], not kv[0][1]))],
            betas=(0.9, 0.999), eps=1e-8)
        self.trained = list(trained)
        self.phase_steps = 0

    def trained_params(self):
        return [p for g in self.opt.param_groups for p in g["params"]]

    # ---- forward ----
    def logits(self, P, batch, task):
        h, pis = hidden(P, self.cfg, batch.ids, self.gated())
        hp = pooled(h, batch.lengths)
        return task_logits(P, task, hp, self.adapters()), hp, pis

    def batch(self, rows, labels, task):
        return Batch(rows, labels, task, self.pad_id, self.device)

    # ---- one optimizer step ----
    def step(self, micro, lr_mult):
        examples = sum(len(mb.rows) for mb in micro)
        tokens = sum(mb.tokens for mb in micro)
        lam = self.a["plasticity_lambda"]
        assert not self.a["legacy_plasticity_loss"], "the twin implements the spec's plasticity loss only"
        plasticity_on = bool(self.spec.get("plasticity")) and lam > 0 and self.opt_steps >= self.a["warmup_steps"]
        self.opt.zero_grad(set_to_none=True)
        ce_sum = pl_sum = extra_sum = 0.0
        gate_sum = [0.0] * (self.cfg["n_layer"] if self.gated() else 0)
        for mb in micro:
            logits, hp, pis = self.logits(self.P, mb, mb.task)
            ce = F.cross_entropy(logits.float(), mb.labels, reduction="sum") / examples
            loss = ce
            if plasticity_on:
                pl = sum(lam * (pi.float() * (1 - pi.float()) * mb.mask).sum() / tokens for pi in pis)
                loss = loss + pl
                pl_sum += pl.item()
            if self.plugin:
                extra = self.plugin.extra_loss(self, mb, hp, examples)
                if extra is not None:
                    loss = loss + extra
                    extra_sum += extra.item()
            with torch.no_grad():
                for l, pi in enumerate(pis):
                    gate_sum[l] += (pi.double() * mb.mask).sum().item()
            ce_sum += ce.item()
            loss.backward()
        spc, spc_scale = 0.0, 0.0
        if self.spec.get("spc") and self.consolidated:
            spc, spc_scale = self.spc_penalty_backward()
        if self.spec.get("dampening") and self.a["gradient_dampening"] and self.gated():
            for l in range(self.cfg["n_layer"]):
                f = 1.0 - gate_sum[l] / tokens
                for s in ("c_fc.weight", "c_fc.bias", "c_proj.weight", "c_proj.bias"):
                    g = self.P["h.%d.mlp.slow.%s" % (l, s)].grad
                    if g is not None:
                        g.mul_(f)
        grads = [p.grad for p in self.trained_params() if p.grad is not None]
        norm = math.sqrt(sum(g.double().pow(2).sum().item() for g in grads))
        max_norm = self.t["max_grad_norm"]
        if max_norm > 0 and norm > max_norm:
            for g in grads:
                g.mul_(max_norm / norm)
        for g in self.opt.param_groups:
            g["lr"] = g["base_lr"] * lr_mult
        self.opt.step()
        self.opt_steps += 1
        self.phase_steps += 1
        if self.plugin:
            self.plugin.after_step(self)
        return {"step": self.opt_steps, "loss": ce_sum + pl_sum + spc + extra_sum, "ce": ce_sum,
                "plasticity": pl_sum, "spc": spc, "spc_scale": spc_scale, "method_loss": extra_sum,
                "grad_norm": norm, "lr": self.t["lr"] * lr_mult,
                "gate_means": [s / tokens for s in gate_sum]}

    def spc_penalty_backward(self):
        """lambda/2 sum_t sum_i F_t,i (theta_i - theta*_t,i)^2: its gradient by autograd (float32), its
        value in float64, and the scale of aria's expanded form lambda/2 sum (A theta^2 + F theta*^2)
        (whose float32 rounding bounds the error of aria's reported value)."""
        lam = self.a["spc_lambda"]
        loss, value, scale = 0.0, 0.0, 0.0
        for task in self.consolidated:
            for name, (Fi, anchor) in task.items():
                p = self.P[name]
                if p.requires_grad:
                    loss = loss + (Fi * (p - anchor).pow(2)).sum()
                with torch.no_grad():
                    d, Fd = p.double(), Fi.double()
                    value += (Fd * (d - anchor.double()).pow(2)).sum().item()
                    scale += (Fd * d.pow(2)).sum().item() + (Fd * anchor.double().pow(2)).sum().item()
        if torch.is_tensor(loss):
            (0.5 * lam * loss).backward()
        return 0.5 * lam * value, 0.5 * lam * scale

    # ---- phases ----
    def run_phase(self, stream, n_tasks):
        """steps_per_task * n_tasks steps; stream yields the micro-batches (aria's order)."""
        total = self.t["steps_per_task"] * n_tasks
        warmup = int(math.floor(0.1 * total + 0.5))
        ga = self.t["grad_accum"]
        out = []
        for s in range(total):
            micro = []
            for k in range(ga):
                mb = next(stream)
                want = self.trained[(s * ga + k) % len(self.trained)]
                assert mb["task"] == want, "micro-batch %d of step %d is task %d, expected %d" % (k, s, mb["task"], want)
                micro.append(self.batch(mb["ids"], mb["labels"], mb["task"]))
            out.append(self.step(micro, lr_multiplier(s, warmup, total, 0.1)))
        return out

    def consolidate(self, tid):
        """Exact per-sample Fisher on the task's first consolidation_steps_per_task training batches."""
        if not self.spec.get("spc"):
            return None
        assert self.a["fisher_estimator"] == "exact", "the twin implements the exact Fisher"
        scope = self.spec["scope"] or self.a["fisher_scope"]
        task = self.setup["tasks"][tid]
        bs, nb = self.t["batch_size"], self.a["consolidation_steps_per_task"]
        starts = list(range(0, len(task["train_ids"]), bs))
        if nb > 0:
            starts = starts[:nb]
        batches = [self.batch(task["train_ids"][i:i + bs], task["train_labels"][i:i + bs], tid) for i in starts]
        names = [n for n in self.P if in_scope(n, scope)]
        labels = []
        with torch.no_grad():
            for b in batches:
                labels.append(sample_labels(self.logits(self.P, b, tid)[0], self.fisher_rng))
        fisher = per_sample_fisher(self, tid, batches, labels, names, self.fisher_mode)
        gamma = self.a["spc_gamma"]  # online decay: every earlier task's F_t times gamma
        self.consolidated = [{n: (Fi * gamma, anchor) for n, (Fi, anchor) in t.items()} for t in self.consolidated]
        self.consolidated.append({n: (fisher[n].to(self.dtype), self.P[n].detach().clone()) for n in names})
        return fisher


def run_method(setup, method, initial, device="cpu", dtype=torch.float32, fisher_mode="loop"):
    """Every task in order (multitask: one joint phase); per-step numbers and every Fisher."""
    tw = Twin(setup, method, initial, device, dtype, fisher_mode)
    stream = iter(setup["methods"][method]["micro_batches"])
    steps, fishers = [], []
    if method == "multitask":
        for t in setup["tasks"]:
            tw.add_task(t["name"], t["num_labels"], begin=False)
        tw.begin_phase(list(range(len(setup["tasks"]))))
        steps += tw.run_phase(stream, len(setup["tasks"]))
    else:
        for t in setup["tasks"]:
            tid = tw.add_task(t["name"], t["num_labels"])
            steps += tw.run_phase(stream, 1)
            f = tw.consolidate(tid)
            if f is not None:
                fishers.append((tid, f))
    assert next(stream, None) is None, "aria's dump holds more micro-batches than the twin used"
    return steps, fishers
