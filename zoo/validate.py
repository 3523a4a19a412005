"""One small checker for declared parameters: a dataclass (or a function signature) says what is
valid, and :func:`check` turns a user's mapping into an instance or a :class:`ConfigError` naming the
place, the field and what was expected, with close matches for a misspelt key.

Annotations it understands: ``bool``, ``int``, ``float`` (finite), ``str``, ``None``, ``Any``,
``Literal[...]``, ``X | Y``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]``, ``dict[str, X]``,
nested dataclasses, and ``Annotated[X, Range(...)]`` for bounds. Numpy scalars become Python
numbers, so everything checked is JSON-serialisable.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import numbers
import types
import typing
from typing import Any, Annotated, Literal, get_args, get_origin

from zoo.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Range:
    """Bounds of a number: ``Annotated[float, Range(0, 1, high_open=True)]`` is 0 ≤ x < 1."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def problem(self, value) -> str | None:
        too_low = self.low is not None and (value < self.low or (self.low_open and value == self.low))
        too_high = self.high is not None and (value > self.high or (self.high_open and value == self.high))
        return f"must be {self}" if too_low or too_high else None

    def __str__(self):
        def number(v):
            return str(int(v)) if float(v).is_integer() else f"{v:g}"

        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {number(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {number(self.high)}")
        return " and ".join(parts)


@dataclasses.dataclass(frozen=True)
class Match:
    """A string matching ``pattern``: ``Annotated[str, Match(re.compile(...), "what it means")]``."""

    pattern: Any
    meaning: str

    def problem(self, value) -> str | None:
        return None if self.pattern.match(value) else f"expected {self.meaning}"


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
PROBABILITY = Range(0, 1)

#: Annotations shared by the model families' constructors (their config is their signature).
Size = Annotated[int, Range(1)]
Count = Annotated[int, Range(0)]
Seed = Annotated[int, Range(0, 2**32 - 1)]
ImageShape = tuple[Size, Size, Size]
Rate = Annotated[float, Range(0, 1, high_open=True)]
Probability = Annotated[float, PROBABILITY]
NonNegative = Annotated[float, NON_NEGATIVE]


class _Invalid(Exception):
    def __init__(self, path: str, problem: str):
        super().__init__(path, problem)
        self.path, self.problem = path, problem


def describe(annotation) -> str:
    """A short human name of an annotation (``'a list of integers'``)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        bounds = [str(a) if isinstance(a, Range) else a.meaning for a in args[1:] if isinstance(a, (Range, Match))]
        return describe(args[0]) + (f" ({', '.join(bounds)})" if bounds else "")
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin in (tuple, list):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return f"a list of {len(args)} values ({', '.join(describe(a) for a in args)})"
        return f"a list of {_plural(describe(args[0]) if args else 'values')}"
    if origin is dict or annotation is dict:
        return "a mapping"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    if annotation in names:
        return names[annotation]
    if dataclasses.is_dataclass(annotation):
        return "a mapping"
    return "any value" if annotation is Any else getattr(annotation, "__name__", str(annotation))


def _plural(text: str) -> str:
    for article in ("an ", "a "):
        if text.startswith(article):
            word, _, rest = text[len(article):].partition(" ")
            return f"{word}s {rest}".strip()
    return text


def _convert(annotation, value, path: str):
    """``value`` as ``annotation`` says, or raise :class:`_Invalid`."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is Any or annotation is inspect.Parameter.empty:
        return value
    if origin is Annotated:
        value = _convert(args[0], value, path)
        for bound in args[1:]:
            if isinstance(bound, (Range, Match)) and (problem := bound.problem(value)):
                raise _Invalid(path, f"{problem}, got {value!r}")
        return value
    if origin is Literal:
        if any(type(value) is type(a) and value == a for a in args):  # True is not 1
            return value
        close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise _Invalid(path, f"expected {describe(annotation)}, got {value!r}{hint}")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        problems = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _convert(option, value, path)
            except _Invalid as exc:
                problems.append(exc)
        raise _Invalid(path, f"expected {describe(annotation)}, got {value!r}")
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, dict):
            raise _Invalid(path, f"expected a mapping, got {value!r}")
        return _build(annotation, value, path + ".")
    if origin in (tuple, list) or annotation in (tuple, list):
        if isinstance(value, (str, bytes, dict)) or not isinstance(value, (list, tuple)):
            raise _Invalid(path, f"expected {describe(annotation)}, got {value!r}")
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise _Invalid(path, f"expected {describe(annotation)}, got {value!r}")
            items = [_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value))]
        else:
            item = args[0] if args else Any
            items = [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin or annotation) is tuple else items
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise _Invalid(path, f"expected a mapping, got {value!r}")
        item = args[1] if len(args) == 2 else Any
        for key in value:
            if not isinstance(key, str):
                raise _Invalid(path, f"keys must be strings, got {key!r}")
        return {k: _convert(item, v, f"{path}[{k!r}]") for k, v in value.items()}
    if annotation is bool:
        if isinstance(value, (bool, _np_bool())):
            return bool(value)
        raise _Invalid(path, f"expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, (bool, _np_bool())):
            return int(value)
        raise _Invalid(path, f"expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, numbers.Real) and not isinstance(value, (bool, _np_bool())):
            if not math.isfinite(float(value)):
                raise _Invalid(path, f"expected a finite number, got {value!r}")
            return float(value)
        raise _Invalid(path, f"expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _Invalid(path, f"expected a string, got {value!r}")
    if annotation is type(None):
        if value is None:
            return None
        raise _Invalid(path, f"expected null, got {value!r}")
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise _Invalid(path, f"expected {describe(annotation)}, got {value!r}")
    return value


def _np_bool():
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency
        return bool
    return np.bool_


def _unknown_key(key, valid, path):
    close = difflib.get_close_matches(str(key), list(valid), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return _Invalid(path + str(key), f"unknown field{hint} (valid: {', '.join(sorted(valid)) or 'none'})")


def _build(cls, data: dict, prefix: str):
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise _unknown_key(key, fields, prefix)
    values = {}
    for name, f in fields.items():
        if name in data:
            values[name] = _convert(hints[name], data[name], prefix + name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _Invalid(prefix + name, f"required ({describe(hints[name])})")
    return cls(**values)


def check(cls, data, where: str):
    """``cls(**data)`` for a dataclass ``cls``, every field checked against its annotation.

    ``where`` names the place for the error message (``"registry.yaml: preset 'x': train"``).
    """
    if data is None:
        data = {}
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    try:
        return _build(cls, data, "")
    except _Invalid as exc:
        raise ConfigError(f"{where}: field {exc.path!r}: {exc.problem}") from None


def check_value(annotation, value, where: str, field: str):
    """One value checked against ``annotation``; a ConfigError names ``where`` and ``field``."""
    try:
        return _convert(annotation, value, field)
    except _Invalid as exc:
        raise ConfigError(f"{where}: field {exc.path!r}: {exc.problem}") from None


def signature_defaults(fn) -> dict:
    """The keyword parameters of ``fn`` (a function or a class) with their defaults."""
    params = inspect.signature(fn).parameters
    return {n: p.default for n, p in params.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is not p.empty}


def signature_annotations(fn) -> dict:
    """The resolved annotations of ``fn``'s parameters (of ``__init__`` for a class)."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:  # unresolvable forward references: check nothing rather than guess
        return {}
    hints.pop("return", None)
    return hints


def unknown_key_error(key, valid, where: str) -> ConfigError:
    """The error for a key that is not among ``valid``, with the closest match."""
    exc = _unknown_key(key, valid, "")
    return ConfigError(f"{where}: field {exc.path!r}: {exc.problem}")


def check_call(function, params: dict, what: str, reserved=()) -> None:
    """Refuse keyword ``params`` that ``function`` has no parameter for, naming the ones it has (a
    function taking ``**kwargs`` accepts anything: it checks for itself)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to check against
        return
    if any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
        return
    named = [p.name for p in signature.parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in reserved]
    unknown = sorted(set(params) - set(named))
    if unknown:
        raise ConfigError(f"{what} takes no parameter {', '.join(map(repr, unknown))}; "
                          f"its parameters: {', '.join(named) or 'none'}")
