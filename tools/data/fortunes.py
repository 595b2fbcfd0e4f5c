"""fortune_topic: the category file a fortune cookie comes from (Debian `fortunes`).

Fortune files are strfile sources: entries separated by lines holding a single '%'. Some entries
use overstriking for emphasis (char, backspace, char; or underscores, backspaces, word), replayed
as a terminal would show it; ANSI escapes are removed.
Entries that are empty or mostly non-letters (ASCII art) are skipped and counted.
Default categories: computers, politics, science (the three largest topical files).
"""
from __future__ import annotations

import re
from pathlib import Path

from common import DataError, Stats, read_text, require_dir

NAME = "fortune_topic"
SOURCE = "deb/fortunes/usr/share/games/fortunes"
CATEGORIES = ["computers", "politics", "science"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_SEP = re.compile(r"^%\s*$", re.M)


def remove_overstrike(text: str) -> str:
    """Replay backspaces as a terminal would: "_\\bx" and "____\\b\\b\\b\\bword" keep the later text."""
    out: list[str] = []
    for c in text:
        if c == "\x08":
            if out and out[-1] != "\n":
                out.pop()
        else:
            out.append(c)
    return "".join(out)


def parse_file(path: Path, what: str, stats: Stats) -> list[str]:
    """Entries of one strfile source; counts read and skipped entries in stats."""
    text = read_text(path, what)
    if "\x08" in text:
        text = remove_overstrike(text)
    text = _ANSI.sub("", text)
    entries = []
    for raw in _SEP.split(text):
        if not raw.strip():
            continue                     # blank between separators: not an entry
        stats.read += 1
        letters = sum(c.isalpha() for c in raw)
        if letters < 0.5 * len(raw.replace(" ", "").replace("\n", "")):
            stats.skip("mostly non-letters (ascii art)")
            continue
        entries.append(raw)
    return entries


def load(raw_root: Path, stats: Stats, categories=None):
    categories = list(categories or CATEGORIES)
    root = require_dir(Path(raw_root) / SOURCE, NAME)
    pairs = []
    for label, cat in enumerate(categories):
        n = len(pairs)
        pairs.extend((e, label) for e in parse_file(root / cat, NAME, stats))
        if len(pairs) == n:
            raise DataError(f"{NAME}: category file {root / cat} has no usable entries")
    stats.check(NAME)
    return categories, pairs
