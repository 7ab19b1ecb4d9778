"""Registers the ``gleam::`` ops: compiled kernels when the extension loads, the
pure-PyTorch reference otherwise, plus fake (meta) kernels and autograd either way.

Backward formulas (PyTorch's conjugate-Wirtinger convention: the gradient of a real loss L
with respect to a complex z is dL/d(conj z), and for a linear map the input gradient is the
adjoint applied to the output gradient g). The mask is a constant of the fused ops: the typed
wrappers in ``gleam_core.ops`` route calls that need its gradient through the reference.
  sense_forward   y = A x:       grad_x = A^H g,      grad_maps = P(x, g)
  sense_adjoint   x = A^H y:     grad_y = A g,        grad_maps = P(g, y)
  sense_normal    z = A^H A x:   grad_x = A^H A g,    grad_maps = Q(x, g) = P(x, A g) + P(g, A x)
                  with P(u, k)[c, m] = conj(u_m) F^H(mask k_c) (gleam::sense_maps_grad) and Q
                  gleam::sense_normal_maps_grad; both rebuild the coil images they need instead
                  of saving a coil stack, and sum over the axes where maps broadcast.
  dc step         out = x - s (N x - ahy): grad_x = g - s N g, grad_ahy = s g,
                  grad_s = -Re(<x, N g> - <ahy, g>) per batch element, grad_maps = Q(x, -s g)
  cg_solve        x = (N + lam)^-1 b: grad_b = (N + lam)^-1 g (one more CG solve),
                  grad_lam = -Re <x, grad_b> per batch element, grad_maps = Q(x, -grad_b)
                  (from d x = -(N + lam)^-1 (dN) x)
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _build
from . import reference

SCHEMAS = {
    "sense_forward": "sense_forward(Tensor x, Tensor maps, Tensor mask, int[] fft_dims, int coil_chunk) -> Tensor",
    "sense_adjoint": "sense_adjoint(Tensor y, Tensor maps, Tensor mask, int[] fft_dims, int coil_chunk) -> Tensor",
    "sense_normal": "sense_normal(Tensor x, Tensor maps, Tensor mask, int[] fft_dims, int coil_chunk) -> Tensor",
    "dc_gradient_step": ("dc_gradient_step(Tensor x, Tensor ahy, Tensor maps, Tensor mask, Tensor step, "
                         "int[] fft_dims, int coil_chunk) -> Tensor"),
    "cg_solve": ("cg_solve(Tensor b, Tensor maps, Tensor mask, Tensor lam, Tensor? x0, int[] fft_dims, int iters, "
                 "float tol, int coil_chunk) -> (Tensor, Tensor, Tensor)"),
    "sense_maps_grad": ("sense_maps_grad(Tensor x, Tensor y, Tensor maps, Tensor mask, int[] fft_dims, "
                        "int coil_chunk) -> Tensor"),
    "sense_normal_maps_grad": ("sense_normal_maps_grad(Tensor x, Tensor g, Tensor maps, Tensor mask, int[] fft_dims, "
                               "int coil_chunk) -> Tensor"),
}

_REFERENCE = {
    "sense_forward": reference.sense_forward,
    "sense_adjoint": reference.sense_adjoint,
    "sense_normal": reference.sense_normal,
    "dc_gradient_step": reference.dc_gradient_step,
    "cg_solve": reference.cg_solve,
    "sense_maps_grad": reference.sense_maps_grad,
    "sense_normal_maps_grad": reference.sense_normal_maps_grad,
}

EXTENSION = _build.load_extension()
_libs: list[torch.library.Library] = []  # registrations live as long as these objects


def _has_kernel(name: str, key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"gleam::{name}", key)


def _register_kernels() -> dict[str, str]:
    """Defines the schemas if the extension did not, and fills every missing backend with the reference."""
    if EXTENSION is None:
        lib = torch.library.Library("gleam", "DEF")
        for schema in SCHEMAS.values():
            lib.define(schema)
        _libs.append(lib)
    impl = torch.library.Library("gleam", "IMPL")
    _libs.append(impl)
    backend = {}
    reason = _build.fallback_reason()
    for device, key in (("cpu", "CPU"), ("cuda", "CUDA")):
        compiled = all(_has_kernel(name, key) for name in SCHEMAS)
        # A failed build must be visible wherever the backend is shown, so nobody benchmarks
        # the reference by accident.
        backend[device] = "compiled" if compiled else "reference" + (f" ({reason})" if reason else "")
        if not compiled:
            for name, fn in _REFERENCE.items():
                if not _has_kernel(name, key):
                    impl.impl(name, fn, key)
    return backend


BACKEND = _register_kernels()


# ---- fake kernels: shapes only, for torch.compile / meta tensors ----

@torch.library.register_fake("gleam::sense_forward")
def _(x, maps, mask, fft_dims, coil_chunk):
    return x.new_empty((x.shape[0], maps.shape[1], *x.shape[2:]))


@torch.library.register_fake("gleam::sense_adjoint")
def _(y, maps, mask, fft_dims, coil_chunk):
    return y.new_empty((y.shape[0], maps.shape[2], *y.shape[2:]))


@torch.library.register_fake("gleam::sense_normal")
def _(x, maps, mask, fft_dims, coil_chunk):
    return torch.empty_like(x)


@torch.library.register_fake("gleam::dc_gradient_step")
def _(x, ahy, maps, mask, step, fft_dims, coil_chunk):
    return torch.empty_like(x)


@torch.library.register_fake("gleam::cg_solve")
def _(b, maps, mask, lam, x0, fft_dims, iters, tol, coil_chunk):
    batch = b.shape[0]
    return torch.empty_like(b), b.new_empty((batch,), dtype=mask.dtype), b.new_empty((batch,), dtype=torch.int64)


@torch.library.register_fake("gleam::sense_maps_grad")
def _(x, y, maps, mask, fft_dims, coil_chunk):
    return torch.empty_like(maps)


@torch.library.register_fake("gleam::sense_normal_maps_grad")
def _(x, g, maps, mask, fft_dims, coil_chunk):
    return torch.empty_like(maps)


# ---- autograd ----

def _no_constant_grads(ctx, op: str, *names_and_flags: tuple[str, bool]) -> None:
    for name, needed in names_and_flags:
        if needed:
            raise RuntimeError(
                f"gleam::{op} does not differentiate with respect to {name}; call gleam_core.ops.{op} "
                f"(it falls back to the pure-PyTorch reference when {name} requires grad)")


def _batch_sum(t: Tensor, like: Tensor) -> Tensor:
    """Sums a per-element real tensor (B, ...) to the shape of a step/lam parameter."""
    per_batch = t.flatten(1).sum(1)
    return per_batch.sum() if like.dim() == 0 else per_batch


def _per_batch(p: Tensor, like: Tensor) -> Tensor:
    return p.reshape(-1, *([1] * (like.dim() - 1)))


def _setup_linear(ctx, inputs, output):
    data, maps, mask, fft_dims, coil_chunk = inputs
    # The data argument is kept (a reference, not a copy) only when the maps need a gradient.
    ctx.save_for_backward(maps, mask, data if ctx.needs_input_grad[1] else None)
    ctx.fft_dims, ctx.coil_chunk = fft_dims, coil_chunk


def _linear_backward(name: str, data_grad, maps_grad):
    """The backward of a linear SENSE op ``name``(data, maps, mask, ...): ``data_grad(g, ...)`` is
    its adjoint (nothing saved), ``maps_grad(data, g, ...)`` the compiled maps gradient (needs the
    data argument, kept only when the maps need a gradient)."""
    def backward(ctx, g):
        _no_constant_grads(ctx, name, ("mask", ctx.needs_input_grad[2]))
        maps, mask, data = ctx.saved_tensors
        g = g.contiguous()
        rest = (maps, mask, ctx.fft_dims, ctx.coil_chunk)
        gdata = data_grad(g, *rest) if ctx.needs_input_grad[0] else None
        gmaps = maps_grad(data, g, *rest) if ctx.needs_input_grad[1] else None
        return gdata, gmaps, None, None, None
    return backward


_ops = torch.ops.gleam
# sense_maps_grad(x, y, ...) = conj(x) F^H(mask y) serves A x (g is y) and A^H y (g is x).
_backward_forward = _linear_backward("sense_forward", _ops.sense_adjoint, _ops.sense_maps_grad)
_backward_adjoint = _linear_backward("sense_adjoint", _ops.sense_forward,
                                     lambda y, g, *rest: _ops.sense_maps_grad(g, y, *rest))
_backward_normal = _linear_backward("sense_normal", _ops.sense_normal, _ops.sense_normal_maps_grad)


def _setup_dc(ctx, inputs, output):
    x, ahy, maps, mask, step, fft_dims, coil_chunk = inputs
    ctx.save_for_backward(x, ahy, maps, mask, step)
    ctx.fft_dims, ctx.coil_chunk = fft_dims, coil_chunk


def _backward_dc(ctx, g):
    _no_constant_grads(ctx, "dc_gradient_step", ("mask", ctx.needs_input_grad[3]))
    x, ahy, maps, mask, step = ctx.saved_tensors
    g = g.contiguous()
    ng = torch.ops.gleam.sense_normal(g, maps, mask, ctx.fft_dims, ctx.coil_chunk)
    s = _per_batch(step, x)
    gx = g - s * ng if ctx.needs_input_grad[0] else None
    gahy = s * g if ctx.needs_input_grad[1] else None
    gstep = None
    if ctx.needs_input_grad[4]:
        gstep = -_batch_sum((x.conj() * ng).real - (ahy.conj() * g).real, step).to(step.dtype)
    gmaps = None
    if ctx.needs_input_grad[2]:
        gmaps = torch.ops.gleam.sense_normal_maps_grad(x, (-s * g).contiguous(), maps, mask, ctx.fft_dims,
                                                       ctx.coil_chunk)
    return gx, gahy, gmaps, None, gstep, None, None


def _setup_cg(ctx, inputs, output):
    b, maps, mask, lam, x0, fft_dims, iters, tol, coil_chunk = inputs
    ctx.mark_non_differentiable(output[1], output[2])
    ctx.save_for_backward(maps, mask, lam, output[0])
    ctx.fft_dims, ctx.iters, ctx.tol, ctx.coil_chunk = fft_dims, iters, tol, coil_chunk


def _backward_cg(ctx, gx, gresid, giters):
    _no_constant_grads(ctx, "dc_cg", ("mask", ctx.needs_input_grad[2]))
    maps, mask, lam, x = ctx.saved_tensors
    if gx is None:
        return None, None, None, None, None, None, None, None, None
    # Implicit differentiation: the operator is Hermitian, so the adjoint solve is one more
    # CG solve with the same operator; nothing from the forward iterations is kept.
    gb, _, _ = torch.ops.gleam.cg_solve(gx.contiguous(), maps, mask, lam, None, ctx.fft_dims, ctx.iters, ctx.tol,
                                        ctx.coil_chunk)
    glam = None
    if ctx.needs_input_grad[3]:
        glam = -_batch_sum((x.conj() * gb).real, lam).to(lam.dtype)
    gmaps = None
    if ctx.needs_input_grad[1]:
        gmaps = torch.ops.gleam.sense_normal_maps_grad(x, -gb, maps, mask, ctx.fft_dims, ctx.coil_chunk)
    return (gb if ctx.needs_input_grad[0] else None), gmaps, None, glam, None, None, None, None, None


torch.library.register_autograd("gleam::sense_forward", _backward_forward, setup_context=_setup_linear)
torch.library.register_autograd("gleam::sense_adjoint", _backward_adjoint, setup_context=_setup_linear)
torch.library.register_autograd("gleam::sense_normal", _backward_normal, setup_context=_setup_linear)
torch.library.register_autograd("gleam::dc_gradient_step", _backward_dc, setup_context=_setup_dc)
torch.library.register_autograd("gleam::cg_solve", _backward_cg, setup_context=_setup_cg)
