#!/usr/bin/env python3
"""Summarises one profiled training step from Nsight Compute's CSV (GPU box only).

  ARIA_BENCH_PROFILE=1 ncu --profile-from-start off --clock-control none --metrics gpu__time_duration.sum \
      --csv --print-units base build-gpu/aria-bench --model d12 --bf16 --steps 3 > step.csv
  python3 tools/profile/ncu_step_summary.py step.csv [--top 30]

Prints the number of kernels, the sum of their durations (each kernel alone: ncu serialises them),
and the kernels grouped by name, largest total first. The sum against aria-bench's step time is the
time the GPU spends between kernels (launch gaps, host syncs)."""
import argparse
import collections
import csv
import io
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args()
    text = open(a.csv, encoding="utf-8", errors="replace").read()
    start = text.find('"ID"')
    if start < 0:
        sys.exit(f"{a.csv}: no ncu CSV header (\"ID\",...) found")
    rows = list(csv.DictReader(io.StringIO(text[start:])))
    total = collections.defaultdict(float)
    count = collections.Counter()
    for r in rows:
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        name = r["Kernel Name"]
        name = name.split("(")[0] if not name.startswith("void ") else name[5:].split("(")[0]
        ms = float(r["Metric Value"].replace(",", "")) / 1e6  # ns -> ms
        total[name[:90]] += ms
        count[name[:90]] += 1
    n = sum(count.values())
    s = sum(total.values())
    print(f"{n} kernels, {s:.3f} ms of kernel time in the profiled step")
    print(f"{'ms':>9} {'share':>6} {'calls':>6}  kernel")
    for name, ms in sorted(total.items(), key=lambda kv: -kv[1])[: a.top]:
        print(f"{ms:9.3f} {100 * ms / s:5.1f}% {count[name]:6d}  {name}")


if __name__ == "__main__":
    main()
