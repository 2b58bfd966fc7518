"""Integrators as frozen data, each with its classical order.

A Runge-Kutta method (`ButcherTableau`) with coefficients `(a_ij, b_i, c_i)`
advances `dx/dt = f(t, x)` by

    X_i = x + h sum_j a_ij K_j,   K_i = f(t + c_i h, X_i),   x' = x + h sum_i b_i K_i,

and, when it has an embedded pair, estimates its local error as
`h sum_i e_i K_i` with `e = b - b_embedded`. A splitting method
(`SplittingTableau`) for a separable field `x = (q, v)`, `dq/dt = f_q(v)`,
`dv/dt = f_v(q)` is a sequence of kicks `v += c h f_v(q)` and drifts
`q += d h f_q(v)`; each sub-step is symplectic, so the composition is.

A new integrator is a new tableau, not a new loop.
"""

from dataclasses import dataclass, field

import diffrax
import numpy as np


@dataclass(frozen=True)
class ButcherTableau:
    """Coefficients `a` (s x s), `b` (s), `c` (s), the classical `order`, and
    optionally embedded error weights `b_error = b - b_embedded` of order `embedded_order`.

    Stored as tuples so that a tableau is hashable and static under `jax.jit`.
    Validated on construction: shapes agree and `c_i = sum_j a_ij`.

    Example:
        >>> rk4 = integrators.RK4
        >>> rk4.order, len(rk4.b), rk4.b
        (4, 4, (0.16666666666666666, 0.3333333333333333, 0.3333333333333333, 0.16666666666666666))
        >>> euler = integrators.ButcherTableau(name="my-euler", a=((0.0,),), b=(1.0,), c=(0.0,), order=1)
        >>> ode = integrators.discretise(lagrangian.NeuralODE(2), integrators.uniform_grid(1.0, 10), euler)
    """

    name: str
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    c: tuple[float, ...]
    order: int
    b_error: tuple[float, ...] | None = None
    embedded_order: int | None = None
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
        if self.b_error is not None and np.shape(self.b_error) != (s,):
            raise ValueError(f"tableau {self.name!r}: b_error must have shape ({s},); got {np.shape(self.b_error)}")
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

    @property
    def symplectic(self) -> bool:
        """Cooper's condition `b_i a_ij + b_j a_ji = b_i b_j` (the method is its own partner)."""
        a, b = np.asarray(self.a), np.asarray(self.b)
        m = b[:, None] * a + (b[:, None] * a).T - np.outer(b, b)
        return bool(np.max(np.abs(m)) < 1e-13)

    @property
    def symmetric(self) -> bool:
        """The stage-reversal symmetry `a_ij + a_{s+1-i, s+1-j} = b_j`, `b_{s+1-j} = b_j`: the
        method is its own adjoint, `Phi_{-h} o Phi_h = id` (started at `t + h`), so `Phi_{-h}`
        inverts a step (Hairer, Lubich, Wanner, Geometric Numerical Integration, V.2.2).
        Gauss-Legendre and Lobatto IIIA/IIIB are; no explicit tableau is."""
        a, b = np.asarray(self.a), np.asarray(self.b)
        m = a + a[::-1, ::-1] - b[None, :]
        return bool(max(np.max(np.abs(m)), np.max(np.abs(b - b[::-1]))) < 1e-13)


def _explicit(name, rows, b, order, aliases=(), b_error=None, embedded_order=None):
    """An explicit tableau from the rows of the strictly lower part of `a`."""
    s = len(b)
    a = [[0.0] * s for _ in range(s)]
    for i, row in enumerate(rows, start=1):
        a[i][: len(row)] = [float(v) for v in row]
    c = [sum(r) for r in a]
    err = None if b_error is None else tuple(float(v) for v in b_error)
    return ButcherTableau(
        name, tuple(map(tuple, a)), tuple(float(v) for v in b), tuple(c), order, err, embedded_order, tuple(aliases)
    )


def _from_diffrax(name, solver, order, embedded_order, aliases=()):
    """An explicit tableau read from a diffrax solver (with its embedded error weights)."""
    t = solver.tableau
    return _explicit(name, [list(r) for r in t.a_lower], list(t.b_sol), order, aliases, list(t.b_error), embedded_order)


def _from_diffrax_implicit(name, solver, order, embedded_order, aliases=()):
    """A diagonally implicit tableau read from a diffrax solver (strictly lower part, diagonal, weights)."""
    t = solver.tableau
    s = len(t.b_sol)
    a = [[0.0] * s for _ in range(s)]
    for i, row in enumerate(t.a_lower, start=1):
        a[i][: len(row)] = [float(v) for v in row]
    for i, v in enumerate(t.a_diagonal):
        a[i][i] = float(v)
    return ButcherTableau(name, tuple(map(tuple, a)), tuple(float(v) for v in t.b_sol), tuple(sum(r) for r in a),
                          order, tuple(float(v) for v in t.b_error), embedded_order, tuple(aliases))


def _implicit(name, a, b, order, aliases=()):
    a = tuple(tuple(float(v) for v in row) for row in a)
    return ButcherTableau(name, a, tuple(float(v) for v in b), tuple(sum(r) for r in a), order, aliases=tuple(aliases))


EULER = _explicit("euler", [], [1.0], 1, ("forward-euler",))
"""Forward Euler, order 1, one stage. Its layer map `x + h f(x)` is a ResNet block."""

HEUN = _from_diffrax("heun", diffrax.Heun, 2, 1, ("explicit-trapezoid",))
"""Heun's method (explicit trapezoid), order 2, two stages; embedded Euler."""

MIDPOINT = _from_diffrax("midpoint", diffrax.Midpoint, 2, 1, ("explicit-midpoint",))
"""Explicit midpoint, order 2, two stages; `b_1 = 0`, so it needs the stage-wise conjugate."""

RALSTON = _from_diffrax("ralston", diffrax.Ralston, 2, 1)
"""Ralston's second-order method (minimum error bound among 2-stage order-2 methods)."""

KUTTA3 = _explicit("kutta3", [[0.5], [-1.0, 2.0]], [1 / 6, 2 / 3, 1 / 6], 3)
"""Kutta's third-order method, three stages."""

RK4 = _explicit("rk4", [[0.5], [0.0, 0.5], [0.0, 0.0, 1.0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6], 4, ("classical-rk4",))
"""The classical fourth-order Runge-Kutta method, four stages."""

RK38 = _explicit(
    "rk38", [[1 / 3], [-1 / 3, 1.0], [1.0, -1.0, 1.0]], [1 / 8, 3 / 8, 3 / 8, 1 / 8], 4, ("3/8-rule",)
)
"""Kutta's 3/8 rule, order 4, four stages."""

BOSH3 = _from_diffrax("bosh3", diffrax.Bosh3, 3, 2, ("bogacki-shampine",))
"""Bogacki-Shampine 3(2), four stages (FSAL: `b_4 = 0`)."""

DOPRI5 = _from_diffrax("dopri5", diffrax.Dopri5, 5, 4, ("dormand-prince",))
"""Dormand-Prince 5(4), seven stages (FSAL: `b_2 = b_7 = 0`)."""

TSIT5 = _from_diffrax("tsit5", diffrax.Tsit5, 5, 4, ("tsitouras",))
"""Tsitouras 5(4), seven stages (FSAL: `b_7 = 0`)."""

DOPRI8 = _from_diffrax("dopri8", diffrax.Dopri8, 8, 7, ("dormand-prince-8",))
"""Dormand-Prince 8(7), fourteen stages; diffrax's `Dopri8`."""

_S3 = np.sqrt(3.0)
_S15 = np.sqrt(15.0)

GAUSS1 = _implicit("gauss-legendre-1", [[0.5]], [1.0], 2, ("implicit-midpoint",))
"""Gauss-Legendre with one stage (implicit midpoint), order 2, symplectic."""

GAUSS2 = _implicit(
    "gauss-legendre-2",
    [[1 / 4, 1 / 4 - _S3 / 6], [1 / 4 + _S3 / 6, 1 / 4]],
    [1 / 2, 1 / 2],
    4,
)
"""Gauss-Legendre with two stages, order 4, symplectic."""

GAUSS3 = _implicit(
    "gauss-legendre-3",
    [
        [5 / 36, 2 / 9 - _S15 / 15, 5 / 36 - _S15 / 30],
        [5 / 36 + _S15 / 24, 2 / 9, 5 / 36 - _S15 / 24],
        [5 / 36 + _S15 / 30, 2 / 9 + _S15 / 15, 5 / 36],
    ],
    [5 / 18, 4 / 9, 5 / 18],
    6,
)
"""Gauss-Legendre with three stages, order 6, symplectic."""

LOBATTO_IIIA = _implicit("lobatto-iiia", [[0.0, 0.0], [0.5, 0.5]], [0.5, 0.5], 2, ("trapezoid",))
"""Lobatto IIIA with two stages (the implicit trapezoidal rule), order 2. Its
partner is Lobatto IIIB; the pair on `(x, p)` is the Stormer-Verlet scheme."""

LOBATTO_IIIB = _implicit("lobatto-iiib", [[0.5, 0.0], [0.5, 0.0]], [0.5, 0.5], 2)
"""Lobatto IIIB with two stages, order 2: the partner of Lobatto IIIA."""

IMPLICIT_EULER = _implicit("implicit-euler", [[1.0]], [1.0], 1, ("backward-euler",))
"""Implicit (backward) Euler, order 1, one stage; A- and L-stable."""

KVAERNO3 = _from_diffrax_implicit("kvaerno3", diffrax.Kvaerno3(), 3, 2)
"""Kvaerno's ESDIRK 3(2), four stages (explicit first stage, stiffly accurate); diffrax's `Kvaerno3`."""

KVAERNO4 = _from_diffrax_implicit("kvaerno4", diffrax.Kvaerno4(), 4, 3)
"""Kvaerno's ESDIRK 4(3), five stages; diffrax's `Kvaerno4`."""

KVAERNO5 = _from_diffrax_implicit("kvaerno5", diffrax.Kvaerno5(), 5, 4)
"""Kvaerno's ESDIRK 5(4), seven stages; diffrax's `Kvaerno5`."""

TABLEAUX: dict[str, ButcherTableau] = {
    t.name: t
    for t in (
        EULER, HEUN, MIDPOINT, RALSTON, KUTTA3, RK4, RK38, BOSH3, DOPRI5, TSIT5, DOPRI8,
        GAUSS1, GAUSS2, GAUSS3, LOBATTO_IIIA, LOBATTO_IIIB, IMPLICIT_EULER, KVAERNO3, KVAERNO4, KVAERNO5,
    )
}
"""Every registered Butcher tableau by name (explicit and implicit Runge-Kutta)."""


@dataclass(frozen=True)
class SplittingTableau:
    """A splitting (composition) method: `steps` is a sequence of
    `("kick", c)` (`v += c h f_v(q)`) and `("drift", d)` (`q += d h f_q(v)`)
    sub-steps whose drift and kick coefficients each sum to one.

    `times`, when given, holds the fraction `tau_j` of the step at which sub-step `j`
    evaluates the field, `t_k + tau_j h`; by default each sub-step reads the time the
    drifts before it have reached (`tau_j = sum of the earlier drift coefficients`).

    Example:
        >>> integrators.LEAPFROG.steps                       # kick-drift-kick (Stormer-Verlet)
        (('kick', 0.5), ('drift', 1.0), ('kick', 0.5))
    """

    name: str
    steps: tuple[tuple[str, float], ...]
    order: int
    aliases: tuple[str, ...] = field(default=())
    times: tuple[float, ...] | None = None

    def __post_init__(self):
        kinds = {kind for kind, _ in self.steps}
        if not self.steps or not kinds <= {"kick", "drift"}:
            raise ValueError(f"splitting {self.name!r}: steps must be ('kick' | 'drift', coefficient) pairs")
        for kind in ("kick", "drift"):
            total = sum(c for k, c in self.steps if k == kind)
            if abs(total - 1.0) > 1e-12:
                raise ValueError(f"splitting {self.name!r}: {kind} coefficients sum to {total!r}, not 1")
        if self.times is not None and len(self.times) != len(self.steps):
            raise ValueError(f"splitting {self.name!r}: {len(self.times)} times for {len(self.steps)} sub-steps")

    @property
    def fractions(self) -> tuple[float, ...]:
        """`tau_j`: sub-step `j` evaluates the field at `t_k + tau_j h`."""
        if self.times is not None:
            return self.times
        reached, fractions = 0.0, []
        for kind, coeff in self.steps:
            fractions.append(reached)
            if kind == "drift":
                reached += coeff
        return tuple(fractions)


def _compose_leapfrog(name, weights, order, aliases=()):
    """The composition `LF(w_1 h) o ... o LF(w_m h)` of kick-drift-kick leapfrogs,
    merging adjacent half-kicks."""
    steps: list[tuple[str, float]] = []
    for w in weights:
        if steps and steps[-1][0] == "kick":
            steps[-1] = ("kick", steps[-1][1] + w / 2)
        else:
            steps.append(("kick", w / 2))
        steps += [("drift", w), ("kick", w / 2)]
    return SplittingTableau(name, tuple(steps), order, tuple(aliases))


LEAPFROG = _compose_leapfrog("leapfrog", [1.0], 2, ("stormer-verlet", "velocity-verlet"))
"""Kick-drift-kick leapfrog (Stormer-Verlet), order 2, symplectic."""

SYMPLECTIC_EULER = SplittingTableau("symplectic-euler", (("kick", 1.0), ("drift", 1.0)), 1)
"""Symplectic Euler (kick then drift), order 1."""

SEMI_IMPLICIT_EULER = SplittingTableau("semi-implicit-euler", (("drift", 1.0), ("kick", 1.0)), 1, times=(0.0, 0.0))
"""Semi-implicit Euler as diffrax's `SemiImplicitEuler` steps it: drift then kick, both reading
the field at `t_k` (`q_{k+1} = q_k + h f_q(t_k, v_k)`, `v_{k+1} = v_k + h f_v(t_k, q_{k+1})`), order 1."""

_W1 = 1.0 / (2.0 - 2.0 ** (1 / 3))
YOSHIDA4 = _compose_leapfrog("yoshida4", [_W1, 1.0 - 2.0 * _W1, _W1], 4, ("forest-ruth",))
"""Yoshida's fourth-order triple-jump composition of leapfrog, symplectic."""

SPLITTINGS: dict[str, SplittingTableau] = {t.name: t for t in (LEAPFROG, SYMPLECTIC_EULER, SEMI_IMPLICIT_EULER, YOSHIDA4)}
"""Every registered splitting method by name (`leapfrog`, `symplectic-euler`, `semi-implicit-euler`, `yoshida4`)."""


def tableau(name: str) -> ButcherTableau | SplittingTableau:
    """The registered tableau or splitting called `name` (or one of its aliases).

    Example:
        >>> integrators.tableau("rk4").order, integrators.tableau("leapfrog").order
        (4, 2)
    """
    for t in (*TABLEAUX.values(), *SPLITTINGS.values()):
        if name == t.name or name in t.aliases:
            return t
    raise ValueError(f"unknown integrator {name!r}; choose one of {sorted(TABLEAUX) + sorted(SPLITTINGS)}")
