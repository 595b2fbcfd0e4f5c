"""Shared steps of every converter: normalise, deduplicate, balance, split, write.

A converter yields (text, label_index) pairs and counts what it skipped in a Stats object;
build_task() turns them into balanced, seeded, capped train/validation/test splits, and
write_task() writes third_party/data/<task>/{train,validation,test}.jsonl, labels.json and meta.json.
Only the Python standard library is used.
"""
from __future__ import annotations

import collections
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "validation", "test")


class DataError(Exception):
    """Input that cannot be converted: a missing file, a malformed file, no usable examples."""


@dataclass
class Config:
    seed: int = 1234
    max_train: int = 2000
    max_validation: int = 500
    max_test: int = 500
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    max_chars: int = 400


@dataclass
class Stats:
    """What a converter read and skipped; skipped records are counted by reason."""
    read: int = 0
    skipped: collections.Counter = field(default_factory=collections.Counter)

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def check(self, what: str) -> None:
        """Fail when nothing usable was read or when most records were unparseable."""
        usable = self.read - self.n_skipped
        if self.read == 0:
            raise DataError(f"{what}: no records found")
        if usable <= 0:
            raise DataError(f"{what}: none of the {self.read} records could be used "
                            f"(skipped: {dict(self.skipped)})")
        if self.n_skipped > usable:
            raise DataError(f"{what}: {self.n_skipped} of {self.read} records could not be used "
                            f"(skipped: {dict(self.skipped)}); is this the right file format?")


_WS = re.compile(r"\s+")
_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def normalise(text: str, max_chars: int) -> str:
    """Collapse whitespace, drop control characters, truncate at a word boundary to max_chars."""
    text = _CTRL.sub("", text.replace("\u00a0", " "))
    text = _WS.sub(" ", text).strip()
    if max_chars > 0 and len(text) > max_chars:
        cut = text[:max_chars]
        space = cut.rfind(" ")
        if space >= max_chars // 2:
            cut = cut[:space]
        text = cut.rstrip()
    return text


def dedup_key(text: str) -> str:
    return _WS.sub(" ", text.casefold()).strip()


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"{what}: file not found: {path} (run tools/fetch_data.sh)")
    return path


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{what}: directory not found: {path} (run tools/fetch_data.sh)")
    return path


def read_text(path: Path, what: str) -> str:
    """A text file as UTF-8 (Latin-1 where it is not); binary files are an error."""
    data = require_file(path, what).read_bytes()
    if b"\x00" in data:
        raise DataError(f"{what}: {path} is binary (NUL bytes), not a text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def build_task(name: str, labels: list[str], pairs, stats: Stats, cfg: Config) -> dict:
    """Normalise, drop empties and duplicates, balance classes by downsampling, split.

    Splits are stratified: every class gets the same number of examples in each split, so
    every split is balanced. Per class: validation = max(1, round(n * validation_fraction)),
    test likewise, train = the rest; each is then capped at max_<split> // num_labels.
    """
    k = len(labels)
    if k < 2:
        raise DataError(f"{name}: needs at least 2 labels, got {labels}")
    seen: dict[str, int] = {}
    texts: dict[str, str] = {}
    conflicts: set[str] = set()
    counts = collections.Counter()
    for text, label in pairs:
        if not 0 <= label < k:
            raise DataError(f"{name}: label {label} out of range for {k} labels")
        text = normalise(text, cfg.max_chars)
        if not text:
            counts["empty"] += 1
            continue
        key = dedup_key(text)
        if key in seen:
            if seen[key] != label:
                conflicts.add(key)
            counts["duplicate"] += 1
            continue
        seen[key] = label
        texts[key] = text
    stats.check(name)
    per_label: list[list[str]] = [[] for _ in range(k)]
    for key, label in seen.items():
        if key not in conflicts:
            per_label[label].append(texts[key])
    counts["conflicting_labels"] = len(conflicts)
    before = {labels[i]: len(v) for i, v in enumerate(per_label)}
    n = min(len(v) for v in per_label)
    if n < 3:
        raise DataError(f"{name}: too few usable examples per class to split "
                        f"(per class: {before}); need at least 3 each")
    rng = random.Random(f"{cfg.seed}:{name}")
    n_val = max(1, round(n * cfg.validation_fraction))
    n_test = max(1, round(n * cfg.test_fraction))
    n_val = min(n_val, max(1, cfg.max_validation // k))
    n_test = min(n_test, max(1, cfg.max_test // k))
    n_train = min(n - n_val - n_test, max(1, cfg.max_train // k))
    if n_train < 1:
        raise DataError(f"{name}: no examples left for train (per class: {before})")
    splits = {s: [] for s in SPLITS}
    for label, items in enumerate(per_label):
        items = sorted(items)          # independent of input order
        rng.shuffle(items)
        parts = {"test": items[:n_test], "validation": items[n_test:n_test + n_val],
                 "train": items[n_test + n_val:n_test + n_val + n_train]}
        for s in SPLITS:
            splits[s].extend((t, label) for t in parts[s])
    for s in SPLITS:
        rng.shuffle(splits[s])
    return {
        "name": name,
        "labels": labels,
        "splits": splits,
        "meta": {
            "task": name,
            "labels": labels,
            "seed": cfg.seed,
            "records_read": stats.read,
            "records_skipped": dict(stats.skipped),
            "dropped": dict(counts),
            "per_class_before_balancing": before,
            "per_class_used": {"train": n_train, "validation": n_val, "test": n_test},
            "sizes": {s: len(splits[s]) for s in SPLITS},
            "max_chars": cfg.max_chars,
            "caps": {"train": cfg.max_train, "validation": cfg.max_validation,
                     "test": cfg.max_test},
            "fractions": {"validation": cfg.validation_fraction, "test": cfg.test_fraction},
        },
    }


def write_task(out_root: Path, task: dict, extra_meta: dict | None = None) -> Path:
    out = Path(out_root) / task["name"]
    out.mkdir(parents=True, exist_ok=True)
    for s in SPLITS:
        tmp = out / f"{s}.jsonl.tmp"
        with tmp.open("w", encoding="utf-8") as f:
            for text, label in task["splits"][s]:
                f.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
        tmp.replace(out / f"{s}.jsonl")
    (out / "labels.json").write_text(json.dumps(task["labels"]) + "\n", encoding="utf-8")
    meta = dict(task["meta"], **(extra_meta or {}))
    (out / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n",
                                   encoding="utf-8")
    return out


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with Path(path).open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{i}: not JSON: {e}") from e
    return rows


def summary(task: dict) -> str:
    m = task["meta"]
    skipped = sum(m["records_skipped"].values())
    drops = ", ".join(f"{v} {k}" for k, v in m["dropped"].items() if v)
    return (f"{task['name']}: {len(task['labels'])} labels {task['labels']}; "
            f"train {m['sizes']['train']}, validation {m['sizes']['validation']}, "
            f"test {m['sizes']['test']}; read {m['records_read']} records, skipped {skipped}"
            + (f" ({dict(m['records_skipped'])})" if skipped else "")
            + (f"; dropped {drops}" if drops else ""))
