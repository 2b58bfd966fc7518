"""Comparing two `results.json` trees within stated tolerances (`leastaction verify`).

A number `got` (from the re-run) matches the recorded `expected` when

    |got - expected| <= atol + rtol * |expected|

Integers, booleans, strings and `null` must be equal; dicts must have the same
keys and lists the same lengths. A key is *volatile* (excluded from the
comparison and reported as excluded) when

- any component of its dotted path contains one of `VOLATILE_WORDS`
  ("time", "seconds", "memory", "bytes", "timestamp", "wall"): wall times,
  timings and memory measurements that depend on the machine and its load; or
- its last component, or its path with list indices dropped (`runs.ratio` for
  `runs[3].ratio`), matches one of the experiment's own `volatile` patterns
  (shell-style, `fnmatch`).

The tolerances and the experiment's patterns are stored in each folder's
`config.toml` under `[verify]`, so a folder says how it is to be verified.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

VOLATILE_WORDS = ("time", "seconds", "memory", "bytes", "timestamp", "wall")
"""A results key whose name contains one of these is a measurement of the machine, not of the mathematics."""

DEFAULT_RTOL = 1e-9
"""Default relative tolerance: far above float64 rounding of a deterministic re-run
(bitwise equal on one machine), far below any change of the mathematics."""

DEFAULT_ATOL = 1e-12
"""Default absolute tolerance: quantities that are rounding noise (errors of ~1e-16)
may differ between machines without failing."""


@dataclass(frozen=True)
class Tolerances:
    """How a folder is verified: `rtol`, `atol` and the experiment's volatile key patterns.

    Example:
        >>> loose = experiments.Tolerances(rtol=1e-6, volatile=("*_ratio",))
        >>> experiments.compare_results({"x": 1.0, "speed_ratio": 2.0}, {"x": 1.0 + 1e-8, "speed_ratio": 3.0}, loose).ok
        True
    """

    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    volatile: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"verify tolerance {name!r} must be a finite number >= 0; got {value!r}")
        if isinstance(self.volatile, str) or not all(isinstance(p, str) for p in self.volatile):
            raise ValueError(f"verify 'volatile' must be a list of key patterns; got {self.volatile!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"rtol": float(self.rtol), "atol": float(self.atol), "volatile": list(self.volatile)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], default: "Tolerances | None" = None) -> "Tolerances":
        """From a `[verify]` table; missing entries come from `default`; unknown ones are an error."""
        default = default or cls()
        unknown = sorted(set(values) - {"rtol", "atol", "volatile"})
        if unknown:
            raise ValueError(f"unknown [verify] key {unknown[0]!r}; valid keys: rtol, atol, volatile")
        return cls(rtol=values.get("rtol", default.rtol), atol=values.get("atol", default.atol),
                   volatile=tuple(values.get("volatile", default.volatile)))


@dataclass(frozen=True)
class Difference:
    """One value that does not match: where, what was recorded, what the re-run gave."""

    path: str
    expected: Any
    got: Any
    abs_diff: float | None = None
    rel_diff: float | None = None
    reason: str = "value differs"


@dataclass(frozen=True)
class ResultsComparison:
    """The outcome of `compare_results`: numbers checked, differences, volatile keys left out.

    Example:
        >>> comparison = experiments.compare_results({"a": [1.0, 2.0]}, {"a": [1.0, 2.0 + 1e-6]})
        >>> comparison.ok, comparison.checked, f"{comparison.max_rel_diff:.0e}"
        (False, 2, '5e-07')
    """

    tolerances: Tolerances
    checked: int = 0
    differences: tuple[Difference, ...] = ()
    excluded: tuple[str, ...] = ()
    max_abs_diff: float = 0.0
    max_rel_diff: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "checked": self.checked, "tolerances": self.tolerances.as_dict(),
            "max_abs_diff": self.max_abs_diff, "max_rel_diff": self.max_rel_diff,
            "excluded": list(self.excluded),
            "differences": [d.__dict__ for d in self.differences],
        }


def _components(path: str) -> list[str]:
    """`a.b[2].c` -> `["a", "b", "c"]`."""
    parts = []
    for part in path.split("."):
        name = part.split("[", 1)[0]
        if name:
            parts.append(name)
    return parts


def is_volatile(path: str, patterns: Sequence[str] = ()) -> bool:
    """Whether the results key at dotted `path` is excluded from verification (module docstring)."""
    parts = _components(path)
    if any(word in part.lower() for part in parts for word in VOLATILE_WORDS):
        return True
    plain = ".".join(parts)
    return any(fnmatch.fnmatchcase(parts[-1] if parts else "", p) or fnmatch.fnmatchcase(plain, p)
               for p in patterns)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _walk(expected: Any, got: Any, path: str, tol: Tolerances, found: dict) -> None:
    if path and is_volatile(path, tol.volatile):
        found["excluded"].append(path)
        return
    differences = found["differences"]
    if isinstance(expected, Mapping):
        if not isinstance(got, Mapping):
            differences.append(Difference(path or "(root)", "object", type(got).__name__, reason="type differs"))
            return
        for key in expected:
            sub = f"{path}.{key}" if path else str(key)
            if key not in got:
                if not is_volatile(sub, tol.volatile):
                    differences.append(Difference(sub, expected[key], None, reason="missing in re-run"))
                continue
            _walk(expected[key], got[key], sub, tol, found)
        for key in got:
            sub = f"{path}.{key}" if path else str(key)
            if key not in expected and not is_volatile(sub, tol.volatile):
                differences.append(Difference(sub, None, got[key], reason="new in re-run"))
        return
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            size = len(got) if isinstance(got, list) else type(got).__name__
            differences.append(Difference(path, f"list of {len(expected)}", f"list of {size}" if isinstance(got, list)
                                          else size, reason="length differs"))
            return
        for i, (a, b) in enumerate(zip(expected, got)):
            _walk(a, b, f"{path}[{i}]", tol, found)
        return
    found["checked"] += 1
    if isinstance(expected, float) or (isinstance(got, float) and _is_number(expected)):
        if not _is_number(got):
            differences.append(Difference(path, expected, got, reason="type differs"))
            return
        diff = abs(float(got) - float(expected))
        rel = diff / abs(expected) if expected != 0 else (0.0 if diff == 0 else math.inf)
        found["max_abs"] = max(found["max_abs"], diff)
        found["max_rel"] = max(found["max_rel"], rel)
        if not diff <= tol.atol + tol.rtol * abs(expected):
            differences.append(Difference(path, expected, got, diff, rel))
        return
    if type(expected) is not type(got) or expected != got:
        diff = abs(got - expected) if _is_number(expected) and _is_number(got) else None
        differences.append(Difference(path, expected, got, diff, reason="not equal" if diff is None else "integer differs"))


def compare_results(expected: Any, got: Any, tolerances: Tolerances = Tolerances()) -> ResultsComparison:
    """Compare a recorded results tree with a re-run's (see the module docstring).

    Example:
        >>> experiments.compare_results({"error": 1e-16, "steps": 10}, {"error": 1.1e-16, "steps": 10}).ok    # within atol
        True
        >>> result = experiments.compare_results({"loss": 1.0, "wall_seconds": 3.0}, {"loss": 1.5, "wall_seconds": 9.0})
        >>> result.ok, [d.path for d in result.differences], result.excluded       # timings are left out
        (False, ['loss'], ('wall_seconds',))
    """
    found: dict = {"checked": 0, "differences": [], "excluded": [], "max_abs": 0.0, "max_rel": 0.0}
    _walk(expected, got, "", tolerances, found)
    return ResultsComparison(tolerances=tolerances, checked=found["checked"], differences=tuple(found["differences"]),
                      excluded=tuple(found["excluded"]), max_abs_diff=found["max_abs"], max_rel_diff=found["max_rel"])


def leaves(tree: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """`(dotted path, value)` of every scalar in a results tree."""
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from leaves(value, f"{path}[{i}]")
    else:
        yield path, tree


__all__ = ["ResultsComparison", "DEFAULT_ATOL", "DEFAULT_RTOL", "Difference", "Tolerances", "VOLATILE_WORDS",
           "compare_results", "is_volatile", "leaves"]
