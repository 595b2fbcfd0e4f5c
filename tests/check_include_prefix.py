#!/usr/bin/env python3
"""aria's own headers are included as "aria/<folder>/..." everywhere (issue 16).

The repository root is no longer on the include path of aria's users, so an unprefixed
#include "core/..." (or kernels/, model/, train/) in an installed header would not compile for them,
or would pick up their own core/ folder. This lists every such line in the C++ and CUDA sources.
--fix rewrites them (the mechanical change that introduced the prefix)."""
import argparse
import pathlib
import re
import sys

FOLDERS = ("core", "kernels", "model", "train")
PATTERN = re.compile(r'^(\s*#\s*include\s+")((?:%s)/)' % "|".join(FOLDERS), re.M)
SUFFIXES = {".h", ".hpp", ".cpp", ".cc", ".cu", ".cuh"}
SKIP = ("build", "third_party", ".git", "tests/consumer")  # the consumer project has its own core/, model/


def sources(root):
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.suffix in SUFFIXES and p.is_file() and not p.is_symlink():
            if any(rel == s or rel.startswith(s + "/") or rel.startswith(s + "-") for s in SKIP):
                continue
            if "include/aria/" in rel:  # the links to the folders themselves
                continue
            yield p, rel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--fix", action="store_true", help="rewrite the includes in place")
    args = ap.parse_args()
    root = pathlib.Path(args.root)
    bad = []
    for p, rel in sources(root):
        text = p.read_text(encoding="utf-8", errors="surrogateescape")
        hits = [text[: m.start()].count("\n") + 1 for m in PATTERN.finditer(text)]
        if not hits:
            continue
        if args.fix:
            p.write_text(PATTERN.sub(r"\1aria/\2", text), encoding="utf-8", errors="surrogateescape")
        bad.extend(f"{rel}:{line}" for line in hits)
    if args.fix:
        print(f"rewrote {len(bad)} includes")
        return 0
    for b in bad:
        print(f"error: {b}: include aria's headers as \"aria/<folder>/...\"", file=sys.stderr)
    if not bad:
        print("every include of core/, kernels/, model/ and train/ headers has the aria/ prefix")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
