#!/usr/bin/env python3
"""Hugging Face parity fixtures for aria's Llama-family decoders (model/llama.h), for
tests/test_llama_parity.cpp. Run from the repository root where torch + transformers are installed
(the GPU box; the CPU is enough, it takes seconds):

    python3 tools/hf_reference/make_llama_fixtures.py [--out tests/fixtures/llama]

Writes three tiny random models made by transformers, each with the tokenizer.json it is tested with
(copied from tests/fixtures/tokenizers/, vocab_size = the tokenizer's largest id + 1):

  llama/    LlamaForCausalLM, Llama 3 style: GQA (4 heads, 2 k/v heads), rope_theta 500000, rope_scaling
            llama3 (factor 8, original_max_position_embeddings 256: head_dim 8 puts one frequency in each
            of llama3's three regimes), untied lm_head; tokenizer llama3_bpe (byte-level, BOS template).
  mistral/  MistralForCausalLM with sliding_window 8, shorter than the test text; tied head; saved in
            shards (max_shard_size 100KB) with model.safetensors.index.json; tokenizer sp_bpe_legacy.
  qwen2/    Qwen2ForCausalLM (q/k/v biases), tied head; tokenizer sp_bpe_metaspace.

hidden_size is 32 (not 64) so that the three folders stay under 1 MB together; 2 layers each.
Weights are drawn with initializer_range 0.1 and the RMSNorm weights and biases are perturbed, so
every tensor matters. The models are saved in float32 with save_pretrained(safe_serialization=True)
and eager attention (the sliding window is applied by transformers' mask).

expected.json, computed in float64 by transformers (model.double(); its rotary tables stay float32 as
transformers makes them): the text, its ids as tokenizers encodes it with the special tokens (BOS),
logits (all positions x the first LOGIT_COLS columns, every column of the first and last positions,
the norm of all), the shifted causal-LM loss in float64 (transformers' own loss upcasts to float32, so
it is recomputed here), the float32 model's own model(ids, labels=ids).loss as `aria score` must
reproduce it, and for every parameter its gradient's L2 norm and the values at GRAD_SAMPLES evenly
spaced flat indices.
"""
import argparse
import json
import math
import os
import shutil
import sys
import traceback

import torch
import transformers
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKENIZERS = os.path.join(ROOT, "tests", "fixtures", "tokenizers")
TEXT = "Call me Ishmael. Some years ago, never mind how long precisely: 1851 whales, naïve café!"
LOGIT_COLS = 16
GRAD_SAMPLES = 12
SIZES = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, rms_norm_eps=1e-5, initializer_range=0.1, attention_dropout=0.0)


def vocab_size_of(tok):
    return max(tok.get_vocab(with_added_tokens=True).values()) + 1


def family_configs():
    """(family, config class, tokenizer folder, extra config keys, max_shard_size or None)."""
    return [
        ("llama", LlamaConfig, "llama3_bpe",
         dict(max_position_embeddings=1024, rope_theta=500000.0, tie_word_embeddings=False,
              rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                            "original_max_position_embeddings": 256},
              attention_bias=False, mlp_bias=False), None),
        ("mistral", MistralConfig, "sp_bpe_legacy",
         dict(max_position_embeddings=256, rope_theta=10000.0, sliding_window=8, tie_word_embeddings=True), "100KB"),
        ("qwen2", Qwen2Config, "sp_bpe_metaspace",
         dict(max_position_embeddings=256, rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False),
         None),
    ]


def expected_inv_freq(cfg_extra, head_dim):
    """The inverse frequencies the config must give (transformers' float32 computation, re-derived)."""
    theta = cfg_extra["rope_theta"]
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    rs = cfg_extra.get("rope_scaling")
    if not rs:
        return inv
    factor, lo, hi, orig = (rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"],
                            rs["original_max_position_embeddings"])
    wavelen = 2 * math.pi / inv
    out = torch.where(wavelen > orig / lo, inv / factor, inv)
    smooth = (orig / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = ~(wavelen < orig / hi) & ~(wavelen > orig / lo)
    return torch.where(medium, smoothed, out)


def check_rope(model, extra, head_dim):
    """True when the model's rotary embedding uses the rope_theta / rope_scaling asked for."""
    got = next(b for n, b in model.named_buffers() if n.endswith("inv_freq")).detach().float()
    want = expected_inv_freq(extra, head_dim)
    return got.shape == want.shape and torch.allclose(got, want, rtol=1e-6, atol=0)


def rope_parameters(extra):
    params = {"rope_type": "default", "rope_theta": extra["rope_theta"]}
    params.update(extra.get("rope_scaling") or {})
    return params


def config_keys(extra):
    """extra as the installed transformers takes it: 5.x has rope_parameters instead of rope_theta and
    rope_scaling."""
    if int(transformers.__version__.split(".")[0]) < 5:
        return extra
    keys = {k: v for k, v in extra.items() if k not in ("rope_theta", "rope_scaling")}
    keys["rope_parameters"] = rope_parameters(extra)
    return keys


def build_model(cfg):
    try:
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    except TypeError:
        cfg._attn_implementation = "eager"
        model = AutoModelForCausalLM.from_config(cfg)
    return model.eval()


def shifted_loss(logits, labels):
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1),
                                             ignore_index=-100)


def sample_indices(n):
    if n <= GRAD_SAMPLES:
        return list(range(n))
    return sorted({round(i * (n - 1) / (GRAD_SAMPLES - 1)) for i in range(GRAD_SAMPLES)})


def make_family(out_root, family, cfg_cls, tok_name, extra, shard):
    out = os.path.join(out_root, family)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    tok_path = os.path.join(TOKENIZERS, tok_name, "tokenizer.json")
    tok = Tokenizer.from_file(tok_path)
    V = vocab_size_of(tok)
    bos = tok.token_to_id("<|begin_of_text|>") if tok_name == "llama3_bpe" else tok.token_to_id("<s>")
    eos = tok.token_to_id("<|end_of_text|>") if tok_name == "llama3_bpe" else tok.token_to_id("</s>")
    cfg = cfg_cls(vocab_size=V, bos_token_id=bos, eos_token_id=eos, **SIZES, **config_keys(extra))
    head_dim = SIZES["hidden_size"] // SIZES["num_attention_heads"]
    torch.manual_seed({"llama": 1, "mistral": 2, "qwen2": 3}[family])
    model = build_model(cfg)
    if not check_rope(model, extra, head_dim) and hasattr(cfg, "rope_parameters"):
        # transformers 5 reads rotary settings from rope_parameters only.
        cfg.rope_parameters = rope_parameters(extra)
        torch.manual_seed({"llama": 1, "mistral": 2, "qwen2": 3}[family])
        model = build_model(cfg)
    assert check_rope(model, extra, head_dim), ("rotary frequencies differ from the config's", family,
                                                 expected_inv_freq(extra, head_dim))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.2 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn_like(p))
    names = [n for n, _ in model.named_parameters()]
    if family == "qwen2":
        assert "model.layers.0.self_attn.q_proj.bias" in names and "model.layers.0.self_attn.o_proj.bias" not in names
    else:
        assert not any(n.endswith(".bias") for n in names), names
    assert cfg.tie_word_embeddings == (family != "llama")
    assert (model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()) == cfg.tie_word_embeddings

    kwargs = {"safe_serialization": True}
    if shard:
        kwargs["max_shard_size"] = shard
    try:
        model.save_pretrained(out, **kwargs)
    except TypeError:  # a transformers without the safe_serialization switch writes safetensors anyway
        del kwargs["safe_serialization"]
        model.save_pretrained(out, **kwargs)
    shutil.copyfile(tok_path, os.path.join(out, "tokenizer.json"))

    ids_list = tok.encode(TEXT).ids  # with the post-processor's special tokens (BOS), as tokenizer(text)
    assert ids_list[0] == bos, (ids_list[:3], bos)
    try:  # transformers' fast tokenizer on the same file should give the same ids (informative only)
        from transformers import PreTrainedTokenizerFast
        hf_ids = PreTrainedTokenizerFast(tokenizer_file=tok_path)(TEXT)["input_ids"]
        if hf_ids != ids_list:
            print(f"warning: {family}: transformers' PreTrainedTokenizerFast gives {hf_ids[:8]}..., "
                  f"tokenizers {ids_list[:8]}...")
    except Exception as e:  # noqa: BLE001
        print(f"note: {family}: PreTrainedTokenizerFast not compared ({e})")
    T = len(ids_list)
    assert T <= cfg.max_position_embeddings
    ids = torch.tensor([ids_list], dtype=torch.long)

    # transformers' own float32 loss, as `aria score` reports it.
    with torch.no_grad():
        loss_f32 = model(input_ids=ids, labels=ids).loss.item()

    m64 = build_model(cfg)
    m64.load_state_dict(model.state_dict())
    m64 = m64.double()
    logits = m64(input_ids=ids).logits
    assert logits.shape == (1, T, V) and logits.dtype == torch.float64, logits.shape
    loss = shifted_loss(logits, ids)
    loss.backward()
    assert abs(loss.item() - loss_f32) < 1e-4 * abs(loss.item()), (loss.item(), loss_f32)

    if family == "mistral":  # the window must matter: without it the later positions change
        assert cfg.sliding_window < T
        cfg_full = cfg_cls.from_dict(cfg.to_dict())
        cfg_full.sliding_window = None
        mf = build_model(cfg_full)
        mf.load_state_dict(model.state_dict())
        with torch.no_grad():
            lf = mf.double()(input_ids=ids).logits
        assert torch.allclose(lf[:, :cfg.sliding_window], logits[:, :cfg.sliding_window].detach(), rtol=0, atol=1e-9)
        assert (lf[:, cfg.sliding_window:] - logits[:, cfg.sliding_window:].detach()).abs().max() > 1e-4

    lg = logits.detach()[0]
    grads = {}
    for name, p in m64.named_parameters():
        assert p.grad is not None, name
        g = p.grad.detach().reshape(-1)
        idx = sample_indices(g.numel())
        grads[name] = {"norm": g.norm().item(), "indices": idx, "values": [g[i].item() for i in idx]}
    expected = {
        "generator": "tools/hf_reference/make_llama_fixtures.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "family": family,
        "architecture": type(model).__name__,
        "tokenizer": tok_name,
        "text": TEXT,
        "ids": ids_list,
        "logits_shape": [T, V],
        "logit_cols": LOGIT_COLS,
        "logits_head": lg[:, :LOGIT_COLS].tolist(),
        "logits_rows": {"positions": [0, T - 1], "values": [lg[0].tolist(), lg[T - 1].tolist()]},
        "logits_norm": lg.norm().item(),
        "loss": loss.item(),
        "loss_transformers_f32": loss_f32,
        "grads": grads,
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"))
    files = sorted(os.listdir(out))
    size = sum(os.path.getsize(os.path.join(out, n)) for n in files)
    if shard:
        assert "model.safetensors.index.json" in files and sum(n.endswith(".safetensors") for n in files) >= 2, files
    else:
        assert "model.safetensors" in files, files
    print(f"wrote {out}: {', '.join(files)} ({size / 1024:.0f} KiB); {type(model).__name__}, vocab {V}, "
          f"{T} tokens, loss {loss.item():.6f} (transformers float32: {loss_f32:.6f}), {len(grads)} gradients")
    return size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "llama"))
    args = ap.parse_args()
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    total, failed = 0, []
    for family, cfg_cls, tok_name, extra, shard in family_configs():
        try:
            total += make_family(args.out, family, cfg_cls, tok_name, extra, shard)
        except Exception:  # noqa: BLE001 -- the other families still get their fixtures
            traceback.print_exc()
            failed.append(family)
            shutil.rmtree(os.path.join(args.out, family), ignore_errors=True)  # never a half-checked fixture
    print(f"total {total / 1024:.0f} KiB in {args.out}")
    if failed:
        print(f"error: no fixture for {', '.join(failed)} (self-check failed, see above)", file=sys.stderr)
        return 1
    if total > 1024 * 1024:
        print("error: the fixtures exceed 1 MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
