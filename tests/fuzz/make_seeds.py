#!/usr/bin/env python3
"""Writes the seed corpora of the fuzzers (tests/fuzz/corpus/<target>/): small valid inputs and a few
near misses for each reader, so that fuzzing starts from the formats' real shapes. Run it again after
changing it; the files are committed. Standard library only."""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None, pad=True):
    header, blob = {}, b""
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def seeds_safetensors():
    f32 = struct.pack("<4f", 1.0, -2.0, 0.5, 3.25)
    put("safetensors", "f32", safetensors({"w": ("F32", [2, 2], f32)}, {"format": "pt"}))
    put("safetensors", "mixed", safetensors({
        "a": ("F16", [3], struct.pack("<3e", 1.0, -0.5, 65504.0)),
        "b": ("BF16", [2], b"\x80\x3f\x00\xc0"),
        "c": ("I64", [2], struct.pack("<2q", 7, -1)),
        "d": ("I32", [1, 1], struct.pack("<i", 42)),
        "e": ("F64", [], struct.pack("<d", 2.5)),
        "f": ("F32", [0, 4], b""),
    }))
    put("safetensors", "unpadded", safetensors({"x": ("F32", [1], struct.pack("<f", 9.0))}, pad=False))
    put("safetensors", "nan", safetensors({"x": ("F32", [2], struct.pack("<2f", float("nan"), float("inf")))}))
    put("safetensors", "short_data", safetensors({"x": ("F32", [4], f32)})[:-4])
    put("safetensors", "empty_header", struct.pack("<Q", 2) + b"{}")
    # The header of a real GPT-2 checkpoint (tests/fixtures/hf_tiny), its data cut to the first bytes of
    # each tensor: real names and shapes at a size that keeps executions fast.
    real = open(os.path.join(ROOT, "tests", "fixtures", "hf_tiny", "f16", "model.safetensors"), "rb").read()
    n = struct.unpack("<Q", real[:8])[0]
    head = json.loads(real[8:8 + n])
    small = {}
    for name, e in sorted(head.items()):
        if name != "__metadata__":
            small[name] = (e["dtype"], [2], real[8 + n + e["data_offsets"][0]:][:4])
    put("safetensors", "hf_tiny_names", safetensors(small, head.get("__metadata__")))


def seeds_gpt2_config():
    base = json.load(open(os.path.join(ROOT, "tests", "fixtures", "hf_tiny", "config.json")))
    put("gpt2_config", "hf_tiny", json.dumps(base, indent=2))
    small = {"vocab_size": 300, "n_positions": 64, "n_embd": 32, "n_layer": 2, "n_head": 4,
             "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new", "tie_word_embeddings": True}
    put("gpt2_config", "small", json.dumps(small))
    put("gpt2_config", "n_ctx", json.dumps({k: v for k, v in small.items() if k != "n_positions"} | {"n_ctx": 64}))
    put("gpt2_config", "bad_heads", json.dumps(small | {"n_head": 5}))
    put("gpt2_config", "huge", json.dumps(small | {"n_layer": 1000000, "n_embd": 65536}))
    put("gpt2_config", "n_inner", json.dumps(small | {"n_inner": None, "scale_attn_weights": True,
                                                      "architectures": ["GPT2LMHeadModel"]}))


def byte_spelling():
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, n = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + n)
            n += 1
    return table


def tiny_vocab():
    sp = byte_spelling()
    vocab = {sp[b]: b for b in range(256)}
    merges = [("\u0120", "t"), ("h", "e"), ("\u0120t", "he"), ("i", "n"), ("\u0120", "a")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab, merges


def seeds_vocab_merges():
    vocab, merges = tiny_vocab()
    m = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    put("vocab_merges", "tiny", json.dumps(vocab) + "\0" + m + "\0" + "in the theatre<|endoftext|> a tin")
    put("vocab_merges", "crlf", json.dumps(vocab) + "\0" + m.replace("\n", "\r\n") + "\0" + "\xff\xfe bytes")
    put("vocab_merges", "missing_byte", json.dumps({k: v for k, v in vocab.items() if k != "a"}) + "\0" + m)
    put("vocab_merges", "unicode", json.dumps(vocab, ensure_ascii=False) + "\0" + m + "\0" + "héllo 😀 12 'll")


def seeds_tokenizer_json():
    vocab, merges = tiny_vocab()
    tj = {"version": "1.0", "added_tokens": [{"id": vocab["<|endoftext|>"], "content": "<|endoftext|>",
                                              "special": True}],
          "normalizer": None,
          "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
          "post_processor": {"type": "ByteLevel", "trim_offsets": False},
          "decoder": {"type": "ByteLevel"},
          "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                    "end_of_word_suffix": "", "fuse_unk": False, "vocab": vocab,
                    "merges": [f"{a} {b}" for a, b in merges]}}
    put("tokenizer_json", "strings", json.dumps(tj) + "\0" + "the thin theatre<|endoftext|>")
    tj2 = json.loads(json.dumps(tj))
    tj2["model"]["merges"] = [[a, b] for a, b in merges]
    tj2["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [tj["pre_tokenizer"]]}
    put("tokenizer_json", "pairs_sequence", json.dumps(tj2) + "\0" + "  spaces\n\nand 123 numbers")
    tj3 = json.loads(json.dumps(tj))
    tj3["normalizer"] = {"type": "NFC"}
    put("tokenizer_json", "normalizer", json.dumps(tj3))
    # Llama 3 style: a Split regex before ByteLevel, ignore_merges, a BOS template.
    bos = len(vocab)
    tj4 = json.loads(json.dumps(tj))
    tj4["added_tokens"].append({"id": bos, "content": "<|begin_of_text|>", "special": True})
    tj4["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "behavior": "Isolated", "invert": False, "pattern": {"Regex":
         r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"}},
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]}
    tj4["post_processor"] = {"type": "TemplateProcessing", "single": [
        {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [bos], "tokens": ["<|begin_of_text|>"]}}}
    tj4["model"]["ignore_merges"] = True
    put("tokenizer_json", "llama3_split", json.dumps(tj4) + "\0" + "I'M 12345 the  thin\r\n\n<|begin_of_text|>x")
    # SentencePiece style: <unk> <s> </s>, <0xNN>, the ▁ marker, byte fallback, decoder chain.
    sp = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        sp["<0x%02X>" % b] = 3 + b
    for piece in ["\u2581", "t", "h", "e", "\u2581t", "he", "\u2581the"]:
        sp[piece] = len(sp)
    tj5 = {"version": "1.0", "added_tokens": [{"id": i, "content": c, "special": True, "normalized": False}
                                              for c, i in [("<unk>", 0), ("<s>", 1), ("</s>", 2)]],
           "normalizer": {"type": "Sequence", "normalizers": [
               {"type": "Prepend", "prepend": "\u2581"},
               {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
           "pre_tokenizer": None,
           "post_processor": {"type": "TemplateProcessing", "single": [
               {"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
               "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
           "decoder": {"type": "Sequence", "decoders": [
               {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
               {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
           "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True,
                     "vocab": sp, "merges": ["\u2581 t", "h e", "\u2581t he"]}}
    put("tokenizer_json", "sp_legacy", json.dumps(tj5) + "\0" + "the héllo</s> the 😀")
    tj6 = json.loads(json.dumps(tj5))
    tj6["normalizer"] = None
    tj6["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}
    tj6["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first"}
    tj6["model"]["byte_fallback"] = False
    tj6["model"]["ignore_merges"] = True
    put("tokenizer_json", "sp_metaspace", json.dumps(tj6) + "\0" + "<s>the  the\tthe")


def seeds_task_data():
    fx = os.path.join(ROOT, "tests", "fixtures", "cls_tiny", "animal")
    train = open(os.path.join(fx, "train.jsonl")).read()
    test = open(os.path.join(fx, "test.jsonl")).read()
    val = open(os.path.join(fx, "validation.jsonl")).read()
    labels = open(os.path.join(fx, "labels.json")).read()
    # layout byte: 1 CSV, 2 validation, 4 labels.json, 8 fields sentence/y
    put("task_data", "jsonl_all", bytes([2 | 4]) + "\0".join([train, test, val, labels]).encode())
    put("task_data", "jsonl_carved", bytes([0]) + "\0".join([train, test]).encode())
    strings = '{"text": "good film", "label": "pos", "idx": 1}\r\n{"text": "bad film", "label": "neg"}\r\n' \
              '{"text": "fine", "label": "pos"}\n'
    put("task_data", "jsonl_strings", bytes([0]) + ("\ufeff" + strings + "\0" + strings).encode())
    other = '{"sentence": "a b", "y": 0}\n{"sentence": "c d", "y": 1}\n{"sentence": "e", "y": 1}\n'
    put("task_data", "jsonl_fields", bytes([8]) + (other + "\0" + other).encode())
    csv = 'text,label\r\n"hello, world",1\r\n"multi\nline ""quoted""",0\r\nplain,1\r\n'
    put("task_data", "csv_ints", bytes([1]) + (csv + "\0" + csv).encode())
    csv_s = '\ufeffid,text,label\n1,good,pos\n2,bad,neg\n3,"so so",neu\n'
    put("task_data", "csv_strings_val", bytes([1 | 2]) + (csv_s + "\0" + csv_s + "\0" + csv_s).encode())
    csv_l = "sentence,y\nx,cat\ny,dog\nz,0\n"
    put("task_data", "csv_labels", bytes([1 | 4 | 8]) + (csv_l + "\0" + csv_l + "\0\0" + '["cat", "dog"]').encode())


def seeds_experiment_config():
    base = json.load(open(os.path.join(ROOT, "tests", "fixtures", "continual_tiny.json")))
    put("experiment_config", "continual_tiny", json.dumps(base, indent=2))
    full = json.loads(json.dumps(base))
    full["methods"] = ["aria", "finetune", "ewc", "adapters", "multitask", "replay", "lwf"]
    full["data"] = {"text_field": "sentence", "label_field": "y", "validation_fraction": 0.2, "split_seed": 3}
    full["aria"].update({"fisher_estimator": "empirical", "fisher_scope": "all_but_fast", "spc_gamma": 0.9,
                         "legacy_plasticity_loss": True, "replay_per_task": 8, "lwf_lambda": 0.5})
    full["train"].update({"grad_accum": 2, "max_train_examples": 100, "precision": "fp32", "weight_decay": 0.0})
    put("experiment_config", "full", json.dumps(full))
    put("experiment_config", "minimal", json.dumps({"tasks": ["a", "b"]}))
    put("experiment_config", "unknown_key", json.dumps(base | {"trian": {}}))
    put("experiment_config", "bad_value", json.dumps(base | {"seeds": -1}))


if __name__ == "__main__":
    for f in (seeds_safetensors, seeds_gpt2_config, seeds_vocab_merges, seeds_tokenizer_json, seeds_task_data,
              seeds_experiment_config):
        f()
    sys.exit(0)
