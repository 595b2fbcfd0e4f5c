#!/usr/bin/env python3
"""Layering rules of issue 16 that the compiler cannot see, checked on the sources.

train/ reaches the kernels only through ops (core/ops*.h): no train/ file includes a kernels/
header or dispatches a kernel (ARIA_DISPATCH, aria::cpu:: / aria::cuda:: kernel calls); model/
includes no kernels/ header either. core/ includes one kernels/ header, the backend interface
kernels/backend.h (runtime services and the kernel table), never another kernels/ header or a
backend's own headers (kernels/cpu/, kernels/cuda/). kernels/ never includes the autograd tensor
(core/tensor.h, core/autograd.h) or an op header (core/ops*.h): kernels take plain views
(core/tensor_view.h). No file of the library (core/, kernels/, model/, train/)
reads the environment: its switches live in aria::context() (core/context.h), which only tools/
fills from environment variables. A rule is
(folder, description, regex); a line matching the regex in a C++ source under the folder fails.
--self-test writes a small tree that breaks every rule and checks that each break is reported."""
import argparse
import pathlib
import re
import sys
import tempfile

SUFFIXES = {".h", ".hpp", ".cpp", ".cc", ".cu", ".cuh"}
RULES = [
    ("train", "includes a kernels/ header (reach kernels through core/ops*.h)",
     re.compile(r'^\s*#\s*include\s+"(?:aria/)?kernels/')),
    ("train", "dispatches a kernel (add an op in core/ and call it)", re.compile(r"\bARIA_DISPATCH\b")),
    ("train", "calls a backend's kernel directly (add an op in core/ and call it)",
     re.compile(r"\b(?:aria::)?(?:cpu|cuda)::[a-z_]+\s*\(")),
    ("model", "includes a kernels/ header (reach kernels through core/ops*.h)",
     re.compile(r'^\s*#\s*include\s+"(?:aria/)?kernels/')),
    ("core", "includes a kernels/ header other than the backend interface kernels/backend.h",
     re.compile(r'^\s*#\s*include\s+"(?:aria/)?kernels/(?!backend\.h")')),
    ("kernels", "includes the autograd tensor or an op header (kernels take TensorView, core/tensor_view.h)",
     re.compile(r'^\s*#\s*include\s+"(?:aria/)?core/(?:tensor|autograd|ops\w*)\.h"')),
] + [(folder, "reads the environment (only tools/ does: add a field to aria::context(), core/context.h)",
      re.compile(r"\b(?:secure_)?getenv\s*\(")) for folder in ("core", "kernels", "model", "train")]


def violations(root):
    out = []
    for folder, why, pattern in RULES:
        base = root / folder
        if not base.is_dir():
            continue
        for p in sorted(base.rglob("*")):
            if p.suffix not in SUFFIXES or not p.is_file():
                continue
            for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                if pattern.search(line):
                    out.append(f"{p.relative_to(root).as_posix()}:{n}: {why}: {line.strip()}")
    return out


def self_test():
    bad = {
        "train/a.cpp": '#include "aria/kernels/gated_check.h"\n',
        "train/sub/b.h": '  #include "kernels/kernel_list.h"\n',
        "train/c.cpp": "void f() { ARIA_DISPATCH(d, axpy, y, x, 1.0); }\n",
        "train/d.cpp": "void f() { aria::cuda::axpy(y, x, 1.0); cpu::fill(y, 0); }\n",
        "train/ok.cpp": '#include "aria/core/ops_inplace.h"\n// ARIA_DISPATCHER is another word\n',
        "model/e.cpp": '#include "aria/kernels/gated_check.h"\n',
        "core/f.cpp": '#include "aria/kernels/backend.h"\n#include "aria/kernels/gated_check.h"\n',
        "core/g.h": '#include "kernels/cuda/runtime.h"\n',
        "core/ok.cpp": '#include "aria/kernels/backend.h"\n// kernels/gated_check.h is not included here\n',
        "kernels/cuda/h.cu": 'const char* e = std::getenv("ARIA_X");\n',
        "kernels/cpu/j.cpp": '#include "aria/core/tensor.h"\n',
        "kernels/k.h": '#include "core/ops_inplace.h"\n',
        "kernels/ok.h": '#include "aria/core/tensor_view.h"\n#include "aria/core/adamw_item.h"\n',
        "model/i.cpp": "if (secure_getenv(name)) {}\n",
    }
    with tempfile.TemporaryDirectory() as d:
        root = pathlib.Path(d)
        for rel, text in bad.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        found = violations(root)
    files = sorted({v.split(":")[0] for v in found})
    want = ["core/f.cpp", "core/g.h", "kernels/cpu/j.cpp", "kernels/cuda/h.cu", "kernels/k.h", "model/e.cpp",
            "model/i.cpp", "train/a.cpp", "train/c.cpp", "train/d.cpp", "train/sub/b.h"]
    if files != want or len(found) != 11:
        print("self-test failed: reported", found, file=sys.stderr)
        return 1
    print("self-test: every planted violation reported, nothing else")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not args.root:
        ap.error("--root is required (or --self-test)")
    found = violations(pathlib.Path(args.root))
    for v in found:
        print("error: " + v, file=sys.stderr)
    if not found:
        print("layers: train/ and model/ include no kernels/ header, train/ dispatches no kernel, core/ includes"
              " only kernels/backend.h, kernels/ includes no autograd tensor or op header, and no library file reads"
              " the environment")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
