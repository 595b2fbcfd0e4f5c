"""A continual-learning method written in Python (aria.L2ToPrevious, an extra loss on aria tensors with
autograd, plugged in through aria.register_method) trains the same model as the built-in ewc with a
uniform Fisher (F = 1: EWC's penalty is then L2 to the previous weights)."""
import numpy as np
import pytest

import aria
from conftest import CLS_TINY

LAM = 50.0
aria.register_method("l2-test", lambda: aria.L2ToPrevious(LAM), base="finetune")


def run(model, tasks, method, tmp_path=None):
    t = aria.ContinualTrainer(model, method, aria={"spc_lambda": LAM, "fisher_estimator": "uniform"},
                              train={"steps_per_task": 8, "batch_size": 4, "lr": 3e-3, "max_seq_len": 32, "seed": 11},
                              log_every=1)
    r = aria.run_sequence(t, tasks)
    return t, r


def test_l2_in_python_equals_ewc_with_a_uniform_fisher(tiny_model, tokenizer):
    tasks = [aria.load_task(str(CLS_TINY / n), tokenizer=tokenizer, max_seq_len=32) for n in ("weather", "animal")]
    py, r_py = run(tiny_model, tasks, "l2-test")
    ewc, r_ewc = run(tiny_model, tasks, "ewc")
    assert "l2-test" in aria.method_names() and py.method_spec["plugin"]
    assert isinstance(py.plugin, aria.L2ToPrevious) and len(py.plugin.anchors) == 1
    # The penalty is active on the second task only, and it is not zero there.
    second = [r for r in py.log if r["task"] == "animal"]
    assert all(r["method_loss"] == 0 for r in py.log if r["task"] == "weather")
    assert all(r["method_loss"] > 0 for r in second[1:])
    # The same training: the penalty's gradient lam (theta - theta*) enters each step alike.
    ewc_second = [r for r in ewc.log if r["task"] == "animal"]
    np.testing.assert_allclose([r["ce"] for r in second], [r["ce"] for r in ewc_second], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([r["grad_norm"] for r in second], [r["grad_norm"] for r in ewc_second], rtol=1e-5)
    np.testing.assert_allclose([r["method_loss"] for r in second[1:]], [r["spc"] for r in ewc_second[1:]],
                               rtol=1e-4, atol=1e-7)
    a, b = py.named_parameters(), ewc.named_parameters()
    for name in a:
        np.testing.assert_allclose(a[name].numpy(), b[name].numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    assert r_py["matrix"] == r_ewc["matrix"]


def test_the_penalty_matters(tiny_model, tokenizer):
    tasks = [aria.load_task(str(CLS_TINY / n), tokenizer=tokenizer, max_seq_len=32) for n in ("weather", "animal")]
    py, _ = run(tiny_model, tasks, "l2-test")
    ft, _ = run(tiny_model, tasks, "finetune")
    anchor = py.plugin.anchors[0]
    drift = lambda t: sum(float(np.sum((t.named_parameters()[n].numpy() - a.numpy()) ** 2)) for n, a in anchor.items())
    assert drift(py) < drift(ft)      # pulled toward the previous task's weights


def test_python_method_state_is_checkpointed(tiny_model, tokenizer, tmp_path):
    tasks = [aria.load_task(str(CLS_TINY / n), tokenizer=tokenizer, max_seq_len=32) for n in ("weather", "animal")]
    py, _ = run(tiny_model, tasks, "l2-test")
    py.save(str(tmp_path / "ckpt"))
    again = aria.ContinualTrainer.load(str(tmp_path / "ckpt"))
    assert again.plugin.lam == LAM and len(again.plugin.anchors) == 1
    for n, a in py.plugin.anchors[0].items():
        np.testing.assert_array_equal(again.plugin.anchors[0][n].numpy(), a.numpy())
