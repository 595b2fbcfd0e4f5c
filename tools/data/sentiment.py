"""sentiment: UCI "Sentiment Labelled Sentences" (Kotzias et al., 2015) -> negative / positive.

The npm package `sentiment` (AFINN scorer) ships the three files of that data set as its benchmark
fixtures: test/fixtures/{amazon,imdb,yelp}.json, each a JSON array of {"text": str, "class": 0|1}.
Records without text or with another class are skipped and counted.
"""
from __future__ import annotations

import json
from pathlib import Path

from common import DataError, Stats, read_text

NAME = "sentiment"
LABELS = ["negative", "positive"]
SOURCE = "npm/sentiment/package/test/fixtures"
FILES = ("amazon.json", "imdb.json", "yelp.json")


def load(raw_root: Path, stats: Stats):
    root = Path(raw_root) / SOURCE
    pairs = []
    for name in FILES:
        path = root / name
        try:
            records = json.loads(read_text(path, NAME))
        except json.JSONDecodeError as e:
            raise DataError(f"{NAME}: {path} is not valid JSON: {e}") from e
        if not isinstance(records, list):
            raise DataError(f"{NAME}: {path} should hold a JSON array of "
                            f'{{"text", "class"}} records, found {type(records).__name__}')
        for r in records:
            stats.read += 1
            if not isinstance(r, dict):
                stats.skip("not an object")
                continue
            text, label = r.get("text"), r.get("class")
            if not isinstance(text, str) or not text.strip():
                stats.skip("no text")
                continue
            if label not in (0, 1) or isinstance(label, bool):
                stats.skip("class not 0/1")
                continue
            pairs.append((text, label))
    stats.check(NAME)
    return LABELS, pairs
