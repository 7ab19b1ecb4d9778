"""NumPy and DLPack arrays through every public op: same results as the torch path, the caller's
array type back, memory shared where it can be, and clear errors for wrong dtypes or mixed types."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from gleam_core import ops
from gleam_core.interop import accepts_arrays, to_torch
from ops_cases import CASES, make, tol

CASE = CASES[0]  # 2D, B=2, C=5, 1D mask
CASE_3D = CASES[3]

# Every public op, called on (x, maps, y, mask) of one array kind. A new public op must be added
# here: test_every_public_op_is_covered fails otherwise.
CALLS = {
    "sense_forward": lambda o, x, maps, y, mask: o.sense_forward(x, maps, mask),
    "sense_adjoint": lambda o, x, maps, y, mask: o.sense_adjoint(y, maps, mask),
    "sense_normal": lambda o, x, maps, y, mask: o.sense_normal(x, maps, mask),
    "dc_gradient_step": lambda o, x, maps, y, mask: o.dc_gradient_step(x, y, maps, mask, 0.3),
    "dc_cg": lambda o, x, maps, y, mask: o.dc_cg(x, maps, mask, 0.05, iters=4),
    "SenseOp.forward": lambda o, x, maps, y, mask: o.SenseOp(maps, mask).forward(x),
    "SenseOp.adjoint": lambda o, x, maps, y, mask: o.SenseOp(maps, mask).adjoint(y),
    "SenseOp.normal": lambda o, x, maps, y, mask: o.SenseOp(maps, mask).normal(x),
    "SenseOp.gradient_step": lambda o, x, maps, y, mask: o.SenseOp(maps, mask).gradient_step(x, 0.3, y=y),
    "SenseOp.cg": lambda o, x, maps, y, mask: o.SenseOp(maps, mask).cg(x, 0.05, x0=x, iters=3),
    "fft2c": lambda o, x, maps, y, mask: o.fft2c(y),
    "ifft2c": lambda o, x, maps, y, mask: o.ifft2c(y),
    "fftnc": lambda o, x, maps, y, mask: o.fftnc(y, (-1,)),
    "ifftnc": lambda o, x, maps, y, mask: o.ifftnc(y, dims=[-2, -1]),
    "rss": lambda o, x, maps, y, mask: o.rss(y),
    "coil_combine": lambda o, x, maps, y, mask: o.coil_combine(y, maps),
    "zero_filled": lambda o, x, maps, y, mask: o.zero_filled(y, maps, mask),
    "zero_filled_rss": lambda o, x, maps, y, mask: o.zero_filled_rss(y),
}
CALLS_3D = {
    "fft3c": lambda o, x, maps, y, mask: o.fft3c(y),
    "ifft3c": lambda o, x, maps, y, mask: o.ifft3c(y),
}
NOT_ARRAY_OPS = {"CGResult", "SCHEMAS", "backend", "reference", "SenseOp"}
SENSEOP_METHODS = ["__init__", "forward", "adjoint", "normal", "gradient_step", "cg"]


def numpy_inputs(case, dtype):
    return [t.numpy() for t in make(case, dtype)]


def as_tuple(r):
    return tuple(r) if isinstance(r, tuple) else (r,)


def test_every_public_op_is_covered():
    public = set(ops.__all__) - NOT_ARRAY_OPS
    tested = {name for name in [*CALLS, *CALLS_3D] if "." not in name}
    assert public == tested, f"untested public ops: {public - tested}; stale names: {tested - public}"
    for name in public:
        assert hasattr(getattr(ops, name), "__wrapped__"), f"ops.{name} does not accept NumPy/DLPack arrays"
    for method in SENSEOP_METHODS:
        assert hasattr(getattr(ops.SenseOp, method), "__wrapped__"), f"SenseOp.{method} is not wrapped"


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
@pytest.mark.parametrize("name", [*CALLS, *CALLS_3D])
def test_numpy_in_numpy_out_equals_torch(name, dtype):
    case, fn = (CASE_3D, CALLS_3D[name]) if name in CALLS_3D else (CASE, CALLS[name])
    tensors = make(case, dtype)
    got = as_tuple(fn(ops, *[t.numpy() for t in tensors]))
    want = as_tuple(fn(ops, *tensors))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert type(g) is np.ndarray, f"{name} returned {type(g).__name__} for NumPy input"
        assert g.dtype == w.numpy().dtype and g.shape == tuple(w.shape)
        assert float(w.abs().max()) > 0  # random data: a zero result would prove nothing
        np.testing.assert_allclose(g, w.numpy(), rtol=tol(dtype), atol=tol(dtype) * float(w.abs().max()))


def test_named_tuple_comes_back_as_named_tuple():
    x, maps, y, mask = numpy_inputs(CASE, torch.complex64)
    r = ops.dc_cg(x, maps, mask, np.float32(0.05), iters=4)
    assert isinstance(r, ops.CGResult)
    assert r.x.dtype == np.complex64 and r.residual.dtype == np.float32 and r.iterations.dtype == np.int64


def test_numpy_per_batch_parameters():
    x, maps, y, mask = numpy_inputs(CASE, torch.complex128)
    step = np.array([0.2, 0.4])
    got = ops.dc_gradient_step(x, y, maps, mask, step)
    want = ops.dc_gradient_step(*(torch.from_numpy(a) for a in (x, y, maps, mask)), torch.from_numpy(step))
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-12)


def test_memory_is_shared_not_copied():
    x, maps, y, mask = numpy_inputs(CASE, torch.complex64)
    op = ops.SenseOp(maps, mask)
    assert op.maps.data_ptr() == maps.ctypes.data  # the operator holds a view of the caller's maps
    for a in (maps, mask, mask.astype(bool), x.astype(np.complex128)):
        assert to_torch("a", a).data_ptr() == a.ctypes.data
    ro = x.copy()
    ro.flags.writeable = False
    t = to_torch("x", ro)
    assert t.data_ptr() == ro.ctypes.data and t.dtype == torch.complex64
    out = ops.sense_normal(ro, maps, mask)  # read-only input accepted, not written to
    np.testing.assert_array_equal(ro, x)
    np.testing.assert_allclose(out, ops.sense_normal(x, maps, mask), rtol=0)


def test_layouts_torch_cannot_share_are_copied_with_the_same_dtype():
    x, maps, y, mask = numpy_inputs(CASE, torch.complex64)
    flipped = x[:, :, ::-1]
    swapped = x.astype(x.dtype.newbyteorder(">"))
    for a in (flipped, swapped):
        t = to_torch("x", a)
        assert t.dtype == torch.complex64
        np.testing.assert_array_equal(t.numpy(), a)
    want = ops.sense_normal(np.ascontiguousarray(flipped), maps, mask)
    np.testing.assert_allclose(ops.sense_normal(flipped, maps, mask), want, rtol=0)


def test_real_float64_where_complex_is_needed_is_refused():
    x, maps, y, mask = numpy_inputs(CASE, torch.complex128)
    with pytest.raises(ValueError, match=r"x must be complex64 or complex128.*float64"):
        ops.sense_normal(x.real.copy(), maps, mask)
    with pytest.raises(ValueError, match=r"maps must be complex64 or complex128.*float64"):
        ops.SenseOp(maps.real.copy(), mask)
    with pytest.raises(ValueError, match="complex"):
        ops.fft2c(y.real.copy())


def test_mixed_precision_is_refused_not_converted():
    x, maps, y, mask = numpy_inputs(CASE, torch.complex64)
    with pytest.raises(ValueError, match="x has dtype torch.complex128 but maps has torch.complex64"):
        ops.sense_normal(x.astype(np.complex128), maps, mask)


def test_mixed_array_types_are_refused():
    tensors = make(CASE, torch.complex64)
    x, maps, y, mask = (t.numpy() for t in tensors)
    with pytest.raises(ValueError, match=r"mixed array types: x is a torch.Tensor but maps is a numpy.ndarray"):
        ops.sense_normal(tensors[0], maps, mask)
    with pytest.raises(ValueError, match=r"mixed array types: x is a numpy.ndarray but mask is a torch.Tensor"):
        ops.sense_normal(x, maps, mask=tensors[3])
    with pytest.raises(ValueError, match="mixed array types"):
        ops.sense_normal(x, maps, FakeArray(tensors[3]))


def test_dtype_torch_cannot_hold_is_named():
    x, maps, y, mask = numpy_inputs(CASE, torch.complex128)
    with pytest.raises(ValueError, match=r"^x is a NumPy array of dtype complex256|^x is a NumPy array of dtype clongdouble"):
        ops.sense_normal(x.astype(np.clongdouble), maps, mask)
    with pytest.raises(ValueError, match="mask is a NumPy array of dtype <U1"):
        ops.sense_normal(x, maps, np.array(["a"]))


# ---- a third-party array library that speaks only DLPack (stands in for CuPy/JAX on any machine) ----

class NoNamespaceArray:
    """DLPack only: no __array_namespace__, and its module (this one) has no from_dlpack."""

    def __init__(self, t: torch.Tensor) -> None:
        self.t = t

    def __dlpack__(self, **kwargs):
        return self.t.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.t.__dlpack_device__()


class FakeArray(NoNamespaceArray):
    def __array_namespace__(self):
        return FAKE_NAMESPACE


FAKE_NAMESPACE = types.SimpleNamespace(from_dlpack=lambda obj: FakeArray(torch.from_dlpack(obj)))


def test_dlpack_in_same_library_out():
    tensors = make(CASE, torch.complex64)
    fakes = [FakeArray(t.clone()) for t in tensors]
    r = ops.dc_cg(fakes[0], fakes[1], fakes[3], 0.05, iters=4)
    want = ops.dc_cg(tensors[0], tensors[1], tensors[3], 0.05, iters=4)
    assert isinstance(r, ops.CGResult) and all(type(v) is FakeArray for v in r)
    torch.testing.assert_close(r.x.t, want.x, rtol=1e-5, atol=1e-6)
    op = ops.SenseOp(fakes[1], fakes[3])
    assert op.maps.data_ptr() == fakes[1].t.data_ptr()  # shared through DLPack, not copied
    out = op.forward(fakes[0])
    assert type(out) is FakeArray
    torch.testing.assert_close(out.t, ops.sense_forward(*tensors[:2], tensors[3]), rtol=1e-5, atol=1e-6)


def test_dlpack_library_without_from_dlpack_is_named():
    assert not hasattr(sys.modules[__name__], "from_dlpack")
    x, maps, y, mask = make(CASE, torch.complex64)
    with pytest.raises(ValueError, match="x is a .*NoNamespaceArray, whose library has no from_dlpack"):
        ops.sense_normal(NoNamespaceArray(x), NoNamespaceArray(maps), NoNamespaceArray(mask))


def test_jax_arrays_round_trip():
    jnp = pytest.importorskip("jax.numpy")  # optional: JAX is not a dependency
    x, maps, y, mask = make(CASE, torch.complex64)
    got = ops.sense_normal(jnp.asarray(x.numpy()), jnp.asarray(maps.numpy()), jnp.asarray(mask.numpy()))
    assert type(got).__module__.startswith("jax")
    np.testing.assert_allclose(np.asarray(got), ops.sense_normal(x, maps, mask).numpy(), rtol=1e-5, atol=1e-5)


def test_torch_path_is_untouched_and_compiles():
    x, maps, y, mask = make(CASE, torch.complex64)
    op = ops.SenseOp(maps, mask)
    assert type(op.normal(x)) is torch.Tensor
    # torch.compile traces the wrapper (no graph break): no foreign arrays ever reach it there.
    fn = torch.compile(lambda v: op.normal(v) + ops.fft2c(v), fullgraph=True, backend="eager")
    torch.testing.assert_close(fn(x), op.normal(x) + ops.fft2c(x))


def test_accepts_arrays_keeps_non_array_arguments():
    f = accepts_arrays(lambda a, scale=1.0, dims=(0,): a * scale)
    got = f(np.arange(3.0), scale=2.0, dims=[0])
    assert type(got) is np.ndarray and got.dtype == np.float64
    np.testing.assert_array_equal(got, [0.0, 2.0, 4.0])
    assert f(1.5, scale=2.0) == 3.0  # no arrays at all: called as is


@pytest.mark.cuda
def test_cupy_in_cupy_out_zero_copy():
    cp = pytest.importorskip("cupy")  # optional extra: pip install ".[cupy]"
    for dtype in (torch.complex64, torch.complex128):
        x, maps, y, mask = make(CASE, dtype, device="cuda")
        cx, cmaps, cy, cmask = (cp.from_dlpack(t.clone()) for t in (x, maps, y, mask))
        op = ops.SenseOp(cmaps, cmask)
        assert op.maps.data_ptr() == cmaps.data.ptr
        for name in ("sense_forward", "sense_adjoint", "sense_normal", "dc_cg", "rss", "fft2c"):
            got = as_tuple(CALLS[name](ops, cx, cmaps, cy, cmask))
            want = as_tuple(CALLS[name](ops, x, maps, y, mask))
            for g, w in zip(got, want):
                assert isinstance(g, cp.ndarray)
                np.testing.assert_allclose(cp.asnumpy(g), w.cpu().numpy(), rtol=tol(dtype),
                                           atol=tol(dtype) * float(w.abs().max()))
        with pytest.raises(ValueError, match="mixed array types"):
            ops.sense_normal(cx, cmaps, mask.cpu().numpy())
