#!/usr/bin/env python3
"""Command-line conventions of aria and aria-bench (issue 20, "Logs and conventions").

  check_cli_conventions.py --aria BIN [--bench BIN] [--keep]

  - progress on stderr, results on stdout, for every subcommand: aria continual and aria run print
    their tables on stdout and their progress (training steps, evaluations) on stderr, log.txt holds
    both; pretrain prints "saved ..." alone on stdout; tokenize, generate, --print-config and --render
    print only their result;
  - a flag given twice is a usage error (exit 2) naming the flag, in every subcommand and in aria-bench
    (one parser); --set repeats by design; an alias and its flag (--seeds, --num-seeds) are one flag;
  - invalid numbers (zero steps, a zero learning rate, negative counts, NaN, blanks, fractions where an
    integer is needed) are usage errors (exit 2) naming the flag, before anything is loaded or written;
  - aria run installed outside the checkout (bin/aria + share/aria/third_party) with ARIA_HOME unset finds
    the task data and the vocabulary next to its binary, and report.json and report.html carry the
    version, git hash, command line and device.
Runs the real binaries on a tiny random GPT-2 and the fixture tasks. Python standard library only.
"""
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

TASKS = os.path.join(HERE, "fixtures", "cls_tiny")
TIMEOUT = 180


def run(cmd, cwd=None, env=None):
    print("$ " + " ".join(cmd), flush=True)
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT, cwd=cwd,
                           env=env)
    except subprocess.TimeoutExpired:
        raise CheckError(f"timed out after {TIMEOUT} s: {' '.join(cmd)}")
    return p.returncode, p.stdout, p.stderr


def usage_error(cmd, *wants, prefix="aria: error:"):
    rc, so, se = run(cmd)
    need(rc == 2, f"expected exit code 2 (a usage error), got {rc}:\nstdout: {so}\nstderr: {se}")
    need(se.startswith(prefix), f"expected stderr to start with {prefix!r}, got:\n{se}")
    for w in wants:
        need(w in se, f"expected the message to contain {w!r}, got:\n{se}")
    need(so == "", f"a usage error printed on stdout:\n{so}")
    print("  ok: " + se.strip().splitlines()[-1][:200])


def check_streams(aria, tmp, model):
    print("== progress on stderr, results on stdout")
    cfg = os.path.join(tmp, "cfg.json")
    with open(cfg, "w") as f:
        json.dump({"model": model, "data_dir": TASKS, "tasks": ["weather", "animal"], "methods": ["finetune"],
                   "device": "cpu", "train": {"batch_size": 4, "steps_per_task": 3, "max_seq_len": 32,
                                              "eval_split": "test"}}, f)
    out = os.path.join(tmp, "cont")
    rc, so, se = run([aria, "continual", "--config", cfg, "--out", out])
    need(rc == 0, f"aria continual failed ({rc}):\n{se}")
    # stdout: the accuracy matrix, the metrics table and the files written; nothing of the progress
    for w in ("finetune: accuracy (%) on each task", "metrics (percent", "wrote " + os.path.join(out, "report.json")):
        need(w in so, f"stdout lacks {w!r}:\n{so}")
    for w in ("before training:", "step 3/3", "evaluated before training"):
        need(w not in so, f"progress {w!r} on stdout:\n{so}")
    # stderr: the progress (steps, evaluations, the model line); none of the tables
    for w in ("finetune seed", "before training:", "after weather:", "step 3/3", "model "):
        need(w in se, f"stderr lacks the progress {w!r}:\n{se}")
    need("metrics (percent" not in se, f"the result table on stderr:\n{se}")
    with open(os.path.join(out, "log.txt"), encoding="utf-8") as f:
        log = f.read()
    need("after weather:" in log and "metrics (percent" in log, "log.txt lacks the progress or the result")
    need(log.index("after animal:") < log.index("metrics (percent"), "log.txt: the result before the progress")
    print("  ok: aria continual")

    out = os.path.join(tmp, "run")
    rc, so, se = run([aria, "run", "--data", TASKS, "--tasks", "weather,animal", "--model", model, "--device", "cpu",
                      "--steps-per-task", "2", "--methods", "finetune", "--no-checkpoints", "--out", out])
    need(rc == 0, f"aria run failed ({rc}):\n{se}")
    for w in ("metrics (percent", "aria run: wrote " + os.path.join(out, "report.html")):
        need(w in so, f"aria run: stdout lacks {w!r}:\n{so}")
    need("before training:" not in so and "aria run: " + "the default" not in so, f"aria run: progress on stdout:\n{so}")
    need("before training:" in se and "-> " + out in se, f"aria run: stderr lacks the progress:\n{se}")
    print("  ok: aria run")

    rc, so, se = run([aria, "run", "--render", out])
    tables = os.path.join(out, "tables")
    n_csv = len([f for f in os.listdir(tables) if f.endswith(".csv")]) if os.path.isdir(tables) else -1
    need(rc == 0 and so.splitlines() == ["wrote " + os.path.join(out, "report.html"),
                                         f"wrote {n_csv} tables in {tables}"] and se == "",
         f"--render: {rc}\n{so}\n{se}")
    rc, so, se = run([aria, "run", "--print-config", "--model", model, "--data", TASKS, "--tasks", "weather"])
    need(rc == 0 and json.loads(so)["tasks"] == ["weather"] and se == "", f"--print-config: {rc}\n{so}\n{se}")

    corpus = os.path.join(tmp, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("a small corpus for the pretraining checks. " * 40)
    rc, so, se = run([aria, "pretrain", "--corpus", corpus, "--model", model, "--device", "cpu", "--seq", "16",
                      "--batch", "2", "--steps", "3", "--out", os.path.join(tmp, "pre")])
    need(rc == 0, f"aria pretrain failed ({rc}):\n{se}")
    lines = so.strip().splitlines()
    need(len(lines) == 1 and lines[0].startswith("saved "), f"pretrain: stdout must be the one 'saved' line:\n{so}")
    need("aria pretrain:" in se and "parameters" in se, f"pretrain: stderr lacks the progress:\n{se}")
    print("  ok: aria pretrain")

    rc, so, se = run([aria, "tokenize", "--text", corpus])
    need(rc == 0 and isinstance(json.loads(so), list) and se == "", f"tokenize: {rc}\n{so[:200]}\n{se}")
    rc, so, se = run([aria, "generate", "--model", model, "--prompt", "hello", "--max-new-tokens", "3", "--device",
                      "cpu"])
    need(rc == 0 and so.startswith("hello") and se == "", f"generate: {rc}\n{so}\n{se}")
    print("  ok: tokenize, generate, --render, --print-config print only their result")


def check_flags_twice(aria, bench, tmp, model):
    print("== a flag given twice is a usage error naming it")
    cfg = os.path.join(tmp, "cfg.json")
    usage_error([aria, "run", "--steps-per-task", "2", "--steps-per-task", "3"], "--steps-per-task is given twice")
    usage_error([aria, "run", "--quick", "--quick"], "--quick is given twice")
    usage_error([aria, "run", "--device=cpu", "--device", "cuda"], "--device is given twice")
    usage_error([aria, "run", "--seeds", "2", "--num-seeds", "3"], "--num-seeds and --seeds are the same flag")
    usage_error([aria, "run", "--seeds", "2", "--seeds", "3"], "--seeds is given twice")
    usage_error([aria, "continual", "--config", cfg, "--out", os.path.join(tmp, "x"), "--out", os.path.join(tmp, "y")],
                "--out is given twice")
    need(not os.path.exists(os.path.join(tmp, "x")) and not os.path.exists(os.path.join(tmp, "y")),
         "a refused command created a folder")
    usage_error([aria, "pretrain", "--corpus", cfg, "--out", os.path.join(tmp, "p"), "--lr", "1e-3", "--lr", "1e-4"],
                "--lr is given twice")
    usage_error([aria, "score", "--model", model, "--model", model, "--text", cfg], "--model is given twice")
    usage_error([aria, "tokenize", "--text", cfg, "--text", cfg], "--text is given twice")
    usage_error([aria, "generate", "--model", model, "--prompt", "a", "--prompt", "b"], "--prompt is given twice")
    # --set is the one flag that repeats: two keys are applied, not refused
    rc, so, se = run([aria, "run", "--print-config", "--model", model, "--data", TASKS, "--tasks", "weather",
                      "--set", "train.lr=0.001", "--set", "train.seed=9"])
    need(rc == 0, f"two --set were refused ({rc}):\n{se}")
    c = json.loads(so)
    need(c["train"]["lr"] == 0.001 and c["train"]["seed"] == 9, f"--set twice did not apply both: {c['train']}")
    if bench:
        usage_error([bench, "--steps", "2", "--steps", "3"], "--steps is given twice", prefix="aria-bench: error:")
        usage_error([bench, "--gated", "--gated", "--model", "d12"], "--gated is given twice",
                    prefix="aria-bench: error:")
    print("  ok")


def check_numbers(aria, bench, tmp, model):
    print("== invalid numbers are usage errors naming the flag")
    corpus = os.path.join(tmp, "corpus.txt")
    pre = [aria, "pretrain", "--corpus", corpus, "--model", model, "--device", "cpu"]
    outp = os.path.join(tmp, "pre_bad")
    for flag, value, want in (("--steps", "0", "--steps 0 trains nothing"), ("--steps", "-3", "--steps must be in"),
                              ("--steps", "1.5", "--steps must be an integer"), ("--steps", " 5", "--steps must be an"),
                              ("--lr", "0", "--lr 0 trains nothing"), ("--lr", "nan", "--lr must be a number"),
                              ("--lr", "-1e-3", "--lr must be in"), ("--batch", "0", "--batch must be in"),
                              ("--seq", "0", "--seq must be in"), ("--grad-accum", "0", "--grad-accum must be in"),
                              ("--warmup", "-1", "--warmup must be in"), ("--seed", "x", "--seed must be an integer")):
        usage_error(pre + ["--out", outp, flag, value], want)
    need(not os.path.exists(outp), "a refused pretrain created its --out folder")
    gen = [aria, "generate", "--model", model, "--prompt", "a", "--device", "cpu"]
    usage_error(gen + ["--max-new-tokens", "0"], "--max-new-tokens must be in")
    usage_error(gen + ["--temperature", "-1"], "--temperature must be in")
    usage_error(gen + ["--top-k", "-1"], "--top-k must be in")
    usage_error([aria, "score", "--model", model, "--text", corpus, "--batch", "0"], "--batch must be in")
    usage_error([aria, "tokenize", "--text", corpus, "--shards", os.path.join(tmp, "sh"), "--threads", "-1"],
                "--threads must be in")
    base = [aria, "run", "--model", model, "--data", TASKS, "--tasks", "weather", "--device", "cpu",
            "--out", os.path.join(tmp, "run_bad")]
    for extra, want in ((["--steps-per-task", "0"], "--steps-per-task must be in"),
                        (["--checkpoint-every", "-1"], "--checkpoint-every must be in"),
                        (["--seed", "-1"], "--seed must be in"),
                        (["--num-seeds", "0"], "--num-seeds must be in"),
                        (["--set", "train.steps_per_task=0"], "train.steps_per_task"),
                        (["--set", "train.lr=-1"], "train.lr")):
        usage_error(base + extra, want)
    need(not os.path.exists(os.path.join(tmp, "run_bad")), "a refused run created its folder")
    if bench:
        for flag, value in (("--reps", "0"), ("--batch", "-2"), ("--seq", "x"), ("--steps", "1.5")):
            usage_error([bench, flag, value], flag + " must be", prefix="aria-bench: error:")
    print("  ok")


def check_install(aria, tmp, model):
    print("== aria run outside the checkout, ARIA_HOME unset: data and vocabulary next to the binary")
    vocab = os.path.join(os.path.dirname(HERE), "third_party", "gpt2-vocab")
    if not os.path.isfile(os.path.join(vocab, "vocab.json")):
        print("  skipped: no third_party/gpt2-vocab (tools/setup.sh)")
        return
    prefix = os.path.join(tmp, "prefix")
    os.makedirs(os.path.join(prefix, "bin"))
    binary = os.path.join(prefix, "bin", "aria")
    shutil.copy2(aria, binary)  # a copy, not a link: /proc/self/exe names the real file
    share = os.path.join(prefix, "share", "aria", "third_party")
    shutil.copytree(TASKS, os.path.join(share, "data"))
    shutil.copytree(vocab, os.path.join(share, "gpt2-vocab"))
    elsewhere = os.path.join(tmp, "elsewhere")  # no third_party/ here or above (the temporary folder)
    os.makedirs(elsewhere)
    env = {k: v for k, v in os.environ.items() if k != "ARIA_HOME"}
    cmd = [binary, "run", "--tasks", "weather,animal", "--model", model, "--device", "cpu", "--steps-per-task", "2",
           "--methods", "finetune", "--no-checkpoints", "--out", "out"]
    print("$ (in " + elsewhere + ") " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, cwd=elsewhere, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=TIMEOUT)
    need(p.returncode == 0, f"aria run outside the checkout failed ({p.returncode}):\n{p.stderr}")
    rep = json.load(open(os.path.join(elsewhere, "out", "report.json")))
    s = rep["settings"]
    need(os.path.realpath(s["config"]["data_dir"]) == os.path.realpath(os.path.join(share, "data")),
         f"the data did not come from next to the binary: {s['config']['data_dir']}")
    # report.json: version, git hash, command line and device; report.html shows them
    rc, so, _ = run([aria, "--version"])
    version = so.split()[1] if rc == 0 and len(so.split()) > 1 else None
    need(s.get("version") == version, f"settings.version {s.get('version')!r} != aria --version {so.strip()!r}")
    need("git_hash" in s and (s["git_hash"] == "" or s["git_hash"] in so), f"settings.git_hash {s.get('git_hash')!r}")
    need(s.get("command_line", "").startswith("aria run --tasks weather,animal"), f"command line: {s.get('command_line')}")
    need(s.get("device") == "cpu", f"settings.device: {s.get('device')}")
    html = open(os.path.join(elsewhere, "out", "report.html"), encoding="utf-8").read()
    for w in ("aria " + version, "aria run --tasks weather,animal", "device cpu"):
        need(w in html, f"report.html lacks {w!r}")
    print("  ok: data from " + s["config"]["data_dir"])
    # the vocabulary too: without it next to the binary the run is refused, naming where it looked
    shutil.rmtree(os.path.join(share, "gpt2-vocab"))
    p = subprocess.run(cmd[:-1] + ["out2"], cwd=elsewhere, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=TIMEOUT)
    need(p.returncode == 1 and "no GPT-2 vocabulary" in p.stderr and os.path.join("share", "aria") in p.stderr,
         f"without the vocabulary next to the binary: {p.returncode}\n{p.stderr}")
    print("  ok: the vocabulary came from next to the binary (removed, the run is refused naming share/aria)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aria", required=True)
    ap.add_argument("--bench", default="")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    aria = os.path.abspath(args.aria)
    bench = os.path.abspath(args.bench) if args.bench else ""
    tmp = tempfile.mkdtemp(prefix="aria_conventions_")
    try:
        model = os.path.join(tmp, "model")
        write_tiny_gpt2(model)
        check_streams(aria, tmp, model)
        check_flags_twice(aria, bench, tmp, model)
        check_numbers(aria, bench, tmp, model)
        check_install(aria, tmp, model)
        print("check_cli_conventions: all checks passed")
        return 0
    except CheckError as e:
        print(f"check_cli_conventions: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
