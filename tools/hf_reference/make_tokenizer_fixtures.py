#!/usr/bin/env python3
"""Write tests/fixtures/tokenizers/<name>/{tokenizer.json, expected.json}: three small tokenizers
trained by Hugging Face `tokenizers` and its ids for the tricky strings, for tests/test_tokenizer_hf.cpp.

Run where the `tokenizers` Python package (>= 0.19: Metaspace's prepend_scheme/split, ignore_merges)
is installed, e.g. the GPU box; it takes seconds:

    python3 tools/hf_reference/make_tokenizer_fixtures.py [--out DIR]   (default tests/fixtures/tokenizers)

Each tokenizer is trained on tests/fixtures/tokenizers/train.txt (12 KB of the fetched English
corpus, committed), then its tokenizer.json is edited to the configuration under test and loaded back
by `tokenizers` (Tokenizer.from_str), so the ids come from tokenizers itself on exactly the saved file:

  llama3_bpe        Llama 3 style: byte-level BPE, vocab 1000, pre-tokenizer Sequence[Split(Llama 3's
                    regex, Isolated), ByteLevel(use_regex=false)], ignore_merges, added special tokens
                    <|begin_of_text|> <|end_of_text|> after the vocabulary, post-processor
                    Sequence[ByteLevel, TemplateProcessing("<|begin_of_text|> $A")], ByteLevel decoder.
  sp_bpe_legacy     Llama 2 style: SentencePiece BPE, <unk> <s> </s>, the 256 <0xNN> byte tokens, 500
                    trained pieces; normalizer Sequence[Prepend("▁"), Replace(" ", "▁")], no
                    pre-tokenizer, byte_fallback, fuse_unk, template "<s> $A", decoder
                    Sequence[Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1, 0)].
  sp_bpe_metaspace  the same pieces with Metaspace(prepend_scheme "first", split) and no normalizer,
                    no byte fallback (unknown characters give a fused <unk>), ignore_merges, decoder
                    Sequence[ByteFallback, Metaspace, Fuse].
Both byte-level and SentencePiece vocabularies get one extra token that no merge builds ("ĠZyzzyva",
"▁Zyzzyva"), so only ignore_merges can produce it.

expected.json: {"tokenizers_version", "vocab_size" (largest id + 1), "cases": [{"text", "ids",
"ids_with_special", "decoded", "decoded_with_special"}]} with encode(text, add_special_tokens=False /
True) and decode(ids, skip_special_tokens=False) for each string of tests/fixtures/tokenizers/strings.json.
"""
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "tokenizers")
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")


def template(bos, bos_id):
    return {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}}}


def added(token_id, content):
    return {"id": token_id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def train_llama3(tk, text):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator([text], trainer)
    j = json.loads(tok.to_str())
    vocab = j["model"]["vocab"]
    vocab["ĠZyzzyva"] = max(vocab.values()) + 1
    # tokenizers gives added tokens that are not in the vocabulary the ids after it, whatever the
    # file says (and warns): these are the ids it will give.
    n = max(vocab.values()) + 1
    j["added_tokens"] = [added(n, "<|begin_of_text|>"), added(n + 1, "<|end_of_text|>")]
    j["model"]["ignore_merges"] = True
    j["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        template("<|begin_of_text|>", n)]}
    return j


def train_sentencepiece(tk, text):
    """The trained pieces with Llama 2's layout: <unk> <s> </s>, <0x00>..<0xFF>, then the pieces."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator([text], trainer)
    j = json.loads(tok.to_str())
    old = j["model"]["vocab"]
    assert [old["<unk>"], old["<s>"], old["</s>"]] == [0, 1, 2], "special tokens are not ids 0-2"
    vocab = {k: (v if v < 3 else v + 256) for k, v in old.items()}
    for b in range(256):
        name = "<0x%02X>" % b
        assert name not in vocab, name + " was learned as a piece"
        vocab[name] = 3 + b
    vocab["▁Zyzzyva"] = max(vocab.values()) + 1
    j["model"]["vocab"] = vocab
    j["added_tokens"] = [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")]
    j["post_processor"] = template("<s>", 1)
    return j


def legacy(j):
    j = json.loads(json.dumps(j))
    j["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    j["pre_tokenizer"] = None
    j["model"].update({"byte_fallback": True, "fuse_unk": True, "ignore_merges": False})
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
        {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    return j


def metaspace(j):
    j = json.loads(json.dumps(j))
    j["normalizer"] = None
    j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}
    j["model"].update({"byte_fallback": False, "fuse_unk": True, "ignore_merges": True})
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"},
        {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True},
        {"type": "Fuse"}]}
    return j


def write(out_root, name, j, strings, tk):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_str(json.dumps(j, ensure_ascii=False))
    for t in j["added_tokens"]:
        got = tok.token_to_id(t["content"])
        if got != t["id"]:
            sys.exit(f"{name}: tokenizers gave {t['content']!r} id {got}, the file says {t['id']}")
    out_dir = os.path.join(out_root, name)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "tokenizer.json")
    tok.save(path, pretty=False)
    saved = json.load(open(path, encoding="utf-8"))
    ids = list(saved["model"]["vocab"].values()) + [t["id"] for t in saved["added_tokens"]]
    cases = []
    for s in strings:
        plain = tok.encode(s, add_special_tokens=False).ids
        special = tok.encode(s, add_special_tokens=True).ids
        cases.append({"text": s, "ids": plain, "ids_with_special": special,
                      "decoded": tok.decode(plain, skip_special_tokens=False),
                      "decoded_with_special": tok.decode(special, skip_special_tokens=False)})
    expected = {"tokenizers_version": tk.__version__, "vocab_size": max(ids) + 1, "cases": cases}
    exp_path = os.path.join(out_dir, "expected.json")
    with open(exp_path, "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=0)
    for p in (path, exp_path):
        print(f"wrote {p} ({os.path.getsize(p)} bytes)")


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=FIXTURES, help="folder for the <name>/ fixture folders")
    args = ap.parse_args()
    try:
        import tokenizers as tk
    except ImportError:
        sys.exit("make_tokenizer_fixtures.py needs the Python package `tokenizers` (pip install tokenizers); "
                 "run it where transformers is installed, e.g. the GPU box")
    version = tuple(int(x) for x in tk.__version__.split(".")[:2])
    if version < (0, 19):
        sys.exit(f"tokenizers {tk.__version__} is too old: Metaspace split/prepend_scheme and ignore_merges need >= 0.19")
    t0 = time.time()
    text = open(os.path.join(FIXTURES, "train.txt"), encoding="utf-8").read()
    strings = json.load(open(os.path.join(FIXTURES, "strings.json"), encoding="utf-8"))
    write(args.out, "llama3_bpe", train_llama3(tk, text), strings, tk)
    sp = train_sentencepiece(tk, text)
    write(args.out, "sp_bpe_legacy", legacy(sp), strings, tk)
    write(args.out, "sp_bpe_metaspace", metaspace(sp), strings, tk)
    print(f"tokenizers {tk.__version__}, {len(strings)} strings, {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
