"""Gradient methods: one object, one interface, one registry.

A `Method` takes a `Problem` and returns `Prepared`: a function `fn(*args) ->
(gradient, aux)` with its arguments (the harness compiles it with XLA when
`compiled`, warms it up and times it), plus the number of evaluations the
method performs. `gradient` has the structure of `theta`; `aux` is a dict of
scalar diagnostics (e.g. the reconstruction error of a reversible sweep).

Three kinds:

- ``reference``: how the answer is known independently of the project.
  `jax.grad` through `integrators.forward` (store-all reverse mode, the default
  reference), forward mode (`jax.jvp`, one column of the Jacobian per
  parameter), central finite differences, diffrax's adjoints on the same
  vector field and scheme (`peers.py`).
- ``peer``: an independent implementation in another framework (torch
  autograd, `peers.py`).
- ``project``: the least-action methods under test. They only call
  `integrators.sweep` / `integrators.tension`, which differentiate locally
  (one layer map or one evaluation of `f` at a time); `compare` exits non-zero
  if one misses its tolerance.

A method may solve a different discretisation of an ODE problem than the
problem's own scheme (`Method.target`): the least-action sweep on each
tableau, or on a reversible scheme. Its reference is then computed on that same
discretisation, and its error against the continuous gradient shows the order.

Tolerances (relative L2 error against the reference, by dtype) are stated per
method; `None` means reported, not judged (diffrax `BacksolveAdjoint`, whose
answer is the continuous gradient up to discretisation error, not the gradient
of the discrete map).

Evaluation counts of the least-action methods are what their memory strategy
says it costs (`integrators.Memory.cost`), never re-derived here; whether a
strategy applies to a problem is its own `check`.

This module holds the interface, the registry and the references; the project's
methods are in `experiments.harness.least_action`, the peers in
`experiments.harness.peers`, the physical learning rules in
`experiments.harness.rules`; all are registered when `experiments.harness` is
imported (`experiments.harness.register_defaults`). New methods are one line:
`register(LeastAction("name", memory, "what it is"))`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import PyTree

import integrators
from .problems import Problem

Kind = Literal["reference", "peer", "project"]

EXACT = {"float64": 1e-12, "float32": 1e-5}
"""Tolerance of a method exact up to rounding: relative L2 error against `jax.grad`
of the same discretisation (the project's acceptance bound)."""


@dataclass(frozen=True)
class Prepared:
    """A method ready to run on one problem.

    `fn(*args) -> (gradient, aux)`. With `compiled`, the harness compiles `fn`
    with `jax.jit` (so `args` must be arrays or pytrees of arrays) and reads
    its XLA memory analysis; otherwise `fn` is called as is (torch).
    `evaluations` counts what the method evaluates, in units of `unit`:
    ``f`` (one evaluation of the vector field, per Runge-Kutta stage) or
    ``layer`` (one layer map); keys `f` (primal evaluations, including
    recomputation and the re-linearisation of a step before its pullback),
    `vjp`, `jvp`, and for a sweep `stored` (states or step linearisations held
    at once); `None` where not known.

    Example:
        >>> from experiments import harness
        >>> problem = harness.problem_named("linear-rk4")
        >>> prepared = harness.method_named("least-action").prepare(problem)
        >>> gradient, aux = prepared.fn(*prepared.args)                   # what the harness compiles and times
        >>> jax.tree.structure(gradient) == jax.tree.structure(problem.theta)
        True
    """

    fn: Callable[..., tuple[PyTree, Mapping[str, Any]]]
    args: tuple
    evaluations: Mapping[str, Any] = field(default_factory=dict)
    compiled: bool = True


class Method(abc.ABC):
    """A gradient method. Subclasses set `name`, `kind`, `description`,
    `tolerance` and implement `prepare`; `applies` returns the reason a problem
    is not applicable (or `None`), and `target` the problem actually solved.

    Example:
        >>> from experiments import harness
        >>> method = harness.method_named("least-action-checkpoint-log")
        >>> method.kind, method.tolerance_for("float64")
        ('project', 1e-12)
    """

    name: str
    kind: Kind
    description: str
    tolerance: Mapping[str, float | None] = EXACT

    def applies(self, problem: Problem) -> str | None:
        """`None` if this method can differentiate `problem`, else why not (shown as n/a)."""
        return None

    def target(self, problem: Problem) -> Problem:
        """The problem this method differentiates (a re-discretisation, or `problem` itself)."""
        return problem

    @abc.abstractmethod
    def prepare(self, problem: Problem) -> Prepared:
        """The function computing `dl/dtheta` on `problem` (already the target)."""

    def tolerance_for(self, dtype_name: str) -> float | None:
        return self.tolerance.get(dtype_name)

    def info(self) -> dict:
        return {"kind": self.kind, "description": self.description, "tolerance": dict(self.tolerance)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


METHODS: dict[str, Method] = {}
"""Every method `compare` knows, by name (references, then peers, then project methods)."""


def register(method: Method) -> Method:
    """Add `method` to `METHODS` (a `ValueError` if its name is taken).

    Example:
        >>> from experiments import harness
        >>> from experiments.harness.least_action import LeastAction
        >>> method = harness.register(LeastAction("least-action-checkpoint-3", integrators.Checkpoint(3),
        ...                                       "the sweep with 3-level checkpointing"))
        >>> "least-action-checkpoint-3" in harness.METHODS
        True
        >>> del harness.METHODS["least-action-checkpoint-3"]            # (keep the registry as it was)
    """
    if method.name in METHODS:
        raise ValueError(f"a method called {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


def method_named(name: str) -> Method:
    """The registered method called `name` (a `ValueError` listing the valid names otherwise).

    Example:
        >>> method_named("least-action").kind
        'project'
    """
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}") from None


def select(names: str | list[str] | None) -> list[str]:
    """Method names from a list or a comma-separated string (``all`` or empty: every one)."""
    if names is None:
        return list(METHODS)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(names)
    if not names or names == ["all"]:
        return list(METHODS)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; valid methods: {', '.join(METHODS)}")
    return names


# --- evaluation counts ---------------------------------------------------------------------


def unit(problem: Problem) -> str:
    """The unit of a problem's evaluation counts: ``f`` (a Runge-Kutta stage) or ``layer``."""
    return "f" if problem.tableau is not None else "layer"


def sweep_evaluations(problem: Problem, memory: integrators.Memory) -> dict:
    """The counts of a sweep with `memory` over `problem`: the strategy's own cost model
    (`memory.cost(N)`, in layer maps), times the stages per step for a Runge-Kutta problem
    (unit ``f``). `f` counts the forward evaluations (with checkpoint recomputation and
    reversible inverse steps) and the re-linearisations of the backward pass."""
    cost = memory.cost(problem.steps)
    s = problem.stages
    return {"unit": unit(problem), "f": (cost.evaluations + cost.relinearisations) * s,
            "vjp": cost.pullbacks * s, "jvp": 0, "stored": cost.stored}


# --- reference methods ---------------------------------------------------------------------


class JaxGrad(Method):
    """`jax.grad` of `loss(output(system, theta, x0))`: store-all reverse mode through
    the whole composed forward map. The default reference. Its counts are those of
    `integrators.StoreStages` (every step's linearisation kept, nothing recomputed), the
    strategy with the memory and arithmetic of `jax.grad` through the scan."""

    name = "jax-grad"
    kind = "reference"
    description = "jax.grad through integrators.output (store-all reverse mode)"

    def prepare(self, problem):
        system = problem.system

        def fn(theta, x0):
            return jax.grad(lambda th: problem.loss(integrators.output(system, th, x0)))(theta), {}

        evaluations = sweep_evaluations(problem, integrators.StoreStages())
        return Prepared(fn, (problem.theta, problem.x0), evaluations)


class ForwardMode(Method):
    """Forward mode: `dl/dtheta_i = jvp(l, e_i)`, one JVP of the whole forward map per
    parameter (columns mapped in chunks of `chunk`)."""

    name = "jax-jvp"
    kind = "reference"
    description = "forward mode, jax.jvp column by column (chunks of 128)"
    chunk = 128

    def prepare(self, problem):
        flat_theta, unravel = ravel_pytree(problem.theta)

        def fn(flat_theta, x0):
            def column(e):
                return jax.jvp(lambda v: problem.loss_at(unravel(v), x0), (flat_theta,), (e,))[1]

            basis = jnp.eye(flat_theta.size, dtype=flat_theta.dtype)
            return unravel(jax.lax.map(column, basis, batch_size=min(self.chunk, flat_theta.size))), {}

        n = problem.parameters * problem.steps * problem.stages
        return Prepared(fn, (flat_theta, problem.x0), {"unit": unit(problem), "f": 0, "vjp": 0, "jvp": n})


class FiniteDifferences(Method):
    """Central finite differences, one pair of forward solves per parameter:

        dl/dtheta_i ~ (l(theta + h_i e_i) - l(theta - h_i e_i)) / (2 h_i),
        h_i = eps^(1/3) * max(1, |theta_i|),

    with `eps` the machine epsilon of the dtype. `eps^(1/3)` balances the
    truncation error `h^2 |l'''| / 6` against the rounding error `eps |l| / h`,
    so the error is about `eps^(2/3)` (~4e-11 relative in float64, ~3e-5 in
    float32) times the conditioning of `l`. The step is made exactly
    representable: the denominator is the difference of the perturbed
    parameters as stored, `(theta_i + h_i) - (theta_i - h_i)`.
    """

    name = "finite-diff"
    kind = "reference"
    description = "central finite differences, h_i = eps^(1/3) max(1, |theta_i|)"
    tolerance = {"float64": 1e-6, "float32": 5e-2}
    chunk = 256

    def prepare(self, problem):
        flat_theta, unravel = ravel_pytree(problem.theta)

        def fn(flat_theta, x0):
            eps = jnp.finfo(flat_theta.dtype).eps
            h = eps ** (1.0 / 3.0) * jnp.maximum(1.0, jnp.abs(flat_theta))

            def column(i):
                plus = flat_theta.at[i].add(h[i])
                minus = flat_theta.at[i].add(-h[i])
                width = plus[i] - minus[i]
                return (problem.loss_at(unravel(plus), x0) - problem.loss_at(unravel(minus), x0)) / width

            index = jnp.arange(flat_theta.size)
            return unravel(jax.lax.map(column, index, batch_size=min(self.chunk, flat_theta.size))), {}

        n = 2 * problem.parameters * problem.steps * problem.stages
        return Prepared(fn, (flat_theta, problem.x0), {"unit": unit(problem), "f": n, "vjp": 0, "jvp": 0})


__all__ = [
    "EXACT", "FiniteDifferences", "ForwardMode", "JaxGrad", "METHODS", "Method", "Prepared", "method_named",
    "register", "select", "sweep_evaluations", "unit",
]
