"""language_id: language of a fortune cookie: English, German, Spanish or Italian.

Sources are Debian's fortune packages (strfile format, see fortunes.py):
  en: `fortunes` and `fortunes-min`, every file except the fortune_topic categories (so the two
      tasks share no text) and the ASCII-art / translation files;
  de: `fortunes-de`; es: `fortunes-es` (not its off/ directory); it: `fortunes-it`.
Files that mix languages (de/translations) or hold banners/ASCII art are left out.
"""
from __future__ import annotations

from pathlib import Path

import fortunes
from common import DataError, Stats, require_dir

NAME = "language_id"
LABELS = ["english", "german", "spanish", "italian"]
SOURCES = {
    "english": ["deb/fortunes/usr/share/games/fortunes", "deb/fortunes-min/usr/share/games/fortunes"],
    "german": ["deb/fortunes-de/usr/share/games/fortunes/de"],
    "spanish": ["deb/fortunes-es/usr/share/games/fortunes/es"],
    "italian": ["deb/fortunes-it/usr/share/games/fortunes/it"],
}
EXCLUDE = set(fortunes.CATEGORIES) | {"ascii-art", "asciiart", "translate-me", "translations",
                                      "banner"}


def fortune_files(directory: Path) -> list[Path]:
    """Regular strfile sources in a directory (not .dat indexes, .u8 links or -pre drafts)."""
    out = []
    for p in sorted(directory.iterdir()):
        if p.is_symlink() or not p.is_file() or p.suffix in (".dat", ".u8") \
                or p.name.endswith("-pre"):
            continue
        if p.name.split(".")[0] in EXCLUDE:
            continue
        out.append(p)
    return out


def load(raw_root: Path, stats: Stats):
    pairs = []
    for label, lang in enumerate(LABELS):
        files = []
        for rel in SOURCES[lang]:
            files += fortune_files(require_dir(Path(raw_root) / rel, NAME))
        if not files:
            raise DataError(f"{NAME}: no fortune files for {lang} under {SOURCES[lang]}")
        n = len(pairs)
        for f in files:
            pairs.extend((e, label) for e in fortunes.parse_file(f, NAME, stats))
        if len(pairs) == n:
            raise DataError(f"{NAME}: no usable {lang} entries in {[str(f) for f in files]}")
    stats.check(NAME)
    return LABELS, pairs
