#!/usr/bin/env python3
"""The README's library examples are the programs tests/consumer builds and runs (issue 16).

Every ```cpp block of README.md whose first line is "// tests/consumer/examples/<name>.cpp: ..." must
equal that file byte for byte, and every file in tests/consumer/examples/ must appear in the README.
So the examples a reader copies are the ones ctest compiles against the installed package and the
add_subdirectory route (consumer_find_package, consumer_subdirectory)."""
import argparse
import difflib
import pathlib
import re
import sys


def readme_blocks(text):
    """(first-line path, block text) for each ```cpp block that names an example file."""
    out = []
    for m in re.finditer(r"^```cpp\n(.*?)^```$", text, flags=re.S | re.M):
        body = m.group(1)
        first = body.split("\n", 1)[0]
        named = re.match(r"// (tests/consumer/examples/[\w.-]+\.cpp):", first)
        if named:
            out.append((named.group(1), body))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True, help="the repository root")
    args = ap.parse_args()
    root = pathlib.Path(args.root)
    blocks = readme_blocks((root / "README.md").read_text(encoding="utf-8"))
    errors = []
    seen = set()
    for path, body in blocks:
        f = root / path
        if path in seen:
            errors.append(f"README.md shows {path} twice")
        seen.add(path)
        if not f.is_file():
            errors.append(f"README.md shows {path}, which does not exist")
            continue
        want = f.read_text(encoding="utf-8")
        if body != want:
            diff = "".join(difflib.unified_diff(want.splitlines(True), body.splitlines(True), path, "README.md"))
            errors.append(f"README.md's block differs from {path}:\n{diff}")
    for f in sorted((root / "tests/consumer/examples").glob("*.cpp")):
        rel = f.relative_to(root).as_posix()
        if rel not in seen:
            errors.append(f"{rel} is not shown in README.md (a ```cpp block starting '// {rel}: ...')")
    for e in errors:
        print("error:", e, file=sys.stderr)
    if not errors:
        print(f"README.md: {len(blocks)} library examples, each equal to its file in tests/consumer/examples")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
