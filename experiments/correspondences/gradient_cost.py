"""Cost of a gradient by finite differences, forward mode and reverse mode.

The function has `p` parameters and costs O(p) to evaluate: a single tanh
unit on a fixed batch of `B` inputs `x_b in R^p`,

    L(theta) = (1/2) sum_b tanh(theta . x_b)^2,
    dL/dtheta = sum_b tanh(z_b) (1 - tanh(z_b)^2) x_b,   z_b = theta . x_b   (closed form).

Three ways to get the whole gradient, each counted in the calls it makes:

- forward finite differences `(L(theta + h e_i) - L(theta)) / h`: `p + 1`
  evaluations of `L`;
- forward mode: one JVP `jax.jvp(L, theta, e_i)` per basis vector: `p` JVPs;
- reverse mode: one VJP `jax.vjp(L, theta)` pulled back from 1: one VJP.

`CountedFunction` counts the calls as the drivers make them, so the counts are
measured, deterministic, and a slope fit of log(count) against log(p) gives
about 1, 1 and 0. The same three computations, written as single XLA programs
(`vmap` over the perturbations, `jax.jacfwd`, `jax.grad`), are also measured by
XLA's own cost model (`compiled.cost_analysis()["flops"]`), divided by the flops
of one evaluation of `L`: deterministic for a given XLA, and the same slopes.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..harness.metrics import relative_error, time_calls

METHODS = ("finite-differences", "forward-mode", "reverse-mode")


class CountedFunction:
    """`L` with counters of its plain evaluations, JVPs and VJPs (each compiled once per shape)."""

    def __init__(self, fn: Callable):
        self._fn = jax.jit(fn)
        self._jvp = jax.jit(lambda th, v: jax.jvp(fn, (th,), (v,))[1])
        self._vjp = jax.jit(lambda th: jax.vjp(fn, th)[1](jnp.ones((), th.dtype))[0])
        self.evaluations = self.jvps = self.vjps = 0

    def __call__(self, theta):
        self.evaluations += 1
        return self._fn(theta)

    def jvp(self, theta, tangent):
        self.jvps += 1
        return self._jvp(theta, tangent)

    def vjp(self, theta):
        self.vjps += 1
        return self._vjp(theta)

    @property
    def calls(self) -> int:
        return self.evaluations + self.jvps + self.vjps


def tanh_unit(inputs: jax.Array) -> Callable:
    """`L(theta) = (1/2) sum_b tanh(theta . x_b)^2` for `inputs` of shape `(B, p)`.

    Example:
        >>> inputs = jnp.ones((4, 3))
        >>> loss = tanh_unit(inputs)
        >>> theta = jnp.array([0.1, -0.2, 0.3])
        >>> bool(jnp.allclose(jax.grad(loss)(theta), tanh_unit_gradient(theta, inputs)))
        True
    """
    return lambda theta: 0.5 * jnp.sum(jnp.tanh(inputs @ theta) ** 2)


def tanh_unit_gradient(theta, inputs):
    """Closed-form `dL/dtheta = sum_b tanh(z_b) (1 - tanh(z_b)^2) x_b`, shape `(p,)`.

    Example:
        >>> tanh_unit_gradient(jnp.zeros(2), jnp.ones((3, 2)))          # tanh(0) = 0
        Array([0., 0.], dtype=float64)
    """
    t = jnp.tanh(inputs @ theta)
    return inputs.T @ (t * (1 - t**2))


def problem(p: int, batch: int, key) -> tuple[jax.Array, jax.Array]:
    """`(theta, inputs)`: `theta ~ N(0, 1/p)` of shape `(p,)`, inputs `N(0, 1)` of shape `(batch, p)`."""
    if int(p) < 1 or int(batch) < 1:
        raise ValueError(f"need p >= 1 and batch >= 1; got p={p}, batch={batch}")
    k1, k2 = jax.random.split(key)
    return jax.random.normal(k1, (p,)) / np.sqrt(p), jax.random.normal(k2, (batch, p))


def gradient(method: str, fn: CountedFunction, theta, step: float | None = None):
    """The whole gradient by `method` (one of `METHODS`), counted on `fn`."""
    # perturbations and results live in numpy: only the counted calls run JAX programs
    theta = np.asarray(theta)
    p = theta.shape[0]
    basis = np.eye(p, dtype=theta.dtype)
    if method == "finite-differences":
        h = step if step is not None else float(np.sqrt(np.finfo(np.float64).eps)) * max(1.0, float(np.max(np.abs(theta))))
        base = float(fn(theta))
        return np.array([(float(fn(theta + h * basis[i])) - base) / h for i in range(p)])
    if method == "forward-mode":
        return np.array([float(fn.jvp(theta, basis[i])) for i in range(p)])
    if method == "reverse-mode":
        return np.asarray(fn.vjp(theta))
    raise ValueError(f"unknown gradient method {method!r}; choose one of {METHODS}")


def xla_flops(fn: Callable, theta) -> dict[str, float]:
    """XLA's flop counts of one evaluation and of the three gradient programs.

    finite differences: `vmap` of `L` over the `p + 1` points `theta, theta + h e_i`;
    forward mode: `jax.jacfwd(L)`; reverse mode: `jax.grad(L)`.
    """
    p = theta.shape[0]
    h = 1e-7
    points = lambda th: jnp.concatenate([th[None], th + h * jnp.eye(p, dtype=th.dtype)])  # noqa: E731
    programs = {
        "evaluation": fn,
        "finite-differences": lambda th: (jax.vmap(fn)(points(th))[1:] - fn(th)) / h,
        "forward-mode": jax.jacfwd(fn),
        "reverse-mode": jax.grad(fn),
    }
    flops = {}
    for name, program in programs.items():
        cost = jax.jit(program).lower(theta).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        flops[name] = float(cost["flops"])
    return flops


class CostPoint(NamedTuple):
    """One `p`: calls per method, XLA flops ratios, wall seconds (each method's whole gradient and
    one evaluation), gradient errors vs the closed form."""

    p: int
    calls: dict
    flops_ratio: dict
    seconds: dict
    relative_error: dict


def measure(p: int, batch: int, key, repeats: int = 3) -> CostPoint:
    """Counts, flops ratios, times (median of `repeats` warm runs) and errors at one `p`."""
    theta, inputs = problem(p, batch, key)
    fn_plain = tanh_unit(inputs)
    exact = np.asarray(tanh_unit_gradient(theta, inputs))
    flops = xla_flops(fn_plain, theta)
    calls, seconds, errors = {}, {}, {}
    counted = CountedFunction(fn_plain)

    def timed(call) -> float:
        """Median of `repeats` warm calls (`time_calls`, after one more warm-up call)."""
        return time_calls(call, (), repeats=repeats, budget=math.inf)[1].median_seconds

    for method in METHODS:
        counted.evaluations = counted.jvps = counted.vjps = 0
        g = jax.block_until_ready(gradient(method, counted, theta))  # the first call also compiles
        calls[method] = counted.calls
        seconds[method] = timed(lambda: gradient(method, counted, theta))  # noqa: B023
        errors[method] = relative_error(g, exact)
    seconds["evaluation"] = timed(lambda: counted(theta))
    ratio = {m: flops[m] / flops["evaluation"] for m in METHODS}
    return CostPoint(p=p, calls=calls, flops_ratio=ratio, seconds=seconds, relative_error=errors)


def loglog_slope(x, y) -> float:
    """Least-squares slope of `log y` against `log x`.

    Example:
        >>> round(loglog_slope([1, 10, 100], [3, 30, 300]), 12)
        1.0
    """
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])
