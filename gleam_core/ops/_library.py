"""Registers the ``gleam::`` ops: compiled kernels when the extension loads, the
pure-PyTorch reference otherwise, plus fake (meta) kernels and autograd either way.

Backward formulas (maps and mask are constants of the fused ops; the typed wrappers in
``gleam_core.ops`` route calls that need their gradients through the reference):
  sense_forward   grad_x = A^H g
  sense_adjoint   grad_y = A g
  sense_normal    grad_x = A^H A g                      (Hermitian)
  dc step         out = x - s (N x - ahy): grad_x = g - s N g, grad_ahy = s g,
                  grad_s = -Re(<x, N g> - <ahy, g>) per batch element
  cg_solve        x = (N + lam)^-1 b: grad_b = (N + lam)^-1 g (one more CG solve),
                  grad_lam = -Re <x, grad_b> per batch element
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
}

_REFERENCE = {
    "sense_forward": reference.sense_forward,
    "sense_adjoint": reference.sense_adjoint,
    "sense_normal": reference.sense_normal,
    "dc_gradient_step": reference.dc_gradient_step,
    "cg_solve": reference.cg_solve,
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
    _, maps, mask, fft_dims, coil_chunk = inputs
    ctx.save_for_backward(maps, mask)
    ctx.fft_dims, ctx.coil_chunk = fft_dims, coil_chunk


def _backward_forward(ctx, g):
    _no_constant_grads(ctx, "sense_forward", ("maps", ctx.needs_input_grad[1]), ("mask", ctx.needs_input_grad[2]))
    maps, mask = ctx.saved_tensors
    gx = torch.ops.gleam.sense_adjoint(g.contiguous(), maps, mask, ctx.fft_dims, ctx.coil_chunk)
    return gx, None, None, None, None


def _backward_adjoint(ctx, g):
    _no_constant_grads(ctx, "sense_adjoint", ("maps", ctx.needs_input_grad[1]), ("mask", ctx.needs_input_grad[2]))
    maps, mask = ctx.saved_tensors
    gy = torch.ops.gleam.sense_forward(g.contiguous(), maps, mask, ctx.fft_dims, ctx.coil_chunk)
    return gy, None, None, None, None


def _backward_normal(ctx, g):
    _no_constant_grads(ctx, "sense_normal", ("maps", ctx.needs_input_grad[1]), ("mask", ctx.needs_input_grad[2]))
    maps, mask = ctx.saved_tensors
    return torch.ops.gleam.sense_normal(g.contiguous(), maps, mask, ctx.fft_dims, ctx.coil_chunk), None, None, None, None


def _setup_dc(ctx, inputs, output):
    x, ahy, maps, mask, step, fft_dims, coil_chunk = inputs
    ctx.save_for_backward(x, ahy, maps, mask, step)
    ctx.fft_dims, ctx.coil_chunk = fft_dims, coil_chunk


def _backward_dc(ctx, g):
    _no_constant_grads(ctx, "dc_gradient_step", ("maps", ctx.needs_input_grad[2]), ("mask", ctx.needs_input_grad[3]))
    x, ahy, maps, mask, step = ctx.saved_tensors
    g = g.contiguous()
    ng = torch.ops.gleam.sense_normal(g, maps, mask, ctx.fft_dims, ctx.coil_chunk)
    s = _per_batch(step, x)
    gx = g - s * ng if ctx.needs_input_grad[0] else None
    gahy = s * g if ctx.needs_input_grad[1] else None
    gstep = None
    if ctx.needs_input_grad[4]:
        gstep = -_batch_sum((x.conj() * ng).real - (ahy.conj() * g).real, step).to(step.dtype)
    return gx, gahy, None, None, gstep, None, None


def _setup_cg(ctx, inputs, output):
    b, maps, mask, lam, x0, fft_dims, iters, tol, coil_chunk = inputs
    ctx.mark_non_differentiable(output[1], output[2])
    ctx.save_for_backward(maps, mask, lam, output[0])
    ctx.fft_dims, ctx.iters, ctx.tol, ctx.coil_chunk = fft_dims, iters, tol, coil_chunk


def _backward_cg(ctx, gx, gresid, giters):
    _no_constant_grads(ctx, "dc_cg", ("maps", ctx.needs_input_grad[1]), ("mask", ctx.needs_input_grad[2]))
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
    return (gb if ctx.needs_input_grad[0] else None), None, None, glam, None, None, None, None, None


torch.library.register_autograd("gleam::sense_forward", _backward_forward, setup_context=_setup_linear)
torch.library.register_autograd("gleam::sense_adjoint", _backward_adjoint, setup_context=_setup_linear)
torch.library.register_autograd("gleam::sense_normal", _backward_normal, setup_context=_setup_linear)
torch.library.register_autograd("gleam::dc_gradient_step", _backward_dc, setup_context=_setup_dc)
torch.library.register_autograd("gleam::cg_solve", _backward_cg, setup_context=_setup_cg)
