#!/usr/bin/env python3
"""Checks an `aria continual` run folder, or runs `aria continual` end to end and checks it.

  check_report.py RUN_DIR                       validate RUN_DIR/{report.json,config.json,log.txt}
  check_report.py --aria BIN --config FILE      write a tiny random GPT-2 (HF layout) to a temp dir,
                  [--keep]                      run `BIN continual --config FILE --model <it> --out <tmp>`
                                                (then once more with two seeds of finetune and multitask),
                                                validate the run folders and the CLI's error paths

Validation: report.json has exactly {"settings", "scenario", "chance", "statistics", "tasks", "methods"}
(and "gates" from aria run) (issue 15: the scenario named, chance = 1/num_labels per task, 95% bootstrap
intervals "ci95" (over runs and test examples when every run recorded its per-example correctness
"correct", whose fractions must equal the matrix) and "ci95_runs" (over runs), ACC above chance, per
task order "per_order", and every method's paired comparison with finetune "vs_finetune" (pairs:
same seed and task order), whose differences, wins, ties and losses are recomputed from the per-run
values); every method's matrix is T x T
(1 x T for joint training) of accuracies in [0, 1], "before" has T of them; ACC, BWT, forgetting and
FWT equal the spec's formulas recomputed from the matrix (null where not defined); with several
seeds the mean matrix, mean and std and the per-seed values agree with each other. With
--expect-learning (the end-to-end run on the learnable fixture tasks) every method must also have
learned: its accuracy on a task right after training it (joint: after joint training) must beat the
before-training accuracy on average.
Python standard library only.
"""
import argparse
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

TOL = 1e-9


class CheckError(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise CheckError(msg)


# ---- metrics, exactly as ../shared/aria-spec.md "Metrics" ---------------------------------------

def metrics(a, b, joint):
    T = len(a[0])
    last = a[-1]
    acc = sum(last) / T
    if joint or T == 1:
        return {"acc": acc, "bwt": None, "forgetting": None, "fwt": None}
    bwt = sum(last[j] - a[j][j] for j in range(T - 1)) / (T - 1)
    # Only rows after task j was learned (i >= j): the updated spec (Chaudhry et al. 2018).
    forgetting = sum(max(a[i][j] for i in range(j, T - 1)) - last[j] for j in range(T - 1)) / (T - 1)
    fwt = sum(a[j - 1][j] - b[j] for j in range(1, T)) / (T - 1)
    return {"acc": acc, "bwt": bwt, "forgetting": forgetting, "fwt": fwt}


def is_acc(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and 0.0 <= x <= 1.0


def same(x, y, where):
    if y is None:
        need(x is None, f"{where}: expected null, got {x!r}")
    else:
        need(isinstance(x, (int, float)) and abs(x - y) <= TOL, f"{where}: {x!r} but the matrix gives {y!r}")


def check_run(run, T, joint, where):
    a, b = run.get("matrix"), run.get("before")
    rows = 1 if joint else T
    need(isinstance(a, list) and len(a) == rows, f"{where}: matrix must have {rows} rows, got {a!r}")
    for i, row in enumerate(a):
        need(isinstance(row, list) and len(row) == T, f"{where}: matrix row {i} must have {T} entries")
        for j, x in enumerate(row):
            need(is_acc(x), f"{where}: matrix[{i}][{j}] = {x!r} is not an accuracy in [0, 1]")
    need(isinstance(b, list) and len(b) == T, f"{where}: 'before' must have {T} entries")
    for j, x in enumerate(b):
        need(is_acc(x), f"{where}: before[{j}] = {x!r} is not an accuracy in [0, 1]")
    m = metrics(a, b, joint)
    for k, v in m.items():
        need(k in run, f"{where}: missing '{k}'")
        same(run[k], v, f"{where}.{k}")
    if "correct" in run:  # per-example correctness: row 0 before, then the matrix rows
        c = run["correct"]
        need(isinstance(c, list) and len(c) == rows + 1, f"{where}: 'correct' must have {rows + 1} rows")
        for i, row in enumerate(c):
            need(isinstance(row, list) and len(row) == T, f"{where}: correct[{i}] must have {T} entries")
            for j, bits in enumerate(row):
                need(isinstance(bits, str) and bits and set(bits) <= {"0", "1"},
                     f"{where}: correct[{i}][{j}] must be a string of 0/1")
                want = b[j] if i == 0 else a[i - 1][j]
                need(abs(bits.count("1") / len(bits) - want) <= TOL,
                     f"{where}: correct[{i}][{j}] gives {bits.count('1')}/{len(bits)}, the matrix {want}")
    return m


def mean_std(vals):
    if any(v is None for v in vals):
        need(all(v is None for v in vals), "a metric is defined for some seeds only")
        return None, None
    n = len(vals)
    mu = sum(vals) / n
    sd = math.sqrt(sum((v - mu) ** 2 for v in vals) / (n - 1)) if n > 1 else 0.0
    return mu, sd


TOP_KEYS = ["settings", "scenario", "chance", "statistics", "tasks", "methods"]
OPTIONAL_KEYS = ("partial", "stopped_at", "gates")
METRICS = ("acc", "bwt", "forgetting", "fwt")


def check_example_interval(iv, point, where, contains):
    """A 95% interval over runs and test examples: [lo, hi] with lo <= hi; for a mean (ACC, a paired
    difference) it lies around the point estimate."""
    if point is None:
        need(iv is None, f"{where}: undefined metric, expected null, got {iv!r}")
        return
    need(isinstance(iv, list) and len(iv) == 2 and all(isinstance(x, (int, float)) for x in iv) and iv[0] <= iv[1],
         f"{where}: must be [lo, hi] with lo <= hi, got {iv!r}")
    if contains:
        need(iv[0] - TOL <= point <= iv[1] + TOL, f"{where}: {iv!r} does not contain the estimate {point}")


def check_interval(iv, vals, where):
    """A 95% bootstrap interval of the mean of vals (None values dropped): null below 2 values, else
    [lo, hi] inside the values' range and around their mean."""
    vals = [v for v in vals if v is not None]
    if len(vals) < 2:
        need(iv is None, f"{where}: an interval needs 2 seeds, expected null, got {iv!r}")
        return
    need(isinstance(iv, list) and len(iv) == 2 and all(isinstance(x, (int, float)) for x in iv),
         f"{where}: must be [lo, hi], got {iv!r}")
    lo, hi = iv
    mu = sum(vals) / len(vals)
    need(min(vals) - TOL <= lo <= mu + TOL and mu - TOL <= hi <= max(vals) + TOL,
         f"{where}: {iv!r} does not lie within the values' range {min(vals)}..{max(vals)} around the mean {mu}")


def per_seed_metrics(m):
    """{(seed, order): {metric: value}} of a method, one run or several."""
    if "per_seed" in m:
        return {(r["seed"], r.get("order_index", 0)): {k: r[k] for k in METRICS} for r in m["per_seed"]}
    return {(None, 0): {k: m[k] for k in METRICS}}


def check_statistics(rep):
    need(rep["scenario"] == "task-incremental (task id given at test time)",
         f"scenario must name the task-incremental protocol, got {rep['scenario']!r}")
    st = rep["statistics"]
    need(isinstance(st, dict) and isinstance(st.get("resamples"), int) and st["resamples"] >= 1000
         and isinstance(st.get("seed"), int) and st.get("over") in ("runs", "runs and test examples")
         and st.get("over_test_examples") is (st.get("over") == "runs and test examples")
         and isinstance(st.get("note"), str) and "test examples" in st["note"],
         f"statistics must give the resample count, the seed, what is resampled and how: {st!r}")
    examples = st["over_test_examples"]
    T = len(rep["tasks"])
    chance = rep["chance"]
    mean_chance = None
    if chance is not None:
        per = chance.get("per_task")
        need(isinstance(per, list) and len(per) == T and all(isinstance(x, (int, float)) and 0 < x <= 0.5 for x in per),
             f"chance.per_task must hold 1/num_labels for each of the {T} tasks, got {per!r}")
        need(all(abs(1 / x - round(1 / x)) < 1e-6 for x in per), f"chance.per_task {per!r} is not 1/num_labels")
        mean_chance = sum(per) / T
        same(chance.get("mean"), mean_chance, "chance.mean")
    methods = rep["methods"]
    base = per_seed_metrics(methods["finetune"]) if "finetune" in methods else None
    for name, m in methods.items():
        where = f"methods.{name}"
        ps = per_seed_metrics(m)
        need(isinstance(m.get("ci95"), dict) and list(m["ci95"]) == list(METRICS), f"{where}.ci95 must give {METRICS}")
        need(isinstance(m.get("ci95_runs"), dict) and list(m["ci95_runs"]) == list(METRICS),
             f"{where}.ci95_runs must give {METRICS}")
        for k in METRICS:
            vals = [v[k] for v in ps.values()] if "per_seed" in m else []
            check_interval(m["ci95_runs"][k], vals, f"{where}.ci95_runs.{k}")
            if examples:
                check_example_interval(m["ci95"][k], m[k], f"{where}.ci95.{k}", k == "acc")
            else:
                check_interval(m["ci95"][k], vals, f"{where}.ci95.{k}")
        if "per_order" in m:
            for o in m["per_order"]:
                runs = [v for (s, oi), v in ps.items() if oi == o["order_index"]]
                need(o["runs"] == len(runs) and len(o["order"]) == T and sorted(o["order"]) == sorted(rep["tasks"]),
                     f"{where}.per_order[{o['order_index']}]: runs or order wrong")
                same(o["acc"], sum(r["acc"] for r in runs) / len(runs), f"{where}.per_order.acc")
        same(m.get("acc_above_chance"), None if mean_chance is None else m["acc"] - mean_chance,
             f"{where}.acc_above_chance")
        if base is None or name == "finetune":
            need("vs_finetune" not in m, f"{where}: vs_finetune without finetune, or against itself")
            continue
        v = m.get("vs_finetune")
        need(isinstance(v, dict), f"{where}.vs_finetune missing")
        seeds = [s for s in ps if s in base]
        need(v.get("pairs") == len(seeds), f"{where}.vs_finetune.pairs = {v.get('pairs')!r}, {len(seeds)} common runs")
        for k, higher in (("acc", True), ("forgetting", False)):
            d = [ps[s][k] - base[s][k] for s in seeds if ps[s][k] is not None and base[s][k] is not None]
            c = v.get(k)
            if not d:
                need(c is None, f"{where}.vs_finetune.{k}: no defined pairs, expected null")
                continue
            need(isinstance(c, dict), f"{where}.vs_finetune.{k} missing")
            same(c.get("diff"), sum(d) / len(d), f"{where}.vs_finetune.{k}.diff")
            wins = sum(1 for x in d if (x > 0 if higher else x < 0))
            ties = sum(1 for x in d if x == 0)
            need((c.get("wins"), c.get("ties"), c.get("losses")) == (wins, ties, len(d) - wins - ties),
                 f"{where}.vs_finetune.{k}: wins/ties/losses {c.get('wins')}/{c.get('ties')}/{c.get('losses')}, "
                 f"the per-seed values give {wins}/{ties}/{len(d) - wins - ties}")
            if examples:
                check_example_interval(c.get("ci95"), sum(d) / len(d), f"{where}.vs_finetune.{k}.ci95", k == "acc")
            else:
                check_interval(c.get("ci95"), d, f"{where}.vs_finetune.{k}.ci95")


def check_report(rep):
    need(isinstance(rep, dict) and [k for k in rep if k not in OPTIONAL_KEYS] == TOP_KEYS,
         f"report.json must hold exactly {', '.join(TOP_KEYS)} (in that order), got {list(rep)}")
    need(isinstance(rep["settings"], dict), "settings must be an object")
    tasks = rep["tasks"]
    need(isinstance(tasks, list) and tasks and all(isinstance(t, str) for t in tasks), "tasks must be names")
    T = len(tasks)
    methods = rep["methods"]
    need(isinstance(methods, dict) and methods, "methods must be a non-empty object")
    out = {}
    for name, m in methods.items():
        where = f"methods.{name}"
        need(isinstance(m.get("joint"), bool), f"{where}.joint must be true or false")
        joint = m["joint"]
        if joint:
            need(isinstance(m.get("note"), str) and m["note"], f"{where}: a joint method must say why metrics are null")
        if "per_seed" not in m:
            out[name] = check_run(m, T, joint, where)
            continue
        per = m["per_seed"]
        need(isinstance(per, list) and len(per) >= 2 and m.get("num_seeds") == len(per),
             f"{where}: per_seed must list num_seeds >= 2 runs")
        ms = [check_run(r, T, joint, f"{where}.per_seed[{k}]") for k, r in enumerate(per)]
        need(len({(r.get("seed"), r.get("order_index", 0)) for r in per}) == len(per),
             f"{where}: (seed, task order) must differ between runs")
        rows = 1 if joint else T
        first = [r for r in per if r.get("order_index", 0) == 0]  # the mean matrix: the listed order's runs
        for i in range(rows):
            for j in range(T):
                mu = sum(r["matrix"][i][j] for r in first) / len(first)
                same(m["matrix"][i][j], mu, f"{where}.matrix[{i}][{j}] (mean over the listed order's runs)")
        for k in ("acc", "bwt", "forgetting", "fwt"):
            mu, sd = mean_std([x[k] for x in ms])
            same(m[k], mu, f"{where}.{k}")
            same(m["mean"][k], mu, f"{where}.mean.{k}")
            same(m["std"][k], sd, f"{where}.std.{k}")
        out[name] = {k: m[k] for k in ("acc", "bwt", "forgetting", "fwt")}
    check_statistics(rep)
    return out


def check_learning(rep):
    for name, m in rep["methods"].items():
        a, b = m["matrix"], m["before"]
        trained = a[0] if m["joint"] else [a[i][i] for i in range(len(b))]
        need(sum(trained) > sum(b), f"methods.{name}: no learning: accuracies after training {trained} vs before {b}")


def check_time_split(rep, log):
    """Every run's time_split (train, fisher, eval, host seconds) adds up to its seconds; the method's
    is the sum over its runs; training takes time; log.txt prints the table."""
    parts = ("train_seconds", "fisher_seconds", "eval_seconds", "host_seconds")
    for name, m in rep["methods"].items():
        where = f"methods.{name}.time_split"
        runs = m.get("per_seed", [m])
        total = {p: 0.0 for p in parts}
        for r in runs:
            t = r.get("time_split")
            need(isinstance(t, dict) and sorted(t) == sorted(parts), f"{where}: must hold {parts}, got {t!r}")
            need(all(isinstance(t[p], (int, float)) and t[p] >= 0 for p in parts), f"{where}: negative or not numbers: {t}")
            need(abs(sum(t.values()) - r["seconds"]) <= 1e-6 * max(1.0, r["seconds"]),
                 f"{where}: parts sum to {sum(t.values())}, the run took {r['seconds']} s")
            need(t["train_seconds"] > 0 and t["eval_seconds"] > 0, f"{where}: no training or evaluation time: {t}")
            for p in parts:
                total[p] += t[p]
        for p in parts:
            same(m["time_split"][p], total[p], f"{where}.{p} (the sum over runs)")
        if "fisher_estimator" in m.get("info", {}):  # consolidation computes a Fisher
            need(m["time_split"]["fisher_seconds"] > 0, f"{where}: a consolidating method with no Fisher time")
    need("time (seconds" in log and "Fisher" in log, "log.txt lacks the time table")


def check_run_dir(d):
    with open(os.path.join(d, "report.json"), encoding="utf-8") as f:
        rep = json.load(f)
    ms = check_report(rep)
    with open(os.path.join(d, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    need(cfg.get("tasks") == rep["tasks"], "config.json's tasks differ from the report's")
    need(sorted(cfg.get("methods", [])) == sorted(rep["methods"]), "config.json's methods differ from the report's")
    with open(os.path.join(d, "log.txt"), encoding="utf-8") as f:
        log = f.read()
    need("ACC" in log and "forgetting" in log, "log.txt lacks the metrics table")
    need("\r" not in log, "log.txt holds terminal redraws")
    check_time_split(rep, log)
    # tables/*.csv hold report.json's numbers; report.html (aria run) has the charts (tests/check_tables.py)
    from check_tables import check_charts, check_tables  # imported here: check_tables imports this module
    steps = check_tables(d, rep)
    if os.path.isfile(os.path.join(d, "report.html")):
        with open(os.path.join(d, "report.html"), encoding="utf-8") as f:
            check_charts(f.read(), rep, steps)
    return rep, ms


# ---- a tiny random GPT-2 in Hugging Face layout --------------------------------------------------

def write_tiny_gpt2(d, n_layer=1, n_embd=16, n_head=2, n_positions=64, vocab=50257, seed=1):
    rng = random.Random(seed)
    C = n_embd
    shapes = [("wte.weight", [vocab, C]), ("wpe.weight", [n_positions, C])]
    for l in range(n_layer):
        p = f"h.{l}."
        shapes += [(p + "ln_1.weight", [C]), (p + "ln_1.bias", [C]),
                   (p + "attn.c_attn.weight", [C, 3 * C]), (p + "attn.c_attn.bias", [3 * C]),
                   (p + "attn.c_proj.weight", [C, C]), (p + "attn.c_proj.bias", [C]),
                   (p + "ln_2.weight", [C]), (p + "ln_2.bias", [C]),
                   (p + "mlp.c_fc.weight", [C, 4 * C]), (p + "mlp.c_fc.bias", [4 * C]),
                   (p + "mlp.c_proj.weight", [4 * C, C]), (p + "mlp.c_proj.bias", [C])]
    shapes += [("ln_f.weight", [C]), ("ln_f.bias", [C])]
    header, blobs, off = {}, [], 0
    for name, shape in shapes:
        n = math.prod(shape)
        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
            vals = [1.0] * n
        elif name.endswith(".bias"):
            vals = [0.0] * n
        else:
            vals = [rng.gauss(0.0, 0.02) for _ in range(n)]
        blob = struct.pack(f"<{n}f", *vals)
        header["transformer." + name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for blob in blobs:
            f.write(blob)
    cfg = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "activation_function": "gelu_new",
           "vocab_size": vocab, "n_positions": n_positions, "n_ctx": n_positions, "n_embd": n_embd,
           "n_layer": n_layer, "n_head": n_head, "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


# ---- end to end ----------------------------------------------------------------------------------

def run(cmd):
    print("$ " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


def expect_failure(cmd, want, code=1):
    """code: 1 for a runtime error, 2 for a usage error (a bad flag, value or combination of flags)."""
    rc, out = run(cmd)
    need(rc == code, f"expected exit code {code}, got {rc}:\n{out}")
    need(want in out, f"expected the message to contain {want!r}, got:\n{out}")


def end_to_end(args):
    tmp = tempfile.mkdtemp(prefix="aria_continual_")
    try:
        model = os.path.join(tmp, "model")
        write_tiny_gpt2(model)
        out = os.path.join(tmp, "run")
        base = [args.aria, "continual", "--config", args.config, "--model", model, "--device", "cpu"]
        for run_dir, extra in ((out, []), (os.path.join(tmp, "run_seeds"), ["--methods", "finetune,multitask", "--seeds", "2"])):
            rc, text = run(base + ["--out", run_dir] + extra)
            print(text)
            need(rc == 0, f"aria continual failed with exit code {rc}")
            rep, ms = check_run_dir(run_dir)
            check_learning(rep)
            for name, m in ms.items():
                print(f"ok {name}: " + ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} null" for k, v in m.items()))
        need(all("per_seed" in m for m in rep["methods"].values()), "the two-seed run lacks per_seed values")

        # Error paths: clear message, exit code 2 for usage errors and 1 for runtime errors.
        expect_failure([args.aria, "continual", "--config", args.config, "--out", out, "--bogus", "1"],
                       "unknown flag --bogus", code=2)
        expect_failure([args.aria, "continual", "--out", out], "--config is required", code=2)
        expect_failure([args.aria, "continual", "--config", args.config, "--out", os.path.join(tmp, "c")],
                       "cache:default is created by `aria run`; pass an HF directory")
        expect_failure([args.aria, "continual", "--config", args.config, "--model", model, "--out", out,
                        "--methods", "aria,sgd"], "sgd", code=2)
        bad = os.path.join(tmp, "bad.json")
        with open(args.config, encoding="utf-8") as f:
            cfg = json.load(f)
        cfg.setdefault("aria", {})["spc_lamda"] = 1
        with open(bad, "w") as f:
            json.dump(cfg, f)
        expect_failure([args.aria, "continual", "--config", bad, "--model", model, "--out", out], "aria.spc_lamda")
        # Mixed precision is CUDA-only: asking for it on the CPU is a clear error, not a float32 run.
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write("a small corpus for a refused run. " * 50)
        expect_failure([args.aria, "pretrain", "--corpus", corpus, "--model", model, "--out", os.path.join(tmp, "p"),
                        "--bf16", "--device", "cpu"], "--bf16 needs a CUDA device")
        print("check_report: all checks passed")
    finally:
        if args.keep:
            print("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", nargs="?", help="an `aria continual` output folder to validate")
    ap.add_argument("--aria", help="the aria binary: run end to end")
    ap.add_argument("--config", help="experiment config for the end-to-end run")
    ap.add_argument("--expect-learning", action="store_true", help="RUN_DIR: every method must have learned")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--write-tiny-model", metavar="DIR", help="only write the tiny random GPT-2 to DIR")
    args = ap.parse_args()
    try:
        if args.write_tiny_model:
            write_tiny_gpt2(args.write_tiny_model)
        elif args.aria:
            need(args.config, "--config is required with --aria")
            end_to_end(args)
        elif args.run_dir:
            rep, ms = check_run_dir(args.run_dir)
            if args.expect_learning:
                check_learning(rep)
            print(f"check_report: {args.run_dir} is valid ({len(ms)} methods)")
        else:
            ap.error("give RUN_DIR or --aria BIN --config FILE")
    except CheckError as e:
        print(f"check_report: FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
