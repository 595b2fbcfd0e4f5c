#!/usr/bin/env python3
"""aria score / generate on hostile and long inputs (issue 19, items 2, 8, 9 and the --text directory),
and a model folder's tokenizer.json (issues 18, 20).

A copy of the tests/fixtures/hf_tiny checkpoint (vocabulary 512, 64 positions) with a byte-level
vocabulary written here (every token id < 512), then:
  - a long text: progress on stderr, one JSON line on stdout, the batched loss equal to --batch 1;
  - a short text: no progress lines;
  - a NaN in wte: score and generate refuse the checkpoint naming the tensor (exit 1, nothing on stdout);
    with --allow-nonfinite the load passes but the non-finite loss / logits are still errors;
  - --text that is a directory or a FIFO: refused at once, naming what it is;
  - a vocab.json with an id of 2^27, a config.json with a million layers: refused at once.
Usage: test_cli_model.py --aria build/aria
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "hf_tiny")
failures = []


def check(cond, what):
    print(("PASS " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def byte_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def write_vocab(d, extra_id=None):
    b2u = byte_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    ab = b2u[ord("a")] + b2u[ord("b")]
    vocab[ab] = 256 if extra_id is None else extra_id
    vocab["<|endoftext|>"] = 257
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n%s %s\n" % (b2u[ord("a")], b2u[ord("b")]))


def make_model(tmp, name):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    for f in ("config.json", "model.safetensors"):
        shutil.copy(os.path.join(FIXTURE, f), d)
    write_vocab(d)
    return d


def write_tokenizer_json(d, bos):
    """A byte-level tokenizer.json (the 256 byte tokens, "<|begin_of_text|>" 256, no merges), with
    Llama 3's BOS template when `bos`."""
    b2u = byte_to_unicode()
    tj = {"version": "1.0",
          "added_tokens": [{"id": 256, "content": "<|begin_of_text|>", "special": True, "normalized": False}],
          "normalizer": None,
          "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
          "post_processor": None,
          "decoder": {"type": "ByteLevel"},
          "model": {"type": "BPE", "vocab": {b2u[b]: b for b in range(256)}, "merges": []}}
    if bos:
        tj["post_processor"] = {"type": "TemplateProcessing",
                                "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                                           {"Sequence": {"id": "A", "type_id": 0}}],
                                "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [256],
                                                                         "tokens": ["<|begin_of_text|>"]}}}
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f)


def poke_f32(path, tensor, index, value):
    """Overwrites one float32 element of a tensor in a safetensors file."""
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        e = header[tensor]
        assert e["dtype"] == "F32"
        f.seek(8 + n + e["data_offsets"][0] + 4 * index)
        f.write(struct.pack("<f", value))


def run(aria, *argv, timeout=60):
    t0 = time.time()
    r = subprocess.run([aria, *argv], capture_output=True, text=True, timeout=timeout)
    return r, time.time() - t0


def check_llama_score(aria, tmp, short_text):
    """aria score on Llama-family folders (issue 18): an unsupported config is refused naming the field;
    on the transformers fixtures (tests/fixtures/llama/<family>, when made), the loss equals
    transformers' own float32 model(ids, labels=ids).loss within 1e-5, BOS included."""
    bad = os.path.join(tmp, "llama_gelu")
    os.makedirs(bad)
    with open(os.path.join(bad, "config.json"), "w", encoding="utf-8") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16,
                   "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 50,
                   "max_position_embeddings": 32, "hidden_act": "gelu"}, f)
    r, _ = run(aria, "score", "--model", bad, "--text", short_text, "--device", "cpu")
    check(r.returncode == 1 and "'hidden_act' = \"gelu\" is not supported" in r.stderr,
          f"a Llama config with hidden_act gelu is refused: {r.stderr.strip()[:300]}")
    for family in ("llama", "mistral", "qwen2"):
        d = os.path.join(ROOT, "tests", "fixtures", "llama", family)
        if not os.path.exists(os.path.join(d, "expected.json")):
            print(f"llama score: fixture {family} absent (tools/hf_reference/make_llama_fixtures.py), not checked")
            continue
        with open(os.path.join(d, "expected.json"), encoding="utf-8") as f:
            ex = json.load(f)
        text = os.path.join(tmp, f"llama_{family}.txt")
        with open(text, "w", encoding="utf-8") as f:
            f.write(ex["text"])
        r, _ = run(aria, "score", "--model", d, "--text", text, "--device", "cpu")
        got = json.loads(r.stdout) if r.returncode == 0 else {}
        want = ex["loss_transformers_f32"]
        check(got.get("tokens") == len(ex["ids"]), f"{family}: score counts {got.get('tokens')} tokens, "
              f"transformers' tokenizer {len(ex['ids'])} (stderr: {r.stderr.strip()[-200:]})")
        check(got and abs(got["loss"] - want) <= 1e-5 * abs(want),
              f"{family}: aria score {got.get('loss')} equals transformers' loss {want}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aria", required=True)
    aria = ap.parse_args().aria
    with tempfile.TemporaryDirectory(prefix="aria_cli_model_") as tmp:
        good = make_model(tmp, "good")
        long_text = os.path.join(tmp, "long.txt")
        # About 6,000 byte tokens: ~95 windows of 64, six forwards of up to 16 windows.
        words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "about", "cab"]
        with open(long_text, "w", encoding="utf-8") as f:
            f.write(" ".join(words[(i * 7) % len(words)] for i in range(1000)))
        short_text = os.path.join(tmp, "short.txt")
        with open(short_text, "w", encoding="utf-8") as f:
            f.write("a short text, one window")

        # ---- item 9: batched scoring with progress ----
        r, _ = run(aria, "score", "--model", good, "--text", long_text, "--device", "cpu")
        check(r.returncode == 0, f"score of a long text exits 0 (stderr: {r.stderr.strip()[-300:]})")
        lines = r.stdout.strip().splitlines()
        check(len(lines) == 1, "score prints exactly one line on stdout")
        batched = json.loads(lines[0]) if lines else {}
        check("score windows" in r.stderr and "loss so far" in r.stderr, "a long text shows progress on stderr")
        windows = (batched.get("tokens", 0) - 1 + 62) // 63
        check(f"score windows {windows}/{windows}" in r.stderr, f"progress reaches {windows}/{windows}")
        r1, _ = run(aria, "score", "--model", good, "--text", long_text, "--device", "cpu", "--batch", "1")
        check(r1.returncode == 0, "score --batch 1 exits 0")
        single = json.loads(r1.stdout) if r1.returncode == 0 else {}
        check(single.get("tokens") == batched.get("tokens"), "same token count batched and one window at a time")
        if single and batched:
            rel = abs(single["loss"] - batched["loss"]) / abs(single["loss"])
            check(rel <= 1e-6, f"batched loss {batched['loss']} equals one-at-a-time {single['loss']} (rel {rel:.1e})")
        r, _ = run(aria, "score", "--model", good, "--text", short_text, "--device", "cpu")
        check(r.returncode == 0 and r.stderr == "", f"a short text prints no progress (stderr: {r.stderr!r})")
        check(r.returncode == 0 and json.loads(r.stdout)["loss"] > 0, "a short text scores")

        # ---- tokenizer.json (issues 18, 20): it wins over vocab.json + merges.txt; aria score adds the
        # BOS of its template as transformers' tokenizer(text) does; an unreadable one is an error.
        tok_text = os.path.join(tmp, "ab.txt")  # "ab" is one token in the folder's vocab.json, two bytes here
        with open(tok_text, "w", encoding="utf-8") as f:
            f.write("a cab, abab and a bab")
        counts = {}
        for bos in (False, True):
            d = make_model(tmp, f"tokjson_{bos}")
            write_tokenizer_json(d, bos)
            r, _ = run(aria, "score", "--model", d, "--text", tok_text, "--device", "cpu")
            check(r.returncode == 0, f"score with a tokenizer.json (bos={bos}) exits 0 (stderr: {r.stderr.strip()[-300:]})")
            counts[bos] = json.loads(r.stdout)["tokens"] if r.returncode == 0 else -1
        n_bytes = len(open(tok_text, "rb").read())
        check(counts[False] == n_bytes, f"tokenizer.json, not the folder's vocab.json (one token per byte): {counts[False]}")
        check(counts[True] == n_bytes + 1, f"score counts the BOS of the template: {counts[True]} == {n_bytes} + 1")
        r, _ = run(aria, "tokenize", "--vocab", os.path.join(tmp, "tokjson_True"), "--text", tok_text)
        check(r.returncode == 0 and json.loads(r.stdout) == list(open(tok_text, "rb").read()),
              "aria tokenize --vocab DIR reads its tokenizer.json and adds no BOS")
        with open(os.path.join(tmp, "tokjson_True", "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump({"model": {"type": "Unigram", "vocab": []}}, f)
        r, _ = run(aria, "score", "--model", os.path.join(tmp, "tokjson_True"), "--text", short_text, "--device", "cpu")
        check(r.returncode == 1 and 'model.type is "Unigram"' in r.stderr and r.stdout == "",
              f"an unsupported tokenizer.json is an error naming it, exit 1 (got {r.returncode}: {r.stderr.strip()[:200]})")
        sp = make_model(tmp, "sentencepiece_only")
        for f in ("vocab.json", "merges.txt"):
            os.remove(os.path.join(sp, f))
        open(os.path.join(sp, "tokenizer.model"), "wb").close()
        r, _ = run(aria, "score", "--model", sp, "--text", short_text, "--device", "cpu")
        check(r.returncode == 1 and "tokenizer.model tokenizer but no tokenizer.json" in r.stderr,
              f"a folder with only tokenizer.model is an error naming it (got {r.returncode}: {r.stderr.strip()[:200]})")

        # ---- item 2: non-finite weights ----
        nan = make_model(tmp, "nan")
        poke_f32(os.path.join(nan, "model.safetensors"), "transformer.wte.weight", 32 * 5 + 3, float("nan"))
        for cmd in (["score", "--text", short_text], ["generate", "--prompt", "ab", "--max-new-tokens", "3"]):
            r, _ = run(aria, cmd[0], "--model", nan, *cmd[1:], "--device", "cpu")
            check(r.returncode == 1, f"{cmd[0]} refuses a NaN checkpoint with exit 1 (got {r.returncode})")
            check("tensor 'transformer.wte.weight' holds a non-finite value (nan) at index 163 ([5, 3] of [512, 32])"
                  in r.stderr, f"{cmd[0]} names the tensor and index: {r.stderr.strip()[:300]}")
            check(r.stdout == "", f"{cmd[0]} prints nothing on stdout for a NaN checkpoint")
        r, _ = run(aria, "score", "--model", nan, "--text", short_text, "--device", "cpu", "--allow-nonfinite")
        check(r.returncode == 1 and "the loss is not finite" in r.stderr,
              f"score --allow-nonfinite loads but refuses a NaN loss: {r.returncode} {r.stderr.strip()[:300]}")
        check("loss" not in r.stdout, "a non-finite loss is never printed as a result")
        r, _ = run(aria, "generate", "--model", nan, "--prompt", "ab", "--max-new-tokens", "3", "--device", "cpu",
                   "--allow-nonfinite")
        check(r.returncode == 1 and "is nan at step 1" in r.stderr,
              f"generate --allow-nonfinite refuses NaN logits: {r.returncode} {r.stderr.strip()[:300]}")

        # ---- --text that is not a regular file ----
        r, _ = run(aria, "score", "--model", good, "--text", tmp, "--device", "cpu")
        check(r.returncode == 1 and f"text file '{tmp}' is a directory" in r.stderr,
              f"a directory as --text is refused as one: {r.stderr.strip()[:200]}")
        fifo = os.path.join(tmp, "fifo.txt")
        os.mkfifo(fifo)
        try:
            r, _ = run(aria, "score", "--model", good, "--text", fifo, "--device", "cpu", timeout=30)
            check(r.returncode == 1 and "is a FIFO" in r.stderr, f"a FIFO as --text is refused: {r.stderr.strip()[:200]}")
        except subprocess.TimeoutExpired:
            check(False, "a FIFO as --text is refused (it blocked)")

        # ---- item 8: small files that would allocate gigabytes ----
        huge_vocab = make_model(tmp, "huge_vocab")
        write_vocab(huge_vocab, extra_id=1 << 27)
        r, secs = run(aria, "score", "--model", huge_vocab, "--text", short_text, "--device", "cpu")
        check(r.returncode == 1 and "is out of range: 134217728 (ids must be below the number of entries, 258)"
              in r.stderr, f"a vocab id of 2^27 is refused ({secs:.1f} s): {r.stderr.strip()[:300]}")
        deep = make_model(tmp, "deep")
        with open(os.path.join(deep, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        cfg["n_layer"] = 1000000
        with open(os.path.join(deep, "config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f)
        r, secs = run(aria, "score", "--model", deep, "--text", short_text, "--device", "cpu")
        check(r.returncode == 1 and "missing tensor 'h.2.ln_1.weight'" in r.stderr and "n_layer = 1000000" in r.stderr,
              f"a million-layer config is refuted by the header ({secs:.1f} s): {r.stderr.strip()[:300]}")
        check_llama_score(aria, tmp, short_text)
    print("cli model inputs:", "all passed" if not failures else f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
