"""Butcher tableaux as frozen data, each with its classical order.

A Runge-Kutta method with coefficients `(a_ij, b_i, c_i)` advances
`dx/dt = f(t, x)` by

    X_i = x + h sum_j a_ij K_j,   K_i = f(t + c_i h, X_i),   x' = x + h sum_i b_i K_i.

A new integrator is a new `ButcherTableau`, not a new loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ButcherTableau:
    """Coefficients `a` (s x s), `b` (s), `c` (s) and the classical `order`.

    Stored as tuples so that a tableau is hashable and static under `jax.jit`.
    Validated on construction: shapes agree and `c_i = sum_j a_ij`.
    """

    name: str
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    c: tuple[float, ...]
    order: int
    aliases: tuple[str, ...] = field(default=())

    def __post_init__(self):
        a = np.asarray(self.a, dtype=float)
        b = np.asarray(self.b, dtype=float)
        c = np.asarray(self.c, dtype=float)
        s = b.shape[0] if b.ndim == 1 else -1
        if b.ndim != 1 or s == 0:
            raise ValueError(f"tableau {self.name!r}: b must be a non-empty vector; got shape {b.shape}")
        if a.shape != (s, s):
            raise ValueError(f"tableau {self.name!r}: a must have shape ({s}, {s}) to match b; got {a.shape}")
        if c.shape != (s,):
            raise ValueError(f"tableau {self.name!r}: c must have shape ({s},) to match b; got {c.shape}")
        if not (np.isfinite(a).all() and np.isfinite(b).all() and np.isfinite(c).all()):
            raise ValueError(f"tableau {self.name!r}: coefficients must be finite")
        rows = a.sum(axis=1)
        bad = np.flatnonzero(np.abs(rows - c) > 1e-12 * max(1.0, np.abs(c).max()))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"tableau {self.name!r}: row-sum condition c_i = sum_j a_ij fails at stage {i}: "
                f"c_{i} = {c[i]!r} but sum_j a_{i}j = {rows[i]!r}"
            )
        if int(self.order) < 1:
            raise ValueError(f"tableau {self.name!r}: order must be a positive integer; got {self.order}")

    @property
    def stages(self) -> int:
        return len(self.b)

    @property
    def explicit(self) -> bool:
        """True when `a` is strictly lower triangular (every stage is explicit)."""
        return bool(np.all(np.triu(np.asarray(self.a)) == 0.0))


def _explicit(name, rows, b, order, aliases=()):
    """Build an explicit tableau from the rows of its strictly lower part of `a`."""
    s = len(b)
    a = [[0.0] * s for _ in range(s)]
    for i, row in enumerate(rows, start=1):
        a[i][: len(row)] = [float(v) for v in row]
    c = [sum(r) for r in a]
    return ButcherTableau(
        name, tuple(map(tuple, a)), tuple(float(v) for v in b), tuple(c), order, tuple(aliases)
    )


EULER = _explicit("euler", [], [1.0], 1, ("forward-euler",))
"""Forward Euler, order 1, one stage. Its layer map `x + h f(x)` is a ResNet block."""

HEUN = _explicit("heun", [[1.0]], [0.5, 0.5], 2, ("explicit-trapezoid",))
"""Heun's method (explicit trapezoid), order 2, two stages."""

MIDPOINT = _explicit("midpoint", [[0.5]], [0.0, 1.0], 2, ("explicit-midpoint",))
"""Explicit midpoint, order 2, two stages; `b_1 = 0`, so it needs the stage-wise adjoint."""

RALSTON = _explicit("ralston", [[2 / 3]], [0.25, 0.75], 2)
"""Ralston's second-order method (minimum error bound among 2-stage order-2 methods)."""

KUTTA3 = _explicit("kutta3", [[0.5], [-1.0, 2.0]], [1 / 6, 2 / 3, 1 / 6], 3)
"""Kutta's third-order method, three stages."""

RK4 = _explicit("rk4", [[0.5], [0.0, 0.5], [0.0, 0.0, 1.0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6], 4, ("classical-rk4",))
"""The classical fourth-order Runge-Kutta method, four stages."""

RK38 = _explicit(
    "rk38", [[1 / 3], [-1 / 3, 1.0], [1.0, -1.0, 1.0]], [1 / 8, 3 / 8, 3 / 8, 1 / 8], 4, ("3/8-rule",)
)
"""Kutta's 3/8 rule, order 4, four stages."""

BOSH3 = _explicit("bosh3", [[0.5], [0.0, 0.75], [2 / 9, 1 / 3, 4 / 9]], [2 / 9, 1 / 3, 4 / 9, 0.0], 3, ("bogacki-shampine",))
"""Bogacki-Shampine 3(2), order 3 (FSAL: its fourth stage has `b_4 = 0`)."""

TABLEAUX: dict[str, ButcherTableau] = {
    t.name: t for t in (EULER, HEUN, MIDPOINT, RALSTON, KUTTA3, RK4, RK38, BOSH3)
}


def tableau(name: str) -> ButcherTableau:
    """The registered tableau called `name` (or one of its aliases)."""
    for t in TABLEAUX.values():
        if name == t.name or name in t.aliases:
            return t
    raise ValueError(f"unknown integrator {name!r}; choose one of {sorted(TABLEAUX)}")
