#!/usr/bin/env python3
"""Convert the raw packages under third_party/raw into aria's task format.

  python3 tools/data/prepare.py [--raw third_party/raw] [--out third_party/data] [--tasks a,b,...]

For each task: <out>/<task>/{train,validation,test}.jsonl (one {"text": str, "label": int} a line),
labels.json (the label names, index = label) and meta.json (sources, counts, sizes, seed).
Then <out>/corpus/{train,validation}.txt and <out>/manifest.json. Exits 2 with a message on
input it cannot convert; individually broken records are skipped and counted.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import corpus  # noqa: E402
import fortunes  # noqa: E402
import language  # noqa: E402
import sentiment  # noqa: E402
import spam  # noqa: E402
import wordnet  # noqa: E402
from common import Config, DataError, Stats  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# The default task order of the sequence.
TASKS = {m.NAME: m for m in (sentiment, spam, fortunes, wordnet, language)}
DESCRIPTIONS = {
    "sentiment": "sentence sentiment (UCI labelled sentences: Amazon, IMDb, Yelp)",
    "spam": "e-mail spam vs ham (SpamAssassin public corpus), subject + decoded body",
    "fortune_topic": "category of an English fortune cookie (Debian fortunes)",
    "wordnet_class": "WordNet noun class from the synset's definition",
    "language_id": "language of a fortune cookie (Debian fortunes, -de, -es, -it)",
}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = Config()
    p.add_argument("--raw", type=Path, default=REPO / "third_party/raw")
    p.add_argument("--out", type=Path, default=REPO / "third_party/data")
    p.add_argument("--tasks", default=",".join(list(TASKS) + ["corpus"]),
                   help="comma-separated subset of: " + ", ".join(list(TASKS) + ["corpus"]))
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--max-train", type=int, default=d.max_train)
    p.add_argument("--max-validation", type=int, default=d.max_validation)
    p.add_argument("--max-test", type=int, default=d.max_test)
    p.add_argument("--validation-fraction", type=float, default=d.validation_fraction)
    p.add_argument("--test-fraction", type=float, default=d.test_fraction)
    p.add_argument("--max-chars", type=int, default=d.max_chars,
                   help="texts are truncated at a word boundary to this many characters")
    p.add_argument("--corpus-max-chars", type=int, default=6_000_000)
    p.add_argument("--corpus-validation-chars", type=int, default=300_000)
    a = p.parse_args(argv)
    names = [t.strip() for t in a.tasks.split(",") if t.strip()]
    unknown = [t for t in names if t not in TASKS and t != "corpus"]
    if unknown or not names:
        p.error(f"unknown task(s) {unknown}; choose from {list(TASKS) + ['corpus']}")
    a.task_list = names
    if a.validation_fraction + a.test_fraction >= 1 or min(a.validation_fraction,
                                                           a.test_fraction) <= 0:
        p.error("fractions must be positive and sum to less than 1")
    return a


def run(a) -> int:
    cfg = Config(seed=a.seed, max_train=a.max_train, max_validation=a.max_validation,
                 max_test=a.max_test, validation_fraction=a.validation_fraction,
                 test_fraction=a.test_fraction, max_chars=a.max_chars)
    a.out.mkdir(parents=True, exist_ok=True)
    for name in a.task_list:
        if name == "corpus":
            continue
        t0 = time.time()
        stats = Stats()
        labels, pairs = TASKS[name].load(a.raw, stats)
        task = common.build_task(name, labels, pairs, stats, cfg)
        common.write_task(a.out, task, {"source": TASKS[name].__doc__.strip().split("\n")[0],
                                        "description": DESCRIPTIONS[name]})
        print(f"  {common.summary(task)} [{time.time() - t0:.1f}s]", flush=True)
    present = [n for n in TASKS if (a.out / n / "labels.json").is_file()]
    if "corpus" in a.task_list:
        t0 = time.time()
        texts = [r["text"] for n in present for s in common.SPLITS
                 for r in common.read_jsonl(a.out / n / f"{s}.jsonl")]
        info = corpus.build(a.raw, a.out, texts, seed=a.seed, max_train_chars=a.corpus_max_chars,
                            max_validation_chars=a.corpus_validation_chars)
        (a.out / "corpus" / "meta.json").write_text(json.dumps(info, indent=2) + "\n")
        print(f"  corpus: train {info['characters']['train']} chars "
              f"({info['documents']['train']} documents), validation "
              f"{info['characters']['validation']} chars ({info['documents']['validation']} "
              f"documents); {info['paragraphs_dropped_for_leaks']} paragraphs dropped as "
              f"overlapping task texts [{time.time() - t0:.1f}s]", flush=True)
    manifest = {"seed": a.seed, "format": {"jsonl": {"text": "str", "label": "int"}},
                "tasks": []}
    for n in present:
        meta = json.loads((a.out / n / "meta.json").read_text(encoding="utf-8"))
        manifest["tasks"].append({"name": n, "labels": meta["labels"], "sizes": meta["sizes"],
                                  "description": DESCRIPTIONS[n]})
    if (a.out / "corpus" / "train.txt").is_file():
        manifest["corpus"] = {"train": "corpus/train.txt", "validation": "corpus/validation.txt"}
    (a.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


def main(argv=None) -> int:
    a = parse_args(argv)
    try:
        return run(a)
    except DataError as e:
        print(f"prepare.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
