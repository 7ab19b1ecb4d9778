"""NumPy and DLPack arrays in and out of torch functions, zero-copy where the memory allows.

:func:`accepts_arrays` wraps a function written for torch tensors (every public op in
``gleam_core.ops``) so that it also takes NumPy arrays and any array exposing ``__dlpack__``
(CuPy, JAX, ...), and gives its results back as the caller's array type:

- NumPy in, NumPy out: ``torch.from_numpy`` in and ``Tensor.numpy()`` out share memory. A
  read-only array enters through DLPack (which carries the read-only flag; the ops never write
  to their inputs); negative strides or a non-native byte order, which torch cannot describe,
  are copied, keeping the dtype.
- DLPack in (CuPy, JAX, ...), the same library out: ``torch.from_dlpack`` in and the library's
  own ``from_dlpack`` out (found through ``__array_namespace__`` or the array type's top-level
  module), both zero-copy and stream-ordered by the DLPack protocol.
- torch tensors pass straight through: the wrapper costs a type test per argument, well under
  a microsecond a call (``benchmarks/interop.py`` measures it; ``SenseOp``'s own argument checks
  take about ten).

Dtypes are never changed: a real float64 array where the op needs complex reaches the op's own
check as float64 and is refused there, naming the argument. Arrays of different kinds in one
call (NumPy with torch, NumPy with CuPy) are refused: which type to return would be a guess.
"""

from __future__ import annotations

import functools
import inspect
import sys
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

F = TypeVar("F", bound=Callable[..., Any])

# type -> True when values of that type are arrays to convert (NumPy, DLPack producers other
# than torch), filled on first sight of each type. Exact tensors are told by `type(a) is Tensor`
# before any lookup: isinstance(a, Tensor) on a non-tensor costs ~200 ns (Tensor's metaclass).
_FOREIGN: dict[type, bool] = {int: False, float: False, bool: False, str: False, type(None): False}


def _is_foreign(t: type) -> bool:
    try:
        return _FOREIGN[t]
    except KeyError:
        foreign = _FOREIGN[t] = not issubclass(t, Tensor) and (issubclass(t, np.ndarray) or hasattr(t, "__dlpack__"))
        return foreign


def _type_name(value: object) -> str:
    t = type(value)
    return "torch.Tensor" if isinstance(value, Tensor) else f"{t.__module__.partition('.')[0]}.{t.__qualname__}"


def _share_numpy(a: np.ndarray) -> Tensor:
    if a.flags.writeable:
        try:
            return torch.from_numpy(a)  # the cheapest route
        except ValueError:  # negative strides or a foreign byte order, which torch cannot describe
            return torch.from_numpy(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("=")))
    # Read-only: from_numpy would warn; DLPack carries the flag (NumPy >= 2) and does not.
    if not a.dtype.isnative or any(s < 0 for s in a.strides):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("=")))
    try:
        return torch.from_dlpack(a)
    except BufferError:  # NumPy 1.x cannot export read-only arrays through DLPack
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "not writable": the ops only read
            return torch.from_numpy(a)


def to_torch(name: str, a: Any) -> Tensor:
    """A NumPy or DLPack array as a torch tensor sharing its memory (copied only where torch
    cannot describe the layout: negative strides, non-native byte order). Same dtype, same device.

    Raises:
        ValueError: naming ``name``, when torch cannot hold the array's dtype or the producer
            refuses the DLPack export.
    """
    if isinstance(a, np.ndarray):
        try:
            return _share_numpy(a)
        except (TypeError, BufferError, RuntimeError) as e:
            raise ValueError(f"{name} is a NumPy array of dtype {a.dtype}, which torch cannot hold without "
                             f"changing its dtype ({e}); convert it yourself, e.g. to complex64") from None
    try:
        return torch.from_dlpack(a)
    except (TypeError, BufferError, RuntimeError, ValueError) as e:
        raise ValueError(f"{name} ({_type_name(a)}, dtype {getattr(a, 'dtype', '?')}) could not be shared with "
                         f"torch through DLPack: {e}") from None


def _returner(name: str, a: Any) -> Callable[[Tensor], Any]:
    """The function that turns a result tensor into the type of ``a`` (the caller's array)."""
    if isinstance(a, np.ndarray):
        return Tensor.numpy
    ns = a.__array_namespace__() if hasattr(a, "__array_namespace__") else \
        sys.modules.get(type(a).__module__.partition(".")[0])
    back = getattr(ns, "from_dlpack", None)
    if back is None:
        raise ValueError(f"{name} is a {_type_name(a)}, whose library has no from_dlpack to return results in; "
                         "convert it with torch.from_dlpack and pass torch tensors")
    return back


def _convert_back(result: Any, back: Callable[[Tensor], Any]) -> Any:
    if isinstance(result, Tensor):
        if result.is_conj() or result.is_neg():  # lazy bits NumPy and DLPack cannot represent
            result = result.resolve_conj().resolve_neg()
        return back(result)
    if isinstance(result, tuple):
        values = [_convert_back(v, back) for v in result]
        return type(result)(*values) if hasattr(result, "_fields") else tuple(values)
    return result


@functools.cache
def _positional_names(fn: Callable[..., Any]) -> tuple[str, ...]:
    """Names of ``fn``'s positional parameters, for error messages (inspect's binding costs ~30 us)."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in inspect.signature(fn).parameters.values() if p.kind in kinds)


def _call_unseen(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """A call with a foreign array or an argument type not seen before: classify, then convert or not."""
    if any(_is_foreign(type(a)) for a in (*args, *kwargs.values())):
        return _call_foreign(fn, args, kwargs)
    return fn(*args, **kwargs)


def _is_array(v: object) -> bool:
    return isinstance(v, Tensor) or _is_foreign(type(v))


def _call_foreign(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    names = _positional_names(fn)
    named = [(names[i] if i < len(names) else f"argument {i}", v) for i, v in enumerate(args)]
    arrays = [(name, v) for name, v in (*named, *kwargs.items()) if _is_array(v)]
    kinds: dict[str, str] = {}
    for name, v in arrays:
        kinds.setdefault(_type_name(v), name)
    if len(kinds) > 1:
        (kind_a, name_a), (kind_b, name_b) = list(kinds.items())[:2]
        raise ValueError(f"mixed array types: {name_a} is a {kind_a} but {name_b} is a {kind_b}; pass every array "
                         "as one type (all NumPy, all torch, or all from one DLPack library such as CuPy)")
    back = _returner(*arrays[0])
    args = tuple(to_torch(name, v) if _is_array(v) else v for name, v in named)
    kwargs = {name: to_torch(name, v) if _is_array(v) else v for name, v in kwargs.items()}
    return _convert_back(fn(*args, **kwargs), back)


def accepts_arrays(fn: F) -> F:
    """Lets ``fn`` (written for torch tensors) take NumPy and DLPack arrays and return the caller's type.

    Every argument that is a NumPy array or has ``__dlpack__`` is shared with torch (see the module
    docstring), ``fn`` runs on tensors, and tensors in its result (also inside tuples and named
    tuples) come back as the caller's array type. Calls with torch tensors only go straight to ``fn``.

    Raises:
        ValueError: mixed array types in one call, or an array torch cannot share (named).
    """
    # Only ``fn`` is closed over: torch.compile traces this wrapper, and cannot hold a Signature.
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for a in args:
            t = type(a)
            if t is not Tensor and _FOREIGN.get(t, True):
                return _call_unseen(fn, args, kwargs)
        if not kwargs:
            return fn(*args)
        for a in kwargs.values():
            t = type(a)
            if t is not Tensor and _FOREIGN.get(t, True):
                return _call_unseen(fn, args, kwargs)
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
