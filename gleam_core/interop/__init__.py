"""``gleam_core.interop``: the ops from other array libraries.

- :mod:`.arrays`: NumPy and DLPack (CuPy, JAX) arrays in and out of the ops, zero-copy where the
  memory allows; every public op in ``gleam_core.ops`` is wrapped with :func:`accepts_arrays`.
- :mod:`.sigpy`: ``Sense``, a ``sigpy.linop.Linop`` backed by the ops (needs the ``sigpy`` extra;
  imported on demand so that sigpy stays optional).
"""

from .arrays import accepts_arrays, to_torch

__all__ = ["accepts_arrays", "to_torch"]
