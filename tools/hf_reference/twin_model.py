"""The twin's model, written from ../shared/aria-spec.md: GPT-2 (HF names, Conv1D weights [in, out],
tanh GELU), PlasticityGatedMLP in every block for the aria method, one adapter and one head per task.

Parameters are a plain dict name -> tensor with aria's names (model/continual_model.h), and every
function takes that dict, so torch.func.grad / vmap can differentiate with respect to it.
"""
import math

import torch
import torch.nn.functional as F

# Fused attention where torch has it (>= 2.0); the speed mode turns it off under vmap.
SDPA = True


def linear(x, w, b=None):
    y = x @ w
    return y if b is None else y + b


def gelu_mlp(P, p, x):
    return linear(F.gelu(linear(x, P[p + "c_fc.weight"], P[p + "c_fc.bias"]), approximate="tanh"),
                  P[p + "c_proj.weight"], P[p + "c_proj.bias"])


def attention(P, p, x, n_head):
    B, T, C = x.shape
    q, k, v = linear(x, P[p + "c_attn.weight"], P[p + "c_attn.bias"]).split(C, dim=-1)
    hd = C // n_head
    q, k, v = (t.view(B, T, n_head, hd).transpose(1, 2) for t in (q, k, v))
    if SDPA and hasattr(F, "scaled_dot_product_attention"):
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:  # torch < 2.0
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        y = att.masked_fill(~causal, float("-inf")).softmax(-1) @ v
    return linear(y.transpose(1, 2).reshape(B, T, C), P[p + "c_proj.weight"], P[p + "c_proj.bias"])


def gated_mlp(P, p, x, capture=None):
    """y = pi fast(x) + (1 - pi) slow(x), pi = sigmoid(W2 relu(W1 x + b1) + b2) per token.
    capture (a list): the slow pathway's linear inputs and outputs, for per-sample gradients."""
    pi = torch.sigmoid(linear(F.relu(linear(x, P[p + "gate.fc1.weight"], P[p + "gate.fc1.bias"])),
                              P[p + "gate.fc2.weight"], P[p + "gate.fc2.bias"]))
    fast = gelu_mlp(P, p + "fast.", x)
    if capture is None:
        slow = gelu_mlp(P, p + "slow.", x)
    else:
        h = linear(x, P[p + "slow.c_fc.weight"], P[p + "slow.c_fc.bias"])
        g = F.gelu(h, approximate="tanh")
        slow = linear(g, P[p + "slow.c_proj.weight"], P[p + "slow.c_proj.bias"])
        h.retain_grad()
        slow.retain_grad()
        capture.append((p + "slow.c_fc.", x, h))
        capture.append((p + "slow.c_proj.", g, slow))
    return pi * fast + (1 - pi) * slow, pi


def hidden(P, cfg, ids, gated, capture=None):
    """ln_f hidden states [B, T, C] and the gate values of every layer ([B, T, 1] each)."""
    T = ids.shape[-1]
    eps = cfg["layer_norm_epsilon"]
    C = cfg["n_embd"]
    x = P["wte.weight"][ids] + P["wpe.weight"][:T]
    pis = []
    for l in range(cfg["n_layer"]):
        p = "h.%d." % l
        a = F.layer_norm(x, (C,), P[p + "ln_1.weight"], P[p + "ln_1.bias"], eps)
        x = x + attention(P, p + "attn.", a, cfg["n_head"])
        a = F.layer_norm(x, (C,), P[p + "ln_2.weight"], P[p + "ln_2.bias"], eps)
        if gated:
            y, pi = gated_mlp(P, p + "mlp.", a, capture)
            pis.append(pi)
        else:
            y = gelu_mlp(P, p + "mlp.", a)
        x = x + y
    return F.layer_norm(x, (C,), P["ln_f.weight"], P["ln_f.bias"], eps), pis


def pooled(h, lengths):
    """The hidden state of each sequence's last real token."""
    return h[torch.arange(h.shape[0], device=h.device), lengths - 1]


def task_logits(P, task, h, use_adapters):
    p = "task.%d." % task
    if use_adapters:
        h = h + linear(F.relu(linear(h, P[p + "adapter.down.weight"], P[p + "adapter.down.bias"])),
                       P[p + "adapter.up.weight"], P[p + "adapter.up.bias"])
    return h @ P[p + "head.weight"]


def inject_gates(P, cfg, rng, std):
    """Both pathways copies of the block's MLP; gate weights N(0, std) in aria's draw order, zero biases."""
    C = cfg["n_embd"]
    out = {}
    for name in trunk_order(P):
        t = P[name]
        if ".mlp.c_" not in name:
            out[name] = t
            continue
        for path in ("fast", "slow"):
            out[name.replace(".mlp.", ".mlp.%s." % path)] = t.clone()
        if name.endswith("mlp.c_proj.bias"):  # the block's last MLP tensor: its gate follows
            p = name[: -len("c_proj.bias")]
            out[p + "gate.fc1.weight"] = rng.normal_tensor((C, C), 0.0, std)  # hidden = d_ff / 4 = C
            out[p + "gate.fc1.bias"] = torch.zeros(C)
            out[p + "gate.fc2.weight"] = rng.normal_tensor((C, 1), 0.0, std)
            out[p + "gate.fc2.bias"] = torch.zeros(1)
    return out


def trunk_order(P):
    """aria's named_parameters order of the trunk (model/gpt2.cpp, model/gated_mlp.h)."""
    mlp_names = ["fast.c_fc.weight", "fast.c_fc.bias", "fast.c_proj.weight", "fast.c_proj.bias",
                 "slow.c_fc.weight", "slow.c_fc.bias", "slow.c_proj.weight", "slow.c_proj.bias",
                 "gate.fc1.weight", "gate.fc1.bias", "gate.fc2.weight", "gate.fc2.bias",
                 "c_fc.weight", "c_fc.bias", "c_proj.weight", "c_proj.bias"]
    names = ["wte.weight", "wpe.weight"]
    l = 0
    while "h.%d.ln_1.weight" % l in P:
        p = "h.%d." % l
        names += [p + s for s in ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                                  "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias")]
        names += [p + "mlp." + s for s in mlp_names if p + "mlp." + s in P]
        l += 1
    return names + ["ln_f.weight", "ln_f.bias"]
