#!/usr/bin/env python3
"""End-to-end test of `aria run --quick` on the real tasks in third_party/data (tools/setup.sh).

  check_run.py --aria BIN [--data DIR] [--keep]

Runs `BIN run --quick --device cpu --out <tmp>/run` with ARIA_CACHE=<tmp>/cache (so cache:quick is
pretrained by this run), then checks the run folder:
  - report.json, config.json, log.txt as tests/check_report.py validates them (shapes, accuracies in
    [0, 1], ACC/BWT/forgetting/FWT recomputed from the matrices), every method of the default present;
  - the numbers are real: every accuracy is a count of correct examples over the task's evaluation
    set (k / n for an integer k), the matrices are not constant, and the model came from the cache;
  - report.html: a complete page with one section per method, the expected SVG charts, the gate
    histograms of every layer, no script and no network reference;
  - gates.json: one histogram per layer of the model, counts summing to its token count;
  - checkpoints/<method>-seed<N>/ for every method, not empty.
A second, smaller run must reuse the cached model, and bad input must fail with exit code 1.
Exit code 77 (ctest: skipped) when the data is missing. Python standard library only.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_report import CheckError, check_run_dir, need  # noqa: E402

METHODS = ["aria", "finetune", "ewc", "adapters", "multitask"]


def run(cmd, env):
    print("$ " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    return p.returncode, p.stdout


def check_real_numbers(rep):
    settings = rep["settings"]
    cfg = settings.get("config", {})
    split = cfg.get("train", {}).get("eval_split", "test")
    cap = cfg.get("train", {}).get("max_eval_examples", 0)
    sizes = {t["name"]: t[split] for t in settings.get("task_data", [])}
    need(set(sizes) == set(rep["tasks"]), "settings.task_data must list every task with its split sizes")
    n = [min(sizes[t], cap) if cap else sizes[t] for t in rep["tasks"]]
    values = []
    for name, m in rep["methods"].items():
        runs = m.get("per_seed", [m])
        for r in runs:
            for row in r["matrix"] + [r["before"]]:
                for j, x in enumerate(row):
                    k = x * n[j]
                    need(abs(k - round(k)) < 1e-6,
                         f"methods.{name}: accuracy {x!r} on {rep['tasks'][j]} is not a count over {n[j]} examples")
                    values.append(x)
    need(len(set(round(v, 9) for v in values)) > 3, "the accuracies are (nearly) all equal: not a real run")


def check_html(path, rep, layers):
    with open(path, encoding="utf-8") as f:
        html = f.read()
    need(html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>"), "report.html is not a complete page")
    for bad in ("http", "<script", " src=", "<link"):
        need(bad not in html, f"report.html contains {bad!r}: it must render offline")
    for m in rep["methods"]:
        need(html.count(f'id="method-{m}"') == 1, f"report.html lacks the section of {m}")
    # ACC bars and BWT/forgetting bars; per method the heat map, the accuracy lines and the training loss;
    # one gate histogram per layer after the last task, and again after each task (gates.json per_task)
    with open(os.path.join(os.path.dirname(path), "gates.json"), encoding="utf-8") as f:
        per_task = [t for t in json.load(f).get("per_task", []) if t["method"] == "aria"]
    need(len(per_task) == len(rep["tasks"]), f"gates.json: {len(per_task)} per-task entries for aria, "
         f"expected one per task ({len(rep['tasks'])})")
    for t in per_task:
        d = t["diagnosis"]
        need(isinstance(d["collapsed"], bool) and len(d["layers"]) == layers, f"gates.json: diagnosis of {t['task']}")
        need(rep["gates"]["aria"]["per_task"][t["task_index"]]["collapsed"] == d["collapsed"],
             "report.json gates disagree with gates.json")
    want = 2 + 3 * len(rep["methods"]) + layers * (1 + len(per_task))
    need(html.count("<svg") == want and html.count("</svg>") == want,
         f"report.html has {html.count('<svg')} charts, expected {want}")
    need('id="gates-aria"' in html, "report.html lacks the gate histograms")


def check_gates(path, n_layer):
    with open(path, encoding="utf-8") as f:
        g = json.load(f)
    need(g.get("method") == "aria" and len(g.get("layers", [])) == n_layer,
         f"gates.json must hold aria's {n_layer} layers")
    for layer in g["layers"]:
        need(sum(layer["counts"]) == layer["tokens"] > 0, f"gates.json layer {layer['layer']}: counts do not add up")
        need(0.0 <= layer["mean"] <= 1.0, f"gates.json layer {layer['layer']}: mean outside [0, 1]")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aria", required=True, help="the aria binary")
    ap.add_argument("--data", default="third_party/data", help="the data directory (tools/setup.sh)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    if not os.path.isfile(os.path.join(args.data, "manifest.json")):
        print(f"check_run: SKIPPED: no data at {args.data} (run tools/setup.sh)")
        return 77
    tmp = tempfile.mkdtemp(prefix="aria_run_")
    env = dict(os.environ, ARIA_CACHE=os.path.join(tmp, "cache"))
    try:
        out = os.path.join(tmp, "run")
        rc, text = run([args.aria, "run", "--quick", "--device", "cpu", "--data", args.data, "--out", out], env)
        print(text)
        need(rc == 0, f"aria run --quick failed with exit code {rc}")
        rep, ms = check_run_dir(out)
        need(list(rep["methods"]) == METHODS, f"expected the methods {METHODS}, got {list(rep['methods'])}")
        need(len(rep["tasks"]) >= 4, "the default sequence has at least four tasks")
        src = rep["settings"]["model"].get("source", {})
        need(src.get("source") == "cache:quick" and src.get("built_now") is True,
             f"the model must be cache:quick, pretrained by this run: {src}")
        n_layer = rep["settings"]["model"]["n_layer"]
        check_real_numbers(rep)
        check_html(os.path.join(out, "report.html"), rep, n_layer)
        check_gates(os.path.join(out, "gates.json"), n_layer)
        for m in METHODS:
            d = os.path.join(out, "checkpoints", f"{m}-seed{rep['settings']['config']['train']['seed']}")
            need(os.path.isdir(d) and os.listdir(d), f"missing checkpoint {d}")
        need("\r" not in open(os.path.join(out, "log.txt"), encoding="utf-8").read(), "log.txt holds redraws")
        for name, m in ms.items():
            print(f"ok {name}: " + ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} null" for k, v in m.items()))

        # A second run reuses the cached model.
        out2 = os.path.join(tmp, "run2")
        rc, text = run([args.aria, "run", "--quick", "--device", "cpu", "--data", args.data, "--out", out2,
                        "--methods", "finetune", "--tasks", ",".join(rep["tasks"][:2]), "--steps-per-task", "2"], env)
        print(text)
        need(rc == 0, f"the second run failed with exit code {rc}")
        rep2, _ = check_run_dir(out2)
        need(rep2["settings"]["model"]["source"].get("built_now") is False, "the second run did not reuse the cache")
        need("pretraining cache:quick" not in text, "the second run pretrained again")

        # Bad input: a clear message; exit code 1 for a runtime error, 2 for a usage error.
        for extra, want, code in ((["--tasks", "no_such_task"], "no_such_task", 1),
                                  (["--methods", "aria,sgd"], "sgd", 2),
                                  (["--model", os.path.join(tmp, "nowhere")], "nowhere", 1),
                                  (["--seeds", "0"], "--seeds", 2),
                                  (["--num-seeds", "0"], "--num-seeds", 2),
                                  (["--set", "train.lrr=1"], "train.lrr", 2)):
            rc, text = run([args.aria, "run", "--quick", "--device", "cpu", "--data", args.data,
                            "--out", os.path.join(tmp, "bad")] + extra, env)
            need(rc == code and want in text, f"expected exit code {code} mentioning {want!r}, got {rc}:\n{text}")
        print("check_run: all checks passed")
    except CheckError as e:
        print(f"check_run: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
