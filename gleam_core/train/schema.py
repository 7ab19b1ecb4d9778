"""Typed validation of nested spec dictionaries against dataclasses.

:func:`from_dict` builds a dataclass tree from plain data (parsed YAML) and reports the first
problem as a :class:`SpecError` naming the full key path, the value and what is allowed.
Field types understood: dataclasses, ``Literal``, ``int``, ``float``, ``bool``, ``str``, ``dict``
(free-form), ``list[X]``, ``tuple[X, ...]``/``tuple[X, Y]``, unions with ``None`` and other
alternatives. Field metadata: ``min`` (inclusive lower bound), ``above`` (exclusive lower bound), ``odd``
(odd ints only).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, Union

import yaml


class SpecError(ValueError):
    """A spec problem: ``key`` is the dotted path of the offending entry."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"spec error at '{key}': {message}" if key else f"spec error: {message}")
        self.key = key


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin in (list, tuple):
        return f"a list of {_describe(args[0])}" if args else "a list"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an int", float: "a number", bool: "true/false", str: "a string", dict: "a mapping"}.get(tp, str(tp))


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if origin is Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
        raise SpecError(key, f"got {_show(value)}, allowed: {', '.join(repr(a) for a in args)}")
    if origin in (Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise SpecError(key, f"got null, expected {_describe(tp)}")
        for alt in (a for a in args if a is not type(None)):
            try:
                return _convert(alt, value, key)
            except SpecError:
                continue
        raise SpecError(key, f"got {_show(value)}, expected {_describe(tp)}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise SpecError(key, f"got {_show(value)}, expected {_describe(tp)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise SpecError(key, f"got {len(value)} entries {value!r}, expected exactly {len(args)}")
            return tuple(_convert(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [v if item is Any else _convert(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is dict:
        if isinstance(value, dict):
            return dict(value)
    elif tp is Any:
        return value
    raise SpecError(key, f"got {_show(value)}, expected {_describe(tp)}")


def _check_metadata(f: dataclasses.Field, value: Any, key: str) -> None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    lo = f.metadata.get("min")
    if lo is not None and value < lo:
        raise SpecError(key, f"got {_show(value)}, expected a value >= {lo}")
    above = f.metadata.get("above")
    if above is not None and value <= above:
        raise SpecError(key, f"got {_show(value)}, expected a value > {above}")
    if f.metadata.get("odd") and value % 2 == 0:
        raise SpecError(key, f"got {_show(value)}, expected an odd number")


# Keys that moved between releases: an old spec gets told where, not just "unknown key".
MOVED_KEYS = {"distributed.queue_depth": "gleam.queue_depth"}


def from_dict(cls: type, data: Any, key: str = "") -> Any:
    """Builds dataclass ``cls`` from ``data`` (a mapping; None means all defaults)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(key, f"got {_show(data)}, expected a mapping with keys "
                             f"{', '.join(f.name for f in dataclasses.fields(cls))}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in data.items():
        if name not in fields:
            path = f"{key}.{name}" if key else str(name)
            close = difflib.get_close_matches(str(name), list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            if path in MOVED_KEYS:
                hint = f" (this key moved to '{MOVED_KEYS[path]}')"
            raise SpecError(path, f"unknown key (value {value!r}){hint}; allowed keys here: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            continue
        path = f"{key}.{name}" if key else name
        value = _convert(hints[name], data[name], path)
        _check_metadata(f, value, path)
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """A dataclass tree as plain YAML-safe data (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def set_path(data: dict, assignment: str) -> None:
    """Applies one ``key.path=value`` override (value parsed as YAML) to a raw spec dict."""
    if "=" not in assignment:
        raise SpecError("", f"--set expects key.path=value, got {assignment!r}")
    path, raw = assignment.split("=", 1)
    keys = path.strip().split(".")
    if not all(keys):
        raise SpecError(path, f"--set has an empty key in {assignment!r}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise SpecError(path, f"--set value {raw!r} is not valid YAML: {exc}") from exc
    node = data
    for i, k in enumerate(keys[:-1]):
        child = node.get(k)
        if child is None:
            child = node[k] = {}
        elif not isinstance(child, dict):
            raise SpecError(".".join(keys[:i + 1]), f"is {_show(child)}, cannot set '{path}' inside it")
        node = child
    node[keys[-1]] = value
