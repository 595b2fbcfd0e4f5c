"""aria.Tensor and numpy: round trips, zero-copy views both ways, autograd, ops, no_grad, DLPack on the CPU."""
import numpy as np
import pytest

import aria


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int32", "int64"])
def test_round_trip_every_numpy_dtype(dtype):
    a = (np.arange(24).reshape(2, 3, 4) * 3 - 7).astype(dtype)
    t = aria.tensor(a)
    assert t.shape == (2, 3, 4) and t.dtype == dtype and t.device == "cpu"
    back = t.numpy()
    assert back.dtype == a.dtype and back.shape == a.shape
    np.testing.assert_array_equal(back, a)
    assert not np.shares_memory(back, a)  # aria.tensor copies


def test_from_numpy_and_numpy_share_memory():
    a = np.zeros((3, 4), dtype=np.float32)
    t = aria.from_numpy(a)
    a[1, 2] = 5.0                      # numpy writes, aria sees it
    assert t.numpy()[1, 2] == 5.0
    v = t.numpy()
    v[0, 0] = -1.0                     # aria's memory written through numpy, the array sees it
    assert a[0, 0] == -1.0
    assert np.shares_memory(v, a)
    t.fill_(2.0)                       # an aria op in place
    assert (a == 2.0).all()


def test_from_numpy_keeps_the_array_alive_and_views_strides():
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    t = aria.from_numpy(a.T)           # a transposed view: strides in elements, no copy
    assert t.shape == (4, 3) and t.strides == (1, 4) and not t.is_contiguous
    del a
    np.testing.assert_array_equal(t.numpy(), np.arange(12, dtype=np.float64).reshape(3, 4).T)
    np.testing.assert_array_equal(t.contiguous().numpy(), t.numpy())


def test_from_numpy_refuses_what_needs_a_copy():
    ro = np.ones(4, dtype=np.float32)
    ro.setflags(write=False)
    with pytest.raises(aria.InputError, match="without a copy"):
        aria.from_numpy(ro)
    with pytest.raises(aria.InputError, match="without a copy"):
        aria.from_numpy(np.arange(6, dtype=np.float32)[::-1])
    np.testing.assert_array_equal(aria.tensor(ro).numpy(), ro)      # aria.tensor copies instead
    with pytest.raises(aria.InputError, match="unsupported array dtype"):
        aria.from_numpy(np.zeros(3, dtype=np.complex64))


def test_bfloat16_has_no_numpy_view():
    t = aria.tensor([1.5, -2.0, 3.25], dtype="bfloat16")
    assert t.dtype == "bfloat16"
    with pytest.raises(aria.InputError, match="bfloat16"):
        t.numpy()
    np.testing.assert_array_equal(t.to("float32").numpy(), np.array([1.5, -2.0, 3.25], dtype=np.float32))


def test_autograd_through_python_ops():
    x = aria.tensor([[1.0, -2.0], [3.0, 0.5]], dtype="float64", requires_grad=True)
    w = aria.tensor([[0.5], [-1.0]], dtype="float64", requires_grad=True)
    y = aria.sum(aria.square(aria.matmul(x, w) - 1.0)) * 0.5 + (x * 2).sum()
    y.backward()
    xn, wn = x.numpy(), w.numpy()
    r = xn @ wn - 1.0
    np.testing.assert_allclose(w.grad.numpy(), xn.T @ r, rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), r @ wn.T + 2.0, rtol=1e-12)
    assert y.item() == pytest.approx(0.5 * float((r ** 2).sum()) + 2 * float(xn.sum()))


def test_scalar_operators_and_no_grad():
    x = aria.tensor([1.0, 2.0, 4.0], requires_grad=True)
    np.testing.assert_allclose((3 - x).numpy(), [2, 1, -1])
    np.testing.assert_allclose((8 / x).numpy(), [8, 4, 2])
    np.testing.assert_allclose((-x + 1).numpy(), [0, -1, -3])
    with aria.no_grad():
        assert not aria.grad_enabled()
        y = x * 2
    assert aria.grad_enabled()
    assert not y.requires_grad
    with pytest.raises(aria.InputError):
        aria.tensor([1.0, 2.0]) + aria.tensor([1.0, 2.0, 3.0])   # shapes that do not broadcast


def test_dlpack_with_numpy_without_copies():
    t = aria.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert t.__dlpack_device__() == (1, 0)
    n = np.from_dlpack(t)
    assert np.shares_memory(n, t.numpy())
    np.testing.assert_array_equal(n, np.arange(6, dtype=np.float32).reshape(2, 3))
    a = np.arange(8, dtype=np.int64)
    u = aria.from_dlpack(a)
    a[3] = 100
    assert u.dtype == "int64" and u.numpy()[3] == 100
    cap = t.__dlpack__()
    aria.from_dlpack(cap)
    with pytest.raises(aria.InputError, match="consumed once"):
        aria.from_dlpack(cap)
    with pytest.raises(aria.InputError, match="__dlpack__"):
        aria.from_dlpack([1, 2, 3])


def test_dlpack_with_torch_on_the_cpu():
    torch = pytest.importorskip("torch")
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)[:, 1:]   # a strided view
    t = aria.from_dlpack(x)
    assert t.shape == (3, 3) and t.strides == (4, 1)
    x.mul_(2)                                                         # torch writes, aria sees it
    np.testing.assert_array_equal(t.numpy(), x.numpy())
    back = torch.from_dlpack(aria.tensor([[1.0, 2.0], [3.0, 4.0]], dtype="bfloat16"))
    assert back.dtype == torch.bfloat16 and back.float().tolist() == [[1.0, 2.0], [3.0, 4.0]]
