#!/usr/bin/env python3
"""The CSV tables and the charts of a run folder (issue 20, "Report"), against report.json and metrics.jsonl.

  check_tables.py RUN_DIR

  - RUN_DIR/tables/*.csv hold the same numbers as report.json (each cell parses to the very double of
    its JSON field; null is an empty cell) and loss_curves.csv every report point of metrics.jsonl;
  - report.html (when present) has the charts: BWT/forgetting bars with interval whiskers, one
    training-loss chart per method, chance lines, ± sd bands where several seeds ran, the per-order
    table (when a method ran in several task orders), the head-only transfer of every probed method,
    and the line with version, git commit, device and command line.
check_report.check_run_dir calls check_tables on every run folder the CLI tests validate.
Python standard library only.
"""
import csv
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_report import CheckError, need  # noqa: E402

TABLES = ["metrics", "runs", "accuracy_matrix", "vs_finetune", "chance", "loss_curves", "per_order", "head_transfer"]
METRICS = ["acc", "bwt", "forgetting", "fwt"]


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    need(rows, f"{path} is empty (no header)")
    return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


def same(cell, value, where):
    """A CSV cell against its JSON value: exactly the same double, or empty for null/missing/NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        need(cell == "", f"{where}: expected an empty cell for null, got {cell!r}")
        return
    if isinstance(value, bool):
        need(cell == ("true" if value else "false"), f"{where}: {cell!r} != {value!r}")
        return
    if isinstance(value, str):
        need(cell == value, f"{where}: {cell!r} != {value!r}")
        return
    need(cell != "" and float(cell) == float(value), f"{where}: the CSV holds {cell!r}, report.json {value!r}")


def runs_of(m):
    return m["per_seed"] if m.get("per_seed") else [m]


def check_tables(d, rep=None):
    if rep is None:
        with open(os.path.join(d, "report.json"), encoding="utf-8") as f:
            rep = json.load(f)
    td = os.path.join(d, "tables")
    for t in TABLES:
        need(os.path.isfile(os.path.join(td, t + ".csv")), f"missing {t}.csv in {td}")
    methods = rep["methods"]
    seed0 = rep.get("settings", {}).get("config", {}).get("train", {}).get("seed")

    _, rows = read_csv(os.path.join(td, "metrics.csv"))
    need([r["method"] for r in rows] == list(methods), "metrics.csv: not one row per method, in order")
    for r in rows:
        m = methods[r["method"]]
        w = f"metrics.csv {r['method']}"
        same(r["joint"], m.get("joint", False), w + " joint")
        same(r["runs"], m.get("num_seeds", 1), w + " runs")
        for k in METRICS:
            same(r[k], m.get(k), f"{w} {k}")
            same(r[k + "_std"], (m.get("std") or {}).get(k), f"{w} {k}_std")
            ci = (m.get("ci95") or {}).get(k)
            same(r[k + "_ci95_lo"], ci[0] if ci else None, f"{w} {k}_ci95_lo")
            same(r[k + "_ci95_hi"], ci[1] if ci else None, f"{w} {k}_ci95_hi")
        same(r["acc_above_chance"], m.get("acc_above_chance"), w + " acc_above_chance")
        same(r["seconds"], m.get("seconds"), w + " seconds")

    _, rows = read_csv(os.path.join(td, "runs.csv"))
    want = [(name, run) for name, m in methods.items() for run in runs_of(m)]
    need(len(rows) == len(want), f"runs.csv has {len(rows)} rows for {len(want)} runs")
    for r, (name, run) in zip(rows, want):
        need(r["method"] == name, f"runs.csv: {r['method']} where {name} was expected")
        same(r["seed"], run.get("seed", seed0), f"runs.csv {name} seed")
        for k in METRICS + ["seconds"]:
            same(r[k], run.get(k), f"runs.csv {name} seed {r['seed']} {k}")

    _, rows = read_csv(os.path.join(td, "accuracy_matrix.csv"))
    expect = []
    for name, m in methods.items():
        groups = ([("mean", m, rep["tasks"])] if m.get("per_seed") else []) + \
                 [(run.get("seed", seed0), run, run.get("order") or rep["tasks"]) for run in runs_of(m)]
        for seed, run, order in groups:
            for i, row in enumerate([run["before"]] + run["matrix"]):
                for j, task in enumerate(order):
                    expect.append((name, str(seed), str(i), task, row[j]))
    need(len(rows) == len(expect), f"accuracy_matrix.csv has {len(rows)} rows, report.json {len(expect)} cells")
    for r, (name, seed, i, task, value) in zip(rows, expect):
        need((r["method"], r["seed"], r["row"], r["task"]) == (name, seed, i, task),
             f"accuracy_matrix.csv: row {r} where {(name, seed, i, task)} was expected")
        same(r["accuracy"], value, f"accuracy_matrix.csv {name} seed {seed} row {i} {task}")

    _, rows = read_csv(os.path.join(td, "vs_finetune.csv"))
    expect = [(name, k, v) for name, m in methods.items() if isinstance(m.get("vs_finetune"), dict)
              for k, v in m["vs_finetune"].items() if isinstance(v, dict)]
    need(len(rows) == len(expect), f"vs_finetune.csv has {len(rows)} rows, report.json {len(expect)} comparisons")
    for r, (name, k, v) in zip(rows, expect):
        need((r["method"], r["metric"]) == (name, k), f"vs_finetune.csv: {r} where {(name, k)} was expected")
        for col in ("diff", "wins", "ties", "losses"):
            same(r[col], v.get(col), f"vs_finetune.csv {name} {k} {col}")
        ci = v.get("ci95")
        same(r["ci95_lo"], ci[0] if ci else None, f"vs_finetune.csv {name} {k} ci95_lo")
        same(r["ci95_hi"], ci[1] if ci else None, f"vs_finetune.csv {name} {k} ci95_hi")

    _, rows = read_csv(os.path.join(td, "chance.csv"))
    per_task = (rep.get("chance") or {}).get("per_task") or []
    need([r["task"] for r in rows] == rep["tasks"][:len(per_task)], "chance.csv: not one row per task")
    for r, c in zip(rows, per_task):
        same(r["chance"], c, f"chance.csv {r['task']}")

    _, rows = read_csv(os.path.join(td, "per_order.csv"))
    expect = [(name, o) for name, m in methods.items() for o in (m.get("per_order") or [])]
    need(len(rows) == len(expect), f"per_order.csv has {len(rows)} rows, report.json {len(expect)} orders")
    for r, (name, o) in zip(rows, expect):
        w = f"per_order.csv {name} order {o['order_index']}"
        need(r["method"] == name and r["order"] == " > ".join(o["order"]), f"{w}: {r}")
        for col in ["order_index", "runs"] + METRICS:
            same(r[col], o.get(col), f"{w} {col}")

    _, rows = read_csv(os.path.join(td, "head_transfer.csv"))
    expect = []
    for name, m in methods.items():
        for run in runs_of(m):
            h = run.get("head_only")
            if not h:
                continue
            order = run.get("order") or rep["tasks"]
            diffs = []
            for j in range(1, len(h["initial_trunk"])):
                a, b = h["initial_trunk"][j], h["current_trunk"][j]
                diffs.append(None if a is None or b is None else b - a)
                expect.append((name, run.get("seed", seed0), j, order[j], a, b, diffs[-1]))
            if run.get("head_transfer") is not None:  # the run's transfer: the mean over its positions
                need(None not in diffs and abs(sum(diffs) / len(diffs) - run["head_transfer"]) < 1e-12,
                     f"{name} seed {run.get('seed', seed0)}: head_transfer {run['head_transfer']} is not the "
                     f"mean of its head-only differences {diffs}")
    need(len(rows) == len(expect), f"head_transfer.csv has {len(rows)} rows, report.json {len(expect)} probes")
    for r, (name, seed, j, task, a, b, diff) in zip(rows, expect):
        w = f"head_transfer.csv {name} seed {seed} position {j}"
        need((r["method"], r["position"], r["task"]) == (name, str(j), task), f"{w}: {r}")
        same(r["seed"], seed, w + " seed")
        same(r["initial_trunk"], a, w + " initial_trunk")
        same(r["current_trunk"], b, w + " current_trunk")
        same(r["transfer"], diff, w + " transfer")

    _, rows = read_csv(os.path.join(td, "loss_curves.csv"))
    steps = []
    mj = os.path.join(d, "metrics.jsonl")
    if os.path.isfile(mj):
        with open(mj, encoding="utf-8") as f:
            steps = [x for x in (json.loads(ln) for ln in f if ln.strip()) if x.get("type") == "step"]
    need(len(rows) == len(steps), f"loss_curves.csv has {len(rows)} rows, metrics.jsonl {len(steps)} report points")
    for r, s in zip(rows, steps):
        need((r["method"], r["task"]) == (s["method"], s["task"]), f"loss_curves.csv: {r} for {s}")
        for col in ("seed", "step", "task_step", "loss", "ce", "plasticity", "spc", "accuracy", "lr", "grad_norm"):
            same(r[col], s.get(col), f"loss_curves.csv {s['method']} step {s['step']} {col}")
    for name in methods:
        need(any(s["method"] == name for s in steps) == any(r["method"] == name for r in rows),
             f"loss_curves.csv: {name}'s curve is missing")
    return steps


def check_charts(html, rep, steps):
    """report.html's charts drawn from report.json and metrics.jsonl."""
    methods = rep["methods"]
    sequential = [n for n, m in methods.items() if not m.get("joint") and m.get("bwt") is not None]
    if sequential:
        need('id="forgetting"' in html and 'aria-label="BWT and forgetting per method' in html,
             "report.html lacks the BWT/forgetting bars")
        need(any((m.get("ci95") or {}).get("bwt") or (m.get("std") or {}).get("bwt") for m in methods.values()) <=
             ('class="err"' in html), "report.html: the BWT/forgetting bars lack their interval whiskers")
    for name in methods:
        has = any(s["method"] == name for s in steps)
        need((f'aria-label="{name}: training loss per task"' in html) == has,
             f"report.html: the training-loss chart of {name} is {'missing' if has else 'drawn without data'}")
    if (rep.get("chance") or {}).get("per_task"):
        need(html.count('class="chance"') >= 1 + len(methods), "report.html lacks the chance lines")
    for name, m in methods.items():
        seeds = [r for r in m.get("per_seed", []) if r.get("order_index", 0) == 0]
        if len(seeds) >= 2:
            need('class="band"' in html, f"report.html: {name} ran {len(seeds)} seeds but has no error bands")
    if any(m.get("per_order") for m in methods.values()):
        need('id="orders"' in html, "report.html lacks the per-order table (report.json has per_order)")
    for name, m in methods.items():
        if any(r.get("head_only") for r in runs_of(m)):
            need('id="head-transfer"' in html and f"<tr><td>{name}</td>" in html.split('id="head-transfer"')[1],
                 f"report.html lacks {name}'s head-only transfer")
    settings = rep.get("settings", {})
    for k in ("version", "device", "command_line"):
        if settings.get(k):
            need(html.count(settings[k].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                            .replace('"', "&quot;").replace("'", "&#39;")) >= 1,
                 f"report.html does not show settings.{k} = {settings[k]!r}")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    try:
        steps = check_tables(sys.argv[1])
        html = os.path.join(sys.argv[1], "report.html")
        if os.path.isfile(html):
            with open(os.path.join(sys.argv[1], "report.json"), encoding="utf-8") as f:
                rep = json.load(f)
            with open(html, encoding="utf-8") as f:
                check_charts(f.read(), rep, steps)
        print(f"check_tables: {sys.argv[1]}: the tables hold report.json's numbers")
    except CheckError as e:
        print(f"check_tables: FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
