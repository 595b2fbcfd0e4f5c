#!/usr/bin/env python3
"""aria continual on data as people have it (issue 20, "Data in"): a CSV task with string labels,
no labels.json and no validation split, and a JSONL task with other keys (--text-field /
--label-field, extra keys). The run's report.json and log.txt record the labels and the carved
validation split. A task with a bad line is refused before the run folder is created, with exit
code 1; --set and --num-seeds reach the config; usage errors exit 2."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from check_report import CheckError, need, write_tiny_gpt2  # noqa: E402


def run(cmd):
    print("$ " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aria", required=True)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="aria_data_cli_")
    try:
        model = os.path.join(tmp, "model")
        write_tiny_gpt2(model)
        data = os.path.join(tmp, "data")
        # A CSV task: BOM, CRLF, quoted fields with commas, quotes and newlines, string labels, an
        # extra column, no labels.json, no validation split.
        rows = ["\ufeffid,text,label,source"]
        for i in range(20):
            lab = "rain" if i % 2 else "sun"
            rows.append(f'{i},"day {i}, ""{lab}""\nall day",{lab},x')
        write(os.path.join(data, "weather_csv", "train.csv"), "\r\n".join(rows) + "\r\n")
        write(os.path.join(data, "weather_csv", "test.csv"), "\r\n".join(rows[:7]) + "\r\n")
        # A JSONL task with other keys.
        lines = [json.dumps({"idx": i, "sentence": f"animal {i}", "y": i % 3, "meta": {"k": 1}}) for i in range(15)]
        for split in ("train", "validation", "test"):
            write(os.path.join(data, "animal_hf", f"{split}.jsonl"), "\n".join(lines) + "\n")
        # animal_hf uses other keys: a config per task is not possible, so it runs alone below.
        cfg = os.path.join(tmp, "cfg.json")
        with open(cfg, "w") as f:
            json.dump({"model": model, "data_dir": data, "tasks": ["weather_csv"], "methods": ["finetune"],
                       "device": "cpu", "train": {"batch_size": 4, "steps_per_task": 2, "max_seq_len": 32}}, f)

        out = os.path.join(tmp, "run1")
        rc, so, se = run([a.aria, "continual", "--config", cfg, "--out", out, "--set", "data.validation_fraction=0.25",
                          "--set", "data.split_seed=11", "--seed", "5"])
        need(rc == 0, f"the CSV run failed ({rc}):\n{so}\n{se}")
        rep = json.load(open(os.path.join(out, "report.json")))
        td = rep["settings"]["task_data"][0]
        need(td["labels"] == ["rain", "sun"], f"labels not collected in sorted order: {td['labels']}")
        need("collected" in td["labels_source"], td["labels_source"])
        need(td["validation"] == 5 and td["train"] == 15, f"validation not carved (25% of 20): {td}")
        need("carved from train: 5 of 20" in td["validation_source"] and "split_seed 11" in td["validation_source"],
             td["validation_source"])
        need(rep["settings"]["config"]["data"]["split_seed"] == 11, "--set did not reach the config")
        need(rep["settings"]["config"]["train"]["seed"] == 5, "--seed did not reach the config")
        log = open(os.path.join(out, "log.txt")).read()
        need("carved from train" in log and "collected from the data" in log, "log.txt does not record the data")
        print("ok: CSV task with string labels and a carved validation split")

        cfg2 = os.path.join(tmp, "cfg2.json")
        with open(cfg2, "w") as f:
            json.dump({"model": model, "data_dir": data, "tasks": ["animal_hf"], "methods": ["finetune"],
                       "device": "cpu", "train": {"batch_size": 4, "steps_per_task": 2, "max_seq_len": 32}}, f)
        out = os.path.join(tmp, "run2")
        rc, so, se = run([a.aria, "continual", "--config", cfg2, "--out", out, "--text-field", "sentence",
                          "--label-field", "y", "--num-seeds", "2"])
        need(rc == 0, f"the JSONL run with other keys failed ({rc}):\n{so}\n{se}")
        rep = json.load(open(os.path.join(out, "report.json")))
        need(rep["settings"]["task_data"][0]["labels"] == ["0", "1", "2"], "integer labels without labels.json")
        need(rep["settings"]["config"]["seeds"] == 2, "--num-seeds did not reach the config")
        print("ok: JSONL with --text-field/--label-field and extra keys, --num-seeds")

        # Without the field flags: refused before the run folder exists, naming file:line and the flag.
        out = os.path.join(tmp, "run3")
        rc, so, se = run([a.aria, "continual", "--config", cfg2, "--out", out])
        need(rc == 1 and "train.jsonl:1: missing key \"text\"" in se and "--text-field" in se, f"{rc}:\n{se}")
        need(not os.path.exists(out), "a refused run created its folder")
        shutil.copytree(os.path.join(data, "weather_csv"), os.path.join(data, "bad"))
        write(os.path.join(data, "bad", "test.csv"), "text,label\n\"open quote,sun\n")
        rc, so, se = run([a.aria, "continual", "--config", cfg, "--out", out, "--set", 'tasks=["weather_csv","bad"]'])
        need(rc == 1 and "test.csv:2: a quoted field is never closed" in se, f"{rc}:\n{se}")
        need(not os.path.exists(out), "a refused run created its folder")
        print("ok: data errors before the run folder, exit 1")

        for extra, want in ((["--set", "train.nope=1"], "unknown config key 'train.nope'"),
                            (["--set", "train.lr"], "must be KEY=VALUE"),
                            (["--set", "train.lr=\"x\""], "'train.lr' must be a number"),
                            (["--num-seeds", "x"], "--num-seeds must be an integer"),
                            (["--seeds", "0"], "--seeds must be in"),
                            (["--bogus"], "unknown flag --bogus")):
            rc, so, se = run([a.aria, "continual", "--config", cfg, "--out", out] + extra)
            need(rc == 2 and want in se, f"expected exit 2 with {want!r}, got {rc}:\n{se}")
        need(not os.path.exists(out), "a refused run created its folder")
        print("ok: usage errors exit 2")
        print("check_data_cli: all checks passed")
        return 0
    except CheckError as e:
        print(f"check_data_cli: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
