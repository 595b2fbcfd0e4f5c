#!/usr/bin/env python3
"""The aria CLI refuses what would lose or mix runs, hang, or fail only after the training (issue 19).

  check_cli_safety.py --aria BIN [--keep]

Every case runs the real binary on a tiny random GPT-2 and the fixture tasks (tests/fixtures/cls_tiny)
and expects either success with the right files, or exit code 1 with `aria: error:` and a message that
names the cause. Real OS failures, no fault injection: `ulimit -f` makes writes fail with EFBIG ("File
too large"), mkfifo makes FIFOs, fcntl.flock holds a run folder's lock. Every command has a timeout: a
hang is a failure. Python standard library only.
"""
import argparse
import fcntl
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from check_report import CheckError, need, write_tiny_gpt2  # noqa: E402

TASKS = os.path.join(HERE, "fixtures", "cls_tiny")
TIMEOUT = 120


def run(cmd, shell_prefix=None, split=False):
    """Runs cmd; returns (rc, out) or, with split, (rc, stdout, stderr). A timeout is a failure."""
    shown = " ".join(shlex.quote(c) for c in cmd)
    if shell_prefix:
        cmd = ["bash", "-c", shell_prefix + "; exec " + shown]
    print("$ " + (shell_prefix + "; " if shell_prefix else "") + shown, flush=True)
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE if split else subprocess.STDOUT,
                           text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise CheckError(f"timed out after {TIMEOUT} s (a hang): {shown}")
    if split:
        return p.returncode, p.stdout, p.stderr
    return p.returncode, p.stdout


def expect_error(cmd, *wants, shell_prefix=None, absent=(), code=1):
    """code: 1 for a runtime error, 2 for a usage error (a bad flag, value or combination of flags)."""
    rc, out = run(cmd, shell_prefix)
    need(rc == code, f"expected exit code {code}, got {rc}:\n{out}")
    need("aria: error:" in out, f"expected 'aria: error:', got:\n{out}")
    for w in wants:
        need(w in out, f"expected the message to contain {w!r}, got:\n{out}")
    for a in absent:
        need(a not in out, f"the output must not contain {a!r}:\n{out}")
    print("  ok: " + out.strip().splitlines()[-1][:200])
    return out


def expect_ok(cmd, shell_prefix=None):
    rc, out = run(cmd, shell_prefix)
    need(rc == 0, f"expected success, got exit code {rc}:\n{out}")
    return out


def byte_vocab(d):
    """A byte-level BPE vocabulary of 258 tokens (256 bytes, one merge, <|endoftext|>) in d."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    vocab = {chr(c): i for i, c in enumerate(cs)}
    vocab["<|endoftext|>"] = 256
    vocab["\u0120t"] = 257
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n\u0120 t\n")


def write_config(path, model, tasks=("weather", "animal"), data=TASKS, methods=("finetune",)):
    cfg = {"model": model, "data_dir": data, "tasks": list(tasks), "methods": list(methods), "device": "cpu",
           "seeds": 1, "train": {"batch_size": 4, "steps_per_task": 2, "max_seq_len": 32, "seed": 7,
                                 "eval_split": "test"}}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f)
    return path


def with_flag(cmd, flag, value):
    """cmd with flag's value replaced (a flag given twice is a usage error, so overrides replace)."""
    i = cmd.index(flag)
    return cmd[:i + 1] + [value] + cmd[i + 2:]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aria", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    aria = os.path.abspath(args.aria)
    tmp = tempfile.mkdtemp(prefix="aria_safety_")
    j = lambda *p: os.path.join(tmp, *p)  # noqa: E731
    try:
        model = j("model")
        write_tiny_gpt2(model)
        cfg = write_config(j("fast.json"), model)
        cont = [aria, "continual", "--config", cfg]
        run_tiny = [aria, "run", "--data", TASKS, "--tasks", "weather,animal", "--model", model, "--device", "cpu",
                    "--steps-per-task", "2", "--methods", "finetune", "--no-checkpoints"]

        print("== a flag is never a flag's value")
        expect_error([aria, "run", "--out", "--quick"], "flag --out needs a value", code=2)
        need(not os.path.exists("--quick"), "a folder named --quick was created")
        expect_error(cont + ["--out", "--overwrite"], "flag --out needs a value", code=2)
        expect_error([aria, "pretrain", "--corpus", cfg, "--out", j("p"), "--steps", "--bf16"],
                     "flag --steps needs a value", code=2)

        print("== an existing run folder is refused without --overwrite")
        out = j("run")
        expect_ok(cont + ["--out", out])
        before = {f: read(os.path.join(out, f)) for f in ("report.json", "config.json", "log.txt")}
        expect_error(cont + ["--out", out], out, "--overwrite", "not empty")
        for f, text in before.items():
            need(read(os.path.join(out, f)) == text, f"a refused run changed {f}")
        # aria run too, before any work
        expect_error(run_tiny + ["--out", out], out, "--overwrite")
        need(read(os.path.join(out, "log.txt")) == before["log.txt"], "a refused aria run changed log.txt")

        # a typo found by the cheap checks leaves no folder behind (it would need --overwrite next time)
        expect_error(cont + ["--out", j("typo"), "--model", j("no_such_model")], "no_such_model")
        expect_error(with_flag(run_tiny, "--model", j("no_such_model")) + ["--out", j("typo")], "no_such_model")
        need(not os.path.exists(j("typo")), "a run refused for a typo created its folder")

        print("== --overwrite removes every file of the previous run")
        with open(os.path.join(out, "gates.json"), "w") as f:
            f.write("{}")  # a file of an earlier `aria run` that `aria continual` does not write
        os.makedirs(os.path.join(out, "checkpoints", "old-seed1"))
        expect_ok(cont + ["--out", out, "--overwrite", "--methods", "adapters"])
        left = sorted(os.listdir(out))
        need(left == [".lock", "config.json", "log.txt", "metrics.jsonl", "report.json", "resume", "tables"],
             f"files of the old run were kept: {left}")
        need(os.listdir(os.path.join(out, "resume")) == ["state.json"], "a finished run left a resume checkpoint")
        rep = json.loads(read(os.path.join(out, "report.json")))
        need(list(rep["methods"]) == ["adapters"], f"report.json is not the new run's: {list(rep['methods'])}")
        need("finetune" not in read(os.path.join(out, "log.txt")), "log.txt holds the old run")

        print("== --overwrite never removes a file aria did not write")
        with open(os.path.join(out, "notes.txt"), "w") as f:
            f.write("mine")
        expect_error(cont + ["--out", out, "--overwrite"], "notes.txt", "did not write")
        need(read(os.path.join(out, "notes.txt")) == "mine", "notes.txt was touched")
        os.remove(os.path.join(out, "notes.txt"))

        print("== a run folder in use by another process is refused")
        with open(os.path.join(out, ".lock"), "r+") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX | fcntl.LOCK_NB)
            lk.truncate(0)
            lk.write("4242\n")
            lk.flush()
            expect_error(cont + ["--out", out, "--overwrite"],
                         f"run folder {out} is in use by another aria process (pid 4242)")
            expect_error(run_tiny + ["--out", out, "--overwrite"], "in use by another aria process (pid 4242)")
            expect_error([aria, "run", "--render", out], "in use by another aria process")
            expect_error([aria, "continual", "--resume", out], "in use by another aria process")  # --resume locks too
            need(sorted(os.listdir(out)) == [".lock", "config.json", "log.txt", "metrics.jsonl", "report.json", "resume",
                                             "tables"],
                 "a refused run touched the locked folder")
        expect_ok([aria, "run", "--render", out])  # the lock is free again
        # two real runs at once into a fresh folder: exactly one of them may run
        both = j("both")
        procs = [subprocess.Popen(cont + ["--out", both], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
        results = [(p.wait(timeout=TIMEOUT), p.stdout.read()) for p in procs]
        codes = sorted(rc for rc, _ in results)
        need(codes == [0, 1], f"two runs into one folder: exit codes {codes}:\n{results}")
        loser = [o for rc, o in results if rc == 1][0]
        need("in use by another aria process" in loser or "not empty" in loser, f"unclear refusal:\n{loser}")

        print("== a model with a vocabulary smaller than GPT-2's: gate histograms pad within it")
        small = j("small")
        write_tiny_gpt2(small, vocab=300)
        byte_vocab(small)
        sr = j("small_run")
        expect_ok([aria, "run", "--data", TASKS, "--tasks", "weather,animal", "--model", small, "--device", "cpu",
                   "--steps-per-task", "2", "--methods", "aria", "--no-checkpoints", "--out", sr])
        g = json.loads(read(os.path.join(sr, "gates.json")))
        need(g["layers"] and all(layer["tokens"] > 0 for layer in g["layers"]), "gates.json has no histogram")
        need(os.path.isfile(os.path.join(sr, "report.html")), "no report.html")

        print("== a tokenizer whose ids do not fit the model is refused before training")
        novocab = j("small_novocab")  # the vocabulary falls back to GPT-2's (50257 ids) from third_party/
        write_tiny_gpt2(novocab, vocab=300)
        if os.path.isfile(os.path.join("third_party", "gpt2-vocab", "vocab.json")):
            o = expect_error(cont + ["--model", novocab, "--out", j("nv")], "out of range for the model's vocabulary",
                             "300")
            need(" step " not in o, "the refusal came after training steps")

        print("== duplicate task names are refused before the first step")
        other = j("other")
        shutil.copytree(os.path.join(TASKS, "weather"), os.path.join(other, "weather"))
        expect_error(with_flag(run_tiny, "--tasks", "weather," + os.path.join(other, "weather")) + ["--out", j("dup")],
                     "same task name", "weather", code=2)  # --tasks on the command line: a usage error
        need(not os.path.exists(j("dup")), "a refused run created its folder")
        dup_cfg = write_config(j("dup.json"), model, tasks=("weather", os.path.join(other, "weather")))
        o = expect_error([aria, "continual", "--config", dup_cfg, "--out", j("dup2")], "same task name")
        need(not os.path.exists(j("dup2", "report.json")), "a refused run wrote a report")

        print("== a task whose training split holds one class: a warning naming task and class")
        one = j("onecls")
        shutil.copytree(TASKS, one)
        lines = [json.loads(x) for x in read(os.path.join(one, "weather", "train.jsonl")).splitlines()]
        with open(os.path.join(one, "weather", "train.jsonl"), "w", encoding="utf-8") as f:
            for x in lines:
                f.write(json.dumps({"text": x["text"], "label": 0}) + "\n")
        label0 = json.loads(read(os.path.join(one, "weather", "labels.json")))[0]
        rc, so, se = run([aria, "continual", "--config", write_config(j("one.json"), model, data=one),
                          "--out", j("one_run")], split=True)
        need(rc == 0, f"the run failed ({rc}):\n{so}\n{se}")
        need("warning" in se and "'weather'" in se and f"'{label0}'" in se and "only class" in se,
             f"no warning on stderr naming the task and its class:\n{se}")
        need("only class" in read(j("one_run", "log.txt")), "log.txt lacks the warning")
        rc, so, se = run(cont + ["--out", j("two_run")], split=True)
        need(rc == 0 and "warning" not in se, f"a warning without cause:\n{se}")

        print("== aria pretrain: an unwritable --out is found before training")
        corpus = j("corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write("a small corpus for the pretraining checks. " * 40)
        pre = [aria, "pretrain", "--corpus", corpus, "--model", model, "--device", "cpu", "--seq", "16",
               "--batch", "2"]
        with open(j("a_file"), "w") as f:
            f.write("x")
        # --steps so large that a check after training would hit the timeout
        expect_error(pre + ["--out", j("a_file", "model"), "--steps", "10000000"], j("a_file"), "Not a directory")
        expect_error(pre + ["--out", j("pre_efbig"), "--steps", "10000000"], j("pre_efbig"), "not writable",
                     "File too large", shell_prefix="trap '' XFSZ; ulimit -f 0")
        if os.geteuid() != 0:  # root writes into read-only folders
            ro = j("readonly")
            os.makedirs(ro)
            os.chmod(ro, 0o555)
            expect_error(pre + ["--out", os.path.join(ro, "m"), "--steps", "10000000"], ro, "Permission denied")
        expect_error(pre + ["--out", j("p0"), "--steps", "0"], "--steps 0", code=2)  # a usage error
        o = expect_ok(pre + ["--out", j("p1"), "--steps", "1"])
        need("final train loss" in o and "final train loss 0.0000" not in o, f"no real loss printed:\n{o}")

        print("== a full disk (EFBIG under ulimit -f) is an error naming the file, never a silent success")
        efbig = "trap '' XFSZ; ulimit -f {}"
        for lim in (0, 2, 3):  # KiB; config.json (about 1.1 KB with the data.* keys) fits in 2
            d = j(f"efbig{lim}")
            o = expect_error(cont + ["--out", d], d, "File too large", shell_prefix=efbig.format(lim))
            if lim > 0:  # config.json fits, a later write (the log, metrics.jsonl, a checkpoint, the report) does not
                need(any(f in o for f in ("log.txt", "report.json", "metrics.jsonl", "checkpoint.safetensors",
                                          "state.json")), f"the failing file is not named:\n{o}")
                json.loads(read(os.path.join(d, "config.json")))
            d = j(f"efbig_run{lim}")
            expect_error(run_tiny + ["--out", d], d, "File too large", shell_prefix=efbig.format(lim),
                         absent=("not valid JSON",))
        # what a command prints is its result: a failed write to standard output is an error too
        expect_error([aria, "run", "--print-config"], "cannot write standard output",
                     shell_prefix=efbig.format(0) + "; exec >" + shlex.quote(j("stdout.txt")))

        print("== FIFOs are refused, never opened (open() would block forever)")
        fifo = j("fifo")
        os.mkfifo(fifo)
        expect_error([aria, "continual", "--config", fifo, "--out", j("f1")], "FIFO")
        expect_error([aria, "run", "--config", fifo, "--out", j("f2")], "FIFO")
        expect_error(with_flag(pre, "--corpus", fifo) + ["--out", j("f3")], "FIFO")
        expect_error(pre + ["--out", j("f4"), "--val", fifo], "FIFO")
        ft = j("fifo_tasks")
        shutil.copytree(TASKS, ft)
        os.remove(os.path.join(ft, "animal", "test.jsonl"))
        os.mkfifo(os.path.join(ft, "animal", "test.jsonl"))
        expect_error([aria, "continual", "--config", write_config(j("ft.json"), model, data=ft), "--out", j("f5")],
                     "test.jsonl", "FIFO")
        os.remove(os.path.join(ft, "weather", "labels.json"))
        os.mkfifo(os.path.join(ft, "weather", "labels.json"))
        expect_error([aria, "continual", "--config", write_config(j("ft2.json"), model, data=ft), "--out", j("f6")],
                     "labels.json", "FIFO")
        fm = j("fifo_model")
        os.makedirs(fm)
        shutil.copy(os.path.join(model, "model.safetensors"), fm)
        os.mkfifo(os.path.join(fm, "config.json"))
        expect_error(cont + ["--model", fm, "--out", j("f8")], "config.json", "FIFO")
        rf = j("render_fifo")
        os.makedirs(rf)
        os.mkfifo(os.path.join(rf, "report.json"))
        expect_error([aria, "run", "--render", rf], "report.json", "FIFO")
        cd = j("cache_data")  # cache:quick is pretrained on <data>/corpus/train.txt
        shutil.copytree(TASKS, cd)
        os.makedirs(os.path.join(cd, "corpus"))
        os.mkfifo(os.path.join(cd, "corpus", "train.txt"))
        env_cache = "export ARIA_CACHE=" + shlex.quote(j("cache"))
        expect_error([aria, "run", "--quick", "--data", cd, "--tasks", "weather", "--device", "cpu", "--out", j("f7")],
                     "train.txt", "FIFO", shell_prefix=env_cache)

        print("== --render refuses values a report cannot hold")
        rr = j("render_bad")
        os.makedirs(rr)
        rep = json.loads(read(os.path.join(out, "report.json")))
        m = next(iter(rep["methods"]))
        for bad, field, want in ((1e308, "matrix", f"methods.{m}.matrix[0][0]"),
                                 (1.5, "matrix", f"methods.{m}.matrix[0][0]"),
                                 (-0.5, "before", f"methods.{m}.before[0]"),
                                 (3.0, "bwt", f"methods.{m}.bwt")):
            r = json.loads(json.dumps(rep))
            if field == "matrix":
                r["methods"][m]["matrix"][0][0] = bad
            elif field == "before":
                r["methods"][m]["before"][0] = bad
            else:
                r["methods"][m][field] = bad
            with open(os.path.join(rr, "report.json"), "w") as f:
                json.dump(r, f)
            expect_error([aria, "run", "--render", rr], want)
            need(not os.path.exists(os.path.join(rr, "report.html")), "a page was written for a bad report")
        print("check_cli_safety: all checks passed")
    except CheckError as e:
        print(f"check_cli_safety: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
