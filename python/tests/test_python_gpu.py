"""GPU cases (the GPU box): DLPack exchange with torch on CUDA, and a bf16 continual step. Without a GPU
each case skips with "ARIA_TEST_SKIPPED: " in its reason, which ctest reports as skipped (python/CMakeLists.txt
registers every case of this file as its own entry)."""
import numpy as np
import pytest

import aria
from conftest import CLS_TINY


def need_gpu():
    try:
        aria.zeros([1], device="cuda")
    except aria.DeviceError as e:
        pytest.skip(f"ARIA_TEST_SKIPPED: no CUDA device ({e})")


def test_dlpack_cuda_with_torch():
    need_gpu()
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("ARIA_TEST_SKIPPED: torch has no CUDA")
    x = torch.arange(24, dtype=torch.float32, device="cuda").reshape(4, 6)
    t = aria.from_dlpack(x)                    # torch -> aria, no copy
    assert t.device == "cuda:0" and t.shape == (4, 6)
    y = t * 2.0 + 1.0                          # an aria kernel on torch's memory
    back = torch.from_dlpack(y)                # aria -> torch, no copy
    assert back.device.type == "cuda"
    torch.testing.assert_close(back, x * 2 + 1)
    x.add_(1)                                  # torch writes, aria's view sees it
    torch.cuda.synchronize()
    np.testing.assert_array_equal(t.to("cpu").numpy(), x.cpu().numpy())
    b = torch.from_dlpack(aria.tensor([[1.5, 2.0]], dtype="bfloat16", device="cuda"))
    assert b.dtype == torch.bfloat16 and b.float().tolist() == [[1.5, 2.0]]


def test_bf16_continual_step(tiny_model, tokenizer):
    need_gpu()
    task = aria.load_task(str(CLS_TINY / "weather"), tokenizer=tokenizer, max_seq_len=32)
    settings = {"steps_per_task": 6, "batch_size": 4, "lr": 3e-3, "max_seq_len": 32, "seed": 7}
    t = aria.ContinualTrainer(tiny_model, "aria", train={**settings, "precision": "bf16"}, device="cuda",
                              log_every=1)
    assert t.precision == "bf16"
    t.add_task(task)
    assert t.train(task) == 6
    assert all(np.isfinite(r["loss"]) for r in t.log)
    assert t.named_parameters()["h.0.mlp.slow.c_fc.weight"].dtype == "bfloat16"
    ref = aria.ContinualTrainer(tiny_model, "aria", train=settings, device="cpu", log_every=1)
    ref.add_task(task)
    ref.train(task)
    # bf16 rounding: the losses follow the float32 run's, not bit for bit.
    np.testing.assert_allclose([r["ce"] for r in t.log], [r["ce"] for r in ref.log], rtol=0.05, atol=0.02)
