"""wordnet_class: lexicographer class of a WordNet 3.0 noun synset from its gloss (Debian `wordnet-base`).

data.noun holds one synset a line (wndb(5WN)):
  offset lex_filenum ss_type w_cnt word lex_id [word lex_id ...] p_cnt [ptr ...] | gloss
Lines starting with two spaces are the licence header. The label is the lexicographer file
(noun.person, noun.artifact, noun.animal, noun.plant by default); the text is the gloss's
definition, without its quoted example sentences (which usually contain the word itself).
Lines that do not parse are skipped and counted.
"""
from __future__ import annotations

import re
from pathlib import Path

from common import DataError, Stats, read_text

NAME = "wordnet_class"
SOURCE = "deb/wordnet-base/usr/share/wordnet/data.noun"
# lexicographer file numbers, from lexnames(5WN)
CLASSES = {"person": 18, "artifact": 6, "animal": 5, "plant": 20}

_EXAMPLE = re.compile(r';?\s*"')


def parse_line(line: str) -> tuple[int, str]:
    """(lex_filenum, definition) of one data.noun line; raises ValueError when malformed."""
    head, sep, gloss = line.partition(" | ")
    if not sep:
        raise ValueError("no gloss separator")
    t = head.split()
    if len(t) < 6 or not re.fullmatch(r"\d{8}", t[0]) or not re.fullmatch(r"\d{2}", t[1]) \
            or t[2] != "n":
        raise ValueError("bad synset header")
    w_cnt = int(t[3], 16)
    i = 4 + 2 * w_cnt
    if w_cnt < 1 or len(t) <= i or not t[i].isdigit():
        raise ValueError("bad word list")
    p_cnt = int(t[i])
    if len(t) != i + 1 + 4 * p_cnt:
        raise ValueError("bad pointer count")
    definition = _EXAMPLE.split(gloss.strip(), maxsplit=1)[0].strip().rstrip(";").strip()
    return int(t[1]), definition


def load(raw_root: Path, stats: Stats, classes=None):
    classes = dict(classes or CLASSES)
    wanted = {num: label for label, num in enumerate(classes.values())}
    path = Path(raw_root) / SOURCE
    pairs = []
    for line in read_text(path, NAME).splitlines():
        if not line.strip() or line.startswith("  "):
            continue                     # licence header
        stats.read += 1
        try:
            lex, definition = parse_line(line)
        except ValueError as e:
            stats.skip(str(e))
            continue
        if lex not in wanted:
            continue
        if not definition:
            stats.skip("empty definition")
            continue
        pairs.append((definition, wanted[lex]))
    stats.check(NAME)
    found = {label for _, label in pairs}
    missing = [name for name, num in classes.items() if wanted[num] not in found]
    if missing:
        raise DataError(f"{NAME}: no synsets of class {missing} in {path}")
    return list(classes), pairs
