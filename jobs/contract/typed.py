"""Plain data (parsed YAML or JSON) to frozen dataclasses, with every problem named.

Used for the experiment spec and for the parameters a job reads from ``step.json``.
Problems are collected as ``"<path>: <message>"`` lines rather than raised one by one, so
a user sees all of them at once.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import types
import typing
from typing import Any

DERIVED = "derived"
"""Field metadata flag: computed by the program, never read from user input."""


def type_name(tp: Any) -> str:
    names = {float: "number", int: "integer", str: "string", bool: "boolean"}
    return str(names.get(tp) or getattr(tp, "__name__", tp))


def _fits(value: Any, tp: Any) -> bool:
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return tp is str and isinstance(value, str)


def _range_problem(value: Any, tp: Any, where: str) -> str | None:
    """Values no field takes: an infinite or NaN number, a seed outside numpy's range."""
    if tp is float and not math.isfinite(value):
        return f"{where}: must be a finite number, got {value!r}"
    if tp is int and where.rsplit(".", 1)[-1].endswith("seed") and not 0 <= value < 2**32:
        return f"{where}: a seed is between 0 and 2**32 - 1, got {value!r}"
    return None


def _scalar(value: Any, tp: Any, where: str, problems: list[str], exact: bool) -> Any:
    if not _fits(value, tp):
        problems.append(f"{where}: expected {type_name(tp)}, got {type(value).__name__} {value!r}")
        return None
    problem = _range_problem(value, tp, where)
    if problem:
        problems.append(problem)
        return None
    return float(value) if tp is float and not exact else value


def _mapping(value: Any, tp: Any, where: str, problems: list[str], exact: bool) -> Any:
    if not isinstance(value, dict):
        problems.append(f"{where}: expected a mapping, got {type(value).__name__}")
        return None
    inner = typing.get_args(tp)[1]
    return {str(k): convert(v, inner, f"{where}.{k}", problems, exact) for k, v in value.items()}


def _sequence(value: Any, tp: Any, where: str, problems: list[str], exact: bool) -> Any:
    inner = typing.get_args(tp)[0]
    if isinstance(value, (str, dict)) or not isinstance(value, (list, tuple)):
        value = [value]  # a single item stands for a list of one
    return tuple(convert(v, inner, f"{where}[{i}]", problems, exact) for i, v in enumerate(value))


def _record(value: Any, tp: Any, where: str, problems: list[str], exact: bool) -> Any:
    shorthand = getattr(tp, "from_shorthand", None)
    if shorthand is not None and not isinstance(value, dict):
        value = shorthand(value)
    if not isinstance(value, dict):
        problems.append(f"{where}: expected a mapping, got {type(value).__name__}")
        return None
    return build(tp, value, where, problems, exact)


def _union(value: Any, tp: Any, where: str, problems: list[str], exact: bool) -> Any:
    """The first member type the value fits (``int | str``: 4 stays 4, ``auto`` stays a string)."""
    if value is None:
        return None
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    for arg in args:
        tried: list[str] = []
        converted = convert(value, arg, where, tried, exact)
        if not tried:
            return converted
        if len(args) == 1:
            problems += tried
            return None
    problems.append(f"{where}: expected {' or '.join(type_name(a) for a in args)}, got {type(value).__name__} {value!r}")
    return None


def convert(value: Any, tp: Any, where: str, problems: list[str], exact: bool = False) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it converted (None on a
    problem). ``exact``: keep integers given for float fields as integers (job parameters
    must hash as written); otherwise they become floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _union(value, tp, where, problems, exact)
    if origin in (dict, collections.abc.Mapping):
        return _mapping(value, tp, where, problems, exact)
    if origin is tuple:
        return _sequence(value, tp, where, problems, exact)
    if dataclasses.is_dataclass(tp):
        return _record(value, tp, where, problems, exact)
    return _scalar(value, tp, where, problems, exact)


def _as_default(value: Any, f: dataclasses.Field, exact: bool) -> Any:
    """The field's default itself when ``value`` equals it: ``epochs: 10`` written in a spec
    is the default ``10``, not ``10.0``, so a step's id is the same whether a spec spells a
    default out or leaves it out. Job parameters (``exact``) are kept as written."""
    if exact or f.default is dataclasses.MISSING or isinstance(value, bool) or isinstance(f.default, bool):
        return value
    if isinstance(value, (int, float)) and isinstance(f.default, (int, float)) and value == f.default:
        return f.default
    return value


def readable_fields(cls: type, derived: bool = False) -> dict[str, dataclasses.Field]:
    """The fields input may set: not the derived ones, unless ``derived``."""
    return {f.name: f for f in dataclasses.fields(cls) if derived or not f.metadata.get(DERIVED)}


def build(cls: type, raw: dict, where: str, problems: list[str], exact: bool = False,
          derived: bool = False, also_known: tuple[str, ...] = ()) -> Any:
    """An instance of the dataclass ``cls`` from the mapping ``raw`` (None on a problem);
    unknown and missing keys are problems, absent keys take the field's default.
    ``derived``: also read derived fields (a job reading what the plan computed);
    ``also_known``: keys the caller reads itself, named in the list of known keys."""
    hints = typing.get_type_hints(cls)
    fields = readable_fields(cls, derived)
    dot = f"{where}." if where else ""
    known = ", ".join([*fields, *also_known])
    problems += [f"{dot}{key}: unknown key (known: {known})" for key in raw if key not in fields]
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name in raw:
            values[name] = _as_default(convert(raw[name], hints[name], f"{dot}{name}", problems, exact), f, exact)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{dot}{name}: required key is missing")
    if any(v is None and fields[k].default is not None for k, v in values.items()):
        return None
    try:
        return cls(**values)
    except TypeError:
        return None
