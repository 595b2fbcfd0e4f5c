#!/usr/bin/env python3
"""Write tests/fixtures/tokenizer_expected.json: reference GPT-2 ids for tokenizer_strings.json.

Output format: {"source": "...", "cases": [{"text": ..., "ids": [...]}, ...]}, one case per
string, in order. tests/test_tokenizer.cpp checks aria's Gpt2Tokenizer against it.

Backends:
  transformers (default)  GPT2TokenizerFast and the slow GPT2Tokenizer built from vocab.json and
                          merges.txt (no hub access needed); asserts they agree on every string.
                          This is the ground truth: run it where transformers is installed.
  node                    the npm package gpt-3-encoder@1.1.4 (Encoder.js), for machines without
                          transformers. Encoder.js is OpenAI's encoder.py ported to JavaScript, with
                          two differences from HF that we correct here:
                            * it does not know "<|endoftext|>": we split it out and join the
                              pieces with its id, as HF does with added tokens;
                            * JavaScript's \\s is not Unicode White_Space (it has U+FEFF, lacks
                              U+0085), so we pre-tokenize with White_Space ourselves and run
                              Encoder.js's own bpe() on each piece.
  encoder-py              our own few-line copy of the original algorithm (class EncoderPy) with the
                          `regex` module, the engine HF's slow tokenizer used.

Examples:
  python3 tools/hf_reference/tokenizer_fixture.py --vocab-dir third_party/gpt2-vocab
  python3 tools/hf_reference/tokenizer_fixture.py --backend node --node-package /tmp/npmx/package
"""
import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EOT = "<|endoftext|>"

NODE_SCRIPT = r"""
const [pkg, inPath] = process.argv.slice(2);
const fs = require('fs'), path = require('path'), Module = require('module');
// Load Encoder.js with its internals exported: we need its bpe() on pieces that its own regex
// would cut differently from HF's.
const file = path.join(pkg, 'Encoder.js');
const m = new Module(file, null);
m.filename = file;
m.paths = Module._nodeModulePaths(pkg);
m._compile(fs.readFileSync(file, 'utf-8') +
           '\nmodule.exports = {bpe, byte_encoder, encoder};', file);
const {bpe, byte_encoder, encoder} = m.exports;
const utf8 = new TextEncoder();
// Encoder.js's encode() loop body, for one pre-tokenized piece.
const encodePiece = piece =>
  bpe(Array.from(utf8.encode(piece)).map(b => byte_encoder[b]).join('')).split(' ').map(t => encoder[t]);
// Unicode White_Space, which HF's regex engines use for \s.
const W = '\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const hfPat = new RegExp("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" + W + "\\p{L}\\p{N}]+|[" + W +
                         "]+(?![^" + W + "])|[" + W + "]+", 'gu');
const EOT = '<|endoftext|>';
const texts = JSON.parse(fs.readFileSync(inPath, 'utf-8'));
const out = texts.map(text => {
  const ids = [];
  text.split(EOT).forEach((seg, k) => {
    if (k > 0) ids.push(encoder[EOT]);
    for (const piece of seg.match(hfPat) || []) ids.push(...encodePiece(piece));
  });
  if (ids.some(x => x === undefined)) throw new Error('unknown token in ' + JSON.stringify(text));
  return ids;
});
process.stdout.write(JSON.stringify(out));
"""


class EncoderPy:
    """GPT-2's original algorithm (OpenAI's encoder.py, which HF's slow GPT2Tokenizer copies),
    written out here with the `regex` module so the fast tokenizer can be checked against an
    independent implementation even where transformers no longer ships a slow one."""

    PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

    def __init__(self, vocab_dir):
        import regex
        self.re = regex.compile(self.PAT)
        self.vocab = json.load(open(os.path.join(vocab_dir, "vocab.json"), encoding="utf-8"))
        lines = open(os.path.join(vocab_dir, "merges.txt"), encoding="utf-8").read().split("\n")
        pairs = [tuple(l.split()) for l in lines if l and not l.startswith("#version")]
        self.ranks = {p: i for i, p in enumerate(pairs)}
        printable = [b for b in range(256) if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or b >= 0xAE]
        others = [b for b in range(256) if b not in printable]
        self.spell = {b: chr(b) for b in printable}
        self.spell.update({b: chr(256 + i) for i, b in enumerate(others)})

    def bpe(self, word):
        word = list(word)
        while len(word) > 1:
            best = min(zip(word, word[1:]), key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):  # every occurrence, left to right, without overlaps
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        return word

    def encode(self, text):
        ids = []
        for k, seg in enumerate(text.split(EOT)):
            if k:
                ids.append(self.vocab[EOT])
            for piece in self.re.findall(seg):
                ids += [self.vocab[t] for t in self.bpe("".join(self.spell[b] for b in piece.encode("utf-8")))]
        return ids


def run_encoder_py(texts, vocab_dir):
    import regex
    ref = EncoderPy(vocab_dir)
    source = f"encoder.py algorithm with regex {regex.__version__} (tools/hf_reference/tokenizer_fixture.py --backend encoder-py)"
    return source, [{"text": t, "ids": ref.encode(t)} for t in texts]


def run_transformers(texts, vocab_dir):
    import transformers
    from transformers import GPT2Tokenizer, GPT2TokenizerFast

    vocab, merges = os.path.join(vocab_dir, "vocab.json"), os.path.join(vocab_dir, "merges.txt")

    def make(cls):
        # transformers 4 takes vocab_file/merges_file; 5 takes vocab/merges and silently ignores
        # the old names (giving an empty tokenizer), so pick by signature and check the size.
        if "vocab_file" in inspect.signature(cls.__init__).parameters:
            tok = cls(vocab_file=vocab, merges_file=merges, add_prefix_space=False)
        else:
            tok = cls(vocab=vocab, merges=merges, add_prefix_space=False)
        n = len(json.load(open(vocab, encoding="utf-8")))
        assert len(tok) == n, f"{cls.__name__} has {len(tok)} tokens, vocab.json has {n}"
        return tok

    fast, slow = make(GPT2TokenizerFast), make(GPT2Tokenizer)
    print(f"fast: {type(fast).__name__} is_fast={fast.is_fast}; slow: {type(slow).__name__} is_fast={slow.is_fast}")
    # transformers 5 dropped the Python (slow) GPT-2 tokenizer: both names give the Rust one. Then
    # the independent check is our own copy of the original algorithm.
    ref = EncoderPy(vocab_dir)
    checked = "GPT2TokenizerFast == GPT2Tokenizer == encoder.py algorithm"
    if getattr(slow, "is_fast", False):
        print("note: this transformers has no Python GPT2Tokenizer; checking fast against encoder.py only")
        checked = "GPT2TokenizerFast == encoder.py algorithm; no slow GPT2Tokenizer in this version"
    cases = []
    for text in texts:
        f = fast.encode(text, add_special_tokens=False)
        s = slow.encode(text, add_special_tokens=False)
        r = ref.encode(text)
        assert f == s, f"fast and slow tokenizers disagree on {text!r}:\n fast {f}\n slow {s}"
        assert f == r, f"fast tokenizer and encoder.py disagree on {text!r}:\n fast {f}\n encoder.py {r}"
        cases.append({"text": text, "ids": f})
    return f"transformers {transformers.__version__} ({checked})", cases


def run_node(texts, package):
    pkg = os.path.abspath(package)
    version = json.load(open(os.path.join(pkg, "package.json")))["version"]
    with tempfile.TemporaryDirectory() as tmp:
        inp, script = os.path.join(tmp, "in.json"), os.path.join(tmp, "ref.js")
        json.dump(texts, open(inp, "w"))
        open(script, "w").write(NODE_SCRIPT)
        res = subprocess.run(["node", script, pkg, inp], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit("node failed:\n" + res.stderr)
    ids = json.loads(res.stdout)
    source = (f"node gpt-3-encoder@{version} Encoder.js, with <|endoftext|> split out and "
              "White_Space pre-tokenization as in HF (tools/hf_reference/tokenizer_fixture.py --backend node)")
    return source, [{"text": t, "ids": i} for t, i in zip(texts, ids)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["transformers", "node", "encoder-py"], default="transformers")
    ap.add_argument("--vocab-dir", default=os.path.join(ROOT, "third_party", "gpt2-vocab"))
    ap.add_argument("--node-package", help="extracted gpt-3-encoder npm package (backend node)")
    ap.add_argument("--strings", default=os.path.join(ROOT, "tests", "fixtures", "tokenizer_strings.json"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "tokenizer_expected.json"))
    args = ap.parse_args()

    texts = json.load(open(args.strings, encoding="utf-8"))
    if args.backend == "transformers":
        source, cases = run_transformers(texts, args.vocab_dir)
    elif args.backend == "encoder-py":
        source, cases = run_encoder_py(texts, args.vocab_dir)
    else:
        if not args.node_package:
            sys.exit("--backend node needs --node-package")
        source, cases = run_node(texts, args.node_package)
    with open(args.out, "w", encoding="utf-8") as f:
        # One case per line keeps the file small and its diffs readable.
        f.write('{\n "source": %s,\n "cases": [\n' % json.dumps(source))
        f.write(",\n".join("  " + json.dumps(c, ensure_ascii=True) for c in cases))
        f.write("\n ]\n}\n")
    print(f"wrote {args.out}: {len(cases)} cases from {source}")


if __name__ == "__main__":
    main()
