"""Typed experiment configurations and their resolution from `key=value` overrides.

A configuration is a frozen dataclass whose defaults fix the type of every key
(`int`, `float`, `bool` or `str`). Overrides arrive as strings from the command
line (`--set steps=20`) or as typed values read back from a `config.toml`; each
is parsed with the type of its default. Every error is a `ValueError` naming the
key, raised before an experiment does any work:

- a key the configuration does not have (the message lists the valid keys);
- a value that does not parse as the key's type (`steps=2.5`, `seed=abc`);
- a non-finite float (`scale=nan`, `t_final=inf`);
- whatever the dataclass's own `__post_init__` rejects (`dim=3` for a 2-D plot).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

SCALAR_TYPES = (bool, int, float, str)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def check_defaults(defaults: Any) -> None:
    """Raise unless `defaults` is a frozen dataclass instance with scalar fields."""
    if not (dataclasses.is_dataclass(defaults) and not isinstance(defaults, type)):
        raise TypeError(f"an experiment config must be a dataclass instance; got {defaults!r}")
    if not type(defaults).__dataclass_params__.frozen:
        raise TypeError(f"{type(defaults).__name__} must be a frozen dataclass")
    for f in dataclasses.fields(defaults):
        value = getattr(defaults, f.name)
        if type(value) not in SCALAR_TYPES:
            raise TypeError(
                f"{type(defaults).__name__}.{f.name}: defaults must be bool, int, float or str "
                f"(they fix the key's type); got {type(value).__name__}"
            )


def keys(defaults: Any) -> list[str]:
    """The configuration keys, in declaration order."""
    return [f.name for f in dataclasses.fields(defaults)]


def parse_assignments(assignments: Iterable[str]) -> dict[str, str]:
    """`["steps=20", "method=rk4"]` -> `{"steps": "20", "method": "rk4"}` (later wins)."""
    parsed: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects key=value; got {item!r}")
        parsed[key] = value.strip()
    return parsed


def coerce(key: str, value: Any, default: Any) -> Any:
    """`value` converted to the type of `default`, or a `ValueError` naming `key`.

    Strings are parsed (`"20"` -> 20, `"true"` -> True); typed values are
    accepted when they already have the right type (an `int` is accepted for a
    `float` key, a `bool` never for a number).
    """
    kind = type(default)
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        try:
            if kind is bool:
                if text.lower() in _TRUE:
                    return True
                if text.lower() in _FALSE:
                    return False
                raise ValueError
            if kind is int:
                return int(text, 10)
            parsed = float(text)
        except ValueError:
            raise ValueError(
                f"config key {key!r} expects {kind.__name__} (default {default!r}); got {value!r}"
            ) from None
        return _finite(key, parsed)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not kind:
        raise ValueError(
            f"config key {key!r} expects {kind.__name__} (default {default!r}); "
            f"got {type(value).__name__} {value!r}"
        )
    return _finite(key, value) if kind is float else value


def _finite(key: str, value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"config key {key!r} must be finite; got {value!r}")
    return value


def resolve(defaults: Any, overrides: Mapping[str, Any], experiment: str = "experiment") -> Any:
    """`defaults` with `overrides` applied, parsed and validated (a new frozen dataclass)."""
    valid = keys(defaults)
    unknown = [k for k in overrides if k not in valid]
    if unknown:
        raise ValueError(
            f"unknown config key {unknown[0]!r} for experiment {experiment!r}; "
            f"valid keys: {', '.join(valid)}"
        )
    values = {k: coerce(k, v, getattr(defaults, k)) for k, v in overrides.items()}
    for k in valid:
        if k not in values:
            default = getattr(defaults, k)
            if isinstance(default, float):
                _finite(k, default)
    return dataclasses.replace(defaults, **values)


def as_dict(config: Any) -> dict[str, Any]:
    """The configuration as a plain `{key: value}` dict (declaration order)."""
    return {k: getattr(config, k) for k in keys(config)}


def check_quick(config: Any, replaced: Iterable[str]) -> None:
    """With `config.quick`, the keys in `replaced` take the quick preset's values: setting
    any of them as well is a `ValueError` (it would be silently ignored)."""
    if not getattr(config, "quick", False):
        return
    fields = {f.name: f for f in dataclasses.fields(config)}
    changed = [k for k in replaced if getattr(config, k) != fields[k].default]
    if changed:
        raise ValueError(f"config key 'quick' replaces {', '.join(replaced)}; do not also set {', '.join(changed)}")


def numbers(key: str, text: str, kind: type = int) -> tuple:
    """The comma-separated numbers of the string config value `text` (e.g. ``"2,3,3,1"``),
    converted by `kind`; a `ValueError` naming `key` if one does not parse."""
    try:
        return tuple(kind(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"config key {key!r} must be comma-separated {kind.__name__}s; got {text!r}") from None

