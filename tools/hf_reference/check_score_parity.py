#!/usr/bin/env python3
"""`aria score` against transformers on GPT-2 checkpoints aria has never seen (run on the GPU box).

For several random GPT-2 shapes (and bf16/f16 files), saves a checkpoint with transformers, scores a
text with GPT2LMHeadModel(ids, labels=ids).loss in float32, runs `aria score` on every device given,
and requires |aria - hf| / hf <= 1e-5. Then checks that a model written by `aria pretrain` loads in
transformers and scores the same there as in aria. Prints one line per check and exits 1 on any failure.
  python3 tools/hf_reference/check_score_parity.py --aria build-gpu/aria --vocab third_party/gpt2-vocab
"""
import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile

import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

TEXT = ("The quick brown fox jumps over the lazy dog.  Ünïcödé, naïve café — 東京 and emoji 🤖!\n"
        "Numbers 1234567 and contractions: it's, they'RE, we'll.\t Tabs\n\n  and   runs of spaces.   ")
SHAPES = [  # name, n_layer, n_embd, n_head, n_positions, dtype
    ("l2-e64", 2, 64, 4, 128, torch.float32),
    ("l3-e96-bf16", 3, 96, 6, 96, torch.bfloat16),
    ("l1-e48-f16", 1, 48, 3, 80, torch.float16),
]


def aria_score(aria, model_dir, text_file, device):
    out = subprocess.run([aria, "score", "--model", model_dir, "--text", text_file, "--device", device],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"aria score failed ({out.returncode}): {out.stderr.strip()}")
    return json.loads(out.stdout)


def hf_loss(model_dir, ids):
    m = GPT2LMHeadModel.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    with torch.no_grad():
        return m(input_ids=ids, labels=ids).loss.item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aria", required=True)
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--devices", default="cpu,cuda")
    args = ap.parse_args()
    vocab, merges = os.path.join(args.vocab, "vocab.json"), os.path.join(args.vocab, "merges.txt")
    # transformers 4 names the files vocab_file/merges_file; 5 names them vocab/merges and silently
    # ignores the old names (an empty tokenizer), so pick by signature and check the size.
    if "vocab_file" in inspect.signature(GPT2TokenizerFast.__init__).parameters:
        tok = GPT2TokenizerFast(vocab_file=vocab, merges_file=merges)
    else:
        tok = GPT2TokenizerFast(vocab=vocab, merges=merges)
    assert len(tok) == 50257, f"tokenizer has {len(tok)} tokens"
    ids = torch.tensor([tok(TEXT)["input_ids"]])
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        text_file = os.path.join(tmp, "text.txt")
        with open(text_file, "w", encoding="utf-8") as f:
            f.write(TEXT)
        dirs = []
        for i, (name, L, C, H, P, dt) in enumerate(SHAPES):
            torch.manual_seed(100 + i)
            cfg = GPT2Config(vocab_size=50257, n_layer=L, n_embd=C, n_head=H, n_positions=P)
            d = os.path.join(tmp, name)
            GPT2LMHeadModel(cfg).to(dt).save_pretrained(d)
            dirs.append((name, d))
        for name, d in dirs:
            ref = hf_loss(d, ids)
            for dev in args.devices.split(","):
                got = aria_score(args.aria, d, text_file, dev)
                rel = abs(got["loss"] - ref) / abs(ref)
                ok = rel <= 1e-5 and got["tokens"] == ids.shape[1]
                failures += not ok
                print(f"{'PASS' if ok else 'FAIL'} score {name:12s} {dev:5s} aria {got['loss']:.8f} hf {ref:.8f} "
                      f"rel {rel:.2e} tokens {got['tokens']}/{ids.shape[1]}")
        # A checkpoint written by aria must load in transformers and score the same there.
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write(TEXT * 40)
        out_dir = os.path.join(tmp, "aria-saved")
        r = subprocess.run([args.aria, "pretrain", "--model", dirs[0][1], "--corpus", corpus, "--out", out_dir,
                            "--steps", "3", "--batch", "2", "--seq", "32", "--device", args.devices.split(",")[-1]],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print("FAIL pretrain:", r.stderr.strip()[-2000:])
            failures += 1
        else:
            ref = hf_loss(out_dir, ids)
            got = aria_score(args.aria, out_dir, text_file, "cpu")
            rel = abs(got["loss"] - ref) / abs(ref)
            ok = rel <= 1e-5
            failures += not ok
            print(f"{'PASS' if ok else 'FAIL'} aria-saved checkpoint loads in transformers: aria {got['loss']:.8f} "
                  f"hf {ref:.8f} rel {rel:.2e}")
    print("score parity:", "all passed" if failures == 0 else f"{failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
