#!/usr/bin/env python3
"""Score one text with a model folder aria saved, in transformers and in `aria score`, and compare.

Used by tools/gpu_base124m.sh on the held-out paragraph: GPT2LMHeadModel(ids, labels=ids).loss in
float32 against `aria score --model DIR --text FILE` on each device given. Prints both losses and
their relative difference per device as JSON and exits 1 when one differs by more than --tol.
  python3 tools/hf_reference/score_saved_model.py --aria build-gpu/aria --model DIR --text FILE
"""
import argparse
import inspect
import json
import os
import subprocess
import sys

import torch
from transformers import GPT2LMHeadModel, GPT2TokenizerFast


def tokenizer(model_dir):
    vocab, merges = os.path.join(model_dir, "vocab.json"), os.path.join(model_dir, "merges.txt")
    # transformers 4 names the files vocab_file/merges_file, 5 vocab/merges (check_score_parity.py).
    if "vocab_file" in inspect.signature(GPT2TokenizerFast.__init__).parameters:
        return GPT2TokenizerFast(vocab_file=vocab, merges_file=merges)
    return GPT2TokenizerFast(vocab=vocab, merges=merges)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aria", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--tol", type=float, default=1e-5)
    args = ap.parse_args()
    text = open(args.text, encoding="utf-8").read()
    tok = tokenizer(args.model)
    assert len(tok) == 50257, f"tokenizer has {len(tok)} tokens"
    ids = torch.tensor([tok(text)["input_ids"]])
    m = GPT2LMHeadModel.from_pretrained(args.model, torch_dtype=torch.float32).eval()
    assert ids.shape[1] <= m.config.n_positions, f"{ids.shape[1]} tokens: longer than n_positions"
    with torch.no_grad():
        hf = m(input_ids=ids, labels=ids).loss.item()
    result = {"text_chars": len(text), "tokens": int(ids.shape[1]), "transformers_loss": hf, "aria": {}}
    ok = True
    for dev in args.devices.split(","):
        out = subprocess.run([args.aria, "score", "--model", args.model, "--text", args.text, "--device", dev],
                             capture_output=True, text=True)
        if out.returncode != 0:
            result["aria"][dev] = {"error": out.stderr.strip()}
            ok = False
            continue
        a = json.loads(out.stdout)["loss"]
        rel = abs(a - hf) / abs(hf)
        result["aria"][dev] = {"loss": a, "relative_difference": rel, "within_tol": rel <= args.tol}
        ok = ok and rel <= args.tol
    result["ok"] = ok
    print(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
