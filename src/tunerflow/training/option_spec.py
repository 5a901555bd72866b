"""Declared run options: a field of :class:`~tunerflow.training.recipe.Recipe` with its rules.

Each run option is declared once, as a Recipe field made with :func:`option`:
its type (from the annotation: ``int``, ``float``, ``bool``, ``str``, a mapping,
a ``str`` enum for a closed set, ``| None`` when null is allowed), help text,
bounds and any further check. Whatever reads options derives from that:
the recipe's validation, the request model of ``/runs/start``, the client's
pre-upload check, the CLI's flags and the test of ``config.yml``. Defaults live
in ``config.yml`` (the ``recipe`` section), not here.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from enum import Enum
from functools import cache
from typing import Any

from tunerflow.data.store import check_name
from tunerflow.errors import ConfigError
from tunerflow.options import parse_enum

_KEY = "tunerflow.option"
_SCALARS = (bool, int, float, str, dict)


@dataclasses.dataclass(frozen=True)
class Option:
    """One run option.

    Attributes:
        name: the option's name (a Recipe field, a request key, ``--name-with-dashes`` in the CLI).
        kind: ``bool``, ``int``, ``float``, ``str``, ``dict`` or a ``str`` enum (the closed set).
        help: what it does, for the CLI and the request schema.
        nullable: null is a valid value (``X | None``).
        required: a value must come from somewhere (config.yml or the run); False when the field has a default.
        per_run: given with each run (data, names), so config.yml has no default for it.
        dataset: the value names a stored dataset.
        minimum, maximum: bounds of a number (inclusive unless ``above`` / ``below``).
        above: the minimum itself is refused (``> minimum``).
        below: the maximum itself is refused (``< maximum``).
        check: a further check of the parsed value; returns the value to keep (it may normalise it).
        named: words that stand for a value of the kind, e.g. ``{"auto": 0}``; replaced before parsing.
    """

    name: str
    kind: type
    help: str
    nullable: bool = False
    required: bool = True
    per_run: bool = False
    dataset: bool = False
    minimum: float | None = None
    maximum: float | None = None
    above: bool = False
    below: bool = False
    check: Callable[[Any], Any] | None = None
    named: dict[str, Any] | None = None

    @property
    def choices(self) -> tuple[str, ...]:
        """The closed set of values (an enum's), or ``()`` for an open one."""
        return tuple(member.value for member in self.kind) if issubclass(self.kind, Enum) else ()

    def allowed(self) -> str:
        """The allowed values in words, e.g. ``>= 1, <= 1000`` or ``one of: a, b``; '' when any value of the type."""
        parts = []
        if self.minimum is not None:
            parts.append(f"{'>' if self.above else '>='} {_number_text(self.minimum)}")
        if self.maximum is not None:
            parts.append(f"{'<' if self.below else '<='} {_number_text(self.maximum)}")
        if self.choices:
            parts.append(f"one of: {', '.join(self.choices)}")
        if self.named:
            parts.append(", ".join(f"{word} ({_number_text(value)})" for word, value in self.named.items()))
        if self.nullable:
            parts.append("or null")
        return ", ".join(parts)

    def describe(self) -> str:
        """The help text followed by the allowed values."""
        allowed = self.allowed()
        return f"{self.help} [{allowed}]" if allowed else self.help

    def parse(self, value: Any) -> Any:
        """``value`` checked and converted: a whole float to ``int``, a name to its enum member.

        Raises:
            ConfigError: naming the option, what is allowed and the value given.
        """
        if value is None:
            if self.nullable:
                return None
            raise ConfigError(f"{self.name} cannot be null")
        if self.named and isinstance(value, str) and value in self.named:
            value = self.named[value]
        parsed = _PARSERS.get(self.kind, _parse_enum)(self, value)
        self._check_bounds(parsed)
        if self.dataset:
            check_name(parsed, f"{self.name} dataset")
        return self.check(parsed) if self.check else parsed

    def _check_bounds(self, value: Any) -> None:
        or_null = " or null" if self.nullable else ""
        low, high = self.minimum, self.maximum
        if low is not None and (value <= low if self.above else value < low):
            wanted = f"> {_number_text(low)}" if self.above else f"at least {_number_text(low)}"
            raise ConfigError(f"{self.name} must be {wanted}{or_null}, got {value}")
        if high is not None and (value >= high if self.below else value > high):
            wanted = f"< {_number_text(high)}" if self.below else f"at most {_number_text(high)}"
            raise ConfigError(f"{self.name} must be {wanted}{or_null}, got {value}")


def option(help: str, *, default: Any = dataclasses.MISSING, **rules: Any) -> Any:
    """Declare a Recipe field as a run option; ``rules`` are :class:`Option` attributes (bounds, check, ...)."""
    return dataclasses.field(default=default, metadata={_KEY: (help, rules)})


@cache
def declared_options(cls: type) -> tuple[Option, ...]:
    """The options declared on the dataclass ``cls``, in field order."""
    hints = typing.get_type_hints(cls)
    declared = []
    for field in dataclasses.fields(cls):
        if _KEY not in field.metadata:
            continue
        help_text, rules = field.metadata[_KEY]
        kind, nullable = _kind(field.name, hints[field.name])
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        declared.append(Option(field.name, kind, help_text, nullable=nullable, required=required, **rules))
    return tuple(declared)


def _kind(name: str, hint: Any) -> tuple[type, bool]:
    nullable = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        nullable = len(args) < len(typing.get_args(hint))
        if len(args) != 1:
            raise TypeError(f"option {name}: one type (and None) per option, got {hint}")
        hint = args[0]
    kind = typing.get_origin(hint) or hint
    if kind not in _SCALARS and not (isinstance(kind, type) and issubclass(kind, Enum) and issubclass(kind, str)):
        raise TypeError(f"option {name}: unsupported type {hint}; use bool, int, float, str, dict or a str enum")
    return kind, nullable


def _number_text(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(number)


def _parse_bool(option: Option, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{option.name} must be true or false, got {value!r}")
    return value


def _parse_int(option: Option, value: Any) -> int:
    # JSON and gRPC carry numbers as floats (3 arrives as 3.0): a whole float is fine, 2.5 is refused, not truncated.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{option.name} must be a whole number, got {value!r}")
    return value


def _parse_float(option: Option, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{option.name} must be a finite number, got {value!r}")
    return float(value)


def _parse_str(option: Option, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{option.name} must be a string, got {value!r}")
    return value


def _parse_dict(option: Option, value: Any) -> dict:
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ConfigError(f"{option.name} must be a mapping of option names to values, got {value!r}")
    return dict(value)


def _parse_enum(option: Option, value: Any) -> Enum:
    if not isinstance(value, str):
        raise ConfigError(f"{option.name} must be a string, one of: {', '.join(option.choices)}; got {value!r}")
    return parse_enum(option.kind, value, option.name)


_PARSERS: dict[type, Callable[[Option, Any], Any]] = {
    bool: _parse_bool,
    int: _parse_int,
    float: _parse_float,
    str: _parse_str,
    dict: _parse_dict,
}
