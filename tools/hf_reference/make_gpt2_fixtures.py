#!/usr/bin/env python3
"""Hugging Face parity fixtures for aria's GPT-2 (run on a machine with torch + transformers).

Writes tests/fixtures/hf_tiny/:
  config.json, model.safetensors        a tiny random GPT2LMHeadModel saved by transformers (float32)
  bf16/, f16/                           the same model saved in bfloat16 / float16
  reference.safetensors                 input_ids, labels, and, computed in float64 by transformers:
                                        logits, loss, logits_bf16/logits_f16 (the 16-bit weights
                                        upcast), and grad.<name> of several parameters
The model is small (vocab 512) so the fixture stays well under 1 MB. Usage:
  python3 tools/hf_reference/make_gpt2_fixtures.py [--out tests/fixtures/hf_tiny]
"""
import argparse
import json
import os

import torch
import transformers
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

GRAD_NAMES = [
    "wte.weight", "wpe.weight", "h.0.ln_1.weight", "h.0.ln_1.bias", "h.0.attn.c_attn.weight",
    "h.0.attn.c_attn.bias", "h.0.attn.c_proj.weight", "h.1.mlp.c_fc.weight", "h.1.mlp.c_proj.bias",
    "h.1.ln_2.weight", "ln_f.weight", "ln_f.bias",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/hf_tiny")
    args = ap.parse_args()
    torch.manual_seed(1234)
    cfg = GPT2Config(vocab_size=512, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                     activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg).eval()
    # Non-trivial layernorm parameters and biases, so that the fixture tests them.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out)
    for sub, dt in (("bf16", torch.bfloat16), ("f16", torch.float16)):
        m16 = GPT2LMHeadModel(cfg)
        m16.load_state_dict(model.state_dict())
        m16.to(dt).save_pretrained(os.path.join(args.out, sub))

    B, T = 2, 16
    ids = torch.randint(0, cfg.vocab_size, (B, T))
    labels = ids.clone()
    labels[1, 5] = -100  # an ignored target
    ref = {"input_ids": ids.to(torch.int64), "labels": labels.to(torch.int64)}

    m64 = GPT2LMHeadModel(cfg).eval()
    m64.load_state_dict(model.state_dict())
    m64 = m64.double()
    out = m64(input_ids=ids)
    # transformers' own loss upcasts logits to float32 (ForCausalLMLoss), which would put float32
    # rounding into a float64 reference: the same shifted, ignore-aware mean is computed here in float64.
    V = cfg.vocab_size
    loss = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1),
                                             ignore_index=-100)
    loss.backward()
    ref["logits"] = out.logits.detach().clone()
    ref["loss"] = loss.detach().reshape(1).clone()
    params = dict(m64.transformer.named_parameters())
    for n in GRAD_NAMES:
        ref["grad." + n] = params[n].grad.detach().clone()

    for tag, dt in (("bf16", torch.bfloat16), ("f16", torch.float16)):
        m = GPT2LMHeadModel(cfg).eval()
        m.load_state_dict(model.state_dict())
        m = m.to(dt).double()  # 16-bit rounded weights, float64 arithmetic
        with torch.no_grad():
            ref["logits_" + tag] = m(input_ids=ids).logits.clone()
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(args.out, "reference.safetensors"),
              metadata={"transformers": transformers.__version__, "torch": torch.__version__})
    with open(os.path.join(args.out, "SOURCE.json"), "w") as f:
        json.dump({"generator": "tools/hf_reference/make_gpt2_fixtures.py", "transformers": transformers.__version__,
                   "torch": torch.__version__, "seed": 1234, "loss": loss.item()}, f, indent=1)
    print("wrote", args.out, "loss", loss.item())


if __name__ == "__main__":
    main()
