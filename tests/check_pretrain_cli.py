#!/usr/bin/env python3
"""aria pretrain's checkpoints, resume, learning curve and --cache, end to end on the CPU (issue 14).

A tiny pretraining run uninterrupted (A) and the same run stopped by SIGTERM after a checkpoint (exit
143) then continued with --resume (B): B's model.safetensors must equal A's byte for byte, B's
checkpoint is gone once it completed, and --curve wrote the curve's JSON and SVG. Then the refusals:
usage errors exit 2 (--cache with training flags, an unknown cache name, --curve without .json,
--resume with another --out), runtime errors exit 1 (--resume without a checkpoint, a resume with
another --lr, cache:base124m on the CPU or without shards).
  python3 tests/check_pretrain_cli.py --aria build/aria
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile

failures = []


def need(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def run(aria, args, env=None):
    return subprocess.run([aria] + args, capture_output=True, text=True, env=env)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aria", required=True)
    aria = ap.parse_args().aria
    with tempfile.TemporaryDirectory(prefix="aria_pretrain_cli_") as tmp:
        corpus, val = os.path.join(tmp, "corpus.txt"), os.path.join(tmp, "val.txt")
        with open(corpus, "w") as f:
            for i in range(300):
                f.write(f"Line {i}: the whale swam past ship number {i * 7 % 13}, and the crew watched it go.\n")
        with open(val, "w") as f:
            f.write("The crew of the ship watched the whale swim past, line after line.\n" * 20)
        flags = ["pretrain", "--corpus", corpus, "--val", val, "--preset", "tiny", "--steps", "60", "--batch", "2", "--seq", "32",
                 "--eval-every", "10", "--device", "cpu"]
        a, b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
        r = run(aria, flags + ["--out", a, "--curve", os.path.join(a, "curve.json")])
        need(r.returncode == 0, f"uninterrupted run (rc {r.returncode}: {r.stderr.strip()[-300:] if r.returncode else ''})")
        curve = json.load(open(os.path.join(a, "curve.json")))
        need(len(curve["train"]["loss"]) == 60 and len(curve["validation"]["loss"]) == 6,
             "curve.json: 60 training points, 6 validation points")
        need(curve["train"]["tokens"][-1] == 60 * 2 * 32, "curve.json: tokens = steps x batch x seq")
        need(open(os.path.join(a, "curve.svg")).read().startswith("<svg"), "curve.svg is an SVG")

        # Stopped by SIGTERM once a checkpoint exists, then resumed.
        p = subprocess.Popen([aria] + flags + ["--out", b, "--checkpoint-every", "5"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        for line in p.stderr:
            if "checkpoint" in line:
                p.send_signal(signal.SIGTERM)
                break
        p.communicate()
        need(p.returncode == 143, f"SIGTERM after a checkpoint: exit 143 (got {p.returncode})")
        need(os.path.isfile(os.path.join(b, "checkpoint", "lm_state.json")), "the checkpoint is there")
        steps_done = json.load(open(os.path.join(b, "checkpoint", "lm_state.json")))["steps_done"]
        need(0 < steps_done < 60, f"stopped mid-run (at step {steps_done})")
        r = run(aria, flags + ["--resume", b, "--lr", "1e-3"])
        need(r.returncode == 1 and "lr" in r.stderr, f"resume with another --lr refused (rc {r.returncode})")
        r = run(aria, flags + ["--resume", b])
        need(r.returncode == 0, f"resume (rc {r.returncode}: {r.stderr.strip()[-300:] if r.returncode else ''})")
        same = open(os.path.join(a, "model.safetensors"), "rb").read() == open(os.path.join(b, "model.safetensors"), "rb").read()
        need(same, "the resumed model equals the uninterrupted one byte for byte")
        need(not os.path.exists(os.path.join(b, "checkpoint")), "the checkpoint is removed once the run completed")

        # Refusals.
        cases = [
            (["pretrain", "--cache", "base124m", "--steps", "3"], 2, "--steps"),
            (["pretrain", "--cache", "nope"], 2, "cache:nope"),
            (flags[:3] + ["--out", a, "--curve", os.path.join(tmp, "c.txt")], 2, "FILE.json"),
            (flags + ["--resume", b, "--out", a], 2, "--resume"),
            (flags + ["--resume", os.path.join(tmp, "none")], 1, "no checkpoint"),
        ]
        for args, code, text in cases:
            r = run(aria, args)
            need(r.returncode == code and "aria: error:" in r.stderr and text in r.stderr,
                 f"{' '.join(args[:4])}...: exit {code} naming '{text}' (got {r.returncode}: {r.stderr.strip()[:200]})")
        env = dict(os.environ, ARIA_CACHE=os.path.join(tmp, "cache"))
        r = run(aria, ["pretrain", "--cache", "base124m", "--device", "cpu"], env)
        # With the shards present: the CPU build is refused; without them: the missing shards are named.
        need(r.returncode == 1 and ("would take days" in r.stderr or "tools/fetch_corpus.sh" in r.stderr),
             f"cache:base124m on the CPU refused (rc {r.returncode}: {r.stderr.strip()[:200]})")
        need(not os.path.exists(os.path.join(tmp, "cache", "models")) or
             not any("base124m" in n for n in os.listdir(os.path.join(tmp, "cache", "models"))),
             "nothing of cache:base124m was written")
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
