#!/usr/bin/env python3
"""The cost of driving a continual run from Python instead of the CLI (issue 17: within 2 %).

    PYTHONPATH=build/python python3 tools/python_overhead.py --aria build/aria [--config FILE] [--model DIR]
                                                            [--methods aria,finetune] [--repeats 5]

Runs the same experiment (config, model, methods, seed) alternately as `aria continual` (a process,
timed from start to exit) and from Python (aria.load_gpt2 + load_task + ContinualTrainer + run_sequence
in this process, timed from loading the model to the last evaluation, with a checkpoint at every task
boundary as the CLI writes), checks that both give the same accuracy matrices, and prints the median
wall time of each and the overhead. The CLI's process start and its report files are in its time, the
interpreter's start and `import aria` are not in Python's.
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import aria

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_cli(args, cfg_path, out):
    t0 = time.perf_counter()
    subprocess.run([args.aria, "continual", "--config", cfg_path, "--model", args.model, "--out", out,
                    "--methods", args.methods, "--device", "cpu"], check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    rep = json.loads((pathlib.Path(out) / "report.json").read_text())
    return seconds, {m: rep["methods"][m]["matrix"] for m in args.methods.split(",")}


def run_python(args, cfg, ckpt_dir):
    t0 = time.perf_counter()
    model = aria.load_gpt2(args.model)
    tok = aria.Tokenizer.for_model(args.model)
    t = cfg["train"]
    tasks = [aria.load_task(str(ROOT / cfg["data_dir"] / n) if not os.path.isabs(cfg["data_dir"])
                            else os.path.join(cfg["data_dir"], n), tokenizer=tok, max_seq_len=t["max_seq_len"],
                            max_train=t.get("max_train_examples", 0), max_eval=t.get("max_eval_examples", 0))
             for n in cfg["tasks"]]
    matrices = {}
    for method in args.methods.split(","):
        trainer = aria.ContinualTrainer(model, method, aria=cfg.get("aria"), train=t)
        # The CLI checkpoints each run at every task boundary but the last (its --resume): so does this
        # side, from the evaluation callback, or the comparison would time the CLI's checkpoint writes.
        joint = method == "multitask"

        def checkpoint(rec, trainer=trainer, method=method, joint=joint):
            if not joint and 1 <= rec["row"] < len(tasks):
                trainer.save(os.path.join(ckpt_dir, method))

        trainer.on_evaluation = checkpoint
        matrices[method] = aria.run_sequence(trainer, tasks)["matrix"]
    return time.perf_counter() - t0, matrices


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--aria", required=True)
    p.add_argument("--config", default=str(ROOT / "tests" / "fixtures" / "continual_tiny.json"))
    p.add_argument("--model", default=str(ROOT / "tests" / "fixtures" / "hf_tiny"))
    p.add_argument("--methods", default="aria,finetune")
    p.add_argument("--steps", type=int, default=0, help="override train.steps_per_task (0: the config's)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    cfg = aria.read_config(args.config)
    if args.steps:
        cfg["train"]["steps_per_task"] = args.steps
    cli_t, py_t = [], []
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = os.path.join(tmp, "config.json")
        c = dict(cfg)
        if not os.path.isabs(c["data_dir"]):
            c["data_dir"] = str(ROOT / c["data_dir"])
        pathlib.Path(cfg_path).write_text(json.dumps(c))
        for i in range(args.repeats):
            s, cli_m = run_cli(args, cfg_path, os.path.join(tmp, f"run{i}"))
            cli_t.append(s)
            s, py_m = run_python(args, cfg, os.path.join(tmp, f"py{i}"))
            py_t.append(s)
            if cli_m != py_m:
                sys.exit("aria: error: the Python run's accuracy matrices differ from the CLI's")
            print(f"repeat {i + 1}: cli {cli_t[-1]:.3f} s, python {py_t[-1]:.3f} s", flush=True)
    c, py = statistics.median(cli_t), statistics.median(py_t)
    print(f"median of {args.repeats}: cli {c:.3f} s, python {py:.3f} s, overhead {100 * (py - c) / c:+.2f} % "
          f"(same matrices)")


if __name__ == "__main__":
    main()
