"""GPT-2 from Python: load/save round trip, tokenizer, score and generate equal to the CLI's, pretrain."""
import json

import numpy as np
import pytest

import aria
from conftest import HF_TINY, run_cli

TEXT = ("The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst of times; "
        "numbers 12345 and symbols $%& too.\n") * 3


def test_load_and_named_parameters():
    model = aria.load_gpt2(str(HF_TINY))
    cfg = model.config
    assert (cfg["n_layer"], cfg["n_embd"], cfg["vocab_size"]) == (2, 32, 512)
    params = model.named_parameters()
    assert params["wte.weight"].shape == (512, 32)
    assert sum(p.numel for p in params.values()) == model.num_parameters
    assert model.source == str(HF_TINY)
    w = params["h.0.attn.c_attn.weight"].numpy()         # the live weight: a view, no copy
    w[0, 0] = 123.0
    assert model.named_parameters()["h.0.attn.c_attn.weight"].numpy()[0, 0] == 123.0


def test_save_load_round_trip_gives_the_same_logits(tiny_model, tmp_path, tokenizer):
    tiny_model.save(str(tmp_path / "m"))
    again = aria.load_gpt2(str(tmp_path / "m"))
    ids = tokenizer.encode("Hello world, hello aria")
    np.testing.assert_array_equal(again.logits(ids).numpy(), tiny_model.logits(ids).numpy())
    for name, p in again.named_parameters().items():
        np.testing.assert_array_equal(p.numpy(), tiny_model.named_parameters()[name].numpy())


def test_tokenizer_round_trip(tokenizer):
    s = "Hello world, hello aria! <|endoftext|> ünïcödé 😀"
    ids = tokenizer.encode(s)
    assert tokenizer.eot_id in ids and tokenizer.vocab_size == 50257
    assert tokenizer.decode(ids) == s
    assert tokenizer.decode_bytes(ids) == s.encode()
    assert tokenizer.encode("Hello world") == [15496, 995]   # GPT-2's ids


def test_tokenizer_json_special_tokens(tmp_path):
    # A Llama-3-style tokenizer.json: byte tokens, an added BOS and its TemplateProcessing.
    bos = "<|begin_of_text|>"
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    spell, n = {}, 0
    for b in range(256):
        spell[b] = chr(b) if b in printable else chr(256 + n)
        n += b not in printable
    tj = {"added_tokens": [{"id": 256, "content": bos, "special": True, "normalized": False}],
          "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
          "post_processor": {"type": "TemplateProcessing",
                             "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                             "special_tokens": {bos: {"id": bos, "ids": [256], "tokens": [bos]}}},
          "decoder": {"type": "ByteLevel"},
          "model": {"type": "BPE", "vocab": {spell[b]: b for b in range(256)}, "merges": []}}
    (tmp_path / "tokenizer.json").write_text(json.dumps(tj), encoding="utf-8")
    tok = aria.Tokenizer.from_tokenizer_json(str(tmp_path / "tokenizer.json"))
    assert tok.encode("hi") == [104, 105]
    assert tok.encode("hi", add_special_tokens=True) == [256, 104, 105]
    assert tok.token_to_id(bos) == 256 and tok.token_to_id("Ġ") == 32 and tok.token_to_id("nope") is None
    assert tok.decode(tok.encode("hi", add_special_tokens=True)) == bos + "hi"


@pytest.mark.parametrize("long_text", [False, True])
def test_score_equals_the_cli(tiny_model, tiny_dir, tmp_path, aria_cli, long_text):
    text = TEXT * 8 if long_text else TEXT      # the long one spans several windows of n_positions tokens
    f = tmp_path / "text.txt"
    f.write_text(text)
    cli = json.loads(run_cli(aria_cli, "score", "--model", tiny_dir, "--text", f, "--device", "cpu").stdout)
    py = aria.score(tiny_model, text)
    assert py["tokens"] == cli["tokens"]
    assert py["loss"] == pytest.approx(cli["loss"], rel=1e-8)   # the CLI prints 9 significant digits
    assert aria.score(tiny_model, ids=aria.Tokenizer.for_model(str(tiny_dir)).encode(text)) == py


def test_generate_equals_the_cli(tiny_model, tiny_dir, aria_cli):
    args = dict(max_new_tokens=12, temperature=0.9, top_k=20, seed=5)
    cli = run_cli(aria_cli, "generate", "--model", tiny_dir, "--prompt", "Once upon a time", "--device", "cpu",
                  "--max-new-tokens", 12, "--temperature", 0.9, "--top-k", 20, "--seed", 5, text=False).stdout
    py = aria.generate(tiny_model, "Once upon a time", **args)
    assert cli.decode("utf-8", "replace") == py + "\n"   # the CLI writes the raw bytes
    assert py != aria.generate(tiny_model, "Once upon a time", **{**args, "seed": 6})


def test_pretrain_lowers_the_loss():
    text = "the cat sat on the mat. the dog sat on the log. " * 40
    model, r = aria.pretrain(text=text, preset="tiny", steps=30, batch=4, seq=16, lr=3e-3, warmup=2, seed=3)
    assert len(r["losses"]) == 30 and r["final_val_loss"] is None
    assert np.mean(r["losses"][-5:]) < r["losses"][0] - 1.0
    assert aria.score(model, ids=aria.Tokenizer.for_model("").encode(text))["loss"] < r["losses"][0]


def test_import_sets_the_clis_openmp_wait_policy_unless_the_user_chose_one():
    # A fresh interpreter: libgomp reads its wait policy once, when aria._core loads it.
    import os
    import subprocess
    import sys
    probe = "import os, aria; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["10000", "None"]
    env["OMP_WAIT_POLICY"] = "passive"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "passive"]
