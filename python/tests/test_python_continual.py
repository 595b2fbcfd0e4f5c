"""The continual trainer from Python: the same metrics as `aria continual` for the same config and seed,
tasks from lists, the per-step log, callbacks that stop training, exceptions in callbacks, checkpoints
that resume bit for bit, and the GIL released while training."""
import json
import threading
import time

import numpy as np
import pytest

import aria
from conftest import CLS_TINY, CONTINUAL_TINY, ROOT, run_cli

METHODS = ["aria", "finetune", "ewc", "adapters", "multitask", "replay", "lwf"]


def load_tasks(cfg, tokenizer):
    t = cfg["train"]
    return [aria.load_task(str(ROOT / cfg["data_dir"] / name), tokenizer=tokenizer, max_seq_len=t["max_seq_len"],
                           max_train=t.get("max_train_examples", 0), max_eval=t.get("max_eval_examples", 0))
            for name in cfg["tasks"]]


def test_metrics_equal_the_cli(tiny_model, tiny_dir, tokenizer, tmp_path, aria_cli):
    out = tmp_path / "run"
    run_cli(aria_cli, "continual", "--config", CONTINUAL_TINY, "--model", tiny_dir, "--out", out,
            "--methods", ",".join(METHODS), "--device", "cpu")
    report = json.loads((out / "report.json").read_text())
    cfg = aria.read_config(str(CONTINUAL_TINY))
    tasks = load_tasks(cfg, tokenizer)
    for method in METHODS:
        trainer = aria.ContinualTrainer(tiny_model, method, aria=cfg["aria"], train=cfg["train"])
        r = aria.run_sequence(trainer, tasks)
        want = report["methods"][method]
        assert r["before"] == want["before"], method
        assert r["matrix"] == want["matrix"], method          # bit for bit: the same engine, config and seed
        for k in ("acc", "bwt", "forgetting", "fwt"):
            assert r[k] == want[k], (method, k)


def test_tasks_from_lists_equal_the_folder(tokenizer):
    def read(task, split):
        rows = [json.loads(line) for line in (CLS_TINY / task / f"{split}.jsonl").read_text().splitlines() if line]
        return [(r["text"], r["label"]) for r in rows]

    labels = json.loads((CLS_TINY / "weather" / "labels.json").read_text())
    listed = aria.make_task("weather", read("weather", "train"), read("weather", "test"),
                            read("weather", "validation"), labels=labels, tokenizer=tokenizer, max_seq_len=32)
    folder = aria.load_task(str(CLS_TINY / "weather"), tokenizer=tokenizer, max_seq_len=32)
    assert listed.label_names == folder.label_names
    for split in ("train", "validation", "test"):
        assert listed.examples(split) == folder.examples(split)
    named = aria.make_task("w", [("sunny day", "sun"), ("rain again", "rain")], [("so sunny", "sun")],
                           tokenizer=tokenizer)
    assert named.label_names == ["rain", "sun"] and named.examples("train")[0][1] == 1


def small_trainer(model, method="finetune", steps=12, **kw):
    return aria.ContinualTrainer(model, method, train={"steps_per_task": steps, "batch_size": 4, "lr": 3e-3,
                                                      "max_seq_len": 32, "seed": 7}, **kw)


def test_step_log_and_a_callback_that_stops(tiny_model, tokenizer):
    task = aria.load_task(str(CLS_TINY / "weather"), tokenizer=tokenizer, max_seq_len=32)
    seen = []

    def on_step(rec):
        seen.append(rec["step"])
        return rec["phase_step"] >= 5

    t = small_trainer(tiny_model, log_every=1, on_step=on_step)
    t.add_task(task)
    # The trainer asks before each step and finishes the step it has begun: one more after the request.
    assert t.train(task) == 6 and t.phase_steps == 6 and t.should_stop
    assert seen == [1, 2, 3, 4, 5, 6]
    rec = t.log[-1]
    assert rec["task"] == "weather" and rec["phase_steps"] == 12 and rec["examples"] == 4
    assert set(rec) >= {"loss", "ce", "accuracy", "grad_norm", "lr", "spc", "method_loss", "gate_means", "tokens"}
    assert all(np.isfinite(r["loss"]) for r in t.log)
    t.should_stop = False
    t.on_step = None
    assert t.train(task) == 6 and t.phase_steps == 12 and t.optimizer_steps == 12


def test_an_exception_in_a_callback_stops_and_is_raised(tiny_model, tokenizer):
    task = aria.load_task(str(CLS_TINY / "weather"), tokenizer=tokenizer, max_seq_len=32)

    def on_step(rec):
        if rec["phase_step"] == 3:
            raise KeyError("from the callback")

    t = small_trainer(tiny_model, log_every=1, on_step=on_step)
    t.add_task(task)
    with pytest.raises(KeyError, match="from the callback"):
        t.train(task)
    assert t.phase_steps == 4                     # stopped after the next step, like a callback's True
    t.on_step = None
    assert t.train(task) == 8                     # the trainer is intact: it continues


def test_on_evaluation_stops_the_sequence(tiny_model, tokenizer):
    tasks = [aria.load_task(str(CLS_TINY / n), tokenizer=tokenizer, max_seq_len=32) for n in ("weather", "animal")]
    rows = []
    t = small_trainer(tiny_model, steps=3, on_evaluation=lambda rec: rows.append(rec) or rec["row"] == 1)
    r = aria.run_sequence(t, tasks)
    assert r["stopped"] and len(r["matrix"]) == 1 and "acc" not in r
    assert [x["row"] for x in rows] == [0, 1] and rows[1]["tasks"] == ["weather", "animal"]


def test_checkpoint_resumes_bit_for_bit(tiny_model, tokenizer, tmp_path):
    tasks = [aria.load_task(str(CLS_TINY / n), tokenizer=tokenizer, max_seq_len=32) for n in ("weather", "animal")]

    def finish(t, start):
        for i, task in enumerate(tasks[start:], start):
            if t.task_id(task.name) < 0:
                t.add_task(task)
            t.train(task)
            t.consolidate_task(i, task)
        return {n: p.numpy().copy() for n, p in t.named_parameters().items()}

    whole = finish(small_trainer(tiny_model, "aria", steps=6), 0)
    t = small_trainer(tiny_model, "aria", steps=6)
    t.add_task(tasks[0])
    t.train(tasks[0], steps=4)
    t.save(str(tmp_path / "ckpt"))
    resumed = aria.ContinualTrainer.load(str(tmp_path / "ckpt"))
    assert resumed.phase_steps == 4 and resumed.method == "aria"
    got = finish(resumed, 0)
    assert got.keys() == whole.keys()
    for name in whole:
        np.testing.assert_array_equal(got[name], whole[name], err_msg=name)


def test_training_releases_the_gil(tiny_model, tokenizer):
    task = aria.load_task(str(CLS_TINY / "weather"), tokenizer=tokenizer, max_seq_len=32)
    t = small_trainer(tiny_model, steps=40, log_every=1000)
    t.add_task(task)
    counter = [0]
    done = threading.Event()

    def count():
        while not done.is_set():
            counter[0] += 1

    th = threading.Thread(target=count)
    th.start()
    time.sleep(0.05)
    start = counter[0]
    t0 = time.perf_counter()
    t.train(task)
    elapsed = time.perf_counter() - t0
    during = counter[0] - start
    done.set()
    th.join()
    # With the GIL held for the whole call the thread could not count at all while training.
    assert during > 1000, (during, elapsed)
