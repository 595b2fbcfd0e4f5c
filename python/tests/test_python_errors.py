"""Bad input raises aria.InputError (a ValueError); device problems aria.DeviceError; never a crash."""
import json

import pytest

import aria
from conftest import CLS_TINY, HF_TINY


def test_exception_classes():
    assert issubclass(aria.InputError, aria.AriaError) and issubclass(aria.InputError, ValueError)
    assert issubclass(aria.EngineError, aria.AriaError) and issubclass(aria.EngineError, RuntimeError)
    assert issubclass(aria.DeviceError, aria.EngineError)


def test_bad_files_and_folders(tmp_path):
    with pytest.raises(aria.InputError, match="config.json"):
        aria.load_gpt2(str(tmp_path))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(aria.InputError):
        aria.load_gpt2(str(bad))
    with pytest.raises(aria.InputError):
        aria.load_task(str(tmp_path / "nope"), tokenizer=aria.Tokenizer.for_model(str(HF_TINY)))


def test_bad_arguments(tiny_model, tokenizer):
    with pytest.raises(aria.InputError, match="bad device|device"):
        aria.load_gpt2(str(HF_TINY), device="tpu")
    with pytest.raises(aria.InputError, match="at least 2"):
        aria.score(tiny_model, "a")
    with pytest.raises(aria.InputError, match="exactly one"):
        aria.score(tiny_model)
    with pytest.raises(aria.InputError, match="unknown dtype"):
        aria.zeros([2], dtype="float8")
    with pytest.raises(aria.InputError, match="unknown GPT-2 preset"):
        aria.gpt2_random("huge")
    with pytest.raises(aria.InputError, match="out of range|outside|vocab"):
        tiny_model.logits([[1, 2, 60000]])


def test_cuda_without_a_gpu_is_a_device_error():
    if aria.tensor([1.0]).device == "cpu" and _has_gpu():
        pytest.skip("a GPU is visible")
    with pytest.raises(aria.DeviceError, match="CUDA"):
        aria.load_gpt2(str(HF_TINY), device="cuda")
    with pytest.raises(aria.DeviceError):
        aria.tensor([1.0]).to("cuda")


def _has_gpu():
    try:
        aria.zeros([1], device="cuda")
        return True
    except aria.DeviceError:
        return False


def test_bad_task_data(tokenizer):
    with pytest.raises(aria.InputError, match="pair"):
        aria.make_task("t", train=["just text"], test=[("x", 0)], tokenizer=tokenizer)
    with pytest.raises(aria.InputError, match="unknown label 'maybe'"):
        aria.make_task("t", train=[("x", "yes")], test=[("y", "maybe")], labels=["yes", "no"], tokenizer=tokenizer)
    with pytest.raises(aria.InputError, match="empty"):
        aria.make_task("t", train=[("", 0)], test=[("y", 0)], tokenizer=tokenizer)
    with pytest.raises(aria.InputError, match="outside"):
        aria.make_task("t", train=[("x", 3)], test=[("y", 0)], labels=["a", "b"], tokenizer=tokenizer)
    with pytest.raises(aria.InputError, match="mix"):
        aria.make_task("t", train=[("x", 1)], test=[("y", "a")], tokenizer=tokenizer)


def test_bad_settings_name_the_key(tiny_model):
    with pytest.raises(aria.InputError, match="spc_lambada"):
        aria.ContinualTrainer(tiny_model, "aria", aria={"spc_lambada": 1.0})
    with pytest.raises(aria.InputError, match="train.lr"):
        aria.ContinualTrainer(tiny_model, "finetune", train={"lr": -1.0})
    with pytest.raises(aria.InputError, match="unknown method"):
        aria.ContinualTrainer(tiny_model, "sgd-magic")
    with pytest.raises(aria.InputError, match="bf16|bfloat16|CUDA"):
        aria.ContinualTrainer(tiny_model, "finetune", train={"precision": "bf16"})


def test_trainer_misuse(tiny_model, tokenizer):
    task = aria.load_task(str(CLS_TINY / "weather"), tokenizer=tokenizer, max_seq_len=32)
    other = aria.load_task(str(CLS_TINY / "animal"), tokenizer=tokenizer, max_seq_len=32)
    t = aria.ContinualTrainer(tiny_model, "finetune", train={"steps_per_task": 2, "batch_size": 4})
    t.add_task(task)
    with pytest.raises(aria.AriaError, match="animal|weather"):
        t.train(other)                     # not the active task
    with pytest.raises(aria.InputError):
        t.consolidate_task(5, task)
    with pytest.raises(aria.InputError, match="split"):
        t.evaluate_all_tasks([task], "dev")
    with pytest.raises(aria.InputError):
        aria.ContinualTrainer.load("/nonexistent/checkpoint")
    with pytest.raises(aria.InputError, match="callable"):
        aria.register_method("not-callable", 3)


def test_python_method_errors_propagate(tiny_model, tokenizer):
    class Broken:
        def extra_loss(self, trainer, batch):
            return 42.0

    aria.register_method("broken-extra-loss", Broken)
    with pytest.raises(aria.InputError, match="already|registered|known"):
        aria.register_method("broken-extra-loss", Broken)
    task = aria.load_task(str(CLS_TINY / "weather"), tokenizer=tokenizer, max_seq_len=32)
    t = aria.ContinualTrainer(tiny_model, "broken-extra-loss", train={"steps_per_task": 2, "batch_size": 4})
    t.add_task(task)
    with pytest.raises(aria.InputError, match="extra_loss must return"):
        t.train(task)
