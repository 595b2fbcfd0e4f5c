#!/usr/bin/env python3
"""Runs that survive (issue 20): `aria continual` stopped by SIGINT, SIGTERM and kill -9, then resumed
with --resume, must give the report of an uninterrupted run bit for bit; metrics.jsonl; --version.

  check_resume.py --aria BIN --config tests/fixtures/continual_tiny.json

A tiny random GPT-2 (check_report.write_tiny_gpt2) runs the fixture tasks with every method. Each
interrupted run is signalled as soon as metrics.jsonl shows training progress. Compared: report.json
without the fields that legitimately differ (wall times, the command line), and the evaluation lines of
metrics.jsonl (every accuracy row, in order). Python standard library only.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_report import CheckError, need, write_tiny_gpt2, check_report  # noqa: E402

VOLATILE = {"seconds", "total_seconds", "command_line", "timing", "time_split", "time"}


def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if k not in VOLATILE}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x


def load(path):
    with open(path) as f:
        return json.load(f)


def metrics_lines(run_dir):
    out = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for i, line in enumerate(f):
            need(line.endswith("\n"), f"metrics.jsonl line {i + 1} is not terminated")
            out.append(json.loads(line))
    return out


def evals(run_dir):
    return [m for m in metrics_lines(run_dir) if m["type"] == "eval"]


def steps_logged(run_dir):
    try:
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            return sum(1 for line in f if '"type":"step"' in line and line.endswith("\n"))
    except FileNotFoundError:
        return 0


def run(cmd, want_rc=0):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    need(p.returncode == want_rc, f"{' '.join(cmd)}: exit {p.returncode}, expected {want_rc}\n{p.stdout[-3000:]}")
    return p.stdout


def interrupted(cmd, out, sig, after_steps):
    """Starts cmd, sends `sig` once metrics.jsonl holds `after_steps` step lines; returns (rc, output)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while p.poll() is None and steps_logged(out) < after_steps and time.time() < deadline:
        time.sleep(0.002)
    need(p.poll() is None, f"the run ended (exit {p.returncode}) before it could be signalled: make it longer")
    p.send_signal(sig)
    text, _ = p.communicate(timeout=300)
    return p.returncode, text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aria", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="aria-resume-")
    try:
        model = os.path.join(tmp, "gpt2")
        write_tiny_gpt2(model)
        cfg = load(a.config)
        cfg["train"]["steps_per_task"] = 40  # long enough to be signalled mid-run
        cfg_path = os.path.join(tmp, "config.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        base = [a.aria, "continual", "--config", cfg_path, "--model", model, "--device", "cpu",
                "--checkpoint-every", "5"]

        # aria --version / aria version
        v = run([a.aria, "--version"]).strip()
        need(re.fullmatch(r"aria \d+\.\d+\.\d+( \(git [0-9a-f]+\))?", v), f"aria --version printed {v!r}")
        need(run([a.aria, "version"]).strip() == v, "aria version differs from aria --version")
        run([a.aria, "--version", "x"], want_rc=2)

        # The uninterrupted run.
        ref = os.path.join(tmp, "ref")
        run(base + ["--out", ref])
        rep = load(os.path.join(ref, "report.json"))
        check_report(rep)
        need("partial" not in rep, "a finished run's report is marked partial")
        st = rep["settings"]
        need(st.get("version") == v.split()[1], f"report.json version {st.get('version')!r}, aria --version {v!r}")
        need("git_hash" in st and st.get("command_line", "").startswith("aria continual "),
             "report.json lacks git_hash or command_line")
        need(st.get("device") == "cpu", "report.json lacks the device")
        ms = metrics_lines(ref)
        steps = [m for m in ms if m["type"] == "step"]
        need(len(steps) >= 10 and len(evals(ref)) > 0, "metrics.jsonl lacks step or evaluation lines")
        for k in ("loss", "ce", "plasticity", "spc", "accuracy", "grad_norm", "lr", "gate_means", "tokens_per_s",
                  "method", "seed", "task", "step"):
            need(k in steps[-1], f"metrics.jsonl step line lacks '{k}': {steps[-1]}")
        need(any(m["method"] == "aria" and m["gate_means"] for m in steps), "no gate means for aria in metrics.jsonl")
        n_evals = len(evals(ref))
        # 5 methods, 2 tasks: before + 2 rows each, multitask before + 1
        need(n_evals == 4 * 3 + 2, f"metrics.jsonl has {n_evals} evaluation lines, expected 14")
        run(base + ["--out", ref, "--resume", ref], want_rc=2)  # flags that change the experiment are refused
        out = run([a.aria, "continual", "--resume", ref, "--methods", "aria"], want_rc=2)
        need("cannot be combined" in out, f"--resume --methods: unclear error: {out}")
        out = run([a.aria, "continual", "--resume", ref])
        need("nothing to resume" in out, f"--resume of a finished run: {out}")
        need(strip(load(os.path.join(ref, "report.json"))) == strip(rep), "--resume of a finished run changed it")
        empty = os.path.join(tmp, "empty")
        os.makedirs(empty)
        out = run([a.aria, "continual", "--resume", empty], want_rc=1)
        need("not a resumable run folder" in out, f"--resume of a folder without a run: {out}")
        run([a.aria, "continual", "--resume", os.path.join(tmp, "missing")], want_rc=1)
        # base ends with --checkpoint-every 5: replaced, since a flag given twice is refused on its own
        run(base[:-2] + ["--checkpoint-every", "-1", "--out", os.path.join(tmp, "bad")], want_rc=2)

        def same_as_ref(d, what):
            got = load(os.path.join(d, "report.json"))
            need("partial" not in got, f"{what}: the resumed report is still partial")
            need(strip(got) == strip(rep), f"{what}: the resumed report differs from the uninterrupted run's:\n"
                 f"{json.dumps(strip(got))[:2000]}\nvs\n{json.dumps(strip(rep))[:2000]}")
            need(evals(d) == evals(ref), f"{what}: metrics.jsonl's evaluation lines differ from the uninterrupted run's")
            need(not os.path.exists(os.path.join(d, "resume", "aria-seed7")), f"{what}: a resume checkpoint was left")

        # SIGINT during the first method: exit 130, a checkpoint, a partial report, log.txt says where.
        d = os.path.join(tmp, "sigint")
        rc, text = interrupted(base + ["--out", d], d, signal.SIGINT, 1)
        need(rc == 130, f"SIGINT: exit {rc}, expected 130\n{text[-2000:]}")
        part = load(os.path.join(d, "report.json"))
        need(part.get("partial") is True and part.get("stopped_at"), f"SIGINT: report.json is not marked partial")
        state = load(os.path.join(d, "resume", "state.json"))
        need(state["in_progress"] is not None or state["done"], "SIGINT: the run-state file records nothing")
        if state["in_progress"]:
            ck = os.path.join(d, state["in_progress"]["checkpoint"])
            need(os.path.isfile(os.path.join(ck, "trainer.json")), f"SIGINT: no checkpoint in {ck}")
        with open(os.path.join(d, "log.txt")) as f:
            log = f.read()
        need("interrupted by SIGINT" in log and "--resume" in log, "SIGINT: log.txt does not say where it stopped")
        out = run([a.aria, "continual", "--resume", d])
        same_as_ref(d, "SIGINT + --resume")

        # SIGTERM (143), then kill -9 of the resumed run, then a second resume.
        d = os.path.join(tmp, "sigterm")
        rc, text = interrupted(base + ["--out", d], d, signal.SIGTERM, 3)
        need(rc == 143, f"SIGTERM: exit {rc}, expected 143\n{text[-2000:]}")
        before = steps_logged(d)
        rc, text = interrupted([a.aria, "continual", "--resume", d], d, signal.SIGKILL, before + 12)
        need(rc == -signal.SIGKILL, f"kill -9: exit {rc}")
        run([a.aria, "continual", "--resume", d])
        same_as_ref(d, "SIGTERM + --resume + kill -9 + --resume")

        # kill -9 of a fresh run, later in the sequence (a finished method is taken from the run-state file).
        d = os.path.join(tmp, "kill9")
        rc, text = interrupted(base + ["--out", d], d, signal.SIGKILL, 25)
        need(rc == -signal.SIGKILL, f"kill -9: exit {rc}")
        run([a.aria, "continual", "--resume", d, "--checkpoint-every", "7"])
        same_as_ref(d, "kill -9 + --resume")
        # aria run: SIGINT, then aria run --resume; report.json (model origin included) and gates.json as an
        # uninterrupted aria run's; aria continual refuses to resume an aria run folder.
        data = os.path.abspath(os.path.join(os.path.dirname(a.config), cfg["data_dir"].split("fixtures/")[-1]))
        cfg["methods"] = ["aria", "finetune"]
        run_cfg = os.path.join(tmp, "run_config.json")
        with open(run_cfg, "w") as f:
            json.dump(cfg, f)
        rbase = [a.aria, "run", "--config", run_cfg, "--model", model, "--data", data, "--device", "cpu",
                 "--checkpoint-every", "5"]
        rref = os.path.join(tmp, "run_ref")
        run(rbase + ["--out", rref])
        d = os.path.join(tmp, "run_sigint")
        rc, text = interrupted(rbase + ["--out", d], d, signal.SIGINT, 10)
        need(rc == 130, f"aria run SIGINT: exit {rc}, expected 130\n{text[-2000:]}")
        need(load(os.path.join(d, "report.json")).get("partial") is True, "aria run SIGINT: report.json not partial")
        out = run([a.aria, "continual", "--resume", d], want_rc=1)
        need("aria run --resume" in out, f"aria continual --resume of an aria run folder: {out}")
        run([a.aria, "run", "--resume", d, "--methods", "aria"], want_rc=2)
        run([a.aria, "run", "--resume", d])
        got, want = load(os.path.join(d, "report.json")), load(os.path.join(rref, "report.json"))
        need(strip(got) == strip(want), "aria run --resume: the report differs from the uninterrupted run's")
        need(load(os.path.join(d, "gates.json")) == load(os.path.join(rref, "gates.json")), "aria run --resume: gates.json differs")
        need(os.path.isfile(os.path.join(d, "report.html")), "aria run --resume: no report.html")
        need(os.path.isfile(os.path.join(d, "checkpoints", "finetune-seed7", "trainer.json")), "aria run --resume: no checkpoint")
        print("check_resume: OK (SIGINT 130, SIGTERM 143, kill -9: resumed reports equal the uninterrupted run's)")
        return 0
    except CheckError as e:
        print(f"check_resume: FAIL: {e}", file=sys.stderr)
        return 1
    finally:
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
